// The views of the other two roles: accounts (security admins: create, reset, disable; the
// one-time password is shown once) and the audit log (audit admins: newest first, with the
// chain check of GET /audit/verify).

import { t, getLang } from '../i18n.js';
import { get, post, del } from './api.js';
import { el, reportError, banner } from './dom.js';

const time = (s) => (s ? new Date(s).toLocaleString(getLang()) : '—');

export function accountsView(root) {
  const render = async () => {
    let accounts = [];
    try { accounts = await get('/accounts'); } catch (err) { reportError(err); }
    const name = el('input', { name: 'name', required: true, maxlength: 64 });
    const role = el('select', { name: 'role' }, ...['system', 'security', 'audit'].map((r) => el('option', { value: r, text: r })));
    const shown = el('p', { class: 'one-time', id: 'one-time-password' });
    const reveal = (r) => { shown.textContent = t('oneTimePassword', { name: r.name, password: r.oneTimePassword }); };
    const form = el('form', { id: 'accounts-form', on: { submit: async (ev) => {
      ev.preventDefault();
      try { reveal(await post('/accounts', { name: name.value.trim(), role: role.value })); name.value = ''; } catch (err) { reportError(err); }
      await refreshTable();
    } } }, name, role, el('button', { type: 'submit', class: 'ctl primary', key: 'create' }));
    const body = el('tbody', {});
    const refreshTable = async () => {
      try { accounts = await get('/accounts'); } catch (err) { reportError(err); }
      body.replaceChildren(...accounts.map((a) => el('tr', { data: { account: a.id } },
        el('td', { text: a.name }), el('td', { text: a.role ?? '?' }),
        el('td', { text: a.totpEnrolled ? '✓' : '—' }),
        el('td', { text: a.disabled ? t('accountDisabled') : (a.lockedUntil ? t('lockedUntil', { time: time(a.lockedUntil) }) : '') }),
        el('td', { class: 'actions' },
          el('button', { type: 'button', class: 'ctl', key: 'accountReset', on: { click: async () => {
            try { reveal(await post(`/accounts/${a.id}/reset`)); } catch (err) { reportError(err); }
            refreshTable();
          } } }),
          a.disabled ? null : el('button', { type: 'button', class: 'ctl danger', key: 'accountDisable', on: { click: async () => {
            if (!confirm(t('confirmDelete', { name: a.name }))) return;
            try { await del(`/accounts/${a.id}`); } catch (err) { reportError(err); }
            refreshTable();
          } } })))));
    };
    await refreshTable();
    root.replaceChildren(
      el('div', { class: 'toolbar' }, el('h2', { key: 'tabAccounts' })),
      form, shown,
      el('table', { class: 'admin-table' },
        el('thead', {}, el('tr', {}, el('th', { key: 'name' }), el('th', { key: 'role' }), el('th', { text: 'TOTP' }), el('th', {}), el('th', {}))),
        body));
  };
  return render;
}

export function auditView(root) {
  const render = async () => {
    let page = { items: [] };
    try { page = await get('/audit?limit=200'); } catch (err) { reportError(err); }
    const result = el('p', { id: 'audit-verify' });
    const verify = async () => {
      try {
        const v = await get('/audit/verify');
        result.textContent = v.intact
          ? t('auditIntact', { count: v.checked })
          : t('auditBroken', { id: v.firstBroken.id || `#${v.firstBroken.seq}`, reason: v.firstBroken.reason });
        result.className = v.intact ? 'ok' : 'form-error';
        if (!v.intact) banner(result.textContent, 'error');
      } catch (err) { reportError(err); }
    };
    root.replaceChildren(
      el('div', { class: 'toolbar' }, el('h2', { key: 'tabAudit' }), el('span', { class: 'spacer' }),
        el('button', { type: 'button', class: 'ctl primary', key: 'auditVerify', on: { click: verify } }),
        el('button', { type: 'button', class: 'ctl', key: 'refresh', on: { click: render } })),
      result,
      el('table', { class: 'admin-table' },
        el('thead', {}, el('tr', {}, ...['auditAt', 'auditWho', 'auditAction', 'auditTarget', 'auditSource'].map((k) => el('th', { key: k })))),
        el('tbody', {}, ...page.items.map((i) => el('tr', { data: { audit: i.id } },
          el('td', { text: time(i.at) }), el('td', { text: i.keyName }), el('td', { text: i.action }),
          el('td', { text: i.target }), el('td', { text: i.source ?? '' }))))));
  };
  return render;
}
