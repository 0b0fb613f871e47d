/** DOM wiring of the Exec Sandbox page. Logic it relies on lives in session, errors and highlight. */
import { automationClient, type ExecuteInput, gatewayTransport } from "./client.js";
import { type AppConfig, loadConfig } from "./config.js";
import { describeError } from "./errors.js";
import type { Tool, ToolArgument } from "./gen/opsconductor/automation/v1/automation_pb.js";
import { prettyJson, tokenizeJson } from "./highlight.js";
import { type RunRecord, Session } from "./session.js";
import { lookUpTrace } from "./waterfall.js";
import { type TimelineState, TimelineView } from "./waterfall-view.js";

const TOKEN_KEY = "opsconductor.exec-sandbox.token";
const OTHER_TOOL = "__other__";
const DEFAULT_INPUT_HINT = "Text the tool works on, e.g. “ping” or “localhost:22”.";
// Patterns the contract documents for ToolArgument.type; "string" takes anything.
const ARGUMENT_PATTERNS: Record<string, string> = { int: "-?[0-9]+", float: "-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?" };
const TRACE_LINK = /^[0-9a-f]{32}$/;

function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`the page has no #${id}`);
  return element as T;
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<Record<string, string>> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value !== undefined) node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

function formatMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return "—";
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** sessionStorage can throw (storage disabled, quota); the token is a convenience, not state. */
function readToken(): string {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return "";
  }
}

function writeToken(token: string): void {
  try {
    if (token === "") sessionStorage.removeItem(TOKEN_KEY);
    else sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    // Not persisted; the field still holds the token for this page view.
  }
}

async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No async clipboard (insecure origin, permission): fall back to a selection copy.
    const scratch = element("textarea", { readonly: "", "aria-hidden": "true", class: "offscreen" }, text);
    document.body.append(scratch);
    scratch.select();
    const copied = document.execCommand("copy");
    scratch.remove();
    return copied;
  }
}

class Page {
  private readonly form = byId<HTMLFormElement>("run-form");
  private readonly input = byId<HTMLInputElement>("input");
  private readonly inputHint = byId("input-hint");
  private readonly toolSelect = byId<HTMLSelectElement>("tool");
  private readonly toolDescription = byId("tool-description");
  private readonly toolsStatus = byId("tools-status");
  private readonly toolsRetry = byId<HTMLButtonElement>("tools-retry");
  private readonly toolOtherField = byId("tool-other-field");
  private readonly toolOther = byId<HTMLInputElement>("tool-other");
  private readonly argumentsSet = byId<HTMLFieldSetElement>("arguments");
  private readonly argumentFields = byId("argument-fields");
  private readonly platform = byId<HTMLInputElement>("platform");
  private readonly token = byId<HTMLInputElement>("token");
  private readonly executeButton = byId<HTMLButtonElement>("execute");
  private readonly cancelButton = byId<HTMLButtonElement>("cancel");
  private readonly runStatus = byId("run-status");
  private readonly result = byId("result");
  private readonly summary = byId("result-summary");
  private readonly errorBox = byId("error");
  private readonly errorTitle = byId("error-title");
  private readonly errorHint = byId("error-hint");
  private readonly output = byId("output");
  private readonly outputCode = byId("output-code");
  private readonly facts = byId<HTMLDListElement>("facts");
  private readonly recentList = byId<HTMLOListElement>("recent");
  private readonly recentEmpty = byId("recent-empty");
  private readonly timeline = new TimelineView(byId("waterfall"));
  /** Each finished run's timeline, by run id, so a recalled run shows its own again. */
  private readonly timelines = new Map<number, TimelineState>();

  private tools: Tool[] = [];
  private shown: RunRecord | undefined;
  private lastCurrentId = 0;

  constructor(
    private readonly root: HTMLElement,
    private readonly config: AppConfig,
    private readonly session: Session,
  ) {}

  async start(): Promise<void> {
    byId("gateway-url").textContent = this.config.gatewayUrl;
    this.token.value = readToken();
    this.token.addEventListener("input", () => writeToken(this.token.value.trim()));
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.session.run(this.request());
    });
    this.cancelButton.addEventListener("click", () => this.session.cancel());
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.session.cancel()) event.preventDefault();
    });
    this.toolSelect.addEventListener("change", () => this.showTool());
    this.toolsRetry.addEventListener("click", () => void this.loadTools());
    this.session.subscribe(() => this.render());
    this.render();
    this.openLinkedTrace();
    await this.loadTools();
  }

  /** Fills the tool selector; a failure leaves Auto and "Other" usable. */
  private async loadTools(): Promise<void> {
    this.root.dataset["tools"] = "loading";
    this.toolsStatus.textContent = "Loading tools…";
    this.toolsRetry.hidden = true;
    try {
      this.tools = await this.session.tools();
      this.toolsStatus.textContent = "";
      this.root.dataset["tools"] = "loaded";
    } catch (err) {
      const problem = describeError(err, { gatewayUrl: this.config.gatewayUrl });
      this.toolsStatus.textContent =
        `Could not load the tool list: ${problem.title} (${problem.code}` +
        `${problem.message ? `: ${problem.message}` : ""})`;
      this.toolsRetry.hidden = false;
      this.root.dataset["tools"] = "error";
    }
    this.fillToolSelect();
  }

  private fillToolSelect(): void {
    const previous = this.toolSelect.value;
    const options = [
      element("option", { value: "" }, "Auto (chosen from the input)"),
      ...this.tools.map((tool) => element("option", { value: tool.name }, tool.name)),
      element("option", { value: OTHER_TOOL }, "Other…"),
    ];
    this.toolSelect.replaceChildren(...options);
    if (options.some((option) => option.value === previous)) this.toolSelect.value = previous;
    this.showTool();
  }

  /** Shows the chosen tool's description, input hint and argument fields. */
  private showTool(): void {
    const choice = this.toolSelect.value;
    const tool = this.tools.find((candidate) => candidate.name === choice);
    this.toolOtherField.hidden = choice !== OTHER_TOOL;
    this.toolOther.required = choice === OTHER_TOOL;
    this.toolDescription.textContent = tool?.description ?? "";
    this.inputHint.textContent = tool?.inputHint || DEFAULT_INPUT_HINT;
    this.argumentFields.replaceChildren(...(tool?.arguments ?? []).map((arg) => this.argumentField(arg)));
    this.argumentsSet.hidden = !tool || tool.arguments.length === 0;
  }

  private argumentField(arg: ToolArgument): HTMLElement {
    const id = `arg-${arg.name}`;
    const about = [arg.description, arg.type, arg.defaultValue ? `default ${arg.defaultValue}` : ""]
      .filter(Boolean)
      .join(" · ");
    const label = element("label", { for: id }, arg.name);
    if (arg.required) label.append(element("span", { class: "required" }, " (required)"));
    const input = element("input", {
      id,
      type: "text",
      "data-argument": arg.name,
      "aria-describedby": `${id}-help`,
      placeholder: arg.defaultValue || undefined,
      pattern: ARGUMENT_PATTERNS[arg.type],
      inputmode: arg.type === "int" ? "numeric" : arg.type === "float" ? "decimal" : undefined,
      spellcheck: "false",
    });
    input.required = arg.required;
    return element("div", { class: "field" }, label, input, element("p", { id: `${id}-help`, class: "help" }, about));
  }

  private request(): ExecuteInput {
    const args: Record<string, string> = {};
    for (const field of this.argumentFields.querySelectorAll<HTMLInputElement>("input[data-argument]")) {
      const value = field.value.trim();
      // An empty field means "use the default", which the service applies itself.
      if (value !== "") args[field.dataset["argument"] ?? ""] = value;
    }
    const choice = this.toolSelect.value;
    return {
      input: this.input.value,
      tool: choice === OTHER_TOOL ? this.toolOther.value.trim() : choice,
      platform: this.platform.value.trim(),
      arguments: args,
    };
  }

  private render(): void {
    const running = this.session.running;
    this.executeButton.disabled = running;
    this.executeButton.textContent = running ? "Running…" : "Execute";
    this.cancelButton.disabled = !running;
    this.result.setAttribute("aria-busy", String(running));
    const current = this.session.current;
    if (current !== undefined && current.id !== this.lastCurrentId) {
      // A new run takes over the result panel, even if an older one was being shown.
      this.lastCurrentId = current.id;
      this.shown = current;
    }
    this.runStatus.textContent = running ? "Running… press Escape or Cancel to stop." : "";
    if (current !== undefined && current.phase !== "running" && !this.timelines.has(current.id)) {
      this.loadTimeline(current);
    }
    if (this.shown !== undefined) this.show(this.shown);
    this.renderRecent();
  }

  private show(record: RunRecord): void {
    this.shown = record;
    this.result.dataset["state"] = record.phase;
    this.result.dataset["errorKind"] = record.error?.kind ?? "";
    const tool = record.result?.tool || record.request.tool || "auto";
    const when = record.startedAt.toLocaleTimeString();
    const summaries: Record<RunRecord["phase"], string> = {
      idle: "",
      running: `Running ${tool} on “${truncate(record.request.input, 60)}”…`,
      done: `${tool} ran on the ${record.result?.pool || "?"} pool, instance ${record.result?.instance || "?"} (run #${record.id}, ${when}).`,
      error: `Run #${record.id} failed (${when}).`,
      cancelled: `Run #${record.id} was cancelled (${when}).`,
    };
    this.summary.textContent = summaries[record.phase];

    this.errorBox.hidden = record.error === undefined;
    // Only a fresh failure interrupts a screen reader; a recalled one is just shown.
    this.errorBox.setAttribute("role", record === this.session.current ? "alert" : "group");
    this.errorTitle.textContent = record.error?.title ?? "";
    this.errorHint.textContent = record.error?.hint ?? "";
    this.errorHint.hidden = !record.error?.hint;

    this.showOutput(record.result?.output);
    this.showFacts(record);
    this.showTimeline(record);
  }

  /** `?trace=<id>` opens that trace's timeline (links from the mesh view and from dashboards). */
  private openLinkedTrace(): void {
    const linked = new URLSearchParams(location.search).get("trace")?.trim().toLowerCase();
    if (linked === undefined || linked === "") return;
    if (!TRACE_LINK.test(linked)) {
      this.timeline.show({ kind: "unavailable", traceId: linked.slice(0, 64), message: "the link's trace id is not 32 hex characters" }, "Linked trace");
      return;
    }
    this.summary.textContent = `Trace ${linked}, opened from a link.`;
    if (!this.config.traces) {
      this.timeline.show({ kind: "unavailable", traceId: linked, message: "this page's server has no trace store" }, "Linked trace");
      return;
    }
    this.timeline.show({ kind: "loading", traceId: linked }, "Linked trace");
    void lookUpTrace(linked).then(
      (lookup) => {
        if (this.shown === undefined) this.timeline.show({ ...lookup, traceId: linked }, "Linked trace");
      },
      () => undefined,
    );
  }

  /** Fetches a finished run's timeline through the page's own server, once. */
  private loadTimeline(record: RunRecord): void {
    if (!this.config.traces) return;
    const traceId = record.result?.serverTraceId || record.error?.serverTraceId || record.traceId;
    this.timelines.set(record.id, { kind: "loading", traceId });
    // The gateway's span hangs under the parent span this page sent, when the trace is the page's own.
    const parentSpanId = traceId === record.traceId ? record.parentSpanId : "";
    void lookUpTrace(traceId, { parentSpanId }).then(
      (lookup) => this.timelineLoaded(record, { ...lookup, traceId }),
      (err: unknown) => this.timelineLoaded(record, { kind: "unavailable", traceId, message: (err as Error).message }),
    );
  }

  private timelineLoaded(record: RunRecord, state: TimelineState): void {
    this.timelines.set(record.id, state);
    if (this.shown === record) this.showTimeline(record);
  }

  private showTimeline(record: RunRecord): void {
    const state = this.timelines.get(record.id);
    if (!this.config.traces || state === undefined) {
      this.timeline.hide();
      return;
    }
    this.timeline.show(state, `Run #${record.id}`);
  }

  private showOutput(output: string | undefined): void {
    this.output.hidden = output === undefined;
    if (output === undefined) return;
    const pretty = prettyJson(output);
    this.output.dataset["format"] = pretty === null ? "text" : "json";
    if (pretty === null) {
      this.outputCode.replaceChildren(output === "" ? "(no output)" : output);
      return;
    }
    this.outputCode.replaceChildren(
      ...tokenizeJson(pretty).map((token) =>
        token.type === "space" ? document.createTextNode(token.text) : element("span", { class: `tok-${token.type}` }, token.text),
      ),
    );
  }

  private showFacts(record: RunRecord): void {
    const rows: [string, string, string][] = []; // [id, label, value]
    const { result, error } = record;
    const serverTraceId = result?.serverTraceId ?? error?.serverTraceId ?? "";
    if (serverTraceId !== "" && serverTraceId !== record.traceId) {
      rows.push(["server-trace-id", "Server trace id", `${serverTraceId} (differs from the one sent)`]);
    }
    if (result !== undefined) {
      rows.push(
        ["fact-tool", "Tool", result.tool],
        ["fact-pool", "Pool", result.pool],
        ["fact-instance", "Instance", result.instance],
        ["fact-pipeline-instance", "Pipeline instance", result.pipelineInstance],
        ["fact-version", "Version", result.version],
        ["fact-duration", "Server time", formatMs(result.durationMs)],
      );
    }
    if (error !== undefined) {
      rows.push(["fact-code", "Status", error.code], ["fact-message", "Message", error.message || "(none)"]);
      if (error.reason !== "") rows.push(["fact-reason", "Reason", error.reason]);
      const details = Object.entries(error.details).filter(([key]) => key !== "trace_id");
      if (details.length > 0) {
        rows.push(["fact-details", "Details", details.map(([key, value]) => `${key}=${value}`).join(", ")]);
      }
    }
    if (record.phase === "running") rows.push(["fact-tool", "Tool", record.request.tool || "auto"]);
    else rows.push(["fact-round-trip", "Round trip", formatMs(record.roundTripMs)]);

    const traceCode = element("code", { id: "trace-id", "data-server-trace-id": serverTraceId }, record.traceId);
    const copyButton = element("button", { id: "copy-trace", type: "button", class: "secondary small", "aria-label": "Copy trace id" }, "Copy");
    const copyStatus = element("span", { id: "copy-status", class: "copy-status", role: "status" });
    copyButton.addEventListener("click", () => {
      void copyText(record.traceId).then((copied) => {
        copyStatus.textContent = copied ? "Copied" : "Copy failed: select the id instead";
      });
    });
    this.facts.replaceChildren(
      element("dt", {}, "Trace id"),
      element("dd", { class: "trace" }, traceCode, copyButton, copyStatus),
      ...rows.flatMap(([id, label, value]) => [element("dt", {}, label), element("dd", { id }, value || "—")]),
    );
    this.facts.hidden = false;
  }

  private renderRecent(): void {
    const recent = this.session.recent;
    this.recentEmpty.hidden = recent.length > 0;
    this.recentList.replaceChildren(
      ...recent.map((record) => {
        const outcome =
          record.phase === "done" ? "OK" : record.phase === "cancelled" ? "CANCELLED" : (record.error?.code ?? "ERROR");
        const tool = record.result?.tool || record.request.tool || "auto";
        const button = element(
          "button",
          { type: "button", class: "recent-run", "data-run-id": String(record.id) },
          element("span", { class: `badge badge-${record.phase}` }, outcome),
          element("span", { class: "recent-tool" }, tool),
          element("span", { class: "recent-input" }, truncate(record.request.input, 40)),
          element("span", { class: "recent-time" }, formatMs(record.roundTripMs)),
        );
        button.setAttribute("aria-label", `Run #${record.id}: ${tool} on “${truncate(record.request.input, 40)}”, ${outcome}`);
        if (record === this.shown) button.setAttribute("aria-current", "true");
        button.addEventListener("click", () => {
          this.show(record);
          this.renderRecent();
        });
        return element("li", {}, button);
      }),
    );
  }
}

/** Loads config.json, builds the session and the page, and marks the root ready. */
export async function startPage(root: HTMLElement): Promise<void> {
  let config: AppConfig;
  try {
    config = await loadConfig("config.json", location.href);
  } catch (err) {
    const fatal = byId("fatal");
    fatal.textContent = `The page cannot start: ${(err as Error).message}`;
    fatal.hidden = false;
    byId<HTMLButtonElement>("execute").disabled = true;
    root.dataset["ready"] = "error";
    return;
  }
  const tokenField = byId<HTMLInputElement>("token");
  const session = new Session(automationClient(gatewayTransport(config.gatewayUrl)), {
    gatewayUrl: config.gatewayUrl,
    timeoutMs: config.timeoutMs,
    token: () => tokenField.value,
  });
  await new Page(root, config, session).start();
  root.dataset["ready"] = "true";
}
