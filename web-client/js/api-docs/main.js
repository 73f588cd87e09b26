// The admin API reference (/api/v1/docs), rendered from /api/v1/openapi.json by Ketang's own
// code: no script from elsewhere runs on the admin origin (the admin page keeps its key in
// sessionStorage), and the page needs no API key.

import { el, refName, schemaAnchor, schemaTree, setComponents, typeLabel } from './schema.js';

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];
const $ = (id) => document.getElementById(id);

/** Every operation: {id, method, path, op, tag}. */
function operations(doc) {
  const ops = [];
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      ops.push({ id: `op-${op.operationId || `${method}-${path}`}`, method, path, op, tag: op.tags?.[0] || 'other' });
    }
  }
  return ops;
}

function resolve(doc, obj) {
  const ref = obj?.$ref;
  if (typeof ref !== 'string' || !ref.startsWith('#/')) return obj;
  return ref.slice(2).split('/').reduce((o, k) => o?.[k], doc) ?? obj;
}

function parameters(doc, op) {
  const params = (op.parameters || []).map((p) => resolve(doc, p));
  if (params.length === 0) return null;
  return el('div', {}, el('h4', {}, 'Parameters'), el('table', {},
    el('tr', {}, el('th', {}, 'name'), el('th', {}, 'in'), el('th', {}, 'type'), el('th', {}, '')),
    params.map((p) => el('tr', {},
      el('td', {}, el('code', {}, p.name), p.required ? el('span', { class: 'schema' }, el('span', { class: 'req' }, ' required')) : null),
      el('td', {}, p.in),
      el('td', { class: 'schema' }, el('span', { class: 'type' }, typeLabel(p.schema))),
      el('td', {}, p.description || '')))));
}

function content(body) {
  return Object.entries(body?.content || {}).map(([type, media]) => el('div', {},
    el('code', {}, type), media.schema ? schemaTree(media.schema, 0, { expand: true }) : null));
}

function requestBody(doc, op) {
  const body = resolve(doc, op.requestBody);
  if (!body) return null;
  return el('div', {}, el('h4', {}, `Request body${body.required ? ' (required)' : ''}`),
    body.description ? el('p', {}, body.description) : null, content(body));
}

function responses(doc, op) {
  const rows = Object.entries(op.responses || {}).map(([status, r]) => {
    const resp = resolve(doc, r);
    const shown = status.startsWith('2') ? content(resp) : [];
    const schemaNames = Object.values(resp.content || {}).map((m) => refName(m.schema)).filter(Boolean);
    return el('tr', {},
      el('td', { class: `status-${status[0]}` }, el('code', {}, status)),
      el('td', {}, resp.description || '', shown,
        !status.startsWith('2') && schemaNames.length ? el('span', { class: 'schema' }, ' → ', typeLabel({ $ref: `#/components/schemas/${schemaNames[0]}` })) : null));
  });
  return el('div', {}, el('h4', {}, 'Responses'), el('table', {}, rows));
}

function curl(o, secured) {
  const lines = [`curl -X ${o.method.toUpperCase()} "${location.origin}${o.path}"`];
  if (secured) lines.push('  -H "Authorization: Bearer $KETANG_KEY"');
  if (o.op.requestBody) lines.push('  -H "Content-Type: application/json" -d @body.json');
  return el('code', { class: 'curl' }, lines.join(' \\\n'));
}

function operationCard(doc, o) {
  const secured = !(Array.isArray(o.op.security) && o.op.security.every((s) => Object.keys(s).length === 0));
  return el('section', { class: 'op', id: o.id, 'data-search': `${o.method} ${o.path} ${o.op.summary || ''} ${o.tag}`.toLowerCase() },
    el('div', { class: 'op-head' },
      el('span', { class: `method method-${o.method}` }, o.method.toUpperCase()),
      el('span', { class: 'op-path' }, o.path),
      el('span', { class: 'op-summary' }, o.op.summary || '')),
    o.op.description ? el('p', {}, o.op.description) : null,
    parameters(doc, o.op), requestBody(doc, o.op), responses(doc, o.op),
    el('h4', {}, 'Example'), curl(o, secured));
}

function render(doc) {
  const ops = operations(doc);
  setComponents(doc.components?.schemas);
  const tags = [...new Set([...(doc.tags || []).map((t) => t.name), ...ops.map((o) => o.tag)])];
  document.title = doc.info?.title || document.title;
  $('docs-title').textContent = `${doc.info?.title || 'API'} ${doc.info?.version || ''}`;
  const nav = $('docs-nav');
  const main = $('docs-main');
  main.replaceChildren(el('h1', {}, doc.info?.title || 'API'), el('p', { class: 'docs-intro' }, doc.info?.description || ''));
  for (const tag of tags) {
    const mine = ops.filter((o) => o.tag === tag);
    if (mine.length === 0) continue;
    nav.append(el('h3', { 'data-tag': tag }, tag), ...mine.map((o) => el('a', { href: `#${o.id}`, 'data-op': o.id },
      `${o.method.toUpperCase()} ${o.path.replace('/api/v1', '')}`)));
    main.append(el('h2', { id: `tag-${tag}`, 'data-tag': tag }, tag), ...mine.map((o) => operationCard(doc, o)));
  }
  const schemas = Object.entries(doc.components?.schemas || {});
  nav.append(el('h3', {}, 'schemas'), el('a', { href: '#schemas' }, `${schemas.length} schemas`));
  main.append(el('h2', { id: 'schemas' }, 'Schemas'),
    ...schemas.map(([name, s]) => el('section', { class: 'schema-card', id: schemaAnchor(name) },
      el('h3', {}, name), schemaTree(s))));
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
  window.ketangDocs = { operations: ops.length, schemas: schemas.length };
}

/** Shows only the operations whose method, path, summary or tag contain the filter text. */
function filter(text) {
  const q = text.trim().toLowerCase();
  for (const card of document.querySelectorAll('.op')) {
    const show = !q || card.dataset.search.includes(q);
    card.hidden = !show;
    const link = document.querySelector(`.docs-nav a[data-op="${card.id}"]`);
    if (link) link.hidden = !show;
  }
}

async function main() {
  $('docs-filter').addEventListener('input', (e) => filter(e.target.value));
  try {
    const res = await fetch('/api/v1/openapi.json', { headers: { Accept: 'application/json' } });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    render(await res.json());
  } catch (err) {
    $('docs-status').textContent = `The OpenAPI document could not be loaded: ${err.message}`;
  }
}

main();
