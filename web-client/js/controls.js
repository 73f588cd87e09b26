// Publisher controls: mute/unmute (track.enabled and `setMuted` to the server), camera on/off,
// device selection (replaceTrack), the teacher's screen share, and the locks a teacher's mute
// puts on a classroom's buttons.

import { t } from './i18n.js';
import { $, bindText } from './ui.js';
import { listDevices, openDevice, openScreen, deviceIdOf, onDeviceChange, screenShareSupported } from './devices.js';

export class PublishControls {
  /**
   * @param {object} o
   * @param {{mic: MediaStreamTrack|null, camera: MediaStreamTrack|null, screen: MediaStreamTrack|null}} o.local
   * @param {import('./session.js').MediaSession} o.session
   * @param {import('./tiles.js').Stage} o.stage
   * @param {import('./ui.js').Banners} o.banners
   * @param {string} o.role
   * @param {(msg: object) => void} [o.send]  sends a signaling message
   */
  constructor({ local, session, stage, banners, role, send = () => {} }) {
    this.local = local;
    this.session = session;
    this.stage = stage;
    this.banners = banners;
    this.role = role;
    this.send = send;
    this.enabled = { mic: true, camera: true };
    this.locked = { mic: false, camera: false }; // muted / stopped by the teacher
    this.busy = false;
    this.initialized = false;
  }

  init() {
    $('publish-controls').hidden = false;
    for (const source of ['mic', 'camera']) this.watchEnded(source);
    if (this.initialized) {
      this.render();
      this.refreshDevices();
      return;
    }
    this.initialized = true;
    $('mic-toggle').addEventListener('click', () => this.toggle('mic'));
    $('cam-toggle').addEventListener('click', () => this.toggle('camera'));
    $('mic-select').addEventListener('change', (e) => this.switchDevice('mic', e.target.value));
    $('cam-select').addEventListener('change', (e) => this.switchDevice('camera', e.target.value));
    if (this.role === 'teacher' && screenShareSupported()) {
      $('screen-toggle').hidden = false;
      $('screen-toggle').addEventListener('click', () => this.toggleScreen());
    }
    onDeviceChange(() => this.refreshDevices());
    this.refreshDevices();
    this.render();
  }

  watchEnded(source) {
    const track = this.local[source];
    if (!track) return;
    track.addEventListener('ended', () => {
      if (this.local[source] !== track) return;
      this.local[source] = null;
      this.session.setSourceTrack(source, null).catch((err) => console.warn(err));
      if (source === 'camera') this.stage.setSelfTrack('camera', null);
      this.banners.show(source === 'camera' ? 'camMissing' : 'micMissing', { kind: 'warn' });
      this.render();
      this.refreshDevices();
    });
  }

  /** Hide the controls (an observer whose turn to speak ended). */
  hide() {
    $('publish-controls').hidden = true;
  }

  /**
   * Mute/unmute: toggles track.enabled (no renegotiation) and tells the server, which stops
   * forwarding too and shows the state to others. Locked while the teacher muted it.
   */
  toggle(source) {
    if (this.locked[source]) return;
    this.enabled[source] = !this.enabled[source];
    if (this.local[source]) this.local[source].enabled = this.enabled[source];
    this.sendMuted();
    this.render();
  }

  /** Tell the server our own mute state (also after a rejoin under a new peer id). */
  sendMuted() {
    this.send({ type: 'setMuted', mic: !this.enabled.mic, video: !this.enabled.camera });
  }

  /** The teacher's mutes of this participant, from the room state. */
  setLocks({ mic, camera }) {
    if (this.locked.mic === mic && this.locked.camera === camera) return;
    this.locked = { mic, camera };
    this.render();
  }

  render() {
    const mic = $('mic-toggle');
    const cam = $('cam-toggle');
    mic.disabled = !this.local.mic || this.locked.mic;
    cam.disabled = !this.local.camera || this.locked.camera;
    const micOn = !!this.local.mic && this.enabled.mic && !this.locked.mic;
    const camOn = !!this.local.camera && this.enabled.camera && !this.locked.camera;
    mic.dataset.state = micOn ? 'on' : 'off';
    cam.dataset.state = camOn ? 'on' : 'off';
    mic.dataset.locked = String(this.locked.mic);
    cam.dataset.locked = String(this.locked.camera);
    mic.setAttribute('aria-pressed', String(!micOn));
    cam.setAttribute('aria-pressed', String(!camOn));
    bindText(mic, this.locked.mic ? 'micLockedByTeacher' : micOn ? 'micMute' : 'micUnmute');
    bindText(cam, this.locked.camera ? 'camLockedByTeacher' : camOn ? 'camOff' : 'camOn');
    mic.title = this.locked.mic ? t('mutedByTeacherHint') : '';
    cam.title = this.locked.camera ? t('videoStoppedByTeacherHint') : '';
    this.stage.setSelfFlag('mic', !micOn && !this.locked.mic, t('micIsOff'));
    this.stage.setSelfFlag('cam', !camOn && !this.locked.camera, t('camIsOff'));
    const screen = $('screen-toggle');
    screen.dataset.sharing = String(!!this.local.screen);
    bindText(screen, this.local.screen ? 'stopShare' : 'shareScreen');
  }

  async refreshDevices() {
    let devices;
    try {
      devices = await listDevices();
    } catch (err) {
      console.warn('ketang: enumerateDevices failed', err);
      return;
    }
    fillSelect($('mic-select'), devices.mic, deviceIdOf(this.local.mic), 'micLabel');
    fillSelect($('cam-select'), devices.camera, deviceIdOf(this.local.camera), 'camLabel');
  }

  /** Switch the camera or microphone to another device with replaceTrack. */
  async switchDevice(source, deviceId) {
    if (!deviceId || this.busy) return;
    const old = this.local[source];
    if (old && deviceIdOf(old) === deviceId) return;
    this.busy = true;
    try {
      // Some systems cannot open a second camera while one is open: release the old one first.
      if (old && source === 'camera') old.stop();
      let track;
      try {
        track = await openDevice(source, deviceId);
      } catch (failure) {
        this.showFailure(failure);
        if (old && source === 'camera') track = await openDevice(source, deviceIdOf(old)).catch(() => null);
        if (!track) {
          this.local[source] = null;
          this.stage.setSelfTrack(source, null);
          await this.session.setSourceTrack(source, null);
          return;
        }
      }
      track.enabled = this.enabled[source];
      this.local[source] = track;
      this.watchEnded(source);
      await this.session.setSourceTrack(source, track);
      if (source === 'camera') this.stage.setSelfTrack('camera', track);
      if (old && old !== track) old.stop();
    } catch (err) {
      console.error('ketang: device switch failed', err);
    } finally {
      this.busy = false;
      this.render();
      this.refreshDevices();
    }
  }

  async toggleScreen() {
    if (this.local.screen) {
      await this.stopScreen();
      return;
    }
    let track;
    try {
      track = await openScreen();
    } catch (failure) {
      if (failure.name !== 'NotAllowedError') this.showFailure(failure); // NotAllowed: the user cancelled
      return;
    }
    if ('contentHint' in track) track.contentHint = 'detail'; // courseware: keep text sharp
    this.local.screen = track;
    track.addEventListener('ended', () => { if (this.local.screen === track) this.stopScreen(); });
    this.stage.setSelfTrack('screen', track);
    this.render();
    await this.session.setSourceTrack('screen', track);
  }

  async stopScreen() {
    const track = this.local.screen;
    this.local.screen = null;
    this.stage.setSelfTrack('screen', null);
    this.render();
    if (track) track.stop();
    await this.session.stopSource('screen');
  }

  showFailure(f) {
    this.banners.show(f.key, {
      kind: 'warn',
      id: `media-${f.source}`,
      params: { device: { key: `device_${f.source}` }, message: f.message },
    });
  }

  stopAll() {
    for (const source of ['mic', 'camera', 'screen']) {
      this.local[source]?.stop();
      this.local[source] = null;
    }
  }

  /** Stop sending microphone and camera (an observer whose turn ended): m-lines go inactive. */
  async stopPublishing() {
    for (const source of ['mic', 'camera']) {
      this.local[source]?.stop();
      this.local[source] = null;
      this.stage.setSelfTrack(source, null);
    }
    await this.session.stopSource('mic');
    await this.session.stopSource('camera');
  }
}

function fillSelect(select, devices, currentId, fallbackKey) {
  select.replaceChildren();
  if (!currentId) {
    const none = document.createElement('option');
    none.value = '';
    none.textContent = '—';
    select.append(none);
  }
  devices.forEach((d, i) => {
    const o = document.createElement('option');
    o.value = d.deviceId;
    o.textContent = d.label || `${t(fallbackKey)} ${i + 1}`;
    select.append(o);
  });
  select.value = currentId && devices.some((d) => d.deviceId === currentId) ? currentId : (currentId ? devices[0]?.deviceId ?? '' : '');
  select.disabled = devices.length === 0;
}
