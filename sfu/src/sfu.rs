//! `Sfu`: one shard. Owns its rooms and peers, routes datagrams to peers, fans packets out to
//! subscribers, and reports what to send and when to wake it next.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use str0m::Rtc;
use str0m::bwe::Bitrate;
use str0m::config::DtlsCert;

use crate::config::SfuConfig;
use crate::effects::Effects;
use crate::error::SfuError;
use crate::event::{LeaveReason, RoomSnapshot, SfuOutput};
use crate::ids::{PeerId, RoomId};
use crate::lesson::room::Room;
use crate::session::demux::Demux;
use crate::session::peer::Peer;
use crate::session::sdp::Feedback;
use crate::session::transport::Transport;
use crate::timers::Timers;

/// How often str0m reports statistics: stream totals for the metrics, and the current
/// bandwidth estimate, which allocation follows (a second would be too slow for a collapsing
/// link).
const STATS_EVERY: Duration = Duration::from_millis(200);

/// One shard of the media plane. See the crate docs for the run loop.
pub struct Sfu {
    pub(crate) config: SfuConfig,
    pub(crate) cert: DtlsCert,
    pub(crate) rooms: HashMap<RoomId, Room>,
    pub(crate) peers: HashMap<PeerId, Peer>,
    pub(crate) demux: Demux,
    pub(crate) timers: Timers,
    pub(crate) fx: Effects,
    pub(crate) next_track: u64,
    /// Peers whose negotiation may need to run after the current input.
    pub(crate) to_negotiate: Vec<PeerId>,
    due: Vec<PeerId>,
    /// The latest `now` given to the shard.
    pub(crate) last_now: Instant,
    /// The earliest coalesced room state that is due (`state_push`).
    pub(crate) state_due: Option<Instant>,
}

/// Runs `f` on a peer; a panic inside (a bug in str0m or here) marks that peer for removal
/// instead of taking the shard down. `Rtc` holds no locks, so dropping it afterwards is safe.
pub(crate) fn guard<R>(
    peer: &mut Peer,
    fx: &mut Effects,
    f: impl FnOnce(&mut Peer, &mut Effects) -> R,
) -> Option<R> {
    let id = peer.id;
    match catch_unwind(AssertUnwindSafe(|| f(peer, fx))) {
        Ok(r) => Some(r),
        Err(_) => {
            tracing::error!(peer = %id, "panic while handling peer; removing it");
            fx.leaving.push((id, LeaveReason::Internal));
            None
        }
    }
}

impl Sfu {
    /// A shard with no rooms.
    pub fn new(config: SfuConfig, now: Instant) -> Result<Self, SfuError> {
        let cert = str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| SfuError::InvalidSdp("no DTLS certificate generator".into()))?;
        Ok(Sfu {
            next_track: config.track_id_base,
            config,
            cert,
            rooms: HashMap::new(),
            peers: HashMap::new(),
            demux: Demux::default(),
            timers: Timers::default(),
            fx: Effects::default(),
            to_negotiate: Vec::new(),
            due: Vec::new(),
            last_now: now,
            state_due: None,
        })
    }

    /// A new str0m instance for a peer: ICE-lite, RTP mode, the shard's certificate. Send-side
    /// estimation (with str0m's pacer) only where the receiver gives TWCC feedback: without
    /// it the estimator has nothing to learn from, and its pacer would hold media at a guessed
    /// rate.
    pub(crate) fn build_rtc(&self, now: Instant, feedback: Feedback) -> Rtc {
        let c = &self.config;
        let bwe = match feedback {
            Feedback::Twcc => Some(Bitrate::bps(c.initial_bitrate_bps)),
            Feedback::Reports => None,
        };
        Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_dtls_cert(self.cert.clone())
            .clear_codecs()
            // Forwarded as-is: RED would need unwrapping for subscribers without it.
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(c.enable_h264)
            .enable_vp9(c.enable_vp9)
            .enable_bwe(bwe)
            // NACK, PLI and loss totals per stream for the metrics (`stats.rs`), and the
            // current bandwidth estimate for allocation (`estimate.rs`).
            .set_stats_interval(Some(STATS_EVERY))
            .build(now)
    }

    /// A datagram arrived on the shard's socket (`to` is the socket's address).
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: &[u8]) {
        self.handle_packet(now, Transport::Udp, from, to, data);
    }

    /// A packet that came on `transport` (a UDP datagram or an RFC 4571 frame from the TCP
    /// connection from `from`); true if it belonged to a peer. The application closes TCP
    /// connections that never carry such a packet.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        transport: Transport,
        from: SocketAddr,
        to: SocketAddr,
        data: &[u8],
    ) -> bool {
        let Some(id) = self.demux.route(from, data) else {
            return false;
        };
        let Sfu { peers, fx, .. } = self;
        let found = match peers.get_mut(&id) {
            Some(peer) => {
                guard(peer, fx, |p, fx| {
                    p.handle_datagram(now, transport, from, to, data, fx)
                });
                self.schedule(id);
                true
            }
            None => false,
        };
        self.process(now);
        found
    }

    /// Time passed: wake every peer whose deadline is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        let peers = &self.peers;
        self.timers
            .pop_due(now, |p| peers.get(&p).map(|p| p.next_timeout), &mut due);
        for id in &due {
            let Sfu { peers, fx, .. } = self;
            if let Some(peer) = peers.get_mut(id) {
                guard(peer, fx, |p, fx| p.handle_timeout(now, fx));
                fx.stats.peer_rounds += 1;
            }
            self.schedule(*id);
        }
        self.due = due;
        self.last_now = self.last_now.max(now);
        self.flush_states(now);
        self.process(now);
    }

    /// The next output. Call until it returns `Timeout`.
    pub fn poll_output(&mut self) -> SfuOutput {
        if let Some(o) = self.fx.out.pop_front() {
            return o;
        }
        let peers = &self.peers;
        let next = self
            .timers
            .earliest(|p| peers.get(&p).map(|p| p.next_timeout));
        let next = match (next, self.state_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // With no peers there is nothing to wake for; an hour stands in for "never".
        SfuOutput::Timeout(next.unwrap_or(self.last_now + Duration::from_secs(3600)))
    }

    /// What a room holds now.
    pub fn room_snapshot(&self, room: &RoomId) -> Option<RoomSnapshot> {
        let r = self.rooms.get(room)?;
        let participants = r
            .peers
            .iter()
            .filter_map(|p| self.peers.get(p).map(|p| p.info.clone()))
            .collect();
        let mut snap = r.snapshot(participants);
        snap.transports = r
            .peers
            .iter()
            .filter_map(|id| self.peers.get(id))
            .filter(|p| p.link.connected)
            .map(|p| (p.id, p.transport))
            .collect();
        Some(snap)
    }

    /// Number of peers on the shard.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Number of rooms on the shard.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Records a peer's (possibly new) deadline in the timer queue.
    pub(crate) fn schedule(&mut self, id: PeerId) {
        if let Some(p) = self.peers.get(&id) {
            self.timers.push(p.next_timeout, id);
        }
    }

    /// Works through everything queued by the last input, until only output remains.
    pub(crate) fn process(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        for _ in 0..1_000_000 {
            if let Some(f) = self.fx.media.pop_front() {
                self.fan_out(now, f);
                continue;
            }
            if !self.fx.media_added.is_empty() {
                for (peer, m) in std::mem::take(&mut self.fx.media_added) {
                    self.on_media_added(now, peer, m);
                }
                continue;
            }
            if !self.fx.keyframe_requests.is_empty() {
                for (peer, mid, kind) in std::mem::take(&mut self.fx.keyframe_requests) {
                    self.on_keyframe_request(now, peer, mid, kind);
                }
                continue;
            }
            if !self.fx.layer_paused.is_empty() {
                for (peer, mid, rid, paused) in std::mem::take(&mut self.fx.layer_paused) {
                    self.on_layer_paused(peer, mid, rid, paused);
                }
                continue;
            }
            if !self.fx.floor_changed.is_empty() {
                let mut rooms: Vec<RoomId> = Vec::new();
                for peer in std::mem::take(&mut self.fx.floor_changed) {
                    if let Some(p) = self.peers.get(&peer)
                        && !rooms.contains(&p.room)
                    {
                        rooms.push(p.room.clone());
                    }
                }
                for r in rooms {
                    self.push_state(&r, false);
                }
                continue;
            }
            if !self.fx.allocate.is_empty() {
                let mut due = std::mem::take(&mut self.fx.allocate);
                due.sort();
                due.dedup();
                for peer in due {
                    self.allocate(now, peer);
                }
                continue;
            }
            if !self.fx.leaving.is_empty() {
                for (peer, reason) in std::mem::take(&mut self.fx.leaving) {
                    self.remove_peer(now, peer, reason);
                }
                continue;
            }
            if !self.to_negotiate.is_empty() {
                for id in std::mem::take(&mut self.to_negotiate) {
                    let Sfu { peers, fx, .. } = self;
                    if let Some(p) = peers.get_mut(&id) {
                        guard(p, fx, |p, fx| p.negotiate(fx));
                    }
                    self.schedule(id);
                }
                continue;
            }
            debug_assert!(!self.fx.has_work());
            break;
        }
        let deadlines: HashMap<PeerId, Instant> = if self.timers.len() > 4 * self.peers.len() + 64 {
            self.peers
                .iter()
                .map(|(k, p)| (*k, p.next_timeout))
                .collect()
        } else {
            HashMap::new()
        };
        if !deadlines.is_empty() {
            self.timers.compact(&deadlines);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{JoinRequest, SfuEvent};
    use crate::lesson::role::Role;
    use crate::session::sdp::PeerMode;
    use str0m::media::{Direction, MediaKind};

    fn offer(now: Instant) -> String {
        let mut rtc = Rtc::builder().build(now);
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let (offer, _pending) = api.apply().unwrap();
        offer.to_sdp_string()
    }

    fn join(sfu: &mut Sfu, now: Instant, peer: u64) {
        let req = JoinRequest {
            peer: PeerId(peer),
            room: RoomId::new("r").unwrap(),
            name: format!("p{peer}"),
            role: Role::Classroom,
            classroom: None,
            joined_at_ms: 0,
            mode: PeerMode::Signaling,
            offer: offer(now),
            sources: vec![],
            lesson_mode: crate::lesson::floor::LessonMode::Open,
            caps: Default::default(),
        };
        sfu.join(now, req).unwrap();
    }

    #[test]
    fn a_panic_while_handling_a_peer_removes_that_peer_only() {
        let now = Instant::now();
        let addr = "10.0.0.1:10000".parse().unwrap();
        let mut sfu = Sfu::new(SfuConfig::new(vec![addr]), now).unwrap();
        join(&mut sfu, now, 1);
        join(&mut sfu, now, 2);
        while !matches!(sfu.poll_output(), SfuOutput::Timeout(_)) {}

        // A bug inside the handling of peer 1 (here: a deliberate panic).
        let Sfu { peers, fx, .. } = &mut sfu;
        let r = guard(peers.get_mut(&PeerId(1)).unwrap(), fx, |_, _| -> () {
            panic!("injected bug")
        });
        assert!(r.is_none());
        sfu.process(now);

        assert_eq!(sfu.peer_count(), 1);
        assert!(sfu.peers.contains_key(&PeerId(2)));
        let mut left = Vec::new();
        loop {
            match sfu.poll_output() {
                SfuOutput::Timeout(_) => break,
                SfuOutput::Event(SfuEvent::PeerLeft { peer, reason, .. }) => {
                    left.push((peer, reason))
                }
                _ => {}
            }
        }
        assert_eq!(left, vec![(PeerId(1), LeaveReason::Internal)]);
        // The shard keeps working for the other peer.
        sfu.handle_timeout(now + Duration::from_millis(50));
    }
}
