// The attendance of one occurrence (GET /lessons/{id}/attendance?occurrence=…): for the teacher
// and each classroom, whether and when it was in the room, for how long, how often it
// reconnected and whether it was called on; and the same as a CSV download.

import { get, getText } from './api.js';
import { el, reportError } from './dom.js';

/** `HH:MM:SS` of an RFC 3339 time: the lesson's wall clock, as the API gives it. */
const clock = (rfc3339) => (rfc3339 ? rfc3339.slice(11, 19) : '');

/** `1:02:03` or `2:03`. */
export function duration(seconds) {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = String(seconds % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

function stays(p) {
  if (!p.intervals.length) return el('span', { class: 'muted', key: 'absent' });
  return el('span', {}, ...p.intervals.map((i, n) => [
    n ? el('br') : null,
    `${clock(i.joinedAt)}–${i.leftAt ? clock(i.leftAt) : '…'}`,
    i.endReason ? el('span', { class: 'muted' }, ' (', el('span', { key: `end_${i.endReason}` }), ')') : null,
  ]));
}

function row(p) {
  return el('tr', { data: { kind: p.kind, classroomId: p.classroomId ?? '', attended: String(p.attended), calledOn: String(p.calledOn) } },
    el('td', {}, el('strong', { text: p.name }), el('br'), el('span', { class: 'muted', key: `att_${p.kind}` })),
    el('td', {}, p.present ? el('span', { class: 'badge', key: 'inRoomNow' }) : null, stays(p)),
    el('td', { class: 'total', text: duration(p.totalSeconds) }),
    el('td', { class: 'reconnects', text: String(p.reconnects) }),
    el('td', { class: 'called-on', key: p.calledOn ? 'yes' : 'no' }));
}

/** Loads and shows the attendance of occurrence `occurrenceId` of lesson `lessonId` in `root`. */
export async function showAttendance(root, lessonId, occurrenceId) {
  const path = `/lessons/${lessonId}/attendance?occurrence=${encodeURIComponent(occurrenceId)}`;
  const report = await get(path);
  const o = report.occurrences[0];
  const download = el('button', { type: 'button', class: 'ctl', key: 'downloadCsv', id: 'attendance-csv', on: { click: async () => {
    try {
      const { text, filename } = await getText(path, 'text/csv');
      const url = URL.createObjectURL(new Blob([text], { type: 'text/csv;charset=utf-8' }));
      const a = el('a', { href: url, download: filename });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) {
      reportError(err);
    }
  } } });
  const refresh = el('button', { type: 'button', class: 'ctl', key: 'refresh', on: { click: () => showAttendance(root, lessonId, occurrenceId).catch(reportError) } });
  root.replaceChildren(
    el('div', { class: 'toolbar' }, el('h3', { key: 'attendance' }), el('span', { class: 'spacer' }), refresh, download),
    el('table', { class: 'admin-table', id: 'attendance-table' },
      el('thead', {}, el('tr', {},
        el('th', { key: 'name' }), el('th', { key: 'inRoom' }), el('th', { key: 'totalTime' }),
        el('th', { key: 'reconnects' }), el('th', { key: 'calledOn' }))),
      el('tbody', {}, ...(o ? o.participants.map(row) : []))));
}
