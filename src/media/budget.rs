//! Classroom links and school budgets → per-peer `PeerCaps`.
//!
//! A classroom's link has a configured downlink and uplink (its own, else its school's, else
//! the default of the school's kind), and a school may have a budget shared by its classrooms
//! that are live at the same time, in any room on any shard. The split is weighted: a
//! classroom on stage counts [`STAGE_WEIGHT`] times, because everyone watches it and it must
//! see and hear the teacher without a stall. Each share applies to both directions (a school's
//! access link is limited each way): `down = min(classroom downlink, share)`,
//! `up = min(classroom uplink, share)`.
//!
//! [`BudgetSplit`] is the pure policy; [`Budgets`] wraps it for the application: shards and
//! sessions report joins, leaves and stage changes, and changed caps are sent to the shards
//! of the peers concerned.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use dashmap::DashMap;
use ketang_sfu::{PeerCaps, PeerId, RoomId};
use tokio::sync::mpsc;

use super::ShardCommand;

/// How many shares of the school budget an on-stage classroom gets (others get one).
pub const STAGE_WEIGHT: u64 = 2;

/// What the schedule knows about a classroom's network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassroomLink {
    /// The school, whose budget the classroom shares.
    pub school: String,
    /// Configured downlink (server → classroom), bit/s.
    pub down_bps: Option<u64>,
    /// Configured uplink (classroom → server), bit/s.
    pub up_bps: Option<u64>,
    /// The school's budget shared by its live classrooms, bit/s; `None`: no budget.
    pub school_budget_bps: Option<u64>,
}

/// New caps for one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapsChange {
    pub room: RoomId,
    pub peer: PeerId,
    pub caps: PeerCaps,
}

#[derive(Debug)]
struct Entry {
    room: RoomId,
    link: ClassroomLink,
    on_stage: bool,
    caps: PeerCaps,
}

/// The pure split of school budgets among live classrooms.
#[derive(Debug, Default)]
pub struct BudgetSplit {
    entries: BTreeMap<PeerId, Entry>,
}

impl BudgetSplit {
    /// A classroom peer joins; returns its caps, and changes for the school's other peers.
    pub fn join(
        &mut self,
        peer: PeerId,
        room: RoomId,
        link: ClassroomLink,
    ) -> (PeerCaps, Vec<CapsChange>) {
        let school = link.school.clone();
        let on_stage = self.entries.get(&peer).is_some_and(|e| e.on_stage);
        self.entries.insert(
            peer,
            Entry {
                room,
                link,
                on_stage,
                caps: PeerCaps::default(),
            },
        );
        let mut changes = self.recompute(&school);
        let own = self.caps(peer).unwrap_or_default();
        changes.retain(|c| c.peer != peer);
        (own, changes)
    }

    /// A peer is gone; returns changes for its school's remaining peers.
    pub fn leave(&mut self, peer: PeerId) -> Vec<CapsChange> {
        match self.entries.remove(&peer) {
            Some(e) => self.recompute(&e.link.school),
            None => Vec::new(),
        }
    }

    /// A peer went on or off stage; returns changed caps (none if it is not a tracked
    /// classroom or nothing changed).
    pub fn stage(&mut self, peer: PeerId, on_stage: bool) -> Vec<CapsChange> {
        let Some(e) = self.entries.get_mut(&peer) else {
            return Vec::new();
        };
        if e.on_stage == on_stage {
            return Vec::new();
        }
        e.on_stage = on_stage;
        let school = e.link.school.clone();
        self.recompute(&school)
    }

    /// The caps of a tracked peer.
    pub fn caps(&self, peer: PeerId) -> Option<PeerCaps> {
        self.entries.get(&peer).map(|e| e.caps)
    }

    fn recompute(&mut self, school: &str) -> Vec<CapsChange> {
        let members = || self.entries.values().filter(|e| e.link.school == school);
        // All members name the same school; after the budget is edited during a lesson the
        // stricter value holds until the members that joined under the old one leave.
        let budget = members().filter_map(|e| e.link.school_budget_bps).min();
        let total_weight: u64 = members().map(weight).sum();
        let mut changes = Vec::new();
        for (peer, e) in self.entries.iter_mut() {
            if e.link.school != school {
                continue;
            }
            let share = budget.map(|b| b * weight(e) / total_weight.max(1));
            let caps = PeerCaps {
                down_bps: min_some(e.link.down_bps, share),
                up_bps: min_some(e.link.up_bps, share),
            };
            if caps != e.caps {
                e.caps = caps;
                changes.push(CapsChange {
                    room: e.room.clone(),
                    peer: *peer,
                    caps,
                });
            }
        }
        changes
    }
}

fn weight(e: &Entry) -> u64 {
    if e.on_stage { STAGE_WEIGHT } else { 1 }
}

fn min_some(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// The budget split shared by shards and sessions. Every call is rare (a join, a leave, a
/// stage change), never per packet.
#[derive(Debug, Default)]
pub struct Budgets {
    split: Mutex<BudgetSplit>,
    shards: OnceLock<Vec<mpsc::UnboundedSender<ShardCommand>>>,
    rooms: OnceLock<std::sync::Arc<DashMap<RoomId, usize>>>,
}

impl Budgets {
    pub(super) fn connect(
        &self,
        shards: Vec<mpsc::UnboundedSender<ShardCommand>>,
        rooms: std::sync::Arc<DashMap<RoomId, usize>>,
    ) {
        let _ = self.shards.set(shards);
        let _ = self.rooms.set(rooms);
    }

    /// Registers a classroom peer before it joins; returns the caps to join with.
    pub fn admit(&self, peer: PeerId, room: RoomId, link: ClassroomLink) -> PeerCaps {
        let (own, changes) = match self.split.lock() {
            Ok(mut s) => s.join(peer, room, link),
            Err(_) => return PeerCaps::default(),
        };
        self.dispatch(changes);
        own
    }

    /// The peer is gone from its room.
    pub fn left(&self, peer: PeerId) {
        let changes = match self.split.lock() {
            Ok(mut s) => s.leave(peer),
            Err(_) => return,
        };
        self.dispatch(changes);
    }

    /// The peer's stage state as its room state says.
    pub fn stage(&self, peer: PeerId, on_stage: bool) {
        let changes = match self.split.lock() {
            Ok(mut s) => s.stage(peer, on_stage),
            Err(_) => return,
        };
        self.dispatch(changes);
    }

    /// The caps of a tracked peer.
    pub fn caps(&self, peer: PeerId) -> Option<PeerCaps> {
        self.split.lock().ok()?.caps(peer)
    }

    fn dispatch(&self, changes: Vec<CapsChange>) {
        let (Some(shards), Some(rooms)) = (self.shards.get(), self.rooms.get()) else {
            return;
        };
        for c in changes {
            let Some(index) = rooms.get(&c.room).map(|i| *i) else {
                continue;
            };
            if let Some(tx) = shards.get(index) {
                let _ = tx.send(ShardCommand::SetCaps {
                    peer: c.peer,
                    caps: c.caps,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1_000_000;

    fn link(school: &str, down: u64, budget: Option<u64>) -> ClassroomLink {
        ClassroomLink {
            school: school.into(),
            down_bps: Some(down),
            up_bps: Some(down / 2),
            school_budget_bps: budget,
        }
    }

    fn room(n: &str) -> RoomId {
        RoomId::new(n).unwrap()
    }

    #[test]
    fn without_a_budget_the_classroom_link_is_the_cap() {
        let mut s = BudgetSplit::default();
        let (caps, changes) = s.join(PeerId(1), room("a"), link("s1", 5 * M, None));
        assert_eq!(caps.down_bps, Some(5 * M));
        assert_eq!(caps.up_bps, Some(5 * M / 2));
        assert!(changes.is_empty());
        // A second classroom of the school changes nothing for the first.
        let (caps, changes) = s.join(PeerId(2), room("b"), link("s1", 2 * M, None));
        assert_eq!(caps.down_bps, Some(2 * M));
        assert!(changes.is_empty());
    }

    #[test]
    fn a_budget_is_split_among_live_classrooms_across_rooms_and_weighted_by_stage() {
        let mut s = BudgetSplit::default();
        let (caps, _) = s.join(PeerId(1), room("a"), link("s1", 5 * M, Some(3 * M)));
        assert_eq!(caps.down_bps, Some(3 * M), "alone: the whole budget");
        assert_eq!(caps.up_bps, Some(5 * M / 2), "its own uplink is lower");

        // Another classroom of the school, in another room: halves.
        let (caps, changes) = s.join(PeerId(2), room("b"), link("s1", 5 * M, Some(3 * M)));
        assert_eq!(caps.down_bps, Some(1_500_000));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].peer, PeerId(1));
        assert_eq!(changes[0].room, room("a"));
        assert_eq!(changes[0].caps.down_bps, Some(1_500_000));

        // A classroom of another school is not counted.
        let (caps, changes) = s.join(PeerId(3), room("a"), link("s2", 5 * M, Some(3 * M)));
        assert_eq!(caps.down_bps, Some(3 * M));
        assert!(changes.is_empty());

        // Classroom 2 called on: 2 of 3 shares.
        let changes = s.stage(PeerId(2), true);
        assert_eq!(changes.len(), 2);
        assert_eq!(s.caps(PeerId(2)).unwrap().down_bps, Some(2 * M));
        assert_eq!(s.caps(PeerId(1)).unwrap().down_bps, Some(M));
        let total: u64 = [1, 2]
            .iter()
            .map(|p| s.caps(PeerId(*p)).unwrap().down_bps.unwrap())
            .sum();
        assert!(total <= 3 * M);
        // Repeated room state with the same stage: nothing to send.
        assert!(s.stage(PeerId(2), true).is_empty());

        // Off stage, then classroom 2 leaves: classroom 1 gets the whole budget back.
        s.stage(PeerId(2), false);
        assert_eq!(s.caps(PeerId(1)).unwrap().down_bps, Some(1_500_000));
        let changes = s.leave(PeerId(2));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].caps.down_bps, Some(3 * M));
        assert!(
            s.leave(PeerId(2)).is_empty(),
            "leaving twice changes nothing"
        );
    }

    #[test]
    fn a_rejoin_keeps_the_stage_weight() {
        let mut s = BudgetSplit::default();
        s.join(PeerId(1), room("a"), link("s1", 5 * M, Some(3 * M)));
        s.join(PeerId(2), room("a"), link("s1", 5 * M, Some(3 * M)));
        s.stage(PeerId(1), true);
        // The same peer registers again (a reconnecting client): still on stage.
        let (caps, changes) = s.join(PeerId(1), room("a"), link("s1", 5 * M, Some(3 * M)));
        assert_eq!(caps.down_bps, Some(2 * M));
        assert!(changes.is_empty());
    }

    #[test]
    fn unknown_peers_are_ignored() {
        let mut s = BudgetSplit::default();
        assert!(s.stage(PeerId(9), true).is_empty());
        assert!(s.leave(PeerId(9)).is_empty());
        assert_eq!(s.caps(PeerId(9)), None);
    }
}
