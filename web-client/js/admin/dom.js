// Small DOM helpers of the admin page: element building, texts that follow the language,
// form fields, field errors from a 422, and banners. Everything user-given goes in as text.

import { t, onLangChange } from '../i18n.js';

export const $ = (id) => document.getElementById(id);

/**
 * Builds an element. `props`: `class`, `text` (textContent), `key`/`params` (a localized
 * text), `data` (dataset), `on` ({event: handler}), anything else as an attribute.
 */
export function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = String(v);
    else if (k === 'key') localize(e, v, props.params || {});
    else if (k === 'params') continue;
    else if (k === 'data') Object.assign(e.dataset, v);
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
    else if (k === 'value') e.value = v;
    else if (k === 'checked') e.checked = !!v;
    else if (v === true) e.setAttribute(k, '');
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/** Sets a localized text that is rendered again when the language changes. */
export function localize(element, key, params = {}) {
  element.dataset.adminText = key;
  element._adminParams = params;
  element.textContent = render(key, params);
}

function render(key, params) {
  const p = {};
  for (const [k, v] of Object.entries(params)) p[k] = v && typeof v === 'object' && 'key' in v ? t(v.key) : v;
  return t(key, p);
}

onLangChange(() => {
  for (const e of document.querySelectorAll('[data-admin-text]')) e.textContent = render(e.dataset.adminText, e._adminParams || {});
});

/** A labelled form field; `field` is the API field path its errors are reported under. */
export function field(labelKey, input, { field: name = input.name, wide = false, hint = null } = {}) {
  return el('label', { class: wide ? 'wide' : null, data: { field: name } },
    el('span', { key: labelKey }),
    input,
    hint ? el('small', { class: 'muted', text: hint }) : null,
    el('span', { class: 'field-error', hidden: true }));
}

export function input(name, props = {}) {
  return el('input', { name, autocomplete: 'off', ...props });
}

/** A select of `[value, labelKey|label]`; labels starting with `=` are shown as is. */
export function select(name, options, value = null, props = {}) {
  const s = el('select', { name, ...props });
  for (const [v, label] of options) {
    const o = label.startsWith('=') ? el('option', { value: v, text: label.slice(1) }) : el('option', { value: v, key: label });
    s.append(o);
  }
  if (value !== null) s.value = value;
  return s;
}

/** Clears field errors, then marks the fields of an ApiError (422) and returns the rest. */
export function showFieldErrors(form, error) {
  for (const e of form.querySelectorAll('[aria-invalid]')) e.removeAttribute('aria-invalid');
  for (const e of form.querySelectorAll('.field-error')) { e.hidden = true; e.textContent = ''; }
  const unplaced = [];
  for (const fe of error?.fields || []) {
    // `remoteClassroomIds[1]` is reported under the list's label.
    const base = fe.field.replace(/\[\d+\]$/, '');
    const label = form.querySelector(`[data-field="${CSS.escape(fe.field)}"]`) || form.querySelector(`[data-field="${CSS.escape(base)}"]`);
    if (!label) { unplaced.push(fe); continue; }
    label.querySelector('input, select')?.setAttribute('aria-invalid', 'true');
    const msg = label.querySelector('.field-error');
    msg.textContent = fe.message;
    msg.hidden = false;
  }
  return unplaced;
}

/** Non-blocking messages at the top of the page. */
export function banner(text, kind = 'info', timeoutMs = 6000) {
  const b = el('div', { class: `banner ${kind}`, data: { kind } },
    el('span', { class: 'text', text }),
    el('button', { type: 'button', class: 'close', text: '×', on: { click: () => b.remove() } }));
  $('banners').append(b);
  if (timeoutMs > 0) setTimeout(() => b.remove(), timeoutMs);
  return b;
}

/** Shows what went wrong with a request: field errors in the form, the rest in a banner. */
export function reportError(error, form = null) {
  const unplaced = form ? showFieldErrors(form, error) : error?.fields || [];
  const conflicts = (error?.conflicts || []).map((c) => t('conflictWith', { title: c.lessonTitle, start: c.occurrenceStart, end: c.occurrenceEnd }));
  const extra = unplaced.map((f) => `${f.field}: ${f.message}`);
  const detail = error?.status === 0 ? t('networkError') : (error?.message || String(error));
  banner([detail, ...extra, ...conflicts].join(' — '), 'error', 12000);
}

/** The modal dialog: fills it with `content` and opens it. */
export function openDialog(...content) {
  const body = $('dialog-body');
  body.replaceChildren(...content);
  const d = $('dialog');
  if (!d.open) d.showModal();
  return body;
}

export function closeDialog() {
  const d = $('dialog');
  if (d.open) d.close();
}

/** Copies text; falls back to selecting it when the clipboard is not available. */
export async function copyText(text, fallbackInput) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    fallbackInput?.select();
    try { return document.execCommand('copy'); } catch { return false; }
  }
}
