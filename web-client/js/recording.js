// Recording in the room (protocol.md §4.1 `recording`, `noteAdded`; §4.2 `startRecording`,
// `stopRecording`, `note`): a "REC" indicator with the elapsed time for everyone, the teacher's
// start/stop button, and in master lessons (名师课堂) an observation-note box for the teacher and
// observers. Notes are plain text and only ever set with textContent.

import { onLangChange, t, strings } from './i18n.js';

Object.assign(strings.en, {
  recOn: 'REC {time}',
  recStart: 'Record lesson',
  recStop: 'Stop recording',
  recFailed: 'Recording stopped: {error}. The lesson goes on.',
  recNotePlaceholder: 'Observation note at this moment…',
  recNoteSend: 'Add note',
  recNoteAdded: 'Note added at {time}.',
  recNotRecording: 'The lesson is not being recorded, so a note has nothing to attach to.',
});
Object.assign(strings['zh-CN'], {
  recOn: '录制中 {time}',
  recStart: '录制本课',
  recStop: '停止录制',
  recFailed: '录制已停止：{error}。课堂照常进行。',
  recNotePlaceholder: '在此刻记一条听课评语…',
  recNoteSend: '添加评语',
  recNoteAdded: '评语已记在 {time}。',
  recNotRecording: '本课没有在录制，评语无处附着。',
});

const MAX_NOTE_CHARS = 500;

function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const mm = String(Math.floor(s / 60) % 60).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  const h = Math.floor(s / 3600);
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export class RecordingBar {
  /**
   * @param {object} o
   * @param {HTMLElement} o.container  where the bar is placed
   * @param {(msg: object) => void} o.send
   * @param {string} o.role  own role
   * @param {string|null} o.mode  lesson mode (`dedicated`, `master`, `broadcast`; null: open room)
   * @param {(key: string, params: object, kind: string) => void} o.notify  shows a banner (i18n key)
   */
  constructor({ container, send, role, mode, notify }) {
    this.send = send;
    this.role = role;
    this.notify = notify;
    this.state = { on: false, since: null, recordingId: null };
    this.timer = null;

    this.root = document.createElement('div');
    this.root.id = 'recording-bar';
    this.root.className = 'recording-bar';
    this.indicator = document.createElement('span');
    this.indicator.id = 'rec-indicator';
    this.indicator.className = 'rec-indicator';
    this.indicator.hidden = true;
    this.root.append(this.indicator);

    if (role === 'teacher') {
      this.button = document.createElement('button');
      this.button.type = 'button';
      this.button.id = 'rec-toggle';
      this.button.addEventListener('click', () => {
        this.send({ type: this.state.on ? 'stopRecording' : 'startRecording' });
      });
      this.root.append(this.button);
    }
    if (mode === 'master' && (role === 'teacher' || role === 'observer')) {
      const form = document.createElement('form');
      form.id = 'note-form';
      form.className = 'note-form';
      this.noteInput = document.createElement('input');
      this.noteInput.id = 'note-input';
      this.noteInput.maxLength = MAX_NOTE_CHARS;
      this.noteButton = document.createElement('button');
      this.noteButton.type = 'submit';
      form.append(this.noteInput, this.noteButton);
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        const text = this.noteInput.value.trim();
        if (!text) return;
        this.send({ type: 'note', text });
        this.noteInput.value = '';
      });
      this.form = form;
      this.root.append(form);
    }
    container.append(this.root);
    onLangChange(() => this.render());
    this.render();
  }

  /** A `recording` message. */
  update(msg) {
    this.state = { on: !!msg.on, since: msg.since ?? null, recordingId: msg.recordingId ?? null };
    if (!msg.on && msg.error) this.notify('recFailed', { error: msg.error }, 'error');
    this.render();
  }

  /** A `noteAdded` message. */
  noteAdded(msg) {
    const at = msg?.note?.atMs;
    if (typeof at === 'number') this.notify('recNoteAdded', { time: clock(at) }, 'info');
  }

  /** An `error` message; returns true if it was about recording. */
  error(msg) {
    if (msg.code === 'notRecording') {
      this.notify('recNotRecording', {}, 'warn');
      return true;
    }
    if (msg.code === 'recordingFailed') {
      this.notify('recFailed', { error: msg.message || '' }, 'error');
      return true;
    }
    return false;
  }

  render() {
    const { on, since } = this.state;
    clearInterval(this.timer);
    this.timer = null;
    this.indicator.hidden = !on;
    this.root.dataset.recording = on ? 'on' : 'off';
    const tick = () => {
      this.indicator.textContent = t('recOn', { time: since ? clock(Date.now() - since) : '' }).trim();
    };
    if (on) {
      tick();
      this.timer = setInterval(tick, 1000);
    }
    if (this.button) this.button.textContent = t(on ? 'recStop' : 'recStart');
    if (this.form) {
      this.noteInput.placeholder = t('recNotePlaceholder');
      this.noteButton.textContent = t('recNoteSend');
      this.form.hidden = !on;
    }
  }
}
