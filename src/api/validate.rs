//! Checks of single input values, each returning the cleaned value or a message for the
//! field's entry in a 422 problem. Nothing unchecked reaches the database.

/// Lowest per-classroom bandwidth, kbit/s: below this not even audio and a small video fit.
pub const MIN_KBPS: i64 = 100;
/// Highest per-classroom bandwidth, kbit/s (1 Gbit/s).
pub const MAX_KBPS: i64 = 1_000_000;
/// Highest school-wide budget, kbit/s (100 Gbit/s).
pub const MAX_BUDGET_KBPS: i64 = 100_000_000;

/// Text of `min..=max` characters after trimming, without control characters or invisible
/// formatting (zero-width characters, direction marks and overrides: the same rule as display
/// names in room tokens, `auth::is_invisible_format`, and chat, which strips them).
pub fn text(value: &str, min: usize, max: usize) -> Result<String, String> {
    let v = value.trim();
    let chars = v.chars().count();
    if chars < min {
        return Err(if min == 1 {
            "must not be empty".to_owned()
        } else {
            format!("must be at least {min} characters")
        });
    }
    if chars > max {
        return Err(format!("must be at most {max} characters (got {chars})"));
    }
    if v.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    if v.chars().any(crate::auth::is_invisible_format) {
        return Err("must not contain invisible or direction-changing characters".to_owned());
    }
    Ok(v.to_owned())
}

/// An optional kbit/s value within `min..=max`.
pub fn kbps(value: Option<i64>, min: i64, max: i64) -> Result<Option<i32>, String> {
    match value {
        None => Ok(None),
        Some(v) if (min..=max).contains(&v) => Ok(Some(
            i32::try_from(v).map_err(|_| "out of range".to_owned())?,
        )),
        Some(v) => Err(format!("must be between {min} and {max} kbit/s (got {v})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(text("  东山小学 ", 1, 64), Ok("东山小学".to_owned()));
        assert!(text("   ", 1, 64).is_err());
        assert!(text("a\u{0}b", 1, 64).is_err());
        assert!(text("a\nb", 1, 64).is_err());
        assert_eq!(
            text(&"数".repeat(64), 1, 64).map(|s| s.chars().count()),
            Ok(64)
        );
        assert!(text(&"数".repeat(65), 1, 64).is_err());
        assert_eq!(text("", 0, 10), Ok(String::new()));
    }

    #[test]
    fn direction_overrides_and_zero_width_characters_are_refused() {
        // What names in tokens refuse and chat strips, the admin API and notes refuse too:
        // a teacher "evil\u{202E}gnp.exe" or a classroom "Class\u{200B} 1" that looks like
        // another.
        for bad in [
            "evil\u{202E}gnp.exe",
            "Class\u{200B} 1",
            "\u{2066}x",
            "a\u{FEFF}",
        ] {
            assert!(text(bad, 1, 64).is_err(), "{bad:?}");
        }
        assert_eq!(
            text("李老师 (三年级)", 1, 64),
            Ok("李老师 (三年级)".to_owned())
        );
    }

    #[test]
    fn kbps_is_bounded() {
        assert_eq!(kbps(None, MIN_KBPS, MAX_KBPS), Ok(None));
        assert_eq!(kbps(Some(5000), MIN_KBPS, MAX_KBPS), Ok(Some(5000)));
        assert!(kbps(Some(99), MIN_KBPS, MAX_KBPS).is_err());
        assert!(kbps(Some(0), MIN_KBPS, MAX_KBPS).is_err());
        assert!(kbps(Some(MAX_KBPS + 1), MIN_KBPS, MAX_KBPS).is_err());
        assert!(kbps(Some(i64::MIN), MIN_KBPS, MAX_KBPS).is_err());
    }
}
