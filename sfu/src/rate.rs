//! Bitrate of a packet stream over a sliding window, cheap enough for every packet.

use std::time::{Duration, Instant};

/// Buckets of 100 ms over one second.
const BUCKETS: usize = 10;
const BUCKET: Duration = Duration::from_millis(100);

/// Bytes per 100 ms bucket over the last second.
#[derive(Debug, Clone)]
pub struct RateMeter {
    buckets: [u64; BUCKETS],
    /// Start of the current bucket.
    head: Option<Instant>,
    idx: usize,
}

impl Default for RateMeter {
    fn default() -> Self {
        RateMeter {
            buckets: [0; BUCKETS],
            head: None,
            idx: 0,
        }
    }
}

impl RateMeter {
    fn advance(&mut self, now: Instant) {
        let Some(head) = self.head else {
            self.head = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(head);
        let steps = (elapsed.as_millis() / BUCKET.as_millis()) as usize;
        if steps == 0 {
            return;
        }
        for _ in 0..steps.min(BUCKETS) {
            self.idx = (self.idx + 1) % BUCKETS;
            self.buckets[self.idx] = 0;
        }
        self.head = Some(head + BUCKET * steps as u32);
    }

    /// Counts a packet of `bytes` at `now`.
    pub fn add(&mut self, now: Instant, bytes: usize) {
        self.advance(now);
        self.buckets[self.idx] += bytes as u64;
    }

    /// Bits per second over the last second, as of `now`.
    pub fn bps(&mut self, now: Instant) -> u64 {
        self.advance(now);
        self.buckets.iter().sum::<u64>() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_steady_stream_and_forgets_a_stopped_one() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        // 1000 bytes every 10 ms = 800 kbit/s.
        for i in 0..300 {
            m.add(t0 + Duration::from_millis(10 * i), 1000);
        }
        let bps = m.bps(t0 + Duration::from_millis(2990));
        assert!((760_000..=840_000).contains(&bps), "{bps}");
        assert_eq!(m.bps(t0 + Duration::from_secs(5)), 0);
    }
}
