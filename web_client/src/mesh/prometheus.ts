/**
 * Reads Prometheus through the page server's read-only forwarder (/api/prometheus/...), and
 * tells its failures apart: timed out, unreachable, not configured, a refused query.
 */

export const PROXY = "api/prometheus/api/v1";

export type FailureKind = "timeout" | "unavailable" | "not_configured" | "refused" | "network";

export class PrometheusFailure extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
  ) {
    super(message);
    this.name = "PrometheusFailure";
  }
}

/** What a failure looks like on a chart or a table. */
export function describeFailure(failure: PrometheusFailure): string {
  switch (failure.kind) {
    case "timeout":
      return "query timed out";
    case "unavailable":
      return "Prometheus is not reachable";
    case "not_configured":
      return "no Prometheus configured";
    case "network":
      return "page server not reachable";
    default:
      return `query refused: ${failure.message}`;
  }
}

/** One series of a range query: its labels and [unix seconds, value] points (NaN kept as NaN). */
export interface RangeSeries {
  labels: Record<string, string>;
  points: [number, number][];
}

export interface InstantSample {
  labels: Record<string, string>;
  value: number;
}

export interface Exemplar {
  labels: Record<string, string>;
  seriesLabels: Record<string, string>;
  value: number;
  timestamp: number;
}

export interface Alert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: string;
  activeAt?: string;
}

type Fetch = typeof fetch;

export class PrometheusClient {
  constructor(
    private readonly base: string,
    private readonly fetchFn: Fetch = (...args) => fetch(...args),
  ) {}

  private async get(endpoint: string, params: Record<string, string>): Promise<unknown> {
    const url = `${this.base}/${endpoint}${Object.keys(params).length ? "?" + new URLSearchParams(params) : ""}`;
    let response: Response;
    try {
      response = await this.fetchFn(url, { cache: "no-store" });
    } catch (err) {
      throw new PrometheusFailure("network", (err as Error).message);
    }
    let body: { status?: string; data?: unknown; errorType?: string; error?: string };
    try {
      body = (await response.json()) as typeof body;
    } catch {
      throw new PrometheusFailure(response.ok ? "refused" : "unavailable", `HTTP ${response.status}`);
    }
    if (response.ok && body.status === "success") return body.data;
    const message = body.error ?? `HTTP ${response.status}`;
    if (response.status === 504 || body.errorType === "timeout") throw new PrometheusFailure("timeout", message);
    if (response.status === 503 && body.errorType === "unavailable" && /configured/.test(message)) {
      throw new PrometheusFailure("not_configured", message);
    }
    if (response.status === 502 || response.status === 503) throw new PrometheusFailure("unavailable", message);
    throw new PrometheusFailure("refused", message);
  }

  async range(query: string, start: number, end: number, step: number): Promise<RangeSeries[]> {
    const data = (await this.get("query_range", {
      query,
      start: String(start),
      end: String(end),
      step: String(step),
    })) as { result: { metric: Record<string, string>; values: [number, string][] }[] };
    return data.result.map((item) => ({
      labels: item.metric,
      points: item.values.map(([at, value]) => [at, Number(value)] as [number, number]),
    }));
  }

  async instant(query: string, time: number): Promise<InstantSample[]> {
    const data = (await this.get("query", { query, time: String(time) })) as {
      resultType: string;
      result: { metric: Record<string, string>; value: [number, string] }[];
    };
    return data.result.map((item) => ({ labels: item.metric, value: Number(item.value[1]) }));
  }

  async exemplars(query: string, start: number, end: number): Promise<Exemplar[]> {
    const data = (await this.get("query_exemplars", { query, start: String(start), end: String(end) })) as {
      seriesLabels: Record<string, string>;
      exemplars: { labels: Record<string, string>; value: string; timestamp: number }[];
    }[];
    return data.flatMap((series) =>
      series.exemplars.map((e) => ({
        labels: e.labels,
        seriesLabels: series.seriesLabels,
        value: Number(e.value),
        timestamp: e.timestamp,
      })),
    );
  }

  async alerts(): Promise<Alert[]> {
    const data = (await this.get("alerts", {})) as { alerts: Alert[] };
    return data.alerts;
  }
}
