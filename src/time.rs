//! The server's one clock. Lesson windows, tokens, attendance, the library and the audit log
//! all read the time here, so a record made at a moment compares with the lesson windows it
//! falls in. In service it is the system clock; integration tests shift it to step a lesson
//! through its window (links before, during and after, the scheduler's warning and close)
//! without waiting for hours, and every record moves with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The system clock plus an offset that is always zero in service. Clones share the offset.
#[derive(Debug, Default, Clone)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> SystemTime {
        let offset = self.offset_ms.load(Ordering::Relaxed);
        let magnitude = Duration::from_millis(offset.unsigned_abs());
        if offset >= 0 {
            SystemTime::now() + magnitude
        } else {
            SystemTime::now() - magnitude
        }
    }

    /// Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    /// Unix milliseconds, for the records that keep them unsigned.
    pub fn now_ms_u64(&self) -> u64 {
        u64::try_from(self.now_ms()).unwrap_or(0)
    }

    /// Moves the clock by `by_ms` (tests only).
    pub fn shift(&self, by_ms: i64) {
        self.offset_ms.fetch_add(by_ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_a_shift() {
        let clock = Clock::default();
        let other = clock.clone();
        let before = other.now_ms();
        clock.shift(3_600_000);
        let after = other.now_ms();
        assert!(
            (3_600_000..3_660_000).contains(&(after - before)),
            "{before} {after}"
        );
    }
}
