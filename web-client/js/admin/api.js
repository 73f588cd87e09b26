// The admin API client: the key from sessionStorage as a bearer token (or, without a key, the
// signed-in account's session cookie, with its CSRF token echoed on writes), JSON in and out,
// and problem documents (RFC 9457) turned into ApiError with the field errors kept.

const KEY_STORAGE = 'ketang.adminKey';

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }

  /** `[{field, message}]` of a 422. */
  get fields() {
    return this.problem.errors || [];
  }

  /** The other bookings of a 409 schedule conflict. */
  get conflicts() {
    return this.problem.conflicts || [];
  }
}

export function storedKey() {
  try { return sessionStorage.getItem(KEY_STORAGE); } catch { return null; }
}

export function storeKey(key) {
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key); else sessionStorage.removeItem(KEY_STORAGE);
  } catch { /* private mode: the key lives only in memory */ }
  memoryKey = key;
}

let memoryKey = null;

/** The session's CSRF token (the `ketang_csrf` cookie), echoed in X-CSRF-Token on writes. */
function csrfToken() {
  const m = /(?:^|;\s*)ketang_csrf=([0-9a-f]+)/.exec(document.cookie);
  return m ? m[1] : null;
}

/** Calls the API; resolves with the JSON body (null for 204), rejects with ApiError. */
export async function api(method, path, body = undefined) {
  const key = memoryKey || storedKey();
  const headers = { Accept: 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  else if (method !== 'GET' && csrfToken()) headers['X-CSRF-Token'] = csrfToken();
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, { title: 'network', detail: String(err.message || err) });
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) {
    const error = new ApiError(res.status, json);
    if (res.status === 401) window.dispatchEvent(new CustomEvent('ketang:unauthorized', { detail: error }));
    throw error;
  }
  return json;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body);
export const put = (path, body) => api('PUT', path, body);
export const del = (path) => api('DELETE', path);

/**
 * GETs `path` as text in another format (`accept`, e.g. `text/csv`); resolves with
 * `{text, filename}` (the name from Content-Disposition), rejects with ApiError like api().
 */
export async function getText(path, accept) {
  const key = memoryKey || storedKey();
  const headers = { Accept: accept };
  if (key) headers.Authorization = `Bearer ${key}`;
  let res;
  try {
    res = await fetch(`/api/v1${path}`, { headers });
  } catch (err) {
    throw new ApiError(0, { title: 'network', detail: String(err.message || err) });
  }
  const text = await res.text();
  if (!res.ok) {
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    throw new ApiError(res.status, json);
  }
  const disposition = res.headers.get('Content-Disposition') || '';
  const filename = /filename="([^"]+)"/.exec(disposition)?.[1] ?? 'download';
  return { text, filename };
}
