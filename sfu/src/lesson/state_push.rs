//! Sending the room state (protocol §4.1 `roomState`) without amplification.
//!
//! The state is whole, not a delta, so its cost per change grows with the room. Three rules keep
//! what one participant can make the server send bounded (issue 13):
//! - watchers (observers, viewers) see only their own questions: one viewer's question changes
//!   nothing the other watchers are shown, so they are not sent anything;
//! - watchers get a changed state at most every `SfuConfig::audience_state_every`, coalesced
//!   (the latest state, once), however often the floor changes;
//! - a question reaches the runners (teacher, classrooms) coalesced the same way; their own
//!   floor actions reach them at once.
//!
//! A peer that joins gets its state at once.

use std::time::Instant;

use crate::event::{ParticipantInfo, PeerEvent, RoomState};
use crate::ids::{PeerId, RoomId};
use crate::lesson::role::is_audience;
use crate::sfu::Sfu;

/// Who must see a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateScope {
    /// Everyone (a floor change).
    Everyone,
    /// The runners only (a watcher came or went: watchers are counted for the runners only).
    Runners,
    /// `peer` asked: the runners (coalesced) and `peer` itself.
    Asked(PeerId),
    /// The teacher settled `peer`'s question: the runners and `peer`.
    Settled(PeerId),
    /// The runners, and `peer` at once (it joined).
    Joined(PeerId),
}

/// At most one send per interval; a change inside it is sent when the interval ends.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    next: Option<Instant>,
    pending: bool,
}

impl Throttle {
    /// Whether to send now; if not, the change is kept for `due_at`.
    fn try_send(&mut self, now: Instant, every: std::time::Duration) -> bool {
        if self.next.is_some_and(|n| now < n) {
            self.pending = true;
            return false;
        }
        self.next = Some(now + every);
        self.pending = false;
        true
    }

    /// When a kept change is due.
    pub fn due_at(&self) -> Option<Instant> {
        if self.pending { self.next } else { None }
    }
}

/// The throttles of one room.
#[derive(Debug, Default)]
pub(crate) struct StateThrottles {
    audience: Throttle,
    questions: Throttle,
}

impl StateThrottles {
    fn due_at(&self) -> Option<Instant> {
        match (self.audience.due_at(), self.questions.due_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The state as `viewer` is shown it: watchers see only their own questions.
fn view_for(state: &RoomState, viewer: PeerId) -> Box<RoomState> {
    let mut v = RoomState {
        questions: Vec::new(),
        ..state.clone()
    };
    v.questions = state
        .questions
        .iter()
        .filter(|q| q.peer_id == viewer)
        .cloned()
        .collect();
    Box::new(v)
}

impl Sfu {
    /// Sends the room state to everyone (or, with `runners_only`, to everyone but the
    /// audience).
    pub(crate) fn push_state(&mut self, room_id: &RoomId, runners_only: bool) {
        let scope = if runners_only {
            StateScope::Runners
        } else {
            StateScope::Everyone
        };
        self.push_state_to(room_id, scope);
    }

    pub(crate) fn push_state_to(&mut self, room_id: &RoomId, scope: StateScope) {
        let now = self.last_now;
        let every = self.config.audience_state_every;
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let (runners, audience) = match scope {
            StateScope::Everyone => (true, room.throttles.audience.try_send(now, every)),
            StateScope::Runners | StateScope::Joined(_) | StateScope::Settled(_) => (true, false),
            StateScope::Asked(_) => (room.throttles.questions.try_send(now, every), false),
        };
        let only = match scope {
            StateScope::Asked(p) | StateScope::Settled(p) | StateScope::Joined(p) => Some(p),
            _ => None,
        };
        self.send_state(room_id, runners, audience, only);
        self.note_state_due(room_id);
    }

    /// Sends the current state to the runners, the audience and/or one peer.
    fn send_state(&mut self, room_id: &RoomId, runners: bool, audience: bool, one: Option<PeerId>) {
        if !runners && !audience && one.is_none() {
            return;
        }
        let people: Vec<(ParticipantInfo, bool)> = self
            .rooms
            .get(room_id)
            .map(|r| {
                r.peers
                    .iter()
                    .filter_map(|p| self.peers.get(p))
                    .map(|p| (p.info.clone(), p.link.reconnecting))
                    .collect()
            })
            .unwrap_or_default();
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let state = room.state(&people);
        let shared = Box::new(state.clone());
        for (info, _) in &people {
            let p = info.peer_id;
            let watcher = is_audience(info.role);
            let wanted = one == Some(p) || if watcher { audience } else { runners };
            if !wanted {
                continue;
            }
            let event = if watcher {
                PeerEvent::RoomState(view_for(&state, p))
            } else {
                PeerEvent::RoomState(shared.clone())
            };
            self.fx.send_to_peer(p, event);
        }
    }

    /// Keeps the shard's earliest state deadline current after `room_id`'s throttles changed.
    fn note_state_due(&mut self, room_id: &RoomId) {
        if let Some(at) = self.rooms.get(room_id).and_then(|r| r.throttles.due_at()) {
            self.state_due = Some(self.state_due.map_or(at, |d| d.min(at)));
        }
    }

    /// When kept state changes are due (for `poll_output`).
    pub(crate) fn state_deadline(&self) -> Option<Instant> {
        self.state_due
    }

    /// Sends the kept changes that are due.
    pub(crate) fn flush_states(&mut self, now: Instant) {
        if self.state_due.is_none_or(|d| now < d) {
            return;
        }
        let every = self.config.audience_state_every;
        let mut due: Vec<(RoomId, bool, bool)> = Vec::new();
        for (id, r) in self.rooms.iter_mut() {
            let t = &mut r.throttles;
            let audience =
                t.audience.due_at().is_some_and(|d| d <= now) && t.audience.try_send(now, every);
            let runners =
                t.questions.due_at().is_some_and(|d| d <= now) && t.questions.try_send(now, every);
            if audience || runners {
                due.push((id.clone(), runners, audience));
            }
        }
        for (room, runners, audience) in due {
            self.send_state(&room, runners, audience, None);
        }
        self.state_due = self
            .rooms
            .values()
            .filter_map(|r| r.throttles.due_at())
            .min();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_throttle_sends_at_most_once_per_interval_and_keeps_the_last_change() {
        let t0 = Instant::now();
        let every = Duration::from_millis(500);
        let mut t = Throttle::default();
        assert!(t.try_send(t0, every));
        assert_eq!(t.due_at(), None);
        assert!(!t.try_send(t0 + Duration::from_millis(100), every));
        assert!(!t.try_send(t0 + Duration::from_millis(200), every));
        assert_eq!(t.due_at(), Some(t0 + every));
        assert!(t.try_send(t0 + every, every));
        assert_eq!(t.due_at(), None);
    }
}
