//! The HTTP `Range` header for library files (RFC 9110 §14): one byte range, which is what
//! `<video>` sends when it seeks. Several ranges are served whole (a multipart reply buys a
//! player nothing); a range that cannot be satisfied, or that does not parse, is refused
//! with 416 so a broken client notices.

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The whole file (200).
    All,
    /// Bytes `start..=end` (206).
    Part { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Decides what to serve of a file of `len` bytes for the `Range` header `header`.
pub fn select(header: Option<&str>, len: u64) -> Served {
    let Some(h) = header.map(str::trim) else {
        return Served::All;
    };
    let Some((unit, set)) = h.split_once('=') else {
        return Served::Unsatisfiable;
    };
    // An unknown unit is ignored, as RFC 9110 requires.
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Served::All;
    }
    if set.contains(',') {
        return if set.split(',').all(|r| parse_one(r.trim(), len).is_some()) {
            Served::All
        } else {
            Served::Unsatisfiable
        };
    }
    match parse_one(set.trim(), len) {
        Some(Some((start, end))) => Served::Part { start, end },
        Some(None) | None => Served::Unsatisfiable,
    }
}

/// `None`: syntax error; `Some(None)`: well formed but unsatisfiable.
fn parse_one(r: &str, len: u64) -> Option<Option<(u64, u64)>> {
    let (a, b) = r.split_once('-')?;
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if a.trim().is_empty() {
        // Suffix: the last n bytes.
        let n = num(b)?;
        if n == 0 || len == 0 {
            return Some(None);
        }
        return Some(Some((len.saturating_sub(n), len - 1)));
    }
    let start = num(a)?;
    let end = if b.trim().is_empty() {
        None
    } else {
        Some(num(b)?)
    };
    if end.is_some_and(|e| e < start) {
        return None;
    }
    if start >= len {
        return Some(None);
    }
    let end = end.map_or(len - 1, |e| e.min(len - 1));
    Some(Some((start, end)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Served::*;

    #[test]
    fn ranges_as_players_send_them() {
        assert_eq!(select(None, 5000), All);
        assert_eq!(
            select(Some("bytes=1000-1999"), 5000),
            Part {
                start: 1000,
                end: 1999
            }
        );
        assert_eq!(
            select(Some("bytes=0-"), 5000),
            Part {
                start: 0,
                end: 4999
            }
        );
        assert_eq!(
            select(Some("bytes=4000-9999"), 5000),
            Part {
                start: 4000,
                end: 4999
            }
        );
        assert_eq!(
            select(Some("bytes=-100"), 5000),
            Part {
                start: 4900,
                end: 4999
            }
        );
        assert_eq!(
            select(Some("bytes=-9000"), 5000),
            Part {
                start: 0,
                end: 4999
            }
        );
        assert_eq!(select(Some("BYTES = 5-5"), 5000), Part { start: 5, end: 5 });
    }

    #[test]
    fn bad_and_unsatisfiable_ranges_are_refused() {
        for h in [
            "bytes=5000-",
            "bytes=6000-7000",
            "bytes=-0",
            "bytes=2-1",
            "bytes=a-b",
            "bytes=--1",
            "bytes=1-2-3",
            "bytes",
            "bytes=",
            "bytes=+1-2",
            "bytes=0-1,x",
        ] {
            assert_eq!(select(Some(h), 5000), Unsatisfiable, "{h}");
        }
        assert_eq!(select(Some("bytes=0-"), 0), Unsatisfiable);
    }

    #[test]
    fn other_units_and_multiple_ranges_get_the_whole_file() {
        assert_eq!(select(Some("items=0-5"), 5000), All);
        assert_eq!(select(Some("bytes=0-1,10-20"), 5000), All);
    }
}
