//! `EstimateFilter`: the bandwidth estimate a subscriber's allocation works with.
//!
//! str0m reports its TWCC estimate in two ways: `EgressBitrateEstimate` events carry an average
//! of the distinct values seen in the last 3 s, weighted by count, not by time; the peer
//! statistics carry the estimate as it is now. The average lags both ways: a ramp of a hundred
//! small increases during a probe outweighs seconds of a steady value, so after a recovery it
//! stays far below the link for up to 3 s, and after a collapse far above it.
//!
//! The filter samples the current estimate with the statistics (every 200 ms) and holds the
//! lowest sample in effect during the last `HOLD`: a rise counts only once it has held that
//! long, so a probe spike that the estimator takes back does not count. Each allocation round
//! then takes the higher of that and the average:
//! - capacity returns: the average lags low for seconds; the current estimate, once it has
//!   held, leads;
//! - a lossy link: str0m's loss-based limit keeps the current estimate well below what the link
//!   carries (near 60 % at 1 % random loss); the average, sinking slowly, keeps the video going;
//! - a collapse: the average lags high; the congestion ceiling (congestion.rs) catches it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a higher estimate must hold before it counts.
pub const HOLD: Duration = Duration::from_secs(1);

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct EstimateFilter {
    /// Samples in time order; the first one was in effect at the start of the window.
    samples: VecDeque<(Instant, u64)>,
}

impl EstimateFilter {
    /// The estimate was `bps` at `at`. Returns whether the filtered value changed.
    pub fn sample(&mut self, at: Instant, bps: u64) -> bool {
        let before = self.get();
        // Samples arrive in order; one from the past (a clock step) restarts the window.
        if self.samples.back().is_some_and(|(t, _)| *t > at) {
            self.samples.clear();
        }
        self.samples.push_back((at, bps));
        let start = at.checked_sub(HOLD);
        // Drop samples superseded before the window started: the window keeps the one that
        // was in effect at its start.
        while let (Some(start), Some((next, _))) = (start, self.samples.get(1)) {
            if *next > start {
                break;
            }
            self.samples.pop_front();
        }
        self.get() != before
    }

    /// The lowest estimate in effect during the last `HOLD`, once there is one.
    pub fn get(&self) -> Option<u64> {
        self.samples.iter().map(|(_, b)| *b).min()
    }

    /// The estimate for an allocation round, given str0m's latest 3 s `average`.
    pub fn round(&self, average: Option<u64>) -> Option<u64> {
        self.get().max(average)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1000;

    #[test]
    fn falls_at_once_and_rises_after_the_hold() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        let mut f = EstimateFilter::default();
        assert_eq!(f.get(), None);
        assert!(f.sample(at(0), 3000 * K));
        assert_eq!(f.get(), Some(3000 * K));
        // The link collapses: the next sample says so, and so does the filter.
        assert!(f.sample(at(200), 700 * K));
        assert_eq!(f.get(), Some(700 * K));
        // Capacity returns: the low sample is in effect until 1.4 s + the hold.
        for ms in [400, 600, 800, 1000, 1200] {
            f.sample(at(ms), 2500 * K);
            assert_eq!(f.get(), Some(700 * K), "{ms}");
        }
        // The 700 kbit/s sample was superseded at 400 ms: gone from the window at 1.4 s.
        assert!(f.sample(at(1400), 2600 * K));
        assert_eq!(f.get(), Some(2500 * K));
        f.sample(at(2400), 2600 * K);
        assert_eq!(f.get(), Some(2600 * K));
    }

    #[test]
    fn a_short_spike_does_not_count() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        let mut f = EstimateFilter::default();
        f.sample(at(0), 1000 * K);
        // A probe lifts the estimate for 400 ms, then an overuse takes it back.
        assert!(!f.sample(at(200), 3000 * K));
        f.sample(at(400), 3000 * K);
        f.sample(at(600), 900 * K);
        for ms in (800..=3000).step_by(200) {
            f.sample(at(ms), 950 * K);
            assert!(f.get().is_some_and(|b| b <= 950 * K), "{ms}");
        }
    }

    #[test]
    fn a_round_takes_the_higher_of_the_held_estimate_and_the_average() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        let mut f = EstimateFilter::default();
        assert_eq!(f.round(None), None);
        assert_eq!(f.round(Some(3000 * K)), Some(3000 * K), "the average alone");
        // A lossy link: the current estimate sits low, the average keeps the video.
        f.sample(at(0), 300 * K);
        assert_eq!(f.round(Some(600 * K)), Some(600 * K));
        // Capacity returns: the current estimate leads once it has held for a second.
        f.sample(at(200), 2800 * K);
        assert_eq!(f.round(Some(450 * K)), Some(450 * K));
        f.sample(at(1200), 2900 * K);
        assert_eq!(f.round(Some(450 * K)), Some(2800 * K));
    }

    #[test]
    fn a_sample_from_the_past_restarts_the_window() {
        let t = Instant::now() + Duration::from_secs(10);
        let mut f = EstimateFilter::default();
        f.sample(t, 500 * K);
        f.sample(t - Duration::from_secs(5), 2000 * K);
        assert_eq!(f.get(), Some(2000 * K));
    }
}
