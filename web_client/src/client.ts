/** Calls AutomationService over gRPC-Web with the metadata every call from this page carries. */
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import {
  AutomationService,
  type ExecuteResponse,
  type Tool,
} from "./gen/opsconductor/automation/v1/automation_pb.js";
import { TRACE_ID_HEADER, TRACEPARENT_HEADER, traceparent } from "./trace.js";

export type AutomationClient = Client<typeof AutomationService>;

/** ListTools is a small catalogue read; it should answer well within this. */
export const LIST_TOOLS_TIMEOUT_MS = 10_000;

/** A transport speaking gRPC-Web (binary) to the gateway, as Envoy's grpc_web filter expects. */
export function gatewayTransport(gatewayUrl: string, fetchFn?: typeof fetch): Transport {
  return createGrpcWebTransport({ baseUrl: gatewayUrl, useBinaryFormat: true, fetch: fetchFn });
}

export function automationClient(transport: Transport): AutomationClient {
  return createClient(AutomationService, transport);
}

/** What the form asks for. */
export interface ExecuteInput {
  input: string;
  /** Catalogue name; empty lets the service's selector choose. */
  tool: string;
  platform: string;
  arguments: Record<string, string>;
}

export interface CallSettings {
  traceId: string;
  /** The span id sent as the trace's parent (the page's own place in the trace). */
  parentSpanId?: string;
  /** Bearer token; sent only when non-empty. */
  token?: string;
  signal?: AbortSignal;
  timeoutMs?: number;
}

/**
 * The request metadata of one call: its trace context (traceparent when a parent span id is
 * given, and x-trace-id) and, when set, the bearer token.
 */
export function callHeaders(traceId: string, token = "", parentSpanId = ""): Headers {
  const headers = new Headers({ [TRACE_ID_HEADER]: traceId });
  if (parentSpanId !== "") headers.set(TRACEPARENT_HEADER, traceparent(traceId, parentSpanId));
  const trimmed = token.trim();
  if (trimmed !== "") headers.set("authorization", `Bearer ${trimmed}`);
  return headers;
}

export interface ExecuteOutcome {
  response: ExecuteResponse;
  /** The trace id the server reports: the response field, else its x-trace-id trailer. */
  serverTraceId: string;
}

/**
 * One Execute call. The trace id goes in metadata only, so the server's own precedence
 * (field, then x-trace-id, then traceparent) is what the page exercises.
 */
export async function execute(
  client: AutomationClient,
  input: ExecuteInput,
  settings: CallSettings,
): Promise<ExecuteOutcome> {
  let trailerTraceId = "";
  const response = await client.execute(
    { input: input.input, tool: input.tool, platform: input.platform, arguments: input.arguments },
    {
      headers: callHeaders(settings.traceId, settings.token, settings.parentSpanId),
      signal: settings.signal,
      timeoutMs: settings.timeoutMs,
      onTrailer: (trailers) => {
        trailerTraceId = trailers.get(TRACE_ID_HEADER) ?? "";
      },
    },
  );
  return { response, serverTraceId: response.traceId || trailerTraceId };
}

/** The tool catalogue, in catalogue order. */
export async function listTools(
  client: AutomationClient,
  settings: CallSettings,
): Promise<Tool[]> {
  const response = await client.listTools(
    {},
    {
      headers: callHeaders(settings.traceId, settings.token),
      signal: settings.signal,
      timeoutMs: settings.timeoutMs ?? LIST_TOOLS_TIMEOUT_MS,
    },
  );
  return response.tools;
}
