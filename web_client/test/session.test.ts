import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { callHeaders, execute } from "../src/client.js";
import type { Phase } from "../src/state.js";
import { RECENT_LIMIT, Session } from "../src/session.js";
import { fakeClient, grpcWebOk, meshError, TOOLS, wireClient } from "./fakes.js";

const PING = { input: "ping", tool: "ping", platform: "", arguments: {} };

function session(client: ReturnType<typeof fakeClient>["client"], token = "") {
  let counter = 0;
  let clock = 0;
  const s = new Session(client, {
    gatewayUrl: "http://gw.test",
    timeoutMs: 60_000,
    token: () => token,
    makeTraceId: () => `${++counter}`.padStart(32, "0"),
    // Every reading of the clock advances it 7 ms: a deterministic round trip.
    now: () => (clock += 7),
  });
  const phases: Phase[] = [];
  s.subscribe((x) => phases.push(x.phase));
  return { s, phases };
}

describe("Session.run", () => {
  it("goes idle → running → done and records what the server returned", async () => {
    const { client, seen } = fakeClient();
    const { s, phases } = session(client);
    expect(s.phase).toBe("idle");
    const record = await s.run(PING);
    expect(phases).toEqual(["running", "done"]);
    expect(record?.phase).toBe("done");
    expect(record?.result).toEqual({
      output: "pong",
      serverTraceId: "1".padStart(32, "0"),
      durationMs: 1.5,
      tool: "ping",
      pool: "stable",
      instance: "automation-stable-0",
      pipelineInstance: "pipeline-stable-0",
      version: "1.0.0",
    });
    expect(record?.roundTripMs).toBe(7);
    expect(seen.requests[0]?.input).toBe("ping");
  });

  it("names its trace in a sampled traceparent (and x-trace-id), not in the request body", async () => {
    const { client, seen } = fakeClient();
    const { s } = session(client);
    const record = await s.run(PING);
    expect(seen.headers[0]?.get("traceparent")).toBe(`00-${record?.traceId}-${record?.parentSpanId}-01`);
    expect(record?.parentSpanId).toMatch(/^[0-9a-f]{16}$/);
    expect(seen.headers[0]?.get("x-trace-id")).toBe(record?.traceId);
    expect(seen.requests[0]?.traceId).toBe("");
  });

  it("makes a fresh trace id for every call", async () => {
    const { client, seen } = fakeClient();
    const { s } = session(client);
    await s.run(PING);
    await s.run(PING);
    expect(seen.headers.map((h) => h.get("x-trace-id"))).toEqual(["1".padStart(32, "0"), "2".padStart(32, "0")]);
  });

  it("sends the token as a bearer authorization header only when set", async () => {
    const withToken = fakeClient();
    await session(withToken.client, "  s3cret ").s.run(PING);
    expect(withToken.seen.headers[0]?.get("authorization")).toBe("Bearer s3cret");

    const without = fakeClient();
    await session(without.client, "").s.run(PING);
    expect(without.seen.headers[0]?.has("authorization")).toBe(false);
  });

  it("passes tool, platform and arguments through", async () => {
    const { client, seen } = fakeClient();
    const { s } = session(client);
    await s.run({ input: "x", tool: "delay", platform: "linux", arguments: { ms: "1" } });
    expect(seen.requests[0]).toMatchObject({ input: "x", tool: "delay", platform: "linux", arguments: { ms: "1" } });
  });

  it("goes running → error with a friendly description on a service error", async () => {
    const { client } = fakeClient();
    const { s, phases } = session(client);
    const record = await s.run({ ...PING, tool: "nmap" });
    expect(phases).toEqual(["running", "error"]);
    expect(record?.error).toMatchObject({ kind: "unknown_tool", code: "NOT_FOUND", reason: "UNKNOWN_TOOL" });
    expect(record?.error?.serverTraceId).toBe(record?.traceId);
    expect(record?.roundTripMs).toBe(7);
  });

  it("cancels a running call: the server sees the abort and the run ends cancelled", async () => {
    const { client, seen } = fakeClient();
    const { s, phases } = session(client);
    const pending = s.run({ input: "wait", tool: "delay", platform: "", arguments: { ms: "5000" } });
    expect(s.phase).toBe("running");
    // Cancel once the server is really handling the call.
    await expect.poll(() => seen.requests.length).toBe(1);
    expect(s.cancel()).toBe(true);
    const record = await pending;
    expect(record?.phase).toBe("cancelled");
    expect(record?.error?.code).toBe("CANCELLED");
    expect(phases).toEqual(["running", "cancelled"]);
    await expect.poll(() => seen.aborted).toEqual([true]);
  });

  it("has nothing to cancel when idle or finished", async () => {
    const { client } = fakeClient();
    const { s } = session(client);
    expect(s.cancel()).toBe(false);
    await s.run(PING);
    expect(s.cancel()).toBe(false);
  });

  it("treats a CANCELLED status the page did not ask for as an error", async () => {
    const { client } = fakeClient(async () => {
      throw meshError(Code.Canceled, "CANCELLED", "pipeline went away", "t");
    });
    const { s } = session(client);
    expect((await s.run(PING))?.phase).toBe("error");
  });

  it("refuses a second run while one is running, sending nothing", async () => {
    const { client, seen } = fakeClient();
    const { s } = session(client);
    const first = s.run({ input: "wait", tool: "delay", platform: "", arguments: { ms: "5000" } });
    expect(await s.run(PING)).toBeUndefined();
    s.cancel();
    await first;
    expect(seen.requests).toHaveLength(1);
  });

  it("keeps the last runs, newest first", async () => {
    const { client } = fakeClient();
    const { s } = session(client);
    for (let i = 0; i < RECENT_LIMIT + 3; i++) await s.run({ ...PING, input: `run ${i}` });
    expect(s.recent).toHaveLength(RECENT_LIMIT);
    expect(s.recent[0]?.request.input).toBe(`run ${RECENT_LIMIT + 2}`);
    expect(s.recent.at(-1)?.request.input).toBe("run 3");
  });

  it("lists the tools with their arguments", async () => {
    const { client, seen } = fakeClient();
    const { s } = session(client, "tok");
    const tools = await s.tools();
    expect(tools.map((t) => t.name)).toEqual(TOOLS.map((t) => t.name));
    expect(tools[1]?.arguments[0]).toMatchObject({ name: "ms", required: true, type: "int" });
    expect(seen.headers[0]?.get("authorization")).toBe("Bearer tok");
    expect(seen.headers[0]?.get("x-trace-id")).toMatch(/^\d{32}$/);
  });
});

describe("execute over gRPC-Web", () => {
  it("sends gRPC-Web to the service path with the call's metadata", async () => {
    const { client, sent } = wireClient(() => grpcWebOk({ output: "pong", traceId: "abc" }, {}));
    const outcome = await execute(client, PING, { traceId: "abc", token: "t" });
    expect(outcome.response.output).toBe("pong");
    expect(sent[0]?.url).toBe("http://gateway.test/opsconductor.automation.v1.AutomationService/Execute");
    expect(sent[0]?.headers.get("content-type")).toBe("application/grpc-web+proto");
    expect(sent[0]?.headers.get("x-trace-id")).toBe("abc");
    expect(sent[0]?.headers.get("authorization")).toBe("Bearer t");
  });

  it("takes the server's trace id from the x-trace-id trailer when the response field is empty", async () => {
    const { client } = wireClient(() => grpcWebOk({ output: "pong" }, { "x-trace-id": "from-trailer" }));
    expect((await execute(client, PING, { traceId: "abc" })).serverTraceId).toBe("from-trailer");
  });

  it("prefers the response field over the trailer", async () => {
    const { client } = wireClient(() => grpcWebOk({ output: "pong", traceId: "field" }, { "x-trace-id": "trailer" }));
    expect((await execute(client, PING, { traceId: "abc" })).serverTraceId).toBe("field");
  });
});

describe("callHeaders", () => {
  it("always carries the trace id and trims the token", () => {
    const headers = callHeaders("id", "  ");
    expect(headers.get("x-trace-id")).toBe("id");
    expect(headers.has("authorization")).toBe(false);
  });
});
