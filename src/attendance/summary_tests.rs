//! Summaries step by step: stored rows in, attendees out.

use super::*;

const OCC: &str = "occ_01JTESTROOM0000000000000000";
const NOW: i64 = 10_000_000;

fn stay(p: &str, joined_at: i64, left_at: Option<i64>, reason: Option<&str>) -> IntervalRow {
    IntervalRow {
        occurrence: OCC.into(),
        participant: p.into(),
        joined_at,
        role: if p.starts_with("teacher:") {
            "teacher"
        } else {
            "classroom"
        }
        .into(),
        name: format!("{p} (in the room)"),
        classroom: p.strip_prefix("classroom:").map(str::to_owned),
        left_at,
        end_reason: reason.map(str::to_owned),
        reconnects: 0,
        last_seen_at: left_at.unwrap_or(NOW - 1000),
        transport: Some("udp".into()),
    }
}

fn call(p: &str, called_at: i64, ended_at: Option<i64>) -> CallRow {
    CallRow {
        occurrence: OCC.into(),
        participant: p.into(),
        called_at,
        roll_call: false,
        ended_at,
    }
}

fn cast() -> Vec<Expected> {
    let e = |p: &str, kind, name: &str| Expected {
        participant: p.into(),
        kind,
        name: name.into(),
        classroom: p.strip_prefix("classroom:").map(str::to_owned),
    };
    vec![
        e("teacher:李老师", ParticipantKind::Teacher, "李老师"),
        e(
            "classroom:cls_m",
            ParticipantKind::MasterClassroom,
            "实验小学 三(1)班",
        ),
        e(
            "classroom:cls_a",
            ParticipantKind::RemoteClassroom,
            "山村小学 一年级",
        ),
        e(
            "classroom:cls_b",
            ParticipantKind::RemoteClassroom,
            "山村小学 二年级",
        ),
    ]
}

#[test]
fn everyone_expected_is_listed_in_order_and_the_absent_have_nothing() {
    let rows = [stay("classroom:cls_a", 1000, Some(61_000), Some("left"))];
    let got = summarize(NOW, &cast(), &rows, &[]);
    let kinds: Vec<_> = got
        .iter()
        .map(|a| (a.participant.as_str(), a.total_ms))
        .collect();
    assert_eq!(
        kinds,
        [
            ("teacher:李老师", 0),
            ("classroom:cls_m", 0),
            ("classroom:cls_a", 60_000),
            ("classroom:cls_b", 0)
        ]
    );
    assert_eq!(
        got[1].name, "实验小学 三(1)班",
        "the planned name when absent"
    );
    assert_eq!(
        got[2].name, "classroom:cls_a (in the room)",
        "the name the room showed"
    );
    assert!(got[1].stays.is_empty() && !got[1].present);
    assert_eq!(got[2].stays[0].end_reason, Some(EndReason::Left));
}

#[test]
fn an_open_stay_is_present_until_its_heartbeat_is_stale() {
    let fresh = stay("classroom:cls_a", NOW - 30_000, None, None);
    let got = summarize(NOW, &cast(), &[fresh], &[]);
    assert!(got[2].present);
    assert_eq!(got[2].total_ms, 30_000, "counted up to now");
    assert_eq!(got[2].stays[0].left_at, None);

    let mut stale = stay("classroom:cls_a", NOW - 600_000, None, None);
    stale.last_seen_at = NOW - STALE_MS - 1;
    let got = summarize(NOW, &cast(), &[stale], &[]);
    assert!(!got[2].present);
    assert_eq!(got[2].stays[0].left_at, Some(NOW - STALE_MS - 1));
    assert_eq!(got[2].stays[0].end_reason, Some(EndReason::Lost));
    assert_eq!(got[2].total_ms, 600_000 - STALE_MS - 1);
}

#[test]
fn coming_back_after_an_involuntary_end_is_a_reconnection_but_not_after_leaving() {
    let mut first = stay("classroom:cls_a", 1000, Some(5000), Some("disconnected"));
    first.reconnects = 2;
    let rows = [
        first,
        stay("classroom:cls_a", 9000, Some(12_000), Some("left")),
        stay("classroom:cls_a", 20_000, Some(30_000), Some("roomClosed")),
    ];
    let got = summarize(NOW, &cast(), &rows, &[]);
    let a = &got[2];
    assert_eq!(
        a.reconnects, 3,
        "two within the first stay, one return after it"
    );
    assert_eq!(a.total_ms, 4000 + 3000 + 10_000);
    assert_eq!(a.stays.len(), 3);
}

#[test]
fn overlapping_stays_are_not_counted_twice() {
    let rows = [
        stay("classroom:cls_a", 1000, Some(10_000), Some("lost")),
        stay("classroom:cls_a", 8000, Some(12_000), Some("left")),
    ];
    assert_eq!(summarize(NOW, &cast(), &rows, &[])[2].total_ms, 11_000);
}

#[test]
fn turns_are_listed_and_an_open_one_ends_with_its_stay() {
    let rows = [
        stay("classroom:cls_b", 1000, Some(9000), Some("disconnected")),
        stay("classroom:cls_b", 10_000, None, None),
    ];
    let calls = [
        call("classroom:cls_b", 2000, None),
        call("classroom:cls_b", 11_000, None),
        call("classroom:cls_b", 1500, Some(1800)),
    ];
    let got = summarize(NOW, &cast(), &rows, &calls);
    let b = &got[3];
    let turns: Vec<_> = b.turns.iter().map(|t| (t.called_at, t.ended_at)).collect();
    assert_eq!(
        turns,
        [(1500, Some(1800)), (2000, Some(9000)), (11_000, None)],
        "in order; the open turn of the ended stay ended with it; the last is on stage now"
    );
    assert!(got[2].turns.is_empty());
}

#[test]
fn a_renamed_teacher_is_the_lessons_teacher_and_strangers_come_last() {
    let rows = [
        stay("classroom:cls_x", 500, Some(900), Some("left")),
        stay("teacher:李老师 (旧名)", 1000, Some(2000), Some("left")),
    ];
    let got = summarize(NOW, &cast(), &rows, &[]);
    let list: Vec<_> = got
        .iter()
        .map(|a| (a.participant.as_str(), a.kind))
        .collect();
    assert_eq!(
        list,
        [
            ("teacher:李老师 (旧名)", ParticipantKind::Teacher),
            ("classroom:cls_m", ParticipantKind::MasterClassroom),
            ("classroom:cls_a", ParticipantKind::RemoteClassroom),
            ("classroom:cls_b", ParticipantKind::RemoteClassroom),
            ("classroom:cls_x", ParticipantKind::Classroom),
        ]
    );
    assert_eq!(got[0].total_ms, 1000);
}
