//! `CongestionCap`: a subscriber's budget ceiling learned from congestion, for the seconds in
//! which the bandwidth estimate has not yet seen it.
//!
//! str0m's TWCC estimate reaches the SFU through a 3 s average, so after a link collapses
//! (3 Mbit/s to 600 kbit/s, say) it stays high for seconds. Video piling up in the pacer shows
//! the collapse within a few hundred milliseconds. Each sign of congestion halves what was
//! allocated (multiplicative decrease, never below the lowest layers: whether even those fit is
//! for the estimate and the receiver's loss reports to tell), at most once per
//! `MIN_HALVING_GAP` (the queue needs that long to show the effect of the previous halving, so
//! a quick succession of signs is one congestion event, not several).
//!
//! Without congestion the ceiling grows slowly (the additive side of AIMD, at the rate
//! libwebrtc's estimator grows) and goes as soon as the estimate shows it has seen the link: it
//! is at or below the ceiling, or it has come down since the congestion and risen again by
//! half (a probe found capacity). From then on the estimate leads again. The ceiling also goes
//! `FORGET_AFTER` the last congestion, so a passing congestion cannot hold a subscriber down
//! for long.

use std::time::{Duration, Instant};

/// How often allocation runs while the link is congested (instead of every 500 ms).
pub const CONGESTED_ROUND: Duration = Duration::from_millis(200);

/// At most one halving per this interval: about a round trip plus the time the pacer needs to
/// drain after the previous step down.
const MIN_HALVING_GAP: Duration = Duration::from_millis(200);

/// Growth of the ceiling per second without congestion, in percent (libwebrtc's AIMD rate).
const GROWTH_PER_SEC_PCT: u64 = 8;

/// A ceiling not hit again for this long is dropped: by then the estimate has seen the link.
const FORGET_AFTER: Duration = Duration::from_secs(4);

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct CongestionCap {
    /// The ceiling and when it last changed.
    cap: Option<(u64, Instant)>,
    /// The last halving.
    last_hit: Option<Instant>,
    /// The lowest estimate since then.
    low: u64,
}

impl CongestionCap {
    /// The current ceiling, if any.
    pub fn get(&self) -> Option<u64> {
        self.cap.map(|(c, _)| c)
    }

    /// Congestion seen at `now` while `allocated` bit/s were allocated and the estimate allowed
    /// `estimate`; `floor` is the sum of the lowest layers. Returns the ceiling.
    pub fn congested(&mut self, now: Instant, allocated: u64, floor: u64, estimate: u64) -> u64 {
        if let (Some(cap), Some(hit)) = (self.get(), self.last_hit)
            && now.saturating_duration_since(hit) < MIN_HALVING_GAP
        {
            self.low = self.low.min(estimate);
            return cap;
        }
        self.low = estimate;
        let base = self.get().map_or(allocated, |c| c.min(allocated));
        let cap = (base / 2).max(floor);
        self.cap = Some((cap, now));
        self.last_hit = Some(now);
        cap
    }

    /// A round without congestion: the ceiling grows with the time since it last changed, and
    /// is dropped once the estimate (`estimate`, the budget it allows) no longer exceeds it.
    pub fn clear_round(&mut self, now: Instant, estimate: u64) {
        let Some((cap, at)) = self.cap else {
            return;
        };
        let forgotten = self
            .last_hit
            .is_none_or(|h| now.saturating_duration_since(h) >= FORGET_AFTER);
        self.low = self.low.min(estimate);
        if estimate <= cap || estimate >= self.low.saturating_mul(3) / 2 || forgotten {
            self.cap = None;
            return;
        }
        let ms = u64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(u64::MAX);
        let grown =
            cap.saturating_add(cap.saturating_mul(GROWTH_PER_SEC_PCT).saturating_mul(ms) / 100_000);
        if grown > cap {
            self.cap = Some((grown, now));
        }
    }

    /// `budget` limited by the ceiling.
    pub fn apply(&self, budget: u64) -> u64 {
        self.get().map_or(budget, |c| budget.min(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1000;

    #[test]
    fn halves_per_congestion_event_not_below_the_floor() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        let mut c = CongestionCap::default();
        assert_eq!(c.apply(2500 * K), 2500 * K, "no ceiling before congestion");
        assert_eq!(c.congested(at(0), 2400 * K, 300 * K, 3000 * K), 1200 * K);
        // Signs within the gap are the same event: no second halving.
        assert_eq!(c.congested(at(50), 2400 * K, 300 * K, 3000 * K), 1200 * K);
        assert_eq!(c.congested(at(199), 1200 * K, 300 * K, 3000 * K), 1200 * K);
        // The allocation followed the ceiling; still congested: halve again.
        assert_eq!(c.congested(at(200), 1200 * K, 300 * K, 3000 * K), 600 * K);
        assert_eq!(c.congested(at(400), 600 * K, 300 * K, 3000 * K), 300 * K);
        assert_eq!(
            c.congested(at(600), 300 * K, 300 * K, 3000 * K),
            300 * K,
            "the floor"
        );
        assert_eq!(c.apply(2500 * K), 300 * K);
    }

    #[test]
    fn a_ceiling_above_the_allocation_does_not_raise_it() {
        let t = Instant::now();
        let mut c = CongestionCap::default();
        c.congested(t, 1000 * K, 0, 3000 * K);
        // Allocated more than the ceiling (the estimate rose in between): halve the ceiling.
        assert_eq!(
            c.congested(t + Duration::from_secs(1), 2000 * K, 0, 3000 * K),
            250 * K
        );
        // Allocated less than the ceiling: halve the allocation.
        assert_eq!(
            c.congested(t + Duration::from_secs(2), 200 * K, 0, 3000 * K),
            100 * K
        );
    }

    #[test]
    fn grows_slowly_and_goes_once_the_estimate_is_below_it() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        let mut c = CongestionCap::default();
        c.congested(at(0), 1000 * K, 0, 3000 * K);
        c.clear_round(at(1000), 3000 * K);
        assert_eq!(c.get(), Some(540 * K), "8 % in one second");
        c.clear_round(at(1000), 3000 * K);
        assert_eq!(c.get(), Some(540 * K), "no time, no growth");
        c.clear_round(at(1500), 3000 * K);
        assert_eq!(c.get(), Some(561_600));
        // The estimate has come down to the link: it leads from now on.
        c.clear_round(at(2000), 550 * K);
        assert_eq!(c.get(), None);
        assert_eq!(c.apply(5000 * K), 5000 * K);
    }

    #[test]
    fn goes_when_the_estimate_rises_again_after_coming_down() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        let mut c = CongestionCap::default();
        // The link collapsed while the (averaged) estimate still said 3 Mbit/s.
        c.congested(at(0), 2400 * K, 300 * K, 3000 * K);
        c.congested(at(200), 1200 * K, 300 * K, 3000 * K);
        c.congested(at(400), 600 * K, 300 * K, 2900 * K);
        // The estimate comes down over seconds: the ceiling stays.
        for (ms, est) in [(1000, 2500), (2000, 1200), (2500, 500), (3000, 700)] {
            c.clear_round(at(ms), est * K);
            assert!(c.get().is_some(), "{ms}");
        }
        // A probe lifts it to half again its low: the estimator has seen the link.
        c.clear_round(at(3500), 750 * K);
        assert_eq!(c.get(), None);
    }

    #[test]
    fn is_forgotten_some_seconds_after_the_last_congestion() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        let mut c = CongestionCap::default();
        c.congested(at(0), 1000 * K, 0, 10_000 * K);
        c.clear_round(at(3900), 10_000 * K);
        assert!(c.get().is_some());
        c.clear_round(at(4000), 10_000 * K);
        assert_eq!(c.get(), None, "forgotten 4 s after the last congestion");
    }
}
