//! Step-by-step tests of the scheduler's decisions: time is a number, nobody sleeps.

use super::*;

const S: i64 = 1000;
const MIN: i64 = 60 * S;
/// The window of the room under test closes at 10:00 (as ms since an arbitrary origin).
const CLOSE: i64 = 10 * 60 * MIN;

fn room(s: &str) -> RoomId {
    RoomId::new(s).expect("room id")
}

fn open(r: &str, closes_at_ms: i64) -> RoomWindow {
    RoomWindow {
        room: room(r),
        state: RoomState::Open { closes_at_ms },
    }
}

fn scheduler() -> Scheduler {
    Scheduler::new(5 * MIN, 30 * S)
}

#[test]
fn a_room_is_warned_once_five_minutes_before_and_closed_at_the_end() {
    let mut s = scheduler();
    let live = [open("a", CLOSE)];
    assert_eq!(s.tick(CLOSE - 6 * MIN, &live), []);
    assert_eq!(s.tick(CLOSE - 5 * MIN - 1, &live), []);
    assert_eq!(
        s.tick(CLOSE - 5 * MIN, &live),
        [Action::Warn {
            room: room("a"),
            ends_at: (CLOSE / 1000) as u64
        }]
    );
    assert_eq!(s.tick(CLOSE - 4 * MIN, &live), [], "warned once");
    assert_eq!(s.tick(CLOSE - 1, &live), []);
    assert_eq!(
        s.tick(CLOSE, &live),
        [Action::Close {
            room: room("a"),
            why: RoomState::Open {
                closes_at_ms: CLOSE
            }
        }]
    );
}

#[test]
fn a_room_still_live_after_its_close_is_closed_again_after_the_retry_delay() {
    let mut s = scheduler();
    let live = [open("a", CLOSE)];
    assert_eq!(s.tick(CLOSE + S, &live).len(), 1);
    assert_eq!(s.tick(CLOSE + 5 * S, &live), [], "the close is in flight");
    assert_eq!(s.tick(CLOSE + 31 * S, &live).len(), 1, "still live: again");
    // Once the room is gone it is forgotten; a new room of the same id starts afresh.
    assert_eq!(s.tick(CLOSE + 40 * S, &[]), []);
    assert_eq!(s.tick(CLOSE + 41 * S, &live).len(), 1);
}

#[test]
fn a_room_joined_late_in_its_window_is_warned_at_once() {
    let mut s = scheduler();
    let live = [open("a", CLOSE)];
    assert_eq!(
        s.tick(CLOSE - 2 * MIN, &live),
        [Action::Warn {
            room: room("a"),
            ends_at: (CLOSE / 1000) as u64
        }]
    );
}

#[test]
fn moving_the_occurrence_warns_again_with_the_new_end() {
    let mut s = scheduler();
    assert_eq!(s.tick(CLOSE - 4 * MIN, &[open("a", CLOSE)]).len(), 1);
    // Extended by 30 minutes: no warning until 5 minutes before the new end.
    let later = CLOSE + 30 * MIN;
    assert_eq!(s.tick(CLOSE - 3 * MIN, &[open("a", later)]), []);
    assert_eq!(s.tick(CLOSE + 1, &[open("a", later)]), [], "not closed");
    assert_eq!(
        s.tick(later - 5 * MIN, &[open("a", later)]),
        [Action::Warn {
            room: room("a"),
            ends_at: (later / 1000) as u64
        }]
    );
}

#[test]
fn an_occurrence_extended_after_its_close_was_issued_stays_open() {
    let mut s = scheduler();
    assert_eq!(s.tick(CLOSE, &[open("a", CLOSE)]).len(), 1);
    let later = CLOSE + 30 * MIN;
    assert_eq!(s.tick(CLOSE + S, &[open("a", later)]), []);
    // And closes at its new end without waiting for the retry delay of the old close.
    assert_eq!(s.tick(later, &[open("a", later)]).len(), 1);
}

#[test]
fn cancelled_ended_and_deleted_occurrences_close_at_once() {
    let mut s = scheduler();
    for state in [RoomState::Cancelled, RoomState::Ended, RoomState::Unknown] {
        let live = [RoomWindow {
            room: room("a"),
            state,
        }];
        assert_eq!(
            s.tick(CLOSE - 60 * MIN, &live),
            [Action::Close {
                room: room("a"),
                why: state
            }],
            "{state:?}"
        );
        s.tick(CLOSE, &[]);
    }
}

#[test]
fn rooms_are_handled_independently() {
    let mut s = scheduler();
    let live = [open("a", CLOSE), open("b", CLOSE + 10 * MIN)];
    let actions = s.tick(CLOSE - 5 * MIN, &live);
    assert_eq!(actions.len(), 1);
    assert!(matches!(&actions[0], Action::Warn { room: r, .. } if r.as_str() == "a"));
    let actions = s.tick(CLOSE + 5 * MIN, &live);
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert!(matches!(&actions[0], Action::Close { room: r, .. } if r.as_str() == "a"));
    assert!(matches!(&actions[1], Action::Warn { room: r, .. } if r.as_str() == "b"));
}

#[test]
fn two_nodes_with_the_same_data_and_time_decide_the_same() {
    let (mut one, mut two) = (scheduler(), scheduler());
    let live = [open("a", CLOSE), open("b", CLOSE - 3 * MIN)];
    for t in (0..20).map(|i| CLOSE - 10 * MIN + i * 45 * S) {
        assert_eq!(one.tick(t, &live), two.tick(t, &live), "at {t}");
    }
}

#[test]
fn the_announced_end_is_rounded_up_to_a_whole_second() {
    let mut s = scheduler();
    let actions = s.tick(CLOSE, &[open("a", CLOSE + 5 * MIN - 1)]);
    assert_eq!(
        actions,
        [Action::Warn {
            room: room("a"),
            ends_at: ((CLOSE + 5 * MIN) / 1000) as u64
        }]
    );
}
