// Chat (every role) and questions (broadcast lessons): protocol.md §4.1 `chat`, §4.2 `chat`,
// `ask`, `settleQuestion`. Message text is plain text: it is only ever set with textContent.

import { t, getLang } from './i18n.js';
import { $, bindText } from './ui.js';

export const MAX_TEXT_CHARS = 500;
const MAX_SHOWN = 300; // chat messages kept on the page

function el(tag, attrs = {}, text = null) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== null) e.textContent = text;
  return e;
}

function timeOf(ms) {
  return new Date(ms).toLocaleTimeString(getLang(), { hour: '2-digit', minute: '2-digit' });
}

/** Trimmed text within the limit, or null with the i18n key of the reason. */
function checkText(raw) {
  const text = raw.trim();
  if (!text) return { text: null, reason: null };
  if (Array.from(text).length > MAX_TEXT_CHARS) return { text: null, reason: 'chatTooLong' };
  return { text, reason: null };
}

export class ChatPanel {
  /**
   * @param {object} o
   * @param {(msg: object) => void} o.send
   * @param {() => number|null} o.selfId
   * @param {() => boolean} o.visible  whether the chat tab is shown now
   * @param {(n: number) => void} o.onUnread  unread count changed
   */
  constructor({ send, selfId, visible, onUnread }) {
    this.send = send;
    this.selfId = selfId;
    this.visible = visible;
    this.onUnread = onUnread;
    this.messages = []; // every chat message received (also window.ketang.chat)
    this.unread = 0;
    this.lastSent = null;
  }

  init() {
    const input = $('chat-input');
    input.maxLength = MAX_TEXT_CHARS;
    input.addEventListener('input', () => this.renderCount());
    $('chat-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const { text, reason } = checkText(input.value);
      if (reason) return this.notice(reason);
      if (!text) return undefined;
      this.send({ type: 'chat', text });
      this.lastSent = text;
      input.value = '';
      this.renderCount();
      this.notice(null);
      return undefined;
    });
    this.renderCount();
  }

  renderCount() {
    const n = Array.from($('chat-input').value).length;
    const c = $('chat-count');
    c.textContent = `${n}/${MAX_TEXT_CHARS}`;
    c.hidden = n < MAX_TEXT_CHARS - 100;
  }

  /** A `chat` message from the server. */
  add(m) {
    if (!m || typeof m.text !== 'string') return;
    this.messages.push(m);
    const log = $('chat-log');
    const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    const li = el('li', { class: 'chat-msg', 'data-id': String(m.id), 'data-peer-id': String(m.peerId), 'data-role': String(m.role || '') });
    if (m.peerId === this.selfId()) li.classList.add('mine');
    const head = el('div', { class: 'meta' });
    head.append(el('span', { class: 'name' }, String(m.name ?? '')), el('span', { class: 'badge' }, t(`role_${m.role}`)),
      el('time', { datetime: new Date(m.at).toISOString() }, timeOf(m.at)));
    li.append(head, el('div', { class: 'text' }, m.text));
    log.append(li);
    while (log.children.length > MAX_SHOWN) log.firstElementChild.remove();
    if (nearBottom || m.peerId === this.selfId()) log.scrollTop = log.scrollHeight;
    if (!this.visible() && m.peerId !== this.selfId()) {
      this.unread += 1;
      this.onUnread(this.unread);
    }
  }

  /** Re-render translated text (role badges) after a language change. */
  relabel() {
    for (const li of $('chat-log').children) {
      const badge = li.querySelector('.meta .badge');
      if (badge) badge.textContent = t(`role_${li.dataset.role}`);
    }
  }

  /** The chat tab became visible. */
  seen() {
    this.unread = 0;
    this.onUnread(0);
    const log = $('chat-log');
    log.scrollTop = log.scrollHeight;
  }

  /** An `error` about one of our chat messages; returns true if it was shown here. */
  error(msg) {
    if (msg.code === 'rateLimited') {
      this.notice('chatRateLimited');
      // Give back the text of the last message if the box is empty, so it can be sent again.
      const input = $('chat-input');
      if (!input.value && this.lastSent) input.value = this.lastSent;
      this.renderCount();
      return true;
    }
    if (msg.code === 'badMessage') {
      this.notice('chatRefused', { message: msg.message || '' });
      return true;
    }
    return false;
  }

  notice(key, params = {}) {
    const n = $('chat-notice');
    clearTimeout(this.noticeTimer);
    if (!key) {
      n.hidden = true;
      return;
    }
    bindText(n, key, params);
    n.hidden = false;
    this.noticeTimer = setTimeout(() => { n.hidden = true; }, 6000);
  }
}

/** Questions of a broadcast lesson: watchers ask, the teacher marks them answered or dismissed. */
export class QuestionsPanel {
  constructor({ send, role, selfId }) {
    this.send = send;
    this.role = role;
    this.selfId = selfId;
    this.questions = [];
  }

  get canAsk() {
    return this.role === 'viewer' || this.role === 'observer';
  }

  init() {
    const input = $('ask-input');
    input.maxLength = MAX_TEXT_CHARS;
    $('ask-form').hidden = !this.canAsk;
    $('ask-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const { text, reason } = checkText(input.value);
      if (reason) return this.notice(reason);
      if (!text) return undefined;
      this.send({ type: 'ask', text });
      this.lastAsked = text;
      input.value = '';
      this.notice(null);
      return undefined;
    });
    $('qa-list').addEventListener('click', (ev) => {
      const b = ev.target.closest('button[data-settle]');
      if (b) this.send({ type: 'settleQuestion', id: Number(b.dataset.questionId), answered: b.dataset.settle === 'answered' });
    });
  }

  /** The questions of the latest room state. */
  apply(questions) {
    this.questions = Array.isArray(questions) ? questions : [];
    this.render();
  }

  render() {
    const list = $('qa-list');
    const teacher = this.role === 'teacher';
    // Open questions first (oldest first), then settled ones (newest first).
    const open = this.questions.filter((q) => q.status === 'open');
    const settled = this.questions.filter((q) => q.status !== 'open').reverse();
    list.replaceChildren(...[...open, ...settled].map((q) => {
      const li = el('li', { class: `question ${q.status}`, 'data-question-id': String(q.id), 'data-status': q.status });
      if (q.peerId === this.selfId()) li.classList.add('mine');
      const meta = el('div', { class: 'meta' });
      meta.append(el('span', { class: 'name' }, String(q.name ?? '')), el('time', {}, timeOf(q.at)),
        el('span', { class: `badge status-${q.status}` }, t(`question_${q.status}`)));
      li.append(meta, el('div', { class: 'text' }, q.text));
      if (teacher && q.status === 'open') {
        const acts = el('div', { class: 'acts' });
        const answered = el('button', { type: 'button', class: 'ctl small primary', 'data-settle': 'answered', 'data-question-id': String(q.id) });
        bindText(answered, 'markAnswered');
        const dismissed = el('button', { type: 'button', class: 'ctl small', 'data-settle': 'dismissed', 'data-question-id': String(q.id) });
        bindText(dismissed, 'dismissQuestion');
        acts.append(answered, dismissed);
        li.append(acts);
      }
      return li;
    }));
    $('qa-empty').hidden = this.questions.length > 0;
    const openCount = open.length;
    const badge = $('qa-badge');
    badge.hidden = !teacher || openCount === 0;
    badge.textContent = String(openCount);
  }

  error(msg) {
    if (msg.code === 'rateLimited') {
      this.notice('chatRateLimited');
      const input = $('ask-input');
      if (!input.value && this.lastAsked) input.value = this.lastAsked;
      return true;
    }
    if (msg.code === 'badMessage' || msg.code === 'forbidden') {
      this.notice('chatRefused', { message: msg.message || '' });
      return true;
    }
    return false;
  }

  notice(key, params = {}) {
    const n = $('ask-notice');
    clearTimeout(this.noticeTimer);
    if (!key) {
      n.hidden = true;
      return;
    }
    bindText(n, key, params);
    n.hidden = false;
    this.noticeTimer = setTimeout(() => { n.hidden = true; }, 6000);
  }
}
