// The stage: one tile per participant with media elements per source, arranged by role and,
// in lesson rooms, by the floor (who is on stage, whether a screen is shared).
// User-provided text (names) is only ever set with textContent.

import { t } from './i18n.js';

const PUBLISHING_ROLES = new Set(['teacher', 'classroom']);
const FLOOR_MODES = new Set(['dedicated', 'master']); // calling on means something
const ASPECT = 16 / 9;
const GAP = 8;

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
   * @param {HTMLElement} o.strip    the side strip (own preview, small tiles)
   * @param {string} o.myRole
   * @param {() => void} [o.onAutoplayBlocked]
   * @param {(action: string, peerId: number) => void} [o.onAction]  a teacher's tile button
   */
  constructor({ stage, main, strip, myRole, onAutoplayBlocked = () => {}, onAction = () => {} }) {
    this.stage = stage;
    this.main = main;
    this.strip = strip;
    this.myRole = myRole;
    this.onAutoplayBlocked = onAutoplayBlocked;
    this.onAction = onAction;
    this.tiles = new Map(); // peerId → {el, participant, media: Map source → element}
    this.codecNotes = new Map(); // peerId → a codec of theirs this browser cannot decode
    this.self = null;
    this.selfPeerId = null;
    this.tracks = new WeakMap(); // media element → MediaStreamTrack it plays
    this.placeholder = el('div', { class: 'placeholder' });
    // Tiles that the layout does not show stay in the document (hidden), so that their media
    // elements keep playing: removing a media element from the document pauses it.
    this.offstage = el('div', { class: 'offstage', hidden: '' });
    stage.append(this.offstage);
    this.floor = null;       // the latest roomState
    this.floorBy = new Map(); // peerId → participant state
    this.speaker = null;     // active speaker's peerId
    this.focusMode = false;
    stage.dataset.layout = myRole;
    this.resizeObserver = new ResizeObserver(() => this.fit());
    this.resizeObserver.observe(main);
  }

  get mode() {
    return this.floor?.mode || 'open';
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
    const status = el('div', { class: 'tile-status', hidden: '' });
    tile.append(avatar, status, label, flags);
    const entry = { el: tile, participant: p, media: new Map(), self };
    if (!self && this.myRole === 'teacher' && p.role !== 'teacher') {
      entry.actions = el('div', { class: 'tile-actions' });
      tile.append(entry.actions);
    }
    this._label(entry);
    this._mark(entry);
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
    const codec = this.codecNotes.get(p.peerId);
    if (codec) this.setCodecMismatch(p.peerId, codec);
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

  /** Remove every remote tile (a new session under a new peer id). */
  clearRemote() {
    for (const peerId of [...this.tiles.keys()]) this.removeParticipant(peerId);
  }

  /** Show my own preview. */
  setSelf(p) {
    if (this.self) {
      this.self.participant = p;
      this._label(this.self);
      return;
    }
    this.self = this._makeTile(p, true);
    this.layout();
  }

  /** Remove my own preview (an observer whose turn to speak ended). */
  removeSelf() {
    if (!this.self) return;
    for (const media of this.self.media.values()) this._detach(media);
    this.self.el.remove();
    this.self = null;
    this.layout();
  }

  /** Local preview for `source` ('camera' | 'screen'); null removes it. */
  setSelfTrack(source, track) {
    if (this.self) {
      this._setMedia(this.self, source, track, null);
      this.layout();
    }
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
        const p = participants.get(w.peerId) || { peerId: w.peerId, name: this.floorBy.get(w.peerId)?.name || '…', role: this.floorBy.get(w.peerId)?.role || 'classroom' };
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
    this._dropEmpty();
    this.layout();
  }

  /** Remove the element for one source of a remote participant. */
  removeMedia(peerId, source) {
    const entry = this.tiles.get(peerId);
    if (entry) {
      this._setMedia(entry, source, null, null);
      this._dropEmpty();
      this.layout();
    }
  }

  // A watcher's tile exists only while it publishes (an observer invited to speak).
  _dropEmpty() {
    for (const [peerId, entry] of [...this.tiles]) {
      if (entry.media.size === 0 && !this.wantsTile(entry.participant)) {
        entry.el.remove();
        this.tiles.delete(peerId);
      }
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
      this._play(media);
    }
    this._flags(entry);
  }

  _play(media) {
    const played = media.play();
    if (played && media.dataset.source === 'mic') {
      played.catch((err) => { if (err.name === 'NotAllowedError') this.onAutoplayBlocked(); });
    } else if (played) {
      played.catch(() => {});
    }
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

  /** The participant's video cannot be decoded here (protocol.md `codecMismatch`): say so in
   *  its tile instead of leaving it black. */
  setCodecMismatch(peerId, codec) {
    this.codecNotes.set(peerId, codec);
    const entry = this.tiles.get(peerId);
    if (!entry) return false;
    let note = entry.el.querySelector('.tile-codec');
    if (!note) entry.el.append((note = el('div', { class: 'tile-codec', role: 'status' })));
    note.textContent = t('codecMismatch', { codec });
    return true;
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

  // ---- the floor ----------------------------------------------------------------------------

  /** Apply a room state (protocol.md §4.1 `roomState`): markers and layout. */
  setFloor(state, selfPeerId) {
    this.floor = state;
    this.selfPeerId = selfPeerId;
    this.floorBy = new Map((state.participants || []).map((p) => [p.peerId, p]));
    for (const entry of this.tiles.values()) this._mark(entry);
    if (this.self) this._mark(this.self);
    this._dropEmpty();
    this.layout();
  }

  /** Highlight the participant speaking now (null: nobody). */
  setActiveSpeaker(peerId) {
    this.speaker = peerId;
    for (const entry of this.tiles.values()) this._mark(entry);
    if (this.self) this._mark(this.self);
  }

  _peerIdOf(entry) {
    return entry.self ? this.selfPeerId : entry.participant.peerId;
  }

  /** Markers on one tile from the floor: on stage, hand, mutes, reconnecting, speaking. */
  _mark(entry) {
    const id = this._peerIdOf(entry);
    const f = id !== null && id !== undefined ? this.floorBy.get(id) : null;
    const handIndex = (this.floor?.hands || []).findIndex((h) => h.peerId === id);
    const d = entry.el.dataset;
    const set = (k, on) => { if (on) d[k] = 'true'; else delete d[k]; };
    set('onStage', !!f?.onStage && this.mode !== 'open');
    set('hand', handIndex >= 0);
    set('micMuted', !!f?.micMuted);
    set('videoStopped', !!f?.videoStopped);
    set('reconnecting', !!f?.reconnecting);
    set('speaking', id !== null && id !== undefined && this.speaker === id);

    const flags = [];
    if (f?.onStage && this.mode !== 'open') flags.push(['stage', t('onStage'), 'ok']);
    if (handIndex >= 0) flags.push(['hand', t('handFlag', { n: handIndex + 1 }), 'warn']);
    if (f?.mutedByTeacher) flags.push(['teacherMic', t('mutedByTeacherShort'), 'bad']);
    else if (f?.micMuted && !entry.self) flags.push(['mic', t('micIsOff'), 'bad']);
    if (f?.videoStoppedByTeacher) flags.push(['teacherCam', t('videoStoppedByTeacherShort'), 'bad']);
    else if (f?.videoStopped && !entry.self) flags.push(['cam', t('camIsOff'), 'bad']);
    const box = entry.el.querySelector('.flags');
    // Keep the local flags (set by setSelfFlag) and replace the floor's.
    for (const old of box.querySelectorAll('[data-floor-flag]')) old.remove();
    for (const [name, text, kind] of flags) {
      box.append(el('span', { class: `flag ${kind}`, 'data-floor-flag': name }, text));
    }
    const status = entry.el.querySelector('.tile-status');
    status.hidden = !f?.reconnecting;
    status.textContent = f?.reconnecting ? t('reconnectingPeer') : '';
    if (entry.actions) this._actions(entry, f);
  }

  /** The teacher's buttons on a classroom tile: call on / done, mute / unmute. */
  _actions(entry, f) {
    const id = entry.participant.peerId;
    const onStage = !!f?.onStage;
    const teacherMuted = !!f?.mutedByTeacher;
    const wanted = [];
    if (FLOOR_MODES.has(this.mode)) {
      wanted.push([onStage ? 'done' : 'callOn', t(onStage ? 'actDone' : 'actCallOn'), onStage ? '' : 'primary']);
    }
    wanted.push([teacherMuted ? 'unmuteMic' : 'muteMic', t(teacherMuted ? 'actUnmuteMic' : 'actMuteMic'), '']);
    const key = wanted.map((w) => w.join('|')).join(',');
    if (entry.actions.dataset.key === key) return;
    entry.actions.dataset.key = key;
    entry.actions.replaceChildren(...wanted.map(([action, text, kind]) => {
      const b = el('button', { type: 'button', class: `ctl small ${kind}`, 'data-action': action, 'data-peer-id': String(id) }, text);
      b.addEventListener('click', () => this.onAction(action, id));
      return b;
    }));
  }

  // ---- layout -------------------------------------------------------------------------------

  /** Which area a remote tile goes to: 'main', 'side' (secondary in main), 'strip' or null (hidden). */
  slotFor(entry, screenShown) {
    const p = entry.participant;
    if (this.myRole === 'teacher') return p.role === 'teacher' ? 'strip' : 'main';
    if (this.mode === 'open') return p.role === 'teacher' ? 'main' : 'strip';
    // Lesson rooms: the teacher large; the stage prominent; other classrooms are not forwarded.
    if (p.role === 'teacher') return 'main';
    if (this.floorBy.get(p.peerId)?.onStage) return screenShown ? 'strip' : 'side';
    return null;
  }

  layout() {
    const entries = [...this.tiles.values()].sort((a, b) =>
      (a.participant.joinedAt || 0) - (b.participant.joinedAt || 0) || a.participant.peerId - b.participant.peerId);
    // A shared screen is the main view (with the teacher's camera small inside its tile).
    const screenShown = this.myRole !== 'teacher' && entries.some((e) => e.media.has('screen'));
    const main = [];
    const side = [];
    const strip = [];
    const hidden = [];
    for (const e of entries) {
      const slot = this.slotFor(e, screenShown);
      if (slot === 'main') main.push(e);
      else if (slot === 'side') side.push(e);
      else if (slot === 'strip') strip.push(e);
      else hidden.push(e);
    }
    if (screenShown) {
      // Only the sharing teacher stays in the main area; other teachers go to the strip.
      const sharer = main.find((e) => e.media.has('screen'));
      for (const e of main.filter((x) => x !== sharer)) strip.push(e);
      main.length = 0;
      if (sharer) main.push(sharer);
    }
    const mainEls = [...main, ...side].map((e) => e.el);
    const stripEls = strip.map((e) => e.el);
    if (this.self) stripEls.unshift(this.self.el);
    this.focusMode = main.length === 1 && side.length > 0;
    if (mainEls.length === 0) {
      this.placeholder.textContent = t(this.myRole === 'teacher' ? 'noClassrooms' : 'waitingTeacher');
      mainEls.push(this.placeholder);
    }
    this._place(this.main, mainEls);
    this._place(this.strip, stripEls);
    this._place(this.offstage, hidden.map((e) => e.el));
    for (const e of side) e.el.classList.add('secondary');
    for (const e of entries) if (!side.includes(e)) e.el.classList.remove('secondary');
    this.strip.hidden = stripEls.length === 0;
    this.stage.classList.toggle('no-strip', stripEls.length === 0);
    this.stage.classList.toggle('screen-share', screenShown || entries.some((e) => e.media.has('screen') && main.includes(e)));
    this.main.classList.toggle('focus', this.focusMode);
    this.stage.dataset.mode = this.mode;
    this.fit();
    // A media element moved between containers may have been paused: resume it.
    for (const e of [...entries, ...(this.self ? [this.self] : [])]) {
      for (const m of e.media.values()) if (m.paused && m.srcObject) this._play(m);
    }
  }

  // Reorder children without detaching elements that are already in place (keeps video playing).
  _place(container, children) {
    for (const child of [...container.children]) if (!children.includes(child)) child.remove();
    children.forEach((child, i) => {
      if (container.children[i] !== child) container.insertBefore(child, container.children[i] || null);
    });
  }

  /**
   * Size the main-area tiles: in a grid, all of them at the largest 16:9 size that fits; in
   * focus mode, the first one large and the others in a column beside it.
   */
  fit() {
    const tiles = [...this.main.children].filter((c) => c.classList.contains('tile'));
    const n = tiles.length;
    const W = this.main.clientWidth - GAP;
    const H = this.main.clientHeight - GAP;
    if (!n || W <= 0 || H <= 0) return;
    if (this.focusMode && n > 1) {
      const k = n - 1;
      const sideW = Math.min(W * 0.34, ((H - GAP * (k - 1)) / k) * ASPECT);
      const focusW = Math.min(W - sideW - GAP, H * ASPECT);
      this.main.style.setProperty('--focus-w', `${Math.floor(focusW)}px`);
      this.main.style.setProperty('--side-w', `${Math.floor(sideW)}px`);
      this.main.style.setProperty('--side-rows', String(k));
      return;
    }
    let best = 0;
    for (let cols = 1; cols <= n; cols++) {
      const rows = Math.ceil(n / cols);
      const w = Math.min((W - GAP * (cols - 1)) / cols, ((H - GAP * (rows - 1)) / rows) * ASPECT);
      best = Math.max(best, w);
    }
    this.main.style.setProperty('--tile-w', `${Math.floor(best)}px`);
  }

  /** Re-render translated text after a language change. */
  relabel() {
    for (const entry of this.tiles.values()) {
      this._label(entry);
      if (entry.actions) delete entry.actions.dataset.key;
      this._mark(entry);
    }
    if (this.self) {
      this._label(this.self);
      this._mark(this.self);
    }
    this.layout();
  }
}
