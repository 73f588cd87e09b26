//! Tests of recurrence expansion, in zones with and without daylight saving time.

use super::*;
use crate::schedule::time::{format_in, parse_date, parse_instant, zone};

fn series(tz: &str, start: &str, end: &str, weekly: Option<(&[Weekday], &str)>) -> Series {
    let tz = zone(tz).expect("zone");
    Series {
        start_ms: parse_instant(start, &tz).expect("start"),
        end_ms: parse_instant(end, &tz).expect("end"),
        weekly: weekly.map(|(days, until)| Weekly {
            weekdays: days.iter().copied().collect(),
            until: parse_date(until).expect("until"),
        }),
        tz,
    }
}

fn local(s: &Series, planned: &[Planned]) -> Vec<(String, String)> {
    planned
        .iter()
        .map(|p| (format_in(p.start_ms, &s.tz), format_in(p.end_ms, &s.tz)))
        .collect()
}

#[test]
fn a_single_lesson_is_one_occurrence() {
    let s = series(
        "Asia/Shanghai",
        "2026-03-02T08:00",
        "2026-03-02T08:45",
        None,
    );
    let p = expand(&s).expect("expand");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].series_date.to_string(), "2026-03-02");
    assert_eq!(p[0].end_ms - p[0].start_ms, 45 * 60 * 1000);
}

#[test]
fn weekly_lessons_fall_on_the_listed_weekdays_through_until() {
    // 2026-03-02 is a Monday.
    let s = series(
        "Asia/Shanghai",
        "2026-03-02T08:00",
        "2026-03-02T08:45",
        Some((&[Weekday::Mon, Weekday::Wed], "2026-03-16")),
    );
    let p = expand(&s).expect("expand");
    assert_eq!(
        local(&s, &p),
        [
            ("2026-03-02T08:00:00+08:00", "2026-03-02T08:45:00+08:00"),
            ("2026-03-04T08:00:00+08:00", "2026-03-04T08:45:00+08:00"),
            ("2026-03-09T08:00:00+08:00", "2026-03-09T08:45:00+08:00"),
            ("2026-03-11T08:00:00+08:00", "2026-03-11T08:45:00+08:00"),
            ("2026-03-16T08:00:00+08:00", "2026-03-16T08:45:00+08:00"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    // Shanghai has no DST: every start is exactly a multiple of a day after the first.
    for w in p.windows(2) {
        assert_eq!((w[1].start_ms - w[0].start_ms) % 86_400_000, 0);
    }
}

#[test]
fn the_first_date_counts_only_when_its_weekday_is_listed() {
    // Starts on a Monday, meets on Tuesdays and Fridays.
    let s = series(
        "Asia/Shanghai",
        "2026-03-02T14:00",
        "2026-03-02T14:40",
        Some((&[Weekday::Fri, Weekday::Tue], "2026-03-06")),
    );
    let dates: Vec<String> = expand(&s)
        .expect("expand")
        .iter()
        .map(|p| p.series_date.to_string())
        .collect();
    assert_eq!(dates, ["2026-03-03", "2026-03-06"]);
}

#[test]
fn weekly_lessons_keep_their_local_time_across_daylight_saving_changes() {
    // Berlin switches to summer time on Sunday 2026-03-29 (UTC+1 → UTC+2).
    let s = series(
        "Europe/Berlin",
        "2026-03-23T09:00",
        "2026-03-23T09:45",
        Some((&[Weekday::Mon], "2026-04-06")),
    );
    let p = expand(&s).expect("expand");
    assert_eq!(
        local(&s, &p),
        [
            ("2026-03-23T09:00:00+01:00", "2026-03-23T09:45:00+01:00"),
            ("2026-03-30T09:00:00+02:00", "2026-03-30T09:45:00+02:00"),
            ("2026-04-06T09:00:00+02:00", "2026-04-06T09:45:00+02:00"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    // In UTC the week across the change is an hour shorter.
    assert_eq!(p[1].start_ms - p[0].start_ms, 7 * 86_400_000 - 3_600_000);
    assert_eq!(p[2].start_ms - p[1].start_ms, 7 * 86_400_000);
    // And back in autumn (2026-10-25): the week is an hour longer.
    let s = series(
        "Europe/Berlin",
        "2026-10-22T16:00",
        "2026-10-22T17:00",
        Some((&[Weekday::Thu], "2026-10-29")),
    );
    let p = expand(&s).expect("expand");
    assert_eq!(p[1].start_ms - p[0].start_ms, 7 * 86_400_000 + 3_600_000);
    assert_eq!(format_in(p[1].start_ms, &s.tz), "2026-10-29T16:00:00+01:00");
}

#[test]
fn a_weekly_time_inside_the_spring_gap_moves_forward() {
    // 02:30 does not exist on 2026-03-29 in Berlin; that Sunday's lesson starts at 03:30.
    let s = series(
        "Europe/Berlin",
        "2026-03-22T02:30",
        "2026-03-22T03:00",
        Some((&[Weekday::Sun], "2026-04-05")),
    );
    let p = expand(&s).expect("expand");
    assert_eq!(
        local(&s, &p)
            .into_iter()
            .map(|(start, _)| start)
            .collect::<Vec<_>>(),
        [
            "2026-03-22T02:30:00+01:00",
            "2026-03-29T03:30:00+02:00",
            "2026-04-05T02:30:00+02:00"
        ]
    );
    assert!(p.iter().all(|o| o.end_ms - o.start_ms == 30 * 60 * 1000));
}

#[test]
fn impossible_series_name_their_field() {
    let until_before = series(
        "Asia/Shanghai",
        "2026-03-02T08:00",
        "2026-03-02T08:45",
        Some((&[Weekday::Mon], "2026-03-01")),
    );
    let e = expand(&until_before).unwrap_err();
    assert_eq!(e.field(), "recurrence.until");
    assert!(e.message().contains("2026-03-02"), "{e}");

    let no_days = series(
        "Asia/Shanghai",
        "2026-03-02T08:00",
        "2026-03-02T08:45",
        Some((&[], "2026-03-10")),
    );
    assert_eq!(expand(&no_days).unwrap_err(), RecurrenceError::NoWeekdays);

    let empty = series(
        "Asia/Shanghai",
        "2026-03-02T08:00",
        "2026-03-02T08:45",
        Some((&[Weekday::Sun], "2026-03-07")),
    );
    let e = expand(&empty).unwrap_err();
    assert_eq!(e.field(), "recurrence.weekdays");

    let too_long = series(
        "Asia/Shanghai",
        "2026-03-02T08:00",
        "2026-03-02T08:45",
        Some((&[Weekday::Mon], "2027-03-10")),
    );
    assert_eq!(expand(&too_long).unwrap_err(), RecurrenceError::TooLong);

    // Every day for a year is within both limits.
    let daily = series(
        "Asia/Shanghai",
        "2026-03-02T08:00",
        "2026-03-02T08:45",
        Some((
            &[
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
                Weekday::Sat,
                Weekday::Sun,
            ],
            "2027-03-01",
        )),
    );
    assert_eq!(expand(&daily).expect("a year").len(), 365);
}
