// Admin page entry point: sign in with an API key (kept in sessionStorage), tabs, views.

import './strings.js';
import { applyI18n, toggleLang, onLangChange, t } from '../i18n.js';
import { get, storedKey, storeKey } from './api.js';
import { $, banner } from './dom.js';
import { loadDirectory, schoolsView, classroomsView, teachersView } from './directory.js';
import { lessonsView } from './lessons.js';
import { liveView } from './live.js';

applyI18n(document);
onLangChange(() => applyI18n(document));
$('lang-toggle').addEventListener('click', () => toggleLang());

const views = {
  lessons: lessonsView($('view-lessons')),
  schools: schoolsView($('view-schools')),
  classrooms: classroomsView($('view-classrooms')),
  teachers: teachersView($('view-teachers')),
  live: liveView($('view-live')),
};
let current = null;

/** Exposed for the browser tests, like `window.ketang` on the room page. */
window.ketangAdmin = { get current() { return current; }, signedIn: false };

async function show(name) {
  if (!views[name]) name = 'lessons';
  views.live.stop?.();
  current = name;
  for (const tab of document.querySelectorAll('#tabs .tab')) tab.setAttribute('aria-selected', String(tab.dataset.tab === name));
  for (const v of document.querySelectorAll('.admin-view')) v.hidden = v.dataset.view !== name;
  if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
  try {
    await loadDirectory();
  } catch { /* reported by the 401 handler or the view */ }
  await views[name]();
  document.body.dataset.view = name;
}

for (const tab of document.querySelectorAll('#tabs .tab')) tab.addEventListener('click', () => show(tab.dataset.tab));

function signedOut(message = null) {
  window.ketangAdmin.signedIn = false;
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
    await get('/schools');
    $('signin-key').value = '';
    await signedIn();
  } catch (err) {
    storeKey(null);
    signedOut(err.message);
  }
});

$('sign-out').addEventListener('click', () => {
  storeKey(null);
  signedOut();
});

window.addEventListener('ketang:unauthorized', () => {
  if (!window.ketangAdmin.signedIn) return;
  storeKey(null);
  signedOut();
  banner(t('signInHelp'), 'warn');
});

if (storedKey()) {
  storeKey(storedKey());
  get('/schools').then(signedIn, () => { storeKey(null); signedOut(); });
} else {
  signedOut();
}
