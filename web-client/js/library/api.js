// The library API as this page uses it: an admin key (shared with the admin page, kept in
// sessionStorage) or a library link's token (`/library?t=…`, one recording). Problems come
// back as ApiError, like on the admin page.

import { ApiError, storedKey, storeKey } from '../admin/api.js';

export { ApiError, storedKey, storeKey };

let linkToken = null;

/** The library link this page was opened with, if any. */
export function setLinkToken(t) { linkToken = t || null; }
export function linkMode() { return linkToken !== null; }

/** The recording a library link opens (its `rec` claim); the server checks the signature. */
export function linkClaims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(escape(atob(part + '='.repeat((4 - (part.length % 4)) % 4))));
    const c = JSON.parse(json);
    return typeof c.rec === 'string' ? c : null;
  } catch {
    return null;
  }
}

/** `path` with the link token added, for URLs the browser fetches itself (video, downloads). */
export function withToken(path, token = linkToken) {
  if (!token) return path;
  return `${path}${path.includes('?') ? '&' : '?'}t=${encodeURIComponent(token)}`;
}

/** Calls `/api/v1{path}`; resolves with JSON (null for 204), rejects with ApiError. */
export async function call(method, path, body = undefined) {
  const headers = { Accept: 'application/json' };
  const key = linkToken || storedKey();
  if (key) headers.Authorization = `Bearer ${key}`;
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
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}
