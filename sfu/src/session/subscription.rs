//! The receiving side of a peer: `Subscription` (one track this peer gets, with its
//! `LayerSelector`, owning the `OutStream` it is sent on once open) and `Slot` (a WHEP m-line
//! and the stream it keeps while no track is bound to it).
//!
//! Lifecycle of a subscription on a signaling peer:
//! `Wanted` (the track should be sent) → `Offered(mid)` (an m-line for it is in a server offer)
//! → `Open(mid)` (answered; its `OutStream` is created and packets flow). Removing an open
//! subscription queues its m-line to be stopped in the next offer. On a WHEP peer a
//! subscription goes straight to `Open` on a free slot and takes the slot's stream, so the
//! player's m-line stays one continuous stream across the tracks bound to it over time; the
//! stream goes back to the slot when the track ends.

use str0m::Rtc;
use str0m::format::PayloadParams;
use str0m::media::{Mid, Pt};
use str0m::rtp::Ssrc;

use crate::event::TrackInfo;
use crate::forward::layer::LayerSelector;
use crate::forward::sink::Sink;
use crate::ids::TrackId;
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
    /// The stream it is sent on, while `Open`.
    pub out: Option<OutStream>,
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
            out: None,
        }
    }

    /// Opens the subscription on `mid`, sending on `out` (bound to this track).
    pub fn open(&mut self, mid: Mid, mut out: OutStream) {
        out.bind(self.info.track_id);
        self.state = SubState::Open(mid);
        self.out = Some(out);
    }

    /// Turns forwarding on or off; off pauses at once, on resumes at the next keyframe.
    pub fn set_active(&mut self, active: bool) {
        self.active = active;
        if !active {
            self.selector.set_target(None);
        }
    }

    /// Whether anything was sent yet on its stream for this track.
    pub fn started(&self) -> bool {
        self.out.as_ref().is_some_and(|o| o.sink.sent_any())
    }

    pub fn mid(&self) -> Option<Mid> {
        match self.state {
            SubState::Wanted => None,
            SubState::Offered(m) | SubState::Open(m) => Some(m),
        }
    }
}

/// A WHEP m-line: the track bound to it, or the stream it keeps while none is.
#[derive(Debug)]
pub(crate) struct Slot {
    pub mid: Mid,
    pub kind: TrackKind,
    pub bound: Option<TrackId>,
    pub idle: Option<OutStream>,
}

/// One m-line the server sends on.
#[derive(Debug)]
pub(crate) struct OutStream {
    pub ssrc: Option<Ssrc>,
    /// One continuous stream whatever track and layer feed it.
    pub sink: Sink<TrackId>,
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
            sink: Sink::new(clock),
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

    /// Sends `track` from now on (from its next keyframe; the codec is looked up anew).
    pub fn bind(&mut self, track: TrackId) {
        if self.sink.set_source(Some(track)) {
            self.pt_map.clear();
            self.mismatch_told = false;
        }
    }
}
