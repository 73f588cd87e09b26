//! Running a subscriber's allocation round (every 500 ms and on every new estimate): gathering
//! what its streams cost and what its link shows, letting its `Downlink` plan (downlink.rs),
//! applying the plan to the subscriptions' layer selectors and str0m's estimator, and telling
//! publishers which simulcast layers anyone needs (dynacast).

use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;

use crate::bandwidth::allocator::{Demand, Priority};
use crate::bandwidth::downlink::Observed;
use crate::bandwidth::rate::WireRatio;
use crate::event::{LayerWanted, PeerCaps, PeerEvent};
use crate::ids::{PeerId, RoomId, TrackId};
use crate::lesson::role::{Role, TrackSource};
use crate::lesson::room::Room;
use crate::session::peer::Peer;
use crate::session::sdp::Feedback;
use crate::session::sdp::PeerMode;
use crate::session::subscription::SubState;
use crate::sfu::{Sfu, guard};

impl Sfu {
    /// Sets a peer's bandwidth limits (configured downlink, its share of a school budget).
    pub fn set_caps(&mut self, now: Instant, peer: PeerId, caps: PeerCaps) -> bool {
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        p.downlink.caps = caps;
        let room = p.room.clone();
        self.fx.allocate.push(peer);
        self.apply_uplink_caps(&room);
        self.process(now);
        true
    }

    /// One allocation round for subscriber `peer`: gather what its streams cost and what was
    /// seen on its link, let its `Downlink` plan the round, apply the plan.
    pub(crate) fn allocate(&mut self, now: Instant, peer: PeerId) {
        let Sfu {
            peers,
            rooms,
            config,
            fx,
            ..
        } = self;
        let roles: Vec<(PeerId, Role)> = {
            let Some(p) = peers.get(&peer) else {
                return;
            };
            let Some(room) = rooms.get(&p.room) else {
                return;
            };
            room.peers
                .iter()
                .filter_map(|id| peers.get(id).map(|x| (*id, x.info.role)))
                .collect()
        };
        let role_of = |id: PeerId| roles.iter().find(|(p, _)| *p == id).map(|(_, r)| *r);
        let Some(p) = peers.get_mut(&peer) else {
            return;
        };
        let Some(room) = rooms.get_mut(&p.room) else {
            return;
        };
        let demands = demands(p, room, now, role_of);
        let seen = observe(p, room, &demands, now);
        let plan = p
            .downlink
            .plan(now, &demands, seen, config.initial_bitrate_bps);
        tracing::trace!(peer = %peer, ?plan, "allocation plan");

        for (track_id, layer) in &plan.decision.layers {
            let Some(track) = room.tracks.get_mut(track_id) else {
                continue;
            };
            match layer {
                Some(l) => {
                    track.wants.insert(peer, *l);
                }
                None => {
                    track.wants.remove(&peer);
                }
            }
            // Forward the wanted layer if it flows, else the best flowing one below it.
            let target = layer.and_then(|l| {
                (0..=l.min(track.layers.len().saturating_sub(1)))
                    .rev()
                    .find(|i| track.layers[*i].active)
                    .or_else(|| track.layers.iter().position(|x| x.active))
            });
            if let Some(sub) = p.subs.get_mut(track_id) {
                sub.alloc_paused = layer.is_none();
                if sub.selector.target() != target && (target.is_some() || layer.is_none()) {
                    sub.selector.set_target(target);
                }
            }
        }
        if let Some((minimum, desired)) = plan.bwe_target {
            guard(p, fx, |p, fx| {
                p.rtc
                    .bwe()
                    .set_bitrate(Bitrate::bps(minimum), Bitrate::bps(desired));
                p.drain(fx);
            });
        }
        let room_id = p.room.clone();
        self.schedule(peer);
        self.dynacast(now, &room_id);
    }

    /// Tells publishers in the room which layers to send, when that changed.
    pub(crate) fn dynacast(&mut self, now: Instant, room_id: &RoomId) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let mut notes: Vec<(PeerId, String, Vec<LayerWanted>)> = Vec::new();
        for track in room.tracks.values_mut() {
            if track.layers.len() < 2 {
                continue;
            }
            let on = track.wanted_layers(now);
            if track.published.as_ref() == Some(&on) {
                continue;
            }
            let layers = track
                .layers
                .iter()
                .zip(&on)
                .filter_map(|(l, a)| {
                    l.rid.map(|rid| LayerWanted {
                        rid: rid.to_string(),
                        active: *a,
                    })
                })
                .collect();
            track.published = Some(on);
            notes.push((track.info.peer_id, track.mid.to_string(), layers));
        }
        for (publisher, mid, layers) in notes {
            let signaling = self
                .peers
                .get(&publisher)
                .is_some_and(|p| p.mode == PeerMode::Signaling);
            if signaling {
                self.fx
                    .send_to_peer(publisher, PeerEvent::PublishLayers { mid, layers });
            }
        }
    }

    /// Applies each publisher's uplink cap to its simulcast tracks: the highest layer whose
    /// cumulative rate (all lower layers are sent too) fits.
    pub(crate) fn apply_uplink_caps(&mut self, room_id: &RoomId) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let now = self.last_now;
        let caps: Vec<(PeerId, Option<u64>)> = room
            .peers
            .iter()
            .filter_map(|id| self.peers.get(id).map(|p| (*id, p.downlink.caps.up_bps)))
            .collect();
        for track in room.tracks.values_mut() {
            let cap = caps
                .iter()
                .find(|(id, _)| *id == track.info.peer_id)
                .and_then(|(_, c)| *c);
            track.uplink_max = cap.map(|cap| {
                let mut sum = 0;
                let bps = track.layer_bps(now);
                bps.iter()
                    .take_while(|b| {
                        sum += **b;
                        sum <= cap
                    })
                    .count()
                    .saturating_sub(1)
            });
        }
    }

    /// The recorder wants the top layer of the track it records, like a subscriber.
    pub(crate) fn set_recorder_want(&mut self, room_id: &RoomId, track: Option<TrackId>) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        for t in room.tracks.values_mut() {
            t.recorder_wants = None;
        }
        if let Some(t) = track.and_then(|t| room.tracks.get_mut(&t)) {
            let top = t.layers.len().saturating_sub(1);
            t.recorder_wants = Some(top);
        }
    }
}

/// What each stream the subscriber receives costs, with its priority for this subscriber.
fn demands(
    p: &Peer,
    room: &mut Room,
    now: Instant,
    role_of: impl Fn(PeerId) -> Option<Role>,
) -> Vec<Demand> {
    let sub_role = p.info.role;
    let mut demands: Vec<Demand> = Vec::new();
    for sub in p.subs.values() {
        if !sub.active || !matches!(sub.state, SubState::Open(_)) {
            continue;
        }
        let Some(track) = room.tracks.get_mut(&sub.info.track_id) else {
            continue;
        };
        let publisher = sub.info.peer_id;
        let stage = room.floor.on_stage(publisher)
            || sub.info.source == TrackSource::Screen
            || (role_of(publisher) == Some(Role::Teacher) && sub_role != Role::Teacher);
        demands.push(Demand {
            track: sub.info.track_id,
            kind: sub.info.kind,
            priority: if stage {
                Priority::High
            } else {
                Priority::Normal
            },
            layer_bps: track.layer_bps(now),
        });
    }
    // Room order (track ids grow with publishing) keeps equal priorities stable.
    demands.sort_by_key(|d| d.track);
    demands
}

/// What is forwarded to the subscriber now, on the wire and as payload, and how long its video
/// waits in str0m's pacer.
fn observe(p: &mut Peer, room: &mut Room, demands: &[Demand], now: Instant) -> Observed {
    // Layers are planned in what they cost on the wire, str0m counts payload: what is
    // forwarded now gives the ratio.
    let (mut wire, mut payload, mut flowing) = (0, 0, 0);
    for d in demands {
        let current = p.subs.get(&d.track).and_then(|s| s.selector.current());
        if let (Some(l), Some(track)) = (current, room.tracks.get_mut(&d.track)) {
            let (w, pl) = track.layer_rates(l, now);
            wire += w;
            payload += pl;
            flowing += d.layer_bps.get(l).copied().unwrap_or(0);
        }
    }
    // Without a pacer (no TWCC) nothing waits.
    let queued = match p.downlink.feedback {
        Feedback::Twcc => p
            .subs
            .values()
            .filter_map(|s| s.out.as_ref().and_then(|o| o.ssrc))
            .map(|ssrc| crate::forward::write::queue_delay(&mut p.rtc, ssrc, now))
            .max()
            .unwrap_or_default(),
        Feedback::Reports => Duration::ZERO,
    };
    Observed {
        ratio: WireRatio::new(wire, payload),
        sent: wire,
        queued,
        flowing,
    }
}
