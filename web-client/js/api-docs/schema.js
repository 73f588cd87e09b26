// Renders OpenAPI 3.1 schemas as nested lists: properties with their types, required marks,
// formats, bounds, enums and descriptions; `$ref`s link to the schema's card. Text only
// (textContent): descriptions come from the document, never as markup.

/** `el('span', {class: 'x'}, 'text', child)`: an element with attributes and children. */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const REF = '#/components/schemas/';

/** The document's component schemas, for expanding a top-level `$ref` in place. */
let components = {};
export function setComponents(schemas) {
  components = schemas || {};
}

/** The schema's name if it is a `$ref` to a component schema. */
export function refName(schema) {
  return typeof schema?.$ref === 'string' && schema.$ref.startsWith(REF) ? schema.$ref.slice(REF.length) : null;
}

/** The anchor id of a component schema's card. */
export const schemaAnchor = (name) => `schema-${name}`;

/** A short type label: `string (date-time)`, `integer ≥ 1`, `array of Lesson`, `Lesson`, `a | b`. */
export function typeLabel(schema) {
  if (!schema || typeof schema !== 'object') return 'any';
  const name = refName(schema);
  if (name) return el('a', { href: `#${schemaAnchor(name)}` }, name);
  for (const key of ['oneOf', 'anyOf']) {
    if (Array.isArray(schema[key])) return joined(schema[key].map(typeLabel), ' | ');
  }
  if (Array.isArray(schema.allOf)) return joined(schema.allOf.map(typeLabel), ' & ');
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
  const parts = types.map((t) => {
    if (t === 'array') return el('span', {}, 'array of ', typeLabel(schema.items));
    let text = t;
    if (schema.format) text += ` (${schema.format})`;
    return text;
  });
  if (parts.length === 0) return schema.properties ? 'object' : 'any';
  const label = joined(parts, ' | ');
  const bounds = [];
  if (schema.minimum !== undefined) bounds.push(`≥ ${schema.minimum}`);
  if (schema.maximum !== undefined) bounds.push(`≤ ${schema.maximum}`);
  if (schema.minLength !== undefined || schema.maxLength !== undefined) {
    bounds.push(`length ${schema.minLength ?? 0}–${schema.maxLength ?? '∞'}`);
  }
  return bounds.length ? el('span', {}, label, ` ${bounds.join(', ')}`) : label;
}

function joined(items, sep) {
  const span = el('span');
  items.forEach((item, i) => {
    if (i > 0) span.append(sep);
    span.append(item instanceof Node ? item : String(item));
  });
  return span;
}

/**
 * Nested list of an object's properties (and of array items, one level of inline objects). A
 * body's schema given by reference (`expand`) is shown with the referenced properties.
 */
export function schemaTree(schema, depth = 0, { expand = false } = {}) {
  const box = el('div', { class: 'schema' });
  if (!schema) return box;
  box.append(el('span', { class: 'type' }, typeLabel(schema)));
  const target = expand ? components[refName(schema) ?? refName(schema.items)] : null;
  if (target?.properties) {
    box.append(properties(target, depth));
    return box;
  }
  if (schema.enum) box.append(' one of ', el('code', {}, schema.enum.map((v) => JSON.stringify(v)).join(', ')));
  if (schema.description && depth === 0 && !refName(schema)) box.append(el('div', { class: 'desc' }, schema.description));
  const inline = schema.type === 'array' && schema.items && !refName(schema.items) ? schema.items : schema;
  if (inline.properties && depth < 4) box.append(properties(inline, depth));
  for (const key of ['oneOf', 'anyOf', 'allOf']) {
    const inlineVariants = (schema[key] || []).filter((s) => !refName(s) && s.properties);
    for (const v of inlineVariants) box.append(properties(v, depth));
  }
  return box;
}

function properties(schema, depth) {
  const required = new Set(schema.required || []);
  const list = el('ul');
  for (const [name, prop] of Object.entries(schema.properties)) {
    const item = el('li', {},
      el('span', { class: 'prop' }, name), ' ',
      el('span', { class: 'type' }, typeLabel(prop)),
      required.has(name) ? el('span', { class: 'req' }, ' required') : null,
      prop.enum ? el('span', {}, ' one of ', el('code', {}, prop.enum.map((v) => JSON.stringify(v)).join(', '))) : null,
      prop.example !== undefined ? el('span', { class: 'desc' }, ' e.g. ', el('code', {}, JSON.stringify(prop.example))) : null,
      prop.description ? el('div', { class: 'desc' }, prop.description) : null);
    const nested = prop.type === 'array' ? prop.items : prop;
    if (nested && !refName(nested) && nested.properties && depth < 3) item.append(properties(nested, depth + 1));
    list.append(item);
  }
  return list;
}
