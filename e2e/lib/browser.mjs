// Launch Debian's chromium through playwright-core and open room pages, each in a fresh
// browser context (its own profile: storage, permissions, cookies) with fake camera and mic.
//
// Env: CHROMIUM (default /usr/bin/chromium).

import assert from 'node:assert/strict';
import { after } from 'node:test';

import { chromium } from 'playwright-core';

import { trustArgs } from './server.mjs';

/**
 * What chromium refused under the server's Content Security Policy, on any page opened with
 * `openPage`. Every test file that uses this module fails at its end if one did: the pages
 * must work under the policy (no inline scripts or styles, no foreign origins).
 */
export const cspViolations = [];
const CSP_REFUSAL = /Content Security Policy|Refused to (load|execute|apply|connect|frame|evaluate)/;
after(() => {
  assert.deepEqual(cspViolations, [], 'a page broke the Content Security Policy');
});

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--autoplay-policy=no-user-gesture-required',
];

/**
 * Launch chromium. `executablePath` may be a wrapper script (e.g. one that runs chromium in
 * another network namespace: playwright talks to it over stdio pipes); `extraArgs` are added,
 * and so are the flags trusting the HTTPS test servers started before (`trustArgs`).
 *
 * Screen capture: with `--use-fake-device-for-media-stream` and `--use-fake-ui-for-media-stream`
 * (both above), getDisplayMedia() is answered without a picker by chromium's fake desktop
 * capturer ("screen:-3:0", 1280x720 moving frames), so the page's real screen-share code runs.
 */
export async function launchBrowser({ executablePath = CHROMIUM, extraArgs = [] } = {}) {
  const args = [...CHROMIUM_ARGS, ...trustArgs(), ...extraArgs];
  return chromium.launch({ executablePath, headless: true, args, timeout: 30_000 });
}

/** Collects page console errors, page errors and WebSocket opens for the test log. */
export class PageLog {
  constructor() {
    this.lines = [];
  }

  add(line) {
    this.lines.push(`${new Date().toISOString()} ${line}`);
  }

  text() {
    return this.lines.join('\n');
  }
}

/**
 * Open `url` in a new context. Returns {page, context, label, websockets, log}.
 * `websockets` lists the URLs of every WebSocket the page opened.
 * @param {import('playwright-core').Browser} browser
 * @param {string} url
 * @param {{label: string, log: PageLog, locale?: string, beforeGoto?: (page) => Promise<void>}} opts
 */
export async function openPage(browser, url, { label, log, locale = 'en-US', beforeGoto = null, viewport = { width: 1280, height: 720 } }) {
  const context = await browser.newContext({
    locale,
    permissions: ['camera', 'microphone'],
    viewport,
  });
  const page = await context.newPage();
  const websockets = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') log.add(`[${label}] console.${msg.type()}: ${msg.text()}`);
    if (CSP_REFUSAL.test(msg.text())) cspViolations.push(`[${label}] ${msg.text()}`);
  });
  page.on('pageerror', (err) => log.add(`[${label}] page error: ${err.stack || err.message}`));
  page.on('requestfailed', (req) => log.add(`[${label}] request failed: ${req.url()} ${req.failure()?.errorText}`));
  page.on('websocket', (ws) => {
    websockets.push(ws.url());
    log.add(`[${label}] websocket opened: ${ws.url().replace(/t=[^&]+/, 't=…')}`);
    ws.on('close', () => log.add(`[${label}] websocket closed`));
  });
  if (beforeGoto) await beforeGoto(page);
  const response = await page.goto(url, { waitUntil: 'load', timeout: 15_000 });
  return { page, context, label, websockets, log, response };
}

/** What a page shows and knows, for failure messages. */
export async function describePage(p) {
  try {
    return await p.page.evaluate(async () => {
      const k = window.ketang;
      const bounded = (promise) => Promise.race([promise, new Promise((r) => setTimeout(() => r('(no answer in 3 s)'), 3000))]);
      const server = k?.serverStats ? await bounded(k.serverStats()).catch((e) => String(e)) : null;
      const outbound = k?.outboundVideoStats ? await bounded(k.outboundVideoStats()).catch((e) => String(e)) : null;
      const info = k ? {
        state: k.state,
        peerId: k.peerId,
        role: k.role,
        wsState: k.wsState,
        connectionState: k.connectionState,
        lastError: k.lastError,
        participants: [...k.participants.values()].map((p) => ({ peerId: p.peerId, name: p.name, role: p.role })),
        trackMap: [...k.trackMap.values()],
        iceConnectionState: k.iceConnectionState,
        roomState: k.roomState && { seq: k.roomState.seq, mode: k.roomState.mode, stage: k.roomState.stage,
          hands: k.roomState.hands, screen: k.roomState.screen,
          participants: k.roomState.participants?.map((p) => ({ peerId: p.peerId, onStage: p.onStage, reconnecting: p.reconnecting, micMuted: p.micMuted })) },
        errors: k.errors?.slice(-10),
        reconnects: k.reconnects,
        iceRestarts: k.iceRestarts,
        rebuilds: k.rebuilds,
        received: k.received.slice(-30),
        server,
        outbound,
      } : null;
      const tiles = [...document.querySelectorAll('[data-peer-id]')].map((e) => e.dataset.peerId);
      return { url: location.pathname, ketang: info, tiles, text: document.body.innerText.slice(0, 1500) };
    });
  } catch (err) {
    return { error: String(err) };
  }
}
