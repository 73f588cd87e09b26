//! Ingest from classroom hardware: RTMP push (recording hosts, hardware encoders, OBS).
//!
//! ```text
//! encoder ── RTMP (TCP) ──► rtmp: handshake, chunks, publish (rml_rtmp)
//!     FLV tags ──► flv: AVC configuration, access units → Annex B; AAC config, frames
//!                  aac: AAC-LC → mono 48 kHz → Opus (20 ms)
//!     ──► bridge: a WebRTC publisher (str0m, H.264 as sent + Opus) that joins the room
//!         through the WHIP door with the stream key's room link, over UDP on this host
//! ```
//!
//! The bridge is a WHIP client inside the server: the room, the attendance, the removal list,
//! token expiry and the per-link limits treat an RTMP encoder exactly like any WHIP encoder of
//! that link, and the media path does not know it exists. Video is never transcoded: H.264
//! goes through as the encoder made it, so streams browsers cannot play (B-frames, High 10 and
//! 4:2:2/4:4:4 profiles, other codecs) are refused with a named error.

mod aac;
mod bridge;
mod flv;
mod rtmp;

pub use rtmp::{RtmpListener, spawn};

/// Why an RTMP stream was refused or ended.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("malformed stream: {0}")]
    Malformed(&'static str),
    #[error("video codec id {0} is not H.264 (AVC); publish H.264")]
    UnsupportedVideo(u8),
    #[error("audio format {0} is not AAC; publish AAC")]
    UnsupportedAudio(u8),
    #[error("H.264 profile {0} cannot be decoded by browsers; use Baseline, Main or High")]
    UnsupportedProfile(u8),
    #[error(
        "the stream has B-frames (composition offset {0} ms), which WebRTC players cannot \
         reorder; set the encoder to 0 B-frames (x264: -bf 0, OBS: bframes=0)"
    )]
    BFrames(i32),
    #[error("AAC configuration not supported: {0}")]
    UnsupportedAacConfig(String),
    #[error("AAC frame: {0}")]
    AacDecode(String),
    #[error("Opus encoder: {0}")]
    Opus(String),
    #[error("stream key: {0}")]
    BadStreamKey(&'static str),
    #[error("refused by the room ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("WebRTC: {0}")]
    WebRtc(String),
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error("RTMP protocol: {0}")]
    Protocol(String),
}

impl IngestError {
    /// A short name for logs and counters.
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::Malformed(_) => "malformed",
            IngestError::UnsupportedVideo(_) => "unsupportedVideo",
            IngestError::UnsupportedAudio(_) => "unsupportedAudio",
            IngestError::UnsupportedProfile(_) => "unsupportedProfile",
            IngestError::BFrames(_) => "bFrames",
            IngestError::UnsupportedAacConfig(_) => "unsupportedAac",
            IngestError::AacDecode(_) => "aacDecode",
            IngestError::Opus(_) => "opus",
            IngestError::BadStreamKey(_) => "badStreamKey",
            IngestError::Refused { .. } => "refused",
            IngestError::WebRtc(_) => "webrtc",
            IngestError::Io(_) => "io",
            IngestError::Protocol(_) => "protocol",
        }
    }
}

/// RTMP counters for `/metrics`.
#[derive(Debug, Default)]
pub struct IngestMetrics {
    publishing: std::sync::atomic::AtomicU64,
    started: std::sync::atomic::AtomicU64,
    /// Streams refused or ended by an error, by `IngestError::code` (a fixed set of names).
    ended_by: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl IngestMetrics {
    pub(crate) fn started(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.started.fetch_add(1, Relaxed);
        self.publishing.fetch_add(1, Relaxed);
    }

    pub(crate) fn stopped(&self, error: Option<&IngestError>) {
        use std::sync::atomic::Ordering::Relaxed;
        self.publishing.fetch_sub(1, Relaxed);
        if let Some(e) = error {
            let mut m = self.ended_by.lock().unwrap_or_else(|p| p.into_inner());
            *m.entry(e.code()).or_default() += 1;
        }
    }

    pub fn write(&self, w: &mut crate::metrics::text::Writer) {
        use crate::metrics::text::Kind;
        use std::sync::atomic::Ordering::Relaxed;
        w.single(
            "ketang_rtmp_connections",
            Kind::Gauge,
            "RTMP connections open now (handshaking or publishing).",
            self.publishing.load(Relaxed) as f64,
        );
        w.single(
            "ketang_rtmp_connections_total",
            Kind::Counter,
            "RTMP connections accepted.",
            self.started.load(Relaxed) as f64,
        );
        let m = self.ended_by.lock().unwrap_or_else(|p| p.into_inner());
        let f = w.family(
            "ketang_rtmp_errors_total",
            Kind::Counter,
            "RTMP streams refused or ended by an error, by reason (bFrames, unsupportedProfile, refused…).",
        );
        for (code, n) in m.iter() {
            f.sample("ketang_rtmp_errors_total", &[("reason", code)], *n as f64);
        }
    }
}
