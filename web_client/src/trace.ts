/** Trace ids the page makes for each call: 32 lowercase hex characters, a valid W3C trace id. */

/** The metadata key the mesh reads the trace id from (request and trailing metadata). */
export const TRACE_ID_HEADER = "x-trace-id";

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
  for (;;) {
    const bytes = fill(new Uint8Array(16));
    const id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    if (id !== ALL_ZERO) return id;
  }
}

/** Whether `id` has the shape this page makes (other clients may send other valid ids). */
export function isPageTraceId(id: string): boolean {
  return TRACE_ID.test(id) && id !== ALL_ZERO;
}
