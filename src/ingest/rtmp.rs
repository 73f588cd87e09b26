//! The RTMP listener and one task per connection.
//!
//! A connection goes: handshake → `connect` (app `live`) → `publish` with the stream key,
//! checked as a room link before it is accepted → the AVC configuration, which tells the
//! bridge which H.264 profile to offer, and the bridge joins the room → access units and AAC
//! frames, forwarded as they come. The task owns the RTMP session and the bridge and waits on
//! whichever has something: the encoder's TCP bytes, the shard's UDP datagrams, the bridge's
//! timer. When the encoder stops (or is refused) the bridge leaves the room.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::IngestError;
use super::aac::AacToOpus;
use super::bridge::Bridge;
use super::flv::{self, AudioTag, AvcConfig, VideoTag};
use crate::state::AppState;
use ketang_sfu::RoomId;

/// A handshake and `publish` must be done within this, or the connection is closed.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// A publishing encoder that sends nothing for this long is gone.
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// The bound RTMP listener.
pub struct RtmpListener {
    pub local_addr: SocketAddr,
}

/// Starts the RTMP listener if `[rtmp] enabled`.
pub async fn spawn(state: AppState) -> std::io::Result<Option<RtmpListener>> {
    let config = &state.config.rtmp;
    if !config.enabled {
        return Ok(None);
    }
    let listener = TcpListener::bind(config.listen).await?;
    let local_addr = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(config.max_connections));
    tracing::info!(%local_addr, "RTMP ingest listening (rtmp://HOST:PORT/live/ROOM?t=TOKEN)");
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!("RTMP accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "RTMP connection refused: rtmp.max_connections reached");
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                serve(state, tcp, peer).await;
                drop(permit);
            });
        }
    });
    Ok(Some(RtmpListener { local_addr }))
}

async fn serve(state: AppState, tcp: TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    state.metrics.rtmp.started();
    let mut conn = Conn {
        state,
        tcp,
        peer,
        session: None,
        target: None,
        media: Media::default(),
        bridge: None,
    };
    let result = conn.run().await;
    if let Some(b) = &conn.bridge {
        b.leave(&conn.state);
    }
    let room = conn.target.as_ref().map(|t| t.room.as_str().to_string());
    conn.state.metrics.rtmp.stopped(result.as_ref().err());
    match result {
        Ok(()) => tracing::info!(%peer, ?room, "RTMP stream ended"),
        Err(e) => {
            tracing::warn!(%peer, ?room, code = e.code(), "RTMP stream refused or ended: {e}")
        }
    }
}

/// The room and link a `publish` named.
struct Target {
    room: RoomId,
    token: String,
}

#[derive(Default)]
struct Media {
    avc: Option<AvcConfig>,
    aac: Option<AacToOpus>,
    /// The first AAC frame's RTMP time, in 48 kHz samples.
    audio_base: Option<u64>,
}

struct Conn {
    state: AppState,
    tcp: TcpStream,
    peer: SocketAddr,
    session: Option<ServerSession>,
    target: Option<Target>,
    media: Media,
    bridge: Option<Bridge>,
}

enum Wake {
    Tcp(std::io::Result<usize>),
    Udp(std::io::Result<(usize, SocketAddr)>),
    Timer,
}

impl Conn {
    async fn run(&mut self) -> Result<(), IngestError> {
        let leftover = tokio::time::timeout(SETUP_TIMEOUT, self.handshake())
            .await
            .map_err(|_| IngestError::Protocol("no handshake within 10 s".into()))??;
        let (session, start) = ServerSession::new(ServerSessionConfig::new())
            .map_err(|e| IngestError::Protocol(e.to_string()))?;
        self.session = Some(session);
        self.results(start).await?;
        self.input(&leftover).await?;
        let started = Instant::now();
        let mut last_input = Instant::now();
        let (mut buf, mut dgram) = (vec![0u8; 64 * 1024], vec![0u8; 2048]);
        loop {
            let deadline = match self.bridge.as_mut() {
                Some(b) => b.poll().await?,
                None => Instant::now() + Duration::from_millis(500),
            };
            if self.target.is_none() && started.elapsed() > SETUP_TIMEOUT {
                return Err(IngestError::Protocol("no publish within 10 s".into()));
            }
            if last_input.elapsed() > IDLE_TIMEOUT {
                return Err(IngestError::Protocol("the encoder stopped sending".into()));
            }
            let wake = tokio::select! {
                r = self.tcp.read(&mut buf) => Wake::Tcp(r),
                r = recv(self.bridge.as_ref(), &mut dgram) => Wake::Udp(r),
                _ = tokio::time::sleep_until(deadline.into()) => Wake::Timer,
            };
            match wake {
                Wake::Tcp(Ok(0)) => return Ok(()),
                Wake::Tcp(Ok(n)) => {
                    last_input = Instant::now();
                    let bytes = buf[..n].to_vec();
                    if !self.input(&bytes).await? {
                        return Ok(());
                    }
                }
                Wake::Tcp(Err(e)) => return Err(e.into()),
                Wake::Udp(Ok((n, from))) => {
                    if let Some(b) = self.bridge.as_mut() {
                        b.handle_datagram(from, &dgram[..n]);
                    }
                }
                Wake::Udp(Err(e)) => tracing::debug!("ingest UDP: {e}"),
                Wake::Timer => {
                    if let Some(b) = self.bridge.as_mut() {
                        b.handle_timeout();
                    }
                }
            }
        }
    }

    /// The RTMP handshake; returns the bytes that came after it.
    async fn handshake(&mut self) -> Result<Vec<u8>, IngestError> {
        let mut hs = Handshake::new(PeerType::Server);
        let mut buf = vec![0u8; 8192];
        for _ in 0..64 {
            let n = self.tcp.read(&mut buf).await?;
            if n == 0 {
                return Err(IngestError::Protocol("closed during the handshake".into()));
            }
            let step = hs
                .process_bytes(&buf[..n])
                .map_err(|e| IngestError::Protocol(format!("handshake: {e:?}")))?;
            match step {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.tcp.write_all(&response_bytes).await?;
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.tcp.write_all(&response_bytes).await?;
                    return Ok(remaining_bytes);
                }
            }
        }
        Err(IngestError::Protocol("handshake too long".into()))
    }

    /// Bytes from the encoder; false once it finished publishing.
    async fn input(&mut self, bytes: &[u8]) -> Result<bool, IngestError> {
        let Some(session) = self.session.as_mut() else {
            return Ok(false);
        };
        let results = session
            .handle_input(bytes)
            .map_err(|e| IngestError::Protocol(e.to_string()))?;
        let mut events = Vec::new();
        for r in results {
            match r {
                ServerSessionResult::OutboundResponse(p) => self.tcp.write_all(&p.bytes).await?,
                ServerSessionResult::RaisedEvent(e) => events.push(e),
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        for e in events {
            if !self.event(e).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn results(&mut self, results: Vec<ServerSessionResult>) -> Result<(), IngestError> {
        for r in results {
            if let ServerSessionResult::OutboundResponse(p) = r {
                self.tcp.write_all(&p.bytes).await?;
            }
        }
        Ok(())
    }

    async fn accept(&mut self, request_id: u32) -> Result<(), IngestError> {
        let Some(session) = self.session.as_mut() else {
            return Ok(());
        };
        let results = session
            .accept_request(request_id)
            .map_err(|e| IngestError::Protocol(e.to_string()))?;
        self.results(results).await
    }

    async fn reject(&mut self, request_id: u32, code: &str, why: &str) -> Result<(), IngestError> {
        let Some(session) = self.session.as_mut() else {
            return Ok(());
        };
        let results = session
            .reject_request(request_id, code, why)
            .map_err(|e| IngestError::Protocol(e.to_string()))?;
        self.results(results).await
    }

    /// One session event; false when the stream is over.
    async fn event(&mut self, e: ServerSessionEvent) -> Result<bool, IngestError> {
        match e {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                if app_name == "live" || app_name.starts_with("live/") {
                    self.accept(request_id).await?;
                } else {
                    self.reject(request_id, "NetConnection.Connect.Rejected", "use /live")
                        .await?;
                    return Err(IngestError::BadStreamKey("the application must be `live`"));
                }
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                app_name,
                stream_key,
                ..
            } => return self.publish(request_id, &app_name, &stream_key).await,
            ServerSessionEvent::PublishStreamFinished { .. } => return Ok(false),
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => self.video(&data, timestamp.value).await?,
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => self.audio(&data, timestamp.value)?,
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                self.reject(
                    request_id,
                    "NetStream.Play.Failed",
                    "Ketang takes pushes only",
                )
                .await?;
            }
            _ => {}
        }
        Ok(true)
    }

    async fn publish(
        &mut self,
        request_id: u32,
        app: &str,
        key: &str,
    ) -> Result<bool, IngestError> {
        let target = match stream_key(app, key) {
            Ok(t) => t,
            Err(e) => {
                self.reject(request_id, "NetStream.Publish.BadName", &e.to_string())
                    .await?;
                return Err(e);
            }
        };
        // The link is checked before anything is accepted (the room checks it again on join).
        if let Err(e) = self
            .state
            .admit(Some(&target.token), Some(&target.room))
            .await
        {
            self.reject(
                request_id,
                "NetStream.Publish.Unauthorized",
                "bad room link",
            )
            .await?;
            return Err(IngestError::Refused {
                status: 401,
                message: e.to_string(),
            });
        }
        self.accept(request_id).await?;
        tracing::info!(peer = %self.peer, room = %target.room, "RTMP publish accepted");
        self.target = Some(target);
        Ok(true)
    }

    async fn video(&mut self, data: &[u8], rtmp_ms: u32) -> Result<(), IngestError> {
        if self.target.is_none() {
            return Ok(());
        }
        match flv::video_tag(data)? {
            VideoTag::Config(c) => {
                c.check_decodable()?;
                tracing::info!(
                    peer = %self.peer,
                    profile_level_id = %c.profile_level_id(),
                    "RTMP stream: H.264"
                );
                if self.bridge.is_none()
                    && let Some(t) = &self.target
                {
                    let bridge = Bridge::join(&self.state, t.room.as_str(), &t.token, &c).await?;
                    self.bridge = Some(bridge);
                }
                self.media.avc = Some(c);
            }
            VideoTag::Frame {
                keyframe,
                composition_ms,
                data,
            } => {
                if composition_ms != 0 {
                    return Err(IngestError::BFrames(composition_ms));
                }
                let (Some(avc), Some(b)) = (&self.media.avc, self.bridge.as_mut()) else {
                    return Ok(());
                };
                let au = flv::annex_b(&data, avc, keyframe);
                b.send_video(u64::from(rtmp_ms) * 90, au, keyframe);
            }
            VideoTag::EndOfSequence => {}
        }
        Ok(())
    }

    fn audio(&mut self, data: &[u8], rtmp_ms: u32) -> Result<(), IngestError> {
        if self.target.is_none() {
            return Ok(());
        }
        match flv::audio_tag(data)? {
            AudioTag::Config(asc) => {
                let bitrate = self.state.config.rtmp.opus_bitrate;
                self.media.aac = Some(AacToOpus::new(&asc, bitrate)?);
            }
            AudioTag::Frame(frame) => {
                let Some(aac) = self.media.aac.as_mut() else {
                    return Ok(());
                };
                let base = *self.media.audio_base.get_or_insert(u64::from(rtmp_ms) * 48);
                // A damaged frame is skipped (a click), not the end of the lesson.
                let packets = match aac.push(&frame) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::debug!("RTMP audio: {e}");
                        return Ok(());
                    }
                };
                if let Some(b) = self.bridge.as_mut() {
                    for (ts, packet) in packets {
                        b.send_audio(base + ts, packet);
                    }
                }
            }
        }
        Ok(())
    }
}

async fn recv(bridge: Option<&Bridge>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match bridge {
        Some(b) => b.socket.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// The room and token of a publish: `rtmp://HOST/live/ROOM?t=TOKEN` (application `live`, stream
/// `ROOM?t=TOKEN`) or OBS's server `rtmp://HOST/live/ROOM` with the token as stream key.
fn stream_key(app: &str, key: &str) -> Result<Target, IngestError> {
    let (room, token) = match app.strip_prefix("live/") {
        Some(room) => {
            let token = query_token(key).unwrap_or(key);
            (room.split('?').next().unwrap_or(room), token)
        }
        None => {
            let (room, query) = key.split_once('?').ok_or(IngestError::BadStreamKey(
                "use rtmp://HOST/live/ROOM?t=TOKEN, or the token as the stream key of \
                 rtmp://HOST/live/ROOM",
            ))?;
            let token = query_token(&format!("?{query}"))
                .map(str::to_string)
                .ok_or(IngestError::BadStreamKey("no t= token in the stream key"))?;
            return Ok(Target {
                room: RoomId::new(room).map_err(|_| IngestError::BadStreamKey("bad room id"))?,
                token,
            });
        }
    };
    if token.is_empty() {
        return Err(IngestError::BadStreamKey("no token"));
    }
    Ok(Target {
        room: RoomId::new(room).map_err(|_| IngestError::BadStreamKey("bad room id"))?,
        token: token.to_string(),
    })
}

/// The `t` parameter of a `?query`.
fn query_token(s: &str) -> Option<&str> {
    s.strip_prefix('?')?
        .split('&')
        .find_map(|kv| kv.strip_prefix("t="))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys_name_the_room_and_the_link() {
        let t = stream_key("live", "math-101?t=abc.def").unwrap();
        assert_eq!((t.room.as_str(), t.token.as_str()), ("math-101", "abc.def"));
        let t = stream_key("live/math-101", "abc.def").unwrap();
        assert_eq!((t.room.as_str(), t.token.as_str()), ("math-101", "abc.def"));
        let t = stream_key("live/math-101", "?x=1&t=abc").unwrap();
        assert_eq!(t.token, "abc");
        for (app, key) in [
            ("live", "math-101"),
            ("live", "math-101?x=1"),
            ("live/math-101", ""),
            ("live", "../etc?t=x"),
        ] {
            assert!(stream_key(app, key).is_err(), "{app} {key}");
        }
    }
}
