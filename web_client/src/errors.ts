/**
 * Turns whatever a call threw into a message for people, while keeping the raw gRPC status,
 * the google.rpc.ErrorInfo reason and the server's trace id for whoever debugs it.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { type ErrorInfo, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { TRACE_ID_HEADER } from "./trace.js";

/** The ErrorInfo domain the mesh's services use. */
export const ERROR_DOMAIN = "opsconductor";

/** Response header the gateway adds to its own rate-limit replies (exposed through CORS). */
export const RATE_LIMITED_HEADER = "x-ratelimited";

export type ErrorKind =
  | "validation"
  | "unknown_tool"
  | "destination_denied"
  | "timeout"
  | "unavailable"
  | "rate_limited"
  | "unauthenticated"
  | "unreachable"
  | "cancelled"
  | "internal"
  | "unexpected";

export interface FriendlyError {
  kind: ErrorKind;
  /** One sentence for people. */
  title: string;
  /** What to do about it; may be empty. */
  hint: string;
  /** Canonical gRPC code name, e.g. "NOT_FOUND" (what grpcurl and the metrics say). */
  code: string;
  /** The raw status message. */
  message: string;
  /** The ErrorInfo reason, e.g. "UNKNOWN_TOOL"; empty when the error carried none. */
  reason: string;
  /** The ErrorInfo metadata (tool, argument, trace_id...). */
  details: Record<string, string>;
  /** Trace id the server reported (trailer or ErrorInfo); empty when it never answered. */
  serverTraceId: string;
}

/** What the message may mention besides the error itself. */
export interface ErrorContext {
  gatewayUrl?: string;
  tool?: string;
}

// Connect-ES names codes in CamelCase ("Canceled"); people and tools know gRPC's names.
const CODE_NAMES: Record<Code, string> = {
  [Code.Canceled]: "CANCELLED",
  [Code.Unknown]: "UNKNOWN",
  [Code.InvalidArgument]: "INVALID_ARGUMENT",
  [Code.DeadlineExceeded]: "DEADLINE_EXCEEDED",
  [Code.NotFound]: "NOT_FOUND",
  [Code.AlreadyExists]: "ALREADY_EXISTS",
  [Code.PermissionDenied]: "PERMISSION_DENIED",
  [Code.ResourceExhausted]: "RESOURCE_EXHAUSTED",
  [Code.FailedPrecondition]: "FAILED_PRECONDITION",
  [Code.Aborted]: "ABORTED",
  [Code.OutOfRange]: "OUT_OF_RANGE",
  [Code.Unimplemented]: "UNIMPLEMENTED",
  [Code.Internal]: "INTERNAL",
  [Code.Unavailable]: "UNAVAILABLE",
  [Code.DataLoss]: "DATA_LOSS",
  [Code.Unauthenticated]: "UNAUTHENTICATED",
};

/** The canonical gRPC name of a Connect-ES code. */
export function grpcCodeName(code: Code): string {
  return CODE_NAMES[code] ?? `CODE_${code}`;
}

// The reason is more specific than the code (BAD_GATEWAY and a plain Envoy 503 share
// UNAVAILABLE), so it is looked at first.
const KIND_BY_REASON: Record<string, ErrorKind> = {
  VALIDATION_ERROR: "validation",
  UNKNOWN_TOOL: "unknown_tool",
  DESTINATION_DENIED: "destination_denied",
  TIMEOUT: "timeout",
  BAD_GATEWAY: "unavailable",
  INTERNAL_ERROR: "internal",
  INJECTED_FAULT: "internal",
  CANCELLED: "cancelled",
};

const KIND_BY_CODE: Partial<Record<Code, ErrorKind>> = {
  [Code.InvalidArgument]: "validation",
  [Code.NotFound]: "unknown_tool",
  [Code.PermissionDenied]: "destination_denied",
  [Code.DeadlineExceeded]: "timeout",
  [Code.Unavailable]: "unavailable",
  [Code.ResourceExhausted]: "rate_limited",
  [Code.Unauthenticated]: "unauthenticated",
  [Code.Canceled]: "cancelled",
  [Code.Internal]: "internal",
  [Code.DataLoss]: "internal",
};

// What browsers (Chromium, Firefox, Safari) and Node's fetch say when no HTTP answer came back:
// the gateway is down, the name does not resolve, or CORS refused the response.
const NETWORK_FAILURE = /failed to fetch|fetch failed|networkerror|load failed|network request failed/i;

/** Whether the error means no HTTP response arrived at all. */
function isNetworkFailure(err: ConnectError): boolean {
  if (err.code !== Code.Unknown) return false;
  return err.cause instanceof TypeError || NETWORK_FAILURE.test(err.rawMessage);
}

/** The mesh's ErrorInfo, else any ErrorInfo the error carries. */
function findErrorInfo(err: ConnectError): ErrorInfo | undefined {
  const infos = err.findDetails(ErrorInfoSchema);
  return infos.find((info) => info.domain === ERROR_DOMAIN) ?? infos[0];
}

function classify(err: ConnectError, reason: string): ErrorKind {
  // Envoy's rate limiter answers gRPC-Web with HTTP 429 and grpc-status UNAVAILABLE, the same
  // code as a dead upstream; only the gateway's header tells them apart.
  if (err.metadata.get(RATE_LIMITED_HEADER)?.trim().toLowerCase() === "true") return "rate_limited";
  if (isNetworkFailure(err)) return "unreachable";
  return KIND_BY_REASON[reason] ?? KIND_BY_CODE[err.code] ?? "unexpected";
}

function words(kind: ErrorKind, err: ConnectError, details: Record<string, string>, ctx: ErrorContext) {
  const gateway = ctx.gatewayUrl ? ` at ${ctx.gatewayUrl}` : "";
  const tool = details["tool"] || ctx.tool || "";
  const traceHint = "The trace id below finds this call in the service logs.";
  switch (kind) {
    case "validation":
      return {
        title: "The request is not valid.",
        hint: `Check the input and the tool's arguments. The service said: ${err.rawMessage || "(no message)"}`,
      };
    case "unknown_tool":
      return {
        title: tool ? `There is no tool named “${tool}”.` : "No tool matches this input.",
        hint: "Pick a tool from the list, or choose Auto to let the service pick one from the input.",
      };
    case "destination_denied":
      return {
        title: "That destination is not allowed.",
        hint: "Network tools may only reach the hosts and ports on the service's allowlist.",
      };
    case "timeout":
      return {
        title: "The call took too long and was stopped.",
        hint: "The tool did not finish before its deadline. Try a smaller job.",
      };
    case "unavailable":
      return {
        title: "The service is unavailable right now.",
        hint: "The gateway could not reach a healthy automation or pipeline instance. Try again in a moment.",
      };
    case "rate_limited":
      return {
        title: "Too many requests: the gateway is rate limiting.",
        hint: "Wait a few seconds before running again; the page does not retry by itself.",
      };
    case "unauthenticated":
      return {
        title: "The gateway did not accept your credentials.",
        hint: "Paste a valid token into the Token field, then run again.",
      };
    case "unreachable":
      return {
        title: `Cannot reach the gateway${gateway}.`,
        hint:
          "Check that the gateway is running and that its CORS policy allows this page's origin " +
          "(to the page, a CORS refusal looks the same as a gateway that is down).",
      };
    case "cancelled":
      return { title: "The call was cancelled.", hint: "" };
    case "internal":
      return { title: "The service failed while running the tool.", hint: traceHint };
    case "unexpected":
      return { title: `Unexpected error (${grpcCodeName(err.code)}).`, hint: traceHint };
  }
}

/** Describes any thrown value; never throws itself. */
export function describeError(thrown: unknown, ctx: ErrorContext = {}): FriendlyError {
  const err = ConnectError.from(thrown);
  const info = findErrorInfo(err);
  const details: Record<string, string> = { ...(info?.metadata ?? {}) };
  const reason = info?.reason ?? "";
  const kind = classify(err, reason);
  return {
    kind,
    ...words(kind, err, details, ctx),
    code: grpcCodeName(err.code),
    message: err.rawMessage,
    reason,
    details,
    serverTraceId: err.metadata.get(TRACE_ID_HEADER) ?? details["trace_id"] ?? "",
  };
}
