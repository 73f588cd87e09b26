//! Bitrate of a packet stream over a sliding window, cheap enough for every packet.

use std::time::{Duration, Instant};

/// Buckets of 100 ms over one second.
const BUCKETS: usize = 10;
const BUCKET: Duration = Duration::from_millis(100);
const WINDOW: Duration = Duration::from_secs(1);
/// A stream that started less than this ago has no rate yet: its first keyframe alone would
/// make it look several times faster than it is.
const MIN_RUN: Duration = Duration::from_millis(300);

/// A stream is steady while packets keep coming at least this often (once its run has filled
/// the window): its rate is then what it costs, not the tail of a stream that stopped.
const STEADY_GAP: Duration = Duration::from_millis(200);

/// Bytes per 100 ms bucket over the last second.
#[derive(Debug, Clone)]
pub struct RateMeter {
    buckets: [u64; BUCKETS],
    /// Start of the current bucket.
    head: Option<Instant>,
    idx: usize,
    /// Start of the current run of packets (the first after a window of silence), and the last
    /// packet. Until a run fills the window its rate is extrapolated from what it has sent so
    /// far: read as bytes per full second, a stream that began 200 ms ago would look five times
    /// slower than it is, and the bandwidth allocator would ask str0m to probe for (and pace
    /// at) that.
    run: Option<(Instant, Instant)>,
}

impl Default for RateMeter {
    fn default() -> Self {
        RateMeter {
            buckets: [0; BUCKETS],
            head: None,
            idx: 0,
            run: None,
        }
    }
}

impl RateMeter {
    fn advance(&mut self, now: Instant) {
        let Some(head) = self.head else {
            self.head = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(head);
        let steps = (elapsed.as_millis() / BUCKET.as_millis()) as usize;
        if steps == 0 {
            return;
        }
        for _ in 0..steps.min(BUCKETS) {
            self.idx = (self.idx + 1) % BUCKETS;
            self.buckets[self.idx] = 0;
        }
        self.head = Some(head + BUCKET * steps as u32);
    }

    /// Counts a packet of `bytes` at `now`.
    pub fn add(&mut self, now: Instant, bytes: usize) {
        self.run = match self.run {
            Some((start, last)) if now.saturating_duration_since(last) < WINDOW => {
                Some((start, now))
            }
            _ => Some((now, now)),
        };
        self.advance(now);
        self.buckets[self.idx] += bytes as u64;
    }

    /// Whether the stream has flowed for a full window and is still flowing: its rate now is
    /// its steady rate (not a young run's extrapolation, not the fading tail of a stopped one).
    pub fn steady(&self, now: Instant) -> bool {
        self.run.is_some_and(|(start, last)| {
            now.saturating_duration_since(start) >= WINDOW
                && now.saturating_duration_since(last) < STEADY_GAP
        })
    }

    /// Bits per second over the last second, as of `now`; 0 while unknown (nothing sent, or a
    /// stream younger than `MIN_RUN`).
    pub fn bps(&mut self, now: Instant) -> u64 {
        self.advance(now);
        let bits = self.buckets.iter().sum::<u64>() * 8;
        let Some((start, _)) = self.run else {
            return 0;
        };
        let ran = now.saturating_duration_since(start);
        if ran >= WINDOW {
            bits
        } else if ran < MIN_RUN {
            0
        } else {
            (bits as u128 * WINDOW.as_micros() / ran.as_micros()) as u64
        }
    }
}

/// How much more a subscriber's streams cost on the wire than their RTP payload. str0m's
/// estimate and pacer count payload bytes only, while a configured downlink counts IP packets:
/// headers, SRTP, UDP and IP add a few per cent to video and about as much again to audio.
#[derive(Debug, Clone, Copy)]
pub struct WireRatio {
    wire: u64,
    payload: u64,
}

impl WireRatio {
    /// Largest ratio believed: 20-byte Opus frames at 50 packets a second.
    const MAX: u64 = 4;

    /// From the wire and payload rates of the same streams; 1 when nothing flows.
    pub fn new(wire: u64, payload: u64) -> Self {
        if payload == 0 || wire < payload {
            return WireRatio {
                wire: 1,
                payload: 1,
            };
        }
        WireRatio {
            wire: wire.min(payload * Self::MAX),
            payload,
        }
    }

    /// A payload rate (str0m's estimate) as what it carries on the wire.
    pub fn to_wire(self, payload_bps: u64) -> u64 {
        (payload_bps as u128 * self.wire as u128 / self.payload as u128) as u64
    }

    /// A wire rate as the payload rate str0m's pacer should aim for.
    pub fn to_payload(self, wire_bps: u64) -> u64 {
        (wire_bps as u128 * self.payload as u128 / self.wire as u128) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_ratio_converts_both_ways_and_stays_sane() {
        // 1.9 Mbit/s of video payload, 2 Mbit/s on the wire.
        let r = WireRatio::new(2_000_000, 1_900_000);
        assert_eq!(r.to_wire(1_900_000), 2_000_000);
        assert_eq!(r.to_payload(2_000_000), 1_900_000);
        // Nothing measured, or nonsense: no conversion, and never more than 4x.
        assert_eq!(WireRatio::new(0, 0).to_wire(500), 500);
        assert_eq!(WireRatio::new(100, 200).to_wire(500), 500);
        assert_eq!(WireRatio::new(10_000, 100).to_wire(500), 2000);
    }

    #[test]
    fn measures_a_steady_stream_and_forgets_a_stopped_one() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        // 1000 bytes every 10 ms = 800 kbit/s.
        for i in 0..300 {
            m.add(t0 + Duration::from_millis(10 * i), 1000);
        }
        let bps = m.bps(t0 + Duration::from_millis(2990));
        assert!((760_000..=840_000).contains(&bps), "{bps}");
        assert_eq!(m.bps(t0 + Duration::from_secs(5)), 0);
    }

    #[test]
    fn a_young_stream_is_measured_at_its_rate_not_as_a_fraction_of_it() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut m = RateMeter::default();
        // Asked before anything flows: unknown.
        assert_eq!(m.bps(at(0)), 0);
        // 400 bytes every 33 ms from 500 ms on: about 97 kbit/s.
        let mut t = 500;
        while t < 700 {
            m.add(at(t), 400);
            t += 33;
        }
        assert_eq!(m.bps(at(700)), 0, "200 ms in: too young to tell");
        while t < 900 {
            m.add(at(t), 400);
            t += 33;
        }
        let young = m.bps(at(900));
        assert!((85_000..=115_000).contains(&young), "400 ms in: {young}");
        while t < 2990 {
            m.add(at(t), 400);
            t += 33;
        }
        let steady = m.bps(at(2990));
        assert!((90_000..=105_000).contains(&steady), "steady: {steady}");
        // After two seconds of silence the stream starts again: a new run.
        let mut t = 5000;
        while t < 5400 {
            m.add(at(t), 400);
            t += 33;
        }
        let again = m.bps(at(5400));
        assert!((85_000..=115_000).contains(&again), "restarted: {again}");
    }
}
