//! Who is in a room and who receives what: joining, leaving, tracks appearing and ending, and
//! the subscriptions that follow from the role policy.

use std::collections::HashMap;
use std::time::Instant;

use str0m::Candidate;
use str0m::change::SdpOffer;
use str0m::media::{KeyframeRequestKind, MediaAdded, Mid, Rid};

use crate::error::SfuError;
use crate::event::TrackInfo;
use crate::event::{Answer, JoinRequest, LeaveReason, ParticipantInfo, PeerEvent, SfuEvent};
use crate::forward::track_kind;
use crate::ids::{PeerId, RoomId, TrackId};
use crate::peer::Peer;
use crate::role::{Role, TrackSource};
use crate::room::Room;
use crate::sdp::{Accepted, PeerMode, screen_offer};
use crate::sfu::{Sfu, guard};
use crate::subscription::{OutStream, SubState, Subscription};
use crate::track::TrackIn;

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
    /// A peer joins a room with its SDP offer; returns the answer.
    pub fn join(&mut self, now: Instant, req: JoinRequest) -> Result<Answer, SfuError> {
        if self.peers.contains_key(&req.peer) {
            return Err(SfuError::PeerExists(req.peer));
        }
        let named: HashMap<String, TrackSource> = req.sources.iter().cloned().collect();
        let screened = screen_offer(&req.offer, req.role, req.mode, &named, &[]);
        let offer = SdpOffer::from_sdp_string(&screened.sdp)
            .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        let mut rtc = self.build_rtc(now);
        for addr in &self.config.candidates {
            match Candidate::host(*addr, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => tracing::warn!(%addr, "unusable candidate address: {e}"),
            }
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;

        let info = ParticipantInfo {
            peer_id: req.peer,
            name: req.name.clone(),
            role: req.role,
            classroom: req.classroom.clone(),
            joined_at: req.joined_at_ms,
        };
        let deadline = now + self.config.connect_timeout;
        let mut peer = Peer::new(
            req.peer,
            req.room.clone(),
            info.clone(),
            req.mode,
            rtc,
            deadline,
            now,
        );
        for (mid, acc) in &screened.accepted {
            match acc {
                Accepted::Publish(source) => {
                    peer.publish_sources
                        .insert(Mid::from(mid.as_str()), *source);
                }
                Accepted::Slot(kind) => {
                    let mid = Mid::from(mid.as_str());
                    let ssrc = peer
                        .rtc
                        .direct_api()
                        .stream_tx_by_mid(mid, None)
                        .map(|s| s.ssrc());
                    peer.outs.insert(mid, OutStream::new(*kind, ssrc));
                    peer.slots.push((mid, *kind, None));
                }
            }
        }
        peer.slots.sort_by_key(|s| s.0);

        let room = self
            .rooms
            .entry(req.room.clone())
            .or_insert_with(|| Room::new(req.room.clone()));
        for other in &room.peers {
            self.fx
                .send_to_peer(*other, PeerEvent::ParticipantJoined(info.clone()));
        }
        room.peers.push(req.peer);
        self.demux.add_peer(req.peer, peer.local_ufrag.clone());
        self.peers.insert(req.peer, peer);
        self.catch_up(req.peer, &req.room);

        // Existing tracks the newcomer receives.
        let existing: Vec<(TrackInfo, Role)> = self
            .rooms
            .get(&req.room)
            .map(|r| {
                r.tracks
                    .values()
                    .map(|t| {
                        let role = self
                            .peers
                            .get(&t.info.peer_id)
                            .map(|p| p.info.role)
                            .unwrap_or(Role::Viewer);
                        (t.info.clone(), role)
                    })
                    .collect()
            })
            .unwrap_or_default();
        for (track, role) in existing {
            self.subscribe(req.peer, &track, role);
        }

        let Sfu { peers, fx, .. } = self;
        if let Some(p) = peers.get_mut(&req.peer) {
            guard(p, fx, |p, fx| p.drain(fx));
        }
        self.schedule(req.peer);
        self.process(now);
        tracing::info!(peer = %req.peer, room = %req.room, role = %req.role, "joined");
        Ok(Answer {
            sdp: answer.to_sdp_string(),
            rejected: screened.rejected,
        })
    }

    /// Tells a newcomer who is already in the room and what they publish. The application's
    /// welcome message may predate the join; these events make the newcomer's view exact.
    fn catch_up(&mut self, newcomer: PeerId, room: &RoomId) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        for p in r.peers.iter().filter(|p| **p != newcomer) {
            if let Some(other) = self.peers.get(p) {
                self.fx
                    .send_to_peer(newcomer, PeerEvent::ParticipantJoined(other.info.clone()));
            }
        }
        for t in r.tracks.values() {
            self.fx
                .send_to_peer(newcomer, PeerEvent::TrackAdded(t.info.clone()));
        }
    }

    /// A client offer on an existing session (for example a screen share being added).
    pub fn client_offer(
        &mut self,
        now: Instant,
        peer: PeerId,
        sdp: &str,
        sources: &[(String, TrackSource)],
    ) -> Result<Answer, SfuError> {
        let p = self
            .peers
            .get_mut(&peer)
            .ok_or(SfuError::UnknownPeer(peer))?;
        if p.mode != PeerMode::Signaling {
            return Err(SfuError::Forbidden(
                "WHIP and WHEP sessions cannot renegotiate".into(),
            ));
        }
        let named: HashMap<String, TrackSource> = sources.iter().cloned().collect();
        let server_sends: Vec<String> = p.outs.keys().map(|m| m.to_string()).collect();
        let screened = screen_offer(sdp, p.info.role, p.mode, &named, &server_sends);
        for (mid, acc) in &screened.accepted {
            let mid = Mid::from(mid.as_str());
            if let Accepted::Publish(source) = acc
                && !p.tracks_in.contains_key(&mid)
            {
                p.publish_sources.insert(mid, *source);
            }
        }
        let Sfu { peers, fx, .. } = self;
        let p = peers.get_mut(&peer).ok_or(SfuError::UnknownPeer(peer))?;
        let result = guard(p, fx, |p, fx| p.accept_client_offer(&screened.sdp, fx))
            .unwrap_or(Err(SfuError::Internal(peer)));
        self.schedule(peer);
        // The client's m-lines it stopped end their tracks.
        self.end_stopped_tracks(peer);
        self.to_negotiate.push(peer);
        self.process(now);
        result.map(|sdp| Answer {
            sdp,
            rejected: screened.rejected,
        })
    }

    /// The client's answer to the pending server offer.
    pub fn client_answer(&mut self, now: Instant, peer: PeerId, sdp: &str) -> Result<(), SfuError> {
        let Sfu { peers, fx, .. } = self;
        let p = peers.get_mut(&peer).ok_or(SfuError::UnknownPeer(peer))?;
        let result =
            guard(p, fx, |p, fx| p.accept_answer(sdp, fx)).unwrap_or(Err(SfuError::Internal(peer)));
        self.schedule(peer);
        self.to_negotiate.push(peer);
        self.process(now);
        result
    }

    /// A peer leaves (or is removed). Returns false if it was not on this shard.
    pub fn leave(&mut self, now: Instant, peer: PeerId, reason: LeaveReason) -> bool {
        let known = self.peers.contains_key(&peer);
        self.remove_peer(now, peer, reason);
        self.process(now);
        known
    }

    /// Removes every peer of a room.
    pub fn close_room(&mut self, now: Instant, room: &RoomId, reason: LeaveReason) {
        let peers = self
            .rooms
            .get(room)
            .map(|r| r.peers.clone())
            .unwrap_or_default();
        for p in peers {
            self.remove_peer(now, p, reason);
        }
        self.process(now);
    }

    pub(crate) fn remove_peer(&mut self, _now: Instant, id: PeerId, reason: LeaveReason) {
        let Some(peer) = self.peers.remove(&id) else {
            return;
        };
        self.demux.remove_peer(id);
        let room_id = peer.room.clone();
        let published: Vec<TrackId> = peer.tracks_in.values().copied().collect();
        for t in published {
            self.remove_track(&room_id, t);
        }
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        room.peers.retain(|p| *p != id);
        for t in peer.subs.keys() {
            if let Some(track) = room.tracks.get_mut(t) {
                track.remove_subscriber(id);
            }
        }
        let others = room.peers.clone();
        for o in others {
            self.fx
                .send_to_peer(o, PeerEvent::ParticipantLeft { peer: id, reason });
        }
        self.fx.event(SfuEvent::PeerLeft {
            peer: id,
            room: room_id.clone(),
            reason,
        });
        tracing::info!(peer = %id, room = %room_id, reason = reason.as_str(), "left");
        if self.rooms.get(&room_id).is_some_and(|r| r.peers.is_empty()) {
            self.rooms.remove(&room_id);
            self.fx.event(SfuEvent::RoomClosed { room: room_id });
        }
    }

    /// A track ended: unsubscribe everyone and tell the room.
    fn remove_track(&mut self, room_id: &RoomId, track_id: TrackId) {
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
    }

    /// Ends tracks whose m-lines the publisher stopped or made inactive in its latest offer.
    fn end_stopped_tracks(&mut self, peer: PeerId) {
        let Some(p) = self.peers.get(&peer) else {
            return;
        };
        let ended: Vec<TrackId> = p
            .tracks_in
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
        let Some(p) = self.peers.get_mut(&sub) else {
            return;
        };
        if !wants(p, track, publisher_role) || p.subs.contains_key(&track.track_id) {
            return;
        }
        let mut s = Subscription::new(track.clone());
        match p.mode {
            PeerMode::Signaling => {
                p.negotiation_needed = true;
                self.to_negotiate.push(sub);
            }
            PeerMode::Whep => {
                let Some(slot) = p
                    .slots
                    .iter_mut()
                    .find(|(_, kind, bound)| *kind == track.kind && bound.is_none())
                else {
                    return;
                };
                slot.2 = Some(track.track_id);
                s.state = SubState::Open(slot.0);
                if let Some(out) = p.outs.get_mut(&slot.0) {
                    out.rebind();
                }
            }
            PeerMode::Whip => return,
        }
        p.subs.insert(track.track_id, s);
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
    fn unsubscribe(&mut self, sub: PeerId, track: TrackId) {
        let Some(p) = self.peers.get_mut(&sub) else {
            return;
        };
        let Some(s) = p.subs.remove(&track) else {
            return;
        };
        if let SubState::Open(mid) = s.state {
            match p.mode {
                PeerMode::Whep => {
                    for slot in p.slots.iter_mut().filter(|s| s.0 == mid) {
                        slot.2 = None;
                    }
                }
                _ => {
                    p.outs.remove(&mid);
                    p.to_stop.push(mid);
                    p.negotiation_needed = true;
                    self.to_negotiate.push(sub);
                }
            }
        }
        // Offered: handled when the answer arrives (see `Peer::accept_answer`).
    }

    /// Binds free WHEP slots in a room to matching tracks.
    fn fill_slots(&mut self, room_id: &RoomId) {
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
        let Some(source) = p.publish_sources.remove(&m.mid) else {
            return;
        };
        if p.tracks_in.contains_key(&m.mid) {
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
        p.tracks_in.insert(m.mid, track_id);
        let role = p.info.role;
        let room_id = p.room.clone();
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        room.tracks.insert(
            track_id,
            TrackIn::new(info.clone(), m.mid, &rids, self.config.keyframe_interval),
        );
        let others: Vec<PeerId> = room.peers.iter().copied().filter(|o| *o != peer).collect();
        tracing::info!(peer = %peer, track = %track_id, source = source.as_str(), layers = rids.len(), "track published");
        for o in others {
            self.fx.send_to_peer(o, PeerEvent::TrackAdded(info.clone()));
            self.subscribe(o, &info, role);
        }
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
        let Some(track_id) = p.tracks_in.get(&mid).copied() else {
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
