//! Times as the API speaks them: RFC 3339 strings, read in a lesson's time zone when they carry
//! no offset, and stored as Unix milliseconds (whole seconds).
//!
//! Time zones come from jiff's bundled copy of the tz database, so every node computes the
//! same local times whatever the host's tzdata says.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;

/// The earliest and latest years a lesson may be in: keeps arithmetic far from overflow and
/// catches typos like 0226.
pub const MIN_YEAR: i16 = 2000;
pub const MAX_YEAR: i16 = 2099;

/// Looks up an IANA time zone name.
pub fn zone(name: &str) -> Result<TimeZone, String> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be a tz database name such as Asia/Shanghai".to_owned());
    }
    TimeZone::get(name)
        .map_err(|_| format!("{name:?} is not a tz database time zone (such as Asia/Shanghai)"))
}

/// Reads a client's time: RFC 3339 with `Z` or an offset is that instant; a date and time
/// without one (`2026-03-02T08:00`, as an HTML datetime-local input gives) is wall time in
/// `tz`. A wall time skipped by a daylight saving change moves forward by the gap; a repeated
/// one takes the earlier instant. Fractions of a second are dropped.
pub fn parse_instant(s: &str, tz: &TimeZone) -> Result<i64, String> {
    let s = s.trim();
    let bad = || {
        format!("{s:?} is not a time like 2026-03-02T08:00:00+08:00 or 2026-03-02T08:00 (local)")
    };
    // A date alone is not a time of day.
    if !s.get(10..).is_some_and(|t| t.starts_with(['T', 't', ' '])) {
        return Err(bad());
    }
    let has_offset = {
        // After the date part: a Z, or a sign in the time part.
        let time = s.get(10..).unwrap_or("");
        time.contains(['Z', 'z', '+']) || time.rfind('-').is_some()
    };
    let ts = if has_offset {
        s.parse::<Timestamp>().map_err(|_| bad())?
    } else {
        let dt = s.parse::<DateTime>().map_err(|_| bad())?;
        tz.to_ambiguous_timestamp(dt)
            .compatible()
            .map_err(|_| bad())?
    };
    let year = ts.to_zoned_datetime(tz.clone()).year();
    if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
        return Err(format!(
            "must be between the years {MIN_YEAR} and {MAX_YEAR}"
        ));
    }
    Ok(ts.as_second() * 1000)
}

/// Reads a calendar date `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<Date, String> {
    let d = s
        .trim()
        .parse::<Date>()
        .ok()
        .filter(|_| s.trim().len() == 10)
        .ok_or_else(|| format!("{s:?} is not a date like 2026-07-10"))?;
    if !(MIN_YEAR..=MAX_YEAR).contains(&d.year()) {
        return Err(format!(
            "must be between the years {MIN_YEAR} and {MAX_YEAR}"
        ));
    }
    Ok(d)
}

fn timestamp(ms: i64) -> Timestamp {
    // Stored values were checked on the way in; a hand-edited row far out of range shows as
    // the epoch rather than failing the whole response.
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// RFC 3339 with the offset of `tz` at that instant, e.g. `2026-03-02T08:00:00+08:00`.
pub fn format_in(ms: i64, tz: &TimeZone) -> String {
    let ts = timestamp(ms);
    ts.display_with_offset(tz.to_offset(ts)).to_string()
}

/// RFC 3339 in UTC, e.g. `2026-03-02T00:00:00Z`.
pub fn format_utc(ms: i64) -> String {
    timestamp(ms).to_string()
}

/// The calendar date of an instant in `tz`.
pub fn local_date(ms: i64, tz: &TimeZone) -> Date {
    timestamp(ms).to_zoned_datetime(tz.clone()).date()
}

/// Wall time of an instant in `tz`.
pub fn local_datetime(ms: i64, tz: &TimeZone) -> DateTime {
    timestamp(ms).to_zoned_datetime(tz.clone()).datetime()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanghai() -> TimeZone {
        zone("Asia/Shanghai").expect("bundled tzdb")
    }

    #[test]
    fn offsets_are_instants_and_plain_times_are_local() {
        let tz = shanghai();
        let utc = parse_instant("2026-03-02T00:00:00Z", &tz).expect("utc");
        assert_eq!(utc, 1_772_409_600_000);
        assert_eq!(parse_instant("2026-03-02T08:00:00+08:00", &tz), Ok(utc));
        assert_eq!(parse_instant("2026-03-02T08:00", &tz), Ok(utc));
        assert_eq!(parse_instant("2026-03-02T08:00:00.999", &tz), Ok(utc));
        assert_eq!(parse_instant("2026-03-01T19:00:00-05:00", &tz), Ok(utc));
        assert_eq!(format_in(utc, &tz), "2026-03-02T08:00:00+08:00");
        assert_eq!(format_utc(utc), "2026-03-02T00:00:00Z");
    }

    #[test]
    fn daylight_saving_gaps_and_folds_are_resolved() {
        let berlin = zone("Europe/Berlin").expect("zone");
        // 2026-03-29 02:30 does not exist in Berlin: it becomes 03:30 CEST.
        let gap = parse_instant("2026-03-29T02:30", &berlin).expect("gap");
        assert_eq!(format_in(gap, &berlin), "2026-03-29T03:30:00+02:00");
        // 2026-10-25 02:30 happens twice: the first (CEST) is taken.
        let fold = parse_instant("2026-10-25T02:30", &berlin).expect("fold");
        assert_eq!(format_in(fold, &berlin), "2026-10-25T02:30:00+02:00");
    }

    #[test]
    fn nonsense_is_refused_with_the_value() {
        let tz = shanghai();
        for bad in [
            "",
            "tomorrow",
            "2026-13-01T08:00",
            "2026-03-02",
            "08:00",
            "1999-12-31T08:00",
        ] {
            let err = parse_instant(bad, &tz).expect_err(bad);
            assert!(!err.is_empty(), "{bad}");
        }
        assert!(parse_date("2026-02-30").is_err());
        assert!(parse_date("2026-2-3").is_err());
        assert_eq!(parse_date("2026-07-10").map(|d| d.day()), Ok(10));
        assert!(zone("Asia/Beijing").is_err());
        assert!(zone("").is_err());
    }
}
