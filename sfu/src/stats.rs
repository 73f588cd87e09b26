//! Counters and a periodic snapshot of one shard, for the application's metrics endpoint.
//!
//! The packet path only adds to plain `u64` fields of [`SfuStats`] (it lives in `Effects`, the
//! one mutable context every peer method already gets): no lock, no atomic, no allocation. The
//! shard thread copies them out with [`Sfu::stats_snapshot`] about once a second, which also
//! counts what is cheaper to count then than on every change (peers by role, tracks, the
//! bandwidth estimates) and publishes the copy where the metrics scrape can read it.
//!
//! NACK, PLI, FIR and loss figures come from str0m's own per-stream statistics
//! (`Event::MediaEgressStats` / `MediaIngressStats`, once a second per peer). Those are totals
//! per stream since the stream began; [`SfuStats`] turns them into shard-wide counters that
//! only grow, by remembering the last total of each stream.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use str0m::media::{Mid, Rid};
use str0m::stats::{MediaEgressStats, MediaIngressStats};

use crate::ids::PeerId;
use crate::lesson::role::{Role, TrackKind};
use crate::session::transport::Transport;

/// Upper bounds (bit/s) of the buckets of [`SfuSnapshot::bwe_buckets`].
pub const BWE_BUCKETS_BPS: [u64; 8] = [
    250_000, 500_000, 1_000_000, 2_000_000, 3_000_000, 5_000_000, 10_000_000, 20_000_000,
];

/// A stream's totals are forgotten when str0m has not reported it for this long (its peer
/// left, or the m-line stopped); str0m reports live streams every second.
const FORGET_AFTER: Duration = Duration::from_secs(10);

/// Shard-wide counters since the shard started. They only grow.
#[derive(Debug, Default, Clone)]
pub struct SfuStats {
    /// RTP packets received from publishers (after SRTP, before fan-out).
    pub rtp_in: u64,
    /// RTP packets written to subscribers, audio.
    pub forwarded_audio: u64,
    /// RTP packets written to subscribers, video.
    pub forwarded_video: u64,
    /// A video subscription started a new segment after having sent before: a simulcast layer
    /// switch, or a restart at a keyframe after a pause (congestion, a WHEP slot rebound).
    pub layer_switches: u64,
    /// NACKs received from subscribers (answered from str0m's send buffer).
    pub nacks_received: u64,
    /// NACKs sent to publishers.
    pub nacks_sent: u64,
    /// PLIs received from subscribers.
    pub plis_received: u64,
    /// PLIs sent to publishers.
    pub plis_sent: u64,
    /// FIRs received from subscribers.
    pub firs_received: u64,
    /// FIRs sent to publishers.
    pub firs_sent: u64,
    /// Packets subscribers reported lost (RTCP receiver reports).
    pub lost_egress: u64,
    /// Packets lost on the way from publishers, estimated from the loss fraction of each
    /// receiver report the shard sends and the packets received meanwhile.
    pub lost_ingress: u64,
    /// Timeout rounds run on peers (`Rtc::handle_timeout` and its drain). Writes to a
    /// subscriber only make it due, so a batch of ingress packets costs each subscriber one
    /// round: under load this stays well below the forwarded packets.
    pub peer_rounds: u64,
    prev: HashMap<StreamKey, Totals>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct StreamKey {
    peer: PeerId,
    mid: Mid,
    rid: Option<Rid>,
    egress: bool,
}

/// The last totals str0m reported for one stream.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    nacks: u64,
    plis: u64,
    firs: u64,
    packets: u64,
    lost: u64,
    seen: Option<Instant>,
}

/// How much a per-stream total grew. A total below the last one means str0m made the stream
/// anew (a reconnecting peer's new connection): everything in it is new.
fn grown(new: u64, old: u64) -> u64 {
    if new >= old { new - old } else { new }
}

impl SfuStats {
    /// A published RTP packet arrived.
    pub(crate) fn on_rtp_in(&mut self) {
        self.rtp_in += 1;
    }

    /// A packet was written to a subscriber.
    pub(crate) fn on_forwarded(&mut self, kind: TrackKind) {
        match kind {
            TrackKind::Audio => self.forwarded_audio += 1,
            TrackKind::Video => self.forwarded_video += 1,
        }
    }

    /// A subscription started a new rewrite segment; `out_seq` is the first outgoing sequence
    /// number of it (the stream's very first packet has 1, see `rewrite.rs`).
    pub(crate) fn on_new_segment(&mut self, kind: TrackKind, out_seq: u64) {
        if kind == TrackKind::Video && out_seq > 1 {
            self.layer_switches += 1;
        }
    }

    /// str0m's totals of one stream a peer receives from the shard.
    pub(crate) fn on_egress(&mut self, peer: PeerId, s: &MediaEgressStats) {
        let key = StreamKey {
            peer,
            mid: s.mid,
            rid: s.rid,
            egress: true,
        };
        let lost = s.remote.as_ref().map_or(0, |r| r.packets_lost);
        let prev = self.prev.entry(key).or_default();
        self.nacks_received += grown(s.nacks, prev.nacks);
        self.plis_received += grown(s.plis, prev.plis);
        self.firs_received += grown(s.firs, prev.firs);
        self.lost_egress += grown(lost, prev.lost);
        *prev = Totals {
            nacks: s.nacks,
            plis: s.plis,
            firs: s.firs,
            packets: s.packets,
            lost,
            seen: Some(s.timestamp),
        };
    }

    /// str0m's totals of one stream a peer publishes to the shard.
    pub(crate) fn on_ingress(&mut self, peer: PeerId, s: &MediaIngressStats) {
        let key = StreamKey {
            peer,
            mid: s.mid,
            rid: s.rid,
            egress: false,
        };
        let prev = self.prev.entry(key).or_default();
        self.nacks_sent += grown(s.nacks, prev.nacks);
        self.plis_sent += grown(s.plis, prev.plis);
        self.firs_sent += grown(s.firs, prev.firs);
        let packets = grown(s.packets, prev.packets);
        // The fraction is of the last report's interval; applied to the packets since the last
        // event it is an estimate, good enough to see loss appear and grow.
        let fraction = f64::from(s.loss.unwrap_or(0.0).clamp(0.0, 1.0));
        self.lost_ingress += (fraction * packets as f64).round() as u64;
        *prev = Totals {
            nacks: s.nacks,
            plis: s.plis,
            firs: s.firs,
            packets: s.packets,
            lost: 0,
            seen: Some(s.timestamp),
        };
    }

    /// Forgets streams not reported since `now - FORGET_AFTER`.
    pub(crate) fn forget_stale(&mut self, now: Instant) {
        self.prev.retain(|_, t| {
            t.seen
                .is_some_and(|s| now.saturating_duration_since(s) < FORGET_AFTER)
        });
    }

    /// Streams whose totals are remembered now (tests).
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.prev.len()
    }
}

/// The shard at one instant: the counters plus what it holds now.
#[derive(Debug, Clone, Default)]
pub struct SfuSnapshot {
    /// The counters.
    pub counters: SfuStats,
    /// Rooms on the shard.
    pub rooms: u64,
    /// Rooms being recorded.
    pub recording_rooms: u64,
    /// Peers by role, in the order of [`Role::ALL`].
    pub peers_by_role: [u64; 4],
    /// Peers whose ICE and DTLS are up.
    pub peers_connected: u64,
    /// Connected peers by the transport their media uses, in the order of [`Transport::ALL`].
    pub peers_by_transport: [u64; Transport::ALL.len()],
    /// Published audio tracks.
    pub tracks_audio: u64,
    /// Published video tracks.
    pub tracks_video: u64,
    /// Tracks sent to peers (one per subscriber and track).
    pub subscriptions: u64,
    /// Peers with a send-side bandwidth estimate (TWCC).
    pub bwe_peers: u64,
    /// Sum of those estimates, bit/s.
    pub bwe_sum_bps: u64,
    /// Lowest estimate, bit/s (0 without estimates).
    pub bwe_min_bps: u64,
    /// Peers whose estimate is at most `BWE_BUCKETS_BPS[i]`.
    pub bwe_buckets: [u64; BWE_BUCKETS_BPS.len()],
}

impl SfuSnapshot {
    /// Peers of `role` on the shard.
    pub fn peers(&self, role: Role) -> u64 {
        Role::ALL
            .iter()
            .position(|r| *r == role)
            .map_or(0, |i| self.peers_by_role[i])
    }

    /// Connected peers whose media travels on `transport`.
    pub fn peers_on(&self, transport: Transport) -> u64 {
        Transport::ALL
            .iter()
            .position(|t| *t == transport)
            .map_or(0, |i| self.peers_by_transport[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::stats::RemoteIngressStats;

    fn egress(at: Instant, nacks: u64, plis: u64, lost: u64) -> MediaEgressStats {
        MediaEgressStats {
            mid: Mid::from("1"),
            rid: None,
            bytes: 0,
            packets: 0,
            firs: 0,
            plis,
            nacks,
            rtt: None,
            loss: None,
            timestamp: at,
            remote: Some(RemoteIngressStats {
                jitter: 0,
                maximum_sequence_number: 0.into(),
                packets_lost: lost,
            }),
        }
    }

    #[test]
    fn per_stream_totals_become_growing_counters() {
        let t0 = Instant::now();
        let mut s = SfuStats::default();
        s.on_egress(PeerId(1), &egress(t0, 3, 1, 5));
        s.on_egress(PeerId(2), &egress(t0, 2, 0, 0));
        assert_eq!(
            (s.nacks_received, s.plis_received, s.lost_egress),
            (5, 1, 5)
        );
        // The next report of peer 1 adds only what grew.
        s.on_egress(PeerId(1), &egress(t0, 10, 1, 7));
        assert_eq!(
            (s.nacks_received, s.plis_received, s.lost_egress),
            (12, 1, 7)
        );
        // A stream made anew (lower totals) counts from zero again.
        s.on_egress(PeerId(1), &egress(t0, 4, 0, 0));
        assert_eq!(s.nacks_received, 16);
    }

    #[test]
    fn ingress_loss_is_estimated_from_fraction_and_packets() {
        let t0 = Instant::now();
        let mut s = SfuStats::default();
        let mut ing = MediaIngressStats {
            mid: Mid::from("0"),
            rid: None,
            bytes: 0,
            packets: 1000,
            firs: 0,
            plis: 2,
            nacks: 7,
            jitter: 0,
            rtt: None,
            loss: Some(0.01),
            timestamp: t0,
            remote: None,
        };
        s.on_ingress(PeerId(1), &ing);
        assert_eq!((s.nacks_sent, s.plis_sent, s.lost_ingress), (7, 2, 10));
        ing.packets = 1500;
        ing.loss = Some(0.0);
        s.on_ingress(PeerId(1), &ing);
        assert_eq!(s.lost_ingress, 10, "no loss in the second interval");
    }

    #[test]
    fn silent_streams_are_forgotten() {
        let t0 = Instant::now();
        let mut s = SfuStats::default();
        s.on_egress(PeerId(1), &egress(t0, 1, 0, 0));
        s.on_egress(PeerId(2), &egress(t0 + Duration::from_secs(8), 1, 0, 0));
        s.forget_stale(t0 + Duration::from_secs(11));
        assert_eq!(s.remembered(), 1);
        assert_eq!(s.nacks_received, 2, "counters stay");
    }

    #[test]
    fn only_video_segments_after_the_first_packet_are_switches() {
        let mut s = SfuStats::default();
        s.on_new_segment(TrackKind::Video, 1);
        s.on_new_segment(TrackKind::Audio, 500);
        s.on_new_segment(TrackKind::Video, 300);
        assert_eq!(s.layer_switches, 1);
    }
}
