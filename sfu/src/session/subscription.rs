//! The receiving side of a peer: `Subscription` (one track this peer gets, with its
//! `LayerSelector`) and `OutStream` (one sending m-line, with its header rewriter).
//!
//! Lifecycle of a subscription on a signaling peer:
//! `Wanted` (the track should be sent) → `Offered(mid)` (an m-line for it is in a server offer)
//! → `Open(mid)` (answered; packets flow). Removing an open subscription queues its m-line to
//! be stopped in the next offer. On a WHEP peer a subscription goes straight to `Open` on one of
//! the peer's fixed slots.

use str0m::Rtc;
use str0m::format::PayloadParams;
use str0m::media::{Mid, Pt};
use str0m::rtp::Ssrc;

use crate::event::TrackInfo;
use crate::forward::layer::LayerSelector;
use crate::forward::rewrite::Rewriter;
use crate::lesson::role::TrackKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubState {
    Wanted,
    Offered(Mid),
    Open(Mid),
}

#[derive(Debug)]
pub(crate) struct Subscription {
    pub info: TrackInfo,
    pub state: SubState,
    pub selector: LayerSelector,
    /// The floor lets this track through to this peer now. An inactive subscription keeps
    /// its m-line, so going on stage is instant: no renegotiation, one keyframe.
    pub active: bool,
    /// The bandwidth allocator paused this video (it does not fit the subscriber's link).
    pub alloc_paused: bool,
}

impl Subscription {
    pub fn new(info: TrackInfo, active: bool) -> Self {
        let gated = info.kind == TrackKind::Video;
        Subscription {
            info,
            state: SubState::Wanted,
            selector: LayerSelector::new(gated),
            active,
            alloc_paused: false,
        }
    }

    /// Turns forwarding on or off; off pauses at once, on resumes at the next keyframe.
    pub fn set_active(&mut self, active: bool) {
        self.active = active;
        if !active {
            self.selector.set_target(None);
        }
    }

    pub fn mid(&self) -> Option<Mid> {
        match self.state {
            SubState::Wanted => None,
            SubState::Offered(m) | SubState::Open(m) => Some(m),
        }
    }
}

/// One m-line the server sends on.
#[derive(Debug)]
pub(crate) struct OutStream {
    pub ssrc: Option<Ssrc>,
    pub rewriter: Rewriter,
    /// Publisher PT → this m-line's PT (`None`: the subscriber did not negotiate the codec).
    pt_map: Vec<(Pt, Option<Pt>)>,
    /// The subscriber (and publisher) were told it cannot decode the bound track.
    pub mismatch_told: bool,
}

impl OutStream {
    pub fn new(kind: TrackKind, ssrc: Option<Ssrc>) -> Self {
        let clock = match kind {
            TrackKind::Audio => 48_000,
            TrackKind::Video => 90_000,
        };
        OutStream {
            ssrc,
            rewriter: Rewriter::new(clock),
            pt_map: Vec::new(),
            mismatch_told: false,
        }
    }

    /// The subscriber's PT for the publisher's codec parameters, cached per publisher PT.
    pub fn map_pt(&mut self, rtc: &Rtc, mid: Mid, params: &PayloadParams) -> Option<Pt> {
        if let Some((_, out)) = self.pt_map.iter().find(|(p, _)| *p == params.pt()) {
            return *out;
        }
        let out = rtc.codec_config().match_params(*params).and_then(|local| {
            let negotiated = rtc
                .media(mid)
                .is_some_and(|m| m.remote_pts().contains(&local.pt()));
            negotiated.then(|| local.pt())
        });
        if out.is_none() {
            tracing::info!(
                ?mid,
                codec = ?params.spec().codec,
                "subscriber did not negotiate the publisher's codec; track not forwarded"
            );
        }
        // A publisher switching codecs back and forth is rare; bound the cache anyway.
        if self.pt_map.len() >= 8 {
            self.pt_map.remove(0);
        }
        self.pt_map.push((params.pt(), out));
        out
    }

    /// Forget codec and sequence state: the slot is bound to a different track now.
    pub fn rebind(&mut self) {
        self.pt_map.clear();
        self.mismatch_told = false;
    }
}
