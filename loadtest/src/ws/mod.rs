//! WebSocket signaling client (docs/protocol.md §4) on webrtc-rs: joins a room like the
//! browser app does, publishes synthetic media and receives everyone it is entitled to.
//!
//! Data flow:
//!
//! ```text
//!             connect(): GET /ws?t=TOKEN ─▶ welcome ─▶ build PC (+ MediaSender or a data
//!             channel) ─▶ offer {sdp, tracks:[{mid,source}]} ─▶ answer ─▶ connected ─▶ bind
//!
//!  signaling task (owns the socket)                 webrtc-rs driver
//!   server offer {sdp, tracks} ──▶ mid/msid → RemoteTrackInfo map ──▶ on_track ──▶ handler
//!        └─ set_remote_description, create/set answer, send answer     (track, info)
//!   participantJoined/Left, trackAdded/Removed, error, bye ──▶ WsStats
//! ```
//!
//! Negotiation follows §4.3 with this client as the **polite** side: a server offer that
//! arrives while our own offer is in flight rolls ours back, is answered, and our offer is sent
//! again; the matching `glare` error is then expected and swallowed (or, if it comes first,
//! remembered so the re-offer happens once the server offer is answered). The server's offers
//! are non-trickle and the server is ICE-lite, so answers are sent as soon as they are set.
//!
//! Received tracks are identified by the server offer's `tracks` list (mid → trackId, peerId,
//! kind, source). webrtc-rs announces a track with the msid track id of its m-line, so the
//! mapping is kept keyed by both the mid and the msid track id found in the offer's SDP.
//!
//! Every wait is bounded: the WebSocket connect, `welcome`, the first `answer`, reaching
//! `connected`, and `leave` → `bye`. Malformed server messages are counted, never unwrapped.

mod track_map;

use crate::error::ClientError;
use crate::send::{MediaConfig, MediaSender};
use crate::signaling::{self, ClientOptions, PcSetup, TrackCallback, build_peer_connection};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use track_map::{lookup, read_json, record_event, record_offer_tracks, record_welcome, truncate};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What the server said a received m-line carries (one entry of an `offer`'s `tracks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteTrackInfo {
    /// The m-line.
    pub mid: String,
    /// Track id.
    pub track_id: u64,
    /// Publisher's peer id.
    pub peer_id: u64,
    /// `audio` or `video`.
    pub kind: String,
    /// `mic`, `camera` or `screen`.
    pub source: String,
    /// When the offer carrying it arrived (the origin of time-to-first-frame).
    #[serde(skip)]
    pub offered_at: Instant,
}

/// Called (on a tokio task) for every remote track, with what the server said it is.
pub type RemoteTrackHandler =
    Arc<dyn Fn(Arc<dyn TrackRemote>, Option<RemoteTrackInfo>) + Send + Sync>;

/// Options of [`WsClient::connect`].
#[derive(Debug, Clone)]
pub struct WsOptions {
    /// Network and timeouts (`connect_timeout` also bounds the WebSocket handshake).
    pub client: ClientOptions,
    /// Media to publish; `None` offers only a data channel (observers, viewers).
    pub publish: Option<MediaConfig>,
    /// Bound on `welcome` and on the answer to an offer.
    pub reply_timeout: Duration,
}

impl Default for WsOptions {
    fn default() -> Self {
        WsOptions {
            client: ClientOptions::default(),
            publish: None,
            reply_timeout: Duration::from_secs(10),
        }
    }
}

/// Counters of one signaling session.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WsStats {
    /// Our peer id, from `welcome`.
    pub peer_id: u64,
    /// Client offers sent (the first one and re-offers).
    pub offers_sent: u64,
    /// Server offers answered.
    pub offers_answered: u64,
    /// Glare collisions (our offer rolled back for a server offer).
    pub glare: u64,
    /// `error` messages by code.
    pub errors: BTreeMap<String, u64>,
    /// m-lines the server refused in its answers, with the reason.
    pub rejected: Vec<String>,
    /// Other participants now in the room: peer id → role.
    pub participants: BTreeMap<u64, String>,
    /// Tracks now published by others: track id → (peer id, kind, source).
    pub tracks: BTreeMap<u64, (u64, String, String)>,
    /// `participantJoined` / `participantLeft` / `trackAdded` / `trackRemoved` received.
    pub events: [u64; 4],
    /// Messages that did not parse or had an unknown type.
    pub bad_messages: u64,
    /// The `bye` reason, once received.
    pub bye: Option<String>,
    /// `codecMismatch`: (publisher peer id, codec) of tracks this client cannot decode.
    pub codec_mismatches: Vec<(u64, String)>,
    /// `viewerCodecMismatch`: (viewer peer id, codec) of those who cannot decode ours.
    pub viewer_codec_mismatches: Vec<(u64, String)>,
}

/// State shared by the handle, the signaling task and the track callback.
struct Shared {
    stats: Mutex<WsStats>,
    /// By mid and by msid track id.
    by_mid: Mutex<HashMap<String, RemoteTrackInfo>>,
    by_msid: Mutex<HashMap<String, RemoteTrackInfo>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

enum Cmd {
    Leave,
    /// A message to send as is (lesson control in tests, e.g. `startRecording`).
    Send(Value),
}

/// A joined signaling session.
pub struct WsClient {
    peer_id: u64,
    pc: Arc<dyn PeerConnection>,
    sender: Option<MediaSender>,
    shared: Arc<Shared>,
    cmd: mpsc::Sender<Cmd>,
    task: Option<JoinHandle<()>>,
    closed: bool,
}

/// The `ws://…/ws?t=TOKEN` URL for a server base URL (`http://HOST:PORT`).
pub fn ws_url(base: &str, token: &str) -> Result<String, ClientError> {
    let mut url = signaling::parse_url(base)?;
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    url.set_scheme(scheme)
        .map_err(|_| ClientError::InvalidUrl {
            url: base.to_owned(),
            reason: "cannot use as a WebSocket URL".into(),
        })?;
    url.set_path("/ws");
    url.set_query(Some(&format!("t={token}")));
    Ok(url.to_string())
}

impl WsClient {
    /// Connect to `ws_url` (see [`ws_url`]), wait for `welcome`, offer (publishing
    /// `opts.publish`), wait for the answer and for the peer connection to connect.
    /// `on_track` is called for every track received later.
    pub async fn connect(
        ws_url: &str,
        opts: WsOptions,
        on_track: Option<RemoteTrackHandler>,
    ) -> Result<WsClient, ClientError> {
        let timeout = opts.client.connect_timeout;
        let (mut ws, _) = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(ws_url))
            .await
            .map_err(|_| ClientError::Timeout {
                what: "WebSocket connect",
                after: timeout,
            })?
            .map_err(|e| ClientError::Protocol(format!("WebSocket connect: {e}")))?;
        let welcome = read_json(&mut ws, opts.reply_timeout, "welcome").await?;
        if welcome["type"] != "welcome" {
            return Err(ClientError::Protocol(format!(
                "expected welcome, got {}",
                truncate(&welcome.to_string())
            )));
        }
        let peer_id = welcome["peerId"]
            .as_u64()
            .ok_or_else(|| ClientError::Protocol("welcome without peerId".into()))?;
        let shared = Arc::new(Shared {
            stats: Mutex::new(WsStats {
                peer_id,
                ..WsStats::default()
            }),
            by_mid: Mutex::new(HashMap::new()),
            by_msid: Mutex::new(HashMap::new()),
        });
        record_welcome(&shared, &welcome);

        let callback: Option<TrackCallback> = on_track.map(|handler| {
            let shared = Arc::clone(&shared);
            let cb: TrackCallback = Arc::new(move |track: Arc<dyn TrackRemote>| {
                let (shared, handler) = (Arc::clone(&shared), Arc::clone(&handler));
                // The callback runs on the driver task: resolve the mapping on a tokio task.
                tokio::spawn(async move {
                    let msid = track.track_id().await;
                    let info = lookup(&shared, &msid);
                    handler(track, info);
                });
            });
            cb
        });
        let setup = PcSetup {
            on_track: callback,
            forward_keyframe_requests: opts.publish.is_some(),
            simulcast_extensions: opts
                .publish
                .as_ref()
                .is_some_and(|m| m.video.iter().any(|l| l.rid.is_some())),
            video_codecs: opts.publish.as_ref().and_then(|m| m.video_codecs()),
        };
        let mut parts = build_peer_connection(&opts.client, setup).await?;
        let prepared = async {
            let sender = match &opts.publish {
                Some(media) => Some(MediaSender::add(&parts.pc, media).await?),
                None => {
                    // A client that publishes nothing still needs an m-line (protocol §4.2).
                    parts.pc.create_data_channel("ketang", None).await?;
                    None
                }
            };
            let offer = parts.pc.create_offer(None).await?;
            parts.pc.set_local_description(offer).await?;
            let sdp = signaling::gathered_local_sdp(&mut parts, opts.client.gather_timeout).await?;
            let mut decl = Vec::new();
            if let Some(s) = &sender {
                let (audio, video) = s.mids().await;
                decl.extend(audio.map(|m| json!({"mid": m, "source": "mic"})));
                decl.extend(video.map(|m| json!({"mid": m, "source": "camera"})));
            }
            Ok::<_, ClientError>((sender, sdp, decl))
        }
        .await;
        let (sender, sdp, decl) = match prepared {
            Ok(v) => v,
            Err(e) => {
                let _ = parts.pc.close().await;
                return Err(e);
            }
        };

        let (answered_tx, mut answered) = watch::channel(None::<Result<(), String>>);
        let (cmd, cmd_rx) = mpsc::channel(4);
        let mut task = SignalingTask {
            ws,
            pc: Arc::clone(&parts.pc),
            shared: Arc::clone(&shared),
            decl: Value::Array(decl),
            offer_in_flight: false,
            needs_offer: false,
            lost_offers: 0,
            early_glare: false,
            answered: answered_tx,
        };
        let first = task.send_offer(sdp).await;
        let mut client = WsClient {
            peer_id,
            pc: Arc::clone(&parts.pc),
            sender,
            shared,
            cmd,
            task: None,
            closed: false,
        };
        if let Err(e) = first {
            let _ = client.pc.close().await;
            return Err(e);
        }
        client.task = Some(tokio::spawn(task.run(cmd_rx)));

        let got = tokio::time::timeout(opts.reply_timeout, answered.wait_for(Option::is_some))
            .await
            .map(|r| r.map(|v| v.clone()));
        let outcome = match got {
            Ok(Ok(v)) => v.unwrap_or(Ok(())),
            Ok(Err(_)) => Err("signaling ended before the answer".to_owned()),
            Err(_) => Err(format!("no answer within {:?}", opts.reply_timeout)),
        };
        if let Err(why) = outcome {
            client.close().await;
            return Err(ClientError::Protocol(why));
        }
        let connected = signaling::wait_connected(&mut parts.state, timeout).await;
        let bound = match (connected, client.sender.as_mut()) {
            (Err(e), _) => Err(e),
            (Ok(()), Some(s)) => s.bind().await,
            (Ok(()), None) => Ok(()),
        };
        if let Err(e) = bound {
            client.close().await;
            return Err(e);
        }
        Ok(client)
    }

    /// Our peer id.
    pub fn peer_id(&self) -> u64 {
        self.peer_id
    }

    /// The media sender, if this client publishes (to run it on its own task).
    pub fn take_sender(&mut self) -> Option<MediaSender> {
        self.sender.take()
    }

    /// Counters so far.
    pub fn stats(&self) -> WsStats {
        lock(&self.shared.stats).clone()
    }

    /// Whether the peer connection is still up.
    pub fn is_connected(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Sends a message as is; false if the session has ended.
    pub async fn send(&self, msg: Value) -> bool {
        self.cmd.send(Cmd::Send(msg)).await.is_ok()
    }

    /// Send `leave`, wait (bounded) for `bye`, close the peer connection; returns the final
    /// counters.
    pub async fn leave(mut self, timeout: Duration) -> WsStats {
        let _ = self.cmd.send(Cmd::Leave).await;
        if let Some(task) = self.task.as_mut() {
            let _ = tokio::time::timeout(timeout, task).await;
        }
        self.close().await;
        self.stats()
    }

    async fn close(&mut self) {
        self.closed = true;
        if let Some(t) = self.task.take() {
            t.abort();
        }
        let _ = self.pc.close().await;
    }
}

impl Drop for WsClient {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        if !self.closed
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            let pc = Arc::clone(&self.pc);
            handle.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}

/// The task that owns the WebSocket and does the negotiation.
struct SignalingTask {
    ws: Ws,
    pc: Arc<dyn PeerConnection>,
    shared: Arc<Shared>,
    decl: Value,
    offer_in_flight: bool,
    needs_offer: bool,
    /// Offers rolled back by a server offer whose `glare` error is still due.
    lost_offers: u32,
    /// A `glare` error arrived before the server offer that caused it.
    early_glare: bool,
    /// The outcome of the first offer, for `connect`.
    answered: watch::Sender<Option<Result<(), String>>>,
}

impl SignalingTask {
    async fn run(mut self, mut cmd: mpsc::Receiver<Cmd>) {
        let mut leaving: Option<tokio::time::Instant> = None;
        loop {
            let deadline = leaving.unwrap_or_else(|| {
                tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600)
            });
            tokio::select! {
                msg = self.ws.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        if !self.on_text(&text).await {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
                c = cmd.recv(), if leaving.is_none() => match c {
                    Some(Cmd::Leave) | None => {
                        let _ = self.send(json!({"type": "leave"})).await;
                        leaving = Some(tokio::time::Instant::now() + Duration::from_secs(3));
                    }
                    Some(Cmd::Send(msg)) => {
                        let _ = self.send(msg).await;
                    }
                },
                _ = tokio::time::sleep_until(deadline), if leaving.is_some() => break,
            }
        }
        let _ = self.ws.close(None).await;
        self.answered.send_if_modified(|v| {
            v.is_none()
                .then(|| *v = Some(Err("closed".into())))
                .is_some()
        });
    }

    async fn send(&mut self, v: Value) -> Result<(), ClientError> {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .map_err(|e| ClientError::Protocol(format!("WebSocket send: {e}")))
    }

    async fn send_offer(&mut self, sdp: String) -> Result<(), ClientError> {
        self.offer_in_flight = true;
        lock(&self.shared.stats).offers_sent += 1;
        let msg = json!({"type": "offer", "sdp": sdp, "tracks": self.decl.clone()});
        self.send(msg).await
    }

    /// A new client offer, unless one is in flight (then it is sent once that is settled).
    async fn negotiate(&mut self) -> Result<(), ClientError> {
        if self.offer_in_flight {
            self.needs_offer = true;
            return Ok(());
        }
        self.needs_offer = false;
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        let sdp = self
            .pc
            .local_description()
            .await
            .ok_or_else(|| ClientError::Protocol("no local description".into()))?
            .sdp;
        self.send_offer(sdp).await
    }

    /// Handle one text frame; false ends the session.
    async fn on_text(&mut self, text: &str) -> bool {
        let Ok(msg) = serde_json::from_str::<Value>(text) else {
            lock(&self.shared.stats).bad_messages += 1;
            return true;
        };
        let result = match msg["type"].as_str().unwrap_or("") {
            "answer" => self.on_answer(&msg).await,
            "offer" => self.on_offer(&msg).await,
            "error" => self.on_error(&msg).await,
            "bye" => {
                lock(&self.shared.stats).bye = Some(msg["reason"].as_str().unwrap_or("").into());
                return false;
            }
            "participantJoined" | "participantLeft" | "trackAdded" | "trackRemoved" => {
                record_event(&self.shared, &msg);
                Ok(())
            }
            "codecMismatch" => {
                let told = (
                    msg["peerId"].as_u64().unwrap_or(0),
                    truncate(msg["codec"].as_str().unwrap_or("")),
                );
                lock(&self.shared.stats).codec_mismatches.push(told);
                Ok(())
            }
            "viewerCodecMismatch" => {
                let told = (
                    msg["viewerId"].as_u64().unwrap_or(0),
                    truncate(msg["codec"].as_str().unwrap_or("")),
                );
                lock(&self.shared.stats).viewer_codec_mismatches.push(told);
                Ok(())
            }
            "pong" | "roomState" | "chat" | "activeSpeaker" | "rollCall" | "lessonEnding"
            | "welcome" => Ok(()),
            _ => {
                lock(&self.shared.stats).bad_messages += 1;
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "signaling step failed");
            let code = "client:".to_owned() + &truncate(&e.to_string());
            *lock(&self.shared.stats).errors.entry(code).or_default() += 1;
            self.answered
                .send_if_modified(|v| v.is_none().then(|| *v = Some(Err(e.to_string()))).is_some());
        }
        true
    }

    async fn on_answer(&mut self, msg: &Value) -> Result<(), ClientError> {
        if !self.offer_in_flight {
            tracing::warn!("answer without a pending offer; ignored");
            return Ok(());
        }
        let sdp = msg["sdp"].as_str().unwrap_or("").to_owned();
        let answer = RTCSessionDescription::answer(sdp)
            .map_err(|e| ClientError::Protocol(format!("answer does not parse: {e}")))?;
        self.pc.set_remote_description(answer).await?;
        self.offer_in_flight = false;
        if let Some(rejected) = msg["rejected"].as_array() {
            let mut stats = lock(&self.shared.stats);
            for r in rejected {
                stats.rejected.push(truncate(&r.to_string()));
            }
        }
        self.answered
            .send_if_modified(|v| v.is_none().then(|| *v = Some(Ok(()))).is_some());
        if self.needs_offer {
            self.negotiate().await?;
        }
        Ok(())
    }

    async fn on_offer(&mut self, msg: &Value) -> Result<(), ClientError> {
        let sdp = msg["sdp"].as_str().unwrap_or("").to_owned();
        // Record the mapping before applying the offer, so `on_track` finds it.
        record_offer_tracks(&self.shared, msg, &sdp);
        if self.offer_in_flight {
            // Polite side of glare: roll ours back, answer theirs, offer again afterwards.
            self.pc
                .set_local_description(RTCSessionDescription::rollback(None)?)
                .await?;
            self.offer_in_flight = false;
            self.needs_offer = true;
            lock(&self.shared.stats).glare += 1;
            if self.early_glare {
                self.early_glare = false;
            } else {
                self.lost_offers += 1;
            }
        }
        let offer = RTCSessionDescription::offer(sdp)
            .map_err(|e| ClientError::Protocol(format!("server offer does not parse: {e}")))?;
        self.pc.set_remote_description(offer).await?;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer).await?;
        let sdp = self
            .pc
            .local_description()
            .await
            .ok_or_else(|| ClientError::Protocol("no local answer".into()))?
            .sdp;
        self.send(json!({"type": "answer", "sdp": sdp})).await?;
        lock(&self.shared.stats).offers_answered += 1;
        if self.needs_offer {
            self.negotiate().await?;
        }
        Ok(())
    }

    async fn on_error(&mut self, msg: &Value) -> Result<(), ClientError> {
        let code = msg["code"].as_str().unwrap_or("?").to_owned();
        *lock(&self.shared.stats)
            .errors
            .entry(code.clone())
            .or_default() += 1;
        if code == "glare" {
            if self.lost_offers > 0 {
                self.lost_offers -= 1;
            } else if self.offer_in_flight {
                self.early_glare = true;
                self.offer_in_flight = false;
                self.needs_offer = true;
            } else {
                return self.negotiate().await;
            }
            return Ok(());
        }
        if msg["ref"] == "offer" && self.offer_in_flight {
            self.pc
                .set_local_description(RTCSessionDescription::rollback(None)?)
                .await?;
            self.offer_in_flight = false;
            let why = format!("offer refused: {}", truncate(&msg.to_string()));
            self.answered
                .send_if_modified(|v| v.is_none().then(|| *v = Some(Err(why))).is_some());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_url_from_http_base() {
        let u = ws_url("http://127.0.0.1:8080", "a.b.c").expect("url");
        assert_eq!(u, "ws://127.0.0.1:8080/ws?t=a.b.c");
        let u = ws_url("https://k.example/", "x").expect("url");
        assert_eq!(u, "wss://k.example/ws?t=x");
    }
}
