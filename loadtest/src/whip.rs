//! WHIP publisher: pushes synthetic Opus + VP8 into a room like a teacher's browser.
//!
//! Data flow:
//!
//! ```text
//! OpusSource / Vp8Source ──frame──▶ own rtp packetizer ──RTP──▶ TrackLocalStaticRTP
//!        (media.rs)               (counts packets/bytes)        ──▶ webrtc-rs driver ──UDP──▶ SFU
//! ```
//!
//! [`WhipPublisher::connect`] builds the peer connection with two `sendonly` transceivers,
//! runs the WHIP exchange (see the private `signaling` module) and waits until ICE and DTLS are up.
//! [`WhipPublisher::run_for`] then paces frames in real time on an absolute schedule (frame
//! `i` is due at `start + i·period`), so a slow iteration does not slow the stream down.
//!
//! Like a browser, the publisher answers keyframe requests (PLI/FIR) from the SFU: a small
//! interceptor (see `signaling`) lets them through to the video track, a task counts them and
//! the video pump turns the next frame into a keyframe.
//!
//! We packetize ourselves (with the same `rtc` packetizer and 1200-byte MTU that webrtc-rs'
//! `TrackLocalStaticSample` uses) instead of writing samples, because only then do we know
//! how many RTP packets each frame became. Counts are of packets *handed to* webrtc-rs; its
//! driver can still drop one (it logs rather than reports such errors).

use crate::error::ClientError;
use crate::media::{MediaFrame, OpusConfig, OpusSource, Vp8Config, Vp8Source};
use crate::signaling::{
    self, ClientOptions, build_peer_connection, opus_codec, parse_url, vp8_codec,
};
use reqwest::Url;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp::packetizer::{Packetizer, new_packetizer};
use rtc::rtp::sequence::new_random_sequencer;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};
use webrtc::rtp_transceiver::RtpTransceiver;

/// The MTU webrtc-rs' own sample track packetizes to; kept equal so counts match what a
/// `TrackLocalStaticSample` would send.
const RTP_OUTBOUND_MTU: usize = 1200;

/// Options of [`WhipPublisher::connect`].
#[derive(Debug, Clone)]
pub struct WhipOptions {
    /// Network and timeouts.
    pub client: ClientOptions,
    /// Opus settings; `None` publishes no audio m-line.
    pub audio: Option<OpusConfig>,
    /// VP8 settings; `None` publishes no video m-line.
    pub video: Option<Vp8Config>,
}

impl Default for WhipOptions {
    fn default() -> Self {
        WhipOptions {
            client: ClientOptions::default(),
            audio: Some(OpusConfig::default()),
            video: Some(Vp8Config::default()),
        }
    }
}

/// What one kind sent during a [`WhipPublisher::run_for`] call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindSendStats {
    /// Frames generated and packetized.
    pub frames: u64,
    /// RTP packets handed to webrtc-rs.
    pub packets: u64,
    /// RTP payload bytes handed to webrtc-rs.
    pub bytes: u64,
    /// Keyframes among `frames` (always 0 for audio).
    pub keyframes: u64,
    /// Packets webrtc-rs refused (track not bound, connection closed, ...).
    pub write_errors: u64,
}

/// Result of [`WhipPublisher::run_for`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SendReport {
    /// Opus.
    pub audio: KindSendStats,
    /// VP8.
    pub video: KindSendStats,
    /// RTCP packets with PLI/FIR received for the video track during the call; each one
    /// turned the next video frame into a keyframe.
    pub keyframe_requests: u64,
    /// Wall time the call took, seconds.
    pub elapsed_secs: f64,
}

/// One outgoing stream: our packetizer feeding a webrtc-rs RTP track.
struct Outgoing {
    track: Arc<TrackLocalStaticRTP>,
    transceiver: Arc<dyn RtpTransceiver>,
    codec: RTCRtpCodecParameters,
    /// Built after negotiation, when the payload type and SSRC are final.
    packetizer: Option<Box<dyn Packetizer>>,
    payload_type: u8,
}

impl Outgoing {
    async fn add(
        pc: &Arc<dyn PeerConnection>,
        kind: RtpCodecKind,
        codec: RTCRtpCodecParameters,
        stream_id: &str,
    ) -> Result<Outgoing, ClientError> {
        let track = MediaStreamTrack::new(
            stream_id.to_owned(),
            format!("ketang-loadtest-{kind}"),
            format!("ketang-loadtest-{kind}"),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(rand::random::<u32>()),
                    ..Default::default()
                },
                active: true,
                codec: codec.rtp_codec.clone(),
                ..Default::default()
            }],
        );
        let track = Arc::new(TrackLocalStaticRTP::new(track));
        let transceiver = pc
            .add_transceiver_from_track(
                Arc::clone(&track) as Arc<dyn TrackLocal>,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    streams: vec![stream_id.to_owned()],
                    send_encodings: vec![],
                }),
            )
            .await?;
        Ok(Outgoing {
            track,
            transceiver,
            codec,
            packetizer: None,
            payload_type: 0,
        })
    }

    /// Read the negotiated PT and SSRC and set up the packetizer.
    async fn bind(&mut self) -> Result<(), ClientError> {
        let sender = self
            .transceiver
            .sender()
            .await?
            .ok_or_else(|| ClientError::Protocol("transceiver lost its sender".into()))?;
        let params = sender.get_parameters().await?;
        self.payload_type = params
            .rtp_parameters
            .codecs
            .first()
            .map(|c| c.payload_type)
            .ok_or_else(|| ClientError::Protocol("answer accepted no codec for a track".into()))?;
        let ssrc = params
            .encodings
            .first()
            .and_then(|e| e.rtp_coding_parameters.ssrc)
            .ok_or_else(|| ClientError::Protocol("sender has no SSRC".into()))?;
        self.packetizer = Some(Box::new(new_packetizer(
            Instant::now(),
            RTP_OUTBOUND_MTU,
            self.payload_type,
            ssrc,
            self.codec.rtp_codec.payloader()?,
            Box::new(new_random_sequencer()),
            self.codec.rtp_codec.clock_rate,
        )));
        Ok(())
    }

    async fn send(&mut self, frame: &MediaFrame, stats: &mut KindSendStats) {
        let Some(packetizer) = self.packetizer.as_mut() else {
            stats.write_errors += 1;
            return;
        };
        let clock_rate = f64::from(self.codec.rtp_codec.clock_rate);
        let samples = (frame.duration.as_secs_f64() * clock_rate).round() as u32;
        let packets = match packetizer.packetize(Instant::now(), &frame.data, samples) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "packetize failed");
                stats.write_errors += 1;
                return;
            }
        };
        stats.frames += 1;
        stats.keyframes += u64::from(frame.keyframe);
        for mut pkt in packets {
            pkt.header.payload_type = self.payload_type;
            let len = pkt.payload.len() as u64;
            match self.track.write_rtp(pkt).await {
                Ok(()) => {
                    stats.packets += 1;
                    stats.bytes += len;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "write_rtp failed");
                    stats.write_errors += 1;
                }
            }
        }
    }
}

/// A connected WHIP session publishing synthetic media.
pub struct WhipPublisher {
    pc: Arc<dyn PeerConnection>,
    state: tokio::sync::watch::Receiver<RTCPeerConnectionState>,
    http: reqwest::Client,
    location: Url,
    token: String,
    http_timeout: Duration,
    audio: Option<(OpusSource, Outgoing)>,
    video: Option<(Vp8Source, Outgoing)>,
    /// Keyframe requests received so far (written by `watcher`) and already answered.
    keyframe_requests: Arc<AtomicU64>,
    keyframe_requests_handled: u64,
    watcher: Option<JoinHandle<()>>,
    closed: bool,
}

impl WhipPublisher {
    /// Create the peer connection, POST the offer to `url` (`…/whip/{room}`) with bearer
    /// `token`, apply the answer and wait until connected.
    ///
    /// HTTP failures come back as [`ClientError::Http`] with the server's status and body.
    pub async fn connect(
        url: &str,
        token: &str,
        opts: WhipOptions,
    ) -> Result<WhipPublisher, ClientError> {
        let url = parse_url(url)?;
        let http = signaling::http_client(&opts.client)?;
        let mut parts = build_peer_connection(&opts.client, None, true).await?;
        // One MediaStream id for both tracks, as a browser's getUserMedia stream would have.
        let stream_id = format!("ketang-loadtest-{:08x}", rand::random::<u32>());
        let added = async {
            let audio = match &opts.audio {
                Some(cfg) => Some((
                    OpusSource::new(cfg),
                    Outgoing::add(&parts.pc, RtpCodecKind::Audio, opus_codec(), &stream_id).await?,
                )),
                None => None,
            };
            let video = match &opts.video {
                Some(cfg) => Some((
                    Vp8Source::new(cfg),
                    Outgoing::add(&parts.pc, RtpCodecKind::Video, vp8_codec(), &stream_id).await?,
                )),
                None => None,
            };
            Ok::<_, ClientError>((audio, video))
        }
        .await;
        let (mut audio, mut video) = match added {
            Ok(v) => v,
            Err(e) => {
                let _ = parts.pc.close().await;
                return Err(e);
            }
        };
        let location = signaling::establish(&mut parts, &http, &url, token, &opts.client).await?;
        let mut publisher = WhipPublisher {
            pc: Arc::clone(&parts.pc),
            state: parts.state.clone(),
            http,
            location,
            token: token.to_owned(),
            http_timeout: opts.client.http_timeout,
            audio: None,
            video: None,
            keyframe_requests: Arc::new(AtomicU64::new(0)),
            keyframe_requests_handled: 0,
            watcher: None,
            closed: false,
        };
        let bound = async {
            if let Some((_, out)) = audio.as_mut() {
                out.bind().await?;
            }
            if let Some((_, out)) = video.as_mut() {
                out.bind().await?;
            }
            Ok::<_, ClientError>(())
        }
        .await;
        if let Some((_, out)) = video.as_ref() {
            publisher.watcher = Some(tokio::spawn(count_keyframe_requests(
                Arc::clone(&out.track),
                Arc::clone(&publisher.keyframe_requests),
            )));
        }
        publisher.audio = audio;
        publisher.video = video;
        if let Err(e) = bound {
            // Dropping would leave the server session behind; close it first.
            let _ = publisher.close_inner().await;
            return Err(e);
        }
        Ok(publisher)
    }

    /// The session URL from the `Location` header, resolved against the POST URL.
    pub fn location(&self) -> &Url {
        &self.location
    }

    /// Current peer-connection state.
    pub fn connection_state(&self) -> RTCPeerConnectionState {
        *self.state.borrow()
    }

    /// Send media at real-time pace for `duration` and report what was sent per kind.
    ///
    /// Counters (frame stamps, RTP sequence numbers) continue across calls.
    pub async fn run_for(&mut self, duration: Duration) -> SendReport {
        let start = Instant::now();
        let deadline = start + duration;
        // Borrow the two streams separately so both pumps can run concurrently.
        let (audio, video) = (&mut self.audio, &mut self.video);
        let requests = Arc::clone(&self.keyframe_requests);
        let handled = &mut self.keyframe_requests_handled;
        let requests_before = *handled;
        let audio = async {
            match audio.as_mut() {
                Some((src, out)) => {
                    let period = src.frame_duration();
                    pump(out, || src.next_frame(), period, start, deadline).await
                }
                None => KindSendStats::default(),
            }
        };
        let video = async {
            match video.as_mut() {
                Some((src, out)) => {
                    let period = src.frame_duration();
                    let next = || {
                        let total = requests.load(Ordering::Relaxed);
                        if total > *handled {
                            *handled = total;
                            src.force_keyframe();
                        }
                        src.next_frame()
                    };
                    pump(out, next, period, start, deadline).await
                }
                None => KindSendStats::default(),
            }
        };
        let (audio, video) = tokio::join!(audio, video);
        SendReport {
            audio,
            video,
            keyframe_requests: self.keyframe_requests_handled - requests_before,
            elapsed_secs: start.elapsed().as_secs_f64(),
        }
    }

    /// `DELETE` the session and close the peer connection. The connection is closed even if
    /// the DELETE fails; the DELETE error is returned.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.close_inner().await
    }

    async fn close_inner(&mut self) -> Result<(), ClientError> {
        self.closed = true;
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
        let deleted =
            signaling::delete_session(&self.http, &self.location, &self.token, self.http_timeout)
                .await;
        let closed = self.pc.close().await;
        deleted?;
        closed?;
        Ok(())
    }
}

impl Drop for WhipPublisher {
    fn drop(&mut self) {
        // A dropped-but-not-closed connection would keep its driver task running; close it in
        // the background. (The server session is not DELETEd here: that needs an await.)
        if let Some(w) = self.watcher.take() {
            w.abort();
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

/// Generate and send frames of one kind on an absolute schedule until `deadline`.
async fn pump(
    out: &mut Outgoing,
    mut next: impl FnMut() -> MediaFrame,
    period: Duration,
    start: Instant,
    deadline: Instant,
) -> KindSendStats {
    let mut stats = KindSendStats::default();
    for i in 0u32.. {
        let due = start + period * i;
        if due >= deadline {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let frame = next();
        out.send(&frame, &mut stats).await;
    }
    stats
}

/// Count RTCP deliveries carrying PLI/FIR for the video track until it is unbound. Only
/// keyframe requests reach the application (see `signaling::KeyframeRequestForwarder`).
async fn count_keyframe_requests(track: Arc<TrackLocalStaticRTP>, counter: Arc<AtomicU64>) {
    while let Some(event) = track.poll().await {
        if let TrackLocalEvent::OnRtcpPacket(packets) = event
            && !packets.is_empty()
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}
