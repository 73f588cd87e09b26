// End to end: simulcast publishing and dynacast (issue 6) with a real Ketang server and
// headless chromium pages with fake camera and microphone.
//
//   (1) a classroom decodes the teacher's camera: the teacher's outbound-rtp shows rids q/h/f
//       at about 180/360/720 lines, all sending; the classroom publishes q and h (180/360);
//   (2) the stats overlay (toggle on the room page) shows each layer with the server's view;
//   (3) dynacast: the only classroom's downlink (its chromium in a network namespace) is
//       limited to 250 kbit/s, so it gets the teacher's q layer only; nobody needs h and f,
//       the server says so (`publishLayers`) and the teacher's page stops sending them
//       (outbound-rtp `active: false`, no frames sent) while q goes on and is decoded.
//
// Every wait is bounded; on failure the test prints what the pages showed, their console,
// and the server log.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

import { startServer } from '../lib/server.mjs';
import { launchBrowser, openPage, describePage, PageLog } from '../lib/browser.mjs';
import { NetNs } from '../lib/netns.mjs';
import { waitFor, sleep } from '../lib/util.mjs';

const JOIN_TIMEOUT_MS = 15_000;
const EXPECTED_HEIGHT = { q: 180, h: 360, f: 720 };

/** frameHeight within 10 % of the layer's nominal height (encoders round to even sizes). */
const nearHeight = (rid, h) => Math.abs(h - EXPECTED_HEIGHT[rid]) <= EXPECTED_HEIGHT[rid] * 0.1;

/** The page's camera layers: rid → {active, frameHeight, framesSent, sending} from two samples `gapMs` apart. */
async function cameraLayers(p, gapMs = 700) {
  const sample = () => p.page.evaluate(async () => (await window.ketang.outboundVideoStats()).filter((s) => s.source === 'camera'));
  const a = await sample();
  await sleep(gapMs);
  const b = await sample();
  const out = {};
  for (const s of b) {
    const before = a.find((x) => x.rid === s.rid);
    out[s.rid ?? '-'] = { active: s.active, frameHeight: s.frameHeight, framesSent: s.framesSent,
      sending: !!before && s.framesSent > before.framesSent, limit: s.qualityLimitationReason };
  }
  return out;
}

/** Sum of framesDecoded of `peerId`'s camera on page `p`, and the streams' heights. */
async function decodedCamera(p, peerId) {
  return p.page.evaluate(async (peerId) => {
    const mine = (await window.ketang.inboundVideoStats()).filter((s) => s.peerId === peerId && s.source === 'camera');
    return { frames: mine.reduce((n, s) => n + s.framesDecoded, 0), heights: mine.map((s) => s.frameHeight) };
  }, peerId);
}

/** Server, browsers and pages of one describe; failures print the pages, console and server log. */
function harness(startFn) {
  const h = { log: new PageLog(), pages: {}, id: {}, failed: false, server: null, browsers: [], cleanups: [] };
  h.room = `simulcast-${randomBytes(4).toString('hex')}`;
  let started = null;
  h.start = () => {
    started ??= startFn(h);
    return started;
  };
  h.step = (name, fn) => it(name, async () => {
    try {
      await h.start();
      await fn();
    } catch (err) {
      h.failed = true;
      const seen = {};
      for (const [key, p] of Object.entries(h.pages)) seen[key] = await describePage(p);
      if (Object.keys(seen).length) console.error(`--- pages ---\n${JSON.stringify(seen, null, 2)}`);
      throw err;
    }
  });
  h.finish = async () => {
    if (h.failed && h.log.lines.length) console.error(`--- browser log ---\n${h.log.text()}`);
    if (h.failed && h.server) console.error(`--- server log (${h.server.logPath}) ---\n${h.server.log()}`);
    for (const b of h.browsers) await b.close().catch(() => {});
    await h.server?.stop();
    for (const fn of h.cleanups.reverse()) await fn();
  };
  /** Open `key`'s page (in `browser`, from `base`) and wait until it has joined with media connected. */
  h.join = async (key, role, name, classroom, { browser = h.browsers[0], base = h.server.baseUrl } = {}) => {
    const token = await h.server.mintToken({ room: h.room, role, name, classroom });
    h.pages[key] = await openPage(browser, h.server.roomUrl(h.room, token, base), { label: key, log: h.log });
    const j = await waitFor(`${key} to join`, async () => {
      const s = await h.pages[key].page.evaluate(() => ({ state: window.ketang?.state, peerId: window.ketang?.peerId, pc: window.ketang?.connectionState }));
      return { ok: s.state === 'joined' && s.pc === 'connected', seen: s };
    }, { timeoutMs: JOIN_TIMEOUT_MS });
    h.id[key] = j.seen.peerId;
  };
  return h;
}

describe('simulcast', () => {
  const h = harness(async (hh) => {
    hh.server = await startServer();
    hh.browsers.push(await launchBrowser());
  });
  const { pages, id } = h;
  after(() => h.finish());

  h.step('(1) a classroom decodes the teacher: q/h/f go out at 180/360/720 lines', async () => {
    await h.join('teacher', 'teacher', 'Ms Li 李老师');
    const encodings = await pages.teacher.page.evaluate(() => window.ketang.session.transceiverFor('camera').sender.getParameters()
      .encodings.map((e) => ({ rid: e.rid, scale: e.scaleResolutionDownBy, maxBitrate: e.maxBitrate })));
    assert.deepEqual(encodings, [
      { rid: 'q', scale: 4, maxBitrate: 150_000 },
      { rid: 'h', scale: 2, maxBitrate: 500_000 },
      { rid: 'f', scale: 1, maxBitrate: 1_500_000 },
    ]);
    await h.join('c1', 'classroom', 'Dongshan 3-2', 'ds-3-2');
    // The classroom decodes the teacher's camera (growing framesDecoded).
    await waitFor('the classroom to decode the teacher\'s camera', async () => {
      const f = () => pages.c1.page.evaluate(async (peerId) => (await window.ketang.inboundVideoStats())
        .filter((s) => s.peerId === peerId && s.source === 'camera').reduce((n, s) => n + s.framesDecoded, 0), id.teacher);
      const a = await f();
      await sleep(500);
      const b = await f();
      return { ok: b > a, seen: { a, b } };
    }, { timeoutMs: 10_000, intervalMs: 0 });
    // The server wants the upper layers again once the classroom's allocation reaches them; the
    // teacher's browser turns them on and its encoder brings them up to size as its bandwidth
    // estimate grows.
    const layers = await waitFor('the teacher to send q/h/f at about 180/360/720 lines', async () => {
      const l = await cameraLayers(pages.teacher);
      const ok = ['q', 'h', 'f'].every((rid) => l[rid]?.active === true && l[rid].sending && nearHeight(rid, l[rid].frameHeight));
      return { ok, seen: l };
    }, { timeoutMs: 30_000, intervalMs: 0 });
    console.log(`# teacher camera layers: ${JSON.stringify(layers.seen)}`);
    // The classroom still decodes the teacher meanwhile, at one of the layers' sizes.
    const decoded = await pages.c1.page.evaluate(async (peerId) => (await window.ketang.inboundVideoStats())
      .find((s) => s.peerId === peerId && s.source === 'camera'), id.teacher);
    assert.ok([180, 360, 720].some((h) => Math.abs(decoded.frameHeight - h) <= h * 0.1), `classroom decodes a layer's size: ${JSON.stringify(decoded)}`);
    // The classroom publishes two layers, q and h.
    const c1Encodings = await pages.c1.page.evaluate(() => window.ketang.session.transceiverFor('camera').sender.getParameters().encodings
      .map((e) => ({ rid: e.rid, scale: e.scaleResolutionDownBy, maxBitrate: e.maxBitrate })));
    assert.deepEqual(c1Encodings, [
      { rid: 'q', scale: 4, maxBitrate: 150_000 },
      { rid: 'h', scale: 2, maxBitrate: 500_000 },
    ]);
    await waitFor('the classroom to send q and h at about 180 and 360 lines', async () => {
      const l = await cameraLayers(pages.c1);
      return { ok: ['q', 'h'].every((rid) => l[rid]?.sending === true && nearHeight(rid, l[rid].frameHeight)), seen: l };
    }, { timeoutMs: 15_000, intervalMs: 0 });
  });

  h.step('(2) the stats overlay shows each layer and the server\'s view', async () => {
    assert.ok(id.c1, 'test (1) must have joined the classroom');
    const p = pages.teacher.page;
    await p.click('#stats-toggle', { timeout: 5000 });
    await p.locator('#stats-overlay').waitFor({ state: 'visible', timeout: 3000 });
    const seen = await waitFor('the overlay to show the camera layers with bitrates and the server\'s numbers', async () => {
      const s = await p.evaluate(() => {
        const o = window.ketang.statsOverlay.last;
        return {
          rows: [...document.querySelectorAll('#stats-overlay .stats-sending tr[data-source="camera"]')].map((r) => r.dataset.rid),
          receiving: [...document.querySelectorAll('#stats-overlay .stats-receiving tr[data-source="camera"]')].map((r) => Number(r.dataset.peerId)),
          summary: document.querySelector('#stats-overlay .stats-summary')?.textContent ?? '',
          sending: o?.sending.filter((r) => r.source === 'camera').map((r) => ({ rid: r.rid, bps: r.bps, requested: r.requested, serverBps: r.serverBps, frameHeight: r.frameHeight })),
          estimate: o?.server?.estimateBps ?? null,
        };
      });
      const ok = ['q', 'h', 'f'].every((rid) => s.rows.includes(rid)) && s.receiving.includes(id.c1)
        && s.sending?.every((r) => r.bps > 0 && r.requested !== undefined) && s.sending?.some((r) => r.serverBps > 0)
        && Number.isFinite(s.estimate) && /Server: estimate/.test(s.summary);
      return { ok, seen: s };
    }, { timeoutMs: 8000 });
    console.log(`# overlay: ${JSON.stringify(seen.seen.sending)} estimate ${seen.seen.estimate}`);
    await p.click('#stats-toggle');
    assert.equal(await p.locator('#stats-overlay').isVisible(), false, 'the toggle hides the overlay again');
  });
});

describe('dynacast', () => {
  let ns = null;
  const h = harness(async (hh) => {
    assert.equal(process.getuid?.(), 0, 'this test needs root for ip netns / ip link / tc (CI runs as root)');
    ns = new NetNs();
    hh.cleanups.push(async () => {
      const problems = await ns.destroy();
      assert.deepEqual(problems, [], 'network namespace and links removed');
    });
    await ns.create();
    // As in lesson.test.mjs (5): HTTP on every interface, media on the host's veth address.
    hh.server = await startServer({ httpHost: '0.0.0.0', mediaHost: ns.hostIp, tlsHosts: [ns.hostIp] });
    hh.origin = hh.server.origin(ns.hostIp);
    hh.browsers.push(await launchBrowser());
    hh.browsers.push(await launchBrowser({
      executablePath: ns.wrapper,
      extraArgs: [`--unsafely-treat-insecure-origin-as-secure=${hh.origin}`],
    }));
  });
  const { pages, id } = h;
  after(() => h.finish());

  h.step('(3) layers nobody needs are paused: a 250 kbit/s classroom gets q, the teacher stops h and f', async () => {
    await h.join('teacher', 'teacher', 'Ms Li');
    await h.join('c1', 'classroom', 'Slow classroom', 'slow-1', { browser: h.browsers[1], base: h.origin });
    await waitFor('the slow classroom to decode the teacher', async () => {
      const a = await decodedCamera(pages.c1, id.teacher);
      await sleep(500);
      const b = await decodedCamera(pages.c1, id.teacher);
      return { ok: b.frames > a.frames, seen: { a, b } };
    }, { timeoutMs: 10_000, intervalMs: 0 });
    // The only subscriber's downlink: 250 kbit/s. Its estimate falls, it gets the q layer only
    // (h alone would not fit), and after the server's hold time (5 s) h and f are wanted by
    // nobody. Everything is checked in one snapshot: the allocator may raise the classroom
    // again later, when its estimate creeps up (then h is needed again, rightly).
    await ns.limitDownlink(250);
    const mid = await pages.teacher.page.evaluate(() => window.ketang.session.transceiverFor('camera').mid);
    const seen = await waitFor('q only: the classroom gets q, the server tells the teacher, its page stops h and f, the report agrees', async () => {
      const layers = await pages.teacher.page.evaluate((m) => window.ketang.publishLayers.get(m) ?? null, mid);
      const on = (rid) => layers?.find((l) => l.rid === rid)?.active;
      const told = on('q') === true && on('h') === false && on('f') === false;
      if (!told) return { ok: false, seen: { layers } };
      const sending = await cameraLayers(pages.teacher);
      const stopped = sending.q?.active === true && sending.q.sending && sending.h?.active === false && !sending.h.sending
        && sending.f?.active === false && !sending.f.sending;
      const report = await pages.teacher.page.evaluate(() => window.ketang.serverStats());
      const requested = report?.publishing?.find((p) => p.source === 'camera')?.layers.map((l) => [l.rid, l.requested]);
      const c1Report = await pages.c1.page.evaluate(() => window.ketang.serverStats());
      const c1Target = c1Report?.receiving?.find((r) => r.publisher === id.teacher && r.source === 'camera')?.targetLayer;
      const ok = stopped && JSON.stringify(requested) === JSON.stringify([['q', true], ['h', false], ['f', false]]) && c1Target === 0;
      return { ok, seen: { layers, sending, requested, c1Target, estimate: c1Report?.estimateBps } };
    }, { timeoutMs: 30_000, intervalMs: 200 });
    console.log(`# dynacast: ${JSON.stringify(seen.seen)}`);
    // The classroom still decodes the teacher meanwhile.
    await waitFor('the slow classroom to go on decoding the teacher', async () => {
      const a = await decodedCamera(pages.c1, id.teacher);
      await sleep(500);
      const b = await decodedCamera(pages.c1, id.teacher);
      return { ok: b.frames > a.frames, seen: { a, b } };
    }, { timeoutMs: 10_000, intervalMs: 0 });
  });
});
