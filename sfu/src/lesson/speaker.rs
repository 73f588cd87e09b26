//! Active speaker detection from RFC 6464 audio levels carried in RTP header extensions.
//!
//! Publishers' browsers put the audio level (dBov, 0 loudest, -127 silent) in every Opus
//! packet, so the SFU needs no decoding. Levels are averaged over short intervals, smoothed,
//! and the speaker changes only when a challenger is clearly louder for two intervals in a row:
//! a cough in another classroom does not flip everyone's layout.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ids::PeerId;

/// Levels below this (dBov) count as silence: room noise, not speech.
const NOISE_FLOOR_DBOV: i32 = -60;
/// How much louder (ratio of smoothed scores) a challenger must be.
const SWITCH_RATIO: f32 = 1.3;
/// A speaker must score at least this to be taken at all.
const MIN_SCORE: f32 = 4.0;
/// Consecutive intervals a challenger must win.
const WINS_NEEDED: u8 = 2;

#[derive(Debug, Default, Clone, Copy)]
struct Acc {
    sum: u32,
    count: u32,
}

/// Per-room speaker detector.
#[derive(Debug)]
pub struct SpeakerDetector {
    interval: Duration,
    window: HashMap<PeerId, Acc>,
    score: HashMap<PeerId, f32>,
    current: Option<PeerId>,
    challenger: Option<(PeerId, u8)>,
    next_eval: Option<Instant>,
}

impl SpeakerDetector {
    /// A detector evaluating every `interval`.
    pub fn new(interval: Duration) -> Self {
        SpeakerDetector {
            interval,
            window: HashMap::new(),
            score: HashMap::new(),
            current: None,
            challenger: None,
            next_eval: None,
        }
    }

    /// The current speaker.
    pub fn current(&self) -> Option<PeerId> {
        self.current
    }

    /// One audio packet of `peer` with `level` (dBov). Returns the new speaker when it changed.
    pub fn observe(&mut self, peer: PeerId, level: i8, now: Instant) -> Option<PeerId> {
        let loudness = (i32::from(level) - NOISE_FLOOR_DBOV).max(0) as u32;
        let acc = self.window.entry(peer).or_default();
        acc.sum += loudness;
        acc.count += 1;
        self.tick(now)
    }

    /// Evaluates if an interval has passed. Returns the new speaker when it changed.
    pub fn tick(&mut self, now: Instant) -> Option<PeerId> {
        let due = *self.next_eval.get_or_insert(now + self.interval);
        if now < due {
            return None;
        }
        self.next_eval = Some(now + self.interval);
        self.evaluate()
    }

    fn evaluate(&mut self) -> Option<PeerId> {
        // Peers silent in this interval decay towards zero.
        for (peer, s) in self.score.iter_mut() {
            let level = self
                .window
                .get(peer)
                .filter(|a| a.count > 0)
                .map(|a| a.sum as f32 / a.count as f32)
                .unwrap_or(0.0);
            *s = 0.6 * *s + 0.4 * level;
        }
        for (peer, a) in self.window.drain() {
            if a.count > 0 && !self.score.contains_key(&peer) {
                self.score.insert(peer, 0.4 * a.sum as f32 / a.count as f32);
            }
        }
        self.score.retain(|_, s| *s > 0.01);

        let loudest = self
            .score
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(p, s)| (*p, *s));
        let (top, top_score) = loudest?;
        if top_score < MIN_SCORE || Some(top) == self.current {
            self.challenger = None;
            return None;
        }
        let current_score = self
            .current
            .and_then(|c| self.score.get(&c).copied())
            .unwrap_or(0.0);
        if top_score < current_score * SWITCH_RATIO {
            self.challenger = None;
            return None;
        }
        let wins = match self.challenger {
            Some((p, w)) if p == top => w + 1,
            _ => 1,
        };
        if wins >= WINS_NEEDED || self.current.is_none() {
            self.current = Some(top);
            self.challenger = None;
            return Some(top);
        }
        self.challenger = Some((top, wins));
        None
    }

    /// Forgets a peer that left; the speaker is cleared if it was them.
    pub fn remove_peer(&mut self, peer: PeerId) -> bool {
        self.window.remove(&peer);
        self.score.remove(&peer);
        if self.challenger.is_some_and(|(p, _)| p == peer) {
            self.challenger = None;
        }
        if self.current == Some(peer) {
            self.current = None;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: PeerId = PeerId(1);
    const B: PeerId = PeerId(2);

    /// Feeds 20 ms packets for `ms` milliseconds: (peer, level) pairs each packet time.
    fn talk(
        d: &mut SpeakerDetector,
        t: &mut Instant,
        ms: u64,
        voices: &[(PeerId, i8)],
    ) -> Vec<PeerId> {
        let mut changes = Vec::new();
        for _ in 0..ms / 20 {
            *t += Duration::from_millis(20);
            for (p, l) in voices {
                if let Some(c) = d.observe(*p, *l, *t) {
                    changes.push(c);
                }
            }
        }
        changes
    }

    #[test]
    fn the_first_clear_speaker_is_taken_and_silence_is_not_speech() {
        let mut t = Instant::now();
        let mut d = SpeakerDetector::new(Duration::from_millis(300));
        assert!(talk(&mut d, &mut t, 1000, &[(A, -90), (B, -100)]).is_empty());
        assert_eq!(d.current(), None);
        assert_eq!(talk(&mut d, &mut t, 1000, &[(A, -25), (B, -100)]), vec![A]);
    }

    #[test]
    fn a_short_burst_does_not_switch_but_sustained_speech_does() {
        let mut t = Instant::now();
        let mut d = SpeakerDetector::new(Duration::from_millis(300));
        talk(&mut d, &mut t, 1000, &[(A, -25)]);
        assert_eq!(d.current(), Some(A));
        // B coughs for 200 ms while A keeps talking.
        assert!(talk(&mut d, &mut t, 200, &[(A, -25), (B, -10)]).is_empty());
        assert!(talk(&mut d, &mut t, 600, &[(A, -25), (B, -95)]).is_empty());
        // A stops, B talks: B takes over.
        let changes = talk(&mut d, &mut t, 1500, &[(A, -110), (B, -22)]);
        assert_eq!(changes, vec![B]);
    }

    #[test]
    fn a_speaker_who_leaves_is_cleared() {
        let mut t = Instant::now();
        let mut d = SpeakerDetector::new(Duration::from_millis(300));
        talk(&mut d, &mut t, 1000, &[(A, -25)]);
        assert!(d.remove_peer(A));
        assert_eq!(d.current(), None);
        assert!(!d.remove_peer(B));
    }
}
