//! `RecentKeyframe`: a layer's latest keyframe and the packets after it, for a short while.
//!
//! A viewer can only start decoding at a keyframe, and keyframe requests to a publisher are
//! throttled per layer (a join storm must not turn a lesson into a stream of keyframes). Without
//! this, a viewer who subscribes just after a keyframe went by waits for the throttle to let the
//! next request out: on average half the throttle interval, 150 ms, before its first picture,
//! in the storms where most viewers join. With it, a subscription that needs a keyframe within
//! the window after one starts from the copy at once (the keyframe and the frames that depend
//! on it, replayed in order), and only a subscription after the window asks the publisher, when
//! the throttle has let go. The replay is at most one window of the layer (a few frames), sent
//! through the subscriber's pacer like any other packet.

use std::time::{Duration, Instant};

use crate::forward::keyframe::PayloadInfo;
use crate::forward::packet::Packet;

/// The most packets kept per layer: a 300 ms window of a 4 Mbit/s layer is about 120 packets
/// (a huge keyframe several hundred), the 2.5 s GOP of a source that takes no keyframe requests
/// about 1,000. Beyond this the copy is dropped (no replay: the next keyframe).
const MAX_PACKETS: usize = 2048;

#[derive(Debug, Default)]
pub(crate) struct RecentKeyframe {
    /// When the kept keyframe arrived; `None`: nothing replayable.
    since: Option<Instant>,
    /// Its RTP timestamp: an H.264 keyframe can start twice (its SPS, then its IDR slice).
    key_ts: u32,
    packets: Vec<(Packet, PayloadInfo)>,
}

impl RecentKeyframe {
    /// Keeps `p` if it starts a keyframe or follows the kept one within `window`.
    pub fn on_packet(&mut self, p: &Packet, info: &PayloadInfo, window: Duration) {
        if info.keyframe_start && !(self.since.is_some() && p.ts == self.key_ts) {
            self.packets.clear();
            self.since = Some(p.arrival);
            self.key_ts = p.ts;
        }
        let Some(since) = self.since else {
            return;
        };
        if p.arrival.saturating_duration_since(since) > window || self.packets.len() >= MAX_PACKETS
        {
            self.forget();
            return;
        }
        self.packets.push((p.clone(), *info));
    }

    /// The keyframe and what followed it, if it arrived within `window` of `now`.
    pub fn replayable(&self, now: Instant, window: Duration) -> Option<&[(Packet, PayloadInfo)]> {
        let since = self.since?;
        (now.saturating_duration_since(since) <= window && !self.packets.is_empty())
            .then_some(self.packets.as_slice())
    }

    fn forget(&mut self) {
        self.since = None;
        self.packets = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TrackId;
    use str0m::format::{Codec, CodecSpec, FormatParams, PayloadParams};
    use str0m::media::Frequency;

    fn packet(t0: Instant, ms: u64, seq: u64) -> Packet {
        let spec = CodecSpec {
            codec: Codec::Vp8,
            clock_rate: Frequency::NINETY_KHZ,
            channels: None,
            format: FormatParams::default(),
        };
        Packet {
            track: TrackId(1),
            params: PayloadParams::new(96.into(), None, spec),
            seq,
            ts: seq as u32 * 3000,
            marker: true,
            payload: vec![0u8; 10].into(),
            audio_level: None,
            voice_activity: None,
            video_orientation: None,
            arrival: t0 + Duration::from_millis(ms),
        }
    }

    const KEY: PayloadInfo = PayloadInfo {
        keyframe_start: true,
        vp8: None,
    };
    const DELTA: PayloadInfo = PayloadInfo {
        keyframe_start: false,
        vp8: None,
    };

    #[test]
    fn keeps_a_keyframe_and_its_followers_for_the_window_only() {
        let t0 = Instant::now();
        let w = Duration::from_millis(300);
        let mut r = RecentKeyframe::default();
        // Deltas before any keyframe: nothing to start from.
        r.on_packet(&packet(t0, 0, 1), &DELTA, w);
        assert!(r.replayable(t0, w).is_none());
        r.on_packet(&packet(t0, 10, 2), &KEY, w);
        r.on_packet(&packet(t0, 43, 3), &DELTA, w);
        let kept = r.replayable(t0 + Duration::from_millis(50), w).unwrap();
        assert_eq!(kept.iter().map(|(p, _)| p.seq).collect::<Vec<_>>(), [2, 3]);
        assert!(kept[0].1.keyframe_start);
        // Past the window it is not offered, and the next packet drops the copy.
        assert!(r.replayable(t0 + Duration::from_millis(311), w).is_none());
        r.on_packet(&packet(t0, 320, 4), &DELTA, w);
        assert!(r.packets.is_empty());
        assert!(r.replayable(t0 + Duration::from_millis(320), w).is_none());
        // The next keyframe starts a new copy.
        r.on_packet(&packet(t0, 400, 5), &KEY, w);
        let kept = r.replayable(t0 + Duration::from_millis(400), w).unwrap();
        assert_eq!(kept.len(), 1);
    }

    #[test]
    fn an_h264_keyframe_starting_twice_is_kept_whole() {
        // SPS (a keyframe start), PPS, then the IDR slice (a keyframe start again), one frame.
        let t0 = Instant::now();
        let w = Duration::from_millis(300);
        let mut r = RecentKeyframe::default();
        let mut sps = packet(t0, 0, 1);
        let (mut pps, mut idr) = (packet(t0, 0, 2), packet(t0, 0, 3));
        sps.ts = 9000;
        pps.ts = 9000;
        idr.ts = 9000;
        r.on_packet(&sps, &KEY, w);
        r.on_packet(&pps, &DELTA, w);
        r.on_packet(&idr, &KEY, w);
        let kept = r.replayable(t0, w).unwrap();
        assert_eq!(
            kept.iter().map(|(p, _)| p.seq).collect::<Vec<_>>(),
            [1, 2, 3]
        );
    }

    #[test]
    fn a_keyframe_too_big_to_keep_is_not_replayed() {
        let t0 = Instant::now();
        let w = Duration::from_millis(300);
        let mut r = RecentKeyframe::default();
        r.on_packet(&packet(t0, 0, 0), &KEY, w);
        for i in 1..=MAX_PACKETS as u64 {
            r.on_packet(&packet(t0, 1, i), &DELTA, w);
        }
        assert!(r.replayable(t0 + Duration::from_millis(2), w).is_none());
        assert!(r.packets.len() <= MAX_PACKETS);
    }
}
