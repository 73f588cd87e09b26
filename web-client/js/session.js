// The media session (protocol.md §4.3): one RTCPeerConnection, negotiation with the server
// (the server is impolite, this client polite), and the mid → track mapping. No DOM access.
//
// Every method whose name starts with `handle` must run inside the signaling queue, so
// signaling messages and local renegotiations never interleave. Local code that wants a new
// offer calls `requestOffer()`, which goes through the queue.
//
// Recovery (protocol.md §4.3a): an ICE connection that stays `disconnected` for 3 s, or goes
// `failed`, is restarted (`restartIce()` and a new offer); if it is still not connected 10 s
// later, `onrebuildneeded` asks the page to replace the peer connection (a `fresh` offer).

const ICE_DISCONNECTED_GRACE_MS = 3000;
const ICE_RESTART_TIMEOUT_MS = 10000;

// Simulcast (issue 6): the layers each (role, source) publishes, lowest first. rids are the
// SFU's well-known names (q = quarter, h = half, f = full resolution of a 1280x720 capture).
// The SFU picks a layer per subscriber from its downlink, and tells us (`publishLayers`,
// dynacast) which layers nobody needs, so that we stop encoding and sending them.
const LAYER_Q = { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 };  //  320x180
const LAYER_H = { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 };  //  640x360
const LAYER_F = { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 }; // 1280x720
export const SIMULCAST = {
  // The teacher is watched by everyone, from school LANs down to weak rural links: three layers.
  teacher: {
    camera: [LAYER_Q, LAYER_H, LAYER_F],
    // A shared screen is text and slides: resolution matters more than motion
    // (contentHint "detail"). Full resolution, and a half-resolution layer for weak links.
    screen: [{ rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 400_000 }, { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 }],
  },
  // A classroom: two layers, q (320x180, 0.15 Mbit/s) and h (640x360, 0.5 Mbit/s), not h and f.
  // - Its uplink (a rural school's ~5 Mbit/s, shared with the rest of the school and often far
  //   below its nominal rate on ADSL/4G) then carries at most 0.65 Mbit/s; h+f would be 2 Mbit/s.
  // - The teacher must see every classroom: the SFU gives each stream its lowest layer first and
  //   pauses a stream whose lowest layer does not fit the subscriber's estimate (which starts
  //   well below 1 Mbit/s). With a 0.5 Mbit/s lowest layer, two or three classrooms already
  //   overflow the teacher's first estimate and one tile stays black until the estimate has
  //   grown; with q at 0.15 Mbit/s even a dozen classrooms fit, and climb to h as it grows.
  // - h is enough for a classroom's wide shot in the teacher's grid and on the other classrooms'
  //   screens when it is on stage; 720p of a classroom would cost every receiving rural downlink
  //   1.5 Mbit/s for little gain.
  classroom: {
    camera: [LAYER_Q, LAYER_H],
  },
};

/** The sendEncodings for `source` published by `role` (null: one layer). */
export function simulcastEncodings(role, source) {
  const layers = SIMULCAST[role]?.[source];
  return layers ? layers.map((l) => ({ ...l, active: true })) : null;
}

function isStopped(tr) {
  return tr.currentDirection === 'stopped' || tr.stopped === true;
}

export class MediaSession {
  /**
   * @param {object} opts
   * @param {(msg: object) => void} opts.send   sends a signaling message
   * @param {{push: (fn: () => Promise<any>) => Promise<any>}} opts.queue  the signaling queue
   * @param {() => boolean} [opts.canSend]  whether signaling can deliver a message now
   */
  constructor({ send, queue, canSend = () => true, role = null }) {
    this.send = send;
    this.queue = queue;
    this.canSend = canSend;
    this.role = role;           // our role: which sources publish simulcast (SIMULCAST)
    /** mid → [{rid, active}] from the latest `publishLayers` for that m-line (dynacast). */
    this.publishLayers = new Map();
    this.pc = null;
    /** RTCIceServer[] of the latest `welcome` (the server's TURN relay). */
    this.iceServers = [];
    /** mid → {mid, trackId, peerId, kind, source} for the receiving m-lines of the latest server offer. */
    this.trackMap = new Map();
    /** Our sending transceivers: RTCRtpTransceiver → source ('mic' | 'camera' | 'screen'). */
    this.senders = new Map();
    this.rejected = [];
    this.offerInFlight = false; // a client offer awaits the server's answer (or error)
    this.needsOffer = false;    // a client offer is due once negotiation is stable
    this.lostOffers = 0;        // offers rolled back by a server offer, whose glare error is still due
    this.earlyGlare = false;    // a glare error arrived before the server offer that caused it
    this.answered = 0;          // client offers answered so far
    this.fresh = false;         // offers carry `fresh: true` until this pc's first one is answered
    this.closed = false;
    this.iceTimers = { disconnected: null, restart: null };
    this.iceRestarts = 0;       // ICE restarts so far (debugging and tests)
    this.rebuilds = 0;          // peer connections replaced so far
    // Callbacks (all optional).
    this.ontrack = () => {};           // ({track, mid, info, transceiver})
    this.ontrackschanged = () => {};   // after each server offer has been answered
    this.onconnectionstatechange = () => {};
    this.onanswer = () => {};          // (rejected[]) after a client offer was answered
    this.onnegotiationerror = () => {}; // (error msg) an offer of ours was refused
    this.oniceconnectionstatechange = () => {}; // (state)
    this.onrebuildneeded = () => {};   // ICE did not recover after a restart: replace the pc
  }

  /**
   * Create the peer connection with our local tracks and send the first offer. An existing
   * peer connection is closed first. With `fresh`, the offer tells the server that this
   * connection replaces the one it knows (a resumed session whose connection was lost).
   * @param {{track: MediaStreamTrack, source: string}[]} localTracks
   * @param {{fresh?: boolean}} [opts]
   */
  async handleStart(localTracks, { fresh = false } = {}) {
    // Closing a connection tells the server (DTLS close_notify) that we left: a connection
    // being replaced is closed only once the server has taken the fresh one (see handleAnswer).
    this._dropPc({ retire: fresh });
    if (!fresh) this._closeRetired(); // a new participant: nothing of the old one is kept
    this.trackMap.clear();
    this.senders.clear();
    this.publishLayers.clear();
    this.rejected = [];
    this.offerInFlight = false;
    this.needsOffer = false;
    this.lostOffers = 0;
    this.earlyGlare = false;
    this.dataChannel = null;
    this.fresh = fresh;
    // iceServers: the server's own TURN relay (from `welcome`), used where no direct path works.
    const pc = new RTCPeerConnection({
      bundlePolicy: 'max-bundle',
      rtcpMuxPolicy: 'require',
      iceServers: this.iceServers || [],
    });
    this.pc = pc;
    pc.ontrack = (ev) => {
      if (this.pc !== pc) return;
      const mid = ev.transceiver.mid;
      this.ontrack({ track: ev.track, mid, info: this.trackMap.get(mid) || null, transceiver: ev.transceiver });
    };
    pc.onconnectionstatechange = () => { if (this.pc === pc) this.onconnectionstatechange(pc.connectionState); };
    pc.oniceconnectionstatechange = () => { if (this.pc === pc) this._watchIce(); };
    for (const { track, source } of localTracks) this._addSender(track, source);
    if (this.senders.size === 0) {
      // A client that publishes nothing still needs an m-line: offer a data channel.
      this.dataChannel = pc.createDataChannel('ketang');
    }
    await this._negotiate();
  }

  /** Replace the peer connection (same local tracks), announcing it with `fresh: true`. */
  async handleRebuild(localTracks) {
    this.rebuilds += 1;
    await this.handleStart(localTracks, { fresh: true });
  }

  /**
   * The signaling connection was resumed (`welcome` with `resumed: true`) and this peer
   * connection is kept. An offer of ours that was pending on the old socket is rolled back
   * and made again; an offer the server had in flight arrives again and is answered.
   */
  async handleResume() {
    this.lostOffers = 0;
    this.earlyGlare = false;
    if (!this.pc) return;
    if (this.pc.signalingState === 'have-local-offer') {
      await this.pc.setLocalDescription({ type: 'rollback' });
      this.needsOffer = true;
    }
    this.offerInFlight = false;
    if (this.needsOffer) await this._negotiate();
    this._watchIce();
  }

  /** Whether the peer connection can carry on after a signaling reconnect. */
  usable() {
    const pc = this.pc;
    return !!pc && !this.closed && pc.connectionState !== 'closed' && pc.connectionState !== 'failed'
      && pc.iceConnectionState !== 'failed';
  }

  _dropPc({ retire = false } = {}) {
    this._clearIceTimers();
    const old = this.pc;
    this.pc = null;
    if (!old) return;
    if (retire) {
      this._closeRetired();
      this.retired = old;
    } else {
      try { old.close(); } catch { /* already closed */ }
    }
  }

  _closeRetired() {
    if (!this.retired) return;
    try { this.retired.close(); } catch { /* already closed */ }
    this.retired = null;
  }

  _clearIceTimers() {
    clearTimeout(this.iceTimers.disconnected);
    clearTimeout(this.iceTimers.restart);
    this.iceTimers.disconnected = null;
    this.iceTimers.restart = null;
  }

  /** ICE recovery: restart after 3 s `disconnected` or at once on `failed`. */
  _watchIce() {
    const pc = this.pc;
    if (!pc || this.closed) return;
    const state = pc.iceConnectionState;
    this.oniceconnectionstatechange(state);
    if (state === 'connected' || state === 'completed') {
      this._clearIceTimers();
      return;
    }
    if (state === 'disconnected' && !this.iceTimers.disconnected && !this.iceTimers.restart) {
      this.iceTimers.disconnected = setTimeout(() => {
        this.iceTimers.disconnected = null;
        if (this.pc === pc && pc.iceConnectionState === 'disconnected') this._restartIce(pc);
      }, ICE_DISCONNECTED_GRACE_MS);
    } else if (state === 'failed') {
      this._restartIce(pc);
    }
  }

  _restartIce(pc) {
    if (this.iceTimers.restart || this.pc !== pc || this.closed) return;
    clearTimeout(this.iceTimers.disconnected);
    this.iceTimers.disconnected = null;
    this.iceRestarts += 1;
    console.info('ketang: ICE', pc.iceConnectionState, '- restarting ICE');
    pc.restartIce();
    this.requestOffer().catch((err) => console.warn('ketang: ICE restart offer failed', err));
    this.iceTimers.restart = setTimeout(() => {
      this.iceTimers.restart = null;
      if (this.pc !== pc || this.closed) return;
      const s = pc.iceConnectionState;
      if (s === 'connected' || s === 'completed') return;
      console.info('ketang: ICE still', s, 'after a restart - replacing the peer connection');
      this.onrebuildneeded();
    }, ICE_RESTART_TIMEOUT_MS);
  }

  _addSender(track, source) {
    if (track && source === 'screen' && 'contentHint' in track) track.contentHint = 'detail';
    const stream = new MediaStream(track ? [track] : []);
    const kind = track ? track.kind : (source === 'mic' ? 'audio' : 'video');
    const init = { direction: 'sendonly', streams: [stream] };
    const encodings = kind === 'video' ? simulcastEncodings(this.role, source) : null;
    if (encodings) init.sendEncodings = encodings;
    const tr = this.pc.addTransceiver(track || kind, init);
    this.senders.set(tr, source);
    return tr;
  }

  /**
   * Server `publishLayers` (dynacast): of our simulcast m-line `mid`, send only the layers
   * someone needs. The lowest layer always stays on (the server says so too).
   */
  async handlePublishLayers(msg) {
    if (!this.pc || typeof msg.mid !== 'string' || !Array.isArray(msg.layers)) return;
    const layers = msg.layers.filter((l) => l && typeof l.rid === 'string').map((l) => ({ rid: l.rid, active: l.active !== false }));
    this.publishLayers.set(msg.mid, layers);
    const tr = [...this.senders.keys()].find((t) => t.mid === msg.mid && !isStopped(t));
    if (!tr) return;
    await this._applyLayers(tr, layers);
  }

  async _applyLayers(tr, layers) {
    const params = tr.sender.getParameters();
    const encs = params.encodings || [];
    if (encs.length < 2) return; // not simulcast
    let changed = false;
    encs.forEach((e, i) => {
      const want = layers.find((l) => l.rid === e.rid);
      const active = i === 0 || !want || want.active; // the lowest layer is always kept
      if (e.active !== active) {
        e.active = active;
        changed = true;
      }
    });
    if (!changed) return;
    try {
      await tr.sender.setParameters(params);
    } catch (err) {
      console.warn('ketang: could not apply publishLayers', err);
    }
  }

  /** The sending transceiver for a source, if any. */
  transceiverFor(source) {
    if (!this.pc) return null;
    for (const [tr, src] of this.senders) if (src === source && !isStopped(tr)) return tr;
    return null;
  }

  /**
   * Put `track` on the sender for `source` (null to send nothing). replaceTrack needs no
   * renegotiation; only a source we never sent before (or one set inactive) needs a new offer.
   * Returns false if the session has not started yet.
   */
  async setSourceTrack(source, track) {
    if (!this.pc) return false;
    const tr = this.transceiverFor(source);
    if (tr && (tr.direction === 'sendonly' || !track)) {
      await tr.sender.replaceTrack(track);
      return true;
    }
    if (!track) return true;
    await this.queue.push(async () => {
      const t = this.transceiverFor(source);
      if (source === 'screen' && 'contentHint' in track) track.contentHint = 'detail';
      if (t) {
        await t.sender.replaceTrack(track);
        t.direction = 'sendonly';
      } else {
        this._addSender(track, source);
      }
      await this._negotiate();
    });
    return true;
  }

  /** Start sending several sources with one renegotiation: [{track, source}]. */
  async publish(list) {
    if (!this.pc || list.length === 0) return;
    await this.queue.push(async () => {
      for (const { track, source } of list) {
        if (source === 'screen' && 'contentHint' in track) track.contentHint = 'detail';
        const t = this.transceiverFor(source);
        if (t) {
          await t.sender.replaceTrack(track);
          t.direction = 'sendonly';
        } else {
          this._addSender(track, source);
        }
      }
      await this._negotiate();
    });
  }

  /** Stop sending a source altogether (e.g. end a screen share): the m-line goes inactive. */
  async stopSource(source) {
    await this.queue.push(async () => {
      const tr = this.transceiverFor(source);
      if (!tr || tr.direction === 'inactive') return;
      await tr.sender.replaceTrack(null);
      tr.direction = 'inactive';
      await this._negotiate();
    });
  }

  /** The source we send on `mid`, if it is one of our sending m-lines. */
  sourceOfMid(mid) {
    for (const [tr, source] of this.senders) if (tr.mid === mid) return source;
    return null;
  }

  /** Ask for a client offer (goes through the signaling queue). */
  requestOffer() {
    return this.queue.push(() => this._negotiate());
  }

  async _negotiate() {
    if (this.closed || !this.pc) return;
    if (this.pc.signalingState !== 'stable' || this.offerInFlight || !this.canSend()) {
      // Offered once negotiation is stable again (or the signaling connection is back).
      this.needsOffer = true;
      return;
    }
    this.needsOffer = false;
    await this.pc.setLocalDescription(await this.pc.createOffer());
    const tracks = [];
    for (const [tr, source] of this.senders) {
      if (tr.mid !== null && !isStopped(tr) && (tr.direction === 'sendonly' || tr.direction === 'sendrecv')) {
        tracks.push({ mid: tr.mid, source });
      }
    }
    this.offerInFlight = true;
    const msg = { type: 'offer', sdp: this.pc.localDescription.sdp, tracks };
    if (this.fresh) msg.fresh = true;
    this.send(msg);
  }

  /** Server `answer` to our offer. */
  async handleAnswer(msg) {
    if (!this.pc || this.pc.signalingState !== 'have-local-offer') {
      console.warn('ketang: answer without a pending local offer; ignored');
      return;
    }
    await this.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
    this.offerInFlight = false;
    if (this.fresh) this._closeRetired(); // the server replaced the old connection
    this.fresh = false;
    this.answered += 1;
    this.rejected = Array.isArray(msg.rejected) ? msg.rejected : [];
    this.onanswer(this.rejected);
    if (this.needsOffer) await this._negotiate();
  }

  /** Server `offer`: apply it (rolling back a pending offer of ours), answer, record the mapping. */
  async handleOffer(msg) {
    if (!this.pc) {
      console.warn('ketang: server offer before the session started; ignored');
      return;
    }
    if (this.fresh && this.pc.signalingState === 'have-local-offer') {
      // An offer made for the connection this one replaces (re-sent on resume): the server
      // drops it when our fresh offer arrives, and offers everything again afterwards.
      console.info('ketang: ignoring a server offer for the replaced connection');
      return;
    }
    // Update the mapping first so that `ontrack`, fired during setRemoteDescription, sees it.
    this.trackMap.clear();
    for (const t of Array.isArray(msg.tracks) ? msg.tracks : []) {
      if (t && typeof t.mid === 'string') this.trackMap.set(t.mid, { ...t });
    }
    const hadLocalOffer = this.pc.signalingState === 'have-local-offer';
    await this.pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp }); // implicit rollback
    if (hadLocalOffer) {
      // The server (impolite) ignores our offer and will send `glare`: offer again after answering.
      this.offerInFlight = false;
      this.needsOffer = true;
      if (this.earlyGlare) this.earlyGlare = false;
      else this.lostOffers += 1;
    }
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    this.send({ type: 'answer', sdp: this.pc.localDescription.sdp });
    this.ontrackschanged();
    if (this.needsOffer) await this._negotiate();
  }

  /** Server `error` about one of our offers (`ref: "offer"`, or `glare`). Returns true if handled. */
  async handleOfferError(msg) {
    if (msg.code === 'glare') {
      if (this.lostOffers > 0) {
        this.lostOffers -= 1; // the rolled-back offer; its re-offer was already sent or queued
      } else if (this.pc?.signalingState === 'have-local-offer') {
        // The error came before the server's offer: re-offer once that offer is answered.
        this.earlyGlare = true;
        this.offerInFlight = false;
        this.needsOffer = true;
      } else {
        this.offerInFlight = false;
        await this._negotiate();
      }
      return true;
    }
    if (msg.ref !== 'offer') return false;
    // Our offer was refused (invalidSdp, rateLimited, forbidden, ...): roll it back.
    if (this.pc?.signalingState === 'have-local-offer') {
      await this.pc.setLocalDescription({ type: 'rollback' });
    }
    this.offerInFlight = false;
    if (msg.code === 'rateLimited') {
      setTimeout(() => this.requestOffer(), 1000);
    } else {
      this.onnegotiationerror(msg);
    }
    return true;
  }

  /** The receiving transceivers with a known mapping: [{mid, info, track, transceiver}]. */
  receivingTracks() {
    const out = [];
    if (!this.pc) return out;
    for (const tr of this.pc.getTransceivers()) {
      if (isStopped(tr) || tr.mid === null || this.senders.has(tr)) continue;
      const info = this.trackMap.get(tr.mid);
      if (info) out.push({ mid: tr.mid, info, track: tr.receiver.track, transceiver: tr });
    }
    return out;
  }

  /** Inbound RTP stats of `kind` with the mapping of their m-line: [{stats, mid, info}]. */
  async _inbound(kind) {
    if (!this.pc) return [];
    const byTrackId = new Map();
    for (const tr of this.pc.getTransceivers()) {
      if (tr.mid !== null) byTrackId.set(tr.receiver.track.id, tr.mid);
    }
    const report = await this.pc.getStats();
    const out = [];
    for (const s of report.values()) {
      if (s.type !== 'inbound-rtp' || s.kind !== kind) continue;
      const mid = s.mid ?? byTrackId.get(s.trackIdentifier) ?? null;
      const info = mid !== null ? this.trackMap.get(mid) : undefined;
      out.push({ s, mid, info });
    }
    return out;
  }

  /** Inbound video RTP stats mapped to peers: [{peerId, source, mid, trackId, framesDecoded, frameHeight, bytesReceived}]. */
  async inboundVideoStats() {
    return (await this._inbound('video')).map(({ s, mid, info }) => ({
      peerId: info ? info.peerId : null,
      source: info ? info.source : null,
      trackId: info ? info.trackId : null,
      mid,
      ssrc: s.ssrc,
      framesDecoded: s.framesDecoded ?? 0,
      frameWidth: s.frameWidth ?? 0,
      frameHeight: s.frameHeight ?? 0,
      bytesReceived: s.bytesReceived ?? 0,
    }));
  }

  /** Inbound audio RTP stats mapped to peers: [{peerId, source, mid, trackId, packetsReceived, bytesReceived}]. */
  async inboundAudioStats() {
    return (await this._inbound('audio')).map(({ s, mid, info }) => ({
      peerId: info ? info.peerId : null,
      source: info ? info.source : null,
      trackId: info ? info.trackId : null,
      mid,
      ssrc: s.ssrc,
      packetsReceived: s.packetsReceived ?? 0,
      bytesReceived: s.bytesReceived ?? 0,
      audioLevel: s.audioLevel ?? null,
    }));
  }

  /**
   * Outbound video RTP stats, one per simulcast layer: [{source, mid, rid, ssrc, active,
   * frameWidth, frameHeight, framesPerSecond, framesEncoded, framesSent, bytesSent, timestamp,
   * targetBitrate, qualityLimitationReason, encoderImplementation}].
   */
  async outboundVideoStats() {
    if (!this.pc) return [];
    const report = await this.pc.getStats();
    const out = [];
    for (const s of report.values()) {
      if (s.type !== 'outbound-rtp' || s.kind !== 'video') continue;
      out.push({
        source: s.mid != null ? this.sourceOfMid(s.mid) : null,
        mid: s.mid ?? null,
        rid: s.rid ?? null,
        ssrc: s.ssrc,
        active: s.active ?? null,
        frameWidth: s.frameWidth ?? 0,
        frameHeight: s.frameHeight ?? 0,
        framesPerSecond: s.framesPerSecond ?? 0,
        framesEncoded: s.framesEncoded ?? 0,
        framesSent: s.framesSent ?? 0,
        bytesSent: s.bytesSent ?? 0,
        timestamp: s.timestamp,
        targetBitrate: s.targetBitrate ?? null,
        qualityLimitationReason: s.qualityLimitationReason ?? null,
        encoderImplementation: s.encoderImplementation ?? null,
      });
    }
    const order = { q: 0, h: 1, f: 2 };
    out.sort((a, b) => String(a.mid).localeCompare(String(b.mid)) || (order[a.rid] ?? 9) - (order[b.rid] ?? 9));
    return out;
  }

  /**
   * Everything the stats overlay shows from the browser's side, in one getStats():
   * {at, outbound: [...outboundVideoStats rows, plus audio], inbound: [{peerId, source, kind,
   * mid, frameWidth, frameHeight, framesPerSecond, bytesReceived, packetsLost, jitter,
   * timestamp}], transport: {rtt, availableOutgoingBitrate, localAddress, remoteAddress}}.
   */
  async mediaStats() {
    const empty = { at: Date.now(), outbound: [], inbound: [], transport: null };
    if (!this.pc) return empty;
    const byTrackId = new Map();
    for (const tr of this.pc.getTransceivers()) if (tr.mid !== null) byTrackId.set(tr.receiver.track.id, tr.mid);
    const report = await this.pc.getStats();
    const out = { ...empty };
    for (const s of report.values()) {
      if (s.type === 'outbound-rtp') {
        out.outbound.push({
          kind: s.kind, source: s.mid != null ? this.sourceOfMid(s.mid) : null, mid: s.mid ?? null, rid: s.rid ?? null,
          active: s.active ?? null, frameWidth: s.frameWidth ?? 0, frameHeight: s.frameHeight ?? 0,
          framesPerSecond: s.framesPerSecond ?? 0, bytesSent: s.bytesSent ?? 0, timestamp: s.timestamp,
          targetBitrate: s.targetBitrate ?? null, qualityLimitationReason: s.qualityLimitationReason ?? null,
        });
      } else if (s.type === 'inbound-rtp') {
        const mid = s.mid ?? byTrackId.get(s.trackIdentifier) ?? null;
        const info = mid !== null ? this.trackMap.get(mid) : undefined;
        out.inbound.push({
          kind: s.kind, peerId: info ? info.peerId : null, source: info ? info.source : null, trackId: info ? info.trackId : null,
          mid, frameWidth: s.frameWidth ?? 0, frameHeight: s.frameHeight ?? 0, framesPerSecond: s.framesPerSecond ?? 0,
          bytesReceived: s.bytesReceived ?? 0, packetsLost: s.packetsLost ?? 0, jitter: s.jitter ?? null, timestamp: s.timestamp,
        });
      } else if (s.type === 'transport' && s.selectedCandidatePairId) {
        const pair = report.get(s.selectedCandidatePairId);
        const local = pair && report.get(pair.localCandidateId);
        const remote = pair && report.get(pair.remoteCandidateId);
        out.transport = {
          rtt: pair?.currentRoundTripTime ?? null,
          availableOutgoingBitrate: pair?.availableOutgoingBitrate ?? null,
          localAddress: local ? `${local.address}:${local.port}` : null,
          remoteAddress: remote ? `${remote.address}:${remote.port}` : null,
        };
      }
    }
    return out;
  }

  /**
   * The server dropped this participant (its media stopped for the grace period): the peer
   * connection is closed; `handleStart` makes a new one when the page joins again.
   */
  discard() {
    this._dropPc();
    this._closeRetired();
  }

  close() {
    this.closed = true;
    this._clearIceTimers();
    this._closeRetired();
    if (this.pc) this.pc.close();
  }
}
