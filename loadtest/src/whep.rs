//! WHEP viewer: plays a room's teacher media like a student's browser and measures it.
//!
//! Data flow:
//!
//! ```text
//! SFU ──UDP──▶ webrtc-rs driver ──on_track──▶ one tokio task per remote track
//!                                              │ track.poll() → OnRtpPacket
//!                                              ▼
//!                         Shared { audio, video: Mutex<ReceiveAccumulator> } ──▶ stats()
//! ```
//!
//! [`WhepViewer::connect`] offers two `recvonly` transceivers (audio, video), runs the WHEP
//! exchange against `…/whep/{room}` (see the private `signaling` module) and waits until connected.
//! Tracks may appear later (the teacher joins after the viewer); their tasks start whenever
//! webrtc-rs fires `on_track`.
//!
//! Like a browser, the viewer asks for a keyframe (RTCP PLI) when a video track starts and
//! repeats it until one arrives, so that it can start decoding mid-stream; the SFU forwards
//! that request to the publisher.

use crate::error::ClientError;
use crate::media::{MediaKind, now_unix_micros};
use crate::signaling::{
    self, ClientOptions, PcSetup, TrackCallback, build_peer_connection, parse_url,
};
use crate::stats::{DEFAULT_MAX_LATENCY_SAMPLES, ReceiveAccumulator, ReceiveStats};
use reqwest::Url;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_H264;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use serde::Serialize;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};

/// Give up re-requesting the first keyframe after this many PLIs; the publisher may simply
/// be absent, and the SFU will send a keyframe on its own when one arrives.
const MAX_INITIAL_PLIS: u32 = 30;

/// Options of [`WhepViewer::connect`].
#[derive(Debug, Clone)]
pub struct WhepOptions {
    /// Network and timeouts.
    pub client: ClientOptions,
    /// Interval of PLIs sent until the first video keyframe arrives (default 1 s); `None`
    /// never asks for keyframes.
    pub keyframe_request_interval: Option<Duration>,
    /// Cap on stored latency samples per kind.
    pub max_latency_samples: usize,
}

impl Default for WhepOptions {
    fn default() -> Self {
        WhepOptions {
            client: ClientOptions::default(),
            keyframe_request_interval: Some(Duration::from_secs(1)),
            max_latency_samples: DEFAULT_MAX_LATENCY_SAMPLES,
        }
    }
}

/// Snapshot of everything a viewer received.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WhepStats {
    /// Opus packets.
    pub audio: ReceiveStats,
    /// VP8 packets.
    pub video: ReceiveStats,
    /// Remote tracks announced by webrtc-rs so far.
    pub tracks: u32,
    /// Keyframe requests (PLI) sent.
    pub plis_sent: u32,
}

/// State shared between the viewer handle and its per-track tasks.
struct Shared {
    audio: Mutex<ReceiveAccumulator>,
    video: Mutex<ReceiveAccumulator>,
    tracks: AtomicU32,
    plis: AtomicU32,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn acc(&self, kind: MediaKind) -> MutexGuard<'_, ReceiveAccumulator> {
        let m = match kind {
            MediaKind::Audio => &self.audio,
            MediaKind::Video => &self.video,
        };
        // A panic while holding the lock leaves plain counters behind; keep using them.
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push_task(&self, task: JoinHandle<()>) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }
}

/// A connected WHEP session collecting receive statistics.
pub struct WhepViewer {
    pc: Arc<dyn PeerConnection>,
    state: tokio::sync::watch::Receiver<RTCPeerConnectionState>,
    http: reqwest::Client,
    location: Url,
    token: String,
    http_timeout: Duration,
    shared: Arc<Shared>,
    closed: bool,
    answered_us: u64,
    links: Vec<String>,
}

impl WhepViewer {
    /// Create the peer connection, POST a recvonly audio+video offer to `url`
    /// (`…/whep/{room}`) with bearer `token`, apply the answer and wait until connected.
    pub async fn connect(
        url: &str,
        token: &str,
        opts: WhepOptions,
    ) -> Result<WhepViewer, ClientError> {
        let url = parse_url(url)?;
        let http = signaling::http_client(&opts.client)?;
        let shared = Arc::new(Shared {
            audio: Mutex::new(ReceiveAccumulator::new(
                MediaKind::Audio,
                opts.max_latency_samples,
            )),
            video: Mutex::new(ReceiveAccumulator::new(
                MediaKind::Video,
                opts.max_latency_samples,
            )),
            tracks: AtomicU32::new(0),
            plis: AtomicU32::new(0),
            tasks: Mutex::new(Vec::new()),
        });
        let on_track: TrackCallback = {
            let shared = Arc::clone(&shared);
            let pli_interval = opts.keyframe_request_interval;
            Arc::new(move |track: Arc<dyn TrackRemote>| {
                // The callback runs on the driver task: hand the endless poll loop to tokio.
                let task = tokio::spawn(read_track(track, Arc::clone(&shared), pli_interval));
                shared.push_task(task);
            })
        };
        let setup = PcSetup {
            on_track: Some(on_track),
            forward_keyframe_requests: false,
            simulcast_extensions: false,
            video_codecs: None,
        };
        let mut parts = build_peer_connection(&opts.client, setup).await?;
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            let init = RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                streams: vec![],
                send_encodings: vec![],
            };
            if let Err(e) = parts.pc.add_transceiver_from_kind(kind, Some(init)).await {
                let _ = parts.pc.close().await;
                return Err(e.into());
            }
        }
        let (location, answered_us) =
            signaling::establish(&mut parts, &http, &url, token, &opts.client).await?;
        Ok(WhepViewer {
            pc: parts.pc,
            state: parts.state,
            http,
            location,
            token: token.to_owned(),
            http_timeout: opts.client.http_timeout,
            shared,
            closed: false,
            answered_us,
            links: parts.links,
        })
    }

    /// When the WHEP answer arrived and was applied, microseconds since the UNIX epoch (as
    /// the receive statistics' arrival times).
    pub fn answered_at_us(&self) -> u64 {
        self.answered_us
    }

    /// The answer's `Link` headers (the server's ICE servers, RFC 9725 §4.6).
    pub fn links(&self) -> &[String] {
        &self.links
    }

    /// The session URL from the `Location` header, resolved against the POST URL.
    pub fn location(&self) -> &Url {
        &self.location
    }

    /// Current peer-connection state.
    pub fn connection_state(&self) -> RTCPeerConnectionState {
        *self.state.borrow()
    }

    /// Snapshot of the receive statistics.
    pub fn stats(&self) -> WhepStats {
        WhepStats {
            audio: self.shared.acc(MediaKind::Audio).snapshot(),
            video: self.shared.acc(MediaKind::Video).snapshot(),
            tracks: self.shared.tracks.load(Ordering::Relaxed),
            plis_sent: self.shared.plis.load(Ordering::Relaxed),
        }
    }

    /// Raw one-way latency samples of one kind, microseconds.
    pub fn latency_samples(&self, kind: MediaKind) -> Vec<i64> {
        self.shared.acc(kind).latency_samples().to_vec()
    }

    /// Poll [`stats`](Self::stats) every 50 ms until `done` holds or `timeout` passes.
    /// Returns the last snapshot and whether `done` held — so a test can print what it got.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&WhepStats) -> bool,
    ) -> (WhepStats, bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.stats();
            if done(&stats) {
                return (stats, true);
            }
            if Instant::now() >= deadline {
                return (stats, false);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Receive for `duration`, then return the statistics.
    pub async fn run_for(&self, duration: Duration) -> WhepStats {
        tokio::time::sleep(duration).await;
        self.stats()
    }

    /// `DELETE` the session and close the peer connection (closed even if the DELETE fails;
    /// the DELETE error is returned). Statistics gathered so far are returned on success.
    pub async fn close(mut self) -> Result<WhepStats, ClientError> {
        self.closed = true;
        let stats = self.stats();
        let deleted =
            signaling::delete_session(&self.http, &self.location, &self.token, self.http_timeout)
                .await;
        let closed = self.pc.close().await;
        self.abort_tasks();
        deleted?;
        closed?;
        Ok(stats)
    }

    fn abort_tasks(&self) {
        let tasks =
            std::mem::take(&mut *self.shared.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            t.abort();
        }
    }
}

impl Drop for WhepViewer {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // Not closed explicitly: stop the track tasks and the driver in the background
        // (the server session is not DELETEd; that needs an await).
        self.abort_tasks();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let pc = Arc::clone(&self.pc);
            handle.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}

/// Per-track task: account every RTP packet until the track ends.
async fn read_track(
    track: Arc<dyn TrackRemote>,
    shared: Arc<Shared>,
    pli_interval: Option<Duration>,
) {
    shared.tracks.fetch_add(1, Ordering::Relaxed);
    let kind = match track.kind().await {
        RtpCodecKind::Audio => MediaKind::Audio,
        RtpCodecKind::Video => MediaKind::Video,
        _ => return,
    };
    let ssrcs = track.ssrcs().await;
    tracing::debug!(?kind, ?ssrcs, "remote track");
    if kind == MediaKind::Video
        && let Some(interval) = pli_interval
    {
        let task = tokio::spawn(request_first_keyframe(
            Arc::clone(&track),
            Arc::clone(&shared),
            interval,
        ));
        shared.push_task(task);
    }
    let mut codec_known = kind == MediaKind::Audio;
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(pkt) => {
                let arrival = now_unix_micros();
                if !codec_known {
                    codec_known = true;
                    let h264 = track
                        .codec(pkt.header.ssrc)
                        .await
                        .is_some_and(|c| c.mime_type.eq_ignore_ascii_case(MIME_TYPE_H264));
                    shared.acc(kind).set_h264(h264);
                }
                shared.acc(kind).on_packet(
                    pkt.header.ssrc,
                    pkt.header.sequence_number,
                    &pkt.payload,
                    arrival,
                );
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

/// Send PLIs every `interval` until a keyframe has been counted, the track is gone, or
/// [`MAX_INITIAL_PLIS`] were sent.
async fn request_first_keyframe(
    track: Arc<dyn TrackRemote>,
    shared: Arc<Shared>,
    interval: Duration,
) {
    for _ in 0..MAX_INITIAL_PLIS {
        if shared.acc(MediaKind::Video).keyframes() > 0 {
            return;
        }
        let Some(media_ssrc) = track.ssrcs().await.first().copied() else {
            return;
        };
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        if track.write_rtcp(vec![Box::new(pli)]).await.is_err() {
            return;
        }
        shared.plis.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(interval).await;
    }
}
