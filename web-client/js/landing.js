// Landing page: language toggle and a box to open a pasted room link.

import { applyI18n, toggleLang, onLangChange } from './i18n.js';

applyI18n(document);
onLangChange(() => applyI18n(document));
document.getElementById('lang-toggle').addEventListener('click', () => toggleLang());

document.getElementById('open-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = document.getElementById('room-link').value.trim();
  let url = null;
  try {
    url = new URL(input, location.href);
  } catch { /* not a URL */ }
  const ok = url && /^\/r\/[A-Za-z0-9_-]{1,64}\/?$/.test(url.pathname) && url.searchParams.get('t');
  document.getElementById('form-error').hidden = !!ok;
  if (ok) location.assign(url.href);
});
