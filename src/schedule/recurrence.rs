//! Expanding a lesson into its occurrences.
//!
//! A single lesson is one occurrence. A weekly lesson meets on each listed weekday from the
//! date of its first start through the `until` date (inclusive), at the same wall-clock time in
//! the lesson's time zone: the UTC instant moves when daylight saving time changes, the local
//! time does not. Every occurrence lasts as long as the first one (`end - start`).

use std::collections::BTreeSet;

use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::model::Weekday;
use super::time::{local_date, local_datetime};

/// The most occurrences one lesson may expand into (a school year of daily lessons).
pub const MAX_OCCURRENCES: usize = 400;
/// The longest span from the first date to `until`.
pub const MAX_SERIES_DAYS: i32 = 366;

/// Weekly repetition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weekly {
    pub weekdays: BTreeSet<Weekday>,
    /// The last date (local) an occurrence may fall on.
    pub until: Date,
}

/// What to expand.
#[derive(Debug, Clone)]
pub struct Series {
    /// The first start, Unix ms.
    pub start_ms: i64,
    /// The first end, Unix ms.
    pub end_ms: i64,
    pub tz: TimeZone,
    pub weekly: Option<Weekly>,
}

/// One planned meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The local date of the series it stands for (its identity across edits of the series).
    pub series_date: Date,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Why a series cannot be expanded; each names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecurrenceError {
    #[error("recurrence.until: must not be before the first date {first}")]
    UntilBeforeStart { first: Date },
    #[error("recurrence.until: a series may span at most {MAX_SERIES_DAYS} days")]
    TooLong,
    #[error("recurrence.weekdays: must list at least one weekday")]
    NoWeekdays,
    #[error("recurrence.weekdays: no listed weekday falls between {first} and {until}")]
    Empty { first: Date, until: Date },
    #[error("recurrence: more than {MAX_OCCURRENCES} occurrences")]
    TooMany,
}

impl RecurrenceError {
    /// The request field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            RecurrenceError::UntilBeforeStart { .. } | RecurrenceError::TooLong => {
                "recurrence.until"
            }
            RecurrenceError::NoWeekdays | RecurrenceError::Empty { .. } => "recurrence.weekdays",
            RecurrenceError::TooMany => "recurrence",
        }
    }

    /// The message without the field.
    pub fn message(&self) -> String {
        let text = self.to_string();
        match text.split_once(": ") {
            Some((_, m)) => m.to_owned(),
            None => text,
        }
    }
}

/// The occurrences of `series`, in time order.
pub fn expand(series: &Series) -> Result<Vec<Planned>, RecurrenceError> {
    let duration = series.end_ms - series.start_ms;
    let Some(weekly) = &series.weekly else {
        return Ok(vec![Planned {
            series_date: local_date(series.start_ms, &series.tz),
            start_ms: series.start_ms,
            end_ms: series.end_ms,
        }]);
    };
    if weekly.weekdays.is_empty() {
        return Err(RecurrenceError::NoWeekdays);
    }
    let first = local_datetime(series.start_ms, &series.tz);
    let (first_date, time) = (first.date(), first.time());
    if weekly.until < first_date {
        return Err(RecurrenceError::UntilBeforeStart { first: first_date });
    }
    let span_days = first_date
        .until(weekly.until)
        .map(|s| s.get_days())
        .unwrap_or(i32::MAX);
    if span_days > MAX_SERIES_DAYS {
        return Err(RecurrenceError::TooLong);
    }
    let mut out = Vec::new();
    let mut date = first_date;
    while date <= weekly.until {
        if weekly
            .weekdays
            .contains(&Weekday::from_jiff(date.weekday()))
        {
            if out.len() == MAX_OCCURRENCES {
                return Err(RecurrenceError::TooMany);
            }
            // Same wall time every week; `compatible` moves a time that a DST change skips
            // forward by the gap and takes the first of a repeated hour.
            let start = series
                .tz
                .to_ambiguous_timestamp(date.to_datetime(time))
                .compatible()
                .map(|ts| ts.as_millisecond())
                .unwrap_or(series.start_ms);
            out.push(Planned {
                series_date: date,
                start_ms: start,
                end_ms: start + duration,
            });
        }
        match date.tomorrow() {
            Ok(next) => date = next,
            Err(_) => break,
        }
    }
    if out.is_empty() {
        return Err(RecurrenceError::Empty {
            first: first_date,
            until: weekly.until,
        });
    }
    Ok(out)
}

#[cfg(test)]
#[path = "recurrence_tests.rs"]
mod tests;
