/**
 * The daemon's REST API, as the page calls it: the key travels in the `api_key` cookie (same
 * origin), errors in Tribler's shapes become readable messages, and a 401 anywhere tells the
 * page to ask for the key again.
 */

/** A failed call: `status` 0 when the daemon could not be reached. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const unauthorizedListeners = new Set();

/** Calls `listener()` whenever the daemon refuses the key. */
export function onUnauthorized(listener) {
  unauthorizedListeners.add(listener);
}

/** The message of an error answer: `{"error": "…"}` or `{"error": {"message": "…"}}`. */
export function errorMessage(status, data) {
  const e = data && data.error;
  if (typeof e === "string" && e) return e;
  if (e && typeof e.message === "string" && e.message) return e.message;
  return `The daemon answered with status ${status}.`;
}

/**
 * `method path` with an optional body (an object is sent as JSON, a Blob/ArrayBuffer as a
 * raw .torrent); resolves to the parsed JSON answer, or rejects with an `ApiError`.
 */
export async function call(method, path, body, { headers = {}, signal } = {}) {
  const init = { method, headers: { ...headers }, credentials: "same-origin", cache: "no-store", signal };
  if (body instanceof Blob || body instanceof ArrayBuffer) {
    init.body = body;
    init.headers["content-type"] = "application/x-bittorrent";
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["content-type"] = "application/json";
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "The daemon cannot be reached. Is it running?");
  }
  const text = await resp.text().catch(() => "");
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (resp.status === 401 && !headers["x-api-key"]) {
    for (const listener of unauthorizedListeners) listener();
  }
  if (!resp.ok) throw new ApiError(resp.status, errorMessage(resp.status, data));
  return data;
}

/** `/path` with query parameters (values encoded). */
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
