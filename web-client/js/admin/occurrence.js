// One occurrence in a dialog: its lesson, its room links (copy, reissue), its attendance, and
// what can be done to it (move, cancel or restore, end now) or to its whole lesson (edit,
// cancel, delete).

import { t } from '../i18n.js';
import { get, post, put, del } from './api.js';
import { el, field, input, reportError, banner, openDialog, closeDialog, copyText } from './dom.js';
import { teacherName, classroomName } from './directory.js';
import { showAttendance } from './attendance.js';

const wallOf = (rfc3339) => rfc3339.slice(0, 16);
const shown = (rfc3339) => rfc3339.slice(0, 16).replace('T', ' ');

/**
 * Opens the dialog for a timetable entry `{occurrence, lesson}`.
 * `hooks.refresh()` redraws the timetable; `hooks.editLesson(lesson)` opens the lesson form.
 */
export function openOccurrence(entry, hooks) {
  const { occurrence: o, lesson: l } = entry;
  const links = el('div', { class: 'links', id: 'links' });
  const attendance = el('div', { class: 'attendance', id: 'attendance' });
  const act = (fn) => async () => {
    try {
      await fn();
    } catch (err) {
      reportError(err);
    }
  };
  const after = async () => { closeDialog(); await hooks.refresh(); };

  const showLinks = async (reissue) => {
    const q = `?occurrence=${encodeURIComponent(o.id)}`;
    const r = reissue ? await post(`/lessons/${l.id}/links/reissue${q}`) : await get(`/lessons/${l.id}/links${q}`);
    renderLinks(links, r);
  };

  const moveForm = el('form', { class: 'admin-form', id: 'move-form', hidden: true, novalidate: true },
    field('start', input('start', { type: 'datetime-local', value: wallOf(o.start) })),
    field('end', input('end', { type: 'datetime-local', value: wallOf(o.end) })),
    el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'ctl primary', key: 'save' })));
  moveForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await put(`/occurrences/${o.id}`, { start: moveForm.start.value, end: moveForm.end.value });
      await after();
    } catch (err) {
      reportError(err, moveForm);
    }
  });

  const scheduled = o.status === 'scheduled';
  const buttons = el('div', { class: 'row' },
    scheduled ? el('button', { type: 'button', class: 'ctl primary', key: 'links', id: 'show-links', on: { click: act(() => showLinks(false)) } }) : null,
    scheduled ? el('button', { type: 'button', class: 'ctl', key: 'reissue', id: 'reissue-links', on: { click: act(() => showLinks(true)) } }) : null,
    scheduled ? el('button', { type: 'button', class: 'ctl', key: 'move', on: { click: () => { moveForm.hidden = !moveForm.hidden; } } }) : null,
    scheduled ? el('button', { type: 'button', class: 'ctl danger', key: 'endNow', on: { click: act(async () => {
      if (!confirm(t('confirmEnd', { title: l.title }))) return;
      await post(`/lessons/${l.id}/end?occurrence=${encodeURIComponent(o.id)}`);
      await after();
    }) } }) : null,
    scheduled ? el('button', { type: 'button', class: 'ctl danger', key: 'cancelOccurrence', on: { click: act(async () => {
      await post(`/occurrences/${o.id}/cancel`);
      await after();
    }) } }) : null,
    o.status === 'cancelled' ? el('button', { type: 'button', class: 'ctl', key: 'restoreOccurrence', on: { click: act(async () => {
      await post(`/occurrences/${o.id}/restore`);
      await after();
    }) } }) : null,
    el('button', { type: 'button', class: 'ctl', key: 'attendance', id: 'show-attendance', on: { click: act(() => showAttendance(attendance, l.id, o.id)) } }));

  const lessonButtons = el('div', { class: 'row' },
    el('button', { type: 'button', class: 'ctl', key: 'editLesson', on: { click: act(async () => {
      const full = await get(`/lessons/${l.id}`);
      closeDialog();
      hooks.editLesson(full.lesson);
    }) } }),
    el('button', { type: 'button', class: 'ctl danger', key: 'cancelSeries', on: { click: act(async () => {
      if (!confirm(t('confirmCancelSeries', { title: l.title }))) return;
      await post(`/lessons/${l.id}/cancel`);
      await after();
    }) } }),
    el('button', { type: 'button', class: 'ctl danger', key: 'deleteLesson', on: { click: act(async () => {
      if (!confirm(t('confirmDelete', { name: l.title }))) return;
      await del(`/lessons/${l.id}`);
      await after();
    }) } }),
    el('button', { type: 'button', class: 'ctl', key: 'close', on: { click: closeDialog } }));

  openDialog(
    el('h2', { text: l.title }),
    el('dl', { class: 'kv' },
      el('dt', { key: 'mode' }), el('dd', { key: `mode_${l.mode}` }),
      el('dt', { key: 'teacher' }), el('dd', { text: teacherName(l.teacherId) }),
      el('dt', { key: 'masterClassroom' }), el('dd', { text: classroomName(l.masterClassroomId) }),
      el('dt', { key: 'remoteClassrooms' }), el('dd', { text: l.remoteClassroomIds.map(classroomName).join('、') || '—' }),
      el('dt', { key: 'occurrence' }), el('dd', { text: `${shown(o.start)} – ${shown(o.end).slice(11)} (${o.timezone})` }),
      el('dt', { key: 'status' }), el('dd', { key: `status_${o.status}`, data: { status: o.status }, id: 'occurrence-status' }),
      el('dt', { key: 'room' }), el('dd', { text: o.room })),
    buttons, moveForm, links, attendance, lessonButtons);
}

function renderLinks(root, r) {
  root.replaceChildren(
    el('p', { class: 'muted', key: 'linksValid', params: { from: shown(r.validFrom), until: shown(r.validUntil) } }),
    ...r.links.map((link) => {
      const url = el('input', { readonly: true, value: link.url, 'aria-label': link.name });
      const copy = el('button', { type: 'button', class: 'ctl', key: 'copy' });
      copy.addEventListener('click', async () => {
        if (await copyText(link.url, url)) banner(`${t('copied')}: ${link.name}`, 'info', 2000);
      });
      return el('div', { class: 'link', data: { linkKind: link.kind, role: link.role, classroomId: link.classroomId ?? '' } },
        el('span', {}, el('strong', { key: `link_${link.kind}` }), el('br'), el('span', { class: 'muted', text: link.name })),
        url, copy);
    }));
}
