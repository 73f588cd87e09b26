// Room page entry point: claims check, local media, signaling, and wiring the media session
// to the stage. Protocol details live in signaling.js and session.js.

import { t, getLang, toggleLang, onLangChange, applyI18n } from './i18n.js';
import { parseRoomLocation, fetchClaims, signalingUrl, Signaling, SerialQueue } from './signaling.js';
import { MediaSession } from './session.js';
import { openLocalMedia } from './devices.js';
import { Stage } from './tiles.js';
import { PublishControls } from './controls.js';
import { $, showPanel, bindText, Banners, renderStatus } from './ui.js';

const PUBLISHERS = new Set(['teacher', 'classroom']);
const BYE_REASONS = new Set(['left', 'roomClosed', 'removed', 'tokenExpired', 'shutdown', 'replaced', 'mediaFailed']);
const ERROR_CODES = new Set(['badMessage', 'messageTooLarge', 'rateLimited', 'invalidSdp', 'glare',
  'noPendingOffer', 'forbidden', 'notJoined', 'internal']);
const TOKEN_ERRORS = new Set(['tokenExpired', 'tokenNotYetValid', 'tokenInvalid', 'tokenWrongRoom',
  'tokenMalformed', 'tokenMissing', 'serverUnavailable']);

const banners = new Banners($('banners'));
const queue = new SerialQueue((err) => {
  console.error('ketang: signaling handler failed', err);
  setLastError('internal', String(err?.message || err));
});
const session = new MediaSession({ send: (msg) => signaling?.send(msg), queue });
const local = { mic: null, camera: null, screen: null };
let signaling = null;
let stage = null;
let controls = null;
let ended = false;

// The automation/test surface (see web-client/README.md).
const ketang = {
  state: 'connecting',
  peerId: null,
  room: null,
  role: null,
  name: null,
  claims: null,
  participants: new Map(), // peerId → {peerId, name, role, classroom, joinedAt, tracks: Map trackId → Track}
  lastError: null,
  mediaFailures: [],
  received: [], // types of the signaling messages received, in order (debugging aid)
  get pc() { return session.pc; },
  get trackMap() { return session.trackMap; },
  get wsState() { return signaling ? signaling.state : 'new'; },
  get connectionState() { return session.pc ? session.pc.connectionState : 'none'; },
  get lang() { return getLang(); },
  inboundVideoStats: () => session.inboundVideoStats(),
  leave: () => leave(),
  session, // internal, for debugging
};
window.ketang = ketang;

function setState(state) {
  ketang.state = state;
  document.body.dataset.state = state;
}

function setLastError(code, message, extra = {}) {
  ketang.lastError = { code, message: message || '', ...extra };
}

function updateStatus() {
  renderStatus(signaling ? signaling.state : 'connecting', session.pc ? session.pc.connectionState : null);
}

// ---- token errors -------------------------------------------------------------------------

function showTokenError(code, message, body = {}) {
  setState('error');
  setLastError(code, message, body.validFrom ? { validFrom: body.validFrom } : {});
  const panel = $('error-panel');
  panel.dataset.errorCode = code;
  if (code === 'tokenNotYetValid' && Number.isFinite(body.validFrom)) {
    renderValidFrom(body.validFrom);
    onLangChange(() => renderValidFrom(body.validFrom));
    const wait = body.validFrom * 1000 - Date.now();
    if (wait > 0 && wait < 6 * 3600 * 1000) setTimeout(() => location.reload(), wait + 2000);
  } else if (TOKEN_ERRORS.has(code)) {
    bindText($('error-message'), code);
  } else {
    bindText($('error-message'), 'unknownError', { message: message || code });
  }
  $('error-detail').textContent = message && TOKEN_ERRORS.has(code) ? message : '';
  showPanel('error-panel');
}

function renderValidFrom(validFrom) {
  const time = new Date(validFrom * 1000).toLocaleString(getLang());
  bindText($('error-message'), 'tokenNotYetValidAt', { time });
}

// ---- end of session -----------------------------------------------------------------------

function endSession(titleKey, messageKey, params = {}) {
  if (ended) return;
  ended = true;
  signaling?.close();
  session.close();
  controls?.stopAll();
  for (const track of Object.values(local)) track?.stop();
  bindText($('ended-title'), titleKey);
  bindText($('ended-message'), messageKey, params);
  $('ended-panel').dataset.reason = messageKey;
  showPanel('ended-panel');
  updateStatus();
}

function leave() {
  if (ended) return;
  signaling?.send({ type: 'leave' });
  setState('left');
  endSession('youLeftTitle', 'youLeft');
}

// ---- signaling messages -------------------------------------------------------------------

function participantFrom(p) {
  return { peerId: p.peerId, name: String(p.name ?? ''), role: p.role, classroom: p.classroom ?? null,
    joinedAt: p.joinedAt ?? Date.now(), tracks: new Map() };
}

function addTrack(track) {
  const p = ketang.participants.get(track.peerId);
  if (p) p.tracks.set(track.trackId, track);
}

function renderRoster() {
  const list = $('roster-list');
  const people = [...ketang.participants.values()].sort((a, b) => a.joinedAt - b.joinedAt);
  bindText($('roster-count'), 'participants', { count: people.length + 1 });
  const items = [{ name: `${ketang.name} (${t('you')})`, role: ketang.role, peerId: ketang.peerId ?? 'self' }, ...people];
  list.replaceChildren(...items.map((p) => {
    const li = document.createElement('li');
    li.dataset.rosterPeer = String(p.peerId);
    const name = document.createElement('span');
    name.textContent = p.name;
    const role = document.createElement('span');
    role.className = 'badge';
    role.textContent = t(`role_${p.role}`);
    li.append(name, role);
    return li;
  }));
}

function syncMedia() {
  const wanted = session.receivingTracks().map(({ info, track }) => ({
    peerId: info.peerId, source: info.source, kind: info.kind, trackId: info.trackId, track,
  }));
  stage.syncRemote(wanted, ketang.participants);
}

async function onWelcome(msg) {
  if (ketang.peerId !== null) return; // only one welcome per connection
  ketang.peerId = msg.peerId;
  ketang.expiresAt = msg.expiresAt;
  ketang.limits = msg.limits;
  for (const p of msg.participants || []) {
    ketang.participants.set(p.peerId, participantFrom(p));
    stage.upsertParticipant(ketang.participants.get(p.peerId));
  }
  for (const track of msg.tracks || []) addTrack(track);
  renderRoster();
  const tracks = [];
  if (local.mic) tracks.push({ track: local.mic, source: 'mic' });
  if (local.camera) tracks.push({ track: local.camera, source: 'camera' });
  await session.handleStart(tracks);
  updateStatus();
}

async function onMessage(msg) {
  ketang.received.push(msg.type);
  if (ketang.received.length > 500) ketang.received.splice(0, 100);
  if (ended && msg.type !== 'bye') return;
  switch (msg.type) {
    case 'welcome':
      return onWelcome(msg);
    case 'answer':
      await session.handleAnswer(msg);
      if (ketang.state === 'connecting') setState('joined');
      return;
    case 'offer':
      return session.handleOffer(msg);
    case 'participantJoined': {
      const p = participantFrom(msg.participant);
      ketang.participants.set(p.peerId, p);
      stage.upsertParticipant(p);
      renderRoster();
      banners.show('participantJoined', { params: { name: p.name }, timeoutMs: 4000, id: `join-${p.peerId}` });
      return;
    }
    case 'participantLeft': {
      const p = ketang.participants.get(msg.peerId);
      ketang.participants.delete(msg.peerId);
      stage.removeParticipant(msg.peerId);
      renderRoster();
      if (p) banners.show('participantLeft', { params: { name: p.name }, timeoutMs: 4000, id: `left-${msg.peerId}` });
      return;
    }
    case 'trackAdded':
      addTrack(msg.track);
      return;
    case 'trackRemoved': {
      const p = ketang.participants.get(msg.peerId);
      const track = p?.tracks.get(msg.trackId);
      p?.tracks.delete(msg.trackId);
      if (track) stage.removeMedia(msg.peerId, track.source);
      return;
    }
    case 'error':
      return onError(msg);
    case 'bye':
      return onBye(msg);
    case 'pong':
      return;
    default:
      console.warn('ketang: unknown signaling message', msg.type);
  }
}

async function onError(msg) {
  setLastError(msg.code, msg.message, { ref: msg.ref ?? null });
  const handled = await session.handleOfferError(msg);
  if (msg.code === 'glare' || msg.code === 'rateLimited') return; // retried automatically
  const key = ERROR_CODES.has(msg.code) ? `err_${msg.code}` : 'err_unknown';
  banners.show(key, { kind: 'error', timeoutMs: 15000, params: { message: msg.message || msg.code }, id: `error-${msg.code}` });
  if (!handled) console.warn('ketang: server error', msg);
}

function onBye(msg) {
  const reason = BYE_REASONS.has(msg.reason) ? msg.reason : 'unknown';
  if (reason === 'left') {
    setState('left');
    endSession('youLeftTitle', 'youLeft');
    return;
  }
  setState('error');
  setLastError(msg.reason, msg.message);
  const key = `bye_${reason}`;
  banners.show(key, { kind: 'error', params: { message: msg.message || msg.reason }, id: 'bye' });
  endSession('endedTitle', key, { message: msg.message || msg.reason });
}

async function onSocketClose(ev) {
  updateStatus();
  if (ended) return;
  if (ketang.peerId === null && ketang.room && ketang.token) {
    // Refused before `welcome` (e.g. the token expired meanwhile): ask why, as on start-up.
    try {
      await fetchClaims(ketang.room, ketang.token);
    } catch (err) {
      if (err.code && err.code !== 'serverUnavailable' && !ended) {
        ended = true;
        session.close();
        controls?.stopAll();
        return showTokenError(err.code, err.message, err.body || {});
      }
    }
  }
  setState('error');
  setLastError('connectionLost', `WebSocket closed (code ${ev.code}${ev.reason ? `, ${ev.reason}` : ''})`);
  banners.show('connectionLost', { kind: 'error', id: 'bye' });
  endSession('endedTitle', 'connectionLost');
}

// ---- start-up -----------------------------------------------------------------------------

async function startLocalMedia() {
  const result = await openLocalMedia();
  local.mic = result.mic;
  local.camera = result.camera;
  ketang.mediaFailures = result.failures;
  for (const f of result.failures) {
    banners.show(f.key, { kind: 'warn', id: `media-${f.source}`,
      params: { device: { key: `device_${f.source}` }, message: f.message } });
  }
  if (!local.mic && !local.camera) banners.show('receiveOnly', { kind: 'info', id: 'receive-only' });
}

function setupStage(claims) {
  stage = new Stage({
    stage: $('stage'), main: $('main-area'), strip: $('strip'), myRole: claims.role,
    onAutoplayBlocked: () => banners.show('enableSound', {
      kind: 'warn', id: 'sound', action: { key: 'enableSound', run: () => stage.unlockAudio() },
    }),
  });
  session.ontrack = () => syncMedia(); // idempotent; runs again once the offer is answered
  session.ontrackschanged = () => syncMedia();
  session.onconnectionstatechange = () => updateStatus();
  session.onanswer = (rejected) => {
    for (const r of rejected) {
      const source = session.sourceOfMid(r.mid);
      if (!source) continue; // not one of our sending m-lines: nothing the user can act on
      banners.show('rejectedTrack', { kind: 'warn', id: `rejected-${r.mid}`,
        params: { device: { key: `device_${source}` }, reason: r.reason || '' } });
    }
  };
  session.onnegotiationerror = (msg) => setLastError(msg.code, msg.message, { ref: msg.ref });
}

function renderHeader(claims) {
  $('room-info').hidden = false;
  $('room-name').textContent = claims.room;
  $('my-name').textContent = claims.name;
  bindText($('my-role'), `role_${claims.role}`);
  document.title = `${claims.room} · Ketang`;
}

async function main() {
  applyI18n(document);
  $('lang-toggle').addEventListener('click', () => toggleLang());
  onLangChange(() => {
    applyI18n(document);
    updateStatus();
    stage?.relabel();
    controls?.render();
    if (ketang.role) renderRoster();
  });
  $('error-reload').addEventListener('click', () => location.reload());
  $('rejoin').addEventListener('click', () => location.reload());
  $('leave').addEventListener('click', () => leave());
  updateStatus();

  const { room, token } = parseRoomLocation(location);
  ketang.room = room;
  Object.defineProperty(ketang, 'token', { value: token, enumerable: false });
  if (!token) return showTokenError('tokenMissing', '');
  if (!room) return showTokenError('tokenWrongRoom', '');
  let claims;
  try {
    claims = await fetchClaims(room, token);
  } catch (err) {
    return showTokenError(err.code || 'serverUnavailable', err.message, err.body || {});
  }
  Object.assign(ketang, { claims, role: claims.role, name: claims.name });
  document.body.dataset.role = claims.role;
  renderHeader(claims);
  renderRoster();
  setupStage(claims);

  if (PUBLISHERS.has(claims.role)) {
    await startLocalMedia();
    stage.setSelf({ name: claims.name, role: claims.role });
    if (local.camera) stage.setSelfTrack('camera', local.camera);
    controls = new PublishControls({ local, session, stage, banners, role: claims.role });
    controls.init();
  }
  showPanel(null);

  signaling = new Signaling(signalingUrl(token), { queue });
  $('status').hidden = false;
  $('roster').hidden = false;
  signaling.onmessage = onMessage;
  signaling.onstatechange = () => updateStatus();
  signaling.onclose = onSocketClose;
  window.addEventListener('pagehide', () => { if (!ended) signaling.send({ type: 'leave' }); });
  try {
    await signaling.connect();
  } catch (err) {
    console.warn('ketang: signaling connection failed', err); // onSocketClose shows it
  }
}

main().catch((err) => {
  console.error('ketang: start-up failed', err);
  showTokenError('unknownError', String(err?.message || err));
});
