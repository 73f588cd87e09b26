//! The packet path: one published RTP packet written to one subscriber.
//!
//! Per packet and subscriber: the `LayerSelector` decides, the `Rewriter` maps sequence number,
//! timestamp and VP8 picture id, the payload (shared, not copied) goes to str0m's `StreamTx`
//! with `write_rtp`, and the subscriber is drained so the SRTP datagram is ready to send.
//! NACKs from the subscriber are answered by str0m from its send buffer (`nackable`).

use str0m::media::MediaKind;
use str0m::rtp::{ExtensionValues, RtpWrite, Vp8Patch, Vp8PatchError};

use crate::effects::{Effects, Forward};
use crate::keyframe::PayloadInfo;
use crate::layer::Selection;
use crate::peer::Peer;
use crate::rewrite::{Rewritten, SourceFields};
use crate::role::TrackKind;
use crate::subscription::SubState;

/// What happened to a packet at one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ForwardResult {
    Sent,
    Dropped,
    /// Dropped; the subscriber's target layer (the index) needs a keyframe.
    NeedKeyframe(usize),
}

impl Peer {
    pub(crate) fn forward(
        &mut self,
        f: &Forward,
        layer: usize,
        best_layer: Option<usize>,
        info: &PayloadInfo,
        fx: &mut Effects,
    ) -> ForwardResult {
        let Some(sub) = self.subs.get_mut(&f.track) else {
            return ForwardResult::Dropped;
        };
        let SubState::Open(mid) = sub.state else {
            return ForwardResult::Dropped;
        };
        if !sub.active {
            return ForwardResult::Dropped;
        }
        // Until bandwidth allocation decides per subscriber, everyone gets the best layer the
        // publisher sends.
        if sub.selector.target() != best_layer {
            sub.selector.set_target(best_layer);
        }
        let new_segment = match sub.selector.select(layer, info.keyframe_start) {
            Selection::Forward { new_segment } => new_segment,
            Selection::Drop => return ForwardResult::Dropped,
            Selection::DropNeedKeyframe => {
                return ForwardResult::NeedKeyframe(sub.selector.target().unwrap_or(layer));
            }
        };
        let kind = sub.info.kind;
        let Some(out) = self.outs.get_mut(&mid) else {
            return ForwardResult::Dropped;
        };
        let Some(ssrc) = out.ssrc else {
            return ForwardResult::Dropped;
        };
        let Some(pt) = out.map_pt(&self.rtc, mid, &f.params) else {
            return ForwardResult::Dropped;
        };
        let header = &f.packet.header;
        let src = SourceFields {
            seq: *f.packet.seq_no,
            ts: header.timestamp,
            arrival: f.packet.timestamp,
            picture_id: info.vp8.and_then(|d| d.picture_id()),
            tl0: info.vp8.and_then(|d| d.tl0_pic_idx()),
        };
        let Some(rw) = out.rewriter.rewrite(src, new_segment) else {
            return ForwardResult::Dropped;
        };
        let exts = ExtensionValues {
            audio_level: header.ext_vals.audio_level,
            voice_activity: header.ext_vals.voice_activity,
            video_orientation: header.ext_vals.video_orientation,
            ..Default::default()
        };
        let mut write = RtpWrite::new(
            pt,
            rw.seq.into(),
            rw.ts,
            f.packet.timestamp,
            f.packet.payload.clone(),
        )
        .marker(header.marker)
        .ext_vals(exts)
        .nackable(kind == TrackKind::Video);
        if let Some(patch) = info.vp8.and_then(|d| vp8_patch(&d, &rw)) {
            write = write.vp8_patch(patch);
        }
        let written = match self.rtc.direct_api().stream_tx(&ssrc) {
            Some(tx) => {
                tx.write_rtp(write);
                true
            }
            None => false,
        };
        if !written {
            return ForwardResult::Dropped;
        }
        self.drain(fx);
        ForwardResult::Sent
    }
}

/// The VP8 descriptor patch for rewritten picture ids. A publisher using 7-bit picture ids
/// keeps them 7-bit (the offset arithmetic is consistent modulo 2^7 as well).
fn vp8_patch(d: &str0m::rtp::Vp8Descriptor, rw: &Rewritten) -> Option<Vp8Patch> {
    let pic = rw.picture_id?;
    let build = |p: u16| {
        let mut b = d.patch().picture_id(p);
        if let Some(t) = rw.tl0 {
            b = b.tl0_pic_idx(t);
        }
        b.build()
    };
    match build(pic) {
        Ok(p) => Some(p),
        Err(Vp8PatchError::PictureIdTooLarge) => build(pic & 0x7f).ok(),
        Err(_) => None,
    }
}

/// The str0m media kind of a track kind.
pub(crate) fn media_kind(kind: TrackKind) -> MediaKind {
    match kind {
        TrackKind::Audio => MediaKind::Audio,
        TrackKind::Video => MediaKind::Video,
    }
}

/// The track kind of a str0m media kind.
pub(crate) fn track_kind(kind: MediaKind) -> TrackKind {
    match kind {
        MediaKind::Audio => TrackKind::Audio,
        MediaKind::Video => TrackKind::Video,
    }
}
