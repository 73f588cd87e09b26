//! `CarriedRate`: what the link to a subscriber has been seen to carry, without trouble.
//!
//! An estimate can be wrong (a probe burst let through at line rate by a token-bucket shaper
//! reads as capacity that is not there); what a link carried for a while without loss,
//! congestion or delay growth is not. str0m counts every byte it sends to a peer (media,
//! retransmissions, padding); sampled with the statistics, that gives the rate that went out,
//! and while nothing went wrong meanwhile, the rate the link carried. The lowest such rate over
//! the last two seconds is proof that the link carries it: `UpgradeBackoff` lifts a block when
//! the padding towards a blocked layer has been carried that long.
//!
//! Pure: time comes in as arguments; tested step by step below.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a rate must have been carried to count.
const PROOF: Duration = Duration::from_secs(2);
/// Samples kept (statistics come every 200 ms: a little more than the proof's window).
const SAMPLES: usize = 16;
/// A proof needs a sample this recent (the statistics may stop with the connection).
const FRESH: Duration = Duration::from_millis(500);

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct CarriedRate {
    /// The last byte count and when it was taken.
    last: Option<(u64, Instant)>,
    /// Rates between consecutive samples, at the later sample's time.
    rates: VecDeque<(Instant, u64)>,
    /// The last sign of trouble (loss, congestion, an estimate below what is sent).
    trouble: Option<Instant>,
}

impl CarriedRate {
    /// str0m had sent `bytes` to the peer in all at `at`.
    pub fn sent_total(&mut self, at: Instant, bytes: u64) {
        if let Some((b0, t0)) = self.last
            && at > t0
        {
            let ms = at.saturating_duration_since(t0).as_millis().max(1) as u64;
            let bps = bytes.saturating_sub(b0).saturating_mul(8_000) / ms;
            if self.rates.len() == SAMPLES {
                self.rates.pop_front();
            }
            self.rates.push_back((at, bps));
        }
        self.last = Some((bytes, at));
    }

    /// Something went wrong on the link at `at`.
    pub fn trouble(&mut self, at: Instant) {
        self.trouble = Some(at);
    }

    /// The latest rate that went out, bit/s.
    pub fn rate(&self) -> Option<u64> {
        self.rates.back().map(|(_, r)| *r)
    }

    /// The lowest rate that went out over the last two seconds, if nothing went wrong in them
    /// (0 otherwise, or while the samples do not cover two seconds yet).
    pub fn proven(&self, now: Instant) -> u64 {
        let Some(start) = now.checked_sub(PROOF) else {
            return 0;
        };
        let fresh = self
            .rates
            .back()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) < FRESH);
        if !fresh || self.trouble.is_some_and(|t| t >= start) {
            return 0;
        }
        // The samples must reach back to the window's start.
        let covered = self
            .rates
            .iter()
            .zip(self.rates.iter().skip(1))
            .any(|((t0, _), (t1, _))| *t0 <= start && *t1 > start);
        if !covered {
            return 0;
        }
        self.rates
            .iter()
            .filter(|(t, _)| *t > start)
            .map(|(_, r)| *r)
            .min()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1000;

    #[test]
    fn two_clean_seconds_prove_their_lowest_rate() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        let mut c = CarriedRate::default();
        // 1.5 Mbit/s: 37 500 bytes every 200 ms, one sample at 1.0 Mbit/s.
        let mut bytes = 0;
        for i in 0..=15u64 {
            bytes += if i == 12 { 25_000 } else { 37_500 };
            c.sent_total(at(i * 200), bytes);
        }
        assert_eq!(c.rate(), Some(1500 * K));
        assert_eq!(c.proven(at(1_000)), 0, "not two seconds of samples yet");
        assert_eq!(c.proven(at(3_000)), 1000 * K, "the lowest in the window");
    }

    #[test]
    fn trouble_within_the_window_proves_nothing() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        let mut c = CarriedRate::default();
        for i in 0..=20u64 {
            c.sent_total(at(i * 200), i * 37_500);
        }
        c.trouble(at(3_000));
        assert_eq!(c.proven(at(4_000)), 0);
        assert_eq!(c.proven(at(4_900)), 0, "no samples since 4 s");
        for i in 21..=30u64 {
            c.sent_total(at(i * 200), i * 37_500);
        }
        assert_eq!(c.proven(at(5_000)), 0, "trouble 2 s ago");
        assert_eq!(c.proven(at(6_000)), 1500 * K);
    }
}
