//! Who receives what: tracks appearing and ending, subscriptions following the role and floor
//! policy, WHEP slots, keyframe requests and paused layers.

use std::time::Instant;

use str0m::media::{KeyframeRequestKind, MediaAdded, Mid, Rid};

use crate::event::{PeerEvent, TrackInfo};
use crate::forward::track::TrackIn;
use crate::forward::write::track_kind;
use crate::ids::{PeerId, RoomId, TrackId};
use crate::lesson::role::{Role, TrackSource};
use crate::session::peer::Peer;
use crate::session::sdp::PeerMode;
use crate::session::subscription::{SubState, Subscription};
use crate::sfu::{Sfu, guard};

/// Whether `sub` should receive `track`, published by a peer of `publisher_role`.
fn wants(sub: &Peer, track: &TrackInfo, publisher_role: Role) -> bool {
    if sub.id == track.peer_id || !sub.info.role.receives_from(publisher_role) {
        return false;
    }
    match sub.mode {
        PeerMode::Signaling => true,
        PeerMode::Whip => false,
        // A WHEP player gets the teacher's microphone and camera (protocol §6).
        PeerMode::Whep => publisher_role == Role::Teacher && track.source != TrackSource::Screen,
    }
}

impl Sfu {
    /// A track ended: unsubscribe everyone and tell the room.
    pub(crate) fn remove_track(&mut self, room_id: &RoomId, track_id: TrackId) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let Some(track) = room.tracks.remove(&track_id) else {
            return;
        };
        if let Some(p) = self.peers.get_mut(&track.info.peer_id) {
            p.forget_published(track_id);
        }
        for s in &track.subscribers {
            self.unsubscribe(*s, track_id);
        }
        let room_peers = self
            .rooms
            .get(room_id)
            .map(|r| r.peers.clone())
            .unwrap_or_default();
        for o in room_peers {
            if o != track.info.peer_id {
                self.fx.send_to_peer(
                    o,
                    PeerEvent::TrackRemoved {
                        track: track_id,
                        peer: track.info.peer_id,
                    },
                );
            }
        }
        // A WHEP slot freed by this track can carry another teacher track.
        self.fill_slots(room_id);
        self.refresh_recorder(room_id);
        if track.info.source == TrackSource::Screen {
            self.push_state(room_id, false);
        }
    }

    /// Ends tracks whose m-lines the publisher stopped or made inactive in its latest offer.
    pub(crate) fn end_stopped_tracks(&mut self, peer: PeerId) {
        let Some(p) = self.peers.get(&peer) else {
            return;
        };
        let ended: Vec<TrackId> = p
            .publishing
            .tracks
            .iter()
            .filter(|(mid, _)| {
                p.rtc
                    .media(**mid)
                    .is_none_or(|m| m.stopped() || !m.direction().is_receiving())
            })
            .map(|(_, t)| *t)
            .collect();
        let room = p.room.clone();
        for t in ended {
            self.remove_track(&room, t);
        }
    }

    /// Starts sending `track` to `sub` if the policy says so.
    pub(crate) fn subscribe(&mut self, sub: PeerId, track: &TrackInfo, publisher_role: Role) {
        let Some(p) = self.peers.get(&sub) else {
            return;
        };
        if !wants(p, track, publisher_role) || p.subs.contains_key(&track.track_id) {
            return;
        }
        let active = self.rooms.get(&p.room).is_some_and(|r| {
            r.floor.forwards(
                p.info.role,
                sub,
                publisher_role,
                track.peer_id,
                track.source,
            )
        });
        let Some(p) = self.peers.get_mut(&sub) else {
            return;
        };
        let mut s = Subscription::new(track.clone(), active);
        match p.mode {
            PeerMode::Signaling => {
                p.negotiation.needed = true;
                self.to_negotiate.push(sub);
            }
            PeerMode::Whep => {
                let Some(slot) = p
                    .slots
                    .iter_mut()
                    .find(|s| s.kind == track.kind && s.bound.is_none())
                else {
                    return;
                };
                let Some(out) = slot.idle.take() else {
                    return;
                };
                slot.bound = Some(track.track_id);
                s.open(slot.mid, out);
            }
            PeerMode::Whip => return,
        }
        let open = matches!(s.state, SubState::Open(_));
        p.subs.insert(track.track_id, s);
        if open {
            self.fx.allocate.push(sub);
        }
        let room = p.room.clone();
        if let Some(t) = self
            .rooms
            .get_mut(&room)
            .and_then(|r| r.tracks.get_mut(&track.track_id))
            && !t.subscribers.contains(&sub)
        {
            t.subscribers.push(sub);
        }
    }

    /// Stops sending `track` to `sub`.
    pub(crate) fn unsubscribe(&mut self, sub: PeerId, track: TrackId) {
        let Some(p) = self.peers.get_mut(&sub) else {
            return;
        };
        let Some(s) = p.subs.remove(&track) else {
            return;
        };
        if let SubState::Open(mid) = s.state {
            match p.mode {
                PeerMode::Whep => {
                    // The slot keeps its stream for the next track bound to it.
                    if let Some(slot) = p.slots.iter_mut().find(|s| s.mid == mid) {
                        slot.bound = None;
                        slot.idle = s.out;
                    }
                }
                _ => {
                    p.negotiation.to_stop.push(mid);
                    p.negotiation.needed = true;
                    self.to_negotiate.push(sub);
                }
            }
        }
        // Offered: handled when the answer arrives (see `Peer::accept_answer`).
    }

    /// Binds free WHEP slots in a room to matching tracks.
    pub(crate) fn fill_slots(&mut self, room_id: &RoomId) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let whep: Vec<PeerId> = room
            .peers
            .iter()
            .copied()
            .filter(|p| self.peers.get(p).is_some_and(|p| p.mode == PeerMode::Whep))
            .collect();
        if whep.is_empty() {
            return;
        }
        let tracks: Vec<(TrackInfo, Role)> = room
            .tracks
            .values()
            .filter_map(|t| {
                let role = self.peers.get(&t.info.peer_id)?.info.role;
                Some((t.info.clone(), role))
            })
            .collect();
        for w in whep {
            for (t, role) in &tracks {
                self.subscribe(w, t, *role);
            }
        }
    }

    /// str0m reports a new m-line of a peer: a published track, or a WHEP slot.
    pub(crate) fn on_media_added(&mut self, _now: Instant, peer: PeerId, m: MediaAdded) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if !m.direction.is_receiving() {
            return;
        }
        let Some(source) = p.publishing.sources.remove(&m.mid) else {
            return;
        };
        if p.publishing.tracks.contains_key(&m.mid) {
            return;
        }
        let track_id = TrackId(self.next_track);
        self.next_track += 1;
        let info = TrackInfo {
            track_id,
            peer_id: peer,
            kind: track_kind(m.kind),
            source,
        };
        let rids: Vec<Rid> = m
            .simulcast
            .as_ref()
            .map(|s| {
                let layers = if s.recv.is_empty() { &s.send } else { &s.recv };
                layers.iter().map(|l| l.rid).collect()
            })
            .unwrap_or_default();
        p.publishing.tracks.insert(m.mid, track_id);
        let deaf = p.publishing.deaf.contains(&m.mid);
        let role = p.info.role;
        let room_id = p.room.clone();
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        let mut track = TrackIn::new(info.clone(), m.mid, &rids, self.config.keyframe_interval);
        track.keyframes_on_request = !deaf;
        room.tracks.insert(track_id, track);
        let others: Vec<PeerId> = room.peers.iter().copied().filter(|o| *o != peer).collect();
        tracing::info!(peer = %peer, track = %track_id, source = source.as_str(), layers = rids.len(), "track published");
        for o in others {
            self.fx.send_to_peer(o, PeerEvent::TrackAdded(info.clone()));
            self.subscribe(o, &info, role);
        }
        if source == TrackSource::Screen {
            self.push_state(&room_id, false);
        }
        self.refresh_recorder(&room_id);
        self.apply_uplink_caps(&room_id);
    }

    /// A subscriber's browser asked for a keyframe: pass it to the publisher (throttled).
    pub(crate) fn on_keyframe_request(
        &mut self,
        now: Instant,
        sub: PeerId,
        mid: Mid,
        kind: KeyframeRequestKind,
    ) {
        let Some(p) = self.peers.get(&sub) else {
            return;
        };
        let Some(track_id) = p.track_on_mid(mid) else {
            return;
        };
        let layer = p
            .subs
            .get(&track_id)
            .and_then(|s| s.selector.current().or(s.selector.target()))
            .unwrap_or(0);
        let room_id = p.room.clone();
        let Some(track) = self
            .rooms
            .get_mut(&room_id)
            .and_then(|r| r.tracks.get_mut(&track_id))
        else {
            return;
        };
        if !track.allow_keyframe_request(layer, now) {
            return;
        }
        let (pub_mid, rid, publisher) = (track.mid, track.rid_of(layer), track.info.peer_id);
        let Sfu { peers, fx, .. } = self;
        if let Some(pp) = peers.get_mut(&publisher) {
            guard(pp, fx, |pp, fx| pp.request_keyframe(pub_mid, rid, kind, fx));
        }
        self.schedule(publisher);
    }

    pub(crate) fn on_layer_paused(
        &mut self,
        peer: PeerId,
        mid: Mid,
        rid: Option<Rid>,
        paused: bool,
    ) {
        let Some(p) = self.peers.get(&peer) else {
            return;
        };
        let Some(track_id) = p.publishing.tracks.get(&mid).copied() else {
            return;
        };
        let room_id = p.room.clone();
        if let Some(t) = self
            .rooms
            .get_mut(&room_id)
            .and_then(|r| r.tracks.get_mut(&track_id))
        {
            t.set_paused(rid, paused);
        }
    }
}
