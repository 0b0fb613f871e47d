/** Draws a trace lookup into the page's timeline section: one row per span, bars to scale. */
import { bars, formatDuration, shortName, type TraceLookup, type Waterfall } from "./waterfall.js";

export type TimelineState = { kind: "loading"; traceId: string } | (TraceLookup & { traceId: string });

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, ...children: (Node | string)[]) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children);
  return node;
}

export class TimelineView {
  private readonly summary: HTMLElement;
  private readonly list: HTMLOListElement;

  constructor(private readonly section: HTMLElement) {
    this.summary = section.querySelector<HTMLElement>("#waterfall-summary") ?? el("p", "");
    this.list = section.querySelector<HTMLOListElement>("#waterfall-spans") ?? el("ol", "");
  }

  hide(): void {
    this.section.hidden = true;
    this.section.dataset["state"] = "none";
  }

  show(state: TimelineState, caption = ""): void {
    this.section.hidden = false;
    this.section.dataset["state"] = state.kind;
    this.section.dataset["traceId"] = state.traceId;
    this.list.replaceChildren();
    const prefix = caption ? `${caption}: ` : "";
    if (state.kind === "loading") {
      this.summary.textContent = `${prefix}loading the timeline of trace ${state.traceId}…`;
    } else if (state.kind === "missing") {
      this.summary.textContent = `${prefix}the trace store has no spans of trace ${state.traceId} (not sampled, or expired).`;
    } else if (state.kind === "unavailable") {
      this.summary.textContent = `${prefix}no timeline: ${state.message}.`;
    } else {
      this.section.dataset["settled"] = String(state.settled);
      this.summary.textContent = `${prefix}${this.describe(state.waterfall)}${state.settled ? "" : " Some hops have not reported (yet)."}`;
      this.list.replaceChildren(...this.rows(state.waterfall));
    }
  }

  private describe(waterfall: Waterfall): string {
    const slowest = waterfall.spans.find((span) => span.slowest);
    const hint = slowest ? ` Most time of its own: ${slowest.service} ${shortName(slowest.name)} (${formatDuration(slowest.selfMs)}).` : "";
    return `${waterfall.spans.length} spans from ${waterfall.services.join(", ")} in ${formatDuration(waterfall.durationMs)}.${hint}`;
  }

  private rows(waterfall: Waterfall): HTMLLIElement[] {
    const layout = bars(waterfall);
    return waterfall.spans.map((span, index) => {
      const bar = layout[index] ?? { leftPercent: 0, widthPercent: 100 };
      const status = span.outcome + (span.reason && span.reason !== span.outcome ? ` ${span.reason}` : "");
      const label = el("span", "span-label", el("span", `span-service service-${span.service.replace(/[^a-z0-9]/gi, "")}`, span.service), " ", el("span", "span-name", shortName(span.name)));
      // CSSOM, not a style attribute: the page's CSP allows no inline styles.
      label.style.paddingLeft = `${span.depth * 0.9}rem`;
      const drawn = el("span", "span-bar");
      drawn.style.left = `${bar.leftPercent}%`;
      drawn.style.width = `${bar.widthPercent}%`;
      const statusCell = el("span", "span-status", status);
      const row = el("li", "span-row", label, el("span", "span-track", drawn),
        el("span", "span-duration", formatDuration(span.durationMs)), statusCell);
      row.dataset["service"] = span.service;
      row.dataset["spanId"] = span.spanId;
      row.dataset["depth"] = String(span.depth);
      row.dataset["error"] = String(span.error);
      if (span.slowest) {
        // In the status column, which long span names cannot push out of sight.
        row.dataset["slowest"] = "true";
        statusCell.prepend(el("span", "slowest-mark", "slowest"), " ");
      }
      row.title = [
        `${span.service}: ${span.name}`,
        `starts at ${formatDuration(span.offsetMs)}, lasts ${formatDuration(span.durationMs)} (${formatDuration(span.selfMs)} of its own)`,
        `status ${status}${span.statusMessage ? `: ${span.statusMessage}` : ""}`,
      ].join("\n");
      return row;
    });
  }
}
