//! `BandwidthAllocator`: how one subscriber's downlink is shared among the tracks it receives.
//!
//! Budget = min(bandwidth estimate, configured caps), minus audio (audio is never cut). Then,
//! in priority order, every video gets its lowest layer if it fits (else it pauses: audio
//! continues); then the high-priority videos (the stage, the screen, the teacher) climb layer by
//! layer, then the others. A budget that no longer covers what is sent is followed at once (a
//! dip that still covers it changes nothing); a growing one only after the headroom has lasted
//! (no flapping), one layer at a time, while the estimator probes toward the next step. A
//! playing video is paused only when its lowest layer does not fit for a while and the link is
//! not seen to carry it. A video with a single layer has nothing to step down to: it is paused
//! only as a last resort (`last_resort.rs`): a configured downlink cannot hold it, or the link
//! is seen failing. A layer left because the link did not carry it is not tried again at once
//! (`upgrade_backoff.rs`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::bandwidth::last_resort::{LastResort, Verdict};
use crate::bandwidth::upgrade_backoff::{Upgrade, UpgradeBackoff};
use crate::ids::TrackId;
use crate::lesson::role::TrackKind;

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
    /// A single-layer video the link failed to carry was resumed on trial this round.
    pub trial: bool,
}

/// What the link is seen to do, beyond the budget's number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkSignals {
    /// It carries what is sent now: no congestion, little loss. A playing video whose lowest
    /// layer does not fit the budget is then kept at that layer.
    pub carried: bool,
    /// It is seen not to carry what is sent: loss (or congestion) that lasts. Only this (or a
    /// configured downlink) pauses a video that has a single layer.
    pub failing: bool,
    /// It is seen not to carry what is sent this round (congestion, heavy loss): a layer left
    /// now is backed off (`UpgradeBackoff`). Neither this nor `carried`: nothing is known.
    pub overloaded: bool,
    /// What the link has carried without trouble for the last seconds, bit/s (0: nothing
    /// proven): a backed-off layer this covers may be tried again at once.
    pub proven_bps: u64,
}

/// See `BandwidthAllocator::allocate`.
const DOWN_TOLERANCE_PCT: u64 = 10;

/// A layer the link failed to carry recently is taken again only when the headroom for it has
/// lasted this long (instead of `stable_for`): an estimate that overshoots (a probe burst
/// through a shaper) rarely holds that long.
const WARY_STABLE_FOR: Duration = Duration::from_secs(2);

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
    /// Single-layer videos: paused only as a last resort.
    last_resort: LastResort,
    /// Layers the link failed to carry, not tried again at once.
    backoff: UpgradeBackoff,
}

/// One round's targets: the ideal split of the budget, the split of the tolerated budget
/// (what may be kept), and the tolerated budget.
struct Plans {
    ideal: HashMap<TrackId, Option<usize>>,
    keep: HashMap<TrackId, Option<usize>>,
    tolerated: u64,
}

fn rate(d: &Demand, layer: Option<usize>) -> u64 {
    layer.and_then(|l| d.layer_bps.get(l).copied()).unwrap_or(0)
}

/// The best allocation for `budget_bps` ignoring history.
#[cfg(test)]
pub(crate) fn ideal(budget_bps: u64, demands: &[Demand]) -> HashMap<TrackId, Option<usize>> {
    ideal_with(budget_bps, demands, &HashMap::new())
}

/// The best allocation for `budget_bps` ignoring history, with some videos decided already
/// (`fixed`: a single layer played or paused as a last resort): those played are served right
/// after audio, whatever the budget.
fn ideal_with(
    budget_bps: u64,
    demands: &[Demand],
    fixed: &HashMap<TrackId, Option<usize>>,
) -> HashMap<TrackId, Option<usize>> {
    let mut out = HashMap::new();
    let mut left = budget_bps as i64;
    for d in demands.iter().filter(|d| d.kind == TrackKind::Audio) {
        out.insert(d.track, Some(0));
        left -= rate(d, Some(0)) as i64;
    }
    for d in demands.iter().filter(|d| d.kind == TrackKind::Video) {
        if let Some(l) = fixed.get(&d.track) {
            out.insert(d.track, *l);
            left -= rate(d, *l) as i64;
        }
    }
    let mut videos: Vec<&Demand> = demands
        .iter()
        .filter(|d| {
            d.kind == TrackKind::Video && !d.layer_bps.is_empty() && !fixed.contains_key(&d.track)
        })
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
        self.allocate_on(now, budget_bps, LinkSignals::default(), demands)
    }

    /// One allocation round, with what the link is seen to do (`LinkSignals`). A playing video
    /// whose lowest layer does not fit the budget is kept at that layer while the link carries
    /// it: after a congestion the estimate undershoots the link for seconds, and pausing video
    /// that arrives fine would only blank the picture. Without that evidence it is paused after
    /// `pause_after`, as always. Single-layer videos follow `LastResort`.
    pub fn allocate_on(
        &mut self,
        now: Instant,
        budget_bps: u64,
        link: LinkSignals,
        demands: &[Demand],
    ) -> Decision {
        // Measured layer rates wobble (a keyframe, a busy scene): a layer already sent is kept
        // while it fits the budget plus this tolerance, so noise does not cause step downs.
        // Under a hard limit the tolerance lies below the limit: steps up must leave it free.
        let budget_bps = self.hard_limit.map_or(budget_bps, |l| {
            budget_bps.min(l * 100 / (100 + DOWN_TOLERANCE_PCT))
        });
        let (fixed, trial) = self.single_layers(now, link.failing, demands);
        let tolerated = budget_bps + budget_bps * DOWN_TOLERANCE_PCT / 100;
        let tolerated = self.hard_limit.map_or(tolerated, |l| tolerated.min(l));
        let plans = Plans {
            ideal: ideal_with(budget_bps, demands, &fixed),
            keep: ideal_with(tolerated, demands, &fixed),
            tolerated,
        };
        self.current.retain(|t, _| plans.ideal.contains_key(t));
        self.backoff.retain(|t| plans.ideal.contains_key(&t), now);
        for (track, layer) in &fixed {
            self.current.insert(*track, *layer);
        }
        let upgrades = self.step_down(now, link, demands, &fixed, &plans);
        let probe_bps = self.step_up(now, budget_bps, link.proven_bps, demands, upgrades);
        for d in demands {
            let layer = self.current.get(&d.track).copied().flatten();
            self.backoff.holding(d.track, layer, now);
        }
        let layers = demands
            .iter()
            .map(|d| (d.track, self.current.get(&d.track).copied().flatten()))
            .collect();
        Decision {
            layers,
            allocated_bps: self.total(demands),
            probe_bps,
            next_bps: self.next_bps(demands),
            trial,
        }
    }

    /// Follows a budget that no longer covers what is sent, at once; returns the tracks that
    /// could climb. A layer left while the link is overloaded is backed off.
    fn step_down<'d>(
        &mut self,
        now: Instant,
        link: LinkSignals,
        demands: &'d [Demand],
        fixed: &HashMap<TrackId, Option<usize>>,
        plans: &Plans,
    ) -> Vec<&'d Demand> {
        // While what is sent now fits (within the tolerance), nothing steps down, even where
        // the ideal split of this budget differs (after climbing one layer at a time, one
        // stage video may be a layer above the other): stepping down a layer that fits would
        // only cost a keyframe and a worse picture.
        let fits_now = self.total(demands) <= plans.tolerated;
        // A lowest layer that fits (again) restarts the count towards a pause.
        self.unfit_since
            .retain(|t, _| plans.keep.get(t).is_some_and(|l| l.is_none()));
        let mut stepped_down = false;
        let mut upgrades: Vec<&Demand> = Vec::new();
        for d in demands.iter().filter(|d| !fixed.contains_key(&d.track)) {
            let want = plans.ideal.get(&d.track).copied().flatten();
            let keepable = plans.keep.get(&d.track).copied().flatten();
            match self.current.get(&d.track).copied() {
                // A new track starts where the budget allows.
                None => {
                    self.current.insert(d.track, want);
                }
                Some(cur) if !fits_now && lower(keepable, cur) => {
                    let next = match (keepable, cur) {
                        (None, Some(_)) if link.carried => {
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
                        if let (Some(from), true) = (cur, link.overloaded) {
                            self.backoff.failed(d.track, from, now);
                        }
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
        upgrades
    }

    /// Takes the first step up (by priority) once its headroom has lasted and no step down is
    /// recent; returns the rate to probe for while it waits. A backed-off layer is skipped
    /// unless the link has proven it carries the step (`proven_bps`, padding included).
    fn step_up(
        &mut self,
        now: Instant,
        budget_bps: u64,
        proven_bps: u64,
        demands: &[Demand],
        mut upgrades: Vec<&Demand>,
    ) -> Option<u64> {
        upgrades.sort_by_key(|d| d.priority);
        let total = self.total(demands);
        let Some((track, to, step)) = upgrades.first().map(|d| {
            let cur = self.current.get(&d.track).copied().flatten();
            let to = cur.map(|l| l + 1).unwrap_or(0);
            (d.track, to, rate(d, Some(to)).saturating_sub(rate(d, cur)))
        }) else {
            self.headroom_since = None;
            return None;
        };
        // A backed-off layer waits for the end of its block and then for its headroom to last
        // longer, unless the link has carried the step (padding included) without trouble.
        // str0m counts datagrams without their UDP and IP headers: allow for them.
        let proven = proven_bps * 105 / 100 >= total + step;
        let stable_for = match self.backoff.upgrade(track, to, now) {
            _ if proven => self.config.stable_for,
            Upgrade::Free => self.config.stable_for,
            Upgrade::Wary => WARY_STABLE_FOR,
            // Probed for (padding towards it), not taken.
            Upgrade::Blocked => Duration::MAX,
        };
        let held = self
            .last_down
            .is_none_or(|t| now.saturating_duration_since(t) >= self.config.up_hold);
        // The step must fit on top of what is sent (which may exceed the ideal split).
        let room = self.total(demands) + step <= budget_bps;
        if !room {
            self.headroom_since = None;
        }
        let since = *self.headroom_since.get_or_insert(now);
        if room && held && now.saturating_duration_since(since) >= stable_for {
            self.current.insert(track, Some(to));
            self.backoff.stepped_up(track, to, now);
            self.headroom_since = None;
            None
        } else {
            Some(self.total(demands) + step)
        }
    }

    /// What is sent plus the next layer of the first video that can still climb (by priority).
    fn next_bps(&self, demands: &[Demand]) -> Option<u64> {
        let mut climbable: Vec<(&Demand, Option<usize>)> = demands
            .iter()
            .filter(|d| d.kind == TrackKind::Video)
            .map(|d| (d, self.current.get(&d.track).copied().flatten()))
            .filter(|(d, cur)| cur.map_or(0, |l| l + 1) < d.layer_bps.len())
            .collect();
        climbable.sort_by_key(|(d, _)| d.priority);
        climbable.first().map(|(d, cur)| {
            let to = cur.map_or(0, |l| l + 1);
            self.total(demands) + rate(d, Some(to)).saturating_sub(rate(d, *cur))
        })
    }

    /// Decides the single-layer videos (`LastResort`): played, whatever the budget, unless a
    /// hard limit cannot hold them (after audio and the single layers before them) or the link
    /// fails. Returns the decisions and whether one was resumed on trial.
    fn single_layers(
        &mut self,
        now: Instant,
        failing: bool,
        demands: &[Demand],
    ) -> (HashMap<TrackId, Option<usize>>, bool) {
        self.last_resort
            .retain(|t| demands.iter().any(|d| d.track == t));
        let mut fixed = HashMap::new();
        let mut trial = false;
        let mut held: u64 = demands
            .iter()
            .filter(|d| d.kind == TrackKind::Audio)
            .map(|d| rate(d, Some(0)))
            .sum();
        let mut singles: Vec<&Demand> = demands
            .iter()
            .filter(|d| d.kind == TrackKind::Video && d.layer_bps.len() == 1)
            .collect();
        singles.sort_by_key(|d| d.priority);
        for d in singles {
            let playing = self.current.get(&d.track).copied().flatten().is_some();
            let fits_cap = self.hard_limit.is_none_or(|l| held + rate(d, Some(0)) <= l);
            let layer = match self
                .last_resort
                .decide(now, d.track, playing, fits_cap, failing)
            {
                Verdict::Play { trial: t } => {
                    trial |= t;
                    held += rate(d, Some(0));
                    Some(0)
                }
                Verdict::Pause => None,
            };
            if playing && layer.is_none() {
                self.last_down = Some(now);
                self.headroom_since = None;
            }
            fixed.insert(d.track, layer);
        }
        (fixed, trial)
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
#[path = "allocator_tests.rs"]
mod tests;
