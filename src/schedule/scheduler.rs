//! Rooms follow the schedule: the decisions, with time passed in.
//!
//! Each server node asks, every `schedule.tick`, what its own live lesson rooms should do, from
//! the database's view of their occurrences and the time alone; nodes sharing one database
//! therefore agree without talking to each other. A room is warned once `warn_before` ahead of
//! the end of its window (again if the occurrence is moved), and closed when its window is
//! over, its occurrence is cancelled, ended or deleted. A close is repeated while the room is
//! still live (someone got in within the token's clock skew, or the close was lost).

use std::collections::HashMap;

use ketang_sfu::RoomId;

/// What the schedule says about a live room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomState {
    /// Scheduled; the room may stay open until `closes_at_ms` (the lesson end plus the grace).
    Open { closes_at_ms: i64 },
    /// The occurrence was cancelled.
    Cancelled,
    /// An admin ended the occurrence.
    Ended,
    /// The room id is an occurrence id the database does not know (the lesson was deleted).
    Unknown,
}

/// A live room and its schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomWindow {
    pub room: RoomId,
    pub state: RoomState,
}

/// What to do to a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Tell everyone the room closes at `ends_at` (Unix seconds).
    Warn { room: RoomId, ends_at: u64 },
    /// Close the room.
    Close { room: RoomId, why: RoomState },
}

/// The decision state of one node: which warnings and closes it has issued.
#[derive(Debug)]
pub struct Scheduler {
    warn_before_ms: i64,
    retry_ms: i64,
    /// Room → the closing time it was warned about.
    warned: HashMap<RoomId, i64>,
    /// Room → when its close was last issued.
    closing: HashMap<RoomId, i64>,
}

impl Scheduler {
    /// Warns `warn_before_ms` ahead; repeats a close after `retry_ms` if the room is still live.
    pub fn new(warn_before_ms: i64, retry_ms: i64) -> Self {
        Self {
            warn_before_ms,
            retry_ms,
            warned: HashMap::new(),
            closing: HashMap::new(),
        }
    }

    /// The actions for the live rooms `live` at `now_ms`. Rooms that are no longer live are
    /// forgotten, so memory follows the number of live rooms.
    pub fn tick(&mut self, now_ms: i64, live: &[RoomWindow]) -> Vec<Action> {
        self.warned.retain(|r, _| live.iter().any(|w| w.room == *r));
        self.closing
            .retain(|r, _| live.iter().any(|w| w.room == *r));
        let mut actions = Vec::new();
        for w in live {
            let close = match w.state {
                RoomState::Open { closes_at_ms } => now_ms >= closes_at_ms,
                RoomState::Cancelled | RoomState::Ended | RoomState::Unknown => true,
            };
            if close {
                let due = self
                    .closing
                    .get(&w.room)
                    .is_none_or(|issued| now_ms - issued >= self.retry_ms);
                if due {
                    self.closing.insert(w.room.clone(), now_ms);
                    actions.push(Action::Close {
                        room: w.room.clone(),
                        why: w.state,
                    });
                }
                continue;
            }
            // Still open (perhaps the occurrence was moved later after a close was issued).
            self.closing.remove(&w.room);
            if let RoomState::Open { closes_at_ms } = w.state
                && now_ms >= closes_at_ms - self.warn_before_ms
                && self.warned.get(&w.room) != Some(&closes_at_ms)
            {
                self.warned.insert(w.room.clone(), closes_at_ms);
                actions.push(Action::Warn {
                    room: w.room.clone(),
                    // Rounded up: the room is not closed before the announced second.
                    ends_at: u64::try_from(closes_at_ms.div_euclid(1000)).unwrap_or(0)
                        + u64::from(closes_at_ms.rem_euclid(1000) > 0),
                });
            }
        }
        actions
    }
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
