// Bounded waiting helpers: every wait has a deadline and says what it saw when it gives up.

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Poll `probe` until it returns {ok: true, ...}; give up after `timeoutMs`.
 * `probe` returns {ok, seen}; `seen` of the last attempt goes into the error message.
 */
export async function waitFor(what, probe, { timeoutMs = 10_000, intervalMs = 250 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = { ok: false, seen: 'never probed' };
  for (;;) {
    try {
      last = await probe();
    } catch (err) {
      last = { ok: false, seen: `probe threw: ${err.stack || err}` };
    }
    if (last.ok) return last;
    if (Date.now() >= deadline) break;
    await sleep(intervalMs);
  }
  const seen = typeof last.seen === 'string' ? last.seen : JSON.stringify(last.seen, null, 2);
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last seen:\n${seen}`);
}
