//! Receive-side accounting for one media kind, fed RTP packet by RTP packet.
//!
//! [`crate::whep::WhepViewer`] owns one [`ReceiveAccumulator`] per kind behind a mutex; the
//! task polling a remote track calls [`ReceiveAccumulator::on_packet`] for every RTP packet,
//! and `stats()` turns it into a serialisable [`ReceiveStats`] snapshot.
//!
//! Two loss views are kept because they answer different questions:
//! * packet level, from RTP sequence numbers per SSRC (extended over 16-bit wrap): what the
//!   network and SFU dropped between SFU and viewer;
//! * frame level, from the synthetic [`crate::media::Stamp`] counters: what was lost end to
//!   end, publisher to viewer, whatever the SFU did to sequence numbers in between.
//!
//! Frame counters are not keyed by SSRC: a publisher that reconnects restarts at 0, so the
//! frame view is only exact for one publisher session per viewer.

use crate::media::{
    MediaKind, Stamp, h264_keyframe_start, parse_opus_payload, parse_vp8_descriptor,
    parse_vp8_frame,
};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// Default cap on stored one-way latency samples per kind (about 33 min of Opus at 50/s);
/// bounds memory in long load runs.
pub const DEFAULT_MAX_LATENCY_SAMPLES: usize = 100_000;

/// Percentiles of one-way latency samples, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: usize,
    /// Smallest sample.
    pub min_us: i64,
    /// Median.
    pub p50_us: i64,
    /// 95th percentile.
    pub p95_us: i64,
    /// 99th percentile.
    pub p99_us: i64,
    /// Largest sample.
    pub max_us: i64,
}

impl LatencySummary {
    /// Summarise `samples` (nearest-rank percentiles); `None` when empty.
    pub fn from_samples(samples: &[i64]) -> Option<LatencySummary> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let rank = |q: f64| {
            let idx = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[idx]
        };
        Some(LatencySummary {
            count: sorted.len(),
            min_us: sorted[0],
            p50_us: rank(0.50),
            p95_us: rank(0.95),
            p99_us: rank(0.99),
            max_us: sorted[sorted.len() - 1],
        })
    }
}

/// Snapshot of what one kind (audio or video) received.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReceiveStats {
    /// RTP packets delivered by the track, duplicates included.
    pub packets: u64,
    /// RTP payload bytes, duplicates included.
    pub bytes: u64,
    /// Distinct (SSRC, sequence number) pairs.
    pub unique_packets: u64,
    /// Packets whose sequence number had been seen before (retransmissions, duplicates).
    pub duplicate_packets: u64,
    /// Sum over SSRCs of `highest - lowest + 1` extended sequence numbers.
    pub expected_packets: u64,
    /// `expected_packets - unique_packets`: packets never received (sequence gaps).
    pub lost_packets: u64,
    /// Arrival of the first packet, microseconds since the UNIX epoch.
    pub first_arrival_us: Option<u64>,
    /// Arrival of the latest packet, microseconds since the UNIX epoch.
    pub last_arrival_us: Option<u64>,
    /// Distinct keyframes seen (VP8 P bit = 0 in the first packet of a frame; H.264 SPS).
    pub keyframes: u64,
    /// Arrival of the first packet of the first keyframe, microseconds since the UNIX epoch:
    /// from there on the video can be decoded.
    pub first_keyframe_us: Option<u64>,
    /// Distinct synthetic frames seen (by stamp counter).
    pub frames: u64,
    /// `highest - lowest + 1` stamp counters seen.
    pub frames_expected: u64,
    /// `frames_expected - frames`.
    pub frames_lost: u64,
    /// One-way latency (send stamp to arrival of the frame's first packet), if any
    /// synthetic frames arrived.
    pub latency: Option<LatencySummary>,
    /// SSRCs seen, in order of appearance.
    pub ssrcs: Vec<u32>,
}

impl ReceiveStats {
    /// Packet loss estimate from sequence gaps, 0.0 ..= 1.0.
    pub fn loss_ratio(&self) -> f64 {
        if self.expected_packets == 0 {
            0.0
        } else {
            self.lost_packets as f64 / self.expected_packets as f64
        }
    }
}

/// Sequence-number bookkeeping for one SSRC.
#[derive(Debug, Default)]
struct SeqTracker {
    lowest: u64,
    highest: u64,
    seen: HashSet<u64>,
}

impl SeqTracker {
    /// Extend a 16-bit sequence number relative to the highest seen so far (RFC 3550 A.1
    /// style): a packet within ±32767 of it is placed on the nearest cycle.
    fn extend(&self, seq: u16) -> u64 {
        if self.seen.is_empty() {
            // Start one cycle up so early reordered packets from "before" do not underflow.
            return (1 << 16) + u64::from(seq);
        }
        let delta = i64::from(seq.wrapping_sub(self.highest as u16) as i16);
        (self.highest as i64 + delta).max(0) as u64
    }

    /// Record a packet; returns false for a duplicate.
    fn insert(&mut self, seq: u16) -> bool {
        let ext = self.extend(seq);
        if self.seen.is_empty() {
            self.lowest = ext;
            self.highest = ext;
        }
        self.lowest = self.lowest.min(ext);
        self.highest = self.highest.max(ext);
        self.seen.insert(ext)
    }
}

/// Accumulates [`ReceiveStats`] for one kind from raw RTP packets.
#[derive(Debug)]
pub struct ReceiveAccumulator {
    kind: MediaKind,
    packets: u64,
    bytes: u64,
    duplicates: u64,
    seqs: HashMap<u32, SeqTracker>,
    ssrc_order: Vec<u32>,
    first_arrival_us: Option<u64>,
    last_arrival_us: Option<u64>,
    keyframes: u64,
    first_keyframe_us: Option<u64>,
    frames: HashSet<u64>,
    frame_range: Option<(u64, u64)>,
    latency_us: Vec<i64>,
    max_latency_samples: usize,
    /// The video is H.264 (RFC 6184 payloads), not VP8.
    h264: bool,
}

impl ReceiveAccumulator {
    /// An empty accumulator for `kind`, storing at most `max_latency_samples` latencies.
    pub fn new(kind: MediaKind, max_latency_samples: usize) -> Self {
        ReceiveAccumulator {
            kind,
            packets: 0,
            bytes: 0,
            duplicates: 0,
            seqs: HashMap::new(),
            ssrc_order: Vec::new(),
            first_arrival_us: None,
            last_arrival_us: None,
            keyframes: 0,
            first_keyframe_us: None,
            frames: HashSet::new(),
            frame_range: None,
            latency_us: Vec::new(),
            max_latency_samples,
            h264: false,
        }
    }

    /// Read video payloads as H.264 (RFC 6184) rather than VP8: keyframes are counted at
    /// their parameter sets, and clip frames carry no stamps.
    pub fn set_h264(&mut self, h264: bool) {
        self.h264 = h264;
    }

    /// Account one RTP packet (`payload` is the RTP payload, after any padding removal).
    pub fn on_packet(&mut self, ssrc: u32, seq: u16, payload: &[u8], arrival_us: u64) {
        self.packets += 1;
        self.bytes += payload.len() as u64;
        self.first_arrival_us.get_or_insert(arrival_us);
        self.last_arrival_us = Some(arrival_us);
        let tracker = self.seqs.entry(ssrc).or_insert_with(|| {
            self.ssrc_order.push(ssrc);
            SeqTracker::default()
        });
        if !tracker.insert(seq) {
            // A retransmitted copy must not count its frame twice either.
            self.duplicates += 1;
            return;
        }
        let (stamp, keyframe) = match self.kind {
            MediaKind::Audio => (parse_opus_payload(payload), false),
            MediaKind::Video if self.h264 => (None, h264_keyframe_start(payload).is_some()),
            MediaKind::Video => match video_frame_start(payload) {
                Some((stamp, keyframe)) => (stamp, keyframe),
                None => (None, false),
            },
        };
        if keyframe {
            self.first_keyframe_us.get_or_insert(arrival_us);
        }
        if let Some(stamp) = stamp {
            self.on_frame(stamp, keyframe, arrival_us);
        } else if keyframe {
            // A real (non-synthetic) VP8 or an H.264 keyframe still counts as a keyframe.
            self.keyframes += 1;
        }
    }

    fn on_frame(&mut self, stamp: Stamp, keyframe: bool, arrival_us: u64) {
        if !self.frames.insert(stamp.seq) {
            return;
        }
        if keyframe {
            self.keyframes += 1;
        }
        self.frame_range = Some(match self.frame_range {
            None => (stamp.seq, stamp.seq),
            Some((lo, hi)) => (lo.min(stamp.seq), hi.max(stamp.seq)),
        });
        if self.latency_us.len() < self.max_latency_samples {
            self.latency_us.push(stamp.latency_us(arrival_us));
        }
    }

    /// Distinct keyframes seen so far (cheaper than a full snapshot).
    pub fn keyframes(&self) -> u64 {
        self.keyframes
    }

    /// Raw latency samples collected so far, microseconds.
    pub fn latency_samples(&self) -> &[i64] {
        &self.latency_us
    }

    /// Snapshot of the counters.
    pub fn snapshot(&self) -> ReceiveStats {
        let unique: u64 = self.seqs.values().map(|t| t.seen.len() as u64).sum();
        let expected: u64 = self.seqs.values().map(|t| t.highest - t.lowest + 1).sum();
        let frames = self.frames.len() as u64;
        let frames_expected = self.frame_range.map_or(0, |(lo, hi)| hi - lo + 1);
        ReceiveStats {
            packets: self.packets,
            bytes: self.bytes,
            unique_packets: unique,
            duplicate_packets: self.duplicates,
            expected_packets: expected,
            lost_packets: expected.saturating_sub(unique),
            first_arrival_us: self.first_arrival_us,
            last_arrival_us: self.last_arrival_us,
            keyframes: self.keyframes,
            first_keyframe_us: self.first_keyframe_us,
            frames,
            frames_expected,
            frames_lost: frames_expected.saturating_sub(frames),
            latency: LatencySummary::from_samples(&self.latency_us),
            ssrcs: self.ssrc_order.clone(),
        }
    }
}

/// For the first RTP packet of a VP8 frame: its stamp (if synthetic) and keyframe flag.
/// `None` for continuation packets and unparseable payloads.
fn video_frame_start(payload: &[u8]) -> Option<(Option<Stamp>, bool)> {
    let desc = parse_vp8_descriptor(payload)?;
    if !desc.starts_frame() {
        return None;
    }
    let info = parse_vp8_frame(payload.get(desc.header_len..)?)?;
    Some((info.stamp, info.keyframe))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{OpusConfig, OpusSource};

    #[test]
    fn sequence_gaps_wraps_and_duplicates() {
        let mut acc = ReceiveAccumulator::new(MediaKind::Audio, 10);
        let mut src = OpusSource::new(&OpusConfig::default());
        let frames: Vec<_> = (0..6).map(|_| src.next_frame()).collect();
        // Seq 65533..=2 with 65535 lost and 0 duplicated; frame 2 rides on the lost packet.
        let plan = [
            (65533u16, 0usize),
            (65534, 1),
            (0, 3),
            (0, 3),
            (1, 4),
            (2, 5),
        ];
        for (seq, f) in plan {
            acc.on_packet(7, seq, &frames[f].data, 1);
        }
        let s = acc.snapshot();
        assert_eq!(s.packets, 6);
        assert_eq!(s.unique_packets, 5);
        assert_eq!(s.duplicate_packets, 1);
        assert_eq!(s.expected_packets, 6);
        assert_eq!(s.lost_packets, 1);
        assert_eq!((s.frames, s.frames_expected, s.frames_lost), (5, 6, 1));
        assert_eq!(s.latency.map(|l| l.count), Some(5));
        assert_eq!(s.ssrcs, vec![7]);
    }

    #[test]
    fn percentiles() {
        let samples: Vec<i64> = (1..=100).collect();
        let l = LatencySummary::from_samples(&samples).expect("summary");
        assert_eq!(
            (l.min_us, l.p50_us, l.p95_us, l.p99_us, l.max_us),
            (1, 50, 95, 99, 100)
        );
        assert_eq!(LatencySummary::from_samples(&[]), None);
    }
}
