//! Running the `BandwidthAllocator` for a subscriber (every 500 ms and on every new estimate),
//! applying its decision to the subscriptions' layer selectors, steering the estimator's
//! probing, and telling publishers which simulcast layers anyone needs (dynacast).

use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;

use crate::allocator::{Demand, Priority};
use crate::event::{LayerWanted, PeerCaps, PeerEvent};
use crate::ids::{PeerId, RoomId, TrackId};
use crate::rate::WireRatio;
use crate::role::{Role, TrackSource};
use crate::sdp::PeerMode;
use crate::sfu::{Sfu, guard};
use crate::subscription::SubState;

/// How often each subscriber's allocation runs without a new estimate.
const ALLOC_EVERY: Duration = Duration::from_millis(500);
/// How often a subscriber held below its wanted rate asks the estimator to probe again.
const PROBE_NUDGE_EVERY: Duration = Duration::from_millis(1500);
/// No probing nudges this long after the last sign of congestion.
const PROBE_QUIET_AFTER_CONGESTION: Duration = Duration::from_secs(5);
/// Part of the estimate the allocator hands out; the rest absorbs bursts (keyframes).
const ESTIMATE_SHARE: u64 = 95;
/// Part of a configured downlink padding may fill.
const PAD_SHARE: u64 = 85;
/// A receiver losing more than this fraction of packets gets more than its link carries
/// (random loss on a poor wireless link stays below it; an overflowing queue does not).
const OVERLOADED_LOSS: f32 = 0.05;
/// Loss reports older than this no longer describe the link (str0m reports every second).
const LOSS_REPORT_AGE: Duration = Duration::from_secs(3);

impl Sfu {
    /// Sets a peer's bandwidth limits (configured downlink, its share of a school budget).
    pub fn set_caps(&mut self, now: Instant, peer: PeerId, caps: PeerCaps) -> bool {
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        p.caps = caps;
        let room = p.room.clone();
        self.fx.allocate.push(peer);
        self.apply_uplink_caps(&room);
        self.process(now);
        true
    }

    /// One allocation round for subscriber `peer`.
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
        p.next_alloc = now + ALLOC_EVERY;
        let Some(room) = rooms.get_mut(&p.room) else {
            return;
        };
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
        // Layers are planned in what they cost on the wire, str0m counts payload: what is
        // forwarded now gives the ratio.
        let (mut wire, mut payload) = (0, 0);
        for d in &demands {
            let current = p.subs.get(&d.track).and_then(|s| s.selector.current());
            if let (Some(l), Some(track)) = (current, room.tracks.get_mut(&d.track)) {
                let (w, pl) = track.layer_rates(l, now);
                wire += w;
                payload += pl;
            }
        }
        let ratio = WireRatio::new(wire, payload);
        // str0m's current estimate and its 3 s average, combined (estimate.rs).
        let estimate = ratio.to_wire(
            p.estimate
                .round(p.estimate_bps)
                .unwrap_or(config.initial_bitrate_bps),
        );
        let mut budget =
            p.caps.down_bps.map_or(estimate, |cap| cap.min(estimate)) * ESTIMATE_SHARE / 100;
        // The estimator needs seconds to see a collapsed link; video piling up in the pacer
        // shows it sooner (congestion.rs).
        let queued = p
            .outs
            .values()
            .filter_map(|o| o.ssrc)
            .map(|ssrc| crate::forward::queue_delay(&mut p.rtc, ssrc, now))
            .max()
            .unwrap_or_default();
        // The forwarder stops video as soon as the queue is too long, so the queue may be
        // short again by the time this round runs: what it saw counts too.
        let congested =
            std::mem::take(&mut p.congestion_seen) || queued > crate::forward::CONGESTED;
        if congested {
            if let Some(last) = &p.last_decision {
                let floor: u64 = demands
                    .iter()
                    .map(|d| d.layer_bps.first().copied().unwrap_or(0))
                    .sum();
                p.congestion
                    .congested(now, last.allocated_bps, floor, budget);
            }
            // Faster rounds while congested; `CongestionCap` bounds how often they halve.
            p.next_alloc = now + crate::congestion::CONGESTED_ROUND;
        } else {
            p.congestion.clear_round(now, budget);
        }
        // The link carries what is sent when nothing queues and the receiver reports little
        // loss; the allocator then never pauses a video that is playing (allocator.rs).
        let loss = p
            .down_loss
            .values()
            .filter(|(_, at)| now.saturating_duration_since(*at) < LOSS_REPORT_AGE)
            .map(|(l, _)| *l)
            .fold(0.0f32, f32::max);
        let carried = !congested && loss <= OVERLOADED_LOSS;
        if carried {
            // What flows now, and evidently arrives, is not taken away on the estimate's word
            // alone: str0m's estimate can sink below what the link delivers (probing on a
            // lossy link), and following it would step down a picture that plays fine. A real
            // overload shows as congestion or loss, and then this floor does not apply.
            let flowing: u64 = demands
                .iter()
                .map(|d| {
                    p.subs
                        .get(&d.track)
                        .and_then(|s| s.selector.current())
                        .and_then(|l| d.layer_bps.get(l).copied())
                        .unwrap_or(0)
                })
                .sum();
            let flowing = p
                .caps
                .down_bps
                .map_or(flowing, |c| flowing.min(c * ESTIMATE_SHARE / 100));
            budget = budget.max(flowing);
        }
        budget = p.congestion.apply(budget);
        let cap = p.caps.down_bps;
        // The share kept for bursts is kept under a configured downlink whatever the estimate.
        p.allocator
            .set_hard_limit(cap.map(|c| c * ESTIMATE_SHARE / 100));
        let decision = p.allocator.allocate_on(now, budget, carried, &demands);
        tracing::debug!(
            peer = %peer,
            estimate,
            budget,
            congested,
            loss,
            ceiling = ?p.congestion.get(),
            allocated = decision.allocated_bps,
            "allocation round"
        );

        for (track_id, layer) in &decision.layers {
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

        // The estimate only grows if the link is tried: desire everything at the top layer
        // (within the cap) so the estimator probes, and pad up to the next step once one is
        // pending so it is tested before it is taken.
        let full: u64 = demands
            .iter()
            .map(|d| d.layer_bps.last().copied().unwrap_or(0))
            .sum();
        // The allocator grants the top layers only once the estimate covers them plus the share
        // it keeps for bursts: that is the rate to look for.
        let full = full * 100 / ESTIMATE_SHARE;
        let mut desired = cap.map_or(full, |c| full.min(c));
        // str0m probes when the desired rate rises above the estimate, not when it is
        // repeated. A subscriber held below what it wants (after a congestion collapse, say)
        // nudges it up now and then so that probing continues until the link is found.
        // Not while the link is congested: a probe burst then only makes it worse.
        if congested {
            p.next_probe_nudge = now + PROBE_QUIET_AFTER_CONGESTION;
        }
        // Held back: far below what it wants, or a step up waits for an estimate that covers
        // it (within the cap). On a lossy link str0m's estimate settles near what is sent and
        // only probes lift it, so without nudges the last step may never come.
        let step_needs = decision
            .probe_bps
            .map(|b| b * 100 / ESTIMATE_SHARE)
            .filter(|b| *b <= desired);
        let held_back = estimate < desired * 9 / 10 || step_needs.is_some_and(|b| estimate < b);
        if held_back && now >= p.next_probe_nudge {
            p.probe_nudge += 1_000;
            p.next_probe_nudge = now + PROBE_NUDGE_EVERY;
        } else if !held_back {
            p.probe_nudge = 0;
        }
        desired += p.probe_nudge;
        // Never probe or pad into the share of a configured downlink kept for bursts.
        if let Some(c) = cap {
            desired = desired.min(c * ESTIMATE_SHARE / 100);
        }
        // str0m pads up to `minimum`. While the link is congested, padding would fill it in
        // place of the video that was just stopped; pad only when the link is clear.
        // While held back on a link that carries what is sent, pad towards the next step even
        // before the estimate makes room for it: str0m's estimate grows to at most 1.5 times
        // what is acknowledged, and its probes stop after a lossy spell (they wait for a
        // delay-limited state), so without padding the estimate could stay where the
        // collapse left it however fast the link is again. str0m never pads past its estimate.
        let minimum = if congested || p.congestion.get().is_some() {
            0
        } else {
            decision
                .probe_bps
                .or(decision.next_bps.filter(|_| held_back && carried))
                .unwrap_or(decision.allocated_bps)
                .min(desired)
        };
        // Padding comes on top of media bursts and its own headers: under a configured
        // downlink it fills only to where steps up may go (allocator.rs), never to the limit.
        let minimum = cap.map_or(minimum, |c| minimum.min(c * PAD_SHARE / 100));
        let target = (
            ratio.to_payload(minimum),
            ratio.to_payload(desired.max(minimum)),
        );
        p.last_decision = Some(decision);
        if target != p.bwe_target && target.1 > 0 {
            p.bwe_target = target;
            guard(p, fx, |p, fx| {
                p.rtc
                    .bwe()
                    .set_bitrate(Bitrate::bps(target.0), Bitrate::bps(target.1));
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
            .filter_map(|id| self.peers.get(id).map(|p| (*id, p.caps.up_bps)))
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
            t.wants.remove(&PeerId(0));
        }
        if let Some(t) = track.and_then(|t| room.tracks.get_mut(&t)) {
            let top = t.layers.len().saturating_sub(1);
            t.wants.insert(PeerId(0), top);
        }
    }
}
