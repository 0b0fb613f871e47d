/**
 * The mesh view: per pool its traffic share, healthy hosts, request rate, success rate and
 * p50/p95/p99 as charts over 5 m, 15 m or 1 h, the errors by reason with recent trace ids, the
 * selector's cache and top tools, the rollout in progress and the firing alerts; refreshed
 * every few seconds from Prometheus through the page server.
 */

import { Chart, type Line } from "./chart.js";
import {
  CHARTED,
  figure,
  poolState,
  readSnapshot,
  recentTraces,
  summarizeRollout,
  type QueryName,
  type RolloutRecord,
  type Snapshot,
  type TimeRange,
} from "./model.js";
import { PROXY, PrometheusClient, PrometheusFailure, describeFailure } from "./prometheus.js";
import { VIEW } from "./queries.gen.js";
import { align, emptyReason, find, formatValue, POOLS, type Pool } from "./series.js";

export const REFRESH_MS = 5_000;
const COLORS: Record<Pool, string> = { stable: "#2f81f7", canary: "#f0883e" };
const QUANTILE_DASH: Record<string, number[] | undefined> = { p50: undefined, p95: [6, 3], p99: [2, 2] };
const FAULTS: readonly string[] = VIEW.faultReasons;

interface ChartSpec {
  name: string;
  title: string;
  unit: string;
  lines: (snapshot: Snapshot) => Line[] | PrometheusFailure;
  source: QueryName[];
}

function perPool(name: QueryName): (s: Snapshot) => Line[] | PrometheusFailure {
  return (s) => {
    const result = s.charts[name];
    if (result === undefined || result instanceof PrometheusFailure) return result ?? [];
    return POOLS.map((pool) => ({ label: pool, color: COLORS[pool], values: align(find(result, "pool", pool), s.axis) }));
  };
}

function latency(pool: Pool): (s: Snapshot) => Line[] | PrometheusFailure {
  return (s) => {
    const lines: Line[] = [];
    for (const name of ["p50", "p95", "p99"] as const) {
      const result = s.charts[name];
      if (result === undefined || result instanceof PrometheusFailure) return result ?? [];
      const dash = QUANTILE_DASH[name];
      lines.push({ label: name, color: COLORS[pool], values: align(find(result, "pool", pool), s.axis), ...(dash ? { dash } : {}) });
    }
    return lines;
  };
}

const CHARTS: ChartSpec[] = [
  { name: "share", title: "Traffic share (canary weight)", unit: "ratio", lines: perPool("share"), source: ["share"] },
  { name: "requestRate", title: "Request rate", unit: "per_second", lines: perPool("requestRate"), source: ["requestRate"] },
  { name: "successRatio", title: "Success rate (server faults only)", unit: "ratio", lines: perPool("successRatio"), source: ["successRatio"] },
  { name: "latency-stable", title: "Latency, stable (p50 / p95 / p99)", unit: "seconds", lines: latency("stable"), source: ["p50"] },
  { name: "latency-canary", title: "Latency, canary (p50 / p95 / p99)", unit: "seconds", lines: latency("canary"), source: ["p50"] },
  { name: "healthyHosts", title: "Healthy hosts", unit: "hosts", lines: perPool("healthyHosts"), source: ["healthyHosts"] },
];

const SUMMARY: [QueryName, string][] = [
  ["share", "Share"],
  ["requestRate", "Rate"],
  ["successRatio", "Success"],
  ["p50", "p50"],
  ["p95", "p95"],
  ["p99", "p99"],
  ["budgetBurn", "Burn"],
  ["cacheHitRatio", "Cache hits"],
];

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text = "", className = ""): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (text) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function byId(id: string): HTMLElement {
  const node = document.getElementById(id);
  if (node === null) throw new Error(`#${id} is missing from mesh.html`);
  return node;
}

export class MeshView {
  private range: TimeRange = VIEW.ranges[0];
  private readonly charts = new Map<string, Chart>();
  private timer: number | undefined;
  private readonly client = new PrometheusClient(PROXY);

  constructor(
    private readonly root: HTMLElement,
    private readonly tracesAvailable: boolean,
  ) {}

  start(): void {
    const picker = byId("range");
    for (const range of VIEW.ranges) {
      const button = el("button", range.label, "secondary small");
      button.type = "button";
      button.dataset["range"] = range.label;
      button.setAttribute("aria-pressed", String(range === this.range));
      button.addEventListener("click", () => {
        this.range = range;
        picker.querySelectorAll("button").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
        void this.refresh();
      });
      picker.append(button);
    }
    const grid = byId("charts");
    for (const spec of CHARTS) {
      const chart = new Chart(spec.name, spec.title, spec.unit);
      this.charts.set(spec.name, chart);
      grid.append(chart.element);
    }
    void this.refresh();
  }

  private async refresh(): Promise<void> {
    window.clearTimeout(this.timer);
    const range = this.range;
    const snapshot = await readSnapshot(this.client, range, Date.now() / 1000, readRollout);
    if (range === this.range) this.render(snapshot);
    this.timer = window.setTimeout(() => void this.refresh(), REFRESH_MS);
  }

  private render(s: Snapshot): void {
    const failures = [...CHARTED.map((n) => s.charts[n]), s.alerts].filter((r) => r instanceof PrometheusFailure);
    const banner = byId("problem");
    banner.hidden = failures.length === 0;
    banner.textContent = failures.length ? `Prometheus: ${describeFailure(failures[0] as PrometheusFailure)}` : "";
    for (const spec of CHARTS) {
      const chart = this.charts.get(spec.name);
      const lines = spec.lines(s);
      if (chart === undefined) continue;
      if (lines instanceof PrometheusFailure) chart.fail(describeFailure(lines));
      else {
        const result = s.charts[spec.source[0] as QueryName];
        chart.show(s.axis, lines, Array.isArray(result) ? emptyReason(result, spec.unit) : "no data");
      }
    }
    this.renderPools(s);
    this.renderErrors(s);
    this.renderSelector(s);
    this.renderRollout(s.rollout);
    this.renderAlerts(s);
    byId("updated").textContent = `updated ${new Date(s.at * 1000).toLocaleTimeString()} · every ${REFRESH_MS / 1000} s · rate window ${s.range.rateWindow}`;
    this.root.dataset["at"] = String(s.at);
    this.root.dataset["range"] = s.range.label;
    this.root.dataset["rateWindow"] = s.range.rateWindow;
    this.root.dataset["ready"] = "true";
  }

  private renderPools(s: Snapshot): void {
    const body = byId("pools-body");
    body.replaceChildren();
    for (const pool of POOLS) {
      const row = el("tr");
      row.dataset["pool"] = pool;
      const state = poolState(s, pool);
      row.dataset["state"] = state;
      row.append(el("th", pool));
      const healthy = figure(s, "healthyHosts", pool);
      const hosts = figure(s, "hosts", pool);
      const hostCell = el("td", typeof healthy === "number" && typeof hosts === "number" ? `${healthy}/${hosts}` : "—");
      hostCell.dataset["label"] = "Hosts";
      row.append(hostCell);
      for (const [name, label] of SUMMARY) {
        const value = figure(s, name, pool);
        const cell = el("td");
        cell.dataset["field"] = name;
        cell.dataset["label"] = label;
        if (value instanceof PrometheusFailure) {
          cell.textContent = "—";
          cell.title = describeFailure(value);
        } else {
          cell.textContent = formatValue(value, VIEW.queries[name].unit);
          if (value !== null) cell.dataset["value"] = String(value);
        }
        row.append(cell);
      }
      const stateCell = el("td", state, `state state-${state.replace(/ /g, "-")}`);
      stateCell.dataset["label"] = "State";
      row.append(stateCell);
      body.append(row);
    }
  }

  private renderErrors(s: Snapshot): void {
    const body = byId("errors-body");
    body.replaceChildren();
    const result = s.instants.errorsByReason;
    const note = byId("errors-note");
    if (result === undefined || result instanceof PrometheusFailure) {
      note.textContent = result ? describeFailure(result) : "";
      return;
    }
    const traces = s.exemplars instanceof PrometheusFailure ? new Map<string, string[]>() : recentTraces(s.exemplars);
    note.textContent = result.length ? "" : `no failed calls in the last ${s.range.rateWindow}`;
    for (const sample of [...result].sort((a, b) => b.value - a.value)) {
      const pool = sample.labels["pool"] ?? "?";
      const reason = sample.labels["error_type"] ?? "?";
      const row = el("tr");
      row.dataset["reason"] = reason;
      const cells = [
        el("td", pool),
        el("td", reason),
        el("td", FAULTS.includes(reason) ? "server fault" : "caller mistake", FAULTS.includes(reason) ? "fault" : "muted"),
        el("td", formatValue(sample.value, "per_second")),
      ];
      ["Pool", "Reason", "Kind", "Rate"].forEach((label, i) => (cells[i]!.dataset["label"] = label));
      row.append(...cells);
      const ids = el("td", "", "traces");
      ids.dataset["label"] = "Recent trace ids";
      for (const id of traces.get(`${pool} ${reason}`) ?? []) ids.append(this.traceLink(id));
      if (!ids.childElementCount) ids.textContent = "—";
      row.append(ids);
      body.append(row);
    }
  }

  private traceLink(id: string): HTMLElement {
    if (this.tracesAvailable) {
      const link = el("a", id.slice(0, 12) + "…", "trace-id");
      link.href = `./?trace=${id}`;
      link.title = id;
      return link;
    }
    const code = el("code", id, "trace-id");
    code.title = "trace id (select to copy)";
    return code;
  }

  private renderSelector(s: Snapshot): void {
    const tools = byId("tools");
    tools.replaceChildren();
    const result = s.instants.topTools;
    if (result instanceof PrometheusFailure || result === undefined) {
      tools.append(el("li", result ? describeFailure(result) : "—", "muted"));
    } else if (result.length === 0) {
      tools.append(el("li", "no selections yet", "muted"));
    } else {
      for (const sample of [...result].sort((a, b) => b.value - a.value)) {
        tools.append(el("li", `${sample.labels["tool"] ?? "?"} · ${formatValue(sample.value, "per_second")}`));
      }
    }
  }

  private renderRollout(record: RolloutRecord | Error): void {
    const summary = summarizeRollout(record);
    const panel = byId("rollout");
    panel.dataset["state"] = summary.state;
    byId("rollout-headline").textContent = summary.headline;
    const list = byId("rollout-steps");
    list.replaceChildren();
    if (record instanceof Error || summary.state === "none") return;
    for (const step of record.history ?? []) {
      const item = el("li", "", `verdict verdict-${step.verdict}`);
      item.append(el("strong", `${step.weight} %`), el("span", ` ${step.verdict.toUpperCase()}`, "verdict-word"));
      const c = step.canary;
      const st = step.stable;
      if (c) {
        item.append(el("span", ` · canary ${Math.round(c.calls)} calls, success ${formatValue(c.error_ratio === null ? null : 1 - c.error_ratio, "ratio")}, p99 ${formatValue(c.p99_s, "seconds")}`));
      }
      if (st) item.append(el("span", ` · stable success ${formatValue(st.error_ratio === null ? null : 1 - st.error_ratio, "ratio")}`, "muted"));
      if (step.reasons.length) item.append(el("div", step.reasons.join("; "), "reasons"));
      list.append(item);
    }
  }

  private renderAlerts(s: Snapshot): void {
    const list = byId("alerts");
    list.replaceChildren();
    if (s.alerts instanceof PrometheusFailure) {
      list.append(el("li", describeFailure(s.alerts), "muted"));
      return;
    }
    const active = s.alerts.filter((a) => a.state === "firing" || a.state === "pending");
    if (active.length === 0) list.append(el("li", "no alert firing", "muted"));
    for (const alert of active) {
      const item = el("li", "", `alert alert-${alert.state}`);
      item.dataset["alert"] = alert.labels["alertname"] ?? "";
      item.append(
        el("strong", alert.labels["alertname"] ?? "alert"),
        el("span", ` ${alert.state} · ${alert.labels["severity"] ?? ""}${alert.labels["pool"] ? " · " + alert.labels["pool"] : ""}`),
      );
      if (alert.annotations["summary"]) item.append(el("div", alert.annotations["summary"], "muted"));
      list.append(item);
    }
  }
}

async function readRollout(): Promise<RolloutRecord> {
  const response = await fetch("api/mesh/rollout", { cache: "no-store" });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return (await response.json()) as RolloutRecord;
}
