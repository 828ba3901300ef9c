// The HTTP client of the app: every screen reads the same public APIs Grafana uses.
// Errors carry the server's own message (Prometheus/Loki envelopes, plain text).

/** An API call that failed, with the server's explanation. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

type Query = Record<string, string | number | boolean | undefined | string[]>;

function url(path: string, query: Query = {}): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) value.forEach((v) => search.append(key, v));
    else search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}

async function parse<T>(response: Response): Promise<T> {
  const text = await response.text();
  let body: unknown = undefined;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (!response.ok) {
    const record = (body ?? {}) as Record<string, unknown>;
    const message =
      (typeof record.error === "string" && record.error) ||
      (typeof record.message === "string" && record.message) ||
      text.trim() ||
      response.statusText;
    throw new ApiError(response.status, message);
  }
  if (body === undefined) {
    throw new ApiError(response.status, `not JSON: ${text.slice(0, 200)}`);
  }
  return body as T;
}

/** GET a JSON API; `signal` cancels superseded requests. */
export async function getJSON<T>(path: string, query: Query = {}, signal?: AbortSignal): Promise<T> {
  const response = await fetch(url(path, query), { signal, headers: { Accept: "application/json" } });
  return parse<T>(response);
}

/** POST a JSON body to a JSON API. */
export async function postJSON<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
  const response = await fetch(path, {
    method: "POST",
    signal,
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
  return parse<T>(response);
}

/** Milliseconds to the seconds (with fraction) the Prometheus-style APIs take. */
export function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}

/** Milliseconds to the nanosecond strings the Loki and Tempo APIs take. */
export function nanos(ms: number): string {
  return `${Math.round(ms)}000000`;
}

/** True when an error only means the request was superseded. */
export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === "AbortError";
}
