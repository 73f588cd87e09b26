// End to end: a school whose firewall lets out only TCP to the web and TURN ports (issue 12
// item 4), over HTTPS.
//
// A scheduled dedicated lesson: the teacher's page on the host (UDP works there), the remote
// classroom's chromium in a network namespace whose nftables pass only TCP to the server's
// HTTPS port and its TURN port: no UDP at all, and no TCP to the media ports (so ICE-TCP is
// no way out either). The classroom's media must come through the embedded TURN server (over
// TCP to it) with the credential of its `welcome`: selected pair `relay` within 8 s of the
// page joining, the teacher's camera decoding; the teacher's own pair stays direct UDP (host
// candidates beat relay ones); the server shows, counts and keeps the classroom as `turn_tcp`.
// Then only TLS to the `turns:` port: a new page comes through TURN over TLS (`turn_tls`).
//
// Every wait is bounded; on failure the test prints what the pages showed, their console and
// the server log.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { freeTcpPort, startServer, TEST_HOST } from '../lib/server.mjs';
import { launchBrowser, openPage, describePage, PageLog } from '../lib/browser.mjs';
import { adminApi } from '../lib/rig.mjs';
import { NetNs } from '../lib/netns.mjs';
import { waitFor, sleep } from '../lib/util.mjs';

const METRICS_TOKEN = 'e2e-metrics-token';

const fromNow = (secs) => new Date(Date.now() + secs * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

describe('a classroom that reaches the server only over TCP to TURN', () => {
  const log = new PageLog();
  const pages = {};
  let ns;
  let server;
  let api;
  let turnPort;
  let tlsPort;
  let lesson;
  let failed = false;
  const browsers = [];

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'this test needs root for ip netns and nft (CI runs as root)');
    ns = await new NetNs().create();
    turnPort = await freeTcpPort();
    tlsPort = await freeTcpPort();
    // TURN over TLS uses the HTTPS certificate (issued for ns.hostIp too), which the browsers
    // trust.
    server = await startServer({
      https: true, httpHost: '0.0.0.0', mediaHost: ns.hostIp, tlsHosts: [ns.hostIp],
      extraConfig: `[metrics]\ntoken = "${METRICS_TOKEN}"\n\n[turn]\nlisten = "${ns.hostIp}:${turnPort}"\n`
        + `tls_listen = "${ns.hostIp}:${tlsPort}"\n`,
    });
    api = adminApi(server, await server.createAdminKey());
    lesson = await scheduleLesson();
    browsers.push(await launchBrowser());
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
    const school = await api('POST', '/schools', { name: '高原小学', district: '南山区', kind: 'rural' });
    const teacher = await api('POST', '/teachers', { schoolId: school.id, name: '李老师' });
    const master = await api('POST', '/classrooms', { schoolId: school.id, name: '五(2)班' });
    const remote = await api('POST', '/classrooms', { schoolId: school.id, name: '只通TURN的教学点' });
    const created = await api('POST', '/lessons', {
      title: '中继里的课堂', subject: '数学', grade: '五年级', mode: 'dedicated',
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

  /** The page's selected candidate pair: its local candidate's type and protocols. */
  const selected = (key) => pages[key].page.evaluate(async () => {
    const pc = window.ketang.pc;
    if (!pc) return null;
    const report = await pc.getStats();
    for (const s of report.values()) {
      if (s.type !== 'transport' || !s.selectedCandidatePairId) continue;
      const pair = report.get(s.selectedCandidatePairId);
      const local = pair && report.get(pair.localCandidateId);
      return { type: local?.candidateType ?? null, protocol: local?.protocol ?? null, relayProtocol: local?.relayProtocol ?? null };
    }
    return null;
  });

  const teacherCamera = (teacherPeer) => pages.classroom.page.evaluate(async (peerId) => {
    const s = (await window.ketang.inboundVideoStats()).filter((x) => x.peerId === peerId && x.source === 'camera');
    return s.length ? { frames: s.reduce((n, x) => n + x.framesDecoded, 0), height: Math.max(...s.map((x) => x.frameHeight ?? 0)) } : null;
  }, teacherPeer);

  step('media comes through the TURN relay by itself; the teacher stays on direct UDP', async () => {
    await ns.allowOnlyTcp([server.httpPort, turnPort]);
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
    const pair = await waitFor('the classroom\'s selected pair to be relayed', async () => {
      const s = await selected('classroom');
      return { ok: s?.type === 'relay', seen: s };
    }, { timeoutMs: 8_000, intervalMs: 100 });
    console.log(`# classroom behind a TCP-to-TURN-only firewall: relay pair ${Date.now() - joinedAt} ms after joining (${JSON.stringify(pair.seen)})`);
    assert.equal(pair.seen.relayProtocol, 'tcp', JSON.stringify(pair.seen));

    const first = await waitFor('the teacher\'s camera to decode at 360p or more', async () => {
      const s = await teacherCamera(teacherPeer);
      return { ok: s !== null && s.frames > 0 && s.height >= 360, seen: s };
    }, { timeoutMs: 10_000, intervalMs: 200 });
    await sleep(3000);
    const later = await teacherCamera(teacherPeer);
    assert.ok(later.frames > first.seen.frames + 30, `frames decoded keep rising: ${JSON.stringify({ first: first.seen, later })}`);
    console.log(`# teacher's camera through TURN: ${JSON.stringify(later)}`);

    const teacherPair = await selected('teacher');
    assert.deepEqual([teacherPair?.type, teacherPair?.protocol], ['host', 'udp'], `without restrictions the pair stays direct UDP: ${JSON.stringify(teacherPair)}`);

    const serverView = await pages.classroom.page.evaluate(() => window.ketang.serverStats());
    assert.equal(serverView?.transport, 'turn_tcp', JSON.stringify(serverView));
    const live = await waitFor('the live room to show both transports', async () => {
      const rooms = await api('GET', '/rooms');
      const ps = rooms.flatMap((r) => r.participants);
      const byRole = Object.fromEntries(ps.map((p) => [p.role, p.transport]));
      return { ok: byRole.teacher === 'udp' && byRole.classroom === 'turn_tcp', seen: ps };
    }, { timeoutMs: 5_000 });
    assert.ok(live.ok);
    const metrics = await (await server.fetch('/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
    assert.match(metrics, /ketang_peers_by_transport\{[^}]*transport="turn_tcp"[^}]*\} 1/, 'one peer counted through TURN over TCP');
    assert.match(metrics, /ketang_turn_allocations [1-9]/, 'an allocation is live');
    const kept = await waitFor('the attendance stay to say turn_tcp', async () => {
      const att = await api('GET', `/lessons/${lesson.id}/attendance`);
      const rec = att.occurrences[0]?.participants.find((p) => p.classroomId === lesson.classroomId);
      return { ok: rec?.intervals.at(-1)?.transport === 'turn_tcp', seen: rec };
    }, { timeoutMs: 10_000 });
    assert.ok(kept.ok);
  });

  step('with only TLS to the turns: port open, a new page comes through TURN over TLS', async () => {
    await pages.classroom.context.close().catch(() => {});
    await ns.allowOnlyTcp([server.httpPort, tlsPort]);
    pages.classroom = await openPage(browsers[1], lesson.classroomUrl, { label: 'classroom-tls', log });
    await waitFor('the classroom page to join again', async () => {
      const state = await pages.classroom.page.evaluate(() => window.ketang?.state);
      return { ok: state === 'joined', seen: state };
    }, { timeoutMs: 15_000 });
    const joinedAt = Date.now();
    const pair = await waitFor('the classroom\'s selected pair to be relayed over TLS', async () => {
      const s = await selected('classroom');
      return { ok: s?.type === 'relay' && s?.relayProtocol === 'tls', seen: s };
    }, { timeoutMs: 8_000, intervalMs: 100 });
    console.log(`# classroom behind a TLS-to-TURN-only firewall: relay pair ${Date.now() - joinedAt} ms after joining (${JSON.stringify(pair.seen)})`);
    const teacherPeer = await pages.teacher.page.evaluate(() => window.ketang.peerId);
    await waitFor('the teacher\'s camera to decode through TURN over TLS', async () => {
      const s = await teacherCamera(teacherPeer);
      return { ok: s !== null && s.frames > 30 && s.height >= 360, seen: s };
    }, { timeoutMs: 10_000, intervalMs: 200 });
    await waitFor('the server to show turn_tls', async () => {
      const v = await pages.classroom.page.evaluate(() => window.ketang.serverStats());
      return { ok: v?.transport === 'turn_tls', seen: v };
    }, { timeoutMs: 5_000 });
  });
});
