// Small DOM helpers shared by the room page: panels, banners and the status line.
// Every text is (re)rendered from an i18n key so that a language switch updates it.

import { t, onLangChange } from './i18n.js';

export const $ = (id) => document.getElementById(id);

const PANELS = ['loading-panel', 'error-panel', 'ended-panel'];

/** Show one of the full-page panels (or none, to show the stage). */
export function showPanel(id) {
  for (const p of PANELS) $(p).hidden = p !== id;
  $('stage').hidden = id !== null;
  $('controls').hidden = id !== null;
}

// A param given as {key: 'x'} is itself translated at render time.
function render(key, params) {
  const p = {};
  for (const [k, v] of Object.entries(params)) p[k] = v && typeof v === 'object' && 'key' in v ? t(v.key) : v;
  return t(key, p);
}

/** A localized text: a key and params, rendered again when the language changes. */
export function bindText(element, key, params = {}) {
  element.dataset.textKey = key;
  element._textParams = params;
  element.textContent = render(key, params);
}

onLangChange(() => {
  for (const e of document.querySelectorAll('[data-text-key]')) e.textContent = render(e.dataset.textKey, e._textParams || {});
});

/** Non-blocking banners at the top of the page. */
export class Banners {
  constructor(container) {
    this.container = container;
  }

  /**
   * Show a banner; one with the same `id` replaces the previous one.
   * @param {string} key i18n key
   * @param {object} [o] {params, kind: 'info'|'warn'|'error', timeoutMs, id, action: {key, run}}
   */
  show(key, { params = {}, kind = 'info', timeoutMs = 0, id = key, action = null } = {}) {
    this.dismiss(id);
    const b = document.createElement('div');
    b.className = `banner ${kind}`;
    b.dataset.bannerId = id;
    b.dataset.kind = kind;
    const text = document.createElement('span');
    text.className = 'text';
    bindText(text, key, params);
    b.append(text);
    if (action) {
      const btn = document.createElement('button');
      btn.type = 'button';
      btn.className = 'ctl primary';
      bindText(btn, action.key);
      btn.addEventListener('click', () => { action.run(); this.dismiss(id); });
      b.append(btn);
    }
    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'close';
    close.textContent = '×';
    close.dataset.i18nTitle = 'dismiss';
    close.title = t('dismiss');
    close.addEventListener('click', () => this.dismiss(id));
    b.append(close);
    this.container.append(b);
    if (timeoutMs > 0) setTimeout(() => { if (b.isConnected) b.remove(); }, timeoutMs);
    return b;
  }

  dismiss(id) {
    for (const b of this.container.querySelectorAll('.banner')) if (b.dataset.bannerId === id) b.remove();
  }
}

/** The status line: signaling (WebSocket) state and the peer connection state. */
export function renderStatus(wsState, pcState) {
  const ws = wsState === 'open' || wsState === 'reconnecting' ? wsState
    : wsState === 'closed' || wsState === 'closing' ? 'closed' : 'connecting';
  $('ws-dot').dataset.state = ws;
  bindText($('ws-status'), 'statusSignaling', { state: { key: `ws_${ws}` } });
  const pc = pcState || 'none';
  $('pc-dot').dataset.state = pc;
  bindText($('pc-status'), 'statusMedia', { state: { key: `pc_${pc}` } });
}

/**
 * Tabs: buttons `[role=tab][data-tab=NAME]` in `bar`, panels with id `panel-NAME`.
 * `onchange(name)` runs after a tab was selected.
 */
export class Tabs {
  constructor(bar, onchange = () => {}) {
    this.bar = bar;
    this.onchange = onchange;
    this.current = null;
    bar.addEventListener('click', (ev) => {
      const b = ev.target.closest('[role="tab"]');
      if (b && !b.hidden) this.select(b.dataset.tab);
    });
  }

  select(name) {
    for (const b of this.bar.querySelectorAll('[role="tab"]')) {
      const on = b.dataset.tab === name;
      b.setAttribute('aria-selected', String(on));
      b.tabIndex = on ? 0 : -1;
      $(`panel-${b.dataset.tab}`).hidden = !on;
    }
    this.current = name;
    this.onchange(name);
  }
}

// ---- stats overlay (school IT staff) -------------------------------------------------------

function fmtBps(bps) {
  if (bps === null || bps === undefined || !Number.isFinite(bps)) return t('statsNone');
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(2)} Mbit/s`;
  return `${Math.round(bps / 1e3)} kbit/s`;
}

function fmtRes(w, h) {
  return w && h ? `${w}×${h}` : t('statsNone');
}

function cell(tag, text) {
  const c = document.createElement(tag);
  c.textContent = text;
  return c;
}

function table(headKeys, rows) {
  const tbl = document.createElement('table');
  const head = document.createElement('tr');
  for (const k of headKeys) head.append(cell('th', t(k)));
  tbl.append(head);
  for (const r of rows) {
    const tr = document.createElement('tr');
    if (r.attrs) for (const [k, v] of Object.entries(r.attrs)) tr.dataset[k] = v;
    for (const v of r.cells) tr.append(cell('td', String(v)));
    tbl.append(tr);
  }
  return tbl;
}

/**
 * The stats overlay (`#stats-overlay`, toggled by `#stats-toggle`): per stream and simulcast
 * layer the resolution, frame rate and bitrate the browser measures, and the server's view
 * (`getStats` → `stats`: its bandwidth estimate, allocation, the layer it forwards, which of our
 * layers it wants). `collect()` returns {media, server, nameOf(peerId)}; refreshed every second
 * while open (the server is asked at most once a second, protocol.md §4.2).
 */
export class StatsOverlay {
  constructor({ root, toggle, collect, intervalMs = 1000 }) {
    this.root = root;
    this.toggleButton = toggle;
    this.collect = collect;
    this.intervalMs = intervalMs;
    this.timer = null;
    this.prev = new Map(); // key → {bytes, timestamp}
    this.last = null;      // the latest rendered rows (tests, debugging)
    toggle.addEventListener('click', () => this.toggle());
    root.querySelector('[data-action="close-stats"]')?.addEventListener('click', () => this.close());
    onLangChange(() => { if (this.lastData) this.render(this.lastData, false); });
  }

  get open() { return !this.root.hidden; }

  toggle() { if (this.open) this.close(); else this.show(); }

  show() {
    this.root.hidden = false;
    this.toggleButton.setAttribute('aria-pressed', 'true');
    this.tick();
  }

  close() {
    this.root.hidden = true;
    this.toggleButton.setAttribute('aria-pressed', 'false');
    clearTimeout(this.timer);
    this.timer = null;
  }

  async tick() {
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.open) return;
    try {
      this.render(await this.collect(), true);
    } catch (err) {
      console.warn('ketang: stats overlay', err);
    }
    if (this.open && !this.timer) this.timer = setTimeout(() => this.tick(), this.intervalMs);
  }

  /** Bit/s of a byte counter since the previous sample with the same key (null: first sample). */
  rate(key, bytes, timestamp) {
    const p = this.prev.get(key);
    const r = p && timestamp > p.timestamp && bytes >= p.bytes ? ((bytes - p.bytes) * 8 * 1000) / (timestamp - p.timestamp) : null;
    this.prev.set(key, { bytes, timestamp, rate: r });
    return r;
  }

  render(data, advance) {
    this.lastData = data;
    const { media, server, nameOf } = data;
    const sending = [];
    const RID_ORDER = { q: 0, h: 1, f: 2 };
    const outbound = [...media.outbound].sort((a, b) => String(a.source).localeCompare(String(b.source))
      || (RID_ORDER[a.rid] ?? 9) - (RID_ORDER[b.rid] ?? 9));
    for (const o of outbound) {
      const key = `out:${o.mid}:${o.rid ?? ''}`;
      const bps = advance ? this.rate(key, o.bytesSent, o.timestamp) : this.prev.get(key)?.rate ?? null;
      const pub = server?.publishing?.find((p) => p.source === o.source);
      const layer = pub?.layers?.find((l) => (l.rid ?? null) === (o.rid ?? null)) || (pub?.layers?.length === 1 ? pub.layers[0] : null);
      sending.push({
        attrs: { source: o.source ?? '', rid: o.rid ?? '' },
        cells: [
          o.source ?? o.kind, o.rid ?? t('statsNone'), o.kind === 'video' ? fmtRes(o.frameWidth, o.frameHeight) : t('statsNone'),
          o.kind === 'video' ? Math.round(o.framesPerSecond || 0) : t('statsNone'), fmtBps(bps), fmtBps(o.targetBitrate),
          o.active === false ? t('statsNo') : t('statsYes'),
          layer?.requested === false ? t('statsNo') : layer?.requested === true ? t('statsYes') : t('statsNone'),
          layer ? fmtBps(layer.bps) : t('statsNone'),
          o.qualityLimitationReason && o.qualityLimitationReason !== 'none' ? o.qualityLimitationReason : t('statsNone'),
        ],
        row: { ...o, bps, requested: layer ? layer.requested : null, serverBps: layer ? layer.bps : null },
      });
    }
    const receiving = [];
    for (const i of media.inbound) {
      const key = `in:${i.mid}`;
      const bps = advance ? this.rate(key, i.bytesReceived, i.timestamp) : this.prev.get(key)?.rate ?? null;
      const rcv = server?.receiving?.find((r) => r.trackId === i.trackId);
      const layerText = rcv && i.kind === 'video'
        ? `${rcv.targetLayer ?? t('statsNone')} / ${rcv.currentLayer ?? t('statsNone')} / ${rcv.layers}` : t('statsNone');
      receiving.push({
        attrs: { peerId: String(i.peerId ?? ''), source: i.source ?? '' },
        cells: [
          i.peerId !== null ? nameOf(i.peerId) : t('statsNone'), i.source ?? i.kind,
          i.kind === 'video' ? fmtRes(i.frameWidth, i.frameHeight) : t('statsNone'),
          i.kind === 'video' ? Math.round(i.framesPerSecond || 0) : t('statsNone'), fmtBps(bps), layerText, i.packetsLost,
        ],
        row: { ...i, bps, targetLayer: rcv?.targetLayer ?? null, currentLayer: rcv?.currentLayer ?? null, layers: rcv?.layers ?? null },
      });
    }
    this.last = { sending: sending.map((r) => r.row), receiving: receiving.map((r) => r.row), server };

    const body = this.root.querySelector('.stats-body');
    const summary = document.createElement('div');
    summary.className = 'stats-summary';
    const s1 = document.createElement('p');
    s1.textContent = server ? t('statsServer', {
      estimate: fmtBps(server.estimateBps), allocated: fmtBps(server.allocatedBps), probe: fmtBps(server.probeBps),
      down: fmtBps(server.downCapBps), up: fmtBps(server.upCapBps),
      transport: server.transport ? server.transport.replace('_', ' ').toUpperCase() : t('statsNone'),
    }) : t('statsServerNone');
    const tr = media.transport;
    const s2 = document.createElement('p');
    s2.textContent = t('statsClient', {
      out: fmtBps(tr?.availableOutgoingBitrate), rtt: tr?.rtt != null ? `${Math.round(tr.rtt * 1000)} ms` : t('statsNone'),
      local: tr?.localAddress ?? t('statsNone'), remote: tr?.remoteAddress ?? t('statsNone'),
    });
    summary.append(s1, s2);
    const h1 = cell('h3', t('statsSending'));
    const t1 = table(['statsColSource', 'statsColLayer', 'statsColResolution', 'statsColFps', 'statsColBitrate', 'statsColTarget',
      'statsColOn', 'statsColRequested', 'statsColServerBps', 'statsColLimit'], sending);
    t1.className = 'stats-sending';
    const h2 = cell('h3', t('statsReceiving'));
    const t2 = table(['statsColFrom', 'statsColSource', 'statsColResolution', 'statsColFps', 'statsColBitrate',
      'statsColServerLayer', 'statsColLost'], receiving);
    t2.className = 'stats-receiving';
    body.replaceChildren(summary, ...(sending.length ? [h1, t1] : []), ...(receiving.length ? [h2, t2] : []));
  }
}
