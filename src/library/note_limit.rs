//! How many notes one library link may post. A link is handed around (a teacher shares it
//! with colleagues) and needs no admin key, so its notes are counted per link (`jti`): at
//! most [`NOTES_PER_MINUTE`] in a minute. Admins are not limited.

use std::collections::HashMap;
use std::sync::Mutex;

/// Notes one library link may post per minute: a busy observer writes a few.
pub const NOTES_PER_MINUTE: u32 = 20;
const WINDOW_MS: i64 = 60_000;
/// Links counted at once; windows that ended are forgotten first.
const MAX_LINKS: usize = 10_000;

/// The notes each link posted in its current one-minute window.
#[derive(Debug, Default)]
pub struct NoteLimits {
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

impl NoteLimits {
    /// Counts a note of link `jti` at `now_ms`; when it is over the limit, `Err` with the
    /// seconds until it may post again.
    pub fn take(&self, jti: &str, now_ms: i64) -> Result<(), u64> {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() >= MAX_LINKS && !windows.contains_key(jti) {
            windows.retain(|_, (start, _)| now_ms - *start < WINDOW_MS);
            if windows.len() >= MAX_LINKS {
                return Err((WINDOW_MS / 1000) as u64);
            }
        }
        let (start, count) = windows.entry(jti.to_owned()).or_insert((now_ms, 0));
        if now_ms - *start >= WINDOW_MS {
            (*start, *count) = (now_ms, 0);
        }
        if *count >= NOTES_PER_MINUTE {
            let wait_ms = (*start + WINDOW_MS - now_ms).max(1000);
            return Err((wait_ms as u64).div_ceil(1000));
        }
        *count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_posts_its_share_per_minute_and_others_are_not_held_up() {
        let l = NoteLimits::default();
        for _ in 0..NOTES_PER_MINUTE {
            assert!(l.take("a", 0).is_ok());
        }
        assert_eq!(l.take("a", 10_000), Err(50));
        assert!(l.take("b", 10_000).is_ok());
        assert!(l.take("a", 60_000).is_ok());
    }
}
