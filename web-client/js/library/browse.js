// The list: filters and search as query parameters of GET /api/v1/library (admins), newest
// first, one page at a time; a row opens the recording in the player.

import { t } from '../i18n.js';
import { $, el, reportError } from '../admin/dom.js';
import { call } from './api.js';
import { clock, size } from './format.js';

const PAGE = 50;

/** The list view; `open(entry)` is called when a row is chosen. */
export function browseView(open) {
  let next = null;
  const form = $('filters');

  function query(before = null) {
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (String(v).trim() !== '') p.set(k, String(v).trim());
    p.set('limit', String(PAGE));
    if (before) p.set('before', before);
    return p.toString();
  }

  function row(e) {
    const state = el('td', { class: 'state' }, el('span', { class: `badge state-${e.state}`, key: `state_${e.state}` }));
    if (e.recovered) state.append(' ', el('span', { class: 'badge recovered', key: 'libRecovered', title: t('libRecoveredTitle') }));
    const title = el('a', { href: `#${e.id}`, text: e.title, on: { click: (ev) => { ev.preventDefault(); open(e); } } });
    return el('tr', { data: { id: e.id, state: e.state, recovered: String(e.recovered) } },
      el('td', {}, title),
      el('td', { text: e.subject || '—' }), el('td', { text: e.grade || '—' }),
      el('td', { text: e.teacherName || '—' }), el('td', { text: e.schoolName || '—' }),
      el('td', { key: `mode_${e.mode}` }), el('td', { text: e.date }),
      el('td', { text: e.durationMs == null ? '—' : clock(e.durationMs) }), el('td', { text: size(e.bytes) }),
      state);
  }

  async function load(append = false) {
    try {
      const page = await call('GET', `/library?${query(append ? next : null)}`);
      const body = $('list-body');
      if (!append) body.replaceChildren();
      body.append(...page.items.map(row));
      next = page.next;
      $('more').hidden = !next;
      $('list-empty').hidden = body.children.length > 0;
      window.ketangLibrary.listed = [...body.querySelectorAll('tr')].map((r) => r.dataset.id);
    } catch (err) {
      reportError(err, form);
    }
  }

  /** Teachers and schools for the filters' selects (best effort: the list works without). */
  async function directory() {
    try {
      const [teachers, schools] = await Promise.all([call('GET', '/teachers'), call('GET', '/schools')]);
      const fill = (select, items) => {
        const keep = select.firstElementChild;
        select.replaceChildren(keep, ...items.map((i) => el('option', { value: i.id, text: i.name })));
      };
      fill($('filter-teacher'), teachers);
      fill($('filter-school'), schools);
    } catch { /* the selects stay at "Any" */ }
  }

  form.addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
  form.addEventListener('reset', () => setTimeout(() => load(), 0));
  $('more').addEventListener('click', () => load(true));

  return { load, directory };
}
