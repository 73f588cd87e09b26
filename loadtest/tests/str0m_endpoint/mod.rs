//! A minimal WHIP/WHEP endpoint on str0m 0.25 for the self-tests — not the Ketang server.
//!
//! Data flow:
//!
//! ```text
//! axum (tokio, 127.0.0.1:0)            media thread (std, one UdpSocket 127.0.0.1:0)
//!   POST /whip|whep/{room}  ──Cmd::Add(Rtc)──▶  peers: Vec<Peer>
//!   DELETE …/{room}/{id}    ──Cmd::Remove──▶     drain poll_output after every mutation,
//!                                                 count WHIP MediaData, write WHEP frames
//!                                  ◀──Arc<Mutex<EndpointStats>>──
//! ```
//!
//! Rules it enforces, mirroring `docs/protocol.md` §6 so the clients' error mapping is
//! exercised: `415` unless `Content-Type: application/sdp`, `401` unless a known bearer
//! token, `403` for the viewer token on WHIP, `400` for SDP that does not parse, `201` with a
//! *relative* `Location` otherwise.
//!
//! str0m runs ICE-lite (like the Ketang SFU) in frame mode (its default): WHIP media arrives
//! as whole frames, whose stamps (see `ketang_loadtest::media`) are counted; for WHEP peers
//! the thread writes synthetic frames for a fixed time once the peer is connected.
//!
//! Keyframes: both directions use a keyframe interval longer than the test, so keyframes after
//! the first one come only from requests. The endpoint sends one PLI to each WHIP publisher
//! 1.5 s after connecting, and answers WHEP viewers' PLIs with a keyframe. It never sends
//! the first (periodic) keyframe to WHEP viewers, as if they had joined mid-stream, so their
//! keyframes can only come from their own PLIs.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use ketang_loadtest::media::{
    MediaFrame, OpusConfig, OpusSource, Vp8Config, Vp8Source, parse_opus_payload, parse_vp8_frame,
};
use std::collections::HashSet;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Frequency, KeyframeRequestKind, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

/// Bearer token accepted on both endpoints.
pub const TOKEN: &str = "good-token";
/// Bearer token accepted on WHEP only; WHIP answers 403.
pub const VIEWER_TOKEN: &str = "viewer-token";
/// Hard bound on the media thread's life, whatever the test does.
const THREAD_LIFETIME: Duration = Duration::from_secs(30);
/// When, after connecting, the endpoint asks a WHIP publisher for a keyframe.
const PLI_AFTER: Duration = Duration::from_millis(1500);
/// Longer than any test: only the first keyframe is periodic.
pub const LONG_KEYFRAME_INTERVAL: u32 = 10_000;

/// What the endpoint observed, shared with the test.
#[derive(Debug, Default, Clone)]
pub struct EndpointStats {
    pub sessions: u32,
    pub deletes: u32,
    pub connected: u32,
    /// Distinct stamp counters of frames received from WHIP publishers.
    pub audio_in: HashSet<u64>,
    pub video_in: HashSet<u64>,
    pub keyframes_in: u32,
    /// PLIs sent to WHIP publishers.
    pub keyframe_requests_out: u32,
    /// Keyframe requests received from WHEP viewers.
    pub keyframe_requests_in: u32,
    /// Frames written to WHEP viewers.
    pub audio_out: u64,
    pub video_out: u64,
    /// Set when every WHEP peer finished its send window.
    pub whep_done: bool,
}

enum Cmd {
    Add(Box<Peer>),
    Remove(u64),
}

struct Peer {
    id: u64,
    rtc: Rtc,
    timeout: Instant,
    /// Mids with their kind, from `MediaAdded`.
    mids: Vec<(Mid, MediaKind)>,
    /// WHIP peers: when to send the PLI.
    pli_at: Option<Instant>,
    /// `Some` for WHEP peers once connected: the send schedule.
    sending: Option<Schedule>,
    is_whep: bool,
    done: bool,
}

struct Schedule {
    start: Instant,
    until: Instant,
    audio: OpusSource,
    video: Vp8Source,
    audio_sent: u32,
    video_sent: u32,
}

struct AppState {
    tx: Mutex<mpsc::Sender<Cmd>>,
    stats: Arc<Mutex<EndpointStats>>,
    next_id: AtomicU64,
    udp_addr: SocketAddr,
}

/// A running endpoint; dropping it stops the media thread and the HTTP server.
pub struct Endpoint {
    pub base: String,
    pub stats: Arc<Mutex<EndpointStats>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    http: tokio::task::JoinHandle<()>,
}

impl Endpoint {
    /// Start on loopback. WHEP peers receive synthetic media for `whep_send_for`.
    pub async fn start(whep_send_for: Duration) -> Endpoint {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let udp_addr = socket.local_addr().expect("udp addr");
        let stats = Arc::new(Mutex::new(EndpointStats::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let thread = {
            let (stats, stop) = (Arc::clone(&stats), Arc::clone(&stop));
            std::thread::spawn(move || media_loop(socket, rx, stats, stop, whep_send_for))
        };
        let state = Arc::new(AppState {
            tx: Mutex::new(tx),
            stats: Arc::clone(&stats),
            next_id: AtomicU64::new(1),
            udp_addr,
        });
        let app = Router::new()
            .route("/whip/{room}", post(whip))
            .route("/whep/{room}", post(whep))
            .route("/whip/{room}/{id}", delete(end_session))
            .route("/whep/{room}/{id}", delete(end_session))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind http");
        let base = format!("http://{}", listener.local_addr().expect("http addr"));
        let http = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Endpoint {
            base,
            stats,
            stop,
            thread: Some(thread),
            http,
        }
    }

    pub fn snapshot(&self) -> EndpointStats {
        self.stats.lock().expect("stats lock").clone()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.http.abort();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn whip(
    state: State<Arc<AppState>>,
    room: Path<String>,
    h: HeaderMap,
    body: String,
) -> Response {
    offer(state, room, h, body, false).await
}

async fn whep(
    state: State<Arc<AppState>>,
    room: Path<String>,
    h: HeaderMap,
    body: String,
) -> Response {
    offer(state, room, h, body, true).await
}

async fn offer(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: String,
    is_whep: bool,
) -> Response {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if ctype != Some("application/sdp") {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match auth.and_then(|a| a.strip_prefix("Bearer ")) {
        Some(TOKEN) => {}
        Some(VIEWER_TOKEN) if is_whep => {}
        Some(VIEWER_TOKEN) => {
            return (StatusCode::FORBIDDEN, r#"{"error":"forbidden"}"#).into_response();
        }
        _ => return (StatusCode::UNAUTHORIZED, r#"{"error":"unauthorized"}"#).into_response(),
    }
    let Ok(offer) = SdpOffer::from_sdp_string(&body) else {
        return (StatusCode::BAD_REQUEST, r#"{"error":"invalidSdp"}"#).into_response();
    };
    let now = Instant::now();
    let mut rtc = RtcConfig::new().set_ice_lite(true).build(now);
    let candidate = Candidate::host(state.udp_addr, "udp").expect("host candidate");
    rtc.add_local_candidate(candidate);
    let answer = match rtc.sdp_api().accept_offer(offer) {
        Ok(a) => a,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let peer = Peer {
        id,
        rtc,
        timeout: now,
        mids: Vec::new(),
        pli_at: None,
        sending: None,
        is_whep,
        done: false,
    };
    let sent = state
        .tx
        .lock()
        .expect("tx lock")
        .send(Cmd::Add(Box::new(peer)));
    if sent.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    state.stats.lock().expect("stats lock").sessions += 1;
    let kind = if is_whep { "whep" } else { "whip" };
    (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, format!("/{kind}/{room}/{id}")),
        ],
        answer.to_sdp_string(),
    )
        .into_response()
}

async fn end_session(
    State(state): State<Arc<AppState>>,
    Path((_room, id)): Path<(String, u64)>,
) -> StatusCode {
    let _ = state.tx.lock().expect("tx lock").send(Cmd::Remove(id));
    state.stats.lock().expect("stats lock").deletes += 1;
    StatusCode::OK
}

fn media_loop(
    socket: UdpSocket,
    rx: mpsc::Receiver<Cmd>,
    stats: Arc<Mutex<EndpointStats>>,
    stop: Arc<AtomicBool>,
    whep_send_for: Duration,
) {
    let local = socket.local_addr().expect("udp addr");
    let hard_stop = Instant::now() + THREAD_LIFETIME;
    let mut peers: Vec<Peer> = Vec::new();
    let mut buf = vec![0u8; 2000];
    while !stop.load(Ordering::Relaxed) && Instant::now() < hard_stop {
        while let Ok(cmd) = rx.try_recv() {
            match cmd {
                Cmd::Add(mut p) => {
                    drain(&mut p, &socket, &stats, whep_send_for);
                    peers.push(*p);
                }
                Cmd::Remove(id) => peers.retain(|p| p.id != id),
            }
        }
        let now = Instant::now();
        for p in peers.iter_mut() {
            write_due_media(p, now, &socket, &stats, whep_send_for);
            request_keyframe_if_due(p, now, &socket, &stats, whep_send_for);
            if p.timeout <= now {
                let _ = p.rtc.handle_input(Input::Timeout(now));
                drain(p, &socket, &stats, whep_send_for);
            }
        }
        peers.retain(|p| p.rtc.is_alive());
        let whep: Vec<&Peer> = peers.iter().filter(|p| p.is_whep).collect();
        if !whep.is_empty() && whep.iter().all(|p| p.done) {
            stats.lock().expect("stats lock").whep_done = true;
        }

        // Sleep until the next str0m timeout or media frame, at most 10 ms, at least 1 ms
        // (a zero read timeout is an error for std sockets).
        let wake = peers
            .iter()
            .map(|p| p.timeout)
            .min()
            .unwrap_or(now + Duration::from_millis(10))
            .min(now + Duration::from_millis(10));
        let wait = wake
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        socket.set_read_timeout(Some(wait)).expect("read timeout");
        let (n, source) = match socket.recv_from(&mut buf) {
            Ok(v) => v,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => panic!("udp recv: {e}"),
        };
        let Ok(contents) = buf[..n].try_into() else {
            continue;
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source,
                destination: local,
                contents,
            },
        );
        if let Some(p) = peers.iter_mut().find(|p| p.rtc.accepts(&input)) {
            let _ = p.rtc.handle_input(input);
            drain(p, &socket, &stats, whep_send_for);
        }
    }
}

/// Poll `p` until it yields a timeout — str0m requires this after every mutation.
fn drain(p: &mut Peer, socket: &UdpSocket, stats: &Mutex<EndpointStats>, send_for: Duration) {
    // Bounded: str0m returns Timeout once idle; 10 000 outputs would be a bug.
    for _ in 0..10_000 {
        let out = match p.rtc.poll_output() {
            Ok(o) => o,
            Err(_) => {
                p.rtc.disconnect();
                return;
            }
        };
        match out {
            Output::Timeout(t) => {
                p.timeout = t;
                return;
            }
            Output::Transmit(t) => {
                let _ = socket.send_to(&t.contents, t.destination);
            }
            Output::Event(e) => on_event(p, e, stats, send_for),
        }
    }
}

fn on_event(p: &mut Peer, event: Event, stats: &Mutex<EndpointStats>, send_for: Duration) {
    match event {
        Event::Connected => {
            stats.lock().expect("stats lock").connected += 1;
            if !p.is_whep {
                p.pli_at = Some(Instant::now() + PLI_AFTER);
            } else {
                let start = Instant::now();
                p.sending = Some(Schedule {
                    start,
                    until: start + send_for,
                    audio: OpusSource::new(&OpusConfig::default()),
                    video: Vp8Source::new(&Vp8Config {
                        keyframe_interval: LONG_KEYFRAME_INTERVAL,
                        ..Vp8Config::default()
                    }),
                    audio_sent: 0,
                    video_sent: 0,
                });
            }
        }
        Event::MediaAdded(m) => p.mids.push((m.mid, m.kind)),
        Event::KeyframeRequest(_) => {
            stats.lock().expect("stats lock").keyframe_requests_in += 1;
            if let Some(s) = p.sending.as_mut() {
                s.video.force_keyframe();
            }
        }
        Event::MediaData(d) => {
            let mut s = stats.lock().expect("stats lock");
            match d.params.spec().codec {
                Codec::Opus => {
                    if let Some(stamp) = parse_opus_payload(&d.data) {
                        s.audio_in.insert(stamp.seq);
                    }
                }
                Codec::Vp8 => {
                    let info = parse_vp8_frame(&d.data);
                    if let Some(stamp) = info.and_then(|i| i.stamp) {
                        let fresh = s.video_in.insert(stamp.seq);
                        if fresh && d.is_keyframe() {
                            s.keyframes_in += 1;
                        }
                    }
                }
                _ => {}
            }
        }
        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => p.rtc.disconnect(),
        _ => {}
    }
}

/// For a connected WHEP peer, write every frame whose due time has passed (draining after
/// each write, as str0m requires).
fn write_due_media(
    p: &mut Peer,
    now: Instant,
    socket: &UdpSocket,
    stats: &Mutex<EndpointStats>,
    send_for: Duration,
) {
    let Some(s) = p.sending.as_mut() else {
        return;
    };
    if now >= s.until {
        p.done = true;
        return;
    }
    let mut frames: Vec<(MediaKind, MediaFrame, MediaTime)> = Vec::new();
    while s.start + Duration::from_millis(20) * s.audio_sent <= now {
        let f = s.audio.next_frame();
        let t = MediaTime::new(f.seq * 960, Frequency::FORTY_EIGHT_KHZ);
        frames.push((MediaKind::Audio, f, t));
        s.audio_sent += 1;
    }
    while s.start + s.video.frame_duration() * s.video_sent <= now {
        let f = s.video.next_frame();
        let t = MediaTime::new(f.seq * 3000, Frequency::NINETY_KHZ);
        frames.push((MediaKind::Video, f, t));
        s.video_sent += 1;
    }
    for (kind, frame, time) in frames {
        if kind == MediaKind::Video && frame.seq == 0 {
            continue; // "joined mid-stream": see module docs
        }
        let Some(&(mid, _)) = p.mids.iter().find(|(_, k)| *k == kind) else {
            continue;
        };
        let Some(writer) = p.rtc.writer(mid) else {
            continue;
        };
        let want = if kind == MediaKind::Audio {
            Codec::Opus
        } else {
            Codec::Vp8
        };
        let Some(pt) = writer
            .payload_params()
            .find(|pp| pp.spec().codec == want)
            .map(|pp| pp.pt())
        else {
            continue;
        };
        let written = writer.write(pt, now, time, frame.data.to_vec()).is_ok();
        if written {
            let mut st = stats.lock().expect("stats lock");
            match kind {
                MediaKind::Audio => st.audio_out += 1,
                _ => st.video_out += 1,
            }
        }
        drain(p, socket, stats, send_for);
    }
}

/// For a WHIP peer, send the one scheduled PLI on its video mid.
fn request_keyframe_if_due(
    p: &mut Peer,
    now: Instant,
    socket: &UdpSocket,
    stats: &Mutex<EndpointStats>,
    send_for: Duration,
) {
    if p.pli_at.is_none_or(|t| t > now) {
        return;
    }
    p.pli_at = None;
    let Some(&(mid, _)) = p.mids.iter().find(|(_, k)| *k == MediaKind::Video) else {
        return;
    };
    let Some(mut writer) = p.rtc.writer(mid) else {
        return;
    };
    if writer
        .request_keyframe(None, KeyframeRequestKind::Pli)
        .is_ok()
    {
        stats.lock().expect("stats lock").keyframe_requests_out += 1;
    }
    drain(p, socket, stats, send_for);
}
