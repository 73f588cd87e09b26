// Real network, real browsers (issues 6 and 11): a teacher on the room page in Chromium
// publishes the camera in three simulcast layers (q 320x180, h 640x360, f 1280x720), with
// dynacast on (the server tells the page which layers anyone needs); a second Chromium in its
// own network namespace watches over WHEP through a veth whose host side is shaped with
// `tc tbf`: 5 Mbit/s, then 800 kbit/s, then 5 Mbit/s again. The subscriber's getStats shows
// the picture height follow the link down and back up, with little freezing (W3C
// `totalFreezesDuration`), and never the top layer on the slow link once it has settled:
// dynacast switching the unneeded top layer off must not make it look cheap when it restarts.
//
// The subscriber uses the browser's WebRTC API directly (not the room app), so what is
// measured is the SFU's allocation and nothing of the app's layout.
//
// KETANG_BANDWIDTH_DOC=DIR writes the measured timeline (timeline.json) and a plot
// (timeline.svg) into DIR, for docs/bandwidth.md.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

import { launchBrowser, openPage, PageLog } from '../lib/browser.mjs';
import { NetNs } from '../lib/netns.mjs';
import { startServer } from '../lib/server.mjs';
import { sleep, waitFor } from '../lib/util.mjs';
import { timelineSvg } from '../lib/plot.mjs';

const execFileP = promisify(execFile);

/**
 * Phases of the link: [label, rate for tc, seconds]. The first is the start of the lesson
 * (the estimate ramps up from nothing); freezes are counted from the second on, across the
 * drop and the recovery.
 */
const PHASES = [
  ['5 Mbit/s (start)', '5mbit', 15],
  ['5 Mbit/s', '5mbit', 10],
  ['800 kbit/s', '800kbit', 20],
  ['5 Mbit/s', '5mbit', 25],
];
const [START, FAST, SLOW, BACK] = [0, 1, 2, 3];
/** After the drop, the layers have this long to settle before every sample must fit. */
const SETTLE_S = 5;
const SAMPLE_MS = 500;

/**
 * The teacher's camera: a moving test pattern with sensor-like noise (ffmpeg `testsrc2` +
 * `noise`). Chromium's built-in fake camera is so easy to compress that its full layer needs
 * only ~700 kbit/s, which an 800 kbit/s link carries; a real classroom camera's grain keeps
 * the full layer near its 1.5 Mbit/s while the downscaled layers stay cheap.
 */
async function cameraFile(dir) {
  const file = path.join(dir, 'camera.y4m');
  await execFileP('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi',
    '-i', 'testsrc2=size=1280x720:rate=30,noise=alls=14:allf=t+u',
    '-t', '3', '-pix_fmt', 'yuv420p', file], { timeout: 60_000 });
  return file;
}

async function tc(...args) {
  try {
    await execFileP('tc', args, { timeout: 10_000 });
  } catch (err) {
    throw new Error(`tc ${args.join(' ')} failed: ${err.stderr?.trim() || err.message}`);
  }
}

/** Shapes what the host sends into the namespace (the subscriber's downlink). */
async function shape(dev, rate, first) {
  // A 100 ms queue at the link rate, as an access router would have.
  await tc('qdisc', first ? 'add' : 'change', 'dev', dev, 'root', 'tbf', 'rate', rate, 'burst', '20kb', 'latency', '100ms');
}

// Runs in the subscriber's page (inside the namespace): WHEP, video shown in a <video>.
async function watch({ room, token }) {
  const pc = new RTCPeerConnection();
  pc.addTransceiver('audio', { direction: 'recvonly' });
  pc.addTransceiver('video', { direction: 'recvonly' });
  const media = new MediaStream();
  pc.ontrack = (e) => {
    media.addTrack(e.track);
    const v = document.querySelector('video') || document.body.appendChild(document.createElement('video'));
    v.muted = true;
    v.autoplay = true;
    v.playsInline = true;
    v.srcObject = media;
  };
  await pc.setLocalDescription(await pc.createOffer());
  const res = await fetch(`/whep/${room}`, {
    method: 'POST',
    headers: { 'content-type': 'application/sdp', authorization: `Bearer ${token}` },
    body: pc.localDescription.sdp,
  });
  if (res.status !== 201) throw new Error(`WHEP ${res.status}: ${await res.text()}`);
  await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  window.ketangPc = pc;
}

// Runs in the teacher's room page: each simulcast layer of the camera as the encoder sends it.
async function outbound() {
  const out = {};
  for (const s of await window.ketang.outboundVideoStats()) {
    if (s.source !== 'camera') continue;
    out[s.rid ?? '-'] = { active: s.active, h: s.frameHeight ?? 0, sent: s.framesSent ?? 0, limit: s.qualityLimitationReason };
  }
  return out;
}

// Runs in the subscriber's page: the inbound video and audio as getStats reports them.
async function inbound() {
  const pc = window.ketangPc;
  if (!pc) return null;
  const out = { video: null, audio: null, state: pc.connectionState };
  for (const s of (await pc.getStats()).values()) {
    if (s.type !== 'inbound-rtp') continue;
    if (s.kind === 'video') {
      out.video = {
        frameHeight: s.frameHeight ?? 0,
        framesDecoded: s.framesDecoded ?? 0,
        bytesReceived: s.bytesReceived ?? 0,
        freezeCount: s.freezeCount ?? 0,
        totalFreezesDuration: s.totalFreezesDuration ?? 0,
        packetsLost: s.packetsLost ?? 0,
      };
    } else if (s.kind === 'audio') {
      out.audio = { packetsReceived: s.packetsReceived ?? 0, bytesReceived: s.bytesReceived ?? 0 };
    }
  }
  return out;
}

describe('bandwidth adaptation on a shaped link', { timeout: 180_000 }, () => {
  let ns;
  let server;
  let hostBrowser;
  let nsBrowser;

  before(async () => {
    ns = await new NetNs().create();
    server = await startServer({
      httpHost: '0.0.0.0',
      mediaHost: '0.0.0.0',
      advertise: ['127.0.0.1', ns.hostIp],
      tlsHosts: [ns.hostIp],
    });
    hostBrowser = await launchBrowser({
      extraArgs: [`--use-file-for-fake-video-capture=${await cameraFile(server.dir)}`],
    });
    nsBrowser = await launchBrowser({ executablePath: ns.wrapper });
  });

  after(async () => {
    await nsBrowser?.close().catch(() => {});
    await hostBrowser?.close().catch(() => {});
    await server?.stop();
    const problems = (await ns?.destroy()) ?? [];
    assert.deepEqual(problems, [], 'the namespace and veth are gone');
  });

  test('the picture follows 5 Mbit/s → 800 kbit/s → 5 Mbit/s, freezing under 2 s', async () => {
    const room = `bw-${Date.now().toString(36)}`;
    const teacher = await server.mintToken({ room, role: 'teacher', name: 'Ms Li' });
    const adminKey = await server.createAdminKey();
    // The server's view of the subscriber: estimate, allocation, target and current layer.
    const serverView = async () => {
      const res = await server.fetch(`/api/v1/rooms/${room}/bandwidth`, {
        headers: { authorization: `Bearer ${adminKey}` },
      });
      if (res.status !== 200) return { status: res.status };
      const body = await res.json();
      const list = Array.isArray(body) ? body : body.participants ?? [];
      const v = list.find((p) => (p.receiving ?? []).some((r) => r.source === 'camera'));
      if (!v) return {};
      const cam = v.receiving.find((r) => r.source === 'camera');
      return {
        estimateKbps: v.estimateBps == null ? null : Math.round(v.estimateBps / 1000),
        allocatedKbps: Math.round(v.allocatedBps / 1000),
        target: cam.targetLayer,
        current: cam.currentLayer,
      };
    };
    const viewer = await server.mintToken({ room, role: 'viewer', name: 'Class 3' });

    await shape(ns.hostIf, PHASES[0][1], true);
    const log = new PageLog();
    const { page: pub } = await openPage(hostBrowser, server.roomUrl(room, teacher), { label: 'teacher', log });
    await waitFor('the teacher to join', async () => {
      const s = await pub.evaluate(() => ({ state: window.ketang?.state, pc: window.ketang?.connectionState }));
      return { ok: s.state === 'joined' && s.pc === 'connected', seen: s };
    }, { timeoutMs: 20_000 });
    const sub = await nsBrowser.newPage();
    await sub.goto(`${server.origin(ns.hostIp)}/healthz`);
    await sub.evaluate(watch, { room, token: viewer });
    await waitFor('the subscriber to decode video', async () => {
      const s = await sub.evaluate(inbound);
      return { ok: (s?.video?.framesDecoded ?? 0) > 0, seen: s };
    }, { timeoutMs: 20_000 });

    // Sample through the phases; the link changes at each phase's start.
    const start = Date.now();
    const samples = [];
    const first = await sub.evaluate(inbound);
    let prev = { t: 0, ...first };
    const ends = [];
    let beforeFast = null;
    for (const [i, [label, rate, seconds]] of PHASES.entries()) {
      if (i > 0) await shape(ns.hostIf, rate, false);
      if (i === FAST) beforeFast = samples[samples.length - 1];
      const end = Date.now() + seconds * 1000;
      ends.push({ label, from: (Date.now() - start) / 1000, to: (end - start) / 1000 });
      while (Date.now() < end) {
        await sleep(SAMPLE_MS);
        const s = await sub.evaluate(inbound);
        const t = (Date.now() - start) / 1000;
        const kbps = ((s.video.bytesReceived - prev.video.bytesReceived) * 8) / (t - prev.t) / 1000;
        samples.push({
          t,
          phase: i,
          frameHeight: s.video.frameHeight,
          videoKbps: Math.round(kbps),
          framesDecoded: s.video.framesDecoded,
          totalFreezesDuration: s.video.totalFreezesDuration,
          audioPackets: s.audio?.packetsReceived ?? 0,
          server: await serverView().catch((e) => ({ error: String(e) })),
          publisher: await pub.evaluate(outbound).catch((e) => ({ error: String(e) })),
        });
        prev = { t, ...s };
      }
    }
    const last = samples[samples.length - 1];
    const freezes = last.totalFreezesDuration - beforeFast.totalFreezesDuration;
    const startFreezes = beforeFast.totalFreezesDuration - first.video.totalFreezesDuration;
    const inPhase = (i) => samples.filter((s) => s.phase === i);
    const maxHeight = (xs) => Math.max(...xs.map((s) => s.frameHeight));
    const lastHeight = (xs) => xs[xs.length - 1].frameHeight;
    const slowFrom = ends[SLOW].from + SETTLE_S;
    const settled = inPhase(SLOW).filter((s) => s.t >= slowFrom);
    const backAt = inPhase(BACK).find((s) => s.frameHeight === 720)?.t;

    const report = {
      phases: ends,
      freezeSeconds: Number(freezes.toFixed(3)),
      startFreezeSeconds: Number(startFreezes.toFixed(3)),
      fullAgainAfterSeconds: backAt === undefined ? null : Number((backAt - ends[BACK].from).toFixed(1)),
      heights: PHASES.map((_, i) => ({ max: maxHeight(inPhase(i)), last: lastHeight(inPhase(i)) })),
      samples,
    };
    const docDir = process.env.KETANG_BANDWIDTH_DOC;
    if (docDir) {
      await fsp.mkdir(docDir, { recursive: true });
      await fsp.writeFile(path.join(docDir, 'timeline.json'), `${JSON.stringify(report, null, 1)}\n`);
      await fsp.writeFile(path.join(docDir, 'timeline.svg'), timelineSvg(report));
    }
    const summary = JSON.stringify({
      freezeSeconds: report.freezeSeconds,
      startFreezeSeconds: report.startFreezeSeconds,
      fullAgainAfterSeconds: report.fullAgainAfterSeconds,
      heights: report.heights,
    });

    assert.equal(maxHeight([...inPhase(START), ...inPhase(FAST)]), 720, `full layer on 5 Mbit/s: ${summary}`);
    assert.ok(settled.every((s) => s.frameHeight > 0 && s.frameHeight <= 360),
      `a lower layer on 800 kbit/s from ${SETTLE_S} s after the drop: ${summary}`);
    assert.equal(lastHeight(inPhase(BACK)), 720, `full layer again once 5 Mbit/s is back: ${summary}`);
    assert.ok(freezes < 2, `total freeze time across the drop and the recovery ${freezes} s: ${summary}`);
    // Audio never stopped: packets arrived in every sample interval of the slow phase.
    const slow = inPhase(SLOW);
    for (let k = 1; k < slow.length; k++) {
      assert.ok(slow[k].audioPackets > slow[k - 1].audioPackets, `audio flows at ${slow[k].t} s`);
    }
  });
});
