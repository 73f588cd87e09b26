//! One signaling connection: a small actor that owns the WebSocket and the peer's event
//! channel, and talks to the peer's shard.
//!
//! Requests that need a shard's reply (join, renegotiate) are awaited inline, before any queued
//! event is read, so the client always receives an `answer` before the `offer` that follows it.

use std::time::{Duration, SystemTime};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use ketang_sfu::{JoinRequest, LeaveReason, PeerId, PeerMode, SfuError};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use super::protocol::{ByeReason, ClientMsg, ErrorCode, Limits, ServerMsg, message_type};
use super::ratelimit::TokenBucket;
use crate::auth::RoomClaims;
use crate::media::{MediaError, PeerSignal};
use crate::state::{AppState, unix_ms};

/// WebSocket keepalive: proxies drop idle connections.
const PING_EVERY: Duration = Duration::from_secs(20);

/// WebSocket close code for "message too big" (RFC 6455 §7.4.1).
const CLOSE_TOO_BIG: u16 = 1009;

type WsSink = futures_util::stream::SplitSink<WebSocket, Message>;

struct Session {
    state: AppState,
    claims: RoomClaims,
    peer: PeerId,
    /// The shard the peer joined, once joined.
    shard: Option<usize>,
    sink: WsSink,
    bucket: TokenBucket,
}

/// How the session ended, deciding what to tell the shard.
enum End {
    /// The client went away or left; the shard must remove the peer.
    Leave(LeaveReason),
    /// The shard already removed the peer.
    AlreadyGone,
}

pub async fn run(socket: WebSocket, state: AppState, claims: RoomClaims) {
    let peer = state.next_peer_id();
    let span = tracing::info_span!("session", room = %claims.room, %peer);
    run_session(socket, state, claims, peer)
        .instrument(span)
        .await
}

async fn run_session(socket: WebSocket, state: AppState, claims: RoomClaims, peer: PeerId) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    state.media.registry.insert(peer, tx);
    // One live session per link: a second page with the same link replaces the first.
    if let Some(old) = state.sessions.insert(claims.jti.clone(), peer)
        && let Some(old_tx) = state.media.registry.get(&old)
    {
        let _ = old_tx.send(PeerSignal::Close(ByeReason::Replaced));
    }

    let (sink, mut stream) = socket.split();
    let cfg = &state.config.signaling;
    let mut s = Session {
        bucket: TokenBucket::new(cfg.messages_per_second, cfg.burst, Instant::now()),
        state: state.clone(),
        claims,
        peer,
        shard: None,
        sink,
    };
    let end = s.serve(&mut stream, &mut rx).await;

    if let End::Leave(reason) = end
        && let Some(shard) = s.shard.and_then(|i| state.media.shards().get(i))
    {
        shard.leave(peer, reason);
    }
    state.media.registry.remove(&peer);
    state.sessions.remove_if(&s.claims.jti, |_, p| *p == peer);
    let _ = s.sink.close().await;
    tracing::info!(room = %s.claims.room, %peer, "signaling session ended");
}

impl Session {
    async fn serve(
        &mut self,
        stream: &mut futures_util::stream::SplitStream<WebSocket>,
        rx: &mut mpsc::UnboundedReceiver<PeerSignal>,
    ) -> End {
        if !self.welcome().await {
            return End::Leave(LeaveReason::Left);
        }
        let expires = token_deadline(self.claims.exp);
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
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
                    Some(Ok(Message::Close(_))) | None => return End::Leave(LeaveReason::Left),
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
                        return End::Leave(LeaveReason::Left);
                    }
                },
                sig = rx.recv() => match sig {
                    Some(PeerSignal::Event(e)) => {
                        if let Some(m) = ServerMsg::from_event(e) {
                            self.send(m).await;
                        }
                    }
                    Some(PeerSignal::Left(reason)) => {
                        self.send(ServerMsg::bye(ByeReason::from_leave(reason))).await;
                        return End::AlreadyGone;
                    }
                    Some(PeerSignal::Notice(n)) => {
                        self.send(ServerMsg::from_notice(n)).await;
                    }
                    Some(PeerSignal::Close(reason)) => {
                        self.send(ServerMsg::bye(reason)).await;
                        return End::Leave(LeaveReason::Removed);
                    }
                    None => return End::Leave(LeaveReason::Left),
                },
                _ = tokio::time::sleep_until(expires) => {
                    self.send(ServerMsg::bye(ByeReason::TokenExpired)).await;
                    return End::Leave(LeaveReason::Removed);
                }
                _ = ping.tick() => {
                    if self.sink.send(Message::Ping(Default::default())).await.is_err() {
                        return End::Leave(LeaveReason::Left);
                    }
                }
            }
        }
    }

    async fn welcome(&mut self) -> bool {
        let snapshot = match self.state.media.shard_of(&self.claims.room) {
            Some(shard) => shard
                .snapshot(self.claims.room.clone())
                .await
                .ok()
                .flatten(),
            None => None,
        };
        let (participants, tracks) = snapshot
            .map(|s| (s.participants, s.tracks))
            .unwrap_or_default();
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
        };
        self.send(msg).await
    }

    /// Handles one text frame; `Some` ends the session.
    async fn on_text(&mut self, text: &str) -> Option<End> {
        let cfg = &self.state.config.signaling;
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
        if !self.bucket.take(Instant::now()) {
            let m = format!(
                "more than {} messages per second; message dropped",
                cfg.messages_per_second
            );
            let r = message_type(text);
            self.send(ServerMsg::error(ErrorCode::RateLimited, m, r.as_deref()))
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
            ClientMsg::Offer { sdp, tracks } => {
                let sources = tracks.into_iter().map(|t| (t.mid, t.source)).collect();
                self.on_offer(sdp, sources).await;
            }
            ClientMsg::Answer { sdp } => self.on_answer(sdp).await,
            ClientMsg::Leave {} => {
                self.send(ServerMsg::bye(ByeReason::Left)).await;
                return Some(End::Leave(LeaveReason::Left));
            }
            ClientMsg::Ping {} => {
                self.send(ServerMsg::Pong {}).await;
            }
        }
        None
    }

    async fn on_offer(&mut self, sdp: String, sources: Vec<(String, ketang_sfu::TrackSource)>) {
        if !self.sdp_fits(&sdp, "offer").await {
            return;
        }
        let result = match self.shard.and_then(|i| self.state.media.shards().get(i)) {
            Some(shard) => shard.offer(self.peer, sdp, sources).await,
            None => {
                let req = JoinRequest {
                    peer: self.peer,
                    room: self.claims.room.clone(),
                    name: self.claims.name.clone(),
                    role: self.claims.role,
                    classroom: self.claims.classroom.clone(),
                    joined_at_ms: unix_ms(),
                    mode: PeerMode::Signaling,
                    offer: sdp,
                    sources,
                    lesson_mode: ketang_sfu::LessonMode::Open,
                };
                match self.state.media.join(req).await {
                    Ok((shard, answer)) => {
                        self.shard = Some(shard);
                        Ok(answer)
                    }
                    Err(e) => Err(e),
                }
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
            Err(e) => self.send_media_error(e, "offer").await,
        }
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

    async fn send_media_error(&mut self, e: MediaError, reference: &str) {
        let code = match &e {
            MediaError::Sfu(SfuError::InvalidSdp(_)) => ErrorCode::InvalidSdp,
            MediaError::Sfu(SfuError::Glare) => ErrorCode::Glare,
            MediaError::Sfu(SfuError::NoPendingOffer) => ErrorCode::NoPendingOffer,
            MediaError::Sfu(SfuError::Forbidden(_)) => ErrorCode::Forbidden,
            _ => ErrorCode::Internal,
        };
        if code == ErrorCode::Internal {
            tracing::warn!(peer = %self.peer, "media request failed: {e}");
        }
        self.send(ServerMsg::error(code, e.to_string(), Some(reference)))
            .await;
    }

    /// Sends one message; false if the socket is gone.
    async fn send(&mut self, msg: ServerMsg) -> bool {
        match serde_json::to_string(&msg) {
            Ok(json) => self.sink.send(Message::Text(json.into())).await.is_ok(),
            Err(e) => {
                tracing::error!("cannot serialise {msg:?}: {e}");
                false
            }
        }
    }
}

/// The instant a token's `exp` (Unix seconds) falls on.
fn token_deadline(exp: u64) -> Instant {
    let now_unix = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Instant::now() + Duration::from_secs(exp.saturating_sub(now_unix))
}
