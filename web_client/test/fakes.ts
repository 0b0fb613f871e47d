// Test doubles: an in-memory AutomationService (Connect's router transport) and hand-made
// gRPC-Web responses, byte for byte what Envoy's grpc_web filter sends a browser.
import { create, toBinary } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createRouterTransport, type HandlerContext } from "@connectrpc/connect";
import { type AutomationClient, automationClient, gatewayTransport } from "../src/client.js";
import { ErrorInfoSchema } from "../src/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../src/gen/google/rpc/status_pb.js";
import {
  AutomationService,
  type ExecuteRequest,
  ExecuteResponseSchema,
  type Tool,
  ToolSchema,
} from "../src/gen/opsconductor/automation/v1/automation_pb.js";

export const TOOLS: Tool[] = [
  create(ToolSchema, { name: "ping", description: "Answers pong.", platforms: ["linux"], inputHint: "ping" }),
  create(ToolSchema, {
    name: "delay",
    description: "Waits, then answers.",
    platforms: ["linux"],
    arguments: [{ name: "ms", description: "How long to wait, in ms", required: true, type: "int", defaultValue: "" }],
  }),
];

/** A service error the way the mesh's services raise it: status + ErrorInfo + trace trailer. */
export function meshError(code: Code, reason: string, message: string, traceId: string, extra: Record<string, string> = {}) {
  return new ConnectError(message, code, { "x-trace-id": traceId }, [
    { desc: ErrorInfoSchema, value: { reason, domain: "opsconductor", metadata: { ...extra, trace_id: traceId } } },
  ]);
}

export interface Seen {
  requests: ExecuteRequest[];
  headers: Headers[];
  /** Whether the server-side signal of each call was aborted when it ended. */
  aborted: boolean[];
}

/**
 * A client over an in-memory server. `execute` may be replaced per test; the default echoes
 * "pong" for "ping", waits for `arguments.ms` (or for cancellation) for "delay", and fails
 * with UNKNOWN_TOOL for anything else.
 */
export function fakeClient(
  execute?: (req: ExecuteRequest, ctx: HandlerContext) => Promise<Partial<Record<string, unknown>>>,
): { client: AutomationClient; seen: Seen } {
  const seen: Seen = { requests: [], headers: [], aborted: [] };
  const transport = createRouterTransport(({ service }) => {
    service(AutomationService, {
      async execute(req, ctx) {
        seen.requests.push(req);
        seen.headers.push(ctx.requestHeader);
        const traceId = ctx.requestHeader.get("x-trace-id") ?? "server-made";
        try {
          const fields = execute ? await execute(req, ctx) : await defaultExecute(req, ctx, traceId);
          return create(ExecuteResponseSchema, {
            success: true,
            traceId,
            tool: req.tool || "ping",
            pool: "stable",
            instance: "automation-stable-0",
            pipelineInstance: "pipeline-stable-0",
            version: "1.0.0",
            durationMs: 1.5,
            ...fields,
          });
        } finally {
          seen.aborted.push(ctx.signal.aborted);
        }
      },
      async listTools(_req, ctx) {
        seen.headers.push(ctx.requestHeader);
        return { tools: TOOLS };
      },
    });
  });
  return { client: automationClient(transport), seen };
}

async function defaultExecute(req: ExecuteRequest, ctx: HandlerContext, traceId: string) {
  if (req.tool === "" || req.tool === "ping") return { output: req.input === "ping" ? "pong" : req.input };
  if (req.tool === "delay") {
    const ms = Number(req.arguments["ms"] ?? "0");
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, ms);
      ctx.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        reject(new ConnectError("cancelled by the client", Code.Canceled));
      });
    });
    return { output: `waited ${ms} ms` };
  }
  throw meshError(Code.NotFound, "UNKNOWN_TOOL", `unknown tool "${req.tool}"`, traceId, { tool: req.tool });
}

// ---- gRPC-Web on the wire -------------------------------------------------------------

function frame(flag: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flag;
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function base64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

const GRPC_WEB = { "content-type": "application/grpc-web+proto" };

/** A successful unary reply: one message frame, then a trailer frame. */
export function grpcWebOk(fields: Record<string, unknown>, trailers: Record<string, string>): Response {
  const message = toBinary(ExecuteResponseSchema, create(ExecuteResponseSchema, fields));
  const trailerText = Object.entries({ "grpc-status": "0", ...trailers })
    .map(([key, value]) => `${key}: ${value}\r\n`)
    .join("");
  const body = concat(frame(0, message), frame(0x80, new TextEncoder().encode(trailerText)));
  return new Response(body, { status: 200, headers: GRPC_WEB });
}

/** A trailers-only error, as grpc-python behind Envoy answers: the status rides in headers. */
export function grpcWebError(code: Code, message: string, reason: string, traceId: string): Response {
  const status = create(StatusSchema, {
    code,
    message,
    details: [anyPack(ErrorInfoSchema, create(ErrorInfoSchema, { reason, domain: "opsconductor", metadata: { trace_id: traceId } }))],
  });
  return new Response(null, {
    status: 200,
    headers: {
      ...GRPC_WEB,
      "grpc-status": String(code),
      "grpc-message": encodeURIComponent(message),
      "grpc-status-details-bin": base64(toBinary(StatusSchema, status)),
      "x-trace-id": traceId,
    },
  });
}

/** A client whose every fetch is answered by `respond`, recording what was sent. */
export function wireClient(respond: (init: RequestInit) => Response | Promise<Response>) {
  const sent: { url: string; headers: Headers }[] = [];
  const fetchFn: typeof fetch = async (input, init = {}) => {
    sent.push({ url: String(input), headers: new Headers(init.headers) });
    return respond(init);
  };
  return { client: automationClient(gatewayTransport("http://gateway.test", fetchFn)), sent };
}
