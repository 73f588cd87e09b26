//! The attendance report of a lesson as the API shows it (JSON; `csv.rs` flattens it): per
//! occurrence, per participant, times in RFC 3339 in the lesson's time zone.

use jiff::tz::TimeZone;
use serde::Serialize;
use utoipa::ToSchema;

use super::EndReason;
use super::summary::{Attendee, ParticipantKind, Stay, Turn};
use crate::schedule::model::OccurrenceStatus;
use crate::schedule::time::format_in;

/// The attendance of a lesson's occurrences.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttendanceReport {
    pub lesson_id: String,
    pub title: String,
    /// The lesson's time zone, in which times are given.
    pub timezone: String,
    /// Those that have begun (or the one asked for), by start.
    pub occurrences: Vec<OccurrenceAttendance>,
}

/// The attendance of one occurrence.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OccurrenceAttendance {
    pub occurrence_id: String,
    /// `YYYY-MM-DD` (local).
    pub series_date: String,
    #[schema(format = DateTime)]
    pub start: String,
    #[schema(format = DateTime)]
    pub end: String,
    pub status: OccurrenceStatus,
    /// The teacher, the master classroom, the remote classrooms (in the lesson's order, also
    /// those never there), then any other classroom that was there.
    pub participants: Vec<ParticipantAttendance>,
}

/// One participant's attendance of an occurrence.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantAttendance {
    pub kind: ParticipantKind,
    /// `teacher` or `classroom`.
    pub role: String,
    /// The name shown in the room (the planned name if never there).
    pub name: String,
    pub classroom_id: Option<String>,
    /// Was in the room at all.
    pub attended: bool,
    /// Is in the room now.
    pub present: bool,
    #[schema(format = DateTime)]
    pub first_joined_at: Option<String>,
    /// The end of the last stay; null while present or never there.
    #[schema(format = DateTime)]
    pub last_left_at: Option<String>,
    /// Time in the room, whole seconds (up to now while present).
    #[schema(minimum = 0)]
    pub total_seconds: i64,
    /// Connection losses it came back from: recovered within a stay, or rejoined after one.
    pub reconnects: u32,
    /// Was called on (or picked by the roll call) at least once.
    pub called_on: bool,
    /// Its turns on stage.
    pub calls: Vec<CallView>,
    /// Its stays in the room, by join time.
    pub intervals: Vec<IntervalView>,
}

/// One stay in the room.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntervalView {
    #[schema(format = DateTime)]
    pub joined_at: String,
    /// Null while it stays.
    #[schema(format = DateTime)]
    pub left_at: Option<String>,
    /// Why it ended; `lost`: its server stopped without saying (ended at its last heartbeat).
    pub end_reason: Option<EndReason>,
    #[schema(minimum = 0)]
    pub seconds: i64,
    /// Connection losses recovered from during the stay.
    pub reconnects: u32,
    /// How its media travelled when the stay began: `udp`, `tcp` (ICE over TCP, where the
    /// school's network lets only TCP out), or `turn_udp` / `turn_tcp` / `turn_tls` (through
    /// the embedded TURN server); null for stays recorded before it was kept.
    pub transport: Option<String>,
}

/// One turn on stage.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallView {
    #[schema(format = DateTime)]
    pub called_at: String,
    /// Null while on stage.
    #[schema(format = DateTime)]
    pub ended_at: Option<String>,
    /// Picked by the random roll call rather than called on.
    pub roll_call: bool,
}

fn seconds(ms: i64) -> i64 {
    ms.max(0) / 1000
}

fn interval(now: i64, s: &Stay, tz: &TimeZone) -> IntervalView {
    IntervalView {
        joined_at: format_in(s.joined_at, tz),
        left_at: s.left_at.map(|t| format_in(t, tz)),
        end_reason: s.end_reason,
        seconds: seconds(s.left_at.unwrap_or(now) - s.joined_at),
        reconnects: s.reconnects,
        transport: s.transport.clone(),
    }
}

fn call(t: &Turn, tz: &TimeZone) -> CallView {
    CallView {
        called_at: format_in(t.called_at, tz),
        ended_at: t.ended_at.map(|e| format_in(e, tz)),
        roll_call: t.roll_call,
    }
}

/// The view of one attendee; `now` counts the stays that go on.
pub fn participant(now: i64, a: &Attendee, tz: &TimeZone) -> ParticipantAttendance {
    let last_left = match a.stays.last() {
        Some(s) if !a.present => s.left_at,
        _ => None,
    };
    ParticipantAttendance {
        kind: a.kind,
        role: a.role.clone(),
        name: a.name.clone(),
        classroom_id: a.classroom.clone(),
        attended: !a.stays.is_empty(),
        present: a.present,
        first_joined_at: a.stays.first().map(|s| format_in(s.joined_at, tz)),
        last_left_at: last_left.map(|t| format_in(t, tz)),
        total_seconds: seconds(a.total_ms),
        reconnects: a.reconnects,
        called_on: !a.turns.is_empty(),
        calls: a.turns.iter().map(|t| call(t, tz)).collect(),
        intervals: a.stays.iter().map(|s| interval(now, s, tz)).collect(),
    }
}
