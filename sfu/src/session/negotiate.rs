//! Server-side SDP negotiation of a signaling peer.
//!
//! One server offer is in flight at a time. Changes made meanwhile (new subscriptions, m-lines
//! to stop) set `negotiation_needed` and go into the next offer once the answer is in. The
//! server is the impolite side of glare (protocol §4.3): a client offer that arrives while a
//! server offer is pending is refused with `SfuError::Glare`.

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::Direction;

use crate::effects::Effects;
use crate::error::SfuError;
use crate::event::{MidTrack, PeerEvent};
use crate::forward::write::media_kind;
use crate::session::candidates::complete_candidates;
use crate::session::peer::Peer;
use crate::session::sdp::PeerMode;
use crate::session::subscription::{OutStream, SubState};

impl Peer {
    /// Sends a server offer if changes are waiting and no offer is in flight.
    pub fn negotiate(&mut self, fx: &mut Effects) {
        if self.mode != PeerMode::Signaling || self.negotiation.pending_offer.is_some() {
            return;
        }
        if !self.negotiation.needed {
            return;
        }
        self.negotiation.needed = false;
        let mut api = self.rtc.sdp_api();
        for sub in self.subs.values_mut() {
            if sub.state != SubState::Wanted {
                continue;
            }
            let mid = api.add_media(
                media_kind(sub.info.kind),
                Direction::SendOnly,
                // The msid: browsers group a publisher's tracks into one MediaStream by it.
                Some(sub.info.peer_id.to_string()),
                Some(sub.info.track_id.to_string()),
                None,
            );
            sub.state = SubState::Offered(mid);
            self.negotiation.offered_mids.push(mid);
        }
        for mid in self.negotiation.to_stop.drain(..) {
            api.stop_media(mid);
        }
        if let Some((offer, pending)) = api.apply() {
            self.negotiation.pending_offer = Some(pending);
            let tracks = self.offer_tracks();
            fx.send_to_peer(
                self.id,
                PeerEvent::Offer {
                    sdp: complete_candidates(&offer.to_sdp_string()),
                    tracks,
                },
            );
        }
        self.drain(fx);
    }

    /// Applies the client's answer to the pending server offer.
    pub fn accept_answer(&mut self, sdp: &str, fx: &mut Effects) -> Result<(), SfuError> {
        let Some(pending) = self.negotiation.pending_offer.take() else {
            return Err(SfuError::NoPendingOffer);
        };
        let parsed =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| SfuError::InvalidSdp(e.to_string()));
        let result = parsed.and_then(|answer| {
            self.rtc
                .sdp_api()
                .accept_answer(pending, answer)
                .map_err(|e| SfuError::InvalidSdp(e.to_string()))
        });
        if let Err(e) = result {
            self.negotiation.offered_mids.clear();
            // The offer is void: offer the same subscriptions again with the next change.
            for sub in self.subs.values_mut() {
                if matches!(sub.state, SubState::Offered(_)) {
                    sub.state = SubState::Wanted;
                }
            }
            self.negotiation.needed = true;
            self.drain(fx);
            return Err(e);
        }
        let mut opened = false;
        for sub in self.subs.values_mut() {
            if let SubState::Offered(mid) = sub.state {
                let ssrc = self
                    .rtc
                    .direct_api()
                    .stream_tx_by_mid(mid, None)
                    .map(|s| s.ssrc());
                sub.open(mid, OutStream::new(sub.info.kind, ssrc));
                opened = true;
            }
        }
        // New streams get their layers now, before their first packet, so that video starts at
        // the layer it will keep and needs one keyframe, not two.
        if opened {
            fx.allocate.push(self.id);
        }
        // Subscriptions dropped while their offer was in flight: stop their m-lines now.
        for mid in std::mem::take(&mut self.negotiation.offered_mids) {
            if self.track_on_mid(mid).is_none() {
                self.negotiation.to_stop.push(mid);
            }
        }
        if !self.negotiation.to_stop.is_empty()
            || self.subs.values().any(|s| s.state == SubState::Wanted)
        {
            self.negotiation.needed = true;
        }
        self.drain(fx);
        Ok(())
    }

    /// Accepts a (screened) client offer; refuses it during glare.
    pub fn accept_client_offer(
        &mut self,
        screened_sdp: &str,
        fx: &mut Effects,
    ) -> Result<String, SfuError> {
        if self.negotiation.pending_offer.is_some() {
            return Err(SfuError::Glare);
        }
        let offer = SdpOffer::from_sdp_string(screened_sdp)
            .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SfuError::InvalidSdp(e.to_string()));
        self.drain(fx);
        Ok(complete_candidates(&answer?.to_sdp_string()))
    }

    /// The tracks on the m-lines of the offer being sent: everything offered or open.
    fn offer_tracks(&self) -> Vec<MidTrack> {
        let mut v: Vec<MidTrack> = self
            .subs
            .values()
            .filter_map(|s| {
                s.mid().map(|mid| MidTrack {
                    mid: mid.to_string(),
                    track: s.info.clone(),
                })
            })
            .collect();
        v.sort_by(|a, b| a.mid.cmp(&b.mid));
        v
    }
}
