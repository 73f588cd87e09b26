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

use crate::forward::rewrite::SourceFields;
use crate::forward::sink::{Sink, SinkOffer};
use crate::ids::TrackId;

#[derive(Debug)]
pub(crate) struct RecorderTap {
    /// The recorded video: one stream following a (track, layer) source.
    video: Sink<(TrackId, usize)>,
    pub audio: BTreeSet<TrackId>,
}

impl RecorderTap {
    pub fn new() -> Self {
        RecorderTap {
            video: Sink::new(90_000),
            audio: BTreeSet::new(),
        }
    }

    pub fn video_track(&self) -> Option<TrackId> {
        self.video.wanted().map(|(t, _)| t)
    }

    /// Sets the wanted video track (at `layer`); true if it changed.
    pub fn set_video(&mut self, target: Option<(TrackId, usize)>) -> bool {
        self.video.set_source(target)
    }

    /// Decides for one video packet of `track` at `layer`.
    pub fn on_video(
        &mut self,
        track: TrackId,
        layer: usize,
        keyframe_start: bool,
        src: SourceFields,
    ) -> SinkOffer {
        self.video.offer((track, layer), keyframe_start, false, src)
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
            SinkOffer::Drop
        );
        assert!(tap.set_video(Some((cam, 1))));
        // Wrong layer of the right track: not recorded.
        assert_eq!(
            tap.on_video(cam, 0, true, src(t0, 0, 10, 0)),
            SinkOffer::Drop
        );
        assert_eq!(
            tap.on_video(cam, 1, false, src(t0, 0, 50, 0)),
            SinkOffer::NeedKeyframe
        );
        let a = tap.on_video(cam, 1, true, src(t0, 10, 51, 900));
        let b = tap.on_video(cam, 1, false, src(t0, 43, 52, 3900));
        let (SinkOffer::Write { rw: ra, .. }, SinkOffer::Write { rw: rb, .. }) = (a, b) else {
            panic!("{a:?} {b:?}");
        };
        assert_eq!(rb.seq, ra.seq + 1);
        // The screen share starts: the camera keeps going until the screen's keyframe.
        tap.set_video(Some((screen, 0)));
        assert_eq!(
            tap.on_video(screen, 0, false, src(t0, 50, 7000, 1)),
            SinkOffer::NeedKeyframe
        );
        assert!(matches!(
            tap.on_video(cam, 1, false, src(t0, 76, 53, 6900)),
            SinkOffer::Write { .. }
        ));
        let SinkOffer::Write { rw: rc, .. } = tap.on_video(screen, 0, true, src(t0, 100, 7001, 5))
        else {
            panic!("no switch");
        };
        assert_eq!(rc.seq, rb.seq + 2);
        assert!(rc.ts > rb.ts);
        assert_eq!(
            tap.on_video(cam, 1, true, src(t0, 110, 54, 9900)),
            SinkOffer::Drop
        );
    }
}
