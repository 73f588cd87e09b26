//! `Peer`: one participant's connection: a str0m `Rtc` in RTP mode plus what the SFU knows
//! about it (role, published tracks, subscriptions, negotiation state).
//!
//! Every mutation of the `Rtc` goes through a method here that ends with [`Peer::drain`], which
//! polls str0m until `Timeout` (str0m's single-mutation invariant) and turns its events into
//! [`Effects`] for the shard. The one exception is the packet path's `write_rtp`
//! (`forward.rs`): it makes the peer due now instead, and the next timeout round drains it (see
//! the crate documentation for why).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::SdpPendingOffer;
use str0m::format::PayloadParams;
use str0m::media::{KeyframeRequestKind, Mid, Rid};
use str0m::net::Receive;
use str0m::rtp::{RtpPacket, Ssrc};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};

use crate::effects::{Effects, Forward};
use crate::session::liveness::{Check, Liveness, Presence};

use crate::event::{Activity, LeaveReason, ParticipantInfo, PeerEvent, SfuOutput, Transmit};
use crate::ids::{PeerId, RoomId, TrackId};
use crate::lesson::role::{TrackKind, TrackSource};
use crate::session::sdp::PeerMode;
use crate::session::subscription::{Slot, Subscription};
use crate::session::transport::Transport;

/// Where a published packet belongs, cached per incoming SSRC and payload type.
#[derive(Debug, Clone, Copy)]
struct Incoming {
    track: TrackId,
    rid: Option<Rid>,
    params: PayloadParams,
}

pub(crate) struct Peer {
    pub id: PeerId,
    pub room: RoomId,
    pub info: ParticipantInfo,
    pub mode: PeerMode,
    pub rtc: Rtc,
    pub local_ufrag: String,
    /// Whether its connection carries media, and how long it is kept when not.
    pub link: Liveness,
    /// When the peer next needs `handle_timeout`.
    pub next_timeout: Instant,
    /// How its media travels now (the transport of its last DTLS or media packet).
    pub transport: Transport,
    /// The time of the latest input (for events str0m does not stamp).
    pub now: Instant,

    /// Everything bandwidth allocation knows about the link to this peer.
    pub downlink: crate::bandwidth::downlink::Downlink,

    /// What it publishes.
    pub publishing: Publishing,

    // ---- receiving ----
    /// The tracks it receives, each with the stream it is sent on.
    pub subs: HashMap<TrackId, Subscription>,
    /// WHEP: the fixed m-lines to send on, with the track bound to each.
    pub slots: Vec<Slot>,
    /// The server's side of SDP negotiation (signaling peers).
    pub negotiation: Negotiation,
}

/// What a peer publishes: its tracks by m-line, and where each incoming stream belongs.
#[derive(Debug, Default)]
pub(crate) struct Publishing {
    /// Accepted publishing m-lines and their sources, until str0m reports them added.
    pub sources: HashMap<Mid, TrackSource>,
    /// The peer's published tracks by its m-line.
    pub tracks: HashMap<Mid, TrackId>,
    /// Video m-lines that take no keyframe requests (`session/keyframes.rs`).
    pub deaf: Vec<Mid>,
    incoming: HashMap<(Ssrc, u8), Option<Incoming>>,
}

impl Publishing {
    /// Reads from a publisher's offer which of its video m-lines take keyframe requests.
    pub fn note_keyframe_feedback(&mut self, offer: &str) {
        self.deaf = crate::session::keyframes::deaf_video_mids(offer)
            .iter()
            .map(|m| Mid::from(m.as_str()))
            .collect();
    }
}

/// The server's offers to a signaling peer: one in flight at a time (`negotiate.rs`).
#[derive(Default)]
pub(crate) struct Negotiation {
    pub pending_offer: Option<SdpPendingOffer>,
    /// M-lines added by the pending offer.
    pub offered_mids: Vec<Mid>,
    /// M-lines to stop in the next server offer.
    pub to_stop: Vec<Mid>,
    /// Changes wait for the next offer.
    pub needed: bool,
}

impl Peer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: PeerId,
        room: RoomId,
        info: ParticipantInfo,
        mode: PeerMode,
        mut rtc: Rtc,
        feedback: crate::session::sdp::Feedback,
        connect_deadline: Instant,
        now: Instant,
    ) -> Self {
        let local_ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        Peer {
            id,
            room,
            info,
            mode,
            rtc,
            local_ufrag,
            link: Liveness::new(connect_deadline, now),
            next_timeout: now,
            transport: Transport::Udp,
            now,
            downlink: crate::bandwidth::downlink::Downlink::new(id, feedback, now),
            publishing: Publishing::default(),
            subs: HashMap::new(),
            slots: Vec::new(),
            negotiation: Negotiation::default(),
        }
    }

    /// Polls str0m until it only has a timeout left, turning its output into effects.
    pub fn drain(&mut self, fx: &mut Effects) {
        loop {
            let out = match self.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(peer = %self.id, "rtc poll failed: {e}");
                    fx.leaving.push((self.id, LeaveReason::Disconnected));
                    self.next_timeout = self.link.connect_deadline;
                    return;
                }
            };
            match out {
                Output::Timeout(t) => {
                    self.next_timeout = t.min(self.own_deadline());
                    return;
                }
                Output::Transmit(t) => fx.out.push_back(SfuOutput::Transmit(Transmit {
                    source: t.source,
                    destination: t.destination,
                    transport: Transport::from_protocol(t.proto),
                    contents: t.contents.into(),
                })),
                Output::Event(e) => self.on_event(e, fx),
            }
        }
    }

    fn on_connected(&mut self, fx: &mut Effects) {
        let presence = self.link.on_connected();
        fx.send_to_peer(self.id, PeerEvent::Connected);
        // Its video can start only at keyframes: ask for them now rather than at the next
        // packet of each stream (a frame interval sooner).
        for s in self.subs.values() {
            if let (TrackKind::Video, Some(mid)) = (s.info.kind, s.mid()) {
                fx.keyframe_requests
                    .push((self.id, mid, KeyframeRequestKind::Pli));
            }
        }
        match presence {
            Presence::Joined => {
                let joined = Activity::Joined {
                    role: self.info.role,
                    classroom: self.info.classroom.clone(),
                    name: self.info.name.clone(),
                    transport: self.transport,
                };
                fx.activity(&self.room, self.id, joined);
            }
            Presence::Resumed => {
                fx.floor_changed.push(self.id);
                fx.activity(&self.room, self.id, Activity::Resumed);
            }
            Presence::Unchanged => {}
        }
    }

    /// A published packet: found by SSRC and payload type, queued for the fan-out.
    fn on_rtp(&mut self, packet: RtpPacket, fx: &mut Effects) {
        fx.stats.on_rtp_in();
        let key = (packet.header.ssrc, *packet.header.payload_type);
        let found = match self.publishing.incoming.get(&key) {
            Some(v) => *v,
            None => {
                let v = self.resolve_incoming(packet.header.ssrc, key.1);
                // Bounded: a publisher has a few SSRCs and codecs.
                if self.publishing.incoming.len() < 64 {
                    self.publishing.incoming.insert(key, v);
                }
                v
            }
        };
        if let Some(inc) = found {
            fx.media.push_back(Forward {
                publisher: self.id,
                track: inc.track,
                rid: inc.rid,
                params: inc.params,
                packet,
            });
        }
    }

    fn on_event(&mut self, e: Event, fx: &mut Effects) {
        match e {
            Event::Connected => self.on_connected(fx),
            // Consent checks stopped. The peer may come back (the network returned, or an ICE
            // restart): the silence and grace timers decide when it is gone.
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                tracing::info!(peer = %self.id, "ICE disconnected; waiting for the peer to return");
            }
            Event::Closed => fx.leaving.push((self.id, LeaveReason::Left)),
            Event::MediaAdded(m) => fx.media_added.push((self.id, m)),
            Event::RtpPacket(packet) => self.on_rtp(packet, fx),
            Event::KeyframeRequest(r) => fx.keyframe_requests.push((self.id, r.mid, r.kind)),
            Event::StreamPaused(p) => fx.layer_paused.push((self.id, p.mid, p.rid, p.paused)),
            Event::MediaEgressStats(s) => {
                // `loss` is there only when receiver reports came since the last event.
                if s.loss.is_some() {
                    self.downlink.on_report(s.mid, s.loss, s.rtt, s.timestamp);
                }
                fx.stats.on_egress(self.id, &s);
            }
            Event::MediaIngressStats(s) => fx.stats.on_ingress(self.id, &s),
            Event::PeerStats(s) => {
                // A changed estimate is acted on at once: a collapsing link should not wait
                // for the next round.
                if let Some(b) = s.bwe_tx
                    && self.downlink.estimate.sample(s.timestamp, b.as_u64())
                {
                    fx.allocate.push(self.id);
                }
                if let Some(loss) = s.egress_loss_fraction {
                    self.downlink.on_twcc_loss(loss, s.timestamp);
                }
                self.downlink.on_peer_tx(s.peer_bytes_tx, s.timestamp);
                self.now = s.timestamp;
            }
            Event::EgressBitrateEstimate(str0m::bwe::BweKind::Twcc { estimate, .. }) => {
                self.downlink.average_bps = Some(estimate.as_u64());
                fx.allocate.push(self.id);
            }
            Event::EgressBitrateEstimate(str0m::bwe::BweKind::Remb { estimate, .. }) => {
                self.downlink.reports.on_remb(self.now, estimate.as_u64());
                fx.allocate.push(self.id);
            }
            _ => {}
        }
    }

    /// The SFU's own deadline for this peer: connect timeout, silence, grace, allocation.
    fn own_deadline(&self) -> Instant {
        let live = self.link.deadline();
        if self.link.connected && !self.subs.is_empty() {
            live.min(self.downlink.next_alloc)
        } else {
            live
        }
    }

    fn resolve_incoming(&mut self, ssrc: Ssrc, pt: u8) -> Option<Incoming> {
        let (mid, rid) = {
            let mut api = self.rtc.direct_api();
            let s = api.stream_rx(&ssrc)?;
            (s.mid(), s.rid())
        };
        let track = *self.publishing.tracks.get(&mid)?;
        let params = *self.rtc.codec_config().find(|p| *p.pt() == pt)?;
        Some(Incoming { track, rid, params })
    }

    /// Feeds a datagram (or a TCP frame) to str0m. Malformed input is dropped; it never ends
    /// the peer.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        transport: Transport,
        from: SocketAddr,
        to: SocketAddr,
        data: &[u8],
        fx: &mut Effects,
    ) {
        let Ok(contents) = data.try_into() else {
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: transport.protocol(),
                source: from,
                destination: to,
                contents,
            },
        );
        self.now = now;
        if let Err(e) = self.rtc.handle_input(input) {
            tracing::debug!(peer = %self.id, "dropped datagram: {e}");
        }
        // Clients check every candidate pair at first; only the selected one carries DTLS and
        // media, so those packets tell the transport in use.
        if crate::session::demux::classify(data) != crate::session::demux::PacketClass::Stun {
            self.transport = transport;
        }
        if self.link.on_datagram(now) {
            fx.floor_changed.push(self.id);
            fx.activity(&self.room, self.id, Activity::Resumed);
        }
        self.drain(fx);
    }

    pub fn handle_timeout(&mut self, now: Instant, fx: &mut Effects) {
        match self.link.check(now) {
            Check::Gone => {
                fx.leaving.push((self.id, LeaveReason::Disconnected));
                return;
            }
            Check::Silent { silent_ms } => {
                fx.activity(&self.room, self.id, Activity::Reconnecting { silent_ms });
                fx.floor_changed.push(self.id);
            }
            Check::Alive => {}
        }
        // Also without subscriptions: the round ends with dynacast for the peer's room, which
        // is how a publisher nobody watches (yet, or any more) learns to stop its upper layers.
        if now >= self.downlink.next_alloc {
            fx.allocate.push(self.id);
        }
        self.now = now;
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(peer = %self.id, "timeout handling failed: {e}");
        }
        self.drain(fx);
    }

    /// Asks this (publishing) peer for a keyframe on one of its m-lines.
    pub fn request_keyframe(
        &mut self,
        mid: Mid,
        rid: Option<Rid>,
        kind: KeyframeRequestKind,
        fx: &mut Effects,
    ) {
        let sent = match self.rtc.direct_api().stream_rx_by_mid(mid, rid) {
            Some(rx) => {
                rx.request_keyframe(kind);
                true
            }
            None => false,
        };
        if sent {
            self.drain(fx);
        }
    }

    /// The track a sending m-line of this peer carries.
    pub fn track_on_mid(&self, mid: Mid) -> Option<TrackId> {
        self.subs
            .values()
            .find(|s| s.mid() == Some(mid))
            .map(|s| s.info.track_id)
    }

    /// Forgets everything about a track this peer published.
    pub fn forget_published(&mut self, track: TrackId) {
        self.publishing.tracks.retain(|_, t| *t != track);
        self.publishing
            .incoming
            .retain(|_, v| v.is_none_or(|i| i.track != track));
    }
}
