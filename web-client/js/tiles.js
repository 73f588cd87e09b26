// The stage: one tile per participant with media elements per source, arranged by role.
// User-provided text (names) is only ever set with textContent.

import { t } from './i18n.js';

const PUBLISHING_ROLES = new Set(['teacher', 'classroom']);
const ASPECT = 16 / 9;

function el(tag, attrs = {}, text = null) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== null) e.textContent = text;
  return e;
}

function initial(name) {
  const s = (name || '?').trim();
  return s ? Array.from(s)[0].toUpperCase() : '?';
}

export class Stage {
  /**
   * @param {object} o
   * @param {HTMLElement} o.stage    container; gets data-layout = my role
   * @param {HTMLElement} o.main     the large area
   * @param {HTMLElement} o.strip    the side strip
   * @param {string} o.myRole
   * @param {() => void} [o.onAutoplayBlocked]
   */
  constructor({ stage, main, strip, myRole, onAutoplayBlocked = () => {} }) {
    this.stage = stage;
    this.main = main;
    this.strip = strip;
    this.myRole = myRole;
    this.onAutoplayBlocked = onAutoplayBlocked;
    this.tiles = new Map(); // peerId → {el, participant, media: Map source → element}
    this.self = null;
    this.tracks = new WeakMap(); // media element → MediaStreamTrack it plays
    this.placeholder = el('div', { class: 'placeholder' });
    stage.dataset.layout = myRole;
    this.resizeObserver = new ResizeObserver(() => this.fit());
    this.resizeObserver.observe(main);
  }

  /** Whether a participant gets a tile on this page without having media yet. */
  wantsTile(p) {
    if (!PUBLISHING_ROLES.has(p.role)) return false;
    if (this.myRole === 'viewer') return p.role === 'teacher';
    return true;
  }

  _makeTile(p, self = false) {
    const tile = el('div', { class: 'tile', 'data-role': p.role || '' });
    if (self) tile.dataset.self = 'true';
    else tile.dataset.peerId = String(p.peerId);
    const avatar = el('div', { class: 'avatar', 'aria-hidden': 'true' }, initial(p.name));
    const label = el('div', { class: 'label' });
    label.append(el('span', { class: 'name' }), el('span', { class: 'role badge' }));
    const flags = el('div', { class: 'flags' });
    tile.append(avatar, label, flags);
    const entry = { el: tile, participant: p, media: new Map(), self };
    this._label(entry);
    return entry;
  }

  _label(entry) {
    const p = entry.participant;
    const name = entry.self ? `${p.name} (${t('you')})` : p.name;
    entry.el.querySelector('.name').textContent = name;
    entry.el.querySelector('.role').textContent = t(`role_${p.role}`);
    entry.el.querySelector('.avatar').textContent = initial(p.name);
    const screen = entry.media.get('screen');
    if (screen) screen.setAttribute('aria-label', t('screenOf', { name: p.name }));
  }

  /** Create or update the tile for a remote participant. */
  upsertParticipant(p) {
    const existing = this.tiles.get(p.peerId);
    if (existing) {
      existing.participant = p;
      existing.el.dataset.role = p.role;
      this._label(existing);
      return;
    }
    if (!this.wantsTile(p)) return;
    this.tiles.set(p.peerId, this._makeTile(p));
    this.layout();
  }

  removeParticipant(peerId) {
    const entry = this.tiles.get(peerId);
    if (!entry) return;
    for (const media of entry.media.values()) this._detach(media);
    entry.el.remove();
    this.tiles.delete(peerId);
    this.layout();
  }

  /** Show my own preview (publishing roles only). */
  setSelf(p) {
    this.self = this._makeTile(p, true);
    this.layout();
  }

  /** Local preview for `source` ('camera' | 'screen'); null removes it. */
  setSelfTrack(source, track) {
    if (this.self) this._setMedia(this.self, source, track, null);
  }

  /**
   * Reconcile remote media with the receiving tracks: `wanted` is an array of
   * {peerId, source, kind, trackId, track}. Elements for pairs not in `wanted` are removed.
   */
  syncRemote(wanted, participants) {
    const keep = new Set();
    for (const w of wanted) {
      let entry = this.tiles.get(w.peerId);
      if (!entry) {
        const p = participants.get(w.peerId) || { peerId: w.peerId, name: '…', role: 'classroom' };
        entry = this._makeTile(p);
        this.tiles.set(w.peerId, entry);
      }
      this._setMedia(entry, w.source, w.track, w.trackId);
      keep.add(`${w.peerId}/${w.source}`);
    }
    for (const [peerId, entry] of this.tiles) {
      for (const source of [...entry.media.keys()]) {
        if (!keep.has(`${peerId}/${source}`)) this._setMedia(entry, source, null, null);
      }
    }
    this.layout();
  }

  /** Remove the element for one source of a remote participant. */
  removeMedia(peerId, source) {
    const entry = this.tiles.get(peerId);
    if (entry) {
      this._setMedia(entry, source, null, null);
      this.layout();
    }
  }

  _setMedia(entry, source, track, trackId) {
    if (entry.self && source === 'mic') return; // never play our own microphone
    let media = entry.media.get(source);
    if (!track) {
      if (media) {
        this._detach(media);
        media.remove();
        entry.media.delete(source);
        this._flags(entry);
      }
      return;
    }
    if (!media) {
      const isAudio = source === 'mic';
      media = el(isAudio ? 'audio' : 'video', { 'data-source': source, autoplay: '' });
      if (!isAudio) {
        media.setAttribute('playsinline', '');
        media.muted = true; // sound comes from the <audio> element
      }
      if (entry.self) media.classList.toggle('mirror', source === 'camera');
      entry.el.prepend(media);
      entry.media.set(source, media);
      this._label(entry);
    }
    if (trackId !== null && trackId !== undefined) media.dataset.trackId = String(trackId);
    if (this.tracks.get(media) !== track) {
      this.tracks.set(media, track);
      media.srcObject = new MediaStream([track]);
      const played = media.play();
      if (played && source === 'mic') played.catch((err) => { if (err.name === 'NotAllowedError') this.onAutoplayBlocked(); });
      else if (played) played.catch(() => {});
    }
    this._flags(entry);
  }

  _detach(media) {
    media.srcObject = null;
    this.tracks.delete(media);
  }

  _flags(entry) {
    entry.el.classList.toggle('has-video', entry.media.has('camera') || entry.media.has('screen'));
    entry.el.classList.toggle('has-screen', entry.media.has('screen'));
    entry.el.classList.toggle('has-camera', entry.media.has('camera'));
  }

  /** Show a local state on my own tile (e.g. camera/mic off). */
  setSelfFlag(name, on, text) {
    if (!this.self) return;
    const flags = this.self.el.querySelector('.flags');
    let f = flags.querySelector(`[data-flag="${name}"]`);
    if (on && !f) flags.append((f = el('span', { 'data-flag': name, class: 'flag' })));
    if (!on && f) f.remove();
    if (on) f.textContent = text;
    this.self.el.classList.toggle(`${name}-off`, on);
  }

  /** Retry playback of every audio element (after a user gesture). */
  unlockAudio() {
    for (const a of document.querySelectorAll('.tile audio')) a.play().catch(() => {});
  }

  /** Which area a remote tile goes to, by my role and theirs. */
  slotFor(p) {
    if (this.myRole === 'teacher') return p.role === 'teacher' ? 'strip' : 'main';
    return p.role === 'teacher' ? 'main' : 'strip';
  }

  layout() {
    const entries = [...this.tiles.values()].sort((a, b) =>
      (a.participant.joinedAt || 0) - (b.participant.joinedAt || 0) || a.participant.peerId - b.participant.peerId);
    const main = entries.filter((e) => this.slotFor(e.participant) === 'main').map((e) => e.el);
    const strip = entries.filter((e) => this.slotFor(e.participant) === 'strip').map((e) => e.el);
    if (this.self) strip.unshift(this.self.el);
    if (main.length === 0) {
      this.placeholder.textContent = t(this.myRole === 'teacher' ? 'noClassrooms' : 'waitingTeacher');
      main.push(this.placeholder);
    }
    this._place(this.main, main);
    this._place(this.strip, strip);
    this.strip.hidden = strip.length === 0;
    this.stage.classList.toggle('no-strip', strip.length === 0);
    this.stage.classList.toggle('screen-share', entries.some((e) => e.media.has('screen') && this.slotFor(e.participant) === 'main'));
    this.fit();
  }

  // Reorder children without detaching elements that are already in place (keeps video playing).
  _place(container, children) {
    for (const child of [...container.children]) if (!children.includes(child)) child.remove();
    children.forEach((child, i) => {
      if (container.children[i] !== child) container.insertBefore(child, container.children[i] || null);
    });
  }

  /** Size main-area tiles so that all of them fit at the largest 16:9 size. */
  fit() {
    const n = [...this.main.children].filter((c) => c.classList.contains('tile')).length;
    const gap = 8;
    const W = this.main.clientWidth - gap;
    const H = this.main.clientHeight - gap;
    if (!n || W <= 0 || H <= 0) return;
    let best = 0;
    for (let cols = 1; cols <= n; cols++) {
      const rows = Math.ceil(n / cols);
      const w = Math.min((W - gap * (cols - 1)) / cols, ((H - gap * (rows - 1)) / rows) * ASPECT);
      best = Math.max(best, w);
    }
    this.main.style.setProperty('--tile-w', `${Math.floor(best)}px`);
  }

  /** Re-render translated text after a language change. */
  relabel() {
    for (const entry of this.tiles.values()) this._label(entry);
    if (this.self) this._label(this.self);
    this.layout();
  }
}
