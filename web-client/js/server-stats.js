// The server's bandwidth picture of this peer (`getStats` → `stats`, protocol.md §4.2), for
// the stats overlay and the test surface. Calls while a request is pending share its answer,
// and a request is repeated after a second at the earliest, so callers polling once a second
// stay within the protocol's one request a second.

export class ServerStats {
  /** `send(msg)` sends on signaling; `isOpen()` says whether it is connected. */
  constructor({ send, isOpen, timeoutMs = 3000 }) {
    this.send = send;
    this.isOpen = isOpen;
    this.timeoutMs = timeoutMs;
    this.waiting = []; // resolvers waiting for the next `stats`
    this.askedAt = 0;
  }

  /** The next `stats` answer, or null if signaling is down or no answer came in time. */
  request() {
    if (!this.isOpen()) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const i = this.waiting.indexOf(done);
        if (i >= 0) this.waiting.splice(i, 1);
        resolve(null);
      }, this.timeoutMs);
      const done = (v) => {
        clearTimeout(timer);
        resolve(v);
      };
      this.waiting.push(done);
      if (Date.now() - this.askedAt >= 1000 || this.waiting.length === 1) {
        this.askedAt = Date.now();
        this.send({ type: 'getStats' });
      }
    });
  }

  /** A `stats` message arrived: everyone waiting gets it. */
  answer(bandwidth) {
    for (const resolve of this.waiting.splice(0)) resolve(bandwidth);
  }
}
