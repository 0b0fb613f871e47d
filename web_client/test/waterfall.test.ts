import { describe, expect, it } from "vitest";
import {
  bars,
  formatDuration,
  isSettled,
  lookUpTrace,
  MIN_BAR_PERCENT,
  parseWaterfall,
  POLL_DEADLINE_MS,
  shortName,
} from "../src/waterfall.js";

const TRACE = "0af7651916cd43dd8448eb211c80319c";

function span(id: string, parent: string, depth: number, offset: number, duration: number, extra: object = {}) {
  return {
    span_id: id, parent_span_id: parent, depth, service: depth === 0 ? "gateway" : "automation",
    name: "/opsconductor.automation.v1.AutomationService/Execute", kind: "SERVER", offset_ms: offset,
    duration_ms: duration, self_ms: duration / 2, status: "UNSET", status_message: "", outcome: "OK", reason: "",
    attributes: {}, slowest: false, ...extra,
  };
}

function answer(extra: object = {}) {
  return {
    trace_id: TRACE, duration_ms: 10, services: ["automation", "gateway"], complete: true,
    root_parent_span_id: "b7ad6b7169203331",
    spans: [span("a1", "b7ad6b7169203331", 0, 0, 10), span("b2", "a1", 1, 2, 5, { slowest: true })],
    ...extra,
  };
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

describe("parseWaterfall", () => {
  it("takes the server's answer into the page's terms", () => {
    const waterfall = parseWaterfall(answer());
    expect(waterfall.spans.map((s) => [s.spanId, s.depth, s.slowest])).toEqual([["a1", 0, false], ["b2", 1, true]]);
    expect(waterfall.rootParentSpanId).toBe("b7ad6b7169203331");
  });

  it("marks failed spans by status or by a gRPC outcome other than OK", () => {
    const waterfall = parseWaterfall(answer({ spans: [span("a", "", 0, 0, 1, { outcome: "NOT_FOUND", reason: "UNKNOWN_TOOL" })] }));
    expect(waterfall.spans[0]?.error).toBe(true);
    expect(waterfall.spans[0]?.reason).toBe("UNKNOWN_TOOL");
  });

  it.each([null, {}, { spans: "x" }, { ...answer(), spans: [{ span_id: 1 }] }])("rejects %j", (raw) => {
    expect(() => parseWaterfall(raw)).toThrow();
  });
});

describe("isSettled", () => {
  it("needs the store's complete tree rooted under the span this page sent", () => {
    const waterfall = parseWaterfall(answer());
    expect(isSettled(waterfall, "b7ad6b7169203331")).toBe(true);
    expect(isSettled(waterfall, "ffffffffffffffff")).toBe(false);
    expect(isSettled(parseWaterfall(answer({ complete: false })), "b7ad6b7169203331")).toBe(false);
    expect(isSettled(waterfall)).toBe(true);
  });
});

describe("bars", () => {
  it("places each span to scale within the trace, never narrower than the minimum", () => {
    const waterfall = parseWaterfall(answer({ spans: [span("a", "", 0, 0, 10), span("b", "a", 1, 2, 5), span("c", "b", 2, 9.99, 0.001)] }));
    expect(bars(waterfall)).toEqual([
      { leftPercent: 0, widthPercent: 100 },
      { leftPercent: 20, widthPercent: 50 },
      { leftPercent: 100 - MIN_BAR_PERCENT, widthPercent: MIN_BAR_PERCENT },
    ]);
  });
});

describe("lookUpTrace", () => {
  function clock() {
    let now = 0;
    return { now: () => now, sleep: async (ms: number) => void (now += ms) };
  }

  it("polls through 404s and incomplete answers until the trace settles", async () => {
    const answers = [json(404, { error: "none yet" }), json(200, answer({ complete: false })), json(200, answer())];
    const urls: string[] = [];
    const lookup = await lookUpTrace(TRACE, {
      ...clock(), parentSpanId: "b7ad6b7169203331", baseUrl: "http://page.example/sandbox/",
      fetchFn: async (url) => {
        urls.push(String(url));
        return answers.shift() ?? json(500, {});
      },
    });
    expect(lookup.kind).toBe("shown");
    expect(lookup.kind === "shown" && lookup.settled).toBe(true);
    expect(urls).toEqual(Array(3).fill(`http://page.example/sandbox/api/traces/${TRACE}`));
  });

  it("gives up at the deadline: missing when never found, unsettled when partly", async () => {
    const never = await lookUpTrace(TRACE, { ...clock(), baseUrl: "http://p/", fetchFn: async () => json(404, {}) });
    expect(never.kind).toBe("missing");
    let calls = 0;
    const partly = await lookUpTrace(TRACE, {
      ...clock(), baseUrl: "http://p/", parentSpanId: "0000000000000001",
      fetchFn: async () => (calls++, json(200, answer())),
    });
    expect(partly.kind === "shown" && !partly.settled).toBe(true);
    expect(calls).toBeGreaterThan(POLL_DEADLINE_MS / 1000);
  });

  it("reports a store that does not answer, with the server's reason", async () => {
    const lookup = await lookUpTrace(TRACE, { ...clock(), baseUrl: "http://p/", fetchFn: async () => json(503, { error: "the trace store does not answer" }) });
    expect(lookup).toEqual({ kind: "unavailable", message: "the trace store does not answer" });
  });
});

describe("labels", () => {
  it("shortens gRPC paths and formats durations", () => {
    expect(shortName("/opsconductor.pipeline.v1.PipelineService/Execute")).toBe("PipelineService/Execute");
    expect(shortName("run echo")).toBe("run echo");
    expect([formatDuration(0.4221), formatDuration(12.34), formatDuration(1500)]).toEqual(["0.42 ms", "12.3 ms", "1.50 s"]);
  });
});
