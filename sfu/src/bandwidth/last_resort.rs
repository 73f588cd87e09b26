//! `LastResort`: when a video that has a single layer may be paused, and when it comes back.
//!
//! A camera published in simulcast can step down to a smaller layer; a hardware encoder, OBS or
//! a WHIP player's source publishes one layer, and pausing it freezes the lesson. So a single
//! layer is never paused because an estimate says the budget is short: only a configured
//! downlink that cannot hold it (a hard fact) or a link seen failing (loss that lasts) pauses
//! it. A stream paused because the link failed is tried again after a back-off (1 s, doubling
//! to 4 s while trials keep failing; a stream that then plays for 10 s starts over at 1 s), so
//! it returns by itself within a few seconds of the link's recovery, even for a receiver that
//! reports nothing but loss. Each trial starts a short probation in which one lossy report is
//! enough to pause it again, so a trial on a link that still fails costs about a second.
//!
//! Pure: time comes in as arguments; tested step by step below.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ids::TrackId;

/// The first wait before trying a stream the link failed to carry.
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest wait between trials (the stream must be back within a few seconds of the link).
const MAX_WAIT: Duration = Duration::from_secs(4);
/// A trial that plays this long succeeded: the next failure starts the back-off over.
const PROVEN_AFTER: Duration = Duration::from_secs(10);
/// How long after a trial starts one lossy report counts as failing.
pub const PROBATION: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy)]
struct Paused {
    since: Instant,
    wait: Duration,
}

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct LastResort {
    /// Streams paused because the link failed, with their back-off.
    paused: HashMap<TrackId, Paused>,
    /// Streams resumed on trial, with the start of the trial and the wait that preceded it.
    trials: HashMap<TrackId, (Instant, Duration)>,
}

/// What to do with a single-layer stream this round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Play {
        /// Just resumed after a failure: on probation.
        trial: bool,
    },
    /// Keep it paused.
    Pause,
}

impl LastResort {
    /// Decides for a single-layer stream: `playing` whether it is sent now, `fits_cap` whether
    /// a configured downlink can hold it, `failing` whether the link is seen not to carry what
    /// is sent.
    pub fn decide(
        &mut self,
        now: Instant,
        track: TrackId,
        playing: bool,
        fits_cap: bool,
        failing: bool,
    ) -> Verdict {
        if !fits_cap {
            return Verdict::Pause;
        }
        if playing {
            if !failing {
                let proven = self
                    .trials
                    .get(&track)
                    .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= PROVEN_AFTER);
                if proven {
                    self.trials.remove(&track);
                }
                return Verdict::Play { trial: false };
            }
            // The link fails: pause, and wait longer if this was a failed trial.
            let wait = match self.trials.remove(&track) {
                Some((start, wait)) if now.saturating_duration_since(start) < PROVEN_AFTER => {
                    (wait * 2).min(MAX_WAIT)
                }
                _ => FIRST_WAIT,
            };
            self.paused.insert(track, Paused { since: now, wait });
            return Verdict::Pause;
        }
        match self.paused.get(&track).copied() {
            // Paused for the cap, or never started: play unless the link fails.
            None if failing => Verdict::Pause,
            None => Verdict::Play { trial: false },
            Some(p) if now.saturating_duration_since(p.since) < p.wait => Verdict::Pause,
            // The wait is over: try again, even if the last reports were lossy (they describe
            // the time the stream was sent; only a trial tells whether the link is back).
            Some(p) => {
                self.paused.remove(&track);
                self.trials.insert(track, (now, p.wait));
                Verdict::Play { trial: true }
            }
        }
    }

    /// Forgets streams no longer received.
    pub fn retain(&mut self, keep: impl Fn(TrackId) -> bool) {
        self.paused.retain(|t, _| keep(*t));
        self.trials.retain(|t, _| keep(*t));
    }
}

#[cfg(test)]
mod tests {
    use super::Verdict::*;
    use super::*;

    const T: TrackId = TrackId(7);

    #[test]
    fn a_single_layer_plays_unless_the_cap_cannot_hold_it_or_the_link_fails() {
        let t = Instant::now();
        let mut r = LastResort::default();
        assert_eq!(r.decide(t, T, false, true, false), Play { trial: false });
        assert_eq!(r.decide(t, T, true, true, false), Play { trial: false });
        assert_eq!(r.decide(t, T, true, false, false), Pause, "the cap");
        assert_eq!(r.decide(t, T, false, true, false), Play { trial: false });
        assert_eq!(
            r.decide(t, T, false, true, true),
            Pause,
            "never starts on a failing link"
        );
    }

    #[test]
    fn a_failing_link_pauses_it_and_trials_back_off_to_four_seconds() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        let mut r = LastResort::default();
        assert_eq!(r.decide(at(0), T, true, true, true), Pause);
        assert_eq!(r.decide(at(900), T, false, true, false), Pause);
        assert_eq!(
            r.decide(at(1000), T, false, true, false),
            Play { trial: true }
        );
        // The trial fails: 2 s, then 4 s, then 4 s.
        assert_eq!(r.decide(at(2000), T, true, true, true), Pause);
        assert_eq!(r.decide(at(3900), T, false, true, true), Pause);
        assert_eq!(
            r.decide(at(4000), T, false, true, true),
            Play { trial: true }
        );
        assert_eq!(r.decide(at(5000), T, true, true, true), Pause);
        assert_eq!(r.decide(at(8900), T, false, true, false), Pause);
        assert_eq!(
            r.decide(at(9000), T, false, true, false),
            Play { trial: true }
        );
        assert_eq!(r.decide(at(10_000), T, true, true, true), Pause);
        assert_eq!(
            r.decide(at(14_000), T, false, true, false),
            Play { trial: true }
        );
        // This trial holds for 10 s: the next failure waits 1 s again.
        assert_eq!(
            r.decide(at(24_000), T, true, true, false),
            Play { trial: false }
        );
        assert_eq!(r.decide(at(30_000), T, true, true, true), Pause);
        assert_eq!(
            r.decide(at(31_000), T, false, true, false),
            Play { trial: true }
        );
    }

    #[test]
    fn forgotten_streams_start_over() {
        let t = Instant::now();
        let mut r = LastResort::default();
        r.decide(t, T, true, true, true);
        r.retain(|_| false);
        assert_eq!(r.decide(t, T, false, true, false), Play { trial: false });
    }
}
