// End to end: the resource library page with a real recording.
//
//   A master lesson scheduled with "record" (admin API) is taught for a few seconds by a
//   chromium teacher page (fake camera and microphone): joining starts the recording, closing
//   the page ends it, and the file reaches the library. The room page shows the recording and
//   the teacher posts a live observation note. On /library, signed in with an admin
//   key: the list shows the recording; it plays in <video> from the Range endpoint (the
//   browser's requests carry `Range` and get 206); seeking moves currentTime to the target
//   and playback goes on from there; a note posted while replaying appears as a marker on the
//   timeline, and a click on the marker seeks to its time. Then the teacher's library link
//   opens the same recording without a key.
//
// Every wait is bounded; on failure the test prints what the pages showed, their console,
// and the server log.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { openPage, describePage } from '../lib/browser.mjs';
import { suiteRig, runWithAdminKey, adminApi } from '../lib/rig.mjs';
import { waitFor, sleep } from '../lib/util.mjs';

const JOIN_TIMEOUT_MS = 15_000;
const LESSON_MS = 7_000;
const IMPORT_TIMEOUT_MS = 30_000;
const STEP_TIMEOUT_MS = 10_000;

describe('library page', () => {
  const rig = suiteRig();
  const { log, pages } = rig;

  it('lists a recorded lesson, plays it from the Range endpoint and seeks in <video>', async () => {
    await runWithAdminKey(rig, scenario, {
      describe: (name, p) => (name === 'teacher' ? describePage(p) : p.page.evaluate(() => ({
        library: window.ketangLibrary,
        banners: [...document.querySelectorAll('.banner')].map((b) => b.innerText),
        video: (() => {
          const v = document.getElementById('video');
          return v && { src: v.currentSrc, readyState: v.readyState, currentTime: v.currentTime, duration: v.duration, paused: v.paused, error: v.error && { code: v.error.code, message: v.error.message } };
        })(),
      })).catch((e) => String(e))),
    });
  });

  async function recordLesson(api) {
    const school = await api('POST', '/schools', { name: '实验小学', district: '城关区', kind: 'central' });
    const teacher = await api('POST', '/teachers', { schoolId: school.id, name: '李老师' });
    const master = await api('POST', '/classrooms', { schoolId: school.id, name: '三(1)班' });
    const remote = await api('POST', '/classrooms', { schoolId: school.id, name: '三(2)班' });
    const inSecs = (s) => new Date(Math.floor(Date.now() / 1000) * 1000 + s * 1000).toISOString().replace('.000Z', 'Z');
    const created = await api('POST', '/lessons', {
      title: '三年级数学 分数的初步认识', subject: '数学', grade: '三年级', mode: 'master',
      teacherId: teacher.id, masterClassroomId: master.id, remoteClassroomIds: [remote.id],
      start: inSecs(60), end: inSecs(3600), record: true,
    });
    const links = await api('GET', `/lessons/${created.lesson.id}/links`);
    const teacherLink = links.links.find((l) => l.kind === 'teacher');
    assert.ok(teacherLink?.url, JSON.stringify(links));

    // The teacher's page joins: the lesson records from then on.
    const t = await openPage(rig.browser, teacherLink.url, { label: 'teacher', log });
    pages.teacher = t;
    await waitFor('the teacher to join', async () => {
      const s = await t.page.evaluate(() => ({ state: window.ketang?.state, error: window.ketang?.lastError }));
      return { ok: s.state === 'joined', seen: s };
    }, { timeoutMs: JOIN_TIMEOUT_MS });
    const running = await waitFor('the recording to start', async () => {
      const page = await api('GET', '/library?state=recording');
      return { ok: page.items.length === 1, seen: page, id: page.items[0]?.id };
    }, { timeoutMs: STEP_TIMEOUT_MS });
    // The room shows it is recording, and the teacher notes something live (名师课堂).
    await t.page.waitForFunction(() => window.ketang?.recording?.on === true
      && !document.getElementById('rec-indicator').hidden, null, { timeout: STEP_TIMEOUT_MS });
    await t.page.fill('#note-input', '导入环节用了生活中的例子');
    await t.page.click('#note-form button[type="submit"]');
    await t.page.waitForFunction(() => (window.ketang.notes ?? []).length === 1, null, { timeout: STEP_TIMEOUT_MS });
    await sleep(LESSON_MS);
    // The last one out: the room closes and the recording is finalized and imported.
    await t.context.close();
    delete pages.teacher;
    const ready = await waitFor('the recording in the library', async () => {
      const e = await api('GET', `/library/${running.id}`);
      return { ok: e.state === 'ready', seen: e, entry: e };
    }, { timeoutMs: IMPORT_TIMEOUT_MS });
    return ready.entry;
  }

  async function scenario(key) {
    const api = adminApi(rig.server, key);
    const entry = await recordLesson(api);
    assert.ok(entry.durationMs >= LESSON_MS - 3000, `recorded ${entry.durationMs} ms`);

    const lib = await openPage(rig.browser, `${rig.server.baseUrl}/library`, { label: 'library', log });
    pages.library = lib;
    const page = lib.page;
    assert.equal(lib.response.status(), 200, 'GET /library');
    const ranges = [];
    page.on('response', (res) => {
      if (res.url().includes(`/library/${entry.id}/media`)) ranges.push({ range: res.request().headers().range ?? null, status: res.status() });
    });

    await page.fill('#signin-key', key);
    await page.click('#signin-form button[type="submit"]');
    await page.waitForFunction((id) => window.ketangLibrary?.listed?.includes(id), entry.id, { timeout: STEP_TIMEOUT_MS });
    const row = page.locator(`#list-body tr[data-id="${entry.id}"]`);
    assert.match(await row.innerText(), /三年级数学 分数的初步认识/);
    assert.match(await row.innerText(), /李老师/);

    // Search narrows the list; a search for something else empties it.
    await page.fill('#filter-q', '语文');
    await page.click('#filters button[type="submit"]');
    await page.waitForFunction(() => window.ketangLibrary.listed.length === 0, null, { timeout: STEP_TIMEOUT_MS });
    await page.fill('#filter-q', '分数');
    await page.click('#filters button[type="submit"]');
    await page.waitForFunction((id) => window.ketangLibrary.listed.length === 1 && window.ketangLibrary.listed[0] === id, entry.id, { timeout: STEP_TIMEOUT_MS });

    // Play.
    await row.locator('a').click();
    await page.waitForFunction(() => {
      const v = document.getElementById('video');
      return v.readyState >= 2 && Number.isFinite(v.duration) && v.duration > 0;
    }, null, { timeout: STEP_TIMEOUT_MS });
    const duration = await page.evaluate(() => document.getElementById('video').duration);
    assert.ok(Math.abs(duration * 1000 - entry.durationMs) < 1500, `<video> says ${duration} s, the library ${entry.durationMs} ms`);

    // Seek to a target and play on from there.
    const target = Math.min(4, duration - 2);
    const seeked = await page.evaluate((target) => new Promise((resolve) => {
      const v = document.getElementById('video');
      v.muted = true;
      const timer = setTimeout(() => resolve({ ok: false, t: v.currentTime }), 8000);
      v.addEventListener('seeked', () => { clearTimeout(timer); resolve({ ok: true, t: v.currentTime }); }, { once: true });
      v.currentTime = target;
    }), target);
    assert.ok(seeked.ok, `no seeked event (currentTime ${seeked.t})`);
    assert.ok(Math.abs(seeked.t - target) < 0.5, `seeked to ${seeked.t}, wanted ${target}`);
    await page.evaluate(() => document.getElementById('video').play());
    await waitFor('playback to go on after the seek', async () => {
      const s = await page.evaluate(() => { const v = document.getElementById('video'); return { t: v.currentTime, paused: v.paused, error: v.error?.code ?? null }; });
      return { ok: s.t > target + 0.8 && !s.paused && s.error === null, seen: s };
    }, { timeoutMs: STEP_TIMEOUT_MS });
    assert.ok(ranges.some((r) => r.range && r.status === 206), `the browser fetched ranges: ${JSON.stringify(ranges)}`);

    // A note while replaying, at the current time; its marker seeks back there.
    await page.evaluate(() => document.getElementById('video').pause());
    const noteAt = await page.evaluate(() => Math.round(document.getElementById('video').currentTime * 1000));
    await page.fill('#note-text', '这里的板书很清楚');
    await page.click('#note-form button[type="submit"]');
    // The live note from the lesson and this one.
    await page.waitForFunction(() => window.ketangLibrary.notes.length === 2, null, { timeout: STEP_TIMEOUT_MS });
    const note = await page.evaluate(() => window.ketangLibrary.notes.find((n) => n.text === '这里的板书很清楚'));
    const live = await page.evaluate(() => window.ketangLibrary.notes.find((n) => n.text === '导入环节用了生活中的例子'));
    assert.ok(live && live.atMs < note.atMs + 60_000, `the live note is on the timeline: ${JSON.stringify(live)}`);
    assert.ok(Math.abs(note.atMs - noteAt) < 300, `note at ${note.atMs} ms, video at ${noteAt} ms`);
    await page.evaluate(() => { document.getElementById('video').currentTime = 0.5; });
    await page.click(`#timeline .marker[data-id="${note.id}"]`);
    await waitFor('the marker to seek to its note', async () => {
      const t = await page.evaluate(() => document.getElementById('video').currentTime * 1000);
      return { ok: t >= note.atMs - 300, seen: { t, at: note.atMs } };
    }, { timeoutMs: STEP_TIMEOUT_MS });

    // The teacher's library link opens the recording without a key, notes included.
    const link = await api('POST', `/library/${entry.id}/links`, {});
    const viaLink = await openPage(rig.browser, link.url, { label: 'link', log });
    pages.link = viaLink;
    await viaLink.page.waitForFunction((id) => window.ketangLibrary?.open === id && window.ketangLibrary.notes.length === 2, entry.id, { timeout: STEP_TIMEOUT_MS });
    await viaLink.page.waitForFunction(() => document.getElementById('video').readyState >= 2, null, { timeout: STEP_TIMEOUT_MS });
    assert.equal(await viaLink.page.isHidden('#back'), true, 'a link opens one recording only');
  }
});
