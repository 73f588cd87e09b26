//! The ledger step by step: observations in, records out.

use ketang_sfu::{Activity, ClassroomId, LeaveReason, PeerId, Role};

use super::*;
use crate::attendance::{EndReason, Observed, Stamped};

const ROOM: &str = "occ_01JTESTROOM0000000000000000";

fn at(at_ms: i64, event: Observed) -> Stamped {
    Stamped {
        at_ms,
        room: ROOM.to_owned(),
        event,
    }
}

fn joined(peer: u64, role: Role, classroom: Option<&str>, name: &str) -> Observed {
    joined_on(peer, role, classroom, name, ketang_sfu::Transport::Udp)
}

fn joined_on(
    peer: u64,
    role: Role,
    classroom: Option<&str>,
    name: &str,
    transport: ketang_sfu::Transport,
) -> Observed {
    Observed::Activity {
        peer: PeerId(peer),
        activity: Activity::Joined {
            role,
            classroom: classroom.map(|c| ClassroomId::new(c).expect("classroom id")),
            name: name.to_owned(),
            transport,
        },
    }
}

fn act(peer: u64, activity: Activity) -> Observed {
    Observed::Activity {
        peer: PeerId(peer),
        activity,
    }
}

fn left(peer: u64, reason: LeaveReason) -> Observed {
    Observed::Left {
        peer: PeerId(peer),
        reason,
    }
}

/// A ledger with the teacher (peer 1) and classroom c1 (peer 2) in the room since 1000.
fn lesson() -> AttendanceLedger {
    let mut l = AttendanceLedger::default();
    l.apply(at(1000, joined(1, Role::Teacher, None, "李老师")));
    l.apply(at(
        1000,
        joined(2, Role::Classroom, Some("cls_c1"), "东山小学 三(2)班"),
    ));
    l.take_changes();
    l
}

fn only_interval(c: &Changes) -> &IntervalRecord {
    assert_eq!(c.intervals.len(), 1, "{c:#?}");
    &c.intervals[0]
}

#[test]
fn a_join_opens_a_stay_and_the_room_and_watchers_are_not_recorded() {
    let mut l = AttendanceLedger::default();
    l.apply(at(1000, joined(7, Role::Viewer, None, "观众")));
    l.apply(at(1000, joined(8, Role::Observer, None, "观摩教师")));
    assert!(l.take_changes().is_empty(), "watchers leave no record");

    l.apply(at(1500, joined(1, Role::Teacher, None, "李老师")));
    let c = l.take_changes();
    assert_eq!(c.opened, vec![(ROOM.to_owned(), 1500)]);
    let r = only_interval(&c);
    assert_eq!(r.participant, "teacher:李老师");
    assert_eq!((r.joined_at, r.left_at, r.reconnects), (1500, None, 0));
    assert_eq!(r.transport, "udp");
    assert_eq!(l.occupied_rooms(), vec![ROOM.to_owned()]);

    // The same peer reported again changes nothing; a second participant does not reopen.
    l.apply(at(1600, joined(1, Role::Teacher, None, "李老师")));
    l.apply(at(
        1700,
        joined(2, Role::Classroom, Some("cls_c1"), "三(2)班"),
    ));
    let c = l.take_changes();
    assert!(c.opened.is_empty());
    assert_eq!(only_interval(&c).participant, "classroom:cls_c1");
}

#[test]
fn two_links_of_one_classroom_are_one_stay_until_the_last_goes() {
    let mut l = lesson();
    l.apply(at(
        2000,
        joined(3, Role::Classroom, Some("cls_c1"), "三(2)班 录播主机"),
    ));
    assert!(l.take_changes().is_empty(), "the stay goes on");
    l.apply(at(3000, left(2, LeaveReason::Left)));
    assert!(l.take_changes().is_empty(), "peer 3 still stays");
    l.apply(at(4000, left(3, LeaveReason::Left)));
    let c = l.take_changes();
    let r = only_interval(&c);
    assert_eq!((r.joined_at, r.left_at), (1000, Some(4000)));
    assert_eq!(r.end_reason, Some(EndReason::Left));
}

#[test]
fn a_media_loss_recovered_from_is_one_reconnection() {
    let mut l = lesson();
    l.apply(at(
        10_000,
        act(2, Activity::Reconnecting { silent_ms: 4000 }),
    ));
    assert!(
        l.take_changes().is_empty(),
        "a loss in progress is not written"
    );
    l.apply(at(12_000, act(2, Activity::Resumed)));
    let c = l.take_changes();
    assert_eq!(only_interval(&c).reconnects, 1);
    assert_eq!(only_interval(&c).left_at, None);
}

#[test]
fn signaling_and_media_loss_together_count_once() {
    let mut l = lesson();
    l.apply(at(10_000, act(1, Activity::Detached)));
    l.apply(at(
        11_000,
        act(1, Activity::Reconnecting { silent_ms: 4000 }),
    ));
    l.apply(at(12_000, act(1, Activity::Attached)));
    assert!(l.take_changes().is_empty(), "media is still silent");
    // A fresh connection replaces the silent one; the loss is over when media arrives on it.
    l.apply(at(13_000, act(1, Activity::Rejoined)));
    assert!(l.take_changes().is_empty(), "a new connection is not media");
    l.apply(at(14_000, act(1, Activity::Resumed)));
    let c = l.take_changes();
    assert_eq!(only_interval(&c).reconnects, 1);

    // A second loss, signaling only.
    l.apply(at(20_000, act(1, Activity::Detached)));
    l.apply(at(21_000, act(1, Activity::Attached)));
    assert_eq!(only_interval(&l.take_changes()).reconnects, 2);
}

#[test]
fn signaling_back_with_media_still_blocked_is_no_return() {
    let mut l = lesson();
    l.apply(at(
        10_000,
        act(2, Activity::Reconnecting { silent_ms: 4000 }),
    ));
    l.apply(at(20_000, act(2, Activity::Detached)));
    // The page's socket is back and it tries fresh connections, none of which carries media.
    l.apply(at(25_000, act(2, Activity::Attached)));
    l.apply(at(27_000, act(2, Activity::Rejoined)));
    l.apply(at(33_000, act(2, Activity::Rejoined)));
    assert!(l.take_changes().is_empty(), "still a loss in progress");
    l.apply(at(36_000, left(2, LeaveReason::Disconnected)));
    let c = l.take_changes();
    let r = only_interval(&c);
    assert_eq!(r.left_at, Some(6000), "gone since its media stopped");
    assert_eq!(r.end_reason, Some(EndReason::Disconnected));
    assert_eq!(r.reconnects, 0);
}

#[test]
fn a_loss_not_recovered_from_ends_the_stay_when_the_media_went_silent() {
    let mut l = lesson();
    l.apply(at(
        10_000,
        act(2, Activity::Reconnecting { silent_ms: 4000 }),
    ));
    l.apply(at(36_000, left(2, LeaveReason::Disconnected)));
    let c = l.take_changes();
    let r = only_interval(&c);
    assert_eq!(r.left_at, Some(6000), "gone since its media stopped");
    assert_eq!(r.end_reason, Some(EndReason::Disconnected));
    assert_eq!(r.reconnects, 0);

    // Coming back is a new stay (the summary counts it as a reconnection).
    l.apply(at(
        40_000,
        joined(5, Role::Classroom, Some("cls_c1"), "三(2)班"),
    ));
    let c = l.take_changes();
    let r = only_interval(&c);
    assert_eq!((r.joined_at, r.left_at), (40_000, None));
}

#[test]
fn turns_on_stage_are_recorded_from_call_to_done_or_leave() {
    let mut l = lesson();
    l.apply(at(5000, act(2, Activity::CalledOn { roll_call: false })));
    let c = l.take_changes();
    assert_eq!(c.calls.len(), 1);
    assert_eq!((c.calls[0].called_at, c.calls[0].ended_at), (5000, None));
    assert!(!c.calls[0].roll_call);
    assert!(c.intervals.is_empty());

    // Called on again while on stage: the same turn.
    l.apply(at(5500, act(2, Activity::CalledOn { roll_call: false })));
    assert!(l.take_changes().is_empty());
    l.apply(at(8000, act(2, Activity::OffStage)));
    let c = l.take_changes();
    assert_eq!(
        (c.calls[0].called_at, c.calls[0].ended_at),
        (5000, Some(8000))
    );

    // Picked by the roll call, then gone while on stage: the turn ends with the stay.
    l.apply(at(9000, act(2, Activity::CalledOn { roll_call: true })));
    l.apply(at(9500, left(2, LeaveReason::Removed)));
    let c = l.take_changes();
    assert_eq!(c.calls.len(), 1);
    assert_eq!(
        (c.calls[0].called_at, c.calls[0].ended_at),
        (9000, Some(9500))
    );
    assert!(c.calls[0].roll_call);
    assert_eq!(only_interval(&c).end_reason, Some(EndReason::Removed));
}

#[test]
fn a_closing_room_and_a_shutdown_end_every_stay_and_turn() {
    let mut l = lesson();
    l.apply(at(5000, act(2, Activity::CalledOn { roll_call: false })));
    l.apply(at(9000, Observed::RoomClosed));
    let c = l.take_changes();
    assert_eq!(c.intervals.len(), 2);
    assert!(
        c.intervals
            .iter()
            .all(|r| r.left_at == Some(9000) && r.end_reason == Some(EndReason::RoomClosed))
    );
    assert_eq!(c.calls[0].ended_at, Some(9000));
    assert!(l.occupied_rooms().is_empty());

    let mut l = lesson();
    l.close_all(7000, EndReason::Shutdown);
    let c = l.take_changes();
    assert!(
        c.intervals
            .iter()
            .all(|r| r.end_reason == Some(EndReason::Shutdown))
    );
    // Events after the room is gone are ignored.
    l.apply(at(8000, left(1, LeaveReason::Left)));
    assert!(l.take_changes().is_empty());
}

#[test]
fn leaving_and_coming_back_within_one_millisecond_keeps_both_stays() {
    let mut l = lesson();
    l.apply(at(1000, left(2, LeaveReason::Left)));
    l.apply(at(
        1000,
        joined(3, Role::Classroom, Some("cls_c1"), "三(2)班"),
    ));
    let c = l.take_changes();
    let mut keys: Vec<i64> = c.intervals.iter().map(|r| r.joined_at).collect();
    keys.sort();
    assert_eq!(keys, vec![1000, 1001], "distinct keys: {c:#?}");
}

#[test]
fn failed_writes_are_restored_unless_a_newer_state_is_waiting() {
    let mut l = lesson();
    l.apply(at(5000, act(2, Activity::CalledOn { roll_call: false })));
    let failed = l.take_changes();
    assert_eq!(l.pending(), 0);
    // Meanwhile the turn ended: the newer state wins over the restored one.
    l.apply(at(6000, act(2, Activity::OffStage)));
    l.restore(failed);
    let c = l.take_changes();
    assert_eq!(c.calls.len(), 1);
    assert_eq!(c.calls[0].ended_at, Some(6000));

    // Restored alone, it is written again.
    let mut l = AttendanceLedger::default();
    l.apply(at(1000, joined(1, Role::Teacher, None, "李老师")));
    let failed = l.take_changes();
    l.restore(failed.clone());
    assert_eq!(l.pending(), failed.len());
    assert_eq!(l.take_changes(), failed);
}

#[test]
fn a_stay_keeps_the_transport_it_began_on() {
    let mut l = AttendanceLedger::default();
    let cls = Some("cls_c1");
    l.apply(at(
        1000,
        joined_on(
            2,
            Role::Classroom,
            cls,
            "三(2)班",
            ketang_sfu::Transport::Tcp,
        ),
    ));
    assert_eq!(only_interval(&l.take_changes()).transport, "tcp");
    // A second link of the same classroom continues the stay as it began.
    l.apply(at(1100, joined(3, Role::Classroom, cls, "三(2)班")));
    assert!(l.take_changes().intervals.is_empty());
}
