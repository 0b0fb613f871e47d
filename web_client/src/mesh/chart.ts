/**
 * One time-series chart of the mesh view on uPlot: lines on one time axis, a legend with the
 * current values, and a status line over it when it has nothing to draw (no traffic, a query
 * that timed out, Prometheus unreachable), so a chart is never silently blank.
 */

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { countPoints, formatValue } from "./series.js";

export interface Line {
  label: string;
  color: string;
  values: (number | null)[];
  dash?: number[];
}

const HEIGHT = 180;

export class Chart {
  readonly element: HTMLElement;
  private readonly plotHost: HTMLElement;
  private readonly status: HTMLElement;
  private plot: uPlot | null = null;
  private labels = "";

  constructor(
    readonly name: string,
    title: string,
    private readonly unit: string,
  ) {
    this.element = document.createElement("figure");
    this.element.className = "chart";
    this.element.dataset["chart"] = name;
    this.element.dataset["state"] = "loading";
    const caption = document.createElement("figcaption");
    caption.textContent = title;
    this.plotHost = document.createElement("div");
    this.plotHost.className = "plot";
    this.status = document.createElement("p");
    this.status.className = "chart-status";
    this.status.setAttribute("role", "status");
    this.status.textContent = "loading…";
    this.element.append(caption, this.plotHost, this.status);
    new ResizeObserver(() => this.resize()).observe(this.element);
  }

  private width(): number {
    return Math.max(200, this.element.clientWidth - 16);
  }

  private resize(): void {
    this.plot?.setSize({ width: this.width(), height: HEIGHT });
  }

  /** Draws the lines; `empty` is what to say when none has a point. */
  show(axis: number[], lines: Line[], empty: string): void {
    const points = countPoints(lines.map((line) => line.values));
    this.element.dataset["points"] = String(points);
    this.element.dataset["state"] = points > 0 ? "ok" : "empty";
    this.status.textContent = points > 0 ? "" : empty;
    this.status.hidden = points > 0;
    const labels = lines.map((line) => line.label).join("|");
    if (this.plot === null || labels !== this.labels) {
      this.plot?.destroy();
      this.labels = labels;
      this.plot = new uPlot(this.options(lines), [axis, ...lines.map((line) => line.values)], this.plotHost);
    } else {
      this.plot.setData([axis, ...lines.map((line) => line.values)]);
    }
  }

  /** Keeps the last lines drawn (if any) and says why they are not current. */
  fail(message: string): void {
    this.element.dataset["state"] = "error";
    this.element.dataset["points"] = "0";
    this.status.textContent = message;
    this.status.hidden = false;
    this.plot?.setData([[], ...this.plot.series.slice(1).map(() => [])]);
  }

  private options(lines: Line[]): uPlot.Options {
    const unit = this.unit;
    return {
      width: this.width(),
      height: HEIGHT,
      legend: { live: true },
      // Without a cursor on the chart, the legend shows the latest values.
      hooks: { setData: [(u) => u.setLegend({ idx: u.data[0].length - 1 })], ready: [(u) => u.setLegend({ idx: u.data[0].length - 1 })] },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: unit === "ratio" ? { range: (_u, min, max) => [Math.min(min, 0.9), Math.max(max, 1)] } : {} },
      axes: [
        { stroke: "#8b949e", grid: { stroke: "rgba(140,149,158,0.15)" }, space: 70 },
        {
          stroke: "#8b949e",
          grid: { stroke: "rgba(140,149,158,0.15)" },
          size: 64,
          values: (_u, ticks) => ticks.map((tick) => formatValue(tick, unit)),
        },
      ],
      series: [
        {},
        ...lines.map((line) => ({
          label: line.label,
          stroke: line.color,
          width: 2,
          ...(line.dash ? { dash: line.dash } : {}),
          spanGaps: false,
          value: (_u: uPlot, value: number | null) => formatValue(value, unit),
        })),
      ],
    };
  }
}
