// End to end: a real Ketang server, headless chromium pages with fake camera and microphone.
// The server speaks HTTPS (a `ketang cert` certificate that chromium trusts by its public key)
// and the pages open it at https://ketang.test (127.0.0.2): not a localhost origin, so the
// cameras open only because the page is a trusted secure context.
//
//   (a) a teacher and two classrooms join one room and each decodes every other one's video;
//   (b) a classroom that leaves disappears from the others' pages;
//   (c) an expired link shows the localized "expired" error and never opens a WebSocket.
//
// Every wait is bounded; on failure the test prints what the pages showed, their console,
// and the server log.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

import { startServer, TEST_HOST, TEST_HOST_IP } from '../lib/server.mjs';
import { launchBrowser, openPage, describePage, PageLog } from '../lib/browser.mjs';
import { waitFor, sleep } from '../lib/util.mjs';

const JOIN_TIMEOUT_MS = 10_000;
const DECODE_TIMEOUT_MS = 10_000;
const LEAVE_TIMEOUT_MS = 10_000;

describe('three classrooms', () => {
  const log = new PageLog();
  const room = `e2e-${randomBytes(4).toString('hex')}`;
  const pages = {}; // key → openPage() result
  const peerIds = {}; // key → peerId
  let server = null;
  let browser = null;
  let failed = false;

  // Server and browser start with the first test (a start-up failure fails every test, with
  // its message, rather than only cancelling them).
  let started = null;
  const start = () => {
    started ??= (async () => {
      server = await startServer({ https: true, httpHost: TEST_HOST_IP });
      browser = await launchBrowser(); // after the server: it trusts the server's certificate
    })();
    return started;
  };

  // Wrap a test so that a failure prints the pages, their console and the server log.
  const step = (name, fn) => it(name, async () => {
    try {
      await start();
      await fn();
    } catch (err) {
      failed = true;
      const seen = {};
      for (const [key, p] of Object.entries(pages)) seen[key] = await describePage(p);
      if (Object.keys(seen).length) console.error(`--- pages ---\n${JSON.stringify(seen, null, 2)}`);
      throw err;
    }
  });

  after(async () => {
    if (failed && log.lines.length) console.error(`--- browser log ---\n${log.text()}`);
    if (failed && server) console.error(`--- server log (${server.logPath}) ---\n${server.log()}`);
    await browser?.close().catch(() => {});
    await server?.stop();
  });

  const PEOPLE = [
    { key: 'teacher', role: 'teacher', name: 'Ms Li 李老师' },
    { key: 'c1', role: 'classroom', name: 'Dongshan 3-2', classroom: 'ds-3-2' },
    // Markup in a name must show as text, never become elements.
    { key: 'c2', role: 'classroom', name: 'Xishan <i>4-1</i>', classroom: 'xs-4-1' },
  ];

  const ketangState = (p) => p.page.evaluate(() => ({
    state: window.ketang?.state, peerId: window.ketang?.peerId, lastError: window.ketang?.lastError,
    connectionState: window.ketang?.connectionState,
  }));

  const videoStats = (p) => p.page.evaluate(() => window.ketang.inboundVideoStats());

  step('(a) a teacher and two classrooms decode each other\'s video', async () => {
    for (const who of PEOPLE) {
      const token = await server.mintToken({ room, role: who.role, name: who.name, classroom: who.classroom });
      pages[who.key] = await openPage(browser, server.roomUrl(room, token, server.origin(TEST_HOST)), { label: who.key, log });
      assert.equal(pages[who.key].response.status(), 200, `GET /r/${room} for ${who.key}`);
    }
    const origin = await pages.teacher.page.evaluate(() => ({ origin: location.origin, secure: window.isSecureContext }));
    assert.deepEqual(origin, { origin: server.origin(TEST_HOST), secure: true }, 'a trusted https origin that is not localhost');

    const joined = await waitFor('all three pages to reach state "joined"', async () => {
      const states = {};
      for (const who of PEOPLE) states[who.key] = await ketangState(pages[who.key]);
      const ok = Object.values(states).every((s) => s.state === 'joined' && Number.isInteger(s.peerId));
      return { ok, seen: states };
    }, { timeoutMs: JOIN_TIMEOUT_MS });
    for (const who of PEOPLE) peerIds[who.key] = joined.seen[who.key].peerId;
    assert.equal(new Set(Object.values(peerIds)).size, 3, `distinct peer ids: ${JSON.stringify(peerIds)}`);

    // For every (viewer, other) pair: a camera stream from `other` whose framesDecoded grows.
    const decoding = new Set();
    const pairs = [];
    for (const viewer of PEOPLE) for (const other of PEOPLE) if (viewer !== other) pairs.push([viewer.key, other.key]);
    await waitFor('every page to decode growing video from every other participant', async () => {
      const first = {};
      for (const who of PEOPLE) first[who.key] = await videoStats(pages[who.key]);
      await sleep(600);
      const second = {};
      for (const who of PEOPLE) second[who.key] = await videoStats(pages[who.key]);
      for (const [viewer, other] of pairs) {
        const now = second[viewer].find((s) => s.peerId === peerIds[other] && s.source === 'camera');
        const then = now && first[viewer].find((s) => s.mid === now.mid);
        if (now && then && now.framesDecoded > then.framesDecoded && now.frameHeight > 0) decoding.add(`${viewer}<-${other}`);
      }
      const missing = pairs.map(([v, o]) => `${v}<-${o}`).filter((k) => !decoding.has(k));
      return { ok: missing.length === 0, seen: { missing, peerIds, stats: second } };
    }, { timeoutMs: DECODE_TIMEOUT_MS, intervalMs: 0 });

    // The teacher's page shows a tile per classroom, named as plain text.
    const tiles = await pages.teacher.page.evaluate((ids) => ids.map((id) => {
      const tile = document.querySelector(`.tile[data-peer-id="${id}"]`);
      return tile && {
        name: tile.querySelector('.name').textContent,
        video: !!tile.querySelector('video[data-source="camera"]'),
        audio: !!tile.querySelector('audio[data-source="mic"]'),
        elementsInName: tile.querySelector('.name').children.length,
      };
    }), [peerIds.c1, peerIds.c2]);
    assert.deepEqual(tiles, [
      { name: 'Dongshan 3-2', video: true, audio: true, elementsInName: 0 },
      { name: 'Xishan <i>4-1</i>', video: true, audio: true, elementsInName: 0 },
    ]);
  });

  step('(b) a classroom that leaves disappears from the other pages', async () => {
    assert.ok(peerIds.c2, 'test (a) must have joined classroom 2');
    await pages.c2.page.click('#leave', { timeout: 5000 });

    for (const viewer of ['teacher', 'c1']) {
      await waitFor(`classroom 2's tile (data-peer-id=${peerIds.c2}) to vanish from ${viewer}'s page`, async () => {
        const seen = await pages[viewer].page.evaluate((id) => ({
          c2Elements: document.querySelectorAll(`[data-peer-id="${id}"]`).length,
          tiles: [...document.querySelectorAll('[data-peer-id]')].map((e) => e.dataset.peerId),
          participants: [...window.ketang.participants.keys()],
        }), peerIds.c2);
        return { ok: seen.c2Elements === 0, seen };
      }, { timeoutMs: LEAVE_TIMEOUT_MS });
    }

    // The one who left sees "you left" with a rejoin button; the teacher still has classroom 1.
    const left = await pages.c2.page.evaluate(() => ({
      state: window.ketang.state,
      panelVisible: !document.getElementById('ended-panel').hidden,
      rejoinVisible: !!document.getElementById('rejoin')?.offsetParent,
      text: document.getElementById('ended-panel').innerText,
    }));
    assert.equal(left.state, 'left', JSON.stringify(left));
    assert.ok(left.panelVisible && left.rejoinVisible, JSON.stringify(left));
    assert.match(left.text, /you left/i);
    const c1Tile = await pages.teacher.page.locator(`.tile[data-peer-id="${peerIds.c1}"]`).count();
    assert.equal(c1Tile, 1, 'classroom 1 is still on the teacher\'s page');
  });

  step('(c) an expired link shows the localized "expired" error and opens no WebSocket', async () => {
    // `ketang token` refuses to mint a link that is already expired (--not-before 3 h ago with
    // --ttl 1h fails), so sign one with the config's secret: valid from 3 h ago for 1 h.
    const now = Math.floor(Date.now() / 1000);
    const claims = { room, role: 'classroom', name: 'Late classroom', classroom: 'late-1' };
    const token = server.signToken({ ...claims, nbf: now - 3 * 3600, exp: now - 2 * 3600 });
    const url = server.roomUrl(room, token);
    // Control: the same signing with a current validity is accepted, so expiry is the only fault.
    const control = server.signToken({ ...claims, nbf: now - 60, exp: now + 3600 });
    const controlRes = await server.fetch(`/r/${room}/session?t=${control}`);
    assert.equal(controlRes.status, 200, `self-signed valid token: ${await controlRes.text()}`);
    const expiredRes = await server.fetch(`/r/${room}/session?t=${token}`);
    const expiredBody = await expiredRes.json().catch(() => null);
    assert.equal(expiredRes.status, 401);
    assert.equal(expiredBody?.error, 'tokenExpired', JSON.stringify(expiredBody));

    const expectations = [['en-US', /expired/i], ['zh-CN', /过期/]];
    const opened = [];

    // As a person opens the link: whatever page the server answers says, in the browser's
    // language, that the link expired.
    for (const [locale, expected] of expectations) {
      const direct = await openPage(browser, url, { label: `expired-link-${locale}`, log, locale });
      pages[`expired-link-${locale}`] = direct;
      opened.push(direct);
      assert.ok([200, 401].includes(direct.response.status()), `GET /r/${room} answered ${direct.response.status()}`);
      await waitFor(`the opened link to say that it expired (${locale})`, async () => {
        const text = await direct.page.evaluate(() => document.body.innerText);
        return { ok: expected.test(text), seen: text.slice(0, 800) };
      }, { timeoutMs: 5000 });
    }

    // The client's own panel: room.html served for the link (as for a page that was opened
    // before the link expired), talking to the real /session endpoint. Both languages.
    const roomHtml = await (await server.fetch('/static/room.html')).text();
    assert.match(roomHtml, /\/static\/js\/room\.js/, 'GET /static/room.html serves the room page');
    for (const [locale, expected] of expectations) {
      const p = await openPage(browser, url, {
        label: `expired-${locale}`, log, locale,
        beforeGoto: (page) => page.route((u) => u.pathname === `/r/${room}`,
          (route) => route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: roomHtml })),
      });
      pages[`expired-${locale}`] = p;
      opened.push(p);
      await waitFor(`the ${locale} error panel for tokenExpired`, async () => {
        const seen = await p.page.evaluate(() => {
          const panel = document.getElementById('error-panel');
          return {
            visible: !!panel && !panel.hidden && panel.offsetParent !== null,
            code: panel?.dataset.errorCode,
            text: panel?.innerText,
            state: window.ketang?.state,
            lastError: window.ketang?.lastError,
          };
        });
        const ok = seen.visible && seen.code === 'tokenExpired' && expected.test(seen.text) && seen.state === 'error';
        return { ok, seen };
      }, { timeoutMs: 5000 });
    }

    await sleep(1500); // a WebSocket opened late would show up here
    for (const p of opened) {
      assert.deepEqual(p.websockets, [], `${p.label} must not open a WebSocket`);
    }
  });
});
