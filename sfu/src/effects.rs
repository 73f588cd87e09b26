//! Work queued while draining peers, processed by the shard afterwards.
//!
//! Draining a peer (str0m's `poll_output` until `Timeout`) borrows that peer mutably; anything
//! that touches *other* peers (forwarding a packet, asking a publisher for a keyframe, telling
//! the room about a new track) is queued here and done once the drain is over. The buffers are
//! reused across calls, so the packet path does not allocate for them.

use std::collections::VecDeque;

use str0m::format::PayloadParams;
use str0m::media::{KeyframeRequestKind, MediaAdded, Mid, Rid};
use str0m::rtp::RtpPacket;

use crate::event::{Activity, LeaveReason, PeerEvent, SfuEvent, SfuOutput};
use crate::ids::{PeerId, TrackId};

/// An incoming packet of a published track, to fan out.
#[derive(Debug)]
pub(crate) struct Forward {
    pub publisher: PeerId,
    pub track: TrackId,
    pub rid: Option<Rid>,
    pub params: PayloadParams,
    pub packet: RtpPacket,
}

#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// The shard's output queue.
    pub out: VecDeque<SfuOutput>,
    pub media: VecDeque<Forward>,
    /// Keyframe requests from subscribers: (subscriber, its m-line, kind).
    pub keyframe_requests: Vec<(PeerId, Mid, KeyframeRequestKind)>,
    pub media_added: Vec<(PeerId, MediaAdded)>,
    /// A publisher's layer stopped or resumed: (publisher, its m-line, rid, paused).
    pub layer_paused: Vec<(PeerId, Mid, Option<Rid>, bool)>,
    /// Peers whose str0m instance says they are gone.
    pub leaving: Vec<(PeerId, LeaveReason)>,
    /// Peers whose state others see changed (reconnecting or back): their room's state must
    /// be pushed again.
    pub floor_changed: Vec<PeerId>,
    /// Peers whose bandwidth allocation is due.
    pub allocate: Vec<PeerId>,
    /// The shard's counters (here so that every peer method can count without a lock).
    pub stats: crate::stats::SfuStats,
}

impl Effects {
    pub fn send_to_peer(&mut self, peer: PeerId, event: PeerEvent) {
        self.out
            .push_back(SfuOutput::Event(SfuEvent::ToPeer { peer, event }));
    }

    pub fn event(&mut self, event: SfuEvent) {
        self.out.push_back(SfuOutput::Event(event));
    }

    /// Reports a participant's activity for attendance.
    pub fn activity(&mut self, room: &crate::ids::RoomId, peer: PeerId, activity: Activity) {
        self.event(SfuEvent::Activity {
            room: room.clone(),
            peer,
            activity,
        });
    }

    /// Whether anything besides plain output is waiting.
    pub fn has_work(&self) -> bool {
        !self.media.is_empty()
            || !self.keyframe_requests.is_empty()
            || !self.media_added.is_empty()
            || !self.layer_paused.is_empty()
            || !self.leaving.is_empty()
            || !self.floor_changed.is_empty()
            || !self.allocate.is_empty()
    }
}
