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
