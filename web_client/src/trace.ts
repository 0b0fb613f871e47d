/**
 * Trace context the page makes for each call: a W3C trace id (32 lowercase hex) and parent span
 * id, sent as `traceparent` with the sampled flag set, so the gateway traces every run of this
 * page whatever its sampling rate, and the trace's id is the one this page made.
 */

/** The trailer the mesh reports a call's trace id in (also sent, for older gateways). */
export const TRACE_ID_HEADER = "x-trace-id";
/** The W3C trace-context header that names the call's trace. */
export const TRACEPARENT_HEADER = "traceparent";

const TRACE_ID = /^[0-9a-f]{32}$/;
const ALL_ZERO = "0".repeat(32);

/** Fills a buffer with random bytes; injectable so tests can be deterministic. */
export type RandomFill = (bytes: Uint8Array) => Uint8Array;

const cryptoFill: RandomFill = (bytes) => crypto.getRandomValues(bytes);

/**
 * A new trace id from 16 random bytes. W3C forbids the all-zero id (it means "no trace"),
 * so that one draw is retried rather than sent.
 */
export function newTraceId(fill: RandomFill = cryptoFill): string {
  return randomHex(16, fill);
}

/** A new parent span id: 16 lowercase hex characters, never all zero. */
export function newSpanId(fill: RandomFill = cryptoFill): string {
  return randomHex(8, fill);
}

function randomHex(size: number, fill: RandomFill): string {
  for (;;) {
    const bytes = fill(new Uint8Array(size));
    const id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    if (!/^0+$/.test(id)) return id;
  }
}

/** `00-<trace id>-<parent span id>-01`: version 00, sampled. */
export function traceparent(traceId: string, parentSpanId: string): string {
  return `00-${traceId}-${parentSpanId}-01`;
}

/** Whether `id` has the shape this page makes (other clients may send other valid ids). */
export function isPageTraceId(id: string): boolean {
  return TRACE_ID.test(id) && id !== ALL_ZERO;
}
