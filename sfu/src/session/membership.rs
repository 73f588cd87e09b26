//! Who is in a room: joining, rejoining after a network loss, signaling going away and coming
//! back, leaving. What each peer receives follows in `subscribe.rs`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::media::Mid;
use str0m::net::TcpType;
use str0m::{Candidate, Rtc};

use crate::error::SfuError;
use crate::event::TrackInfo;
use crate::event::{
    Activity, Answer, JoinRequest, LeaveReason, ParticipantInfo, PeerEvent, SfuEvent,
};
use crate::ids::{PeerId, RoomId, TrackId};
use crate::lesson::role::is_audience;
use crate::lesson::role::{Role, TrackSource};
use crate::lesson::room::Room;
use crate::session::candidates::complete_candidates;
use crate::session::peer::Peer;
use crate::session::sdp::{Accepted, Feedback, PeerMode, Screened, screen_offer};
use crate::session::subscription::{OutStream, Slot, SubState};
use crate::sfu::{Sfu, guard};

impl Sfu {
    /// A peer joins a room with its SDP offer; returns the answer.
    pub fn join(&mut self, now: Instant, req: JoinRequest) -> Result<Answer, SfuError> {
        self.last_now = self.last_now.max(now);
        if self.peers.contains_key(&req.peer) {
            return Err(SfuError::PeerExists(req.peer));
        }
        let mode = self
            .rooms
            .get(&req.room)
            .map(|r| r.floor.mode())
            .unwrap_or(req.lesson_mode);
        let floor = crate::lesson::floor::Floor::new(mode);
        let named: HashMap<String, TrackSource> = req.sources.iter().cloned().collect();
        let (role, peer_id) = (req.role, req.peer);
        let may = |s: TrackSource| {
            self.rooms
                .get(&req.room)
                .map(|r| &r.floor)
                .unwrap_or(&floor)
                .may_publish(role, peer_id, s)
        };
        let mut screened = screen_offer(&req.offer, req.role, req.mode, &named, &[], &may);
        screened.feedback = self.adapted(&req.room, req.role, screened.feedback);
        let (rtc, answer) = self.accept_fresh(now, &screened)?;

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
            screened.feedback,
            deadline,
            now,
        );
        apply_screened(&mut peer, &screened);
        peer.publishing.note_keyframe_feedback(&req.offer);
        peer.downlink.caps = req.caps;

        let room = self
            .rooms
            .entry(req.room.clone())
            .or_insert_with(|| Room::new(req.room.clone(), mode));
        let others = room.peers.clone();
        room.peers.push(req.peer);
        self.demux.add_peer(req.peer, peer.local_ufrag.clone());
        self.peers.insert(req.peer, peer);
        // Attendance hears of it when its media connects (`Peer::on_event`): presence means
        // media.
        for other in others {
            if self.hears_of(other, &info) {
                self.fx
                    .send_to_peer(other, PeerEvent::ParticipantJoined(info.clone()));
            }
        }
        self.catch_up(req.peer, &req.room);
        self.subscribe_existing(req.peer, &req.room);

        let Sfu { peers, fx, .. } = self;
        if let Some(p) = peers.get_mut(&req.peer) {
            guard(p, fx, |p, fx| p.drain(fx));
        }
        self.schedule(req.peer);
        // The joiner gets the state at once; a watcher's coming is news to the runners only.
        let scope = if is_audience(req.role) {
            crate::lesson::state_push::StateScope::Joined(req.peer)
        } else {
            crate::lesson::state_push::StateScope::Everyone
        };
        self.push_state_to(&req.room, scope);
        self.process(now);
        tracing::info!(peer = %req.peer, room = %req.room, role = %req.role, mode = mode.as_str(), "joined");
        Ok(Answer {
            sdp: complete_candidates(&answer.to_sdp_string()),
            rejected: screened.rejected,
        })
    }

    /// How a new connection of a `role` peer in `room` is adapted to (`BwePolicy`).
    fn adapted(&self, room: &RoomId, role: Role, offered: Feedback) -> Feedback {
        let audience = self.rooms.get(room).map_or(0, |r| {
            r.peers
                .iter()
                .filter(|p| self.peers.get(p).is_some_and(|p| is_audience(p.info.role)))
                .count()
        });
        self.config.bwe_policy.feedback(role, offered, audience)
    }

    /// A str0m instance for a new connection, with the shard's candidates, that accepted the
    /// screened offer.
    fn accept_fresh(
        &self,
        now: Instant,
        screened: &Screened,
    ) -> Result<(Rtc, str0m::change::SdpAnswer), SfuError> {
        let offer = SdpOffer::from_sdp_string(&screened.sdp)
            .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        let mut rtc = self.build_rtc(now, screened.feedback);
        for addr in &self.config.candidates {
            match Candidate::host(*addr, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => tracing::warn!(%addr, "unusable candidate address: {e}"),
            }
        }
        for addr in &self.config.tcp_candidates {
            let c = Candidate::builder()
                .tcp()
                .host(*addr)
                .tcptype(TcpType::Passive)
                .build();
            match c {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => tracing::warn!(%addr, "unusable TCP candidate address: {e}"),
            }
        }
        // add_local_candidate is a mutation: drain before the next one (nothing to send yet).
        while let Ok(o) = rtc.poll_output() {
            if matches!(o, str0m::Output::Timeout(_)) {
                break;
            }
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        Ok((rtc, answer))
    }

    /// Whether `listener` is told about `who` joining or leaving: audience members (possibly
    /// hundreds) are announced only to the people who run the lesson.
    pub(crate) fn hears_of(&self, listener: PeerId, who: &ParticipantInfo) -> bool {
        if !is_audience(who.role) {
            return true;
        }
        self.peers
            .get(&listener)
            .is_some_and(|l| !is_audience(l.info.role))
    }

    /// Tells a newcomer who is already in the room and what they publish. The application's
    /// welcome message may predate the join; these events make the newcomer's view exact.
    fn catch_up(&mut self, newcomer: PeerId, room: &RoomId) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let infos: Vec<ParticipantInfo> = r
            .peers
            .iter()
            .filter(|p| **p != newcomer)
            .filter_map(|p| self.peers.get(p).map(|p| p.info.clone()))
            .collect();
        let tracks: Vec<TrackInfo> = r.track_infos();
        for info in infos {
            if self.hears_of(newcomer, &info) {
                self.fx
                    .send_to_peer(newcomer, PeerEvent::ParticipantJoined(info));
            }
        }
        for t in tracks {
            self.fx.send_to_peer(newcomer, PeerEvent::TrackAdded(t));
        }
    }

    fn subscribe_existing(&mut self, peer: PeerId, room: &RoomId) {
        let existing: Vec<(TrackInfo, Role)> = self
            .rooms
            .get(room)
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
            self.subscribe(peer, &track, role);
        }
    }

    /// A peer that lost its connection comes back with a new one (a reloaded page, a new
    /// `RTCPeerConnection`) under the same peer id: its place on stage, hand and mutes stay;
    /// its tracks are replaced and everything it receives is offered again.
    pub fn rejoin(
        &mut self,
        now: Instant,
        peer: PeerId,
        offer: &str,
        sources: &[(String, TrackSource)],
    ) -> Result<Answer, SfuError> {
        let p = self.peers.get(&peer).ok_or(SfuError::UnknownPeer(peer))?;
        if p.mode != PeerMode::Signaling {
            return Err(SfuError::Forbidden("only signaling peers rejoin".into()));
        }
        let named: HashMap<String, TrackSource> = sources.iter().cloned().collect();
        let room_id = p.room.clone();
        let (role, mode) = (p.info.role, p.mode);
        let may = |s: TrackSource| {
            self.rooms
                .get(&room_id)
                .is_some_and(|r| r.floor.may_publish(role, peer, s))
        };
        let mut screened = screen_offer(offer, role, mode, &named, &[], &may);
        screened.feedback = self.adapted(&room_id, role, screened.feedback);
        let (rtc, answer) = self.accept_fresh(now, &screened)?;

        // Out with the old connection: its tracks end, its m-lines are gone.
        let old_tracks: Vec<TrackId> = p.publishing.tracks.values().copied().collect();
        for t in old_tracks {
            self.remove_track(&room_id, t);
        }
        let Some(p) = self.peers.get_mut(&peer) else {
            return Err(SfuError::UnknownPeer(peer));
        };
        let mut fresh = successor(p, rtc, &screened, now, self.config.connect_timeout);
        apply_screened(&mut fresh, &screened);
        fresh.publishing.note_keyframe_feedback(offer);
        *p = fresh;
        self.demux.remove_peer(peer);
        self.demux
            .add_peer(peer, self.peers[&peer].local_ufrag.clone());
        self.to_negotiate.push(peer);
        self.fx.activity(&room_id, peer, Activity::Rejoined);

        let Sfu { peers, fx, .. } = self;
        if let Some(p) = peers.get_mut(&peer) {
            guard(p, fx, |p, fx| p.drain(fx));
        }
        self.schedule(peer);
        self.push_state(&room_id, false);
        self.process(now);
        tracing::info!(%peer, room = %room_id, "rejoined with a new connection");
        Ok(Answer {
            sdp: complete_candidates(&answer.to_sdp_string()),
            rejected: screened.rejected,
        })
    }

    /// The peer's signaling connection is gone; it has the grace period to come back.
    pub fn detach(&mut self, now: Instant, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            if p.link.detach(now) {
                self.fx.activity(&p.room, peer, Activity::Detached);
            }
            self.schedule(peer);
        }
        self.process(now);
    }

    /// A new signaling connection took over the peer. An offer that was in flight to the old
    /// connection is withdrawn and made again, so the new connection gets it.
    pub fn attach(&mut self, now: Instant, peer: PeerId) -> Result<(), SfuError> {
        let p = self
            .peers
            .get_mut(&peer)
            .ok_or(SfuError::UnknownPeer(peer))?;
        // Only a return after a loss is an activity; a second tab taking over is not.
        if p.link.attach() {
            self.fx.activity(&p.room, peer, Activity::Attached);
        }
        if p.negotiation.pending_offer.take().is_some() {
            p.negotiation.offered_mids.clear();
            for sub in p.subs.values_mut() {
                if matches!(sub.state, SubState::Offered(_)) {
                    sub.state = SubState::Wanted;
                }
            }
            p.negotiation.needed = true;
        }
        self.to_negotiate.push(peer);
        self.schedule(peer);
        self.process(now);
        Ok(())
    }

    /// A client offer on an existing session (a screen share being added, an ICE restart).
    pub fn client_offer(
        &mut self,
        now: Instant,
        peer: PeerId,
        sdp: &str,
        sources: &[(String, TrackSource)],
    ) -> Result<Answer, SfuError> {
        let p = self.peers.get(&peer).ok_or(SfuError::UnknownPeer(peer))?;
        if p.mode != PeerMode::Signaling {
            return Err(SfuError::Forbidden(
                "WHIP and WHEP sessions cannot renegotiate".into(),
            ));
        }
        let named: HashMap<String, TrackSource> = sources.iter().cloned().collect();
        let server_sends: Vec<String> = p
            .subs
            .values()
            .filter(|s| s.out.is_some())
            .filter_map(|s| s.mid())
            .map(|m| m.to_string())
            .collect();
        let (role, mode, room_id) = (p.info.role, p.mode, p.room.clone());
        let may = |s: TrackSource| {
            self.rooms
                .get(&room_id)
                .is_some_and(|r| r.floor.may_publish(role, peer, s))
        };
        let screened = screen_offer(sdp, role, mode, &named, &server_sends, &may);
        let Sfu { peers, fx, .. } = self;
        let p = peers.get_mut(&peer).ok_or(SfuError::UnknownPeer(peer))?;
        p.publishing.note_keyframe_feedback(sdp);
        for (mid, acc) in &screened.accepted {
            let mid = Mid::from(mid.as_str());
            if let Accepted::Publish(source) = acc
                && !p.publishing.tracks.contains_key(&mid)
            {
                p.publishing.sources.insert(mid, *source);
            }
        }
        let old_ufrag = p.local_ufrag.clone();
        let result = guard(p, fx, |p, fx| p.accept_client_offer(&screened.sdp, fx))
            .unwrap_or(Err(SfuError::Internal(peer)));
        // An ICE restart gives the peer new credentials: route its new checks to it.
        if let Some(p) = self.peers.get_mut(&peer) {
            let ufrag = p.rtc.direct_api().local_ice_credentials().ufrag;
            if ufrag != old_ufrag {
                p.local_ufrag = ufrag.clone();
                self.demux.add_peer(peer, ufrag);
            }
        }
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
        let published: Vec<TrackId> = peer.publishing.tracks.values().copied().collect();
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
        room.floor.remove_peer(id);
        let speaker_gone = room.speaker.remove_peer(id);
        let others = room.peers.clone();
        for o in others {
            if self.hears_of(o, &peer.info) {
                self.fx
                    .send_to_peer(o, PeerEvent::ParticipantLeft { peer: id, reason });
            }
            if speaker_gone {
                self.fx
                    .send_to_peer(o, PeerEvent::ActiveSpeaker { peer: None });
            }
        }
        self.fx.event(SfuEvent::PeerLeft {
            peer: id,
            room: room_id.clone(),
            reason,
        });
        tracing::info!(peer = %id, room = %room_id, reason = reason.as_str(), "left");
        if self.rooms.get(&room_id).is_some_and(|r| r.peers.is_empty()) {
            if let Some(r) = self.rooms.remove(&room_id)
                && r.recorder.is_some()
            {
                self.fx.out.push_back(crate::event::SfuOutput::Record(
                    crate::event::RecordEvent::Stopped {
                        room: room_id.clone(),
                    },
                ));
            }
            self.fx.event(SfuEvent::RoomClosed { room: room_id });
        } else {
            self.refresh_forwarding(&room_id);
            self.push_state(&room_id, is_audience(peer.info.role));
        }
    }
}

/// Records what the offer screening accepted: sources of published m-lines, WHEP slots.
fn apply_screened(peer: &mut Peer, screened: &Screened) {
    for (mid, acc) in &screened.accepted {
        let mid = Mid::from(mid.as_str());
        match acc {
            Accepted::Publish(source) => {
                peer.publishing.sources.insert(mid, *source);
            }
            Accepted::Slot(kind) => {
                let ssrc = peer
                    .rtc
                    .direct_api()
                    .stream_tx_by_mid(mid, None)
                    .map(|s| s.ssrc());
                peer.slots.push(Slot {
                    mid,
                    kind: *kind,
                    bound: None,
                    idle: Some(OutStream::new(*kind, ssrc)),
                });
            }
        }
    }
    peer.slots.sort_by_key(|s| s.mid);
}

/// The peer of a new connection that replaces `old`'s (see [`Sfu::rejoin`]). It continues the
/// old one's presence: it is silent since the old one's last datagram and has what is left of
/// the grace (or of the first connection's deadline) to carry media, so replacing connections
/// cannot keep a peer without media. Its link keeps its configured limits, and its
/// subscriptions (their tracks still exist) are offered anew.
fn successor(
    old: &mut Peer,
    rtc: Rtc,
    screened: &Screened,
    now: Instant,
    connect_timeout: Duration,
) -> Peer {
    let link = old.link.successor(now, connect_timeout);
    let mut fresh = Peer::new(
        old.id,
        old.room.clone(),
        old.info.clone(),
        old.mode,
        rtc,
        screened.feedback,
        link.connect_deadline,
        now,
    );
    fresh.link = link;
    fresh.downlink.caps = old.downlink.caps;
    for (id, mut sub) in std::mem::take(&mut old.subs) {
        // A new connection: new m-lines, new streams.
        sub.state = SubState::Wanted;
        sub.out = None;
        sub.selector.set_target(None);
        fresh.subs.insert(id, sub);
    }
    fresh.negotiation.needed = !fresh.subs.is_empty();
    fresh
}
