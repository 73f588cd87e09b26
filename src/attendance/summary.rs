//! What the stored records of one occurrence say about each participant: its stays with open
//! ones resolved, its total time, its reconnections and its turns on stage. Pure, so that each
//! rule is tested step by step; `report.rs` turns the result into the API's JSON and CSV.
//!
//! - An open stay whose `last_seen_at` is older than [`STALE_MS`] belongs to a server that is
//!   gone: it ended then, with the reason `lost`. A fresh open stay is present now.
//! - The total is the union of the stays (they should not overlap; if a crash left one open
//!   while its room opened elsewhere, the overlap is not counted twice).
//! - Reconnections are the losses recovered from within stays, plus each stay that follows
//!   one that ended involuntarily (disconnected, internal, lost): the participant came back
//!   as a new connection.
//! - An open turn ends with the stay it was taken in.

use super::{EndReason, STALE_MS};

/// A stay as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntervalRow {
    pub occurrence: String,
    pub participant: String,
    pub joined_at: i64,
    pub role: String,
    pub name: String,
    pub classroom: Option<String>,
    pub left_at: Option<i64>,
    pub end_reason: Option<String>,
    pub reconnects: i64,
    pub last_seen_at: i64,
    /// `udp` or `tcp`; NULL for stays recorded before it was kept.
    pub transport: Option<String>,
}

/// A turn on stage as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRow {
    pub occurrence: String,
    pub participant: String,
    pub called_at: i64,
    pub roll_call: bool,
    pub ended_at: Option<i64>,
}

/// What a participant is to the lesson.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ParticipantKind {
    Teacher,
    /// The classroom the teacher teaches from.
    MasterClassroom,
    RemoteClassroom,
    /// A classroom that is not (or no longer) one of the lesson's.
    Classroom,
}

impl ParticipantKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ParticipantKind::Teacher => "teacher",
            ParticipantKind::MasterClassroom => "masterClassroom",
            ParticipantKind::RemoteClassroom => "remoteClassroom",
            ParticipantKind::Classroom => "classroom",
        }
    }
}

/// Someone the lesson plans for: listed even if never there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The identity records carry (`ledger::identity`).
    pub participant: String,
    pub kind: ParticipantKind,
    pub name: String,
    pub classroom: Option<String>,
}

/// One stay, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stay {
    pub joined_at: i64,
    /// `None`: in the room now.
    pub left_at: Option<i64>,
    pub end_reason: Option<EndReason>,
    pub reconnects: u32,
    pub transport: Option<String>,
}

/// One turn on stage, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub called_at: i64,
    /// `None`: on stage now.
    pub ended_at: Option<i64>,
    pub roll_call: bool,
}

/// A participant's attendance of one occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attendee {
    pub participant: String,
    pub kind: ParticipantKind,
    /// `teacher` or `classroom`.
    pub role: String,
    pub name: String,
    pub classroom: Option<String>,
    /// In join order.
    pub stays: Vec<Stay>,
    pub turns: Vec<Turn>,
    /// Time in the room, ms (up to `now` for a stay that goes on).
    pub total_ms: i64,
    pub reconnects: u32,
    /// In the room now.
    pub present: bool,
}

fn resolve(now: i64, r: &IntervalRow) -> Stay {
    let stale = r.left_at.is_none() && r.last_seen_at < now.saturating_sub(STALE_MS);
    let (left_at, end_reason) = match (r.left_at, stale) {
        (Some(t), _) => (
            Some(t.max(r.joined_at)),
            Some(EndReason::parse(r.end_reason.as_deref().unwrap_or("lost"))),
        ),
        (None, true) => (Some(r.last_seen_at.max(r.joined_at)), Some(EndReason::Lost)),
        (None, false) => (None, None),
    };
    Stay {
        joined_at: r.joined_at,
        left_at,
        end_reason,
        reconnects: u32::try_from(r.reconnects).unwrap_or(0),
        transport: r.transport.clone(),
    }
}

/// Length of the union of the stays, open ones counted to `now`.
fn union_ms(now: i64, stays: &[Stay]) -> i64 {
    let mut spans: Vec<(i64, i64)> = stays
        .iter()
        .map(|s| (s.joined_at, s.left_at.unwrap_or(now).max(s.joined_at)))
        .collect();
    spans.sort_unstable();
    let mut total = 0i64;
    let mut covered_to = i64::MIN;
    for (from, to) in spans {
        let from = from.max(covered_to);
        if to > from {
            total = total.saturating_add(to - from);
        }
        covered_to = covered_to.max(to);
    }
    total
}

fn attendee(
    now: i64,
    head: Expected,
    role: String,
    rows: &[&IntervalRow],
    calls: &[&CallRow],
) -> Attendee {
    let mut stays: Vec<Stay> = rows.iter().map(|r| resolve(now, r)).collect();
    stays.sort_by_key(|s| s.joined_at);
    let within: u32 = stays.iter().map(|s| s.reconnects).sum();
    let returns = stays
        .windows(2)
        .filter(|w| w[0].end_reason.is_some_and(EndReason::involuntary))
        .count();
    let mut turns: Vec<Turn> = calls
        .iter()
        .map(|c| {
            // The stay it was taken in; an open turn ends with it.
            let stay = stays.iter().rev().find(|s| s.joined_at <= c.called_at);
            let ended_at = c
                .ended_at
                .or_else(|| stay.and_then(|s| s.left_at))
                .map(|t| t.max(c.called_at));
            Turn {
                called_at: c.called_at,
                ended_at,
                roll_call: c.roll_call,
            }
        })
        .collect();
    turns.sort_by_key(|t| t.called_at);
    Attendee {
        participant: head.participant,
        kind: head.kind,
        role,
        name: head.name,
        classroom: head.classroom,
        total_ms: union_ms(now, &stays),
        reconnects: within.saturating_add(u32::try_from(returns).unwrap_or(u32::MAX)),
        present: stays.iter().any(|s| s.left_at.is_none()),
        stays,
        turns,
    }
}

/// The attendance of one occurrence: the expected participants in their order (absent ones
/// with no stays), then anyone else recorded, by first join. `intervals` and `calls` are the
/// occurrence's rows.
pub fn summarize(
    now: i64,
    expected: &[Expected],
    intervals: &[IntervalRow],
    calls: &[CallRow],
) -> Vec<Attendee> {
    let rows_of = |p: &str| -> Vec<&IntervalRow> {
        intervals.iter().filter(|r| r.participant == p).collect()
    };
    let calls_of =
        |p: &str| -> Vec<&CallRow> { calls.iter().filter(|c| c.participant == p).collect() };
    // Recorded participants, in order of first join.
    let mut recorded: Vec<&IntervalRow> = Vec::new();
    let mut by_join: Vec<&IntervalRow> = intervals.iter().collect();
    by_join.sort_by_key(|r| r.joined_at);
    for r in by_join {
        if !recorded.iter().any(|x| x.participant == r.participant) {
            recorded.push(r);
        }
    }
    // The teacher's identity is its name, which an admin may have changed since: a recorded
    // teacher stands for the lesson's teacher rather than being listed next to an absent one.
    let teacher_recorded = recorded.iter().any(|r| r.role == "teacher");
    let mut out = Vec::new();
    for e in expected {
        let rows = rows_of(&e.participant);
        if rows.is_empty() && e.kind == ParticipantKind::Teacher && teacher_recorded {
            continue;
        }
        let role = match e.kind {
            ParticipantKind::Teacher => "teacher",
            _ => "classroom",
        };
        let head = match rows.iter().min_by_key(|r| r.joined_at) {
            // The name the room showed, when it was there.
            Some(first) => Expected {
                name: first.name.clone(),
                ..e.clone()
            },
            None => e.clone(),
        };
        out.push(attendee(
            now,
            head,
            role.to_owned(),
            &rows,
            &calls_of(&e.participant),
        ));
    }
    for r in recorded {
        if expected.iter().any(|e| e.participant == r.participant) {
            continue;
        }
        let kind = if r.role == "teacher" {
            ParticipantKind::Teacher
        } else {
            ParticipantKind::Classroom
        };
        let head = Expected {
            participant: r.participant.clone(),
            kind,
            name: r.name.clone(),
            classroom: r.classroom.clone(),
        };
        let rows = rows_of(&r.participant);
        out.push(attendee(
            now,
            head,
            r.role.clone(),
            &rows,
            &calls_of(&r.participant),
        ));
    }
    // The teacher first, whoever it was recorded as (the sort is stable).
    out.sort_by_key(|a| a.kind != ParticipantKind::Teacher);
    out
}

#[cfg(test)]
#[path = "summary_tests.rs"]
mod tests;
