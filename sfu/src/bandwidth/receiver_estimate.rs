//! `ReceiverEstimate`: what a subscriber's own reports say its link carries.
//!
//! Many players and hardware decoders (aiortc, GStreamer, set-top boxes) negotiate no
//! transport-wide congestion control (TWCC), so the SFU has no send-side estimate for them. What
//! they do send is RTCP receiver reports (loss over the last interval, and the round trip) and,
//! often, REMB (their own estimate of what they can receive). This struct turns those into a
//! budget, and into the one signal that may stop a single video layer: loss that lasts.
//!
//! - **REMB**, when the receiver sends it, is taken as an upper bound while fresh.
//! - **Loss** follows the loss-based rule of Google's congestion control: above 10 % the limit
//!   drops to what is sent, reduced by half the loss; below 2 % it grows 8 % a second; in
//!   between it holds. A link that has never lost anything has no limit at all: a receiver is
//!   given what it asks for until its reports say otherwise (it starts optimistic).
//! - **Delay growth**: a round trip 150 ms above the lowest one seen recently means a queue is
//!   building on the path; the limit drops to 85 % of what is sent (at most once a second).
//! - **Failing**: loss above 10 % in reports spanning most of a second (two reports), or a
//!   single lossy report while on probation (just after video was resumed). Only this pauses a
//!   stream that has nothing lower to step down to.
//!
//! Pure: time comes in as arguments; tested step by step below.

use std::time::{Duration, Instant};

/// Loss above this fraction says the link gets more than it carries.
pub const LOSSY: f32 = 0.10;
/// Loss below this fraction lets the limit grow.
const CLEAN: f32 = 0.02;
/// Lossy reports spanning this long mean the link is failing (two reports a second apart).
const FAILING_AFTER: Duration = Duration::from_millis(900);
/// Growth of the limit per second of clean reports, in percent.
const GROWTH_PER_SEC_PCT: u64 = 8;
/// REMB older than this no longer bounds the budget (receivers send it every second or so).
const REMB_AGE: Duration = Duration::from_secs(5);
/// A round trip this far above the recent lowest one means a queue builds on the path.
const DELAY_GROWTH: Duration = Duration::from_millis(150);
/// The lowest round trip is forgotten after this long (routes change).
const RTT_FLOOR_AGE: Duration = Duration::from_secs(10);
/// At most one delay-based reduction per this interval (the queue needs time to drain).
const DELAY_STEP_GAP: Duration = Duration::from_secs(1);
/// Never limit below this: audio and the lowest layers must always pass.
const MIN_LIMIT: u64 = 64_000;

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct ReceiverEstimate {
    /// The latest REMB and when it came.
    remb: Option<(u64, Instant)>,
    /// A limit learned from loss or delay, and when it last changed.
    limit: Option<(u64, Instant)>,
    /// The last report was clean: the limit may grow.
    clean: bool,
    /// Since when the reports say more than `LOSSY` is lost.
    lossy_since: Option<Instant>,
    /// Lossy reports count at once until then (video was just resumed on trial).
    probation_until: Option<Instant>,
    /// The lowest round trip seen, and when.
    rtt_floor: Option<(Duration, Instant)>,
    last_delay_step: Option<Instant>,
}

impl ReceiverEstimate {
    /// A REMB of `bps` arrived.
    pub fn on_remb(&mut self, now: Instant, bps: u64) {
        self.remb = Some((bps, now));
    }

    /// A receiver report said `loss` (fraction) was lost while `sent_bps` were being sent.
    pub fn on_loss(&mut self, now: Instant, loss: f32, sent_bps: u64) {
        self.grow(now);
        if loss > LOSSY {
            let base = self.limit.map_or(sent_bps, |(l, _)| l.min(sent_bps));
            let cut = (base as f64 * (1.0 - f64::from(loss.min(1.0)) / 2.0)) as u64;
            self.limit = Some((cut.max(MIN_LIMIT), now));
            self.clean = false;
            self.lossy_since.get_or_insert(now);
        } else {
            self.lossy_since = None;
            self.clean = loss < CLEAN;
        }
    }

    /// A receiver report gave a round trip of `rtt` while `sent_bps` were being sent.
    pub fn on_rtt(&mut self, now: Instant, rtt: Duration, sent_bps: u64) {
        let floor = match self.rtt_floor {
            Some((f, at)) if now.saturating_duration_since(at) < RTT_FLOOR_AGE && f <= rtt => f,
            _ => {
                self.rtt_floor = Some((rtt, now));
                rtt
            }
        };
        let stepped = self
            .last_delay_step
            .is_some_and(|t| now.saturating_duration_since(t) < DELAY_STEP_GAP);
        if rtt > floor + DELAY_GROWTH && !stepped && sent_bps > 0 {
            self.grow(now);
            let cut = (sent_bps * 85 / 100).max(MIN_LIMIT);
            let limit = self.limit.map_or(cut, |(l, _)| l.min(cut));
            self.limit = Some((limit, now));
            self.clean = false;
            self.last_delay_step = Some(now);
        }
    }

    /// Video was resumed on trial: until `until`, one lossy report is enough to call the link
    /// failing again.
    pub fn probation(&mut self, until: Instant) {
        self.probation_until = Some(until);
    }

    /// Whether the link is seen not to carry what is sent: loss that lasts.
    pub fn failing(&self, now: Instant) -> bool {
        let Some(since) = self.lossy_since else {
            return false;
        };
        let on_probation = self.probation_until.is_some_and(|t| now < t);
        on_probation || now.saturating_duration_since(since) >= FAILING_AFTER
    }

    /// The budget the reports allow, if they limit it at all; a limit that has grown past
    /// `enough` (everything the subscriber could want) is dropped.
    pub fn budget(&mut self, now: Instant, enough: u64) -> Option<u64> {
        self.grow(now);
        if self.limit.is_some_and(|(l, _)| l > enough) {
            self.limit = None;
        }
        let remb = self
            .remb
            .filter(|(_, at)| now.saturating_duration_since(*at) < REMB_AGE)
            .map(|(b, _)| b.max(MIN_LIMIT));
        match (self.limit.map(|(l, _)| l), remb) {
            (Some(l), Some(r)) => Some(l.min(r)),
            (l, r) => l.or(r),
        }
    }

    /// Lets a limit grow for the clean time since it last changed.
    fn grow(&mut self, now: Instant) {
        let Some((l, at)) = self.limit else {
            return;
        };
        if !self.clean {
            // Held: the time without clean reports does not count towards growth.
            self.limit = Some((l, now));
            return;
        }
        let ms = u64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(u64::MAX);
        let grown =
            l.saturating_add(l.saturating_mul(GROWTH_PER_SEC_PCT).saturating_mul(ms) / 100_000);
        if grown > l {
            self.limit = Some((grown, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1000;

    fn at(t: Instant, ms: u64) -> Instant {
        t + Duration::from_millis(ms)
    }

    #[test]
    fn a_receiver_that_reports_nothing_has_no_limit() {
        let t = Instant::now();
        let mut e = ReceiverEstimate::default();
        assert_eq!(e.budget(t, 10_000 * K), None);
        assert!(!e.failing(t));
        // Clean reports change nothing: there is nothing to grow.
        e.on_loss(at(t, 1000), 0.0, 1500 * K);
        assert_eq!(e.budget(at(t, 1000), 10_000 * K), None);
    }

    #[test]
    fn remb_bounds_the_budget_while_fresh() {
        let t = Instant::now();
        let mut e = ReceiverEstimate::default();
        e.on_remb(t, 800 * K);
        assert_eq!(e.budget(at(t, 100), 10_000 * K), Some(800 * K));
        assert_eq!(e.budget(at(t, 4900), 10_000 * K), Some(800 * K));
        assert_eq!(e.budget(at(t, 5000), 10_000 * K), None, "stale");
    }

    #[test]
    fn loss_cuts_to_what_is_sent_less_half_the_loss_and_clean_reports_grow_it() {
        let t = Instant::now();
        let mut e = ReceiverEstimate::default();
        // 1.5 Mbit/s into a 1 Mbit/s link: a third is lost.
        e.on_loss(t, 0.33, 1500 * K);
        let cut = e.budget(t, 10_000 * K).unwrap();
        assert!((1240 * K..=1260 * K).contains(&cut), "{cut}");
        // Moderate loss holds the limit.
        e.on_loss(at(t, 1000), 0.05, 1200 * K);
        assert_eq!(e.budget(at(t, 1000), 10_000 * K), Some(cut));
        // Clean reports: 8 % a second.
        e.on_loss(at(t, 2000), 0.0, 1200 * K);
        e.on_loss(at(t, 3000), 0.0, 1200 * K);
        let grown = e.budget(at(t, 3000), 10_000 * K).unwrap();
        assert!(
            grown > cut * 107 / 100 && grown < cut * 109 / 100,
            "{grown}"
        );
        // Grown past everything the subscriber could want: the limit goes.
        assert_eq!(e.budget(at(t, 3000), cut), None);
    }

    #[test]
    fn loss_that_lasts_is_failing_and_a_clean_report_ends_it() {
        let t = Instant::now();
        let mut e = ReceiverEstimate::default();
        e.on_loss(t, 0.30, 1500 * K);
        assert!(!e.failing(t), "one report may be a burst");
        e.on_loss(at(t, 950), 0.25, 1500 * K);
        assert!(e.failing(at(t, 950)));
        e.on_loss(at(t, 1900), 0.01, 60 * K);
        assert!(!e.failing(at(t, 1900)));
    }

    #[test]
    fn on_probation_one_lossy_report_is_enough() {
        let t = Instant::now();
        let mut e = ReceiverEstimate::default();
        e.probation(at(t, 3000));
        e.on_loss(at(t, 1000), 0.2, 1500 * K);
        assert!(e.failing(at(t, 1000)));
        // After probation the usual rule holds again.
        let mut e = ReceiverEstimate::default();
        e.probation(at(t, 3000));
        e.on_loss(at(t, 3500), 0.2, 1500 * K);
        assert!(!e.failing(at(t, 3500)));
    }

    #[test]
    fn a_growing_round_trip_cuts_once_a_second() {
        let t = Instant::now();
        let mut e = ReceiverEstimate::default();
        e.on_rtt(t, Duration::from_millis(40), 2000 * K);
        e.on_rtt(at(t, 200), Duration::from_millis(60), 2000 * K);
        assert_eq!(
            e.budget(at(t, 200), 10_000 * K),
            None,
            "jitter is not a queue"
        );
        e.on_rtt(at(t, 400), Duration::from_millis(200), 2000 * K);
        assert_eq!(e.budget(at(t, 400), 10_000 * K), Some(1700 * K));
        e.on_rtt(at(t, 600), Duration::from_millis(250), 1700 * K);
        assert_eq!(
            e.budget(at(t, 600), 10_000 * K),
            Some(1700 * K),
            "one step a second"
        );
        e.on_rtt(at(t, 1400), Duration::from_millis(250), 1700 * K);
        assert_eq!(e.budget(at(t, 1400), 10_000 * K), Some(1445 * K));
        assert!(!e.failing(at(t, 1400)), "delay alone never pauses");
    }

    #[test]
    fn the_limit_never_falls_below_what_audio_needs() {
        let t = Instant::now();
        let mut e = ReceiverEstimate::default();
        for i in 0..20 {
            e.on_loss(at(t, i * 500), 0.9, 50 * K);
        }
        assert_eq!(e.budget(at(t, 10_000), 10_000 * K), Some(MIN_LIMIT));
    }
}
