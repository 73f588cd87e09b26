//! `Packet`: what the packet path needs of one published RTP packet, cheap to keep.
//!
//! str0m's `RtpPacket` cannot be cloned; this view can (the payload is shared), so a layer can
//! hold its latest keyframe and what followed it for subscribers that start a moment later
//! (`forward/recent.rs`).

use std::sync::Arc;
use std::time::Instant;

use str0m::format::PayloadParams;
use str0m::rtp::VideoOrientation;

use crate::effects::Forward;
use crate::ids::TrackId;

#[derive(Debug, Clone)]
pub(crate) struct Packet {
    pub track: TrackId,
    pub params: PayloadParams,
    /// Extended incoming sequence number.
    pub seq: u64,
    pub ts: u32,
    pub marker: bool,
    pub payload: Arc<[u8]>,
    /// The header extensions that still hold after forwarding.
    pub audio_level: Option<i8>,
    pub voice_activity: Option<bool>,
    pub video_orientation: Option<VideoOrientation>,
    /// When it arrived (for a replayed packet: when it was replayed).
    pub arrival: Instant,
}

impl Packet {
    pub fn of(f: &Forward) -> Self {
        let h = &f.packet.header;
        Packet {
            track: f.track,
            params: f.params,
            seq: *f.packet.seq_no,
            ts: h.timestamp,
            marker: h.marker,
            payload: f.packet.payload.clone(),
            audio_level: h.ext_vals.audio_level,
            voice_activity: h.ext_vals.voice_activity,
            video_orientation: h.ext_vals.video_orientation,
            arrival: f.packet.timestamp,
        }
    }
}
