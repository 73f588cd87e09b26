//! One signaling connection: a small actor that owns the WebSocket and the peer's event
//! channel, and talks to the peer's shard.
//!
//! Requests that need a shard's reply (join, renegotiate) are awaited inline, before any queued
//! event is read, so the client always receives an `answer` before the `offer` that follows it.
//!
//! A connection that drops without `leave` does not end the peer: the shard keeps it for a
//! grace period, and a new connection with the same room link takes it over (`resumed`), with
//! its place on stage, hand and mutes.

use std::time::{Duration, SystemTime};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use ketang_sfu::{LeaveReason, PeerId, PeerMode, SfuError, TrackSource};
use tokio::time::Instant;
use tracing::Instrument;

use super::protocol::{ByeReason, ClientMsg, ErrorCode, Limits, ServerMsg, message_type};
use super::ratelimit::TokenBucket;
use crate::auth::RoomClaims;
use crate::media::{Identity, MediaError, PeerSignal};
use crate::state::AppState;

/// WebSocket keepalive: proxies drop idle connections.
const PING_EVERY: Duration = Duration::from_secs(20);

/// A client that takes no data for this long is treated as gone (its events would pile up).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// WebSocket close code for "message too big" (RFC 6455 §7.4.1).
const CLOSE_TOO_BIG: u16 = 1009;

type WsSink = futures_util::stream::SplitSink<WebSocket, Message>;

pub(super) struct Session {
    pub state: AppState,
    pub claims: RoomClaims,
    pub peer: PeerId,
    /// The shard the peer lives on, once joined.
    pub shard: Option<usize>,
    sink: WsSink,
    bucket: TokenBucket,
    /// Chat and questions have their own, slower budget.
    pub text_bucket: TokenBucket,
    /// A send failed or timed out: the connection is as good as gone.
    stalled: bool,
}

/// How the session ended, deciding what to tell the shard.
enum End {
    /// The client left or was sent away; the shard must remove the peer.
    Leave(LeaveReason),
    /// The connection dropped; the peer waits for a reconnect.
    Detach,
    /// The shard already removed the peer, or a newer session owns it.
    Nothing,
}

pub async fn run(socket: WebSocket, state: AppState, claims: RoomClaims) {
    // A link whose peer is still in the room takes that peer over.
    let existing = state.media.people.peer_of(&claims.jti);
    let peer = existing.unwrap_or_else(|| state.next_peer_id());
    let span = tracing::info_span!("session", room = %claims.room, %peer);
    run_session(socket, state, claims, peer, existing.is_some())
        .instrument(span)
        .await
}

async fn run_session(
    socket: WebSocket,
    state: AppState,
    claims: RoomClaims,
    peer: PeerId,
    existing: bool,
) {
    let (sink, mut stream) = socket.split();
    let cfg = &state.config.signaling;
    let now = Instant::now();
    let mut s = Session {
        bucket: TokenBucket::new(cfg.messages_per_second, cfg.burst, now),
        text_bucket: TokenBucket::new(1, 5, now),
        state: state.clone(),
        claims,
        peer,
        shard: None,
        sink,
        stalled: false,
    };
    if state.media.people.is_removed(&s.claims.room, &s.claims.jti) {
        s.send(ServerMsg::bye(ByeReason::Removed)).await;
        let _ = s.sink.close().await;
        return;
    }

    let (tx, mut rx) = crate::media::peer_channel(crate::media::PEER_QUEUE);
    // One live session per link: an older one (another tab, a half-dead connection) is told
    // it was replaced, and no longer owns the peer.
    if let Some(old_tx) = state.media.registry.insert(peer, tx.clone()) {
        let _ = old_tx.send(PeerSignal::Close(ByeReason::Replaced));
    }
    let mut resumed = false;
    if existing && let Some(shard) = state.media.shard_of(&s.claims.room) {
        resumed = shard.attach(peer).await.is_ok();
        if resumed {
            s.shard = Some(shard.index);
        }
    }
    if existing && !resumed {
        // The old peer is gone after all: start over under a new id.
        state
            .media
            .registry
            .remove_if(&peer, |_, t| t.same_channel(&tx));
        let fresh = state.next_peer_id();
        state.media.registry.insert(fresh, tx.clone());
        s.peer = fresh;
    }
    state.media.people.insert(
        s.peer,
        Identity {
            link: s.claims.jti.clone(),
            room: s.claims.room.clone(),
            name: s.claims.name.clone(),
            expires: s.claims.exp,
            version: s.claims.lv,
        },
    );

    let end = s.serve(&mut stream, &mut rx, resumed).await;

    let shard = s.shard.and_then(|i| state.media.shards().get(i));
    match (end, shard) {
        (End::Leave(reason), Some(shard)) => shard.leave(s.peer, reason),
        (End::Detach, Some(shard)) => shard.detach(s.peer),
        _ => {}
    }
    // Unless a newer session took the peer over, its channel goes with this session, and so
    // does the identity of a peer that never joined (no shard will report it gone).
    let owned = state
        .media
        .registry
        .remove_if(&s.peer, |_, t| t.same_channel(&tx))
        .is_some();
    if owned && s.shard.is_none() {
        state.media.people.left(s.peer);
    }
    let _ = s.sink.close().await;
    tracing::info!(room = %s.claims.room, peer = %s.peer, "signaling session ended");
}

impl Session {
    async fn serve(
        &mut self,
        stream: &mut futures_util::stream::SplitStream<WebSocket>,
        rx: &mut crate::media::PeerReceiver,
        resumed: bool,
    ) -> End {
        if !self.welcome(resumed).await {
            return End::Detach;
        }
        self.send_recording_state().await;
        let expires = token_deadline(self.claims.exp);
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            if self.stalled {
                return End::Detach;
            }
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(end) = self.on_text(&text).await {
                            return end;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        self.send(ServerMsg::error(
                            ErrorCode::BadMessage,
                            "binary frames are not part of the protocol; send JSON text",
                            None,
                        ))
                        .await;
                    }
                    Some(Ok(Message::Close(_))) | None => return End::Detach,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        // tungstenite refuses frames over the hard limit; say why before closing.
                        tracing::info!(error = %e, "websocket error");
                        let text = e.to_string().to_lowercase();
                        if text.contains("too long") || text.contains("space limit") {
                            let _ = self
                                .sink
                                .send(Message::Close(Some(CloseFrame {
                                    code: CLOSE_TOO_BIG,
                                    reason: Utf8Bytes::from_static("message too big"),
                                })))
                                .await;
                        }
                        return End::Detach;
                    }
                },
                sig = rx.recv() => match sig {
                    // Events were dropped for this client: it reads too slowly to follow
                    // the lesson, and the server does not queue without bound.
                    Some(_) if rx.overflowed() => {
                        self.send(ServerMsg::bye(ByeReason::SlowConsumer)).await;
                        return End::Leave(LeaveReason::Disconnected);
                    }
                    Some(PeerSignal::Event(e)) => {
                        if let Some(m) = ServerMsg::from_event(e) {
                            self.send(m).await;
                        }
                    }
                    Some(PeerSignal::Notice(n)) => {
                        self.send(ServerMsg::from_notice(n)).await;
                    }
                    Some(PeerSignal::Left(reason)) => {
                        self.send(ServerMsg::bye(ByeReason::from_leave(reason))).await;
                        return End::Nothing;
                    }
                    Some(PeerSignal::Close(ByeReason::Replaced)) => {
                        self.send(ServerMsg::bye(ByeReason::Replaced)).await;
                        return End::Nothing;
                    }
                    Some(PeerSignal::Close(reason)) => {
                        self.send(ServerMsg::bye(reason)).await;
                        return End::Leave(reason.leave_reason());
                    }
                    None => return End::Detach,
                },
                _ = tokio::time::sleep_until(expires) => {
                    self.send(ServerMsg::bye(ByeReason::TokenExpired)).await;
                    return End::Leave(LeaveReason::Removed);
                }
                _ = ping.tick() => {
                    if self.sink.send(Message::Ping(Default::default())).await.is_err() {
                        return End::Detach;
                    }
                }
            }
        }
    }

    async fn welcome(&mut self, resumed: bool) -> bool {
        let snapshot = match self.state.media.shard_of(&self.claims.room) {
            Some(shard) => shard
                .snapshot(self.claims.room.clone())
                .await
                .ok()
                .flatten(),
            None => None,
        };
        let (mut participants, tracks) = snapshot
            .map(|s| (s.participants, s.tracks))
            .unwrap_or_default();
        // Watchers (possibly hundreds) are listed only to the people who run the lesson.
        if is_audience(self.claims.role) {
            participants.retain(|p| !is_audience(p.role));
        }
        let cfg = &self.state.config.signaling;
        let msg = ServerMsg::Welcome {
            peer_id: self.peer,
            room: self.claims.room.clone(),
            role: self.claims.role,
            name: self.claims.name.clone(),
            classroom: self.claims.classroom.clone(),
            participants,
            tracks,
            limits: Limits {
                max_message_bytes: cfg.max_message_bytes,
                max_sdp_bytes: cfg.max_sdp_bytes,
                messages_per_second: cfg.messages_per_second,
            },
            expires_at: self.claims.exp,
            resumed,
            ice_servers: self.state.ice_servers(&self.peer.to_string()),
        };
        self.send(msg).await
    }

    /// Handles one text frame; `Some` ends the session.
    async fn on_text(&mut self, text: &str) -> Option<End> {
        let cfg = &self.state.config.signaling;
        // Every frame counts against the rate, oversized ones too.
        if !self.bucket.take(Instant::now()) {
            let m = format!(
                "more than {} messages per second; message dropped",
                cfg.messages_per_second
            );
            let r = (text.len() <= cfg.max_message_bytes)
                .then(|| message_type(text))
                .flatten();
            self.send(ServerMsg::error(ErrorCode::RateLimited, m, r.as_deref()))
                .await;
            return None;
        }
        if text.len() > cfg.max_message_bytes {
            let m = format!(
                "message of {} bytes exceeds the limit of {} bytes",
                text.len(),
                cfg.max_message_bytes
            );
            self.send(ServerMsg::error(ErrorCode::MessageTooLarge, m, None))
                .await;
            return None;
        }
        let msg: ClientMsg = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                let r = message_type(text);
                self.send(ServerMsg::error(
                    ErrorCode::BadMessage,
                    format!("not a valid message: {e}"),
                    r.as_deref(),
                ))
                .await;
                return None;
            }
        };
        match msg {
            ClientMsg::Offer { sdp, tracks, fresh } => {
                let sources = tracks.into_iter().map(|t| (t.mid, t.source)).collect();
                if let Some(end) = self.on_offer(sdp, sources, fresh).await {
                    return Some(end);
                }
            }
            ClientMsg::Answer { sdp } => self.on_answer(sdp).await,
            ClientMsg::Leave {} => {
                self.send(ServerMsg::bye(ByeReason::Left)).await;
                return Some(End::Leave(LeaveReason::Left));
            }
            ClientMsg::Ping {} => {
                self.send(ServerMsg::Pong {}).await;
            }
            ClientMsg::GetStats {} => {
                let bandwidth = self
                    .state
                    .media
                    .bandwidth(&self.claims.room, Some(self.peer))
                    .await
                    .into_iter()
                    .next()
                    .map(crate::media::report::view);
                self.send(ServerMsg::Stats { bandwidth }).await;
            }
            m @ (ClientMsg::StartRecording {}
            | ClientMsg::StopRecording {}
            | ClientMsg::Note { .. }) => self.on_recording(m).await,
            other => self.on_floor(other).await,
        }
        None
    }

    /// Joins or renegotiates; `Some` when the session must end (the server is full).
    async fn on_offer(
        &mut self,
        sdp: String,
        sources: Vec<(String, TrackSource)>,
        fresh: bool,
    ) -> Option<End> {
        if !self.sdp_fits(&sdp, "offer").await {
            return None;
        }
        let result = match self.shard.and_then(|i| self.state.media.shards().get(i)) {
            Some(shard) if fresh => shard.rejoin(self.peer, sdp, sources).await,
            Some(shard) => shard.offer(self.peer, sdp, sources).await,
            None if self
                .state
                .media
                .people
                .is_removed(&self.claims.room, &self.claims.jti) =>
            {
                // Removed between connecting and joining.
                Err(MediaError::Sfu(SfuError::Forbidden(
                    "this link was removed from the lesson".into(),
                )))
            }
            None => {
                let entry = crate::join::Entry {
                    peer: self.peer,
                    mode: PeerMode::Signaling,
                    offer: sdp,
                    sources,
                };
                crate::join::join(&self.state, &self.claims, entry)
                    .await
                    .map(|joined| {
                        self.shard = Some(joined.shard);
                        joined.answer
                    })
            }
        };
        match result {
            Ok(answer) => {
                let msg = ServerMsg::Answer {
                    sdp: answer.sdp,
                    rejected: answer.rejected.into_iter().map(Into::into).collect(),
                };
                self.send(msg).await;
            }
            Err(MediaError::Full) => {
                self.send(ServerMsg::bye(ByeReason::ServerFull)).await;
                return Some(End::Nothing);
            }
            Err(e) => self.send_media_error(e, "offer").await,
        }
        None
    }

    async fn on_answer(&mut self, sdp: String) {
        if !self.sdp_fits(&sdp, "answer").await {
            return;
        }
        let Some(shard) = self.shard.and_then(|i| self.state.media.shards().get(i)) else {
            self.send(ServerMsg::error(
                ErrorCode::NotJoined,
                "send an offer first",
                Some("answer"),
            ))
            .await;
            return;
        };
        if let Err(e) = shard.answer(self.peer, sdp).await {
            self.send_media_error(e, "answer").await;
        }
    }

    async fn sdp_fits(&mut self, sdp: &str, reference: &str) -> bool {
        let max = self.state.config.signaling.max_sdp_bytes;
        if sdp.len() <= max {
            return true;
        }
        let m = format!(
            "SDP of {} bytes exceeds the limit of {max} bytes",
            sdp.len()
        );
        self.send(ServerMsg::error(ErrorCode::InvalidSdp, m, Some(reference)))
            .await;
        false
    }

    pub(super) async fn send_media_error(&mut self, e: MediaError, reference: &str) {
        let code = match &e {
            MediaError::Sfu(SfuError::InvalidSdp(_)) => ErrorCode::InvalidSdp,
            MediaError::Sfu(SfuError::TooManyTracks { .. }) => ErrorCode::TooManyTracks,
            MediaError::Sfu(SfuError::Glare) => ErrorCode::Glare,
            MediaError::Sfu(SfuError::NoPendingOffer) => ErrorCode::NoPendingOffer,
            MediaError::Sfu(SfuError::Forbidden(_)) => ErrorCode::Forbidden,
            MediaError::Sfu(SfuError::RateLimited(_)) => ErrorCode::RateLimited,
            MediaError::Sfu(SfuError::UnknownPeer(_)) => ErrorCode::BadMessage,
            _ => ErrorCode::Internal,
        };
        if code == ErrorCode::Internal {
            tracing::warn!(peer = %self.peer, "media request failed: {e}");
        }
        self.send(ServerMsg::error(code, e.to_string(), Some(reference)))
            .await;
    }

    /// Sends one message; false if the socket is gone or did not take it in time.
    pub(super) async fn send(&mut self, msg: ServerMsg) -> bool {
        match serde_json::to_string(&msg) {
            Ok(json) => {
                let sent =
                    tokio::time::timeout(SEND_TIMEOUT, self.sink.send(Message::Text(json.into())));
                let ok = matches!(sent.await, Ok(Ok(())));
                self.stalled |= !ok;
                ok
            }
            Err(e) => {
                tracing::error!("cannot serialise {msg:?}: {e}");
                false
            }
        }
    }
}

fn is_audience(role: ketang_sfu::Role) -> bool {
    matches!(role, ketang_sfu::Role::Observer | ketang_sfu::Role::Viewer)
}

/// The instant a token's `exp` (Unix seconds) falls on.
fn token_deadline(exp: u64) -> Instant {
    let now_unix = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Instant::now() + Duration::from_secs(exp.saturating_sub(now_unix))
}
