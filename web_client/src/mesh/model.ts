/**
 * What the mesh view shows, decided without a DOM: one refresh's readings (fetched in
 * parallel, each either data or its failure), the state of each pool, the rollout's summary
 * and the recent trace ids of each error reason.
 */

import { VIEW } from "./queries.gen.js";
import {
  PrometheusFailure,
  type Alert,
  type Exemplar,
  type InstantSample,
  type PrometheusClient,
  type RangeSeries,
} from "./prometheus.js";
import { find, lastValue, timeAxis, type Pool } from "./series.js";

export type QueryName = keyof typeof VIEW.queries;
export type TimeRange = (typeof VIEW.ranges)[number];
export type Outcome<T> = T | PrometheusFailure;

/** Queries charted over the range; the others are read at the end of it only. */
export const CHARTED: QueryName[] = ["share", "healthyHosts", "hosts", "requestRate", "successRatio", "p50", "p95", "p99"];
export const INSTANT: QueryName[] = ["budgetBurn", "cacheHitRatio", "errorsByReason", "topTools"];

export interface RolloutStep {
  weight: number;
  verdict: string;
  reasons: string[];
  canary: { calls: number; error_ratio: number | null; p99_s: number | null } | null;
  stable: { calls: number; error_ratio: number | null; p99_s: number | null } | null;
}

export interface RolloutRecord {
  running: boolean;
  outcome?: string | null;
  steps?: number[];
  weight?: number | null;
  interval_s?: number;
  updated_at?: number;
  age_s?: number;
  history?: RolloutStep[];
  error?: string;
}

export interface Snapshot {
  at: number;
  start: number;
  axis: number[];
  range: TimeRange;
  charts: Partial<Record<QueryName, Outcome<RangeSeries[]>>>;
  instants: Partial<Record<QueryName, Outcome<InstantSample[]>>>;
  exemplars: Outcome<Exemplar[]>;
  alerts: Outcome<Alert[]>;
  rollout: RolloutRecord | Error;
}

export function substitute(expr: string, range: TimeRange): string {
  return expr.split(VIEW.window).join(range.rateWindow);
}

async function settle<T>(promise: Promise<T>): Promise<Outcome<T>> {
  try {
    return await promise;
  } catch (err) {
    return err instanceof PrometheusFailure ? err : new PrometheusFailure("refused", (err as Error).message);
  }
}

/** Every reading of one refresh, evaluated at `at` (the charts' last point is exactly `at`). */
export async function readSnapshot(
  client: PrometheusClient,
  range: TimeRange,
  nowS: number,
  readRollout: () => Promise<RolloutRecord>,
): Promise<Snapshot> {
  const at = Math.floor(nowS / range.stepS) * range.stepS;
  const start = at - range.seconds;
  const expr = (name: QueryName) => substitute(VIEW.queries[name].expr, range);
  const charts = Promise.all(CHARTED.map((name) => settle(client.range(expr(name), start, at, range.stepS))));
  const instants = Promise.all(INSTANT.map((name) => settle(client.instant(expr(name), at))));
  const [chartResults, instantResults, exemplars, alerts, rollout] = await Promise.all([
    charts,
    instants,
    settle(client.exemplars(VIEW.exemplars, start, at)),
    settle(client.alerts()),
    readRollout().catch((err: Error) => err),
  ]);
  return {
    at,
    start,
    axis: timeAxis(start, at, range.stepS),
    range,
    charts: Object.fromEntries(CHARTED.map((name, i) => [name, chartResults[i]])),
    instants: Object.fromEntries(INSTANT.map((name, i) => [name, instantResults[i]])),
    exemplars,
    alerts,
    rollout,
  };
}

/** A pool's figure at the end of the range: a number, null (no data) or the failure. */
export function figure(snapshot: Snapshot, name: QueryName, pool: Pool): number | null | PrometheusFailure {
  const charted = snapshot.charts[name];
  if (charted !== undefined) {
    return charted instanceof PrometheusFailure ? charted : lastValue(find(charted, "pool", pool), snapshot.at);
  }
  const instant = snapshot.instants[name];
  if (instant === undefined || instant instanceof PrometheusFailure) return instant ?? null;
  const sample = instant.find((s) => s.labels["pool"] === pool);
  return sample === undefined || Number.isNaN(sample.value) ? null : sample.value;
}

/** ok, below SLO (more server faults than the availability objective allows), no hosts, down
 * (no healthy host), no traffic, no data, or unknown (a source failed). */
export function poolState(snapshot: Snapshot, pool: Pool): string {
  const hosts = figure(snapshot, "hosts", pool);
  const healthy = figure(snapshot, "healthyHosts", pool);
  const rate = figure(snapshot, "requestRate", pool);
  if (hosts instanceof PrometheusFailure || rate instanceof PrometheusFailure) return "unknown";
  if (hosts === 0) return "no hosts";
  if (healthy === 0) return "down";
  if (rate === null) return "no data";
  if (rate === 0) return "no traffic";
  const success = figure(snapshot, "successRatio", pool);
  if (typeof success === "number" && success < VIEW.objective) return "below SLO";
  return "ok";
}

/** The latest trace ids per "pool reason", newest first. */
export function recentTraces(exemplars: Exemplar[], perReason = 3): Map<string, string[]> {
  const sorted = [...exemplars].sort((a, b) => b.timestamp - a.timestamp);
  const traces = new Map<string, string[]>();
  for (const exemplar of sorted) {
    const id = exemplar.labels["trace_id"];
    if (!id || !/^[0-9a-f]{32}$/.test(id)) continue;
    const key = `${exemplar.seriesLabels["pool"] ?? "?"} ${exemplar.seriesLabels["error_type"] ?? "?"}`;
    const ids = traces.get(key) ?? [];
    if (ids.length < perReason && !ids.includes(id)) traces.set(key, [...ids, id]);
  }
  return traces;
}

export interface RolloutSummary {
  state: "none" | "running" | "stale" | "finished" | "error";
  headline: string;
}

/** What the rollout panel's first line says. */
export function summarizeRollout(record: RolloutRecord | Error): RolloutSummary {
  if (record instanceof Error) return { state: "error", headline: `rollout state unavailable: ${record.message}` };
  if (record.error) return { state: "error", headline: record.error };
  const steps = record.steps ?? [];
  const done = record.history?.length ?? 0;
  if (record.running) {
    const interval = record.interval_s ?? 60;
    const age = record.age_s ?? 0;
    if (age > 2 * interval + 30) {
      return { state: "stale", headline: `rollout stopped reporting ${Math.round(age)} s ago at ${record.weight ?? "?"} %` };
    }
    return { state: "running", headline: `rollout running: step ${done} of ${steps.length}, canary at ${record.weight ?? "?"} %` };
  }
  if (record.outcome) return { state: "finished", headline: `no rollout running (the last one ${record.outcome})` };
  return { state: "none", headline: "no rollout running" };
}
