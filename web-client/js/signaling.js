// Signaling transport (protocol.md §3, §4): room link parsing, the claims request, and the
// WebSocket with a serial message queue. No DOM access here.

/** Runs async tasks strictly one after another, in the order they were pushed. */
export class SerialQueue {
  constructor(onError = (err) => console.error(err)) {
    this.tail = Promise.resolve();
    this.onError = onError;
  }

  /** Append `fn` to the queue; the returned promise settles when `fn` has run. */
  push(fn) {
    const run = this.tail.then(() => fn());
    this.tail = run.catch((err) => this.onError(err));
    return run;
  }
}

/** `{room, token}` from a location like `/r/{room}?t=TOKEN`; room is null if the path does not match. */
export function parseRoomLocation(loc) {
  const m = /^\/r\/([A-Za-z0-9_-]{1,64})\/?$/.exec(loc.pathname);
  const token = new URLSearchParams(loc.search).get('t');
  return { room: m ? m[1] : null, token: token || null };
}

/** Error thrown by `fetchClaims`: `code` is the protocol's error code (or `serverUnavailable`). */
export class ClaimsError extends Error {
  constructor(code, message, body = {}) {
    super(message || code);
    this.code = code;
    this.body = body;
  }
}

/** GET /r/{room}/session?t= → claims, or throws ClaimsError with the server's error code. */
export async function fetchClaims(room, token, { timeoutMs = 10000 } = {}) {
  const url = `/r/${encodeURIComponent(room)}/session?t=${encodeURIComponent(token)}`;
  let res;
  try {
    res = await fetch(url, { headers: { Accept: 'application/json' }, cache: 'no-store', signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new ClaimsError('serverUnavailable', String(err));
  }
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  if (res.ok && body && typeof body.role === 'string') return body;
  if (res.status === 401 && body && typeof body.error === 'string') {
    throw new ClaimsError(body.error, body.message, body);
  }
  throw new ClaimsError(res.status >= 500 || res.status === 404 ? 'serverUnavailable' : 'unknownError',
    body?.message || `HTTP ${res.status}`, body || {});
}

/** The signaling URL for this page: ws: or wss: matching http: or https:. */
export function signalingUrl(token, loc = globalThis.location) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/ws?t=${encodeURIComponent(token)}`;
}

/** Close code reported for a socket given up because it did not open in time. */
export const CLOSE_OPEN_TIMEOUT = 4001;

/**
 * One signaling connection. Incoming messages are parsed and handed to `onmessage` one at a
 * time through `queue` (a handler's promise must settle before the next message is handled).
 * Callbacks: onmessage(msg), onstatechange(state), onclose({code, reason, wasClean}).
 *
 * A connection that hears nothing (not even a `pong`) for `deadAfterMs` is taken for dead (a
 * TCP connection whose network went away can look open for minutes): it is closed with code
 * 4000 at once, without waiting for the closing handshake. `connectTimeoutMs` bounds opening.
 */
export class Signaling {
  constructor(url, { queue = new SerialQueue(), pingIntervalMs = 5000, deadAfterMs = 15000, connectTimeoutMs = 8000 } = {}) {
    this.url = url;
    this.queue = queue;
    this.pingIntervalMs = pingIntervalMs;
    this.deadAfterMs = deadAfterMs;
    this.connectTimeoutMs = connectTimeoutMs;
    this.state = 'new';
    this.ws = null;
    this.outbox = [];
    this.pingTimer = null;
    this.lastHeard = 0;
    this.onmessage = async () => {};
    this.onstatechange = () => {};
    this.onclose = () => {};
  }

  _setState(state) {
    this.state = state;
    this.onstatechange(state);
  }

  /**
   * Open the socket. Resolves when it is open; rejects if it closes, or does not open within
   * `timeoutMs` (then it is abandoned and reported closed with code 4001).
   */
  connect(timeoutMs = this.connectTimeoutMs) {
    this._setState('connecting');
    const ws = new WebSocket(this.url);
    this.ws = ws;
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (why) => {
        if (settled) return;
        settled = true;
        reject(new Error(why));
      };
      const openTimer = setTimeout(() => {
        if (ws.readyState !== WebSocket.CONNECTING) return;
        this._abandon(ws, CLOSE_OPEN_TIMEOUT, 'connect timeout');
        fail(`WebSocket did not open within ${timeoutMs} ms`);
      }, timeoutMs);
      ws.onopen = () => {
        clearTimeout(openTimer);
        settled = true;
        this._setState('open');
        this.lastHeard = Date.now();
        for (const text of this.outbox.splice(0)) ws.send(text);
        this.pingTimer = setInterval(() => this._keepalive(ws), this.pingIntervalMs);
        resolve();
      };
      ws.onmessage = (ev) => {
        this.lastHeard = Date.now();
        this._receive(ev.data);
      };
      ws.onclose = (ev) => {
        clearTimeout(openTimer);
        this._closed(ws, ev.code, ev.reason, ev.wasClean);
        fail(`WebSocket closed before opening (code ${ev.code})`);
      };
      ws.onerror = () => { /* a close event follows */ };
    });
  }

  _closed(ws, code, reason, wasClean) {
    if (ws.closedReported) return;
    ws.closedReported = true;
    clearInterval(this.pingTimer);
    this._setState('closed');
    // Let queued handlers (e.g. a `bye`) run before reporting the close.
    this.queue.push(() => this.onclose({ code, reason, wasClean }));
  }

  /** Give up on a socket now: report it closed without waiting for the closing handshake. */
  _abandon(ws, code, reason) {
    ws.onmessage = null;
    try { ws.close(); } catch { /* already closing */ }
    this._closed(ws, code, reason, false);
  }

  _keepalive(ws) {
    if (this.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - this.lastHeard > this.deadAfterMs) {
      console.warn(`ketang: nothing heard from the server for ${this.deadAfterMs} ms; reconnecting`);
      this._abandon(ws, 4000, 'no reply from the server');
      return;
    }
    this.send({ type: 'ping' });
  }

  _receive(data) {
    if (typeof data !== 'string') {
      console.warn('ketang: ignoring binary signaling frame');
      return;
    }
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      console.warn('ketang: ignoring non-JSON signaling frame');
      return;
    }
    if (!msg || typeof msg.type !== 'string') {
      console.warn('ketang: ignoring signaling message without type', msg);
      return;
    }
    this.queue.push(() => this.onmessage(msg));
  }

  /** Send a message object (queued until the socket opens; dropped once it is closed). */
  send(msg) {
    const text = JSON.stringify(msg);
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.state === 'open') this.ws.send(text);
    else if (this.state === 'new' || this.state === 'connecting') this.outbox.push(text);
    else console.warn('ketang: signaling closed, dropping', msg.type);
  }

  /** Close the socket (after sending whatever is buffered). */
  close(code = 1000, reason = '') {
    clearInterval(this.pingTimer);
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) {
      this.state = 'closing';
      this.ws.close(code, reason);
    }
  }

  /** Whether a message sent now goes out (rather than being queued or dropped). */
  get isOpen() {
    return this.state === 'open';
  }
}
