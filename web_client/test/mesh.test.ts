import { describe, expect, it } from "vitest";
import { poolState, readSnapshot, recentTraces, substitute, summarizeRollout, type Snapshot } from "../src/mesh/model.js";
import { PrometheusClient, PrometheusFailure, describeFailure, type RangeSeries } from "../src/mesh/prometheus.js";
import { VIEW } from "../src/mesh/queries.gen.js";
import { align, emptyReason, formatValue, lastValue, timeAxis } from "../src/mesh/series.js";

const RANGE = VIEW.ranges[0];

function reply(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

describe("series", () => {
  it("aligns points on the time axis, NaN and missing points as gaps", () => {
    const axis = timeAxis(100, 120, 5);
    expect(axis).toEqual([100, 105, 110, 115, 120]);
    const series: RangeSeries = { labels: { pool: "stable" }, points: [[100, 1], [110, NaN], [120, 3]] };
    expect(align(series, axis)).toEqual([1, null, null, null, 3]);
    expect(lastValue(series, 120)).toBe(3);
    expect(lastValue({ labels: {}, points: [[120, NaN]] }, 120)).toBeNull();
    expect(align(undefined, axis)).toEqual([null, null, null, null, null]);
  });

  it("says why a chart is empty instead of drawing zeros", () => {
    expect(emptyReason([], "per_second")).toBe("no traffic yet");
    expect(emptyReason([], "hosts")).toMatch(/no hosts/);
    expect(emptyReason([{ labels: {}, points: [[1, NaN]] }], "ratio")).toBe("no calls in this window");
  });

  it.each([
    [0.75, "ratio", "75.00 %"],
    [1, "ratio", "100 %"],
    [0.99995, "ratio", "99.99 %"],
    [12.345, "per_second", "12.3/s"],
    [0.0042, "seconds", "4.2 ms"],
    [1.5, "seconds", "1.50 s"],
    [null, "seconds", "—"],
  ] as const)("formats %s %s as %s", (value, unit, text) => {
    expect(formatValue(value, unit)).toBe(text);
  });
});

describe("the Prometheus client", () => {
  it.each([
    [504, { status: "error", errorType: "timeout", error: "slow" }, "timeout", "query timed out"],
    [502, { status: "error", errorType: "unavailable", error: "down" }, "unavailable", "Prometheus is not reachable"],
    [503, { status: "error", errorType: "unavailable", error: "no Prometheus is configured" }, "not_configured", "no Prometheus configured"],
    [400, { status: "error", errorType: "bad_data", error: "parse error" }, "refused", "query refused: parse error"],
  ] as const)("turns HTTP %s into a %s failure", async (status, body, kind, text) => {
    const client = new PrometheusClient("api", async () => reply(status, body));
    const failure = await client.instant("up", 1).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(PrometheusFailure);
    expect((failure as PrometheusFailure).kind).toBe(kind);
    expect(describeFailure(failure as PrometheusFailure)).toBe(text);
  });

  it("reads only through the page server's forwarder", async () => {
    const asked: string[] = [];
    const client = new PrometheusClient("api/prometheus/api/v1", async (url) => {
      asked.push(String(url));
      return reply(200, { status: "success", data: { resultType: "matrix", result: [] } });
    });
    await client.range("up", 1, 2, 1);
    expect(asked).toEqual(["api/prometheus/api/v1/query_range?query=up&start=1&end=2&step=1"]);
  });
});

describe("a refresh", () => {
  it("runs the generated queries with the range's rate window, ending on a step", async () => {
    const asked: URLSearchParams[] = [];
    const client = new PrometheusClient("p", async (url) => {
      const params = new URL(String(url), "http://page/").searchParams;
      asked.push(params);
      if (String(url).includes("alerts")) return reply(200, { status: "success", data: { alerts: [] } });
      if (String(url).includes("exemplars")) return reply(200, { status: "success", data: [] });
      return reply(200, { status: "success", data: { resultType: "matrix", result: [] } });
    });
    const snapshot = await readSnapshot(client, RANGE, 1_000_003, async () => ({ running: false }));
    expect(snapshot.at % RANGE.stepS).toBe(0);
    expect(1_000_003 - snapshot.at).toBeGreaterThanOrEqual(0);
    expect(1_000_003 - snapshot.at).toBeLessThan(RANGE.stepS);
    expect(snapshot.axis.at(-1)).toBe(snapshot.at);
    const queries = asked.map((p) => p.get("query") ?? "");
    expect(queries).toContain(substitute(VIEW.queries.requestRate.expr, RANGE));
    expect(queries.every((q) => !q.includes(VIEW.window))).toBe(true);
    expect(queries.some((q) => q.includes(`[${RANGE.rateWindow}]`))).toBe(true);
  });

  it("keeps each failure with the reading it belongs to", async () => {
    const client = new PrometheusClient("p", async () => reply(504, { status: "error", errorType: "timeout" }));
    const snapshot = await readSnapshot(client, RANGE, 1_000_000, async () => ({ running: false }));
    expect(snapshot.charts.requestRate).toBeInstanceOf(PrometheusFailure);
    expect(poolState(snapshot, "stable")).toBe("unknown");
  });
});

function snapshotWith(values: Record<string, Record<string, number>>): Snapshot {
  const at = 100;
  const charts = Object.fromEntries(
    Object.entries(values).map(([name, byPool]) => [
      name,
      Object.entries(byPool).map(([pool, value]) => ({ labels: { pool }, points: [[at, value]] as [number, number][] })),
    ]),
  );
  return { at, start: 0, axis: [at], range: RANGE, charts, instants: {}, exemplars: [], alerts: [], rollout: { running: false } };
}

describe("a pool's state", () => {
  it.each([
    [{ hosts: { stable: 0 }, healthyHosts: { stable: 0 }, requestRate: {} }, "no hosts"],
    [{ hosts: { stable: 2 }, healthyHosts: { stable: 0 }, requestRate: { stable: 0 } }, "down"],
    [{ hosts: { stable: 1 }, healthyHosts: { stable: 1 }, requestRate: {} }, "no data"],
    [{ hosts: { stable: 1 }, healthyHosts: { stable: 1 }, requestRate: { stable: 0 } }, "no traffic"],
    [{ hosts: { stable: 1 }, healthyHosts: { stable: 1 }, requestRate: { stable: 4.2 } }, "ok"],
    [{ hosts: { stable: 1 }, healthyHosts: { stable: 1 }, requestRate: { stable: 4.2 }, successRatio: { stable: 0.75 } }, "below SLO"],
    [{ hosts: { stable: 1 }, healthyHosts: { stable: 1 }, requestRate: { stable: 4.2 }, successRatio: { stable: 0.9995 } }, "ok"],
  ])("%j is %s", (values, state) => {
    expect(poolState(snapshotWith(values), "stable")).toBe(state);
  });
});

describe("trace ids of errors", () => {
  it("keeps the newest ids per pool and reason, and only real trace ids", () => {
    const exemplar = (id: string, at: number, reason = "INJECTED_FAULT") => ({
      labels: { trace_id: id },
      seriesLabels: { pool: "canary", error_type: reason },
      value: 1,
      timestamp: at,
    });
    const ids = ["a", "b", "c", "d"].map((c) => c.repeat(32));
    const traces = recentTraces([exemplar(ids[0]!, 1), exemplar(ids[1]!, 3), exemplar(ids[2]!, 2), exemplar(ids[3]!, 4),
      exemplar("<script>", 5), exemplar(ids[0]!, 6, "TIMEOUT")], 3);
    expect(traces.get("canary INJECTED_FAULT")).toEqual([ids[3], ids[1], ids[2]]);
    expect(traces.get("canary TIMEOUT")).toEqual([ids[0]]);
  });
});

describe("the rollout panel", () => {
  it.each([
    [{ running: false }, "none", "no rollout running"],
    [{ running: false, outcome: "rolled back" }, "finished", "no rollout running (the last one rolled back)"],
    [{ running: true, steps: [10, 50, 100], weight: 50, interval_s: 10, age_s: 3, history: [{}, {}] }, "running",
      "rollout running: step 2 of 3, canary at 50 %"],
    [{ running: true, steps: [10], weight: 10, interval_s: 10, age_s: 120 }, "stale", "rollout stopped reporting 120 s ago at 10 %"],
    [new Error("HTTP 500"), "error", "rollout state unavailable: HTTP 500"],
  ])("%j reads %s", (record, state, headline) => {
    expect(summarizeRollout(record as never)).toEqual({ state, headline });
  });
});
