/**
 * A call's trace as the page's server answers it (api/traces/<trace id>, from the trace
 * store): checked, polled until the spans of every hop have arrived, and laid out as bars
 * to scale. No DOM here; waterfall-view.ts draws it.
 */

/** Where the page's own server answers trace lookups (relative to the page). */
export const TRACE_API = "api/traces/";
/** Spans reach the store within about a second of the call (export batching): poll that long and a bit. */
export const POLL_INTERVAL_MS = 300;
export const POLL_DEADLINE_MS = 6000;
/** The narrowest bar drawn, in percent of the trace, so sub-millisecond spans stay visible. */
export const MIN_BAR_PERCENT = 0.6;

export interface WaterfallSpan {
  spanId: string;
  parentSpanId: string;
  depth: number;
  service: string;
  name: string;
  kind: string;
  offsetMs: number;
  durationMs: number;
  selfMs: number;
  /** The gRPC status name ("OK", "NOT_FOUND"…), else OK or ERROR. */
  outcome: string;
  /** The ErrorInfo reason of a failed span ("UNKNOWN_TOOL"…), or "". */
  reason: string;
  statusMessage: string;
  error: boolean;
  /** The span with the most time of its own (not spent in its children). */
  slowest: boolean;
  attributes: Record<string, string | number | boolean>;
}

export interface Waterfall {
  traceId: string;
  durationMs: number;
  services: string[];
  complete: boolean;
  rootParentSpanId: string;
  spans: WaterfallSpan[];
}

export type TraceLookup =
  | { kind: "shown"; waterfall: Waterfall; settled: boolean }
  | { kind: "missing" }
  | { kind: "unavailable"; message: string };

export class WaterfallError extends Error {}

function text(value: unknown, field: string): string {
  if (typeof value !== "string") throw new WaterfallError(`trace answer: ${field} is not a string`);
  return value;
}

function number(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isFinite(value)) throw new WaterfallError(`trace answer: ${field} is not a number`);
  return value;
}

/** Checks the server's JSON and renames it into the page's terms. */
export function parseWaterfall(raw: unknown): Waterfall {
  if (typeof raw !== "object" || raw === null) throw new WaterfallError("trace answer is not an object");
  const r = raw as Record<string, unknown>;
  if (!Array.isArray(r["spans"])) throw new WaterfallError("trace answer has no spans");
  const spans = (r["spans"] as unknown[]).map((item, i): WaterfallSpan => {
    const s = (item ?? {}) as Record<string, unknown>;
    const attributes = typeof s["attributes"] === "object" && s["attributes"] !== null ? s["attributes"] : {};
    return {
      spanId: text(s["span_id"], `spans[${i}].span_id`),
      parentSpanId: text(s["parent_span_id"], `spans[${i}].parent_span_id`),
      depth: number(s["depth"], `spans[${i}].depth`),
      service: text(s["service"], `spans[${i}].service`),
      name: text(s["name"], `spans[${i}].name`),
      kind: text(s["kind"], `spans[${i}].kind`),
      offsetMs: number(s["offset_ms"], `spans[${i}].offset_ms`),
      durationMs: number(s["duration_ms"], `spans[${i}].duration_ms`),
      selfMs: number(s["self_ms"], `spans[${i}].self_ms`),
      outcome: text(s["outcome"], `spans[${i}].outcome`),
      reason: text(s["reason"] ?? "", `spans[${i}].reason`),
      statusMessage: text(s["status_message"] ?? "", `spans[${i}].status_message`),
      error: s["status"] === "ERROR" || (s["outcome"] !== "OK" && s["outcome"] !== undefined),
      slowest: s["slowest"] === true,
      attributes: attributes as Record<string, string | number | boolean>,
    };
  });
  return {
    traceId: text(r["trace_id"], "trace_id"),
    durationMs: number(r["duration_ms"], "duration_ms"),
    services: Array.isArray(r["services"]) ? (r["services"] as unknown[]).map(String) : [],
    complete: r["complete"] === true,
    rootParentSpanId: typeof r["root_parent_span_id"] === "string" ? r["root_parent_span_id"] : "",
    spans,
  };
}

/**
 * Whether every hop has reported: the store finds the tree complete, and its root is the
 * gateway's span under the parent span id this page sent (so no upper part is still missing).
 */
export function isSettled(waterfall: Waterfall, parentSpanId = ""): boolean {
  return waterfall.complete && (parentSpanId === "" || waterfall.rootParentSpanId === parentSpanId);
}

export interface LookupOptions {
  parentSpanId?: string;
  fetchFn?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  signal?: AbortSignal;
  baseUrl?: string;
}

/** Looks the trace up, polling until it has settled or the deadline passes. */
export async function lookUpTrace(traceId: string, options: LookupOptions = {}): Promise<TraceLookup> {
  const fetchFn = options.fetchFn ?? ((...args) => fetch(...args));
  const sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  const now = options.now ?? (() => performance.now());
  const url = new URL(`${TRACE_API}${encodeURIComponent(traceId)}`, options.baseUrl ?? location.href).href;
  const deadline = now() + POLL_DEADLINE_MS;
  let last: Waterfall | undefined;
  for (;;) {
    let response: Response;
    try {
      response = await fetchFn(url, { cache: "no-store", signal: options.signal });
    } catch (err) {
      if (options.signal?.aborted) throw err;
      return { kind: "unavailable", message: `the page's server does not answer (${(err as Error).message})` };
    }
    if (response.ok) {
      last = parseWaterfall(await response.json());
      if (isSettled(last, options.parentSpanId)) return { kind: "shown", waterfall: last, settled: true };
    } else if (response.status !== 404) {
      const body = (await response.json().catch(() => ({}))) as { error?: unknown };
      return { kind: "unavailable", message: typeof body.error === "string" ? body.error : `HTTP ${response.status}` };
    }
    if (now() >= deadline) {
      return last === undefined ? { kind: "missing" } : { kind: "shown", waterfall: last, settled: false };
    }
    await sleep(POLL_INTERVAL_MS);
  }
}

export interface Bar {
  leftPercent: number;
  widthPercent: number;
}

/** Each span's bar: its start and length as percentages of the whole trace, kept inside it. */
export function bars(waterfall: Waterfall): Bar[] {
  const total = waterfall.durationMs > 0 ? waterfall.durationMs : 1;
  return waterfall.spans.map((span) => {
    const width = Math.max((span.durationMs / total) * 100, MIN_BAR_PERCENT);
    const left = Math.min(Math.max((span.offsetMs / total) * 100, 0), 100 - width);
    return { leftPercent: round(left), widthPercent: round(width) };
  });
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

/** A span's name as a row shows it: gRPC paths lose their package ("AutomationService/Execute"). */
export function shortName(name: string): string {
  const match = /^\/?(?:[\w]+\.)*(\w+\/\w+)$/.exec(name);
  return match?.[1] ?? name;
}

/** "0.42 ms", "12.3 ms", "1.24 s". */
export function formatDuration(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return ms < 10 ? `${ms.toFixed(2)} ms` : `${ms.toFixed(1)} ms`;
}
