import { describe, expect, it } from "vitest";
import { isPageTraceId, newSpanId, newTraceId, traceparent } from "../src/trace.js";

describe("newTraceId", () => {
  it("makes 32 lowercase hex characters from crypto.getRandomValues", () => {
    const id = newTraceId();
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(isPageTraceId(id)).toBe(true);
  });

  it("differs call to call", () => {
    const ids = new Set(Array.from({ length: 200 }, () => newTraceId()));
    expect(ids.size).toBe(200);
  });

  it("encodes every byte as two hex digits, leading zeros kept", () => {
    const id = newTraceId((bytes) => bytes.fill(0x0a));
    expect(id).toBe("0a".repeat(16));
  });

  it("never returns the all-zero id W3C reserves", () => {
    let draws = 0;
    const id = newTraceId((bytes) => {
      draws += 1;
      return bytes.fill(draws === 1 ? 0 : 0xff);
    });
    expect(draws).toBe(2);
    expect(id).toBe("f".repeat(32));
  });
});

describe("isPageTraceId", () => {
  it.each(["", "ABCDEF0123456789abcdef0123456789", "abc", "0".repeat(32), `${"a".repeat(32)}0`])(
    "rejects %j",
    (id) => expect(isPageTraceId(id)).toBe(false),
  );
});

describe("traceparent", () => {
  it("names the page's trace with the sampled flag set", () => {
    const spanId = newSpanId();
    expect(spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(traceparent("a".repeat(32), spanId)).toBe(`00-${"a".repeat(32)}-${spanId}-01`);
  });

  it("never makes the all-zero span id", () => {
    let draws = 0;
    const id = newSpanId((bytes) => bytes.fill(draws++ === 0 ? 0 : 1));
    expect(id).toBe("01".repeat(8));
  });
});
