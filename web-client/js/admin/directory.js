// Schools, classrooms and teachers: a table each, and one form for creating and editing.

import { t } from '../i18n.js';
import { get, post, put, del } from './api.js';
import { el, field, input, select, reportError, banner } from './dom.js';

export const KINDS = ['rural', 'central', 'high', 'vocational', 'kindergarten', 'special'];
const KIND_DOWNLINK = { rural: 5000, central: 10000, high: 15000, vocational: 10000, kindergarten: 5000, special: 10000 };

/** The directory the other views pick from. */
export const directory = { schools: [], classrooms: [], teachers: [] };

export async function loadDirectory() {
  const [schools, classrooms, teachers] = await Promise.all([get('/schools'), get('/classrooms'), get('/teachers')]);
  Object.assign(directory, { schools, classrooms, teachers });
  return directory;
}

export const schoolName = (id) => directory.schools.find((s) => s.id === id)?.name ?? id;
export const teacherName = (id) => directory.teachers.find((x) => x.id === id)?.name ?? id;
export function classroomName(id) {
  const c = directory.classrooms.find((x) => x.id === id);
  return c ? `${schoolName(c.schoolId)} ${c.name}` : id;
}

/** `''` → null, digits → number (the API checks the range). */
const kbps = (v) => (v === '' || v === null || v === undefined ? null : Number(v));

/**
 * One resource's view: a form (create, or edit the selected row) above a table.
 * `spec`: {path, title, fields(item) → [label elements], body(form) → JSON, columns: [[key, fn]]}
 */
function resourceView(root, spec) {
  let editing = null;
  const render = () => {
    const form = el('form', { class: 'admin-form', id: `${spec.name}-form`, novalidate: true });
    const heading = el('h2', editing ? { key: 'editing', params: { name: editing.name } } : { key: spec.title });
    form.append(...spec.fields(editing), el('div', { class: 'actions' },
      el('button', { type: 'submit', class: 'ctl primary', key: editing ? 'save' : 'create', 'data-action': 'submit' }),
      editing ? el('button', { type: 'button', class: 'ctl', key: 'cancel', on: { click: () => { editing = null; render(); } } }) : null));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        const body = spec.body(form);
        if (editing) await put(`${spec.path}/${editing.id}`, body); else await post(spec.path, body);
        editing = null;
        await loadDirectory();
        banner(t('saved'), 'info', 2500);
        render();
      } catch (err) {
        reportError(err, form);
      }
    });
    const items = directory[spec.name];
    const table = items.length === 0 ? el('p', { class: 'empty', key: 'nothingYet' }) : el('table', { class: 'admin-table' },
      el('thead', {}, el('tr', {}, ...spec.columns.map(([key]) => el('th', { key })), el('th', { key: 'actions' }))),
      el('tbody', {}, ...items.map((item) => el('tr', { data: { id: item.id } },
        ...spec.columns.map(([, fn]) => el('td', { text: fn(item) })),
        el('td', { class: 'actions' },
          el('button', { type: 'button', class: 'ctl', key: 'edit', on: { click: () => { editing = item; render(); } } }),
          el('button', { type: 'button', class: 'ctl danger', key: 'delete', on: { click: async () => {
            if (!confirm(t('confirmDelete', { name: item.name }))) return;
            try { await del(`${spec.path}/${item.id}`); await loadDirectory(); render(); } catch (err) { reportError(err); }
          } } }))))));
    root.replaceChildren(heading, form, table);
  };
  return render;
}

export function schoolsView(root) {
  return resourceView(root, {
    name: 'schools', path: '/schools', title: 'newSchool',
    fields: (s) => [
      field('name', input('name', { value: s?.name ?? '', required: true, maxlength: 64 })),
      field('district', input('district', { value: s?.district ?? '', required: true, maxlength: 64 })),
      field('kind', select('kind', KINDS.map((k) => [k, `kind_${k}`]), s?.kind ?? 'rural')),
      field('downlink', input('downlinkKbps', { type: 'number', min: 100, value: s?.downlinkKbps ?? '', placeholder: t('defaultValue', { value: KIND_DOWNLINK[s?.kind ?? 'rural'] }) }), { field: 'downlinkKbps' }),
      field('uplink', input('uplinkKbps', { type: 'number', min: 100, value: s?.uplinkKbps ?? '' }), { field: 'uplinkKbps' }),
      field('budget', input('budgetKbps', { type: 'number', min: 100, value: s?.budgetKbps ?? '' }), { field: 'budgetKbps' }),
    ],
    body: (f) => ({
      name: f.name.value, district: f.district.value, kind: f.kind.value,
      downlinkKbps: kbps(f.downlinkKbps.value), uplinkKbps: kbps(f.uplinkKbps.value), budgetKbps: kbps(f.budgetKbps.value),
    }),
    columns: [
      ['name', (s) => s.name], ['district', (s) => s.district], ['kind', (s) => t(`kind_${s.kind}`)],
      ['downlink', (s) => s.effectiveDownlinkKbps], ['uplink', (s) => s.effectiveUplinkKbps], ['budget', (s) => s.budgetKbps ?? '—'],
    ],
  });
}

const schoolOptions = () => directory.schools.map((s) => [s.id, `=${s.name}`]);

export function classroomsView(root) {
  return resourceView(root, {
    name: 'classrooms', path: '/classrooms', title: 'newClassroom',
    fields: (c) => [
      field('school', select('schoolId', schoolOptions(), c?.schoolId ?? directory.schools[0]?.id ?? null)),
      field('name', input('name', { value: c?.name ?? '', required: true, maxlength: 64 })),
      field('downlink', input('downlinkKbps', { type: 'number', min: 100, value: c?.downlinkKbps ?? '' }), { field: 'downlinkKbps' }),
      field('uplink', input('uplinkKbps', { type: 'number', min: 100, value: c?.uplinkKbps ?? '' }), { field: 'uplinkKbps' }),
    ],
    body: (f) => ({ schoolId: f.schoolId.value, name: f.name.value, downlinkKbps: kbps(f.downlinkKbps.value), uplinkKbps: kbps(f.uplinkKbps.value) }),
    columns: [
      ['school', (c) => schoolName(c.schoolId)], ['name', (c) => c.name],
      ['downlink', (c) => c.effectiveDownlinkKbps], ['uplink', (c) => c.effectiveUplinkKbps],
    ],
  });
}

export function teachersView(root) {
  return resourceView(root, {
    name: 'teachers', path: '/teachers', title: 'newTeacher',
    fields: (x) => [
      field('school', select('schoolId', schoolOptions(), x?.schoolId ?? directory.schools[0]?.id ?? null)),
      field('name', input('name', { value: x?.name ?? '', required: true, maxlength: 64 })),
    ],
    body: (f) => ({ schoolId: f.schoolId.value, name: f.name.value }),
    columns: [['school', (x) => schoolName(x.schoolId)], ['name', (x) => x.name]],
  });
}
