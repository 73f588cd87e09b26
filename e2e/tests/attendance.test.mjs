// End to end: attendance of a scheduled lesson.
//
//   A dedicated lesson scheduled through the admin API (teacher, master classroom, two remote
//   classrooms); the teacher and the two remote classrooms open their links in three pages.
//   Classroom 1 raises its hand, the teacher calls on it, then ends its turn (done); everyone
//   leaves. GET /api/v1/lessons/{id}/attendance lists both classrooms with plausible times,
//   classroom 1 as called on and classroom 2 not, and the master classroom as absent; the CSV
//   says the same; the occurrence dialog on the admin page shows it.
//
// Every wait is bounded; on failure the test prints what the pages showed, their console,
// and the server log.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { openPage } from '../lib/browser.mjs';
import { suiteRig, runWithAdminKey, adminApi } from '../lib/rig.mjs';
import { waitFor, sleep } from '../lib/util.mjs';

const STEP_TIMEOUT_MS = 10_000;
const JOIN_TIMEOUT_MS = 20_000;

/** RFC 3339 in UTC, whole seconds, `secs` from now. */
const fromNow = (secs) => new Date(Date.now() + secs * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

describe('attendance', () => {
  const rig = suiteRig();
  const { log, pages } = rig;

  it('records who was in the lesson, for how long, and who was called on', async () => {
    await runWithAdminKey(rig, scenario);
  });

  async function scenario(key) {
    const api = adminApi(rig.server, key, STEP_TIMEOUT_MS);

    // The lesson: 实验小学 teaches from 三(1)班 to two classrooms of 山村小学, from a minute ago.
    const strong = await api('POST', '/schools', { name: '实验小学', district: '城关区', kind: 'central' });
    const rural = await api('POST', '/schools', { name: '山村小学', district: '南山区', kind: 'rural' });
    const teacher = await api('POST', '/teachers', { schoolId: strong.id, name: '李老师' });
    const master = await api('POST', '/classrooms', { schoolId: strong.id, name: '三(1)班' });
    const c1 = await api('POST', '/classrooms', { schoolId: rural.id, name: '一年级' });
    const c2 = await api('POST', '/classrooms', { schoolId: rural.id, name: '二年级' });
    const created = await api('POST', '/lessons', {
      title: '数学：认识分数', subject: '数学', grade: '三年级', mode: 'dedicated',
      teacherId: teacher.id, masterClassroomId: master.id, remoteClassroomIds: [c1.id, c2.id],
      start: fromNow(-60), end: fromNow(2400),
    });
    const lessonId = created.lesson.id;
    const occurrence = created.occurrences[0].id;
    const links = await api('GET', `/lessons/${lessonId}/links`);
    const linkOf = (kind, classroomId = null) => links.links.find((l) => l.kind === kind && (!classroomId || l.classroomId === classroomId)).url;

    // Teacher and both remote classrooms join.
    const began = Date.now();
    pages.teacher = await openPage(rig.browser, linkOf('teacher'), { label: 'teacher', log });
    pages.c1 = await openPage(rig.browser, linkOf('remoteClassroom', c1.id), { label: 'c1', log });
    pages.c2 = await openPage(rig.browser, linkOf('remoteClassroom', c2.id), { label: 'c2', log });
    const joined = await waitFor('all three pages to join the lesson', async () => {
      const s = {};
      for (const k of ['teacher', 'c1', 'c2']) s[k] = await pages[k].page.evaluate(() => ({ state: window.ketang?.state, peerId: window.ketang?.peerId }));
      return { ok: Object.values(s).every((x) => x.state === 'joined' && Number.isInteger(x.peerId)), seen: s };
    }, { timeoutMs: JOIN_TIMEOUT_MS });
    const c1Peer = joined.seen.c1.peerId;

    // Classroom 1 raises its hand; the teacher calls on it from the queue, then ends its turn.
    await pages.c1.page.click('#hand-toggle', { timeout: 5000 });
    const hand = pages.teacher.page.locator(`#hand-queue li[data-peer-id="${c1Peer}"]`);
    await hand.waitFor({ state: 'visible', timeout: 5000 });
    await hand.locator('[data-action="callOn"]').click({ timeout: 5000 });
    await waitFor('classroom 1 on stage', async () => {
      const stage = await pages.teacher.page.evaluate(() => window.ketang.roomState?.stage ?? []);
      return { ok: stage.includes(c1Peer), seen: stage };
    }, { timeoutMs: STEP_TIMEOUT_MS });
    await sleep(1500);
    await pages.teacher.page.locator(`.tile[data-peer-id="${c1Peer}"] [data-action="done"]`).click({ timeout: 5000 });
    await waitFor('classroom 1 off stage', async () => {
      const stage = await pages.teacher.page.evaluate(() => window.ketang.roomState?.stage ?? []);
      return { ok: !stage.includes(c1Peer), seen: stage };
    }, { timeoutMs: STEP_TIMEOUT_MS });
    await sleep(1000);

    // Everyone leaves.
    for (const k of ['c1', 'c2', 'teacher']) {
      await pages[k].page.click('#leave', { timeout: 5000 });
      await pages[k].context.close();
      delete pages[k];
    }
    const elapsed = (Date.now() - began) / 1000;

    // The attendance (written within about a second of each change).
    const report = await waitFor('the attendance of everyone gone', async () => {
      const r = await api('GET', `/lessons/${lessonId}/attendance`);
      const people = r.occurrences[0]?.participants ?? [];
      const gone = people.length === 4 && people.every((p) => !p.present);
      return { ok: gone && people.filter((p) => p.attended).length === 3, seen: r };
    }, { timeoutMs: STEP_TIMEOUT_MS });
    const o = report.seen.occurrences[0];
    assert.equal(o.occurrenceId, occurrence);
    const who = (classroomId) => o.participants.find((p) => p.classroomId === classroomId);
    const t = o.participants.find((p) => p.kind === 'teacher');
    const one = who(c1.id);
    const two = who(c2.id);
    const absent = who(master.id);
    for (const [name, p] of [['teacher', t], ['classroom 1', one], ['classroom 2', two]]) {
      assert.ok(p.attended, `${name} attended: ${JSON.stringify(p)}`);
      // Joined after `began` and left before `elapsed` was taken; a page needs a moment to join.
      assert.ok(p.totalSeconds >= 2 && p.totalSeconds <= elapsed + 1, `${name}: ${p.totalSeconds} s of ${elapsed} s`);
      assert.equal(p.intervals.length, 1, `${name}: one stay: ${JSON.stringify(p.intervals)}`);
      assert.equal(p.intervals[0].endReason, 'left', `${name} left`);
      assert.equal(p.reconnects, 0, `${name}: no reconnection`);
    }
    assert.equal(one.kind, 'remoteClassroom');
    assert.equal(one.name, '山村小学 一年级');
    assert.equal(one.calledOn, true, JSON.stringify(one));
    assert.equal(one.calls.length, 1);
    assert.equal(one.calls[0].rollCall, false);
    assert.ok(one.calls[0].endedAt, 'the turn ended with done');
    const turn = (Date.parse(one.calls[0].endedAt) - Date.parse(one.calls[0].calledAt)) / 1000;
    assert.ok(turn >= 1 && turn <= 10, `turn of ${turn} s`);
    assert.equal(two.calledOn, false, JSON.stringify(two));
    assert.equal(t.calledOn, false);
    assert.equal(absent.kind, 'masterClassroom');
    assert.equal(absent.attended, false);
    assert.equal(absent.totalSeconds, 0);

    // The same as CSV.
    const csv = await api('GET', `/lessons/${lessonId}/attendance`, undefined, 'text/csv');
    assert.match(csv.type, /^text\/csv/);
    const rows = csv.text.replace(/^\uFEFF/, '').trim().split('\r\n');
    assert.equal(rows.length, 5, csv.text);
    const row = rows.find((r) => r.includes('山村小学 一年级')).split(',');
    assert.equal(row[13], 'yes', `classroom 1 called on: ${row}`);
    assert.equal(rows.find((r) => r.includes('山村小学 二年级')).split(',')[13], 'no');

    // The admin page: the occurrence's dialog shows the same.
    const admin = await openPage(rig.browser, `${rig.server.baseUrl}/admin`, { label: 'admin', log });
    pages.admin = admin;
    const page = admin.page;
    await page.fill('#signin-key', key);
    await page.click('#signin-form button[type="submit"]');
    await page.waitForFunction(() => window.ketangAdmin?.signedIn === true, null, { timeout: STEP_TIMEOUT_MS });
    await page.click('.tab[data-tab="lessons"]');
    const card = page.locator(`#week .occ[data-occurrence-id="${occurrence}"]`);
    await card.waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
    await card.click();
    await page.click('#show-attendance');
    const shown = await waitFor('the attendance table on the admin page', async () => {
      const seen = await page.evaluate(() => [...document.querySelectorAll('#attendance-table tbody tr')].map((r) => ({
        kind: r.dataset.kind, classroomId: r.dataset.classroomId, attended: r.dataset.attended, calledOn: r.dataset.calledOn,
        total: r.querySelector('.total')?.textContent, text: r.innerText,
      })));
      return { ok: seen.length === 4, seen };
    }, { timeoutMs: STEP_TIMEOUT_MS });
    const rowOf = (id) => shown.seen.find((r) => r.classroomId === id);
    assert.deepEqual(shown.seen.map((r) => r.kind), ['teacher', 'masterClassroom', 'remoteClassroom', 'remoteClassroom']);
    assert.equal(rowOf(c1.id).calledOn, 'true');
    assert.equal(rowOf(c2.id).calledOn, 'false');
    assert.equal(rowOf(master.id).attended, 'false');
    assert.match(rowOf(c1.id).text, /一年级/);
    assert.equal(rowOf(c1.id).total, duration(one.totalSeconds));
  }
});

/** As the admin page shows a duration: `m:ss` (`h:mm:ss` from an hour). */
function duration(seconds) {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = String(seconds % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}
