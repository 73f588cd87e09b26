//! Sending synthetic media on a webrtc-rs peer connection, shared by the WHIP publisher
//! ([`crate::WhipPublisher`]) and the WebSocket signaling client ([`crate::ws::WsClient`]).
//!
//! Data flow:
//!
//! ```text
//! OpusSource ─────────frame─▶ packetizer (audio SSRC) ────────────RTP─▶ TrackLocalStaticRTP
//! Vp8Source × layers ─frame─▶ packetizer per layer (SSRC, rid) ───RTP─▶ TrackLocalStaticRTP
//!   (media.rs, one per rid,   (counts packets/bytes, also into       ──▶ webrtc-rs driver
//!    lockstep frame counters)  the run's LiveCounters)                   ──UDP──▶ SFU
//! ```
//!
//! [`MediaSender::add`] adds one `sendonly` transceiver per kind before the offer is made;
//! [`MediaSender::bind`] reads what the answer negotiated (payload type, header extension ids,
//! mid) once connected; [`MediaSender::run`] then paces frames on an absolute schedule (frame
//! `i` is due at `start + i·period`) until a deadline or a stop signal.
//!
//! **Simulcast**: with several [`VideoLayer`]s the video track carries one encoding per layer,
//! each with its own `rid` and SSRC, so webrtc-rs writes `a=rid:… send` and `a=simulcast:send`
//! lines (no `a=ssrc` lines). Every video packet then carries the `sdes:mid` and
//! `sdes:rtp-stream-id` header extensions so the SFU can tell the layers apart. The layers are
//! generated in lockstep (one frame of each per tick, same frame counter), so a subscriber
//! switched between layers sees one continuous frame sequence.
//!
//! Like a browser, the sender answers keyframe requests (PLI/FIR): a small interceptor (see
//! `signaling`) lets them through to the video track, a watcher task flags the requested
//! layer (by media SSRC; all layers if unknown) and the pump makes its next frame a keyframe.

use crate::clip::{Clip, ClipCodec, ClipSource};
use crate::error::ClientError;
use crate::live::LiveCounters;
use crate::media::{MediaFrame, OpusConfig, OpusSource, Vp8Config, Vp8Source};
use crate::signaling::{VideoCodecs, h264_codec, opus_codec, vp8_codec};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::packetizer::{Packetizer, new_packetizer};
use rtc::rtp::sequence::new_random_sequencer;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::shared::marshal::MarshalSize;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::PeerConnection;
use webrtc::rtp_transceiver::RtpTransceiver;

/// The MTU webrtc-rs' own sample track packetizes to; kept equal so counts match what a
/// `TrackLocalStaticSample` would send.
const RTP_OUTBOUND_MTU: usize = 1200;

/// RTP header extension carrying the m-line's mid (RFC 8843).
pub(crate) const MID_EXTENSION_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
/// RTP header extension carrying the simulcast layer's rid (RFC 8852).
pub(crate) const RID_EXTENSION_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";

/// One video encoding: a simulcast layer (`rid` set) or the only stream (`rid` = `None`).
#[derive(Debug, Clone)]
pub struct VideoLayer {
    /// RTP stream id, e.g. `q`, `h`, `f`; `None` for a single-layer track.
    pub rid: Option<String>,
    /// Frame sizes, rate and keyframe interval of this layer.
    pub vp8: Vp8Config,
}

impl VideoLayer {
    /// One non-simulcast layer.
    pub fn single(vp8: Vp8Config) -> Vec<VideoLayer> {
        vec![VideoLayer { rid: None, vp8 }]
    }

    /// Three simulcast layers `q`, `h`, `f` (320×180, 640×360, 1280×720) at the given bitrates
    /// in bit/s, sharing `template`'s frame rate and keyframe interval.
    pub fn simulcast(template: &Vp8Config, bitrates_bps: [u32; 3]) -> Vec<VideoLayer> {
        let dims = [(320, 180), (640, 360), (1280, 720)];
        ["q", "h", "f"]
            .iter()
            .zip(bitrates_bps)
            .zip(dims)
            .map(|((rid, bitrate_bps), (width, height))| VideoLayer {
                rid: Some((*rid).to_owned()),
                vp8: Vp8Config {
                    bitrate_bps,
                    width,
                    height,
                    ..template.clone()
                },
            })
            .collect()
    }
}

/// What a [`MediaSender`] publishes.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Opus settings; `None` publishes no audio m-line.
    pub audio: Option<OpusConfig>,
    /// Video layers; empty publishes no video m-line.
    pub video: Vec<VideoLayer>,
    /// Send this clip (one layer, its own codec and rate) instead of synthetic VP8; `video`
    /// then only says whether there is video (non-empty) and its rid.
    pub clip: Option<Clip>,
    /// Real 20 ms Opus packets to send in a loop instead of synthetic ones (with `audio`).
    pub audio_packets: Option<Arc<[bytes::Bytes]>>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            audio: Some(OpusConfig::default()),
            video: VideoLayer::single(Vp8Config::default()),
            clip: None,
            audio_packets: None,
        }
    }
}

impl MediaConfig {
    /// The video codecs the peer connection must offer for this media, if not the
    /// client's default.
    pub(crate) fn video_codecs(&self) -> Option<VideoCodecs> {
        self.clip.as_ref().map(|c| match c.codec() {
            ClipCodec::H264 => VideoCodecs::H264,
        })
    }
}

/// One video encoding's frames: synthetic VP8 or a looping clip.
enum VideoSource {
    Vp8(Vp8Source),
    Clip(ClipSource),
}

impl VideoSource {
    fn force_keyframe(&mut self) {
        match self {
            VideoSource::Vp8(s) => s.force_keyframe(),
            VideoSource::Clip(s) => s.force_keyframe(),
        }
    }

    fn frame_duration(&self) -> Duration {
        match self {
            VideoSource::Vp8(s) => s.frame_duration(),
            VideoSource::Clip(s) => s.frame_duration(),
        }
    }

    fn next_frame(&mut self) -> MediaFrame {
        match self {
            VideoSource::Vp8(s) => s.next_frame(),
            VideoSource::Clip(s) => s.next_frame(),
        }
    }
}

/// What one kind sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindSendStats {
    /// Frames generated and packetized (per layer: a simulcast tick counts once per layer).
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

/// Result of one sending run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SendReport {
    /// Opus.
    pub audio: KindSendStats,
    /// VP8 (all layers).
    pub video: KindSendStats,
    /// RTCP packets with PLI/FIR received for the video track during the run; each one
    /// turned the next frame of the requested layer into a keyframe.
    pub keyframe_requests: u64,
    /// Wall time the run took, seconds.
    pub elapsed_secs: f64,
}

/// When a sending run ends: at `deadline`, or when `stop` turns true, whichever comes first.
#[derive(Debug, Clone)]
pub struct StopWhen {
    /// Absolute end, if any.
    pub deadline: Option<Instant>,
    /// Stop signal, if any.
    pub signal: Option<watch::Receiver<bool>>,
}

impl StopWhen {
    fn stopped(&self, due: Instant) -> bool {
        self.deadline.is_some_and(|d| due >= d) || self.signal.as_ref().is_some_and(|s| *s.borrow())
    }

    /// Sleep until `due`; false if the stop signal fired first.
    async fn sleep_until(&mut self, due: Instant) -> bool {
        let sleep = tokio::time::sleep_until(due.into());
        match self.signal.as_mut() {
            Some(sig) => {
                let stopped = tokio::select! {
                    _ = sleep => false,
                    _ = sig.wait_for(|v| *v) => true,
                };
                !stopped && !*sig.borrow()
            }
            None => {
                sleep.await;
                true
            }
        }
    }
}

/// One encoding of an outgoing track: its SSRC, rid and packetizer.
struct Encoding {
    rid: Option<String>,
    ssrc: u32,
    packetizer: Option<Box<dyn Packetizer>>,
}

/// One outgoing transceiver: our packetizers feeding a webrtc-rs RTP track.
struct Outgoing {
    track: Arc<TrackLocalStaticRTP>,
    transceiver: Arc<dyn RtpTransceiver>,
    codec: RTCRtpCodecParameters,
    payload_type: u8,
    encodings: Vec<Encoding>,
    /// Set by `bind` for simulcast tracks: (mid extension id, mid, rid extension id).
    extensions: Option<(u8, bytes::Bytes, u8)>,
}

impl Outgoing {
    async fn add(
        pc: &Arc<dyn PeerConnection>,
        kind: RtpCodecKind,
        codec: RTCRtpCodecParameters,
        stream_id: &str,
        rids: &[Option<String>],
    ) -> Result<Outgoing, ClientError> {
        let encodings: Vec<Encoding> = rids
            .iter()
            .map(|rid| Encoding {
                rid: rid.clone(),
                ssrc: rand::random::<u32>(),
                packetizer: None,
            })
            .collect();
        let codings = encodings
            .iter()
            .map(|e| RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    rid: e.rid.clone().unwrap_or_default(),
                    ssrc: Some(e.ssrc),
                    ..Default::default()
                },
                active: true,
                codec: codec.rtp_codec.clone(),
                ..Default::default()
            })
            .collect();
        let label = format!("ketang-loadtest-{kind}");
        let track =
            MediaStreamTrack::new(stream_id.to_owned(), label.clone(), label, kind, codings);
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
            payload_type: 0,
            encodings,
            extensions: None,
        })
    }

    /// Read the negotiated payload type (and, for simulcast, the extension ids and mid) and
    /// set up the packetizers.
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
        if self.encodings.iter().any(|e| e.rid.is_some()) {
            let ext_id = |uri: &str| {
                params
                    .rtp_parameters
                    .header_extensions
                    .iter()
                    .find(|h| h.uri == uri)
                    .map(|h| h.id as u8)
            };
            let mid = self.transceiver.mid().await?.unwrap_or_default();
            match (ext_id(MID_EXTENSION_URI), ext_id(RID_EXTENSION_URI)) {
                (Some(m), Some(r)) => {
                    self.extensions = Some((m, bytes::Bytes::from(mid.into_bytes()), r));
                }
                _ => {
                    return Err(ClientError::Protocol(
                        "simulcast needs the mid and rid header extensions, the answer lacks them"
                            .into(),
                    ));
                }
            }
        }
        for enc in &mut self.encodings {
            enc.packetizer = Some(Box::new(new_packetizer(
                Instant::now(),
                RTP_OUTBOUND_MTU,
                self.payload_type,
                enc.ssrc,
                self.codec.rtp_codec.payloader()?,
                Box::new(new_random_sequencer()),
                self.codec.rtp_codec.clock_rate,
            )));
        }
        Ok(())
    }

    async fn send(
        &mut self,
        layer: usize,
        frame: &MediaFrame,
        stats: &mut KindSendStats,
        live: Option<&LiveCounters>,
    ) {
        let Some(enc) = self.encodings.get_mut(layer) else {
            stats.write_errors += 1;
            return;
        };
        let Some(packetizer) = enc.packetizer.as_mut() else {
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
        let rid = enc.rid.clone().map(|r| bytes::Bytes::from(r.into_bytes()));
        for mut pkt in packets {
            pkt.header.payload_type = self.payload_type;
            if let (Some((mid_id, mid, rid_id)), Some(rid)) = (&self.extensions, &rid) {
                let _ = pkt.header.set_extension(*mid_id, mid.clone());
                let _ = pkt.header.set_extension(*rid_id, rid.clone());
            }
            let len = pkt.payload.len();
            let wire = len + pkt.header.marshal_size();
            match self.track.write_rtp(pkt).await {
                Ok(()) => {
                    stats.packets += 1;
                    stats.bytes += len as u64;
                    if let Some(live) = live {
                        live.on_sent(wire);
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "write_rtp failed");
                    stats.write_errors += 1;
                }
            }
        }
    }
}

/// Keyframe requests of one video track, per layer.
struct KeyframeFlags {
    wanted: Vec<AtomicBool>,
    requests: AtomicU64,
}

/// Synthetic audio and video on one peer connection.
pub struct MediaSender {
    audio: Option<(OpusSource, Outgoing)>,
    video: Option<(Vec<VideoSource>, Outgoing)>,
    flags: Arc<KeyframeFlags>,
    watcher: Option<JoinHandle<()>>,
}

impl MediaSender {
    /// Add the `sendonly` transceivers for `cfg` to `pc` (before the offer is created). Both
    /// tracks share one MediaStream id, as a browser's getUserMedia stream would.
    pub(crate) async fn add(
        pc: &Arc<dyn PeerConnection>,
        cfg: &MediaConfig,
    ) -> Result<MediaSender, ClientError> {
        let stream_id = format!("ketang-loadtest-{:08x}", rand::random::<u32>());
        let audio = match &cfg.audio {
            Some(a) => Some((
                match &cfg.audio_packets {
                    Some(p) => OpusSource::new(a).with_packets(Arc::clone(p)),
                    None => OpusSource::new(a),
                },
                Outgoing::add(pc, RtpCodecKind::Audio, opus_codec(), &stream_id, &[None]).await?,
            )),
            None => None,
        };
        let video = if cfg.video.is_empty() {
            None
        } else {
            let (sources, codec, rids) = match &cfg.clip {
                Some(clip) => {
                    let codec = match clip.codec() {
                        ClipCodec::H264 => h264_codec(),
                    };
                    let rid = cfg.video.first().and_then(|l| l.rid.clone());
                    let source = VideoSource::Clip(ClipSource::new(clip.clone()));
                    (vec![source], codec, vec![rid])
                }
                None => (
                    cfg.video
                        .iter()
                        .map(|l| VideoSource::Vp8(Vp8Source::new(&l.vp8)))
                        .collect(),
                    vp8_codec(),
                    cfg.video.iter().map(|l| l.rid.clone()).collect(),
                ),
            };
            let out = Outgoing::add(pc, RtpCodecKind::Video, codec, &stream_id, &rids).await?;
            Some((sources, out))
        };
        let layers = cfg.video.len().max(1);
        Ok(MediaSender {
            audio,
            video,
            flags: Arc::new(KeyframeFlags {
                wanted: (0..layers).map(|_| AtomicBool::new(false)).collect(),
                requests: AtomicU64::new(0),
            }),
            watcher: None,
        })
    }

    /// The mids of the audio and video transceivers (known once the local offer is set).
    pub(crate) async fn mids(&self) -> (Option<String>, Option<String>) {
        let mut audio = None;
        let mut video = None;
        if let Some((_, out)) = &self.audio {
            audio = out.transceiver.mid().await.ok().flatten();
        }
        if let Some((_, out)) = &self.video {
            video = out.transceiver.mid().await.ok().flatten();
        }
        (audio, video)
    }

    /// After negotiation: read the negotiated parameters and start the keyframe-request
    /// watcher.
    pub(crate) async fn bind(&mut self) -> Result<(), ClientError> {
        if let Some((_, out)) = self.audio.as_mut() {
            out.bind().await?;
        }
        if let Some((_, out)) = self.video.as_mut() {
            out.bind().await?;
            let ssrcs: Vec<u32> = out.encodings.iter().map(|e| e.ssrc).collect();
            self.watcher = Some(tokio::spawn(watch_keyframe_requests(
                Arc::clone(&out.track),
                ssrcs,
                Arc::clone(&self.flags),
            )));
        }
        Ok(())
    }

    /// Keyframe requests received so far.
    pub fn keyframe_requests(&self) -> u64 {
        self.flags.requests.load(Ordering::Relaxed)
    }

    /// Send at real-time pace until `stop`. Frame counters and RTP sequence numbers continue
    /// across calls.
    pub async fn run(&mut self, stop: StopWhen, live: Option<&LiveCounters>) -> SendReport {
        let start = Instant::now();
        let requests_before = self.keyframe_requests();
        let flags = Arc::clone(&self.flags);
        let (audio, video) = (&mut self.audio, &mut self.video);
        let audio = async {
            let mut stats = KindSendStats::default();
            if let Some((src, out)) = audio.as_mut() {
                let mut stop = stop.clone();
                let period = src.frame_duration();
                let mut i = 0;
                while due(&mut stop, start, period, &mut i).await {
                    let frame = src.next_frame();
                    out.send(0, &frame, &mut stats, live).await;
                }
            }
            stats
        };
        let video = async {
            let mut stats = KindSendStats::default();
            if let Some((sources, out)) = video.as_mut() {
                let mut stop = stop.clone();
                let period = sources
                    .first()
                    .map_or(Duration::from_millis(33), |s| s.frame_duration());
                let mut i = 0;
                while due(&mut stop, start, period, &mut i).await {
                    for (layer, src) in sources.iter_mut().enumerate() {
                        let wanted = flags.wanted.get(layer);
                        if wanted.is_some_and(|f| f.swap(false, Ordering::Relaxed)) {
                            src.force_keyframe();
                        }
                        let frame = src.next_frame();
                        out.send(layer, &frame, &mut stats, live).await;
                    }
                }
            }
            stats
        };
        let (audio, video) = tokio::join!(audio, video);
        SendReport {
            audio,
            video,
            keyframe_requests: self.keyframe_requests() - requests_before,
            elapsed_secs: start.elapsed().as_secs_f64(),
        }
    }
}

impl Drop for MediaSender {
    fn drop(&mut self) {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
    }
}

/// Wait for tick `*i` of an absolute schedule (`start + i·period`) and advance `i`; false
/// once `stop` holds. Capped at 24 h, in case a caller gives neither deadline nor signal.
async fn due(stop: &mut StopWhen, start: Instant, period: Duration, i: &mut u32) -> bool {
    let at = start + period * *i;
    *i = i.saturating_add(1);
    if at >= start + Duration::from_secs(24 * 3600) || stop.stopped(at) {
        return false;
    }
    stop.sleep_until(at).await
}

/// Flag keyframe requests (PLI/FIR) for the video track until it is unbound. Only keyframe
/// requests reach the application (see `signaling::KeyframeRequestForwarder`).
async fn watch_keyframe_requests(
    track: Arc<TrackLocalStaticRTP>,
    ssrcs: Vec<u32>,
    flags: Arc<KeyframeFlags>,
) {
    let layer_of = |ssrc: u32| ssrcs.iter().position(|s| *s == ssrc);
    while let Some(event) = track.poll().await {
        let TrackLocalEvent::OnRtcpPacket(packets) = event else {
            continue;
        };
        if packets.is_empty() {
            continue;
        }
        flags.requests.fetch_add(1, Ordering::Relaxed);
        let mut targets: Vec<usize> = Vec::new();
        for p in &packets {
            let any = p.as_any();
            if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                targets.extend(layer_of(pli.media_ssrc));
            } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                targets.extend(fir.fir.iter().filter_map(|e| layer_of(e.ssrc)));
                targets.extend(layer_of(fir.media_ssrc));
            }
        }
        if targets.is_empty() {
            // Unknown SSRC: refresh every layer, as an encoder would.
            targets.extend(0..flags.wanted.len());
        }
        for t in targets {
            if let Some(f) = flags.wanted.get(t) {
                f.store(true, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulcast_layers_are_q_h_f() {
        let layers = VideoLayer::simulcast(&Vp8Config::default(), [150_000, 500_000, 1_500_000]);
        let rids: Vec<_> = layers.iter().map(|l| l.rid.as_deref()).collect();
        assert_eq!(rids, [Some("q"), Some("h"), Some("f")]);
        assert_eq!(layers[2].vp8.bitrate_bps, 1_500_000);
        assert_eq!((layers[0].vp8.width, layers[0].vp8.height), (320, 180));
        assert_eq!(VideoLayer::single(Vp8Config::default())[0].rid, None);
    }
}
