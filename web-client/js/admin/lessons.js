// The timetable view: a week of occurrences, and the lesson form (create and edit, weekly
// recurrence). Times are wall times in the lesson's time zone, as the API takes them.

import { t } from '../i18n.js';
import { get, post, put } from './api.js';
import { el, field, input, select, reportError, banner, $ } from './dom.js';
import { directory, teacherName, classroomName } from './directory.js';
import { openOccurrence } from './occurrence.js';

export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
export const DEFAULT_TZ = 'Asia/Shanghai';

// ---- wall-time helpers (strings, no time zone arithmetic) ---------------------------------

/** The current wall time in `tz` as `YYYY-MM-DDTHH:MM`. */
export function nowIn(tz) {
  const parts = new Intl.DateTimeFormat('sv-SE', {
    timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
  }).format(new Date());
  return parts.replace(' ', 'T').slice(0, 16);
}

/** `YYYY-MM-DDTHH:MM` plus minutes, as wall time. */
export function addMinutes(local, minutes) {
  const d = new Date(`${local}:00Z`);
  d.setUTCMinutes(d.getUTCMinutes() + minutes);
  return d.toISOString().slice(0, 16);
}

/** `YYYY-MM-DD` plus days. */
export function addDays(date, days) {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

/** The Monday of the week of `date`. */
export function mondayOf(date) {
  const dow = (new Date(`${date}T00:00:00Z`).getUTCDay() + 6) % 7;
  return addDays(date, -dow);
}

/** The wall date and time of an RFC 3339 string with an offset: `{date, time, local}`. */
export function wall(rfc3339) {
  return { date: rfc3339.slice(0, 10), time: rfc3339.slice(11, 16), local: rfc3339.slice(0, 16) };
}

// ---- the week ------------------------------------------------------------------------------

const state = { week: mondayOf(nowIn(DEFAULT_TZ).slice(0, 10)), editing: null };

export function lessonsView(root) {
  const render = async () => {
    const toolbar = el('div', { class: 'toolbar' },
      el('button', { type: 'button', class: 'ctl', key: 'prevWeek', on: { click: () => { state.week = addDays(state.week, -7); render(); } } }),
      el('button', { type: 'button', class: 'ctl', key: 'thisWeek', on: { click: () => { state.week = mondayOf(nowIn(DEFAULT_TZ).slice(0, 10)); render(); } } }),
      el('button', { type: 'button', class: 'ctl', key: 'nextWeek', on: { click: () => { state.week = addDays(state.week, 7); render(); } } }),
      el('strong', { key: 'weekOf', params: { date: state.week } }),
      el('span', { class: 'spacer' }),
      el('button', { type: 'button', class: 'ctl primary', key: 'newLesson', id: 'new-lesson', on: { click: () => { state.editing = null; showForm(root, render); } } }));
    let entries = [];
    try {
      entries = await get(`/occurrences?from=${state.week}&to=${addDays(state.week, 7)}`);
    } catch (err) {
      reportError(err);
    }
    const today = nowIn(DEFAULT_TZ).slice(0, 10);
    const days = WEEKDAYS.map((wd, i) => {
      const date = addDays(state.week, i);
      const cards = entries
        .filter((e) => wall(e.occurrence.start).date === date)
        .map((e) => occurrenceCard(e, render));
      return el('div', { class: date === today ? 'day today' : 'day', data: { date } },
        el('h3', {}, el('span', { key: `wd_${wd}` }), ` ${date.slice(5)}`), ...cards);
    });
    const form = root.querySelector('#lesson-form');
    root.replaceChildren(toolbar, ...(form ? [form] : []), el('div', { class: 'week', id: 'week' }, ...days));
  };
  render.editLesson = (lesson) => { state.editing = lesson; showForm(root, render); };
  return render;
}

function occurrenceCard(entry, refresh) {
  const o = entry.occurrence;
  return el('button', {
    type: 'button', class: 'occ',
    data: { occurrenceId: o.id, lessonId: entry.lesson.id, mode: entry.lesson.mode, status: o.status },
    on: { click: () => openOccurrence(entry, { refresh, editLesson: refresh.editLesson }) },
  },
  el('span', { class: 'time', text: `${wall(o.start).time}–${wall(o.end).time}` }),
  el('span', { class: 'title', text: entry.lesson.title }),
  el('span', { class: 'muted', text: teacherName(entry.lesson.teacherId) }));
}

// ---- the lesson form -------------------------------------------------------------------------

function showForm(root, refresh) {
  root.querySelector('#lesson-form')?.remove();
  const l = state.editing;
  const tz = l?.timezone ?? DEFAULT_TZ;
  const start = l ? wall(l.start).local : '';
  const end = l ? wall(l.end).local : '';
  const classroomOptions = directory.classrooms.map((c) => [c.id, `=${classroomName(c.id)}`]);
  const remote = el('div', { class: 'checks', id: 'remote-classrooms' },
    ...directory.classrooms.map((c) => el('label', {},
      el('input', { type: 'checkbox', name: 'remote', value: c.id, checked: l?.remoteClassroomIds.includes(c.id) }),
      classroomName(c.id))));
  const weekdays = el('div', { class: 'checks' },
    ...WEEKDAYS.map((wd) => el('label', {},
      el('input', { type: 'checkbox', name: 'weekday', value: wd, checked: l?.recurrence?.weekdays.includes(wd) }),
      el('span', { key: `wd_${wd}` }))));
  const repeat = el('input', { type: 'checkbox', name: 'repeat', checked: !!l?.recurrence });
  const recurrence = el('div', { class: 'wide', id: 'recurrence-fields', hidden: !l?.recurrence },
    field('weekdays', weekdays, { field: 'recurrence.weekdays', wide: true }),
    field('until', input('until', { type: 'date', value: l?.recurrence?.until ?? '' }), { field: 'recurrence.until' }));
  repeat.addEventListener('change', () => { recurrence.hidden = !repeat.checked; });
  const form = el('form', { class: 'admin-form', id: 'lesson-form', novalidate: true },
    el('h2', { class: 'wide', key: l ? 'editLesson' : 'newLesson' }),
    field('title', input('title', { value: l?.title ?? '', maxlength: 120 }), { wide: true }),
    field('subject', input('subject', { value: l?.subject ?? '', maxlength: 32 })),
    field('grade', input('grade', { value: l?.grade ?? '', maxlength: 32 })),
    field('mode', select('mode', ['dedicated', 'master', 'broadcast'].map((m) => [m, `mode_${m}`]), l?.mode ?? 'dedicated')),
    field('teacher', select('teacherId', directory.teachers.map((x) => [x.id, `=${x.name}`]), l?.teacherId ?? null), { field: 'teacherId' }),
    field('masterClassroom', select('masterClassroomId', classroomOptions, l?.masterClassroomId ?? null), { field: 'masterClassroomId' }),
    field('remoteClassrooms', remote, { field: 'remoteClassroomIds', wide: true }),
    field('start', input('start', { type: 'datetime-local', value: start })),
    field('end', input('end', { type: 'datetime-local', value: end })),
    field('timezone', input('timezone', { value: tz })),
    el('div', { class: 'checks' },
      el('button', { type: 'button', class: 'ctl', key: 'startNow', id: 'start-now', on: { click: () => {
        const now = nowIn(form.timezone.value || DEFAULT_TZ);
        form.start.value = now;
        form.end.value = addMinutes(now, 45);
      } } }),
      el('label', {}, el('input', { type: 'checkbox', name: 'record', checked: l?.record }), el('span', { key: 'record' })),
      el('label', {}, repeat, el('span', { key: 'repeatWeekly' }))),
    recurrence,
    el('div', { class: 'actions' },
      el('button', { type: 'submit', class: 'ctl primary', key: l ? 'save' : 'create', 'data-action': 'submit' }),
      el('button', { type: 'button', class: 'ctl', key: 'cancel', on: { click: () => form.remove() } })));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = {
      title: form.title.value, subject: form.subject.value, grade: form.grade.value, mode: form.mode.value,
      teacherId: form.teacherId.value, masterClassroomId: form.masterClassroomId.value,
      remoteClassroomIds: [...form.querySelectorAll('input[name="remote"]:checked')].map((c) => c.value),
      start: form.start.value, end: form.end.value, timezone: form.timezone.value || null,
      record: form.record.checked,
      recurrence: repeat.checked ? {
        weekdays: [...form.querySelectorAll('input[name="weekday"]:checked')].map((c) => c.value),
        until: form.until.value,
      } : null,
    };
    try {
      const saved = state.editing ? await put(`/lessons/${state.editing.id}`, body) : await post('/lessons', body);
      banner(t('lessonSaved'), 'info', 3000);
      form.remove();
      const first = saved.occurrences.find((o) => o.status === 'scheduled') ?? saved.occurrences[0];
      if (first) state.week = mondayOf(wall(first.start).date);
      state.editing = null;
      await refresh();
      $('week')?.querySelector(`[data-occurrence-id="${first?.id}"]`)?.focus();
    } catch (err) {
      reportError(err, form);
    }
  });
  root.insertBefore(form, root.querySelector('#week'));
  form.title.focus();
}
