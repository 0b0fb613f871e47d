import { describe, expect, it } from "vitest";
import { ConfigError, DEFAULT_TIMEOUT_MS, loadConfig, parseConfig } from "../src/config.js";

const PAGE = "http://127.0.0.1:3100/sandbox/index.html";

describe("parseConfig", () => {
  it("takes an absolute gateway URL and drops the trailing slash", () => {
    expect(parseConfig({ gatewayUrl: "http://127.0.0.1:3000/" }, PAGE)).toEqual({
      gatewayUrl: "http://127.0.0.1:3000",
      timeoutMs: DEFAULT_TIMEOUT_MS,
      traces: false,
    });
  });

  it("says whether the page's server answers trace lookups", () => {
    expect(parseConfig({ gatewayUrl: "/", traces: true }, PAGE).traces).toBe(true);
    expect(parseConfig({ gatewayUrl: "/", traces: false }, PAGE).traces).toBe(false);
    expect(() => parseConfig({ gatewayUrl: "/", traces: "yes" }, PAGE)).toThrow(ConfigError);
  });

  it("resolves a relative gateway URL against the page", () => {
    expect(parseConfig({ gatewayUrl: "/grpc" }, PAGE).gatewayUrl).toBe("http://127.0.0.1:3100/grpc");
  });

  it("keeps a timeout it is given", () => {
    expect(parseConfig({ gatewayUrl: "https://gw.example", timeoutMs: 5000 }, PAGE).timeoutMs).toBe(5000);
  });

  it.each([
    [null, /JSON object/],
    [[], /JSON object/],
    [{}, /gatewayUrl/],
    [{ gatewayUrl: "" }, /gatewayUrl/],
    [{ gatewayUrl: 3000 }, /gatewayUrl/],
    [{ gatewayUrl: "ftp://host" }, /http or https/],
    [{ gatewayUrl: "http://[bad" }, /not a URL/],
    [{ gatewayUrl: "http://ok", timeoutMs: 0 }, /timeoutMs/],
    [{ gatewayUrl: "http://ok", timeoutMs: "5" }, /timeoutMs/],
  ])("rejects %j", (raw, message) => {
    expect(() => parseConfig(raw, PAGE)).toThrow(ConfigError);
    expect(() => parseConfig(raw, PAGE)).toThrow(message);
  });
});

describe("loadConfig", () => {
  it("fetches without the HTTP cache so an edited file applies on reload", async () => {
    let seenInit: RequestInit | undefined;
    const config = await loadConfig("config.json", PAGE, async (_url, init) => {
      seenInit = init;
      return Response.json({ gatewayUrl: "http://gw:3000" });
    });
    expect(seenInit?.cache).toBe("no-store");
    expect(config.gatewayUrl).toBe("http://gw:3000");
  });

  it("reports HTTP errors, bad JSON and network failures as ConfigError", async () => {
    await expect(loadConfig("config.json", PAGE, async () => new Response("", { status: 404 }))).rejects.toThrow(
      /HTTP 404/,
    );
    await expect(loadConfig("config.json", PAGE, async () => new Response("{nope"))).rejects.toThrow(/not valid JSON/);
    await expect(
      loadConfig("config.json", PAGE, async () => {
        throw new TypeError("Failed to fetch");
      }),
    ).rejects.toThrow(ConfigError);
  });
});
