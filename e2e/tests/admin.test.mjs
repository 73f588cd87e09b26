// End to end: the admin page schedules a lesson, and its links work.
//
//   On /admin, signed in with a key from `ketang admin create-key`: create a school, two
//   classrooms, a teacher, and a dedicated lesson starting now (the form's "Start now"); open
//   the occurrence from the weekly timetable, show its links; open the teacher link and a
//   classroom link in two pages: both join the same room (the occurrence) and decode each
//   other's video. The API reference at /api/v1/docs renders every operation from the server's
//   own files, requesting nothing from another origin.
//
// Every wait is bounded; on failure the test prints what the pages showed, their console,
// and the server log.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { openPage, describePage } from '../lib/browser.mjs';
import { suiteRig, runWithAdminKey } from '../lib/rig.mjs';
import { waitFor, sleep } from '../lib/util.mjs';

const STEP_TIMEOUT_MS = 10_000;
const JOIN_TIMEOUT_MS = 15_000;
const DECODE_TIMEOUT_MS = 15_000;

describe('admin page', () => {
  const rig = suiteRig();
  const { log, pages } = rig;

  it('schedules a lesson whose teacher and classroom links meet in one room', async () => {
    await runWithAdminKey(rig, scenario, {
      describe: async (name, p) => (name !== 'admin' ? describePage(p) : {
        ...await describePage(p),
        adminPage: await p.page.evaluate(() => ({
          view: document.body.dataset.view,
          banners: [...document.querySelectorAll('.banner')].map((b) => b.innerText),
          dialog: document.getElementById('dialog')?.innerText?.slice(0, 1500),
        })).catch((e) => String(e)),
      }),
    });
  });

  async function scenario(key) {
    const admin = await openPage(rig.browser, `${rig.server.baseUrl}/admin`, { label: 'admin', log });
    pages.admin = admin;
    const page = admin.page;
    assert.equal(admin.response.status(), 200, 'GET /admin');

    // Sign in.
    await page.fill('#signin-key', key);
    await page.click('#signin-form button[type="submit"]');
    await page.waitForFunction(() => window.ketangAdmin?.signedIn === true, null, { timeout: STEP_TIMEOUT_MS });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('ketang.adminKey')), key, 'the key is kept in sessionStorage');

    // A school.
    await page.click('.tab[data-tab="schools"]');
    await page.fill('#schools-form [name="name"]', '实验小学');
    await page.fill('#schools-form [name="district"]', '城关区');
    await page.selectOption('#schools-form [name="kind"]', 'central');
    await page.click('#schools-form [data-action="submit"]');
    await waitRows(page, '#view-schools', 1);

    // Two classrooms.
    await page.click('.tab[data-tab="classrooms"]');
    for (const [i, name] of ['三(1)班', '三(2)班'].entries()) {
      await page.fill('#classrooms-form [name="name"]', name);
      await page.click('#classrooms-form [data-action="submit"]');
      await waitRows(page, '#view-classrooms', i + 1);
    }

    // A teacher.
    await page.click('.tab[data-tab="teachers"]');
    await page.fill('#teachers-form [name="name"]', '李老师');
    await page.click('#teachers-form [data-action="submit"]');
    await waitRows(page, '#view-teachers', 1);

    // A dedicated lesson starting now: master classroom 三(1)班, remote 三(2)班.
    await page.click('.tab[data-tab="lessons"]');
    await page.click('#new-lesson');
    await page.fill('#lesson-form [name="title"]', '三年级数学：认识分数');
    await page.fill('#lesson-form [name="subject"]', '数学');
    await page.fill('#lesson-form [name="grade"]', '三年级');
    await page.selectOption('#lesson-form [name="mode"]', 'dedicated');
    const classrooms = await page.evaluate(() => [...document.querySelectorAll('#lesson-form [name="masterClassroomId"] option')]
      .map((o) => ({ id: o.value, label: o.textContent })));
    const first = classrooms.find((c) => c.label.includes('三(1)班'));
    const second = classrooms.find((c) => c.label.includes('三(2)班'));
    assert.ok(first && second, JSON.stringify(classrooms));
    await page.selectOption('#lesson-form [name="masterClassroomId"]', first.id);
    await page.check(`#lesson-form input[name="remote"][value="${second.id}"]`);
    await page.click('#start-now');
    await page.click('#lesson-form [data-action="submit"]');

    // It shows in this week's timetable; open it and show its links.
    const card = await waitFor('the lesson in the timetable', async () => {
      const cards = await page.evaluate(() => [...document.querySelectorAll('#week .occ')].map((c) => ({
        id: c.dataset.occurrenceId, status: c.dataset.status, text: c.innerText,
      })));
      return { ok: cards.length === 1 && cards[0].status === 'scheduled', seen: cards };
    }, { timeoutMs: STEP_TIMEOUT_MS });
    const occurrence = card.seen[0].id;
    await page.click(`#week .occ[data-occurrence-id="${occurrence}"]`);
    await page.click('#show-links');
    const links = await waitFor('the room links', async () => {
      const seen = await page.evaluate(() => [...document.querySelectorAll('#links .link')].map((l) => ({
        kind: l.dataset.linkKind, role: l.dataset.role, url: l.querySelector('input').value,
      })));
      return { ok: seen.length === 3, seen };
    }, { timeoutMs: STEP_TIMEOUT_MS });
    const linkOf = (kind) => links.seen.find((l) => l.kind === kind)?.url;
    assert.deepEqual(links.seen.map((l) => l.kind), ['teacher', 'masterClassroom', 'remoteClassroom']);
    for (const l of links.seen) {
      assert.ok(l.url.startsWith(`${rig.server.baseUrl}/r/${occurrence}?t=`), `${l.kind} link opens the occurrence's room: ${l.url}`);
    }

    // The teacher and the remote classroom meet in the room.
    pages.teacher = await openPage(rig.browser, linkOf('teacher'), { label: 'teacher', log });
    pages.classroom = await openPage(rig.browser, linkOf('remoteClassroom'), { label: 'classroom', log });
    for (const who of ['teacher', 'classroom']) assert.equal(pages[who].response.status(), 200, `${who} link page`);
    const joined = await waitFor('both pages to join', async () => {
      const s = {};
      for (const who of ['teacher', 'classroom']) {
        s[who] = await pages[who].page.evaluate(() => ({
          state: window.ketang?.state, peerId: window.ketang?.peerId, room: window.ketang?.room, role: window.ketang?.role,
        }));
      }
      return { ok: Object.values(s).every((x) => x.state === 'joined' && Number.isInteger(x.peerId)), seen: s };
    }, { timeoutMs: JOIN_TIMEOUT_MS });
    const peer = { teacher: joined.seen.teacher.peerId, classroom: joined.seen.classroom.peerId };

    const decoding = new Set();
    await waitFor('each page to decode growing video from the other', async () => {
      const first = {};
      for (const who of ['teacher', 'classroom']) first[who] = await pages[who].page.evaluate(() => window.ketang.inboundVideoStats());
      await sleep(600);
      const second = {};
      for (const who of ['teacher', 'classroom']) second[who] = await pages[who].page.evaluate(() => window.ketang.inboundVideoStats());
      for (const [viewer, other] of [['teacher', 'classroom'], ['classroom', 'teacher']]) {
        const now = second[viewer].find((s) => s.peerId === peer[other] && s.source === 'camera');
        const then = now && first[viewer].find((s) => s.mid === now.mid);
        if (now && then && now.framesDecoded > then.framesDecoded && now.frameHeight > 0) decoding.add(`${viewer}<-${other}`);
      }
      return { ok: decoding.size === 2, seen: { decoding: [...decoding], peer, stats: second } };
    }, { timeoutMs: DECODE_TIMEOUT_MS, intervalMs: 0 });

    // The admin page lists the live room with both.
    await page.click('#dialog button[data-admin-text="close"]');
    await page.click('.tab[data-tab="live"]');
    await waitFor('the live room on the admin page', async () => {
      const rooms = await page.evaluate(() => [...document.querySelectorAll('.room-card')].map((r) => ({
        room: r.dataset.room, participants: r.querySelectorAll('tbody tr').length,
      })));
      return { ok: rooms.length === 1 && rooms[0].room === occurrence && rooms[0].participants === 2, seen: rooms };
    }, { timeoutMs: STEP_TIMEOUT_MS });

    await apiReference();
  }

  /** /api/v1/docs: every documented operation rendered, nothing loaded from elsewhere. */
  async function apiReference() {
    const origin = new URL(rig.server.baseUrl).origin;
    const foreign = [];
    pages.docs = await openPage(rig.browser, `${origin}/api/v1/docs`, {
      label: 'docs', log,
      beforeGoto: (p) => p.on('request', (r) => { if (new URL(r.url()).origin !== origin && !r.url().startsWith('data:')) foreign.push(r.url()); }),
    });
    const doc = await (await rig.server.fetch('/api/v1/openapi.json')).json();
    const documented = Object.values(doc.paths).reduce((n, item) => n + Object.keys(item).filter((m) => m !== 'parameters').length, 0);
    const docs = pages.docs.page;
    await docs.waitForFunction(() => window.ketangDocs, null, { timeout: STEP_TIMEOUT_MS });
    const shown = await docs.evaluate(() => ({ ...window.ketangDocs, cards: document.querySelectorAll('.op').length }));
    assert.equal(shown.cards, documented, `one card per documented operation: ${JSON.stringify(shown)}`);
    const create = docs.locator('#op-create_lesson');
    assert.match(await create.innerText(), /POST[\s\S]*\/api\/v1\/lessons[\s\S]*masterClassroomId/);
    await docs.fill('#docs-filter', 'attendance');
    const visible = await docs.evaluate(() => [...document.querySelectorAll('.op')].filter((c) => !c.hidden).map((c) => c.id));
    assert.ok(visible.length >= 1 && visible.length < shown.cards && visible.includes('op-lesson_attendance'), JSON.stringify(visible));
    assert.deepEqual(foreign, [], 'the reference requests nothing from another origin');
  }
});

/** Waits until the view's table has `n` rows. */
async function waitRows(page, view, n) {
  await waitFor(`${n} row(s) in ${view}`, async () => {
    const rows = await page.evaluate((v) => document.querySelectorAll(`${v} tbody tr`).length, view);
    const errors = await page.evaluate(() => [...document.querySelectorAll('.banner.error')].map((b) => b.innerText));
    return { ok: rows === n, seen: { rows, errors } };
  }, { timeoutMs: STEP_TIMEOUT_MS });
}
