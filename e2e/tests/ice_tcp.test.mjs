// End to end: a school whose network lets only TCP out (issue 12 item 3), over HTTPS.
//
// A scheduled dedicated lesson: the teacher's page on the host (UDP works there), the remote
// classroom's chromium in a network namespace whose every UDP packet nftables drops from the
// start (the link stays up; HTTPS and the WebSocket are TCP). The classroom's media must come
// over ICE-TCP by itself: selected candidate pair TCP within 5 s of its page joining, the
// teacher's camera decoding (framesDecoded rising, frameHeight ≥ 360) within 10 s; the
// over a 60 s run its video freezes at most 1 % of the time; the teacher's pair stays UDP; the
// server's stats, live-rooms page data and attendance say which.
//
// Every wait is bounded; on failure the test prints what the pages showed, their console and
// the server log.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { startServer, TEST_HOST } from '../lib/server.mjs';

const METRICS_TOKEN = 'e2e-metrics-token';
import { launchBrowser, openPage, describePage, PageLog } from '../lib/browser.mjs';
import { adminApi } from '../lib/rig.mjs';
import { NetNs } from '../lib/netns.mjs';
import { waitFor, sleep } from '../lib/util.mjs';

const RUN_MS = 60_000;

const fromNow = (secs) => new Date(Date.now() + secs * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

describe('a classroom whose network drops UDP', () => {
  const log = new PageLog();
  const pages = {};
  let ns;
  let server;
  let api;
  let lesson; // {id, classroomId, occurrenceId, teacherUrl, classroomUrl}
  let failed = false;
  const browsers = [];

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'this test needs root for ip netns and nft (CI runs as root)');
    ns = await new NetNs().create();
    // The server listens beyond loopback here, where /metrics wants its bearer token.
    server = await startServer({
      https: true, httpHost: '0.0.0.0', mediaHost: ns.hostIp, tlsHosts: [ns.hostIp],
      // Without the embedded TURN server: this test is about ICE over TCP (turn.test.mjs covers
      // the relay). With TURN on, the page's first media can come through the relay over TCP
      // for a moment before the direct TCP pair wins, and the attendance interval keeps that
      // first transport.
      extraConfig: `[metrics]\ntoken = "${METRICS_TOKEN}"\n[turn]\nenabled = false\n`,
    });
    api = adminApi(server, await server.createAdminKey());
    lesson = await scheduleLesson();
    browsers.push(await launchBrowser()); // after the server: they trust its certificate
    browsers.push(await launchBrowser({ executablePath: ns.wrapper }));
  });

  after(async () => {
    if (failed) {
      const seen = {};
      for (const [key, p] of Object.entries(pages)) seen[key] = await describePage(p);
      console.error(`--- pages ---\n${JSON.stringify(seen, null, 2)}\n--- browser log ---\n${log.text()}`);
      if (server) console.error(`--- server log (${server.logPath}) ---\n${server.log()}`);
    }
    for (const b of browsers) await b.close().catch(() => {});
    await server?.stop();
    const problems = (await ns?.destroy()) ?? [];
    assert.deepEqual(problems, [], 'the namespace, the veth and the nftables tables are gone');
  });

  const step = (name, fn) => it(name, async () => {
    try {
      await fn();
    } catch (err) {
      failed = true;
      throw err;
    }
  });

  async function scheduleLesson() {
    const school = await api('POST', '/schools', { name: '山区小学', district: '南山区', kind: 'rural' });
    const teacher = await api('POST', '/teachers', { schoolId: school.id, name: '王老师' });
    const master = await api('POST', '/classrooms', { schoolId: school.id, name: '四(1)班' });
    const remote = await api('POST', '/classrooms', { schoolId: school.id, name: '只通TCP的教学点' });
    const created = await api('POST', '/lessons', {
      title: '防火墙后的课堂', subject: '语文', grade: '四年级', mode: 'dedicated',
      teacherId: teacher.id, masterClassroomId: master.id, remoteClassroomIds: [remote.id],
      start: fromNow(-60), end: fromNow(1800),
    });
    const { links } = await api('GET', `/lessons/${created.lesson.id}/links`);
    const at = (kind, origin) => {
      const u = new URL(links.find((l) => l.kind === kind).url);
      return `${origin}${u.pathname}${u.search}`;
    };
    return {
      id: created.lesson.id,
      classroomId: remote.id,
      teacherUrl: at('teacher', server.origin(TEST_HOST)),
      classroomUrl: at('remoteClassroom', server.origin(ns.hostIp)),
    };
  }

  /** The page's selected candidate pair: local candidate protocol and type. */
  const selected = (key) => pages[key].page.evaluate(async () => {
    const pc = window.ketang.pc;
    if (!pc) return null;
    const report = await pc.getStats();
    for (const s of report.values()) {
      if (s.type !== 'transport' || !s.selectedCandidatePairId) continue;
      const pair = report.get(s.selectedCandidatePairId);
      const local = pair && report.get(pair.localCandidateId);
      const remote = pair && report.get(pair.remoteCandidateId);
      return { protocol: local?.protocol ?? null, localType: local?.candidateType ?? null, remote: remote ? `${remote.address}:${remote.port}/${remote.protocol}` : null };
    }
    return null;
  });

  /** The teacher's camera on the classroom page: framesDecoded and frameHeight. */
  const teacherCamera = (teacherPeer) => pages.classroom.page.evaluate(async (peerId) => {
    const s = (await window.ketang.inboundVideoStats()).filter((x) => x.peerId === peerId && x.source === 'camera');
    return s.length ? { frames: s.reduce((n, x) => n + x.framesDecoded, 0), height: Math.max(...s.map((x) => x.frameHeight ?? 0)) } : null;
  }, teacherPeer);

  step('media comes over ICE-TCP by itself, the teacher stays on UDP, and both are shown and kept', async () => {
    await ns.drop('udp');
    pages.teacher = await openPage(browsers[0], lesson.teacherUrl, { label: 'teacher', log });
    const teacherPeer = (await waitFor('the teacher to join', async () => {
      const s = await pages.teacher.page.evaluate(() => ({ state: window.ketang?.state, peerId: window.ketang?.peerId }));
      return { ok: s.state === 'joined', seen: s, peerId: s.peerId };
    }, { timeoutMs: 15_000 })).peerId;

    pages.classroom = await openPage(browsers[1], lesson.classroomUrl, { label: 'classroom', log });
    await waitFor('the classroom page to join', async () => {
      const state = await pages.classroom.page.evaluate(() => window.ketang?.state);
      return { ok: state === 'joined', seen: state };
    }, { timeoutMs: 15_000 });
    const joinedAt = Date.now();
    const pair = await waitFor('the classroom\'s selected pair to be TCP', async () => {
      const s = await selected('classroom');
      return { ok: s?.protocol === 'tcp', seen: s };
    }, { timeoutMs: 5_000, intervalMs: 100 });
    console.log(`# classroom behind a UDP-dropping firewall: selected pair TCP ${Date.now() - joinedAt} ms after joining (${JSON.stringify(pair.seen)})`);

    const first = await waitFor('the teacher\'s camera to decode at 360p or more', async () => {
      const s = await teacherCamera(teacherPeer);
      return { ok: s !== null && s.frames > 0 && s.height >= 360, seen: s };
    }, { timeoutMs: 10_000, intervalMs: 200 });
    await sleep(2000);
    const later = await teacherCamera(teacherPeer);
    assert.ok(later.frames > first.seen.frames + 20, `frames decoded keep rising: ${JSON.stringify({ first: first.seen, later })}`);
    console.log(`# teacher's camera over TCP: ${JSON.stringify(later)}`);

    // A minute of it: video freezes at most 1 % of the time (Chromium's totalFreezesDuration).
    const freezes = () => pages.classroom.page.evaluate(async () => {
      const report = await window.ketang.pc.getStats();
      let secs = 0;
      for (const s of report.values()) if (s.type === 'inbound-rtp' && s.kind === 'video') secs += s.totalFreezesDuration ?? 0;
      return secs;
    });
    // From when the allocator's first steps up (each a switch at a keyframe) are done.
    await sleep(5000);
    const frozeBefore = await freezes();
    const runStart = Date.now();
    await sleep(RUN_MS);
    const frozen = (await freezes()) - frozeBefore;
    const ran = (Date.now() - runStart) / 1000;
    const end = await teacherCamera(teacherPeer);
    console.log(`# ${ran.toFixed(0)} s over TCP: frozen ${frozen.toFixed(2)} s (${((100 * frozen) / ran).toFixed(2)} %), ${end.frames - later.frames} frames decoded, ${end.height}p`);
    assert.ok(frozen <= ran * 0.01, `frozen ${frozen} s of ${ran} s`);
    assert.ok(end.frames - later.frames >= ran * 10, `frames keep coming: ${JSON.stringify({ later, end })}`);
    assert.equal((await selected('classroom'))?.protocol, 'tcp', 'still on TCP');

    const teacherPair = await selected('teacher');
    assert.equal(teacherPair?.protocol, 'udp', `without restrictions the pair stays UDP: ${JSON.stringify(teacherPair)}`);

    // Shown and counted: the server's stats for each page, the live rooms, the attendance.
    const serverView = await pages.classroom.page.evaluate(() => window.ketang.serverStats());
    assert.equal(serverView?.transport, 'tcp', JSON.stringify(serverView));
    const live = await waitFor('the live room to show both transports', async () => {
      const rooms = await api('GET', '/rooms');
      const ps = rooms.flatMap((r) => r.participants);
      const byRole = Object.fromEntries(ps.map((p) => [p.role, p.transport]));
      return { ok: byRole.teacher === 'udp' && byRole.classroom === 'tcp', seen: ps };
    }, { timeoutMs: 5_000 });
    assert.ok(live.ok);
    const metrics = await (await server.fetch('/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
    assert.match(metrics, /ketang_peers_by_transport\{[^}]*transport="tcp"[^}]*\} 1/, 'one peer counted on TCP');
    const att = await api('GET', `/lessons/${lesson.id}/attendance`);
    const rec = att.occurrences[0].participants.find((p) => p.classroomId === lesson.classroomId);
    assert.equal(rec.intervals.at(-1)?.transport, 'tcp', JSON.stringify(rec));
  });
});
