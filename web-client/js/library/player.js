// One recording: <video> over the Range endpoint (the browser seeks with `Range` requests),
// the observation notes as markers on a timeline under it (a click seeks there) and as a
// list, a note posted at the current playback time, downloads, and the admin's actions.

import { t } from '../i18n.js';
import { $, el, banner, reportError, copyText } from '../admin/dom.js';
import { call, linkMode, withToken } from './api.js';
import { clock, size, percent } from './format.js';

/** Play tokens minted for the admin, by recording id: `<video src>` cannot send a key. */
const playTokens = new Map();
/** Validity of the admin's play links: long enough for a lesson's replay. */
const PLAY_TTL_SECONDS = 4 * 3600;

export function playerView({ onBack, onDeleted }) {
  let entry = null;
  let notes = [];
  let token = null;
  /** The lesson's files in order: the lesson file, then its codec segments (seg2, seg3, …). */
  let playlist = [];
  let playing = 0;
  const video = $('video');

  function segmentsOf(e) {
    const segs = (e.tracks || [])
      .map((tr) => ({ url: tr.url, n: Number(/^seg(\d+)$/.exec(tr.source)?.[1]) }))
      .filter((s) => Number.isInteger(s.n))
      .sort((a, b) => a.n - b.n);
    return [e.mediaUrl, ...segs.map((s) => s.url)];
  }

  function durationMs() {
    const d = Number.isFinite(video.duration) && video.duration > 0 ? video.duration * 1000 : 0;
    return entry?.durationMs || d;
  }

  function renderNotes() {
    const list = $('notes-list');
    const line = $('timeline');
    list.replaceChildren();
    line.replaceChildren();
    const total = durationMs();
    for (const n of notes) {
      const seek = () => { video.currentTime = n.atMs / 1000; video.play().catch(() => {}); };
      const title = `${clock(n.atMs)} ${n.author}: ${n.text}`;
      const marker = el('button', {
        type: 'button', class: 'marker', title, 'aria-label': title,
        data: { at: String(n.atMs), id: n.id }, on: { click: seek },
      });
      // Through the CSSOM: a `style` attribute is inline style, which the page's CSP refuses.
      marker.style.left = `${percent(n.atMs, total)}%`;
      line.append(marker);
      list.append(el('li', { data: { id: n.id, at: String(n.atMs) } },
        el('button', { type: 'button', class: 'note-time', text: clock(n.atMs), on: { click: seek } }),
        el('span', { class: 'note-author', text: n.author }),
        el('span', { class: 'note-via muted', key: `via_${n.via}` }),
        el('span', { class: 'note-text', text: n.text })));
    }
    if (notes.length === 0) list.append(el('li', { class: 'muted', key: 'libNoNotes' }));
    window.ketangLibrary.notes = notes.map((n) => ({ id: n.id, atMs: n.atMs, text: n.text }));
  }

  async function loadNotes() {
    notes = await call('GET', `/library/${entry.id}/notes`);
    renderNotes();
  }

  /** The token `<video>` and the download links carry: the link's own, or a short one. */
  async function playToken() {
    if (linkMode()) return null;
    const cached = playTokens.get(entry.id);
    if (cached && cached.until > Date.now() + 60_000) return cached.token;
    const made = await call('POST', `/library/${entry.id}/links`, { name: 'admin (library page)', ttlSeconds: PLAY_TTL_SECONDS });
    playTokens.set(entry.id, { token: made.token, until: Date.parse(made.expiresAt) });
    return made.token;
  }

  function meta(e) {
    return t('libMeta', {
      subject: e.subject || '—', grade: e.grade || '—', teacher: e.teacherName || '—', school: e.schoolName || '—',
      mode: t(`mode_${e.mode}`), date: e.date, duration: e.durationMs == null ? '—' : clock(e.durationMs), size: size(e.bytes),
    });
  }

  async function open(e) {
    entry = await call('GET', `/library/${e.id}`);
    $('browse').hidden = true;
    $('player').hidden = false;
    $('player-title').textContent = entry.title;
    $('player-meta').textContent = meta(entry);
    const ready = entry.state === 'ready';
    const stateLine = $('player-state');
    stateLine.hidden = ready && !entry.error;
    if (!ready) {
      const why = entry.state === 'recording' ? t('libStillRecording') : entry.error || t('state_failed');
      stateLine.textContent = t('libNotPlayable', { why });
    } else if (entry.error) {
      stateLine.textContent = t('libStopped', { error: entry.error });
    }
    const master = entry.mode === 'master';
    $('note-form').hidden = !(ready && master);
    $('notes-master-only').hidden = master;
    $('delete').hidden = linkMode() || entry.state === 'recording';
    $('make-link').hidden = linkMode();
    $('link-out').hidden = true;
    $('back').hidden = linkMode();
    token = ready ? await playToken() : null;
    for (const [id, url] of [['download', entry.downloadUrl], ['export', `/api/v1/library/${entry.id}/export`]]) {
      const a = $(id);
      a.hidden = !url;
      if (url) a.href = withToken(url, token || undefined);
    }
    video.hidden = !ready;
    if (ready) {
      // The Range endpoint: the browser asks for the bytes it needs when the user seeks.
      playlist = segmentsOf(entry);
      playing = 0;
      video.src = withToken(playlist[0], token || undefined);
    } else {
      video.removeAttribute('src');
      video.load();
    }
    window.ketangLibrary.open = entry.id;
    await loadNotes();
    if (location.hash !== `#${entry.id}` && !linkMode()) history.replaceState(null, '', `#${entry.id}`);
  }

  function close() {
    video.pause();
    video.removeAttribute('src');
    video.load();
    entry = null;
    window.ketangLibrary.open = null;
    $('player').hidden = true;
    $('browse').hidden = false;
    history.replaceState(null, '', location.pathname + location.search);
  }

  // A lesson whose stage switched between VP8 and H.264 is several files: play them through.
  video.addEventListener('ended', () => {
    if (!entry || playing + 1 >= playlist.length) return;
    playing += 1;
    video.src = withToken(playlist[playing], token || undefined);
    video.play().catch(() => {});
  });
  video.addEventListener('timeupdate', () => { $('note-at').textContent = clock(video.currentTime * 1000); });
  video.addEventListener('loadedmetadata', () => renderNotes());
  video.addEventListener('error', () => {
    if (video.getAttribute('src')) banner(`${t('libNotPlayable', { why: video.error?.message || `error ${video.error?.code}` })}`, 'error');
  });

  $('note-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $('note-text');
    const atMs = Math.min(Math.round(video.currentTime * 1000), entry.durationMs ?? Number.MAX_SAFE_INTEGER);
    try {
      await call('POST', `/library/${entry.id}/notes`, { atMs, text: input.value });
      input.value = '';
      banner(t('libNoteAdded'), 'info', 2500);
      await loadNotes();
    } catch (err) {
      reportError(err);
    }
  });

  $('back').addEventListener('click', () => { close(); onBack(); });

  $('make-link').addEventListener('click', async () => {
    try {
      const made = await call('POST', `/library/${entry.id}/links`, {});
      $('link-url').value = made.url;
      $('link-out').hidden = false;
      banner(`${made.name}: ${t('libLinkMade', { until: new Date(made.expiresAt).toLocaleString() })}`, 'info');
    } catch (err) {
      reportError(err);
    }
  });
  $('link-copy').addEventListener('click', () => copyText($('link-url').value, $('link-url')));

  $('delete').addEventListener('click', async () => {
    if (!window.confirm(t('libConfirmDelete', { title: entry.title }))) return;
    try {
      await call('DELETE', `/library/${entry.id}`);
      banner(t('libDeleted'), 'info');
      close();
      onDeleted();
    } catch (err) {
      reportError(err);
    }
  });

  return { open, close, get entry() { return entry; } };
}
