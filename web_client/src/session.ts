/**
 * The page's client logic without the DOM: runs Execute calls one at a time, follows the
 * state machine, measures round trips, keeps the recent runs, and cancels on request.
 */
import type { Tool } from "./gen/opsconductor/automation/v1/automation_pb.js";
import { type AutomationClient, type ExecuteInput, execute, listTools } from "./client.js";
import { describeError, type FriendlyError } from "./errors.js";
import { type Phase, transition } from "./state.js";
import { newSpanId, newTraceId } from "./trace.js";

/** How many finished runs the page remembers. */
export const RECENT_LIMIT = 10;

/** What the result panel shows for a successful call. */
export interface RunResult {
  output: string;
  serverTraceId: string;
  durationMs: number;
  tool: string;
  pool: string;
  instance: string;
  pipelineInstance: string;
  version: string;
}

export interface RunRecord {
  id: number;
  /** The trace id this page made and sent in traceparent (and x-trace-id). */
  traceId: string;
  /** The parent span id sent in traceparent: the gateway's span is its child. */
  parentSpanId: string;
  request: ExecuteInput;
  startedAt: Date;
  phase: Phase;
  /** Wall time from sending to the answer (or the error), in milliseconds. */
  roundTripMs?: number;
  result?: RunResult;
  error?: FriendlyError;
}

export interface SessionOptions {
  gatewayUrl: string;
  timeoutMs: number;
  /** Read at each call, so a token typed after start applies at once. */
  token?: () => string;
  makeTraceId?: () => string;
  makeSpanId?: () => string;
  now?: () => number;
}

type Listener = (session: Session) => void;

export class Session {
  phase: Phase = "idle";
  /** The run in flight, or the last one that ended. */
  current: RunRecord | undefined;
  /** Finished runs, newest first. */
  recent: RunRecord[] = [];

  private nextId = 1;
  private controller: AbortController | undefined;
  private readonly listeners = new Set<Listener>();
  private readonly token: () => string;
  private readonly makeTraceId: () => string;
  private readonly makeSpanId: () => string;
  private readonly now: () => number;

  constructor(
    private readonly client: AutomationClient,
    private readonly options: SessionOptions,
  ) {
    this.token = options.token ?? (() => "");
    this.makeTraceId = options.makeTraceId ?? (() => newTraceId());
    this.makeSpanId = options.makeSpanId ?? (() => newSpanId());
    this.now = options.now ?? (() => performance.now());
  }

  /** Calls `listener` after every change; returns the unsubscribe function. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get running(): boolean {
    return this.phase === "running";
  }

  /**
   * Runs one call and resolves with its record once it has ended (never rejects: failures are
   * recorded). Resolves undefined, and sends nothing, while another call is running.
   */
  async run(request: ExecuteInput): Promise<RunRecord | undefined> {
    if (this.running) return undefined;
    const controller = new AbortController();
    const record: RunRecord = {
      id: this.nextId++,
      traceId: this.makeTraceId(),
      parentSpanId: this.makeSpanId(),
      request: { ...request, arguments: { ...request.arguments } },
      startedAt: new Date(),
      phase: "running",
    };
    this.phase = transition(this.phase, "start");
    this.current = record;
    this.controller = controller;
    this.emit();

    const started = this.now();
    try {
      const { response, serverTraceId } = await execute(this.client, record.request, {
        traceId: record.traceId,
        parentSpanId: record.parentSpanId,
        token: this.token(),
        signal: controller.signal,
        timeoutMs: this.options.timeoutMs,
      });
      record.roundTripMs = this.now() - started;
      record.result = {
        output: response.output,
        serverTraceId,
        durationMs: response.durationMs,
        tool: response.tool,
        pool: response.pool,
        instance: response.instance,
        pipelineInstance: response.pipelineInstance,
        version: response.version,
      };
      this.finish(record, "succeed");
    } catch (err) {
      record.roundTripMs = this.now() - started;
      record.error = describeError(err, { gatewayUrl: this.options.gatewayUrl, tool: request.tool });
      // Only an abort this page asked for counts as "cancelled"; a CANCELLED status the server
      // chose on its own is an error worth showing as one.
      const userCancelled = controller.signal.aborted && record.error.kind === "cancelled";
      this.finish(record, userCancelled ? "cancel" : "fail");
    }
    return record;
  }

  /** Aborts the running call (the server sees CANCELLED); false when nothing is running. */
  cancel(): boolean {
    if (!this.running || this.controller === undefined) return false;
    this.controller.abort();
    return true;
  }

  /** The tool catalogue; each call gets its own trace id too. */
  async tools(signal?: AbortSignal): Promise<Tool[]> {
    return listTools(this.client, { traceId: this.makeTraceId(), token: this.token(), signal });
  }

  private finish(record: RunRecord, event: "succeed" | "fail" | "cancel"): void {
    this.phase = transition(this.phase, event);
    record.phase = this.phase;
    this.controller = undefined;
    this.recent = [record, ...this.recent].slice(0, RECENT_LIMIT);
    this.emit();
  }

  private emit(): void {
    for (const listener of this.listeners) listener(this);
  }
}
