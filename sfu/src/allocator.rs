//! `BandwidthAllocator`: how one subscriber's downlink is shared among the tracks it receives.
//!
//! Budget = min(bandwidth estimate, configured caps), minus audio (audio is never cut). Then,
//! in priority order, every video gets its lowest layer if it fits (else it pauses: audio
//! continues); then the high-priority videos (the stage, the screen, the teacher) climb layer by
//! layer, then the others. A budget that no longer covers what is sent is followed at once (a
//! dip that still covers it changes nothing); a growing one only after the headroom has lasted
//! (no flapping), one layer at a time, while the estimator probes toward the next step. A
//! playing video is paused only when its lowest layer does not fit for a while and the link is
//! not seen to carry it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ids::TrackId;
use crate::role::TrackKind;

/// How much a track matters to this subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// The stage: the called-on classroom, the shared screen, the teacher.
    High,
    /// Everyone else.
    Normal,
}

/// One track the subscriber receives, with what each of its layers costs.
#[derive(Debug, Clone)]
pub struct Demand {
    /// The track.
    pub track: TrackId,
    /// Audio or video.
    pub kind: TrackKind,
    /// Its priority for this subscriber.
    pub priority: Priority,
    /// Bit/s of each layer, lowest first (one entry without simulcast).
    pub layer_bps: Vec<u64>,
}

/// The allocator's decision for one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Layer per track (`None`: paused; audio is always `Some(0)`).
    pub layers: Vec<(TrackId, Option<usize>)>,
    /// Bit/s sent with this decision.
    pub allocated_bps: u64,
    /// What to ask the estimator to probe for (the next upgrade), if anything.
    pub probe_bps: Option<u64>,
    /// What is sent plus the next layer of the first video that can still climb (by
    /// priority), whether or not the budget has room for it: the rate to pad towards while
    /// the estimate is held below what the subscriber wants.
    pub next_bps: Option<u64>,
}

/// See `BandwidthAllocator::allocate`.
const DOWN_TOLERANCE_PCT: u64 = 10;

/// Hysteresis settings.
#[derive(Debug, Clone, Copy)]
pub struct AllocatorConfig {
    /// After a step down, wait this long before any step up.
    pub up_hold: Duration,
    /// Headroom for the next step must last this long before it is taken.
    pub stable_for: Duration,
    /// A playing video is paused only after its lowest layer has not fitted for this long: a
    /// momentary dip of the estimate (late feedback from a busy receiver) must not blank the
    /// picture.
    pub pause_after: Duration,
}

impl Default for AllocatorConfig {
    fn default() -> Self {
        AllocatorConfig {
            up_hold: Duration::from_secs(2),
            stable_for: Duration::from_millis(1000),
            pause_after: Duration::from_secs(2),
        }
    }
}

/// Per-subscriber allocation state.
#[derive(Debug, Clone, Default)]
pub struct BandwidthAllocator {
    config: AllocatorConfig,
    current: HashMap<TrackId, Option<usize>>,
    last_down: Option<Instant>,
    headroom_since: Option<Instant>,
    /// Since when a playing video's lowest layer no longer fits.
    unfit_since: HashMap<TrackId, Instant>,
    /// A rate the tolerance for wobbling layer rates never reaches past (a configured
    /// downlink: the link is that small whatever the estimate says).
    hard_limit: Option<u64>,
}

fn rate(d: &Demand, layer: Option<usize>) -> u64 {
    layer.and_then(|l| d.layer_bps.get(l).copied()).unwrap_or(0)
}

/// The best allocation for `budget_bps` ignoring history.
pub fn ideal(budget_bps: u64, demands: &[Demand]) -> HashMap<TrackId, Option<usize>> {
    let mut out = HashMap::new();
    let mut left = budget_bps as i64;
    for d in demands.iter().filter(|d| d.kind == TrackKind::Audio) {
        out.insert(d.track, Some(0));
        left -= rate(d, Some(0)) as i64;
    }
    let mut videos: Vec<&Demand> = demands
        .iter()
        .filter(|d| d.kind == TrackKind::Video && !d.layer_bps.is_empty())
        .collect();
    // Stable: within a priority the caller's order (room order) decides.
    videos.sort_by_key(|d| d.priority);
    for d in &videos {
        let lowest = rate(d, Some(0)) as i64;
        if lowest <= left {
            out.insert(d.track, Some(0));
            left -= lowest;
        } else {
            out.insert(d.track, None);
        }
    }
    // Climb: high-priority videos first, one layer each in turn (so a growing budget never
    // takes a layer from one to give it to another), then the others the same way.
    for class in [Priority::High, Priority::Normal] {
        loop {
            let mut climbed = false;
            for d in videos.iter().filter(|d| d.priority == class) {
                let Some(l) = out.get(&d.track).copied().flatten() else {
                    continue;
                };
                if l + 1 >= d.layer_bps.len() {
                    continue;
                }
                let step = rate(d, Some(l + 1)) as i64 - rate(d, Some(l)) as i64;
                if step <= left {
                    left -= step;
                    out.insert(d.track, Some(l + 1));
                    climbed = true;
                }
            }
            if !climbed {
                break;
            }
        }
    }
    out
}

impl BandwidthAllocator {
    /// An allocator with the given hysteresis.
    pub fn new(config: AllocatorConfig) -> Self {
        BandwidthAllocator {
            config,
            ..Default::default()
        }
    }

    /// The current layer of a track, if allocated.
    pub fn layer_of(&self, track: TrackId) -> Option<Option<usize>> {
        self.current.get(&track).copied()
    }

    /// Sets (or clears) a hard limit: what is kept never exceeds it, tolerance or not.
    pub fn set_hard_limit(&mut self, bps: Option<u64>) {
        self.hard_limit = bps;
    }

    /// One allocation round.
    pub fn allocate(&mut self, now: Instant, budget_bps: u64, demands: &[Demand]) -> Decision {
        self.allocate_on(now, budget_bps, false, demands)
    }

    /// One allocation round; `lowest_carried` says the link is seen to carry what is sent now
    /// (no congestion, little loss). A playing video whose lowest layer does not fit the budget
    /// is then kept at that layer instead of being paused: after a congestion the estimate
    /// undershoots the link for seconds, and pausing video that arrives fine would only blank
    /// the picture. Without that evidence it is paused after `pause_after`, as always.
    pub fn allocate_on(
        &mut self,
        now: Instant,
        budget_bps: u64,
        lowest_carried: bool,
        demands: &[Demand],
    ) -> Decision {
        // Measured layer rates wobble (a keyframe, a busy scene): a layer already sent is kept
        // while it fits the budget plus this tolerance, so noise does not cause step downs.
        // Under a hard limit the tolerance lies below the limit: steps up must leave it free.
        let budget_bps = self.hard_limit.map_or(budget_bps, |l| {
            budget_bps.min(l * 100 / (100 + DOWN_TOLERANCE_PCT))
        });
        let ideal = ideal(budget_bps, demands);
        let tolerated = budget_bps + budget_bps * DOWN_TOLERANCE_PCT / 100;
        let tolerated = self.hard_limit.map_or(tolerated, |l| tolerated.min(l));
        let keep = self::ideal(tolerated, demands);
        self.current.retain(|t, _| ideal.contains_key(t));
        // While what is sent now fits (within the tolerance), nothing steps down, even where
        // the ideal split of this budget differs (after climbing one layer at a time, one
        // stage video may be a layer above the other): stepping down a layer that fits would
        // only cost a keyframe and a worse picture.
        let fits_now = self.total(demands) <= tolerated;
        // A lowest layer that fits (again) restarts the count towards a pause.
        self.unfit_since
            .retain(|t, _| keep.get(t).is_some_and(|l| l.is_none()));
        let mut stepped_down = false;
        let mut upgrades: Vec<&Demand> = Vec::new();
        for d in demands {
            let want = ideal.get(&d.track).copied().flatten();
            let keepable = keep.get(&d.track).copied().flatten();
            match self.current.get(&d.track).copied() {
                // A new track starts where the budget allows.
                None => {
                    self.current.insert(d.track, want);
                }
                Some(cur) if !fits_now && lower(keepable, cur) => {
                    let next = match (keepable, cur) {
                        (None, Some(_)) if lowest_carried => {
                            self.unfit_since.remove(&d.track);
                            Some(0)
                        }
                        (None, Some(_)) => {
                            let since = *self.unfit_since.entry(d.track).or_insert(now);
                            if now.saturating_duration_since(since) >= self.config.pause_after {
                                None
                            } else {
                                Some(0)
                            }
                        }
                        _ => keepable,
                    };
                    if next != cur {
                        self.current.insert(d.track, next);
                        stepped_down = true;
                    }
                }
                Some(cur) if lower(cur, want) => upgrades.push(d),
                Some(_) => {}
            }
        }
        if stepped_down {
            self.last_down = Some(now);
            self.headroom_since = None;
        }
        upgrades.sort_by_key(|d| d.priority);
        let next = upgrades.first().map(|d| {
            let cur = self.current.get(&d.track).copied().flatten();
            let to = cur.map(|l| l + 1).unwrap_or(0);
            (d.track, to, rate(d, Some(to)).saturating_sub(rate(d, cur)))
        });
        let mut probe_bps = None;
        if let Some((track, to, step)) = next {
            let held = self
                .last_down
                .is_none_or(|t| now.saturating_duration_since(t) >= self.config.up_hold);
            // The step must fit on top of what is sent (which may exceed the ideal split).
            let room = self.total(demands) + step <= budget_bps;
            if !room {
                self.headroom_since = None;
            }
            let since = *self.headroom_since.get_or_insert(now);
            if room && held && now.saturating_duration_since(since) >= self.config.stable_for {
                self.current.insert(track, Some(to));
                self.headroom_since = None;
            } else {
                probe_bps = Some(self.total(demands) + step);
            }
        } else {
            self.headroom_since = None;
        }
        let layers = demands
            .iter()
            .map(|d| (d.track, self.current.get(&d.track).copied().flatten()))
            .collect();
        let total = self.total(demands);
        let mut climbable: Vec<(&Demand, Option<usize>)> = demands
            .iter()
            .filter(|d| d.kind == TrackKind::Video)
            .map(|d| (d, self.current.get(&d.track).copied().flatten()))
            .filter(|(d, cur)| cur.map_or(0, |l| l + 1) < d.layer_bps.len())
            .collect();
        climbable.sort_by_key(|(d, _)| d.priority);
        let next_bps = climbable.first().map(|(d, cur)| {
            let to = cur.map_or(0, |l| l + 1);
            total + rate(d, Some(to)).saturating_sub(rate(d, *cur))
        });
        Decision {
            layers,
            allocated_bps: total,
            probe_bps,
            next_bps,
        }
    }

    fn total(&self, demands: &[Demand]) -> u64 {
        demands
            .iter()
            .map(|d| rate(d, self.current.get(&d.track).copied().flatten()))
            .sum()
    }
}

/// Whether layer `a` is below `b` (a pause is below every layer).
fn lower(a: Option<usize>, b: Option<usize>) -> bool {
    match (a, b) {
        (None, Some(_)) => true,
        (Some(x), Some(y)) => x < y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1000;

    fn video(id: u64, priority: Priority) -> Demand {
        Demand {
            track: TrackId(id),
            kind: TrackKind::Video,
            priority,
            layer_bps: vec![150 * K, 500 * K, 1500 * K],
        }
    }

    fn audio(id: u64) -> Demand {
        Demand {
            track: TrackId(id),
            kind: TrackKind::Audio,
            priority: Priority::High,
            layer_bps: vec![40 * K],
        }
    }

    fn layer(d: &Decision, id: u64) -> Option<usize> {
        d.layers.iter().find(|(t, _)| *t == TrackId(id)).unwrap().1
    }

    #[test]
    fn ideal_serves_audio_first_then_lowest_layers_then_the_stage() {
        let ds = [
            audio(1),
            video(2, Priority::Normal),
            video(3, Priority::High),
            audio(4),
        ];
        // Plenty: everything at the top.
        let i = ideal(4000 * K, &ds);
        assert_eq!((i[&TrackId(3)], i[&TrackId(2)]), (Some(2), Some(2)));
        // Two stage videos share a growing budget in turns: neither loses a layer.
        let two = [video(5, Priority::High), video(6, Priority::High)];
        let mut last = (Some(0), Some(0));
        for b in (300..=3000).step_by(50) {
            let i = ideal(b * K, &two);
            let now = (i[&TrackId(5)], i[&TrackId(6)]);
            assert!(
                now.0 >= last.0 && now.1 >= last.1,
                "{b}k: {last:?} -> {now:?}"
            );
            last = now;
        }
        // 1 Mbit/s: audio 80k, both lowest (300k), the stage climbs to h (+350k), 270k left.
        let i = ideal(1000 * K, &ds);
        assert_eq!((i[&TrackId(3)], i[&TrackId(2)]), (Some(1), Some(0)));
        // 250 kbit/s: audio (80k), and one lowest layer (150k): the stage's.
        let i = ideal(250 * K, &ds);
        assert_eq!((i[&TrackId(3)], i[&TrackId(2)]), (Some(0), None));
        // Even audio does not fit: audio stays, video pauses.
        let i = ideal(50 * K, &ds);
        assert_eq!((i[&TrackId(1)], i[&TrackId(3)]), (Some(0), None));
    }

    #[test]
    fn steps_down_at_once_and_up_only_after_stable_headroom() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let ds = [audio(1), video(2, Priority::High)];
        let mut a = BandwidthAllocator::new(AllocatorConfig::default());
        // A new track starts at what fits.
        let d = a.allocate(at(0), 3000 * K, &ds);
        assert_eq!(layer(&d, 2), Some(2));
        // The link collapses: down in the same round, no probe.
        let d = a.allocate(at(100), 600 * K, &ds);
        assert_eq!(layer(&d, 2), Some(1));
        let d = a.allocate(at(200), 300 * K, &ds);
        assert_eq!(layer(&d, 2), Some(0));
        assert_eq!(d.probe_bps, None);
        // Too little even for the lowest layer: kept for `pause_after`, then paused.
        let d = a.allocate(at(250), 100 * K, &ds);
        assert_eq!(layer(&d, 2), Some(0));
        let d = a.allocate(at(2300), 100 * K, &ds);
        assert_eq!(layer(&d, 2), None);
        assert_eq!(layer(&d, 1), Some(0), "audio stays");
        // Capacity is back: nothing for up_hold (2 s after the last step down), but the
        // estimator is asked to probe for the next step.
        let d = a.allocate(at(2400), 3000 * K, &ds);
        assert_eq!(layer(&d, 2), None);
        assert_eq!(d.probe_bps, Some((40 + 150) * K));
        let d = a.allocate(at(3500), 3000 * K, &ds);
        assert_eq!(layer(&d, 2), None, "still inside the hold");
        // Held and stable: one step (resume at the lowest layer).
        let d = a.allocate(at(4400), 3000 * K, &ds);
        assert_eq!(layer(&d, 2), Some(0));
        // The next step needs its own second of headroom.
        let d = a.allocate(at(4900), 3000 * K, &ds);
        assert_eq!(layer(&d, 2), Some(0));
        assert_eq!(d.probe_bps, Some((40 + 500) * K));
        let d = a.allocate(at(6000), 3000 * K, &ds);
        assert_eq!(layer(&d, 2), Some(1));
        let d = a.allocate(at(6500), 3000 * K, &ds);
        assert_eq!(layer(&d, 2), Some(1));
        let d = a.allocate(at(7600), 3000 * K, &ds);
        assert_eq!(layer(&d, 2), Some(2));
        assert_eq!(d.allocated_bps, 1540 * K);
    }

    #[test]
    fn a_flapping_estimate_does_not_flap_the_layer() {
        let t0 = Instant::now();
        let ds = [video(2, Priority::High)];
        let mut a = BandwidthAllocator::new(AllocatorConfig::default());
        a.allocate(t0, 600 * K, &ds);
        let mut changes = 0;
        let mut last = Some(1);
        // The estimate jumps between 600 k and 2 M every 300 ms for 10 s.
        for i in 1..33 {
            let budget = if i % 2 == 0 { 600 * K } else { 2000 * K };
            let d = a.allocate(t0 + Duration::from_millis(300 * i), budget, &ds);
            if layer(&d, 2) != last {
                changes += 1;
                last = layer(&d, 2);
            }
        }
        assert_eq!(changes, 0, "no upgrade survives a 300 ms oscillation");
    }

    #[test]
    fn what_is_sent_is_kept_while_it_fits() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let ds = [video(5, Priority::High), video(6, Priority::High)];
        let mut a = BandwidthAllocator::new(AllocatorConfig::default());
        let d = a.allocate(at(0), 700 * K, &ds);
        assert_eq!((layer(&d, 5), layer(&d, 6)), (Some(1), Some(0)));
        // Climbing one layer at a time: the first stage video goes to the top.
        a.allocate(at(100), 3000 * K, &ds);
        let d = a.allocate(at(1100), 3000 * K, &ds);
        assert_eq!((layer(&d, 5), layer(&d, 6)), (Some(2), Some(0)));
        // The estimate dips: the ideal split of 1.5 Mbit/s is (h, h), but the 1.65 Mbit/s sent
        // are within the tolerance: nothing changes, and the other video does not climb on top.
        for ms in [1200, 1700, 2200, 2700, 3200, 5000] {
            let d = a.allocate(at(ms), 1500 * K, &ds);
            assert_eq!((layer(&d, 5), layer(&d, 6)), (Some(2), Some(0)), "{ms}");
        }
        // It no longer fits: down to the ideal split at once.
        let d = a.allocate(at(5500), 1000 * K, &ds);
        assert_eq!((layer(&d, 5), layer(&d, 6)), (Some(1), Some(0)));
    }

    #[test]
    fn a_lowest_layer_the_link_carries_is_not_paused() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let ds = [audio(1), video(2, Priority::High)];
        let mut a = BandwidthAllocator::new(AllocatorConfig::default());
        a.allocate_on(at(0), 3000 * K, true, &ds);
        // The estimate undershoots below the lowest layer, but the link carries it: down to the
        // lowest layer at once, and kept there however long the estimate stays low.
        let d = a.allocate_on(at(500), 150 * K, true, &ds);
        assert_eq!(layer(&d, 2), Some(0));
        let d = a.allocate_on(at(5000), 150 * K, true, &ds);
        assert_eq!(layer(&d, 2), Some(0));
        // Evidence of an overloaded link: the usual `pause_after` from then on.
        let d = a.allocate_on(at(5500), 150 * K, false, &ds);
        assert_eq!(layer(&d, 2), Some(0));
        let d = a.allocate_on(at(7400), 150 * K, false, &ds);
        assert_eq!(layer(&d, 2), Some(0));
        let d = a.allocate_on(at(7500), 150 * K, false, &ds);
        assert_eq!(layer(&d, 2), None);
        assert_eq!(layer(&d, 1), Some(0), "audio stays");
    }

    #[test]
    fn a_short_unfit_spell_does_not_count_towards_a_later_pause() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let ds = [video(2, Priority::High)];
        let mut a = BandwidthAllocator::new(AllocatorConfig::default());
        a.allocate(at(0), 600 * K, &ds);
        // 1.5 s without room for the lowest layer, then it fits again.
        a.allocate(at(500), 100 * K, &ds);
        let d = a.allocate(at(2000), 100 * K, &ds);
        assert_eq!(layer(&d, 2), Some(0));
        a.allocate(at(2500), 600 * K, &ds);
        // A new spell starts its own count.
        let d = a.allocate(at(10_000), 100 * K, &ds);
        assert_eq!(layer(&d, 2), Some(0));
        let d = a.allocate(at(11_900), 100 * K, &ds);
        assert_eq!(layer(&d, 2), Some(0));
        let d = a.allocate(at(12_000), 100 * K, &ds);
        assert_eq!(layer(&d, 2), None);
    }

    #[test]
    fn a_paused_video_resumes_when_it_fits() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let ds = [audio(1), video(2, Priority::Normal)];
        let mut a = BandwidthAllocator::new(AllocatorConfig::default());
        let d = a.allocate(at(0), 100 * K, &ds);
        assert_eq!((layer(&d, 1), layer(&d, 2)), (Some(0), None));
        a.allocate(at(2000), 400 * K, &ds);
        let d = a.allocate(at(3100), 400 * K, &ds);
        assert_eq!(layer(&d, 2), Some(0));
    }

    #[test]
    fn a_hard_limit_caps_the_tolerance() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let ds = [video(5, Priority::High)];
        let mut a = BandwidthAllocator::new(AllocatorConfig::default());
        let d = a.allocate(at(0), 1600 * K, &ds);
        assert_eq!(layer(&d, 5), Some(2));
        // 1.45 Mbit/s: the 1.5 Mbit/s top layer is within the tolerance and kept.
        let d = a.allocate(at(500), 1450 * K, &ds);
        assert_eq!(layer(&d, 5), Some(2));
        // The same budget under a configured 1.45 Mbit/s downlink: down at once.
        a.set_hard_limit(Some(1450 * K));
        let d = a.allocate(at(1000), 1450 * K, &ds);
        assert_eq!(layer(&d, 5), Some(1));
        // A larger budget does not lift it to the limit: steps up leave the tolerance free.
        let d = a.allocate(at(5000), 3000 * K, &ds);
        assert_eq!(layer(&d, 5), Some(1));
        assert_eq!(d.probe_bps, None);
        // A limit with room for the tolerance on top of the layer: up, and kept.
        a.set_hard_limit(Some(1700 * K));
        a.allocate(at(6000), 3000 * K, &ds);
        let d = a.allocate(at(7100), 3000 * K, &ds);
        assert_eq!(layer(&d, 5), Some(2));
        let d = a.allocate(at(9000), 1550 * K, &ds);
        assert_eq!(layer(&d, 5), Some(2));
    }

    #[test]
    fn the_next_step_is_named_even_when_the_budget_has_no_room() {
        let ds = [
            audio(1),
            video(2, Priority::Normal),
            video(3, Priority::High),
        ];
        let mut a = BandwidthAllocator::new(AllocatorConfig::default());
        // Audio and both lowest layers; the stage's next layer would add 350k.
        let d = a.allocate(Instant::now(), 400 * K, &ds);
        assert_eq!((layer(&d, 2), layer(&d, 3)), (Some(0), Some(0)));
        assert_eq!(d.probe_bps, None);
        assert_eq!(d.next_bps, Some(d.allocated_bps + 350 * K));
        // Everything at the top: nothing left to climb.
        let mut a = BandwidthAllocator::new(AllocatorConfig::default());
        let d = a.allocate(Instant::now(), 10_000 * K, &ds);
        assert_eq!(d.next_bps, None);
    }
}
