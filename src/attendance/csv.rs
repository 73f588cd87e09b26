//! The report as CSV (RFC 4180): one row per participant and occurrence, for spreadsheets.
//!
//! UTF-8 with a byte order mark, because Excel and WPS read a CSV without one in the system
//! code page (GBK on Chinese Windows) and garble the names. Cells that a spreadsheet would
//! take for a formula (`=`, `+`, `-`, `@` first) get a leading `'`: names come from links and
//! admins, and a CSV opened by someone else must not run them.

use super::report::AttendanceReport;

pub const CONTENT_TYPE: &str = "text/csv; charset=utf-8";

const BOM: &str = "\u{feff}";

const HEADER: [&str; 16] = [
    "occurrence_id",
    "series_date",
    "start",
    "end",
    "kind",
    "name",
    "classroom_id",
    "attended",
    "present",
    "first_joined_at",
    "last_left_at",
    "total_seconds",
    "reconnects",
    "called_on",
    "calls",
    "intervals",
];

fn cell(out: &mut String, value: &str) {
    let guarded = matches!(value.chars().next(), Some('=' | '+' | '-' | '@'));
    let quote = guarded || value.contains([',', '"', '\n', '\r']);
    if quote {
        out.push('"');
    }
    if guarded {
        out.push('\'');
    }
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quote {
        out.push('"');
    }
}

fn row(out: &mut String, cells: &[&str]) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        cell(out, c);
    }
    out.push_str("\r\n");
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The CSV text of a report.
pub fn render(report: &AttendanceReport) -> String {
    let mut out = String::from(BOM);
    row(&mut out, &HEADER);
    for o in &report.occurrences {
        for p in &o.participants {
            // ISO 8601 intervals, `start/end` (`start/` while it goes on).
            let intervals = p
                .intervals
                .iter()
                .map(|i| format!("{}/{}", i.joined_at, i.left_at.as_deref().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("; ");
            let total = p.total_seconds.to_string();
            let reconnects = p.reconnects.to_string();
            let calls = p.calls.len().to_string();
            row(
                &mut out,
                &[
                    &o.occurrence_id,
                    &o.series_date,
                    &o.start,
                    &o.end,
                    p.kind.as_str(),
                    &p.name,
                    p.classroom_id.as_deref().unwrap_or(""),
                    yes(p.attended),
                    yes(p.present),
                    p.first_joined_at.as_deref().unwrap_or(""),
                    p.last_left_at.as_deref().unwrap_or(""),
                    &total,
                    &reconnects,
                    yes(p.called_on),
                    &calls,
                    &intervals,
                ],
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attendance::report::{IntervalView, OccurrenceAttendance, ParticipantAttendance};
    use crate::attendance::summary::ParticipantKind;
    use crate::schedule::model::OccurrenceStatus;

    fn person(name: &str, intervals: Vec<IntervalView>) -> ParticipantAttendance {
        ParticipantAttendance {
            kind: ParticipantKind::RemoteClassroom,
            role: "classroom".into(),
            name: name.into(),
            classroom_id: Some("cls_a".into()),
            attended: !intervals.is_empty(),
            present: false,
            first_joined_at: intervals.first().map(|i| i.joined_at.clone()),
            last_left_at: intervals.last().and_then(|i| i.left_at.clone()),
            total_seconds: intervals.iter().map(|i| i.seconds).sum(),
            reconnects: 1,
            called_on: false,
            calls: Vec::new(),
            intervals,
        }
    }

    #[test]
    fn one_row_per_participant_quoted_and_guarded() {
        let stay = |from: &str, to: &str, seconds| IntervalView {
            joined_at: from.into(),
            left_at: Some(to.into()),
            end_reason: None,
            seconds,
            reconnects: 0,
            transport: Some("udp".into()),
        };
        let report = AttendanceReport {
            lesson_id: "les_1".into(),
            title: "数学".into(),
            timezone: "Asia/Shanghai".into(),
            occurrences: vec![OccurrenceAttendance {
                occurrence_id: "occ_1".into(),
                series_date: "2030-03-04".into(),
                start: "2030-03-04T08:00:00+08:00".into(),
                end: "2030-03-04T08:45:00+08:00".into(),
                status: OccurrenceStatus::Scheduled,
                participants: vec![
                    person(
                        "山村小学 \"一\"年级, 东",
                        vec![
                            stay(
                                "2030-03-04T08:00:00+08:00",
                                "2030-03-04T08:10:00+08:00",
                                600,
                            ),
                            stay(
                                "2030-03-04T08:20:00+08:00",
                                "2030-03-04T08:30:00+08:00",
                                600,
                            ),
                        ],
                    ),
                    person("=HYPERLINK(\"x\")", Vec::new()),
                ],
            }],
        };
        let text = render(&report);
        let text = text.strip_prefix(BOM).expect("a byte order mark first");
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines.len(), 4, "header, two rows, empty tail: {lines:?}");
        assert_eq!(lines[0], HEADER.join(","));
        assert_eq!(
            lines[1],
            "occ_1,2030-03-04,2030-03-04T08:00:00+08:00,2030-03-04T08:45:00+08:00,\
             remoteClassroom,\"山村小学 \"\"一\"\"年级, 东\",cls_a,yes,no,\
             2030-03-04T08:00:00+08:00,2030-03-04T08:30:00+08:00,1200,1,no,0,\
             2030-03-04T08:00:00+08:00/2030-03-04T08:10:00+08:00; \
             2030-03-04T08:20:00+08:00/2030-03-04T08:30:00+08:00"
        );
        assert!(
            lines[2].contains(",\"'=HYPERLINK(\"\"x\"\")\",cls_a,no,"),
            "{}",
            lines[2]
        );
        assert_eq!(lines[3], "");
    }
}
