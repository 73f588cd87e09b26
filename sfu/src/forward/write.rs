//! The packet path: one published RTP packet written to one subscriber.
//!
//! Per packet and subscription: the `LayerSelector` decides, the stream's `Sink` maps sequence
//! number, timestamp and VP8 picture id, the payload (shared, not copied) goes to str0m's `StreamTx`
//! with `write_rtp`, and the subscriber is made due at once: its next timeout round lets str0m's
//! pacer release the SRTP datagram.
//! NACKs from the subscriber are answered by str0m from its send buffer (`nackable`).

use std::time::{Duration, Instant};

use str0m::media::{MediaKind, Pt};
use str0m::rtp::{ExtensionValues, RtpWrite, Vp8Patch, Vp8PatchError};

use crate::bandwidth::downlink::{CONGESTED, DRAINED, Downlink};
use crate::effects::Effects;
use crate::event::{PeerEvent, TrackInfo};
use crate::forward::keyframe::PayloadInfo;
use crate::forward::layer::Selection;
use crate::forward::packet::Packet;
use crate::forward::rewrite::{Rewritten, SourceFields};
use crate::forward::sink::SinkOffer;
use crate::ids::PeerId;
use crate::lesson::role::TrackKind;
use crate::session::peer::Peer;
use crate::session::sdp::Feedback;
use crate::session::subscription::{SubState, Subscription};

/// What happened to a packet at one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ForwardResult {
    Sent,
    Dropped,
    /// Dropped; the subscriber's target layer (the index) needs a keyframe.
    NeedKeyframe(usize),
}

/// What a subscription needs of its peer to send: the connection and its link state.
pub(crate) struct Sender<'a> {
    pub peer: PeerId,
    pub rtc: &'a mut str0m::Rtc,
    pub downlink: &'a mut Downlink,
    /// ICE and DTLS are up.
    pub connected: bool,
}

impl Peer {
    /// Offers a published packet to this peer's subscription of its track. A packet written
    /// makes the peer due now: str0m's pacer holds it until the peer's next timeout round, so
    /// a drain here would only learn that deadline (a poll loop per packet and subscriber);
    /// the round sends it and finds the next deadline.
    pub(crate) fn forward(
        &mut self,
        f: &Packet,
        layer: usize,
        lowest_active: Option<usize>,
        info: &PayloadInfo,
        fx: &mut Effects,
    ) -> ForwardResult {
        let Some(sub) = self.subs.get_mut(&f.track) else {
            return ForwardResult::Dropped;
        };
        let mut tx = Sender {
            peer: self.id,
            rtc: &mut self.rtc,
            downlink: &mut self.downlink,
            connected: self.link.connected,
        };
        let r = sub.forward(&mut tx, f, layer, lowest_active, info, fx);
        if r == ForwardResult::Sent {
            self.next_timeout = self.next_timeout.min(f.arrival);
        }
        r
    }
}

impl Subscription {
    /// One packet of the subscribed track: the layer selector decides, the stream's sink
    /// rewrites it, and it is written to str0m's `StreamTx`.
    pub(crate) fn forward(
        &mut self,
        tx: &mut Sender,
        f: &Packet,
        layer: usize,
        lowest_active: Option<usize>,
        info: &PayloadInfo,
        fx: &mut Effects,
    ) -> ForwardResult {
        let SubState::Open(mid) = self.state else {
            return ForwardResult::Dropped;
        };
        // Nothing before the connection is up (ICE and DTLS): str0m could not send it, yet the
        // selector would count the keyframe as delivered and the picture could only start at
        // the next one. The first packet after connecting asks for a keyframe instead.
        if !self.active || !tx.connected {
            return ForwardResult::Dropped;
        }
        // A new (or resumed) subscription starts on the lowest layer that flows; the bandwidth
        // allocator moves it up within one round (unless it paused it on purpose).
        if self.selector.target().is_none() && !self.alloc_paused {
            self.selector.set_target(lowest_active);
        }
        let kind = self.info.kind;
        let Some(out) = self.out.as_mut() else {
            return ForwardResult::Dropped;
        };
        let Some(ssrc) = out.ssrc else {
            return ForwardResult::Dropped;
        };
        // Before the layer selector: a codec the subscriber cannot decode would otherwise ask
        // the publisher for keyframes nobody can use, and leave a black tile unexplained.
        let Some(pt) = out.map_pt(tx.rtc, mid, &f.params) else {
            if !std::mem::replace(&mut out.mismatch_told, true) {
                tell_codec_mismatch(tx.peer, &self.info, f, fx);
            }
            return ForwardResult::Dropped;
        };
        // Video held in the pacer on a strained link: stop it until the queue drains.
        let queued = paced_delay(tx.rtc, tx.downlink.feedback, kind, ssrc, f);
        if queued > CONGESTED && tx.downlink.strained() {
            self.selector.interrupt();
            // The allocation reacts at once (congestion.rs), not at its next round.
            if tx.downlink.note_queue() {
                fx.allocate.push(tx.peer);
            }
            return ForwardResult::Dropped;
        }
        let new_layer = match self.selector.select(layer, info.keyframe_start) {
            Selection::Forward { new_segment } => new_segment,
            Selection::Drop => return ForwardResult::Dropped,
            Selection::DropNeedKeyframe if queued > DRAINED => return ForwardResult::Dropped,
            Selection::DropNeedKeyframe => {
                return ForwardResult::NeedKeyframe(self.selector.target().unwrap_or(layer));
            }
        };
        let src = SourceFields {
            seq: f.seq,
            ts: f.ts,
            arrival: f.arrival,
            picture_id: info.vp8.and_then(|d| d.picture_id()),
            tl0: info.vp8.and_then(|d| d.tl0_pic_idx()),
        };
        let rw = match out.sink.offer(f.track, info.keyframe_start, new_layer, src) {
            SinkOffer::Write { rw, new_segment } => {
                if new_segment {
                    fx.stats.on_new_segment(kind, rw.seq);
                }
                rw
            }
            SinkOffer::Drop => return ForwardResult::Dropped,
            SinkOffer::NeedKeyframe => return ForwardResult::NeedKeyframe(layer),
        };
        let mut api = tx.rtc.direct_api();
        let Some(stream) = api.stream_tx(&ssrc) else {
            return ForwardResult::Dropped;
        };
        stream.write_rtp(rtp_write(pt, f, info, &rw, kind));
        ForwardResult::Sent
    }
}

/// Tells a subscriber that it cannot decode a publisher's codec (its tile says so), and the
/// publisher who cannot see it.
fn tell_codec_mismatch(subscriber: PeerId, info: &TrackInfo, f: &Packet, fx: &mut Effects) {
    let codec = f.params.spec().codec.to_string();
    let (track, publisher) = (info.track_id, info.peer_id);
    fx.send_to_peer(
        subscriber,
        PeerEvent::CodecMismatch {
            track,
            peer: publisher,
            codec: codec.clone(),
        },
    );
    fx.send_to_peer(
        publisher,
        PeerEvent::ViewerCodecMismatch {
            track,
            viewer: subscriber,
            codec,
        },
    );
}

/// The packet as the subscriber gets it: the rewritten sequence number and timestamp, the
/// publisher's header extensions that still hold, the shared payload and its VP8 patch.
fn rtp_write(pt: Pt, f: &Packet, info: &PayloadInfo, rw: &Rewritten, kind: TrackKind) -> RtpWrite {
    let exts = ExtensionValues {
        audio_level: f.audio_level,
        voice_activity: f.voice_activity,
        video_orientation: f.video_orientation,
        ..Default::default()
    };
    let mut write = RtpWrite::new(pt, rw.seq.into(), rw.ts, f.arrival, f.payload.clone())
        .marker(f.marker)
        .ext_vals(exts)
        .nackable(kind == TrackKind::Video);
    if let Some(patch) = info.vp8.and_then(|d| vp8_patch(&d, rw)) {
        write = write.vp8_patch(patch);
    }
    write
}

/// How long video waits in str0m's pacer for this subscriber. The link is congested when video
/// waits: more video would only queue behind it (and the pacer force-drains after 2 s,
/// flooding the link further), so the caller stops the video until the queue has drained and
/// restarts it at a keyframe. Only on evidence: a long queue on a link that is not strained is
/// a burst (a big keyframe at the pacing rate) that the pacer sends on in a moment. Audio is
/// never held back, and without TWCC there is no pacer and nothing waits.
fn paced_delay(
    rtc: &mut str0m::Rtc,
    feedback: Feedback,
    kind: TrackKind,
    ssrc: str0m::rtp::Ssrc,
    f: &Packet,
) -> Duration {
    if kind == TrackKind::Video && feedback == Feedback::Twcc {
        queue_delay(rtc, ssrc, f.arrival)
    } else {
        Duration::ZERO
    }
}

/// How long the oldest packet of an outgoing stream has waited in str0m's send queue.
pub(crate) fn queue_delay(rtc: &mut str0m::Rtc, ssrc: str0m::rtp::Ssrc, now: Instant) -> Duration {
    rtc.direct_api()
        .stream_tx(&ssrc)
        .and_then(|tx| tx.queue_info().and_then(|q| q.first_unsent()))
        .map(|t| now.saturating_duration_since(t))
        .unwrap_or(Duration::ZERO)
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
