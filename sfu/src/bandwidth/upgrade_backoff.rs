//! `UpgradeBackoff`: a layer the link has just failed to carry is not tried again at once, and
//! not on an estimate's word alone for a while.
//!
//! Bandwidth estimates overshoot on real access links: a token-bucket shaper lets a probe's
//! burst through at line rate, so the estimate can read twice the link for a second or so.
//! Following it, the allocator steps up, the link congests, the layer is dropped again, and the
//! viewer sees a better picture for a moment and then a freeze, over and over. So a step down
//! made on evidence (congestion or loss, not a budget that merely shrank) blocks the layer it
//! left for 5 s (only the first layer left in one congestion episode: the ones passed on the
//! way down within a second are not to blame); a step up to that layer that fails again within
//! 5 s doubles the block, up to a minute. For a minute after its block the layer is *wary*: a
//! step up to it needs its headroom to last 2 s instead of 1 (an overshoot rarely lasts that
//! long; a link that really came back does). A layer that holds for 20 s has proved itself,
//! and its backoff starts over.
//!
//! Pure: time comes in as arguments; tested step by step below.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ids::TrackId;

/// The first block after an evidence-driven step down.
const FIRST_WAIT: Duration = Duration::from_secs(5);
/// The longest block.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// After a block, steps up to the layer need longer headroom for this long.
const WARY_FOR: Duration = Duration::from_secs(60);
/// Step downs within this long of a block are one congestion episode: only its first layer
/// is blocked.
const EPISODE: Duration = Duration::from_secs(1);
/// A step down this soon after the step up is a failed upgrade: the block doubles.
const FAILED_WITHIN: Duration = Duration::from_secs(5);
/// A layer held this long without trouble has proved itself: its backoff starts over.
const PROVEN_AFTER: Duration = Duration::from_secs(20);

/// May a track step up to a layer now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade {
    /// Yes, on the usual headroom.
    Free,
    /// The layer failed recently: only on headroom that lasts.
    Wary,
    /// Not yet (unless the link has carried the step).
    Blocked,
}

#[derive(Debug, Clone, Copy)]
struct Block {
    at: Instant,
    until: Instant,
    wait: Duration,
}

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct UpgradeBackoff {
    blocks: HashMap<(TrackId, usize), Block>,
    /// The last step up per track: to which layer, when.
    taken: HashMap<TrackId, (usize, Instant)>,
}

impl UpgradeBackoff {
    /// The allocator moved `track` up to `layer`.
    pub fn stepped_up(&mut self, track: TrackId, layer: usize, now: Instant) {
        self.taken.insert(track, (layer, now));
    }

    /// The allocator moved `track` down from layer `from` because the link was seen not to
    /// carry what was sent.
    pub fn failed(&mut self, track: TrackId, from: usize, now: Instant) {
        let same_episode = self
            .blocks
            .iter()
            .any(|((t, _), b)| *t == track && now.saturating_duration_since(b.at) < EPISODE);
        if same_episode {
            return;
        }
        let recent = self
            .taken
            .get(&track)
            .is_some_and(|(l, t)| *l == from && now.saturating_duration_since(*t) < FAILED_WITHIN);
        let wait = match self.blocks.get(&(track, from)) {
            Some(b) if recent => (b.wait * 2).min(MAX_WAIT),
            _ => FIRST_WAIT,
        };
        self.blocks.insert(
            (track, from),
            Block {
                at: now,
                until: now + wait,
                wait,
            },
        );
        self.taken.remove(&track);
    }

    /// Whether `track` may step up to `layer` now (a block or a recent failure of any layer
    /// up to it counts).
    pub fn upgrade(&self, track: TrackId, layer: usize, now: Instant) -> Upgrade {
        let mut verdict = Upgrade::Free;
        for ((t, l), b) in &self.blocks {
            if *t != track || *l > layer {
                continue;
            }
            if now < b.until {
                return Upgrade::Blocked;
            }
            if now < b.until + WARY_FOR {
                verdict = Upgrade::Wary;
            }
        }
        verdict
    }

    /// `track` is at `layer` this round: a layer held long enough clears its backoff.
    pub fn holding(&mut self, track: TrackId, layer: Option<usize>, now: Instant) {
        let Some(layer) = layer else {
            return;
        };
        let proven = self
            .taken
            .get(&track)
            .is_some_and(|(l, t)| *l == layer && now.saturating_duration_since(*t) >= PROVEN_AFTER);
        if proven {
            self.blocks.retain(|(t, l), _| *t != track || *l > layer);
        }
    }

    /// Forgets tracks no longer received, and failures long past.
    pub fn retain(&mut self, keep: impl Fn(TrackId) -> bool, now: Instant) {
        self.blocks
            .retain(|(t, _), b| keep(*t) && now < b.until + WARY_FOR);
        self.taken.retain(|t, _| keep(*t));
    }
}

#[cfg(test)]
mod tests {
    use super::Upgrade::*;
    use super::*;

    const T: TrackId = TrackId(3);

    #[test]
    fn a_layer_left_on_evidence_is_blocked_then_wary_and_failed_retries_double_the_block() {
        let t = Instant::now();
        let at = |s: u64| t + Duration::from_secs(s);
        let mut b = UpgradeBackoff::default();
        assert_eq!(b.upgrade(T, 2, at(0)), Free);
        // The link collapses under the top layer; the middle one is passed on the way down.
        b.failed(T, 2, at(0));
        b.failed(T, 1, at(0));
        assert_eq!(b.upgrade(T, 2, at(4)), Blocked);
        assert_eq!(b.upgrade(T, 1, at(4)), Free, "lower layers are free");
        assert_eq!(b.upgrade(T, 2, at(5)), Wary);
        // The retry fails within 5 s: 10 s, then 20, 40, 60 at most.
        b.stepped_up(T, 2, at(5));
        b.failed(T, 2, at(7));
        assert_eq!(b.upgrade(T, 2, at(16)), Blocked);
        assert_eq!(b.upgrade(T, 2, at(17)), Wary);
        for (up, blocked_until) in [(17, 37), (37, 77), (77, 137), (137, 197)] {
            b.stepped_up(T, 2, at(up));
            b.failed(T, 2, at(up));
            assert_eq!(b.upgrade(T, 2, at(blocked_until - 1)), Blocked, "{up}");
            assert_eq!(b.upgrade(T, 2, at(blocked_until)), Wary, "{up}");
        }
        // A minute after the last block the layer is free again.
        b.retain(|_| true, at(257));
        assert_eq!(b.upgrade(T, 2, at(257)), Free);
    }

    #[test]
    fn a_blocked_lower_layer_blocks_the_ones_above_it() {
        let t = Instant::now();
        let mut b = UpgradeBackoff::default();
        b.failed(T, 1, t);
        assert_eq!(b.upgrade(T, 2, t + Duration::from_secs(3)), Blocked);
        assert_eq!(b.upgrade(T, 0, t + Duration::from_secs(3)), Free);
    }

    #[test]
    fn a_layer_that_holds_for_twenty_seconds_starts_its_backoff_over() {
        let t = Instant::now();
        let at = |s: u64| t + Duration::from_secs(s);
        let mut b = UpgradeBackoff::default();
        b.failed(T, 2, at(0));
        b.stepped_up(T, 2, at(5));
        b.failed(T, 2, at(6));
        // Blocked 10 s; then up again, and it holds.
        b.stepped_up(T, 2, at(16));
        for s in 17..=36 {
            b.holding(T, Some(2), at(s));
        }
        assert_eq!(b.upgrade(T, 2, at(36)), Free, "proved");
        // A later failed upgrade is a first failure again: 5 s, not 20.
        b.stepped_up(T, 2, at(40));
        b.failed(T, 2, at(41));
        assert_eq!(b.upgrade(T, 2, at(45)), Blocked);
        assert_eq!(b.upgrade(T, 2, at(46)), Wary);
    }
}
