//! Bandwidth reports: what each peer is estimated to carry, what it is allowed, what the
//! allocator gave it and which layer of each stream it gets; and for publishers, what each of
//! their simulcast layers costs and whether it is asked for. Read by the room stats API and
//! the client's stats overlay; built from state the allocation rounds keep, so reading it
//! changes nothing.

use std::time::Instant;

use serde::Serialize;

use crate::event::PeerCaps;
use crate::ids::{PeerId, RoomId, TrackId};
use crate::lesson::role::{Role, TrackKind, TrackSource};
use crate::session::sdp::Feedback;
use crate::session::transport::Transport;
use crate::sfu::Sfu;
use crate::stats::{BWE_BUCKETS_BPS, SfuSnapshot, SfuStats};

/// A peer's bandwidth picture.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PeerBandwidth {
    /// The peer.
    pub peer_id: PeerId,
    /// Send-side estimate towards it, bit/s (TWCC; without it what its reports allow, as
    /// allocated).
    pub estimate_bps: Option<u64>,
    /// How it reports back on its link.
    pub feedback: Feedback,
    /// The transport its media uses; `None` until it connects.
    pub transport: Option<crate::session::transport::Transport>,
    /// Its configured limits.
    pub caps: PeerCaps,
    /// Bit/s allocated in the last round.
    pub allocated_bps: u64,
    /// Bit/s the estimator is probing for, if an upgrade is pending.
    pub probe_bps: Option<u64>,
    /// Per received track.
    pub tracks: Vec<TrackBandwidth>,
    /// Per track it publishes.
    pub published: Vec<PublishedTrack>,
}

/// One received track in `PeerBandwidth`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TrackBandwidth {
    /// The track.
    pub track_id: TrackId,
    /// Its publisher.
    pub publisher: PeerId,
    /// Camera, microphone or screen.
    pub source: TrackSource,
    /// Layer the allocator chose (`None`: paused).
    pub target: Option<usize>,
    /// Layer being forwarded now.
    pub current: Option<usize>,
    /// Layers the track has.
    pub layers: usize,
}

/// One published track in `PeerBandwidth`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PublishedTrack {
    /// The track.
    pub track_id: TrackId,
    /// Camera, microphone or screen.
    pub source: TrackSource,
    /// Audio or video.
    pub kind: TrackKind,
    /// Lowest quality first.
    pub layers: Vec<LayerReport>,
}

/// One simulcast layer of a published track.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LayerReport {
    /// Simulcast rid (`q`, `h`, `f`), none for a single-layer track.
    pub rid: Option<String>,
    /// Last measured rate while it flowed, bit/s (0: never seen).
    pub bps: u64,
    /// Packets received on it.
    pub packets: u64,
    /// The publisher was asked to send it (dynacast); `None`: never told, all on.
    pub requested: Option<bool>,
}

impl Sfu {
    /// The bandwidth picture of one peer.
    pub fn peer_bandwidth(&self, peer: PeerId) -> Option<PeerBandwidth> {
        let p = self.peers.get(&peer)?;
        let room = self.rooms.get(&p.room)?;
        let d = p.downlink.last_decision.as_ref();
        let mut tracks: Vec<TrackBandwidth> = p
            .subs
            .values()
            .map(|s| TrackBandwidth {
                track_id: s.info.track_id,
                publisher: s.info.peer_id,
                source: s.info.source,
                target: d
                    .and_then(|d| d.layers.iter().find(|(t, _)| *t == s.info.track_id))
                    .and_then(|(_, l)| *l),
                current: s.selector.current(),
                layers: room
                    .tracks
                    .get(&s.info.track_id)
                    .map_or(0, |t| t.layers.len()),
            })
            .collect();
        tracks.sort_by_key(|t| t.track_id);
        let mut published: Vec<PublishedTrack> = room
            .tracks
            .values()
            .filter(|t| t.info.peer_id == peer)
            .map(|t| PublishedTrack {
                track_id: t.info.track_id,
                source: t.info.source,
                kind: t.info.kind,
                layers: t
                    .layers
                    .iter()
                    .enumerate()
                    .map(|(i, l)| LayerReport {
                        rid: l.rid.map(|r| r.to_string()),
                        bps: l.last_bps,
                        packets: l.packets,
                        requested: t.published.as_ref().and_then(|v| v.get(i).copied()),
                    })
                    .collect(),
            })
            .collect();
        published.sort_by_key(|t| t.track_id);
        Some(PeerBandwidth {
            peer_id: peer,
            // What allocation works with (estimate.rs).
            estimate_bps: p.downlink.estimate_bps(),
            feedback: p.downlink.feedback,
            transport: p.link.connected.then_some(p.transport),
            caps: p.downlink.caps,
            allocated_bps: d.map_or(0, |d| d.allocated_bps),
            probe_bps: d.and_then(|d| d.probe_bps),
            tracks,
            published,
        })
    }

    /// The bandwidth pictures of a room's peers (`only`: just that peer, if it is there).
    pub fn room_bandwidth(&self, room: &RoomId, only: Option<PeerId>) -> Vec<PeerBandwidth> {
        let Some(r) = self.rooms.get(room) else {
            return Vec::new();
        };
        let mut peers: Vec<PeerId> = r
            .peers
            .iter()
            .copied()
            .filter(|p| only.is_none_or(|o| o == *p))
            .collect();
        peers.sort();
        peers
            .into_iter()
            .filter_map(|p| self.peer_bandwidth(p))
            .collect()
    }
}

impl Sfu {
    /// The shard's counters.
    pub fn stats(&self) -> &SfuStats {
        &self.fx.stats
    }

    /// Counters and current holdings. Walks every peer and room: call it about once a second,
    /// not per packet.
    pub fn stats_snapshot(&mut self, now: Instant) -> SfuSnapshot {
        self.fx.stats.forget_stale(now);
        let mut s = SfuSnapshot {
            counters: self.fx.stats.clone(),
            rooms: self.rooms.len() as u64,
            ..SfuSnapshot::default()
        };
        for room in self.rooms.values() {
            s.recording_rooms += u64::from(room.recorder.is_some());
            for t in room.tracks.values() {
                match t.info.kind {
                    TrackKind::Audio => s.tracks_audio += 1,
                    TrackKind::Video => s.tracks_video += 1,
                }
            }
        }
        for p in self.peers.values() {
            if let Some(i) = Role::ALL.iter().position(|r| *r == p.info.role) {
                s.peers_by_role[i] += 1;
            }
            s.peers_connected += u64::from(p.link.connected);
            if p.link.connected
                && let Some(i) = Transport::ALL.iter().position(|t| *t == p.transport)
            {
                s.peers_by_transport[i] += 1;
            }
            s.subscriptions += p.subs.len() as u64;
            if let Some(bps) = p.downlink.estimate.round(p.downlink.average_bps) {
                s.bwe_min_bps = if s.bwe_peers == 0 {
                    bps
                } else {
                    s.bwe_min_bps.min(bps)
                };
                s.bwe_peers += 1;
                s.bwe_sum_bps = s.bwe_sum_bps.saturating_add(bps);
                for (i, le) in BWE_BUCKETS_BPS.iter().enumerate() {
                    s.bwe_buckets[i] += u64::from(bps <= *le);
                }
            }
        }
        s
    }
}
