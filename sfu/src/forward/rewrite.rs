//! Header rewriting for one outgoing stream.
//!
//! A subscriber sees one continuous RTP stream per m-line even though the SFU switches between
//! simulcast layers (each with its own sequence space, timestamp base and VP8 picture ids) or,
//! for a WHEP slot, between publishers. Within a segment (packets of one source layer) the
//! mapping is a fixed offset, so losses and retransmissions keep their positions and the
//! subscriber's NACKs work. At a switch a new segment starts right after the last packet sent.

use std::time::Instant;

/// Where outgoing sequence numbers start. Low, so the first packet has rollover counter 0 as
/// SRTP requires (RFC 3711 §3.3.1) no matter how long the source stream has run.
const FIRST_SEQ: u64 = 1;

/// The rewritten header fields of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    /// Extended outgoing sequence number.
    pub seq: u64,
    /// Outgoing RTP timestamp.
    pub ts: u32,
    /// Outgoing VP8 PictureID (15 bit), if the packet carried one.
    pub picture_id: Option<u16>,
    /// Outgoing VP8 TL0PICIDX, if the packet carried one.
    pub tl0: Option<u8>,
}

/// The input header fields of one packet.
#[derive(Debug, Clone, Copy)]
pub struct SourceFields {
    /// Extended incoming sequence number (str0m's `SeqNo`).
    pub seq: u64,
    /// Incoming RTP timestamp.
    pub ts: u32,
    /// When the packet arrived.
    pub arrival: Instant,
    /// VP8 PictureID, if present.
    pub picture_id: Option<u16>,
    /// VP8 TL0PICIDX, if present.
    pub tl0: Option<u8>,
}

/// Sequence, timestamp and VP8 picture-id continuity for one outgoing stream.
#[derive(Debug, Clone)]
pub struct Rewriter {
    clock_rate: u32,
    segment: Option<Segment>,
    /// Highest sequence number sent so far.
    max_seq: u64,
    /// Timestamp and arrival of the latest (highest sequence) packet sent.
    last_ts: u32,
    last_arrival: Option<Instant>,
    last_picture_id: Option<u16>,
    last_tl0: Option<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    /// First incoming sequence number of the segment; older packets are from before the switch.
    first_in_seq: u64,
    seq_offset: i64,
    ts_offset: u32,
    picture_offset: u16,
    tl0_offset: u8,
}

impl Rewriter {
    /// A rewriter for a stream with the given RTP clock rate (90 000 for video, 48 000 Opus).
    pub fn new(clock_rate: u32) -> Self {
        Rewriter {
            clock_rate: clock_rate.max(1),
            segment: None,
            max_seq: FIRST_SEQ - 1,
            last_ts: 0,
            last_arrival: None,
            last_picture_id: None,
            last_tl0: None,
        }
    }

    /// Rewrites one packet. `new_segment` starts a new mapping (first packet, layer switch, new
    /// publisher); it must be a packet the receiver can start decoding at (a keyframe for video).
    ///
    /// Returns `None` for a packet that belongs before the current segment (a late
    /// retransmission from the layer switched away from): sending it would collide with
    /// sequence numbers already used.
    pub fn rewrite(&mut self, src: SourceFields, new_segment: bool) -> Option<Rewritten> {
        if new_segment || self.segment.is_none() {
            self.start_segment(&src);
        }
        let seg = self.segment?;
        if src.seq < seg.first_in_seq {
            return None;
        }
        let seq = (src.seq as i64 + seg.seq_offset) as u64;
        let ts = src.ts.wrapping_add(seg.ts_offset);
        let picture_id = src
            .picture_id
            .map(|p| p.wrapping_add(seg.picture_offset) & 0x7fff);
        let tl0 = src.tl0.map(|t| t.wrapping_add(seg.tl0_offset));
        if seq > self.max_seq {
            self.max_seq = seq;
            self.last_ts = ts;
            self.last_arrival = Some(src.arrival);
            if picture_id.is_some() {
                self.last_picture_id = picture_id;
            }
            if tl0.is_some() {
                self.last_tl0 = tl0;
            }
        }
        Some(Rewritten {
            seq,
            ts,
            picture_id,
            tl0,
        })
    }

    fn start_segment(&mut self, src: &SourceFields) {
        let out_seq = self.max_seq + 1;
        let out_ts = match self.last_arrival {
            // Advance the timestamp by the wall time since the last packet, at least one tick,
            // so the receiver's jitter buffer sees time move forward across the switch.
            Some(prev) => {
                let elapsed = src.arrival.saturating_duration_since(prev);
                let ticks = (elapsed.as_micros() as u64 * self.clock_rate as u64 / 1_000_000)
                    .clamp(1, u32::MAX as u64 / 2) as u32;
                self.last_ts.wrapping_add(ticks)
            }
            None => src.ts,
        };
        let picture_offset = match (self.last_picture_id, src.picture_id) {
            (Some(last), Some(p)) => last.wrapping_add(1).wrapping_sub(p) & 0x7fff,
            _ => 0,
        };
        let tl0_offset = match (self.last_tl0, src.tl0) {
            (Some(last), Some(t)) => last.wrapping_add(1).wrapping_sub(t),
            _ => 0,
        };
        self.segment = Some(Segment {
            first_in_seq: src.seq,
            seq_offset: out_seq as i64 - src.seq as i64,
            ts_offset: out_ts.wrapping_sub(src.ts),
            picture_offset,
            tl0_offset,
        });
    }

    /// Whether any packet went out yet.
    pub fn started(&self) -> bool {
        self.segment.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pkt(t0: Instant, ms: u64, seq: u64, ts: u32, pic: Option<u16>) -> SourceFields {
        SourceFields {
            seq,
            ts,
            arrival: t0 + Duration::from_millis(ms),
            picture_id: pic,
            tl0: pic.map(|p| p as u8),
        }
    }

    #[test]
    fn first_packet_starts_at_a_low_sequence_number_whatever_the_source() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(90_000);
        // A long-running source: extended sequence number past several rollovers.
        let out = r
            .rewrite(pkt(t0, 0, 5 * 65_536 + 17, 1234, None), false)
            .unwrap();
        assert_eq!(out.seq, FIRST_SEQ);
        assert_eq!(out.ts, 1234);
        let out = r
            .rewrite(pkt(t0, 33, 5 * 65_536 + 18, 4234, None), false)
            .unwrap();
        assert_eq!(out.seq, FIRST_SEQ + 1);
        assert_eq!(out.ts, 4234);
    }

    #[test]
    fn gaps_and_reordering_inside_a_segment_are_preserved() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(90_000);
        let a = r.rewrite(pkt(t0, 0, 100, 0, None), false).unwrap();
        let c = r.rewrite(pkt(t0, 1, 102, 0, None), false).unwrap();
        // 101 was lost and arrives later as a retransmission: it keeps its place.
        let b = r.rewrite(pkt(t0, 40, 101, 0, None), false).unwrap();
        assert_eq!((a.seq, b.seq, c.seq), (1, 2, 3));
    }

    #[test]
    fn a_switch_continues_sequence_timestamp_and_picture_id() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(90_000);
        // Low layer: seq 500.., ts 9000 per 100 ms, picture ids 40..
        r.rewrite(pkt(t0, 0, 500, 90_000, Some(40)), true).unwrap();
        let last = r
            .rewrite(pkt(t0, 100, 501, 99_000, Some(41)), false)
            .unwrap();
        // High layer keyframe 33 ms later with unrelated numbering.
        let first = r
            .rewrite(pkt(t0, 133, 20_000, 7_777_777, Some(30_000)), true)
            .unwrap();
        assert_eq!(first.seq, last.seq + 1);
        assert_eq!(first.ts, last.ts.wrapping_add(33 * 90));
        assert_eq!(first.picture_id, Some(42));
        assert_eq!(first.tl0, Some(last.tl0.unwrap().wrapping_add(1)));
        // The next high-layer packet follows the new mapping.
        let next = r
            .rewrite(pkt(t0, 166, 20_001, 7_780_777, Some(30_001)), false)
            .unwrap();
        assert_eq!(next.seq, first.seq + 1);
        assert_eq!(next.ts, first.ts.wrapping_add(3000));
        assert_eq!(next.picture_id, Some(43));
    }

    #[test]
    fn late_packets_from_before_a_switch_are_dropped() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(90_000);
        r.rewrite(pkt(t0, 0, 10, 0, None), true).unwrap();
        r.rewrite(pkt(t0, 10, 5000, 0, None), true).unwrap();
        assert!(r.rewrite(pkt(t0, 20, 4999, 0, None), false).is_none());
    }

    #[test]
    fn picture_id_wraps_at_15_bits_and_timestamp_wraps_at_32() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(90_000);
        r.rewrite(pkt(t0, 0, 1, u32::MAX - 10, Some(0x7ffe)), true)
            .unwrap();
        let a = r
            .rewrite(pkt(t0, 1, 2, u32::MAX, Some(0x7fff)), false)
            .unwrap();
        let b = r.rewrite(pkt(t0, 2, 3, 2989, Some(0)), false).unwrap();
        assert_eq!(a.picture_id, Some(0x7fff));
        assert_eq!(b.picture_id, Some(0));
        assert_eq!(b.ts, 2989);
    }

    #[test]
    fn switch_after_a_long_pause_advances_the_timestamp_by_the_pause() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(48_000);
        let a = r.rewrite(pkt(t0, 0, 1, 0, None), true).unwrap();
        let b = r.rewrite(pkt(t0, 2000, 900, 123, None), true).unwrap();
        assert_eq!(b.ts, a.ts + 2 * 48_000);
        assert_eq!(b.seq, a.seq + 1);
    }
}
