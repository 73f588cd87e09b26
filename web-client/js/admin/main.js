// Admin page entry point: sign in with an API key (kept in sessionStorage) or an admin account
// (password, TOTP code; a new account first enrols its authenticator), tabs, views.

import './strings.js';
import { applyI18n, toggleLang, onLangChange, t } from '../i18n.js';
import { get, post, del, storedKey, storeKey } from './api.js';
import { $, banner } from './dom.js';
import { loadDirectory, schoolsView, classroomsView, teachersView } from './directory.js';
import { lessonsView } from './lessons.js';
import { liveView } from './live.js';
import { accountsView, auditView } from './security.js';

applyI18n(document);
onLangChange(() => applyI18n(document));
$('lang-toggle').addEventListener('click', () => toggleLang());

const views = {
  lessons: lessonsView($('view-lessons')),
  schools: schoolsView($('view-schools')),
  classrooms: classroomsView($('view-classrooms')),
  teachers: teachersView($('view-teachers')),
  live: liveView($('view-live')),
  accounts: accountsView($('view-accounts')),
  audit: auditView($('view-audit')),
};
/** The tabs a role sees: system admins the timetable's, the others their own; a key all. */
const ROLE_TABS = { security: ['accounts'], audit: ['audit'] };

function tabsFor(role) {
  const allowed = ROLE_TABS[role];
  for (const tab of document.querySelectorAll('#tabs .tab')) {
    tab.hidden = allowed ? !allowed.includes(tab.dataset.tab) : (role === 'system' && Boolean(tab.dataset.role));
  }
  return allowed ? allowed[0] : null;
}
let current = null;

/** Exposed for the browser tests, like `window.ketang` on the room page. */
window.ketangAdmin = { get current() { return current; }, signedIn: false };

async function show(name) {
  if (!views[name]) name = 'lessons';
  const allowed = ROLE_TABS[window.ketangAdmin.account?.role];
  if (allowed && !allowed.includes(name)) [name] = allowed;
  views.live.stop?.();
  current = name;
  for (const tab of document.querySelectorAll('#tabs .tab')) tab.setAttribute('aria-selected', String(tab.dataset.tab === name));
  for (const v of document.querySelectorAll('.admin-view')) v.hidden = v.dataset.view !== name;
  if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
  if (!ROLE_TABS[window.ketangAdmin.account?.role]) {
    try {
      await loadDirectory();
    } catch { /* reported by the 401 handler or the view */ }
  }
  await views[name]();
  document.body.dataset.view = name;
}

for (const tab of document.querySelectorAll('#tabs .tab')) tab.addEventListener('click', () => show(tab.dataset.tab));

function signedOut(message = null) {
  window.ketangAdmin.signedIn = false;
  window.ketangAdmin.account = null;
  $('enrol-panel').hidden = true;
  $('signin-panel').hidden = false;
  $('admin-main').hidden = true;
  $('tabs').hidden = true;
  $('sign-out').hidden = true;
  const err = $('signin-error');
  err.hidden = !message;
  err.textContent = message ? t('signInFailed', { message }) : '';
  $('signin-key').focus();
}

async function signedIn() {
  window.ketangAdmin.signedIn = true;
  $('signin-panel').hidden = true;
  $('admin-main').hidden = false;
  $('tabs').hidden = false;
  $('sign-out').hidden = false;
  await show(location.hash.slice(1) || 'lessons');
}

$('signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  storeKey($('signin-key').value.trim());
  try {
    // A key of another role is refused the schools (403), but it is a key.
    await get('/schools').catch((err) => { if (err.status !== 403) throw err; });
    $('signin-key').value = '';
    tabsFor(null);
    await signedIn();
  } catch (err) {
    storeKey(null);
    signedOut(err.message);
  }
});

$('sign-out').addEventListener('click', async () => {
  if (window.ketangAdmin.account) {
    try { await del('/session'); } catch { /* ended already */ }
  }
  storeKey(null);
  signedOut();
});

/** Signed in with an account: enrol first if needed, else the page (for system admins). */
async function accountSignedIn(session) {
  window.ketangAdmin.account = session;
  if (!session.totpEnrolled) {
    const e = await post('/session/totp');
    $('enrol-qr').src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(e.qrSvg)}`;
    $('enrol-secret').textContent = e.secret;
    $('signin-panel').hidden = true;
    $('enrol-panel').hidden = false;
    $('enrol-code').focus();
    return;
  }
  $('enrol-panel').hidden = true;
  const first = tabsFor(session.role);
  if (first) history.replaceState(null, '', `#${first}`);
  await signedIn();
}

$('account-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  storeKey(null);
  const body = { name: $('account-name').value.trim(), password: $('account-password').value };
  const code = $('account-code').value.trim();
  if (code) body.code = code;
  const err = $('account-error');
  try {
    const session = await post('/session', body);
    $('account-password').value = '';
    $('account-code').value = '';
    err.hidden = true;
    await accountSignedIn(session);
  } catch (e) {
    err.hidden = false;
    err.textContent = t('accountFailed', { message: e.message });
  }
});

$('enrol-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const err = $('enrol-error');
  try {
    const session = await post('/session/totp/confirm', {
      code: $('enrol-code').value.trim(),
      newPassword: $('enrol-password').value,
    });
    $('enrol-password').value = '';
    err.hidden = true;
    await accountSignedIn(session);
  } catch (e) {
    err.hidden = false;
    err.textContent = t('accountFailed', { message: e.message });
  }
});

window.addEventListener('ketang:unauthorized', () => {
  if (!window.ketangAdmin.signedIn) return;
  storeKey(null);
  signedOut();
  banner(t('signInHelp'), 'warn');
});

if (storedKey()) {
  storeKey(storedKey());
  get('/schools').then(() => { tabsFor(null); return signedIn(); }, () => { storeKey(null); signedOut(); });
} else {
  // A session cookie from an earlier sign-in in this browser, if still live.
  get('/session').then((s) => (s.totpEnrolled ? accountSignedIn(s) : signedOut()), () => signedOut());
}
