// Room page entry point: claims check, local media, signaling (with reconnection), and wiring
// the media session, the stage, the lesson floor and the chat. Protocol details live in
// signaling.js and session.js.

import './i18n-lesson.js';
import { t, getLang, toggleLang, onLangChange, applyI18n } from './i18n.js';
import { parseRoomLocation, fetchClaims, signalingUrl, Signaling, SerialQueue, CLOSE_OPEN_TIMEOUT } from './signaling.js';
import { MediaSession } from './session.js';
import { openLocalMedia } from './devices.js';
import { Stage } from './tiles.js';
import { PublishControls } from './controls.js';
import { Lesson } from './lesson.js';
import { ChatPanel, QuestionsPanel } from './chat.js';
import { RecordingBar } from './recording.js';
import { Reconnection } from './reconnect.js';
import { ServerStats } from './server-stats.js';
import { $, showPanel, bindText, Banners, renderStatus, Tabs, StatsOverlay } from './ui.js';

const PUBLISHERS = new Set(['teacher', 'classroom']);
const BYE_REASONS = new Set(['left', 'roomClosed', 'removed', 'tokenExpired', 'shutdown', 'replaced', 'mediaFailed',
  'serverFull', 'slowConsumer', 'linkRevoked']);
const ERROR_CODES = new Set(['badMessage', 'messageTooLarge', 'rateLimited', 'invalidSdp', 'glare',
  'noPendingOffer', 'forbidden', 'notJoined', 'internal']);
const TOKEN_ERRORS = new Set(['tokenExpired', 'tokenNotYetValid', 'tokenInvalid', 'tokenWrongRoom',
  'tokenMalformed', 'tokenMissing', 'tokenRevoked', 'lessonEnded', 'lessonCancelled', 'scheduleUnavailable',
  'serverUnavailable']);

// Reconnection of the signaling socket (protocol.md §4.3a, reconnect.js): tries 0.5 s, then 1,
// 2 and 4 s apart, then every 4 s until the link expires, with the time offline shown.

const banners = new Banners($('banners'));
const queue = new SerialQueue((err) => {
  console.error('ketang: signaling handler failed', err);
  setLastError('internal', String(err?.message || err));
});
const session = new MediaSession({
  send: (msg) => signaling?.send(msg),
  queue,
  canSend: () => !!signaling?.isOpen,
});
const local = { mic: null, camera: null, screen: null };
let signaling = null;
let welcomedOn = null; // the Signaling that received the current welcome
let stage = null;
let controls = null;
let lesson = null;
let chat = null;
let questions = null;
let recording = null;
let tabs = null;
let ended = false;
let wasOnStage = false;
let speaking = false; // an observer publishing while called on (master lessons)
let syncMuteAfterJoin = false;
const reconnect = new Reconnection();
let offlineTicker = null; // refreshes the "offline for" banner every second
const serverStats = new ServerStats({ send: (msg) => signaling?.send(msg), isOpen: () => !!signaling?.isOpen });
let statsOverlay = null;

// The automation/test surface (see web-client/README.md).
const ketang = {
  state: 'connecting',
  peerId: null,
  room: null,
  role: null,
  name: null,
  claims: null,
  participants: new Map(), // peerId → {peerId, name, role, classroom, joinedAt, tracks: Map trackId → Track}
  codecMismatches: new Map(), // publisher peerId → its codec this browser cannot decode (`codecMismatch`)
  viewerCodecMismatches: [], // who cannot decode my video (`viewerCodecMismatch`)
  lastError: null,
  errors: [], // the latest `error` messages from the server (at most 50)
  mediaFailures: [],
  received: [], // types of the signaling messages received, in order (debugging aid)
  activeSpeaker: null,
  reconnects: 0, // signaling reconnections started
  attemptLog: [], // when each reconnection try started (ms, the latest 100)
  get reconnectAttempts() { return reconnect.attempts; },
  get roomState() { return lesson ? lesson.state : null; },
  get chat() { return chat ? chat.messages : []; },
  get pc() { return session.pc; },
  get trackMap() { return session.trackMap; },
  get wsState() { return reconnect.active ? 'reconnecting' : signaling ? signaling.state : 'new'; },
  get connectionState() { return session.pc ? session.pc.connectionState : 'none'; },
  get iceConnectionState() { return session.pc ? session.pc.iceConnectionState : 'none'; },
  get iceRestarts() { return session.iceRestarts; },
  get rebuilds() { return session.rebuilds; },
  get lang() { return getLang(); },
  inboundVideoStats: () => session.inboundVideoStats(),
  inboundAudioStats: () => session.inboundAudioStats(),
  outboundVideoStats: () => session.outboundVideoStats(),
  serverStats: () => serverStats.request(),
  get publishLayers() { return session.publishLayers; },
  get statsOverlay() { return statsOverlay; },
  send: (msg) => signaling?.send(msg),
  leave: () => leave(),
  session, // internal, for debugging
  get signaling() { return signaling; }, // internal, for debugging
};
window.ketang = ketang;

function setState(state) {
  ketang.state = state;
  document.body.dataset.state = state;
}

function setLastError(code, message, extra = {}) {
  ketang.lastError = { code, message: message || '', ...extra };
}

function mediaRecovering() {
  const pc = session.pc;
  if (!pc) return false;
  return pc.iceConnectionState === 'disconnected' || pc.iceConnectionState === 'failed' || !!session.iceTimers.restart;
}

function updateStatus() {
  const ws = reconnect.active ? 'reconnecting' : signaling ? signaling.state : 'connecting';
  let pc = session.pc ? session.pc.connectionState : null;
  if (pc && pc !== 'closed' && !ended && mediaRecovering()) pc = 'reconnecting';
  renderStatus(ws, pc);
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
  stopReconnecting();
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

// ---- participants -------------------------------------------------------------------------

function participantFrom(p) {
  return { peerId: p.peerId, name: String(p.name ?? ''), role: p.role, classroom: p.classroom ?? null,
    joinedAt: p.joinedAt ?? Date.now(), tracks: new Map() };
}

function addTrack(track) {
  const p = ketang.participants.get(track.peerId);
  if (p) p.tracks.set(track.trackId, track);
}

/** Make the participant list exactly `list` (welcome after a reconnect: events were missed). */
function reconcileParticipants(list, tracks) {
  const seen = new Set();
  for (const raw of list || []) {
    const p = participantFrom(raw);
    seen.add(p.peerId);
    ketang.participants.set(p.peerId, p);
    stage.upsertParticipant(p);
  }
  for (const id of [...ketang.participants.keys()]) {
    if (!seen.has(id)) {
      ketang.participants.delete(id);
      stage.removeParticipant(id);
    }
  }
  for (const track of tracks || []) addTrack(track);
  renderRoster();
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

function localTracks() {
  const tracks = [];
  if (local.mic) tracks.push({ track: local.mic, source: 'mic' });
  if (local.camera) tracks.push({ track: local.camera, source: 'camera' });
  if (local.screen) tracks.push({ track: local.screen, source: 'screen' });
  return tracks;
}

// ---- signaling messages -------------------------------------------------------------------

async function onWelcome(msg, sig) {
  if (welcomedOn === sig) return; // only one welcome per connection
  welcomedOn = sig;
  ketang.expiresAt = msg.expiresAt;
  ketang.limits = msg.limits;
  // Fresh TURN credentials with every welcome: a rebuilt connection uses the newest.
  session.iceServers = Array.isArray(msg.iceServers) ? msg.iceServers : [];
  const first = ketang.peerId === null;
  const resumed = !first && msg.resumed === true && msg.peerId === ketang.peerId;
  if (reconnect.active) {
    stopReconnecting();
    banners.show('reconnected', { kind: 'info', timeoutMs: 3000, id: 'reconnect' });
  }
  if (!first && !resumed) {
    // The server no longer knew us (the grace period ran out): a new participant, a new
    // connection, and possibly a new room whose floor starts over.
    console.info('ketang: rejoining as a new participant', msg.peerId);
    ketang.participants.clear();
    stage.clearRemote();
    lesson.reset();
    speaking = false;
  }
  ketang.peerId = msg.peerId;
  reconcileParticipants(msg.participants, msg.tracks);
  if (resumed) {
    ketang.resumed = true;
    if (session.usable()) {
      await session.handleResume();
    } else {
      await session.handleRebuild(localTracks());
    }
    if (ketang.state === 'reconnecting') setState('joined');
  } else {
    if (!first) {
      setState('connecting');
      syncMuteAfterJoin = true;
    }
    await session.handleStart(localTracks());
  }
  updateStatus();
}

async function onMessage(msg, sig) {
  ketang.received.push(msg.type);
  if (ketang.received.length > 500) ketang.received.splice(0, 100);
  if (ended && msg.type !== 'bye') return;
  if (sig !== signaling) return; // a message of a connection we gave up on
  switch (msg.type) {
    case 'welcome':
      return onWelcome(msg, sig);
    case 'answer':
      await session.handleAnswer(msg);
      if (ketang.state === 'connecting' || ketang.state === 'reconnecting') setState('joined');
      if (syncMuteAfterJoin) {
        syncMuteAfterJoin = false;
        if (controls && (!controls.enabled.mic || !controls.enabled.camera)) controls.sendMuted();
      }
      return;
    case 'offer':
      return session.handleOffer(msg);
    case 'participantJoined': {
      const p = participantFrom(msg.participant);
      const known = ketang.participants.has(p.peerId);
      ketang.participants.set(p.peerId, p);
      stage.upsertParticipant(p);
      renderRoster();
      if (!known) banners.show('participantJoined', { params: { name: p.name }, timeoutMs: 4000, id: `join-${p.peerId}` });
      lesson.render();
      return;
    }
    case 'participantLeft': {
      const p = ketang.participants.get(msg.peerId);
      ketang.participants.delete(msg.peerId);
      stage.removeParticipant(msg.peerId);
      renderRoster();
      lesson.participantLeft(msg.peerId, msg.reason, p?.name);
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
    case 'codecMismatch': {
      // Kept for tiles made later (the track's tile may not exist yet) and for the tests.
      ketang.codecMismatches.set(msg.peerId, msg.codec);
      stage.setCodecMismatch(msg.peerId, msg.codec);
      return;
    }
    case 'viewerCodecMismatch': {
      const name = ketang.participants.get(msg.viewerId)?.name ?? `#${msg.viewerId}`;
      ketang.viewerCodecMismatches.push({ viewerId: msg.viewerId, name, codec: msg.codec });
      banners.show('viewerCodecMismatch', { params: { name, codec: msg.codec }, kind: 'warn', id: `codec-${msg.viewerId}` });
      return;
    }
    case 'roomState':
      lesson.apply(msg.state);
      return;
    case 'chat':
      chat.add(msg.message);
      return;
    case 'activeSpeaker':
      ketang.activeSpeaker = msg.peerId ?? null;
      stage.setActiveSpeaker(ketang.activeSpeaker);
      return;
    case 'rollCall':
      ketang.lastRollCall = msg.peerId;
      lesson.rollCall(msg.peerId);
      return;
    case 'publishLayers':
      ketang.lastPublishLayers = { mid: msg.mid, layers: msg.layers, at: Date.now() };
      return session.handlePublishLayers(msg);
    case 'stats':
      ketang.lastStats = msg.bandwidth ?? null;
      serverStats.answer(ketang.lastStats);
      return;
    case 'recording':
      ketang.recording = { on: msg.on, recordingId: msg.recordingId ?? null, since: msg.since ?? null, error: msg.error ?? null };
      return recording?.update(msg);
    case 'noteAdded':
      ketang.notes = [...(ketang.notes ?? []), msg.note];
      return recording?.noteAdded(msg);
    case 'lessonEnding':
      ketang.lessonEndsAt = msg.endsAt;
      lesson.lessonEnding(msg.endsAt);
      return;
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
  ketang.errors.push({ code: msg.code, message: msg.message, ref: msg.ref ?? null, at: Date.now() });
  if (ketang.errors.length > 50) ketang.errors.splice(0, ketang.errors.length - 50);
  if (msg.ref === 'chat' && chat.error(msg)) return;
  if (msg.ref === 'ask' && questions.error(msg)) return;
  if (recording?.error(msg)) return;
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
  if (reason === 'serverFull' && ketang.peerId !== null) {
    // The node refused the join to keep its lessons' quality: try again on the reconnection
    // schedule (a load balancer may send the next try to another node).
    setLastError(msg.reason, msg.message);
    session.discard();
    banners.show('serverFull', { kind: 'warn', id: 'server-full', timeoutMs: 8000 });
    return; // the server closes the socket next; onSocketClose reconnects
  }
  if ((reason === 'mediaFailed' || reason === 'slowConsumer') && ketang.peerId !== null) {
    // The server gave up on our media (nothing arrived for its grace period): the network may
    // still be blocking it. Keep trying, as after any other loss, and join again when the
    // socket is back: the lesson goes on as soon as media gets through.
    setLastError(msg.reason, msg.message);
    session.discard();
    stage?.clearRemote();
    banners.show('mediaRetrying', { kind: 'warn', id: 'media-retry', timeoutMs: 8000 });
    return; // the server closes the socket next; onSocketClose reconnects
  }
  setState('error');
  setLastError(msg.reason, msg.message);
  const key = `bye_${reason}`;
  banners.show(key, { kind: 'error', params: { message: msg.message || msg.reason }, id: 'bye' });
  endSession('endedTitle', key, { message: msg.message || msg.reason });
}

// ---- stats ---------------------------------------------------------------------------------

function setupStats() {
  $('stats-toggle').hidden = false;
  statsOverlay = new StatsOverlay({
    root: $('stats-overlay'),
    toggle: $('stats-toggle'),
    collect: async () => {
      const [media, server] = await Promise.all([session.mediaStats(), serverStats.request()]);
      const nameOf = (id) => ketang.participants.get(id)?.name ?? `#${id}`;
      return { media, server, nameOf };
    },
  });
}

// ---- the floor ----------------------------------------------------------------------------

/** After each new room state: stage markers and layout, locks, our own turn, questions. */
function followFloor(state) {
  stage.setFloor(state, ketang.peerId);
  const me = lesson.me();
  controls?.setLocks({ mic: !!me?.mutedByTeacher, camera: !!me?.videoStoppedByTeacher });
  const onStage = !!me?.onStage;
  const lessonRoom = state.mode !== 'open';
  const observerSpeaks = ketang.role === 'observer' && state.mode === 'master';
  if (lessonRoom && ketang.role !== 'teacher' && onStage !== wasOnStage) {
    if (onStage) banners.show(observerSpeaks ? 'invitedToSpeak' : 'calledOnYou', { kind: 'info', timeoutMs: 6000, id: 'turn' });
    else banners.show('turnEnded', { kind: 'info', timeoutMs: 4000, id: 'turn' });
  }
  wasOnStage = onStage;
  // An observer called on in a master lesson publishes microphone and camera for its turn.
  // (Not awaited: renegotiation goes through the signaling queue this handler runs in.)
  if (observerSpeaks && onStage && !speaking) startSpeaking();
  if (ketang.role === 'observer' && (!onStage || state.mode !== 'master') && speaking) stopSpeaking();
  questions.apply(state.questions);
  showQuestionsTab(state);
}

/** Questions: watchers may always ask; others see the tab in broadcasts or once there are some. */
function showQuestionsTab(state) {
  const watcher = ketang.role === 'viewer' || (ketang.role === 'observer' && state?.mode === 'broadcast');
  $('tab-qa').hidden = !(watcher || state?.mode === 'broadcast' || (state?.questions || []).length > 0);
}

async function startSpeaking() {
  speaking = true;
  const result = await openLocalMedia();
  if (!speaking || ended) {
    result.mic?.stop();
    result.camera?.stop();
    return;
  }
  local.mic = result.mic;
  local.camera = result.camera;
  for (const f of result.failures) {
    banners.show('speakFailed', { kind: 'warn', id: `speak-${f.source}`, params: { message: f.message } });
  }
  if (!controls) controls = new PublishControls({ local, session, stage, banners, role: ketang.role, send: ketang.send });
  controls.enabled = { mic: true, camera: true };
  stage.setSelf({ name: ketang.name, role: ketang.role });
  if (local.camera) stage.setSelfTrack('camera', local.camera);
  controls.init();
  try {
    await session.publish(localTracks());
  } catch (err) {
    console.warn('ketang: could not publish for the turn', err);
  }
}

async function stopSpeaking() {
  speaking = false;
  controls?.hide();
  try {
    await controls?.stopPublishing();
  } catch (err) {
    console.warn('ketang: could not stop publishing', err);
  }
  stage.removeSelf();
}

// ---- connection and reconnection -----------------------------------------------------------

function openSignaling(timeoutMs = undefined) {
  const sig = new Signaling(signalingUrl(ketang.token), { queue });
  signaling = sig;
  sig.onmessage = (msg) => onMessage(msg, sig);
  sig.onstatechange = () => { if (signaling === sig) updateStatus(); };
  sig.onclose = (ev) => onSocketClose(sig, ev);
  return sig.connect(timeoutMs).catch((err) => {
    console.warn('ketang: signaling connection failed:', err.message); // onSocketClose handles it
  });
}

async function onSocketClose(sig, ev) {
  if (sig !== signaling) return;
  updateStatus();
  if (ended) return;
  const neverWelcomed = welcomedOn !== sig;
  // A try the network swallowed says nothing about the link; one the server refused may be a
  // token that expired or was revoked meanwhile: ask why, as on start-up (bounded by the next
  // try, so a slow answer never holds up the schedule).
  if (neverWelcomed && ev.code !== CLOSE_OPEN_TIMEOUT) {
    const timeoutMs = Math.min(4000, Math.max(1000, reconnect.active ? reconnect.untilNext() : 4000));
    try {
      await fetchClaims(ketang.room, ketang.token, { timeoutMs });
    } catch (err) {
      if (err.code && err.code !== 'serverUnavailable' && !ended) {
        ended = true;
        stopReconnecting();
        session.close();
        controls?.stopAll();
        return showTokenError(err.code, err.message, err.body || {});
      }
    }
  }
  if (ketang.peerId === null) {
    // Never joined: nothing to resume.
    setState('error');
    setLastError('connectionLost', `WebSocket closed (code ${ev.code}${ev.reason ? `, ${ev.reason}` : ''})`);
    banners.show('connectionLost', { kind: 'error', id: 'bye' });
    endSession('endedTitle', 'connectionLost');
    return;
  }
  if (reconnect.begin()) {
    ketang.reconnects += 1;
    setState('reconnecting');
    console.info(`ketang: signaling closed (code ${ev.code}); reconnecting`);
    showOffline();
  }
  scheduleReconnect();
}

/** The link's expiry (ms): the lesson is over for this page then, connected or not. */
function lessonEndsAt() {
  return Number.isFinite(ketang.expiresAt) ? ketang.expiresAt * 1000 : Infinity;
}

function scheduleReconnect() {
  const attempt = (windowMs) => {
    if (ended) return;
    ketang.attemptLog.push(Date.now());
    if (ketang.attemptLog.length > 100) ketang.attemptLog.shift();
    openSignaling(windowMs);
  };
  if (!reconnect.schedule(attempt, { until: lessonEndsAt() })) {
    stopReconnecting();
    setState('error');
    setLastError('tokenExpired', 'the room link expired while the connection was lost');
    endSession('endedTitle', 'bye_tokenExpired');
    return;
  }
  updateStatus();
}

/** The "reconnecting" banner with the time offline, kept current every second. */
function showOffline() {
  const banner = banners.show('reconnecting', { kind: 'warn', id: 'reconnect' });
  const text = banner.querySelector('.text');
  const tick = () => {
    const s = Math.floor((Date.now() - reconnect.since) / 1000);
    if (text.isConnected) bindText(text, 'reconnectingFor', { min: Math.floor(s / 60), sec: s % 60 });
  };
  clearInterval(offlineTicker);
  offlineTicker = setInterval(tick, 1000);
  tick();
}

function stopReconnecting() {
  reconnect.end();
  clearInterval(offlineTicker);
  offlineTicker = null;
  banners.dismiss('reconnect');
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
    onAction: (action, peerId) => lesson.action(action, peerId),
  });
  session.ontrack = () => syncMedia(); // idempotent; runs again once the offer is answered
  session.ontrackschanged = () => syncMedia();
  session.onconnectionstatechange = () => updateStatus();
  session.oniceconnectionstatechange = () => updateStatus();
  session.onrebuildneeded = () => {
    // ICE did not come back after a restart: a new peer connection, announced as `fresh`.
    // Without signaling, the reconnection decides when `welcome` arrives.
    if (!signaling?.isOpen || ended) return;
    queue.push(() => session.handleRebuild(localTracks()));
  };
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

function setupSidePanel(claims) {
  const send = (msg) => signaling?.send(msg);
  const selfId = () => ketang.peerId;
  lesson = new Lesson({ role: claims.role, selfId, participants: ketang.participants, send, banners, onState: followFloor });
  lesson.init();
  chat = new ChatPanel({
    send, selfId,
    visible: () => tabs?.current === 'chat',
    onUnread: (n) => {
      const b = $('chat-badge');
      b.hidden = n === 0;
      b.textContent = String(n);
    },
  });
  chat.init();
  questions = new QuestionsPanel({ send, role: claims.role, selfId });
  questions.init();
  recording = new RecordingBar({
    container: $('room-info'),
    send,
    role: claims.role,
    mode: claims.mode ?? null,
    notify: (key, params, kind) => banners.show(key, { kind, params, timeoutMs: kind === 'error' ? 15000 : 4000, id: `rec-${key}` }),
  });
  tabs = new Tabs($('side-tabs'), (name) => { if (name === 'chat') chat.seen(); });
  $('tab-class').hidden = claims.role === 'viewer'; // viewers neither raise hands nor speak
  showQuestionsTab(null);
  tabs.select(claims.role === 'teacher' ? 'class' : 'chat');
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
    lesson?.render();
    questions?.render();
    chat?.relabel();
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
  session.role = claims.role; // which of our sources publish simulcast
  document.body.dataset.role = claims.role;
  renderHeader(claims);
  renderRoster();
  setupStage(claims);
  setupSidePanel(claims);
  setupStats();

  if (PUBLISHERS.has(claims.role)) {
    await startLocalMedia();
    stage.setSelf({ name: claims.name, role: claims.role });
    if (local.camera) stage.setSelfTrack('camera', local.camera);
    controls = new PublishControls({ local, session, stage, banners, role: claims.role, send: (msg) => signaling?.send(msg) });
    controls.init();
  }
  showPanel(null);

  $('status').hidden = false;
  $('roster').hidden = false;
  window.addEventListener('pagehide', () => { if (!ended) signaling?.send({ type: 'leave' }); });
  await openSignaling();
}

main().catch((err) => {
  console.error('ketang: start-up failed', err);
  showTokenError('unknownError', String(err?.message || err));
});
