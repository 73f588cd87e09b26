//! The recorder tap: a virtual subscriber inside the room that sees what the lesson saw.
//!
//! Video follows the stage: the shared screen while there is one, else the classroom on stage,
//! else the teacher's camera, always at the best layer the publisher sends. Switching waits for
//! a keyframe of the new source (one is requested at once), and the tap rewrites sequence
//! numbers and timestamps so the recording gets one continuous video stream. Audio is every
//! microphone the audience hears (the teacher and who is on stage), passed through per track
//! for the application to mix. Nothing here blocks: events leave through the shard's output
//! and the application queues them for its writer.

use std::collections::BTreeSet;

use crate::forward::rewrite::{Rewriter, SourceFields};
use crate::ids::TrackId;

/// What to do with one video packet at the tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TapVideo {
    Record { seq: u64, ts: u32 },
    Drop,
    NeedKeyframe,
}

#[derive(Debug)]
pub(crate) struct RecorderTap {
    /// Wanted video source: (track, layer).
    target: Option<(TrackId, usize)>,
    /// Source being recorded.
    current: Option<(TrackId, usize)>,
    rewriter: Rewriter,
    pub audio: BTreeSet<TrackId>,
}

impl RecorderTap {
    pub fn new() -> Self {
        RecorderTap {
            target: None,
            current: None,
            rewriter: Rewriter::new(90_000),
            audio: BTreeSet::new(),
        }
    }

    pub fn video_track(&self) -> Option<TrackId> {
        self.target.map(|(t, _)| t)
    }

    /// Sets the wanted video track (at `layer`); true if it changed.
    pub fn set_video(&mut self, target: Option<(TrackId, usize)>) -> bool {
        let changed = self.target != target;
        self.target = target;
        if target.is_none() {
            self.current = None;
        }
        changed
    }

    /// Decides for one video packet of `track` at `layer`.
    pub fn on_video(
        &mut self,
        track: TrackId,
        layer: usize,
        keyframe_start: bool,
        src: SourceFields,
    ) -> TapVideo {
        let key = (track, layer);
        let Some(target) = self.target else {
            return TapVideo::Drop;
        };
        let switching = self.current != Some(target);
        let new_segment = if key == target && switching {
            if !keyframe_start {
                return TapVideo::NeedKeyframe;
            }
            self.current = Some(target);
            true
        } else if self.current == Some(key) {
            false
        } else {
            return TapVideo::Drop;
        };
        match self.rewriter.rewrite(src, new_segment) {
            Some(rw) => TapVideo::Record {
                seq: rw.seq,
                ts: rw.ts,
            },
            None => TapVideo::Drop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn src(t0: Instant, ms: u64, seq: u64, ts: u32) -> SourceFields {
        SourceFields {
            seq,
            ts,
            arrival: t0 + Duration::from_millis(ms),
            picture_id: None,
            tl0: None,
        }
    }

    #[test]
    fn the_tap_switches_sources_at_keyframes_and_keeps_one_stream() {
        let t0 = Instant::now();
        let (cam, screen) = (TrackId(1), TrackId(2));
        let mut tap = RecorderTap::new();
        assert_eq!(
            tap.on_video(cam, 0, true, src(t0, 0, 10, 0)),
            TapVideo::Drop
        );
        assert!(tap.set_video(Some((cam, 1))));
        // Wrong layer of the right track: not recorded.
        assert_eq!(
            tap.on_video(cam, 0, true, src(t0, 0, 10, 0)),
            TapVideo::Drop
        );
        assert_eq!(
            tap.on_video(cam, 1, false, src(t0, 0, 50, 0)),
            TapVideo::NeedKeyframe
        );
        let a = tap.on_video(cam, 1, true, src(t0, 10, 51, 900));
        let b = tap.on_video(cam, 1, false, src(t0, 43, 52, 3900));
        let (TapVideo::Record { seq: sa, .. }, TapVideo::Record { seq: sb, ts: tb }) = (a, b)
        else {
            panic!("{a:?} {b:?}");
        };
        assert_eq!(sb, sa + 1);
        // The screen share starts: the camera keeps going until the screen's keyframe.
        tap.set_video(Some((screen, 0)));
        assert_eq!(
            tap.on_video(screen, 0, false, src(t0, 50, 7000, 1)),
            TapVideo::NeedKeyframe
        );
        assert!(matches!(
            tap.on_video(cam, 1, false, src(t0, 76, 53, 6900)),
            TapVideo::Record { .. }
        ));
        let TapVideo::Record { seq: sc, ts: tc } =
            tap.on_video(screen, 0, true, src(t0, 100, 7001, 5))
        else {
            panic!("no switch");
        };
        assert_eq!(sc, sb + 2);
        assert!(tc > tb);
        assert_eq!(
            tap.on_video(cam, 1, true, src(t0, 110, 54, 9900)),
            TapVideo::Drop
        );
    }
}
