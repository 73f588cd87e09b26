//! `Sink`: one continuous outgoing stream fed by one source at a time.
//!
//! A WHEP slot's m-line and the recorder's video are both a single stream whose source changes
//! while it runs: the slot is bound to another teacher track when the first one ends, the
//! recording follows the stage from camera to screen share. Either way the receiver must see
//! one stream: the sink keeps sending the old source until the new one starts with a keyframe,
//! then starts a new segment of its one `Rewriter`, so sequence numbers and timestamps go on
//! without a jump. A subscription's layer switches within a track reach the same rewriter as
//! `new_segment`.
//!
//! The source key is generic: a track for an m-line (the subscription's `LayerSelector` picks
//! the layer), a track and layer for the recorder (which follows the best layer itself).

use crate::forward::rewrite::{Rewriter, Rewritten, SourceFields};

/// What to do with one packet offered to a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SinkOffer {
    /// Send it with these header fields; `new_segment` when it starts a new source or layer.
    Write { rw: Rewritten, new_segment: bool },
    /// Not from the source being sent (or a late packet from before a switch).
    Drop,
    /// From the wanted source, which can only start at a keyframe.
    NeedKeyframe,
}

#[derive(Debug, Clone)]
pub(crate) struct Sink<K> {
    /// The source wanted.
    wanted: Option<K>,
    /// The source being sent.
    current: Option<K>,
    rewriter: Rewriter,
}

impl<K: Copy + Eq> Sink<K> {
    /// A sink for a stream with the given RTP clock rate, sending nothing yet.
    pub fn new(clock_rate: u32) -> Self {
        Sink {
            wanted: None,
            current: None,
            rewriter: Rewriter::new(clock_rate),
        }
    }

    /// Whether the wanted source is the one being sent (its keyframe went out).
    pub fn sent_any(&self) -> bool {
        self.current.is_some() && self.current == self.wanted
    }

    /// The source wanted (it may still wait for its keyframe).
    pub fn wanted(&self) -> Option<K> {
        self.wanted
    }

    /// Wants another source: the current one keeps going until the new one's keyframe. `None`
    /// stops at once. True if the wanted source changed.
    pub fn set_source(&mut self, source: Option<K>) -> bool {
        let changed = self.wanted != source;
        self.wanted = source;
        if source.is_none() {
            self.current = None;
        }
        changed
    }

    /// Decides for one packet of `from`. `keyframe_start`: the packet starts a picture the
    /// receiver can decode from (always true for audio). `new_layer`: the caller switched
    /// layers within the source at this (keyframe) packet.
    pub fn offer(
        &mut self,
        from: K,
        keyframe_start: bool,
        new_layer: bool,
        src: SourceFields,
    ) -> SinkOffer {
        let Some(wanted) = self.wanted else {
            return SinkOffer::Drop;
        };
        let new_source = if from == wanted && self.current != Some(wanted) {
            if !keyframe_start {
                return SinkOffer::NeedKeyframe;
            }
            self.current = Some(wanted);
            true
        } else if self.current == Some(from) {
            false
        } else {
            return SinkOffer::Drop;
        };
        let new_segment = new_source || new_layer;
        match self.rewriter.rewrite(src, new_segment) {
            Some(rw) => SinkOffer::Write { rw, new_segment },
            None => SinkOffer::Drop,
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

    fn written(o: SinkOffer) -> Rewritten {
        match o {
            SinkOffer::Write { rw, .. } => rw,
            other => panic!("not written: {other:?}"),
        }
    }

    #[test]
    fn a_source_starts_at_its_keyframe_and_the_next_one_continues_the_stream() {
        let t0 = Instant::now();
        let mut sink: Sink<u8> = Sink::new(90_000);
        assert_eq!(
            sink.offer(1, true, false, src(t0, 0, 10, 0)),
            SinkOffer::Drop
        );
        assert!(sink.set_source(Some(1)));
        assert!(!sink.set_source(Some(1)));
        assert_eq!(
            sink.offer(1, false, false, src(t0, 0, 10, 0)),
            SinkOffer::NeedKeyframe
        );
        let a = sink.offer(1, true, false, src(t0, 10, 11, 900));
        assert!(matches!(
            a,
            SinkOffer::Write {
                new_segment: true,
                ..
            }
        ));
        let b = written(sink.offer(1, false, false, src(t0, 43, 12, 3900)));
        assert_eq!(b.seq, written(a).seq + 1);

        // The next source: the old one goes on until the new one's keyframe.
        sink.set_source(Some(2));
        assert_eq!(
            sink.offer(2, false, false, src(t0, 50, 500, 7)),
            SinkOffer::NeedKeyframe
        );
        let c = written(sink.offer(1, false, false, src(t0, 76, 13, 6900)));
        assert_eq!(c.seq, b.seq + 1);
        let d = sink.offer(2, true, false, src(t0, 100, 501, 8));
        assert!(matches!(
            d,
            SinkOffer::Write {
                new_segment: true,
                ..
            }
        ));
        let d = written(d);
        assert_eq!(d.seq, c.seq + 1);
        assert!(d.ts > c.ts, "time goes on across the switch");
        // The old source is dropped now, even at a keyframe.
        assert_eq!(
            sink.offer(1, true, false, src(t0, 110, 14, 9900)),
            SinkOffer::Drop
        );
    }

    #[test]
    fn a_layer_switch_within_the_source_starts_a_segment_and_none_stops_at_once() {
        let t0 = Instant::now();
        let mut sink: Sink<u8> = Sink::new(90_000);
        sink.set_source(Some(1));
        let a = written(sink.offer(1, true, false, src(t0, 0, 100, 0)));
        // The other layer's sequence space: continuous anyway.
        let b = sink.offer(1, true, true, src(t0, 33, 9000, 50_000));
        assert!(matches!(
            b,
            SinkOffer::Write {
                new_segment: true,
                ..
            }
        ));
        assert_eq!(written(b).seq, a.seq + 1);
        sink.set_source(None);
        assert_eq!(
            sink.offer(1, true, false, src(t0, 66, 9001, 53_000)),
            SinkOffer::Drop
        );
        assert_eq!(sink.wanted(), None);
    }
}
