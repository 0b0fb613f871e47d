import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { execute } from "../src/client.js";
import { describeError, type ErrorKind, grpcCodeName } from "../src/errors.js";
import { fakeClient, grpcWebError, meshError, wireClient } from "./fakes.js";

const REQUEST = { input: "ping", tool: "ping", platform: "", arguments: {} };
const TRACE = "0123456789abcdef0123456789abcdef";

/** What Execute threw when the in-memory server raised `error`. */
async function thrownBy(error: ConnectError): Promise<unknown> {
  const { client } = fakeClient(async () => {
    throw error;
  });
  return execute(client, REQUEST, { traceId: TRACE }).then(
    () => expect.fail("the call should have failed"),
    (err: unknown) => err,
  );
}

describe("describeError: service errors with an ErrorInfo reason", () => {
  it.each<[string, Code, string, ErrorKind, RegExp]>([
    ["VALIDATION_ERROR", Code.InvalidArgument, "INVALID_ARGUMENT", "validation", /not valid/],
    ["UNKNOWN_TOOL", Code.NotFound, "NOT_FOUND", "unknown_tool", /no tool named “nmap”/],
    ["DESTINATION_DENIED", Code.PermissionDenied, "PERMISSION_DENIED", "destination_denied", /not allowed/],
    ["TIMEOUT", Code.DeadlineExceeded, "DEADLINE_EXCEEDED", "timeout", /took too long/],
    ["BAD_GATEWAY", Code.Unavailable, "UNAVAILABLE", "unavailable", /unavailable/],
    ["INTERNAL_ERROR", Code.Internal, "INTERNAL", "internal", /failed while running/],
    ["INJECTED_FAULT", Code.Internal, "INTERNAL", "internal", /failed while running/],
    ["CANCELLED", Code.Canceled, "CANCELLED", "cancelled", /cancelled/],
  ])("%s (%s) is %s", async (reason, code, codeName, kind, title) => {
    const thrown = await thrownBy(meshError(code, reason, `raw ${reason} message`, TRACE, { tool: "nmap" }));
    const friendly = describeError(thrown, { gatewayUrl: "http://127.0.0.1:3000" });
    expect(friendly.kind).toBe(kind);
    expect(friendly.title).toMatch(title);
    // What a person debugging needs stays visible next to the friendly words.
    expect(friendly.code).toBe(codeName);
    expect(friendly.reason).toBe(reason);
    expect(friendly.message).toBe(`raw ${reason} message`);
    expect(friendly.serverTraceId).toBe(TRACE);
    expect(friendly.details).toMatchObject({ tool: "nmap", trace_id: TRACE });
  });

  it("quotes the service's validation message in the hint", async () => {
    const thrown = await thrownBy(meshError(Code.InvalidArgument, "VALIDATION_ERROR", "input is empty", TRACE));
    expect(describeError(thrown).hint).toContain("input is empty");
  });

  it("names the requested tool when the ErrorInfo does not", async () => {
    const thrown = await thrownBy(meshError(Code.NotFound, "UNKNOWN_TOOL", "unknown tool", TRACE));
    expect(describeError(thrown, { tool: "frobnicate" }).title).toBe("There is no tool named “frobnicate”.");
    expect(describeError(thrown).title).toBe("No tool matches this input.");
  });

  it("lets the reason win over the code", async () => {
    const thrown = await thrownBy(meshError(Code.Unavailable, "TIMEOUT", "odd pairing", TRACE));
    expect(describeError(thrown).kind).toBe("timeout");
  });
});

describe("describeError: bare gRPC codes (gateway replies carry no ErrorInfo)", () => {
  it.each<[Code, ErrorKind]>([
    [Code.InvalidArgument, "validation"],
    [Code.NotFound, "unknown_tool"],
    [Code.PermissionDenied, "destination_denied"],
    [Code.DeadlineExceeded, "timeout"],
    [Code.Unavailable, "unavailable"],
    [Code.ResourceExhausted, "rate_limited"],
    [Code.Unauthenticated, "unauthenticated"],
    [Code.Canceled, "cancelled"],
    [Code.Internal, "internal"],
    [Code.Unimplemented, "unexpected"],
    [Code.Unknown, "unexpected"],
  ])("code %s is %s", async (code, kind) => {
    const friendly = describeError(await thrownBy(new ConnectError("upstream says no", code)));
    expect(friendly.kind).toBe(kind);
    expect(friendly.reason).toBe("");
    expect(friendly.message).toBe("upstream says no");
    expect(friendly.code).toBe(grpcCodeName(code));
  });

  it("spells codes the way gRPC does", () => {
    expect(grpcCodeName(Code.Canceled)).toBe("CANCELLED");
    expect(grpcCodeName(Code.DeadlineExceeded)).toBe("DEADLINE_EXCEEDED");
    expect(grpcCodeName(Code.Unauthenticated)).toBe("UNAUTHENTICATED");
  });
});

describe("describeError: what the browser sees on the wire", () => {
  it("decodes grpc-status-details-bin into the ErrorInfo (trailers-only reply)", async () => {
    const { client } = wireClient(() => grpcWebError(Code.NotFound, 'unknown tool "nmap"', "UNKNOWN_TOOL", TRACE));
    const thrown = await execute(client, { ...REQUEST, tool: "nmap" }, { traceId: TRACE }).catch((e: unknown) => e);
    const friendly = describeError(thrown, { tool: "nmap" });
    expect(friendly).toMatchObject({
      kind: "unknown_tool",
      code: "NOT_FOUND",
      reason: "UNKNOWN_TOOL",
      message: 'unknown tool "nmap"',
      serverTraceId: TRACE,
      title: "There is no tool named “nmap”.",
    });
  });

  it("reads Envoy's rate-limit reply (HTTP 429, UNAVAILABLE, x-ratelimited) as rate limited, and never retries it", async () => {
    const { client, sent } = wireClient(
      () => new Response(null, { status: 429, headers: { "grpc-status": "14", "x-ratelimited": "true" } }),
    );
    const thrown = await execute(client, REQUEST, { traceId: TRACE }).catch((e: unknown) => e);
    const friendly = describeError(thrown);
    expect(friendly.kind).toBe("rate_limited");
    expect(friendly.code).toBe("UNAVAILABLE");
    expect(friendly.title).toMatch(/rate limiting/);
    expect(sent).toHaveLength(1);
  });

  it("reads a 429 without the gateway's header as plain unavailable", async () => {
    const { client } = wireClient(() => new Response(null, { status: 429 }));
    const friendly = describeError(await execute(client, REQUEST, { traceId: TRACE }).catch((e: unknown) => e));
    expect(friendly.kind).toBe("unavailable");
    expect(friendly.message).toBe("HTTP 429");
  });

  it("reads Envoy's 'no healthy upstream' as service unavailable", async () => {
    const { client } = wireClient(
      () =>
        new Response(null, {
          status: 200,
          headers: { "content-type": "application/grpc-web+proto", "grpc-status": "14", "grpc-message": "no healthy upstream" },
        }),
    );
    const friendly = describeError(await execute(client, REQUEST, { traceId: TRACE }).catch((e: unknown) => e));
    expect(friendly).toMatchObject({ kind: "unavailable", code: "UNAVAILABLE", message: "no healthy upstream", serverTraceId: "" });
  });

  it("reads a 401 from the gateway's auth filter as unauthenticated", async () => {
    const { client } = wireClient(() => new Response(null, { status: 401 }));
    const friendly = describeError(await execute(client, REQUEST, { traceId: TRACE }).catch((e: unknown) => e));
    expect(friendly).toMatchObject({ kind: "unauthenticated", code: "UNAUTHENTICATED" });
  });

  it("reads a failed fetch as the gateway being unreachable, naming the gateway", async () => {
    const { client } = wireClient(() => {
      throw new TypeError("Failed to fetch");
    });
    const thrown = await execute(client, REQUEST, { traceId: TRACE }).catch((e: unknown) => e);
    const friendly = describeError(thrown, { gatewayUrl: "http://127.0.0.1:3000" });
    expect(friendly.kind).toBe("unreachable");
    expect(friendly.title).toBe("Cannot reach the gateway at http://127.0.0.1:3000.");
    expect(friendly.code).toBe("UNKNOWN");
    expect(friendly.message).toBe("Failed to fetch");
  });

  it("does not mistake an UNKNOWN status from the server for a network failure", async () => {
    const { client } = wireClient(
      () =>
        new Response(null, {
          status: 200,
          headers: { "content-type": "application/grpc-web+proto", "grpc-status": "2", "grpc-message": "boom" },
        }),
    );
    const friendly = describeError(await execute(client, REQUEST, { traceId: TRACE }).catch((e: unknown) => e));
    expect(friendly.kind).toBe("unexpected");
  });

  it("describes values that are not errors at all", () => {
    expect(describeError("weird")).toMatchObject({ kind: "unexpected", code: "UNKNOWN", message: "weird" });
  });
});
