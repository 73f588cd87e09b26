// Signaling reconnection timing: after the socket drops, attempts at growing intervals (0.5 s,
// doubling up to 4 s) until a `welcome` arrives or a minute has passed, when the page gives up
// and says the connection is lost. The media connection heals on its own meanwhile (ICE
// restart, session.js); the server keeps the participant's place for its grace period.

export class Reconnection {
  constructor({ firstMs = 500, maxMs = 4000, forMs = 60000 } = {}) {
    this.firstMs = firstMs;
    this.maxMs = maxMs;
    this.forMs = forMs;
    this.active = false;
    this.since = 0;
    this.delay = firstMs;
    this.timer = null;
  }

  /** A reconnection starts (unless one is running); returns whether it is a new one. */
  begin() {
    if (this.active) return false;
    this.active = true;
    this.since = Date.now();
    this.delay = this.firstMs;
    return true;
  }

  /** It is over: connected again, given up, or the session ended. */
  end() {
    this.active = false;
    clearTimeout(this.timer);
    this.timer = null;
  }

  /** Runs `attempt` after the next delay; false (and over) once the time is up. */
  schedule(attempt) {
    const elapsed = Date.now() - this.since;
    if (elapsed >= this.forMs) {
      this.end();
      return false;
    }
    const delay = Math.min(this.delay, this.forMs - elapsed);
    this.delay = Math.min(this.delay * 2, this.maxMs);
    clearTimeout(this.timer);
    this.timer = setTimeout(attempt, delay);
    return true;
  }
}
