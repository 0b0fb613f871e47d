/**
 * Runtime configuration, fetched from config.json beside the page at start so one build
 * serves every environment (local, compose, Kubernetes): only the file differs.
 */

export interface AppConfig {
  /** Absolute base URL of the gRPC-Web gateway, without a trailing slash. */
  gatewayUrl: string;
  /** Client-side deadline of an Execute call, in milliseconds. */
  timeoutMs: number;
  /** Whether the page's server answers trace lookups (api/traces/<id>) from a trace store. */
  traces: boolean;
}

/**
 * Above the services' own 30 s deadline and the gateway's route timeout, so a slow tool
 * ends with the service's TIMEOUT rather than this page giving up first.
 */
export const DEFAULT_TIMEOUT_MS = 60_000;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * Validates the parsed file. A relative gatewayUrl ("/" or "/api") is resolved against the
 * page, for deployments that route the gateway under the page's own origin.
 */
export function parseConfig(raw: unknown, pageUrl: string): AppConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ConfigError("config.json must hold a JSON object");
  }
  const { gatewayUrl, timeoutMs, traces } = raw as Record<string, unknown>;
  if (typeof gatewayUrl !== "string" || gatewayUrl.trim() === "") {
    throw new ConfigError('config.json needs "gatewayUrl", e.g. "http://HOST:3000"');
  }
  let url: URL;
  try {
    url = new URL(gatewayUrl.trim(), pageUrl);
  } catch {
    throw new ConfigError(`config.json: gatewayUrl "${gatewayUrl}" is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(`config.json: gatewayUrl must be http or https, not ${url.protocol}`);
  }
  if (timeoutMs !== undefined && !(typeof timeoutMs === "number" && Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new ConfigError("config.json: timeoutMs must be a positive number of milliseconds");
  }
  if (traces !== undefined && typeof traces !== "boolean") {
    throw new ConfigError("config.json: traces must be true or false");
  }
  return {
    gatewayUrl: url.href.replace(/\/+$/, ""),
    timeoutMs: (timeoutMs as number | undefined) ?? DEFAULT_TIMEOUT_MS,
    traces: traces === true,
  };
}

/** Fetches and validates config.json; never cached, so an edited file applies on reload. */
export async function loadConfig(
  configUrl: string,
  pageUrl: string,
  fetchFn: typeof fetch = (...args) => fetch(...args),
): Promise<AppConfig> {
  let response: Response;
  try {
    response = await fetchFn(configUrl, { cache: "no-store" });
  } catch (err) {
    throw new ConfigError(`cannot load ${configUrl}: ${(err as Error).message}`);
  }
  if (!response.ok) throw new ConfigError(`cannot load ${configUrl}: HTTP ${response.status}`);
  let raw: unknown;
  try {
    raw = await response.json();
  } catch {
    throw new ConfigError(`${configUrl} is not valid JSON`);
  }
  return parseConfig(raw, pageUrl);
}
