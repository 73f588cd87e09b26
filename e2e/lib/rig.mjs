// One server and one browser for a suite of browser tests, torn down after it. A scenario that
// throws gets the pages' state printed, then (after the suite) their console and the server log.

import assert from 'node:assert/strict';
import { after } from 'node:test';

import { startServer } from './server.mjs';
import { launchBrowser, describePage, PageLog } from './browser.mjs';

/** Registers the teardown; `server` and `browser` are set by `runWithAdminKey`. */
export function suiteRig() {
  const rig = { log: new PageLog(), pages: {}, server: null, browser: null, failed: false };
  after(async () => {
    if (rig.failed && rig.log.lines.length) console.error(`--- browser log ---\n${rig.log.text()}`);
    if (rig.failed && rig.server) console.error(`--- server log (${rig.server.logPath}) ---\n${rig.server.log()}`);
    await rig.browser?.close().catch(() => {});
    await rig.server?.stop();
  });
  return rig;
}

/**
 * Starts the server and the browser, makes an admin key and runs `scenario(key)`. On failure
 * each page in `rig.pages` is described (`describe(name, page)`, by default `describePage`) and
 * printed before the error is rethrown.
 */
export async function runWithAdminKey(rig, scenario, { describe = (_name, p) => describePage(p) } = {}) {
  try {
    rig.server = await startServer();
    rig.browser = await launchBrowser();
    await scenario(await rig.server.createAdminKey());
  } catch (err) {
    rig.failed = true;
    const seen = {};
    for (const [name, p] of Object.entries(rig.pages)) seen[name] = await describe(name, p);
    console.error(`--- pages ---\n${JSON.stringify(seen, null, 2)}`);
    throw err;
  }
}

/**
 * The admin REST API of `server` (a KetangServer) from node with `key`: `api(method, path, body?, accept?)` returns the JSON
 * body (null for 204), or `{ text, type }` for another `accept`; an HTTP error fails the test.
 */
export function adminApi(server, key, timeoutMs = 10_000) {
  return async (method, path, body = undefined, accept = 'application/json') => {
    const res = await server.fetch(`/api/v1${path}`, {
      method,
      headers: { Authorization: `Bearer ${key}`, Accept: accept, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    assert.ok(res.ok, `${method} ${path}: HTTP ${res.status} ${text}`);
    if (accept !== 'application/json') return { text, type: res.headers.get('content-type') };
    return res.status === 204 ? null : JSON.parse(text);
  };
}
