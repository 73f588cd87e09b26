// Live rooms on this server: who is in each since when, with buttons to end a lesson and to
// remove a participant. Refreshed every few seconds while the view is shown.

import { t, getLang } from '../i18n.js';
import { get, post, del } from './api.js';
import { el, reportError } from './dom.js';

const REFRESH_MS = 5000;

export function liveView(root) {
  let timer = null;
  const render = async () => {
    clearTimeout(timer);
    let rooms = [];
    try {
      rooms = await get('/rooms');
    } catch (err) {
      reportError(err);
    }
    const time = (s) => (s ? new Date(s).toLocaleString(getLang()) : '—');
    const cards = rooms.map((r) => el('div', { class: 'room-card', data: { room: r.room } },
      el('header', {},
        el('span', { class: 'title', text: r.lesson?.title ?? r.room }),
        el('span', { class: 'muted', key: 'since', params: { time: time(r.since) } }),
        el('span', { class: 'badge', key: 'participants', params: { count: r.participants.length } }),
        el('span', { class: 'spacer' }),
        r.lesson ? el('button', { type: 'button', class: 'ctl danger', key: 'endLesson', on: { click: async () => {
          if (!confirm(t('confirmEnd', { title: r.lesson.title }))) return;
          try { await post(`/lessons/${r.lesson.lessonId}/end?occurrence=${encodeURIComponent(r.lesson.occurrenceId)}`); } catch (err) { reportError(err); }
          render();
        } } }) : null),
      el('table', { class: 'admin-table' },
        el('thead', {}, el('tr', {}, el('th', { key: 'name' }), el('th', { key: 'role' }), el('th', { key: 'joinedAt' }), el('th', { key: 'transport' }), el('th', {}))),
        el('tbody', {}, ...r.participants.map((p) => el('tr', { data: { peerId: p.peerId } },
          el('td', { text: p.name }),
          el('td', { key: `role_${p.role}` }),
          el('td', { text: time(p.joinedAt) }),
          el('td', { class: 'transport', text: p.transport ? p.transport.toUpperCase() : '—' }),
          el('td', { class: 'actions' }, el('button', { type: 'button', class: 'ctl', key: 'remove', on: { click: async () => {
            if (!confirm(t('confirmRemove', { name: p.name }))) return;
            try { await del(`/rooms/${encodeURIComponent(r.room)}/participants/${p.peerId}`); } catch (err) { reportError(err); }
            render();
          } } }))))))));
    root.replaceChildren(
      el('div', { class: 'toolbar' }, el('h2', { key: 'tabLive' }), el('span', { class: 'spacer' }),
        el('button', { type: 'button', class: 'ctl', key: 'refresh', on: { click: render } })),
      ...(cards.length ? cards : [el('p', { class: 'empty', key: 'liveNone' })]));
    if (!root.hidden) timer = setTimeout(render, REFRESH_MS);
  };
  render.stop = () => clearTimeout(timer);
  return render;
}
