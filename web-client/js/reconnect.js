// Signaling reconnection timing (protocol.md §4.3a). After the socket drops, the first try
// starts 0.5 s later and the next ones 1 s, 2 s and 4 s after the one before, then every 4 s,
// for as long as the lesson lasts (the link's expiry). Each try has until the next one is due to
// open: one the network swallows (a silent cut drops the connection attempt without an error) is
// given up then and a fresh one started, so the page is back within about 4 s of the network.
// The media connection heals on its own meanwhile (ICE restart, session.js); the server keeps
// the participant's place for its grace period.

export class Reconnection {
  constructor({ firstMs = 500, maxMs = 4000 } = {}) {
    this.firstMs = firstMs;
    this.maxMs = maxMs;
    this.active = false;
    this.since = 0;       // when the connection was lost
    this.attempts = 0;    // tries started since then
    this.step = firstMs;  // the gap before the next try after the coming one
    this.nextAt = 0;      // when the coming try starts
    this.timer = null;
  }

  /** A reconnection starts (unless one is running); returns whether it is a new one. */
  begin(now = Date.now()) {
    if (this.active) return false;
    this.active = true;
    this.since = now;
    this.attempts = 0;
    this.step = this.firstMs;
    this.nextAt = now + this.firstMs;
    return true;
  }

  /** It is over: connected again, given up, or the session ended. */
  end() {
    this.active = false;
    clearTimeout(this.timer);
    this.timer = null;
  }

  /**
   * Runs `attempt(windowMs)` when the next try is due; `windowMs` is how long it may take to
   * open (until the try after it is due). Returns false (and is over) once `until` has passed.
   */
  schedule(attempt, { until = Infinity, now = Date.now() } = {}) {
    if (now >= until) {
      this.end();
      return false;
    }
    const start = Math.max(now, this.nextAt);
    this.step = Math.min(this.step * 2, this.maxMs);
    this.nextAt = start + this.step;
    const windowMs = this.nextAt - start;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.attempts += 1;
      attempt(windowMs);
    }, start - now);
    return true;
  }

  /** Milliseconds until the try after the coming (or running) one is due. */
  untilNext(now = Date.now()) {
    return Math.max(0, this.nextAt - now);
  }
}
