// Library page entry point. Two ways in: an admin key (browse, search, play, notes, links,
// delete), or a library link `/library?t=…` that opens its one recording (play, download,
// notes). `window.ketangLibrary` exposes the state to the browser tests.

import './strings.js';
import { applyI18n, toggleLang, onLangChange, t } from '../i18n.js';
import { $ } from '../admin/dom.js';
import { call, linkClaims, setLinkToken, storedKey, storeKey } from './api.js';
import { browseView } from './browse.js';
import { playerView } from './player.js';

window.ketangLibrary = { signedIn: false, listed: [], open: null, notes: [] };

applyI18n(document);
onLangChange(() => applyI18n(document));
$('lang-toggle').addEventListener('click', () => toggleLang());

const browse = browseView((entry) => player.open(entry).catch(fail));
const player = playerView({ onBack: () => browse.load(), onDeleted: () => browse.load() });

function fail(err) {
  const p = document.createElement('p');
  p.className = 'banner error';
  p.textContent = err?.message || String(err);
  $('banners').append(p);
}

function signedOut(message = null) {
  window.ketangLibrary.signedIn = false;
  $('signin-panel').hidden = false;
  $('library-main').hidden = true;
  $('sign-out').hidden = true;
  const err = $('signin-error');
  err.hidden = !message;
  err.textContent = message ? t('signInFailed', { message }) : '';
}

async function signedIn() {
  window.ketangLibrary.signedIn = true;
  $('signin-panel').hidden = true;
  $('library-main').hidden = false;
  $('sign-out').hidden = false;
  $('browse').hidden = false;
  $('player').hidden = true;
  browse.directory();
  await browse.load();
  const wanted = location.hash.slice(1);
  if (wanted.startsWith('rec_')) await player.open({ id: wanted }).catch(fail);
}

async function openLink(token) {
  const claims = linkClaims(token);
  $('library-main').hidden = false;
  if (!claims) {
    fail(new Error(t('libLinkRefused', { message: 'malformed' })));
    return;
  }
  setLinkToken(token);
  window.ketangLibrary.signedIn = true;
  try {
    await player.open({ id: claims.rec });
  } catch (err) {
    $('library-main').hidden = true;
    fail(new Error(t('libLinkRefused', { message: err.message })));
  }
}

$('signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  storeKey($('signin-key').value.trim());
  try {
    await call('GET', '/library?limit=1');
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

const linkToken = new URLSearchParams(location.search).get('t');
if (linkToken) {
  openLink(linkToken);
} else if (storedKey()) {
  storeKey(storedKey());
  call('GET', '/library?limit=1').then(signedIn, () => { storeKey(null); signedOut(); });
} else {
  signedOut();
}
