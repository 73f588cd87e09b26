//! The shard's deadline queue: the earliest `next_timeout` over all peers in O(log n).
//!
//! Entries are pushed whenever a peer's deadline changes and never updated in place; an entry
//! whose instant no longer matches the peer's current deadline is stale and skipped. The heap is
//! rebuilt from the peers when stale entries pile up, which bounds its size.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use crate::ids::PeerId;

#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, PeerId)>>,
}

impl Timers {
    pub fn push(&mut self, at: Instant, peer: PeerId) {
        self.heap.push(Reverse((at, peer)));
    }

    /// The earliest live deadline. `current` gives a peer's deadline (None: peer gone).
    pub fn earliest(&mut self, current: impl Fn(PeerId) -> Option<Instant>) -> Option<Instant> {
        while let Some(Reverse((at, peer))) = self.heap.peek().copied() {
            if current(peer) == Some(at) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes and returns the peers whose live deadline is at or before `now`, each once.
    pub fn pop_due(
        &mut self,
        now: Instant,
        current: impl Fn(PeerId) -> Option<Instant>,
        due: &mut Vec<PeerId>,
    ) {
        while let Some(Reverse((at, peer))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            if current(peer) == Some(at) && !due.contains(&peer) {
                due.push(peer);
            }
        }
    }

    /// Rebuilds the heap if it holds far more entries than there are peers.
    pub fn compact(&mut self, deadlines: &HashMap<PeerId, Instant>) {
        if self.heap.len() > 4 * deadlines.len() + 64 {
            self.heap = deadlines.iter().map(|(p, t)| Reverse((*t, *p))).collect();
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stale_entries_are_skipped_and_due_peers_come_once() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut live: HashMap<PeerId, Instant> = HashMap::new();
        let mut t = Timers::default();
        for (p, at) in [(1, 10), (2, 20), (1, 30)] {
            live.insert(PeerId(p), ms(at));
            t.push(ms(at), PeerId(p));
        }
        // Peer 1 moved to 30 ms: its 10 ms entry is stale.
        assert_eq!(t.earliest(|p| live.get(&p).copied()), Some(ms(20)));
        let mut due = Vec::new();
        t.pop_due(ms(30), |p| live.get(&p).copied(), &mut due);
        assert_eq!(due, vec![PeerId(2), PeerId(1)]);
        assert_eq!(t.earliest(|p| live.get(&p).copied()), None);
    }

    #[test]
    fn compaction_bounds_the_heap() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        let live = HashMap::from([(PeerId(1), t0)]);
        for i in 0..1000 {
            t.push(t0 + Duration::from_millis(i), PeerId(1));
        }
        t.compact(&live);
        assert_eq!(t.len(), 1);
    }
}
