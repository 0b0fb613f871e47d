/**
 * Pure helpers of the mesh view: range results aligned on one time axis for the charts, the
 * last value of each series for the summary, what an empty or broken chart should say, and how
 * figures read. NaN (0/0: no calls in the window) is a gap, never a zero.
 */

import type { RangeSeries } from "./prometheus.js";

export const POOLS = ["stable", "canary"] as const;
export type Pool = (typeof POOLS)[number];

/** The evaluation times of a range query: start, start + step, ..., end. */
export function timeAxis(start: number, end: number, step: number): number[] {
  const axis: number[] = [];
  for (let at = start; at <= end + 1e-9; at += step) axis.push(Math.round(at * 1000) / 1000);
  return axis;
}

/** The series' values on `axis` (null where a point is missing or NaN). */
export function align(series: RangeSeries | undefined, axis: number[]): (number | null)[] {
  const byTime = new Map<number, number>();
  for (const [at, value] of series?.points ?? []) byTime.set(Math.round(at * 1000) / 1000, value);
  return axis.map((at) => {
    const value = byTime.get(at);
    return value === undefined || Number.isNaN(value) ? null : value;
  });
}

/** The series whose `label` is `value` (a pool, a reason ...). */
export function find(result: RangeSeries[], label: string, value: string): RangeSeries | undefined {
  return result.find((series) => series.labels[label] === value);
}

/** The value at the axis's last point, or null (missing or NaN). */
export function lastValue(series: RangeSeries | undefined, end: number): number | null {
  const point = series?.points.find(([at]) => Math.abs(at - end) < 1e-6);
  return point === undefined || Number.isNaN(point[1]) ? null : point[1];
}

export function countPoints(values: (number | null)[][]): number {
  return values.reduce((sum, line) => sum + line.filter((v) => v !== null).length, 0);
}

/** Why a chart without points has none. */
export function emptyReason(result: RangeSeries[], unit: string): string {
  if (result.length === 0) return unit === "hosts" ? "no hosts reported by the gateway" : "no traffic yet";
  return "no calls in this window";
}

export function formatValue(value: number | null, unit: string): string {
  if (value === null) return "—";
  switch (unit) {
    case "ratio":
      // Rounded down: 99.996 % of calls succeeding must not read as 100 %.
      return value === 1 || value === 0 ? `${value * 100} %` : `${(Math.floor(value * 10_000) / 100).toFixed(2)} %`;
    case "per_second":
      return value >= 100 ? `${value.toFixed(0)}/s` : `${value.toFixed(value >= 10 ? 1 : 2)}/s`;
    case "seconds":
      if (value === 0) return "0 ms";
      return value >= 1 ? `${value.toFixed(2)} s` : `${(value * 1000).toFixed(value >= 0.01 ? 0 : 1)} ms`;
    case "times":
      return `×${value.toFixed(value >= 10 ? 0 : 1)}`;
    default:
      return String(Math.round(value));
  }
}
