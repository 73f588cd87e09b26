// The lesson's floor on the page (protocol.md §2.1, §4.1 `roomState`): the hand queue, who is
// on stage, mutes, the audience count, the teacher's moderation (call on, done, roll call,
// mute, stop video, remove, re-admit), the roll-call announcement and the lesson-ending
// countdown. No media here; names are set with textContent only.

import { t, getLang } from './i18n.js';
import { $, bindText } from './ui.js';

/** Modes in which classrooms reach each other only on stage (calling on means something). */
export const FLOOR_MODES = new Set(['dedicated', 'master']);

function el(tag, attrs = {}, text = null) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== null) e.textContent = text;
  return e;
}

function timeOf(ms) {
  return new Date(ms).toLocaleTimeString(getLang(), { hour: '2-digit', minute: '2-digit' });
}

export class Lesson {
  /**
   * @param {object} o
   * @param {string} o.role            my role
   * @param {() => number|null} o.selfId  my peer id
   * @param {Map<number, {name: string, role: string}>} o.participants  known participants
   * @param {(msg: object) => void} o.send
   * @param {import('./ui.js').Banners} o.banners
   * @param {(state: object) => void} [o.onState]  after a new state was applied
   */
  constructor({ role, selfId, participants, send, banners, onState = () => {} }) {
    this.role = role;
    this.selfId = selfId;
    this.participants = participants;
    this.send = send;
    this.banners = banners;
    this.onState = onState;
    this.state = null;
    this.seq = -1;
    this.removed = new Map(); // peerId → name (teacher: removed participants, for re-admission)
    this.lastHands = new Set();
    this.endsAt = null;
    this.endingTimer = null;
  }

  get isTeacher() {
    return this.role === 'teacher';
  }

  get mode() {
    return this.state?.mode || 'open';
  }

  init() {
    const hand = $('hand-toggle');
    hand.addEventListener('click', () => {
      const up = hand.dataset.state === 'up';
      this.send({ type: up ? 'lowerHand' : 'raiseHand' });
    });
    $('roll-call').addEventListener('click', () => this.send({ type: 'rollCall' }));
    $('mute-all').addEventListener('click', () => this.send({ type: 'muteAllClassrooms' }));
    for (const list of ['hand-queue', 'people-list', 'removed-list']) {
      $(list).addEventListener('click', (ev) => {
        const b = ev.target.closest('button[data-action]');
        if (b) this.action(b.dataset.action, Number(b.dataset.peerId));
      });
    }
    this.render();
  }

  /** Forget the floor (a new session under a new peer id: the room may be a new one). */
  reset() {
    this.seq = -1;
  }

  /** A `roomState`; returns false (and changes nothing) if it is older than the one shown. */
  apply(state) {
    if (!state || typeof state.seq !== 'number' || state.seq < this.seq) return false;
    this.seq = state.seq;
    this.state = state;
    this.announceHands(state);
    this.render();
    this.onState(state);
    return true;
  }

  /** My own entry in the room state. */
  me() {
    const id = this.selfId();
    return this.state?.participants?.find((p) => p.peerId === id) || null;
  }

  nameOf(peerId) {
    return this.state?.participants?.find((p) => p.peerId === peerId)?.name
      ?? this.participants.get(peerId)?.name
      ?? this.removed.get(peerId)
      ?? `#${peerId}`;
  }

  /** A teacher's action on a participant (tile buttons and the lists). */
  async action(action, peerId) {
    if (!Number.isInteger(peerId)) return;
    switch (action) {
      case 'callOn': return this.send({ type: 'callOn', peerId });
      case 'done': return this.send({ type: 'done', peerId });
      case 'muteMic': return this.send({ type: 'mute', peerId, mic: true });
      case 'unmuteMic': return this.send({ type: 'mute', peerId, mic: false });
      case 'stopVideo': return this.send({ type: 'mute', peerId, video: true });
      case 'allowVideo': return this.send({ type: 'mute', peerId, video: false });
      case 'remove': {
        const ok = await confirmDialog(t('confirmRemove', { name: this.nameOf(peerId) }), t('actRemove'));
        if (ok) this.send({ type: 'remove', peerId });
        return;
      }
      case 'readmit': {
        const name = this.nameOf(peerId);
        this.send({ type: 'readmit', peerId });
        this.removed.delete(peerId);
        this.render();
        this.banners.show('readmitted', { params: { name }, timeoutMs: 5000, id: `readmit-${peerId}` });
        return;
      }
      default:
    }
  }

  /** A participant left; a removed one can be re-admitted by the teacher. */
  participantLeft(peerId, reason, name) {
    if (reason === 'removed' && this.isTeacher) {
      this.removed.set(peerId, name || this.nameOf(peerId));
      this.render();
    }
  }

  /** The teacher hears of new hands (a short banner), everyone sees the queue. */
  announceHands(state) {
    const hands = new Set((state.hands || []).map((h) => h.peerId));
    if (this.isTeacher) {
      for (const id of hands) {
        if (!this.lastHands.has(id)) {
          this.banners.show('handRaised', { params: { name: this.nameOf(id) }, timeoutMs: 5000, id: `hand-${id}` });
        }
      }
    }
    this.lastHands = hands;
  }

  /** `rollCall`: announce the picked classroom to everyone. */
  rollCall(peerId) {
    const mine = peerId === this.selfId();
    const el2 = $('rollcall-announce');
    bindText(el2.querySelector('.text'), mine ? 'rollCallYou' : 'rollCallPicked', { name: this.nameOf(peerId) });
    el2.dataset.peerId = String(peerId);
    el2.hidden = false;
    clearTimeout(this.rollTimer);
    this.rollTimer = setTimeout(() => { el2.hidden = true; }, 8000);
  }

  /** `lessonEnding`: a countdown banner until `endsAt` (Unix seconds). */
  lessonEnding(endsAt) {
    if (!Number.isFinite(endsAt)) return;
    this.endsAt = endsAt;
    const banner = $('lesson-ending');
    banner.hidden = false;
    const tick = () => {
      const left = Math.max(0, Math.round(this.endsAt - Date.now() / 1000));
      const mm = Math.floor(left / 60);
      const ss = String(left % 60).padStart(2, '0');
      bindText(banner.querySelector('.text'), 'lessonEndingIn', { time: `${mm}:${ss}` });
      banner.dataset.secondsLeft = String(left);
      if (left <= 0) clearInterval(this.endingTimer);
    };
    clearInterval(this.endingTimer);
    tick();
    this.endingTimer = setInterval(tick, 1000);
  }

  // ---- rendering ----------------------------------------------------------------------------

  render() {
    const s = this.state;
    const floorMode = FLOOR_MODES.has(this.mode);
    // Top bar: lesson mode and audience.
    const mode = $('lesson-mode');
    mode.hidden = !s || this.mode === 'open';
    if (s) bindText(mode, `mode_${this.mode}`);
    const audience = $('audience');
    audience.hidden = !s || !(s.audience > 0 || this.mode !== 'open');
    if (s) bindText(audience, 'audienceCount', { count: s.audience ?? 0 });

    // Footer: hand button (classrooms, observers), teacher's lesson buttons.
    const canHand = (this.role === 'classroom' || this.role === 'observer') && this.mode !== 'broadcast';
    const me = this.me();
    const myHand = (s?.hands || []).findIndex((h) => h.peerId === this.selfId());
    const hand = $('hand-toggle');
    hand.hidden = !canHand;
    hand.dataset.state = myHand >= 0 ? 'up' : 'down';
    hand.setAttribute('aria-pressed', String(myHand >= 0));
    hand.disabled = !!me?.onStage;
    bindText(hand, myHand >= 0 ? 'lowerHand' : 'raiseHand');
    $('teacher-controls').hidden = !this.isTeacher || !s;
    $('roll-call').hidden = !floorMode;

    this.renderMyStatus(me, myHand);
    this.renderHands(floorMode);
    this.renderPeople(floorMode);
    this.renderRemoved();
    const count = (s?.hands || []).length;
    const badge = $('class-badge');
    badge.hidden = count === 0;
    badge.textContent = count ? String(count) : '';
  }

  renderMyStatus(me, myHand) {
    const box = $('my-status');
    const lines = [];
    if (this.role !== 'teacher' && me) {
      if (me.onStage && this.mode !== 'open') lines.push(['youOnStage', {}, 'ok']);
      if (myHand >= 0) lines.push(['yourHandUp', { n: myHand + 1, total: this.state.hands.length }, 'warn']);
      if (me.mutedByTeacher) lines.push(['mutedByTeacher', {}, 'bad']);
      if (me.videoStoppedByTeacher) lines.push(['videoStoppedByTeacher', {}, 'bad']);
    }
    box.replaceChildren(...lines.map(([key, params, kind]) => {
      const p = el('p', { class: `status-line ${kind}`, 'data-status': key });
      bindText(p, key, params);
      return p;
    }));
    box.hidden = lines.length === 0;
  }

  renderHands(floorMode) {
    const list = $('hand-queue');
    const hands = this.state?.hands || [];
    list.replaceChildren(...hands.map((h, i) => {
      const li = el('li', { 'data-peer-id': String(h.peerId) });
      li.append(el('span', { class: 'pos' }, `${i + 1}.`), el('span', { class: 'name' }, this.nameOf(h.peerId)),
        el('span', { class: 'time' }, timeOf(h.raisedAt)));
      if (this.isTeacher && floorMode) li.append(actionButton('callOn', h.peerId, 'primary'));
      if (h.peerId === this.selfId()) li.classList.add('me');
      return li;
    }));
    $('hands-empty').hidden = hands.length > 0;
  }

  renderPeople(floorMode) {
    const list = $('people-list');
    const selfId = this.selfId();
    const people = (this.state?.participants || []).filter((p) => p.peerId !== selfId && p.role !== 'teacher');
    const handOf = new Map((this.state?.hands || []).map((h, i) => [h.peerId, i + 1]));
    list.replaceChildren(...people.map((p) => {
      const li = el('li', { 'data-peer-id': String(p.peerId), 'data-role': p.role });
      const head = el('div', { class: 'who' });
      head.append(el('span', { class: 'name' }, p.name), el('span', { class: 'badge' }, t(`role_${p.role}`)));
      const marks = el('div', { class: 'marks' });
      const mark = (key, kind, params = {}) => marks.append(el('span', { class: `flag ${kind}` }, t(key, params)));
      if (p.onStage && this.mode !== 'open') mark('onStage', 'ok');
      if (handOf.has(p.peerId)) mark('handFlag', 'warn', { n: handOf.get(p.peerId) });
      if (p.mutedByTeacher) mark('mutedByTeacherShort', 'bad');
      else if (p.micMuted) mark('micIsOff', 'bad');
      if (p.videoStoppedByTeacher) mark('videoStoppedByTeacherShort', 'bad');
      else if (p.videoStopped) mark('camIsOff', 'bad');
      if (p.reconnecting) mark('reconnectingPeer', 'warn');
      li.append(head, marks);
      if (this.isTeacher) {
        const acts = el('div', { class: 'acts' });
        if (floorMode) acts.append(actionButton(p.onStage ? 'done' : 'callOn', p.peerId, p.onStage ? '' : 'primary'));
        acts.append(actionButton(p.mutedByTeacher ? 'unmuteMic' : 'muteMic', p.peerId));
        acts.append(actionButton(p.videoStoppedByTeacher ? 'allowVideo' : 'stopVideo', p.peerId));
        acts.append(actionButton('remove', p.peerId, 'danger'));
        li.append(acts);
      }
      return li;
    }));
    $('people-empty').hidden = people.length > 0;
  }

  renderRemoved() {
    const list = $('removed-list');
    const entries = [...this.removed.entries()];
    list.replaceChildren(...entries.map(([peerId, name]) => {
      const li = el('li', { 'data-peer-id': String(peerId) });
      li.append(el('span', { class: 'name' }, name), actionButton('readmit', peerId));
      return li;
    }));
    $('removed-section').hidden = !this.isTeacher || entries.length === 0;
  }
}

const ACTION_KEYS = {
  callOn: 'actCallOn', done: 'actDone', muteMic: 'actMuteMic', unmuteMic: 'actUnmuteMic',
  stopVideo: 'actStopVideo', allowVideo: 'actAllowVideo', remove: 'actRemove', readmit: 'actReadmit',
};

function actionButton(action, peerId, kind = '') {
  const b = el('button', { type: 'button', class: `ctl small ${kind}`, 'data-action': action, 'data-peer-id': String(peerId) });
  bindText(b, ACTION_KEYS[action]);
  return b;
}

/** A modal yes/no question (the page's own <dialog>); resolves true for yes. */
export function confirmDialog(text, okText) {
  const dialog = $('confirm-dialog');
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = okText;
  return new Promise((resolve) => {
    const done = () => {
      dialog.removeEventListener('close', done);
      resolve(dialog.returnValue === 'ok');
    };
    dialog.returnValue = '';
    dialog.addEventListener('close', done);
    dialog.showModal();
  });
}
