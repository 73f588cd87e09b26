//! `TrackIn`: one published track (a microphone, a camera, a screen) and its simulcast layers,
//! with the list of peers subscribed to it. Owned by the room.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use str0m::media::{Mid, Rid};

use crate::bandwidth::rate::RateMeter;
use crate::event::TrackInfo;
use crate::forward::keyframe::KeyframeThrottle;
use crate::forward::recent::RecentKeyframe;
use crate::ids::PeerId;
use crate::lesson::role::TrackKind;

/// A layer that nobody wants stays on this long before the publisher is told to pause it
/// (dynacast): a subscriber's estimate dipping for a moment must not stop an encoder.
pub(crate) const DYNACAST_HOLD: Duration = Duration::from_secs(5);

/// One encoding of a track: the whole track without simulcast, or one simulcast layer.
#[derive(Debug)]
pub(crate) struct LayerIn {
    pub rid: Option<Rid>,
    /// The publisher is sending it (not reported paused by str0m).
    pub active: bool,
    pub throttle: KeyframeThrottle,
    /// Its latest keyframe and what followed, for subscriptions that start just after it.
    pub recent: RecentKeyframe,
    pub packets: u64,
    /// What it costs on the wire (`fanout::wire_bytes`).
    pub meter: RateMeter,
    /// Its RTP payload alone: the unit of str0m's estimate and pacer.
    pub payload: RateMeter,
    /// Its rate the last time it flowed steadily (a full second, packets still coming), for
    /// planning while it is paused or restarting: an encoder layer that was just switched back
    /// on sends a fraction of its rate for a moment, and a layer that stopped fades out of the
    /// meter over a second; neither is what the layer costs.
    pub last_bps: u64,
    /// Since when no subscriber wants this layer.
    pub unwanted_since: Option<Instant>,
}

#[derive(Debug)]
pub(crate) struct TrackIn {
    pub info: TrackInfo,
    /// The publisher's m-line.
    pub mid: Mid,
    /// Layers from lowest to highest quality.
    pub layers: Vec<LayerIn>,
    pub subscribers: Vec<PeerId>,
    /// The highest layer each subscriber would like, for dynacast.
    pub wants: HashMap<PeerId, usize>,
    /// The layer the room's recorder follows, if it records this track.
    pub recorder_wants: Option<usize>,
    /// Layers the publisher was last told to send (`None`: never told, all on).
    pub published: Option<Vec<bool>>,
    /// Highest layer the publisher's uplink allows (school budget), if capped.
    pub uplink_max: Option<usize>,
    /// The publisher answers keyframe requests (it negotiated PLI or FIR).
    pub keyframes_on_request: bool,
}

/// How long a layer of a publisher that takes no keyframe requests keeps its latest keyframe
/// and what followed: a GOP of the 1-2 s that RTMP encoders are told to use.
const DEAF_REPLAY_WINDOW: Duration = Duration::from_millis(2500);

/// Quality rank of well-known rid names; the web client uses q/h/f (quarter, half, full).
fn rid_rank(rid: &str) -> Option<u8> {
    match rid {
        "q" | "l" | "lo" | "low" | "quarter" => Some(0),
        "h" | "m" | "mid" | "medium" | "half" => Some(1),
        "f" | "hi" | "high" | "full" => Some(2),
        _ => None,
    }
}

impl TrackIn {
    pub fn new(info: TrackInfo, mid: Mid, rids: &[Rid], keyframe_interval: Duration) -> Self {
        let mut rids: Vec<Rid> = rids.to_vec();
        // Known names sort by quality; otherwise keep the publisher's order (the convention of
        // listing encodings from low to high).
        if rids.iter().all(|r| rid_rank(r).is_some()) {
            rids.sort_by_key(|r| rid_rank(r));
        }
        let mut layers: Vec<LayerIn> = rids
            .into_iter()
            .map(|rid| LayerIn::new(Some(rid), keyframe_interval))
            .collect();
        if layers.is_empty() {
            layers.push(LayerIn::new(None, keyframe_interval));
        }
        TrackIn {
            info,
            mid,
            layers,
            subscribers: Vec::new(),
            wants: HashMap::new(),
            recorder_wants: None,
            published: None,
            uplink_max: None,
            keyframes_on_request: true,
        }
    }

    /// How long its layers keep their latest keyframe for new viewers: one keyframe-request
    /// interval, or a whole GOP when the publisher cannot be asked for a keyframe.
    pub fn replay_window(&self, keyframe_interval: Duration) -> Duration {
        if self.keyframes_on_request {
            keyframe_interval
        } else {
            DEAF_REPLAY_WINDOW.max(keyframe_interval)
        }
    }

    /// The layer index of a packet's rid, adding a layer for a rid not announced in SDP (so a
    /// misbehaving publisher still gets forwarded rather than silently dropped).
    pub fn layer_of(&mut self, rid: Option<Rid>, keyframe_interval: Duration) -> usize {
        if let Some(i) = self.layers.iter().position(|l| l.rid == rid) {
            return i;
        }
        if rid.is_none() || self.layers.len() >= 8 {
            return 0;
        }
        self.layers.push(LayerIn::new(rid, keyframe_interval));
        self.layers.len() - 1
    }

    /// A packet of `layer` arrived, with `payload` bytes of RTP payload, that costs `wire`
    /// bytes on a subscriber's link (`fanout::wire_bytes`). Returns whether the layer started
    /// flowing with it (its first packet, or the first after a pause).
    pub fn on_packet(&mut self, layer: usize, now: Instant, payload: usize, wire: usize) -> bool {
        let Some(l) = self.layers.get_mut(layer) else {
            return false;
        };
        l.packets += 1;
        let started = !l.active;
        l.active = true;
        l.meter.add(now, wire);
        l.payload.add(now, payload);
        started
    }

    /// Wire and payload rates of `layer` over the last second (zeros if it is not flowing).
    pub fn layer_rates(&mut self, layer: usize, now: Instant) -> (u64, u64) {
        self.layers
            .get_mut(layer)
            .map_or((0, 0), |l| (l.meter.bps(now), l.payload.bps(now)))
    }

    /// What each layer costs on the wire, lowest first: measured while it flows steadily, else
    /// (restarting, stopping, paused) at least its last steady rate, else a nominal rate for
    /// its kind and rank. Kept increasing so the allocator's steps are positive.
    pub fn layer_bps(&mut self, now: Instant) -> Vec<u64> {
        let kind = self.info.kind;
        let n = self.layers.len();
        let mut out = Vec::with_capacity(n);
        let mut floor = 0;
        for (i, l) in self.layers.iter_mut().enumerate() {
            let measured = l.meter.bps(now);
            let steady = measured > 0 && l.meter.steady(now);
            if steady {
                l.last_bps = measured;
            }
            let nominal = match kind {
                // Opus at 32 kbit/s in 50 packets a second, with headers.
                TrackKind::Audio => 64_000,
                TrackKind::Video => nominal_video_bps(i, n),
            };
            let bps = if steady {
                measured
            } else if l.last_bps > 0 {
                l.last_bps.max(measured)
            } else if measured > 0 {
                measured
            } else {
                nominal
            };
            floor = bps.max(floor + 1);
            out.push(floor);
        }
        out
    }

    /// The layers the publisher should send, given what subscribers want and its uplink cap:
    /// the lowest always (quick fallback), the rest while wanted within `DYNACAST_HOLD`.
    pub fn wanted_layers(&mut self, now: Instant) -> Vec<bool> {
        let top_wanted = self
            .wants
            .values()
            .copied()
            .chain(self.recorder_wants)
            .max();
        let cap = self.uplink_max.unwrap_or(usize::MAX);
        let mut on = Vec::with_capacity(self.layers.len());
        for (i, l) in self.layers.iter_mut().enumerate() {
            let wanted = i == 0 || top_wanted.is_some_and(|t| t >= i);
            if wanted {
                l.unwanted_since = None;
            } else if l.unwanted_since.is_none() {
                l.unwanted_since = Some(now);
            }
            let held = l
                .unwanted_since
                .is_some_and(|t| now.saturating_duration_since(t) < DYNACAST_HOLD);
            on.push(i <= cap && (wanted || held));
        }
        on
    }

    pub fn set_paused(&mut self, rid: Option<Rid>, paused: bool) {
        if let Some(l) = self.layers.iter_mut().find(|l| l.rid == rid) {
            l.active = !paused;
        }
    }

    /// The best layer the publisher is sending.
    pub fn best_layer(&self) -> Option<usize> {
        self.layers.iter().rposition(|l| l.active)
    }

    /// Whether a keyframe request for `layer` may go upstream now.
    pub fn allow_keyframe_request(&mut self, layer: usize, now: Instant) -> bool {
        self.layers
            .get_mut(layer)
            .is_some_and(|l| l.throttle.allow(now))
    }

    pub fn rid_of(&self, layer: usize) -> Option<Rid> {
        self.layers.get(layer).and_then(|l| l.rid)
    }

    pub fn remove_subscriber(&mut self, peer: PeerId) {
        self.subscribers.retain(|p| *p != peer);
        self.wants.remove(&peer);
    }
}

impl LayerIn {
    fn new(rid: Option<Rid>, keyframe_interval: Duration) -> Self {
        LayerIn {
            rid,
            active: false,
            throttle: KeyframeThrottle::new(keyframe_interval),
            recent: RecentKeyframe::default(),
            packets: 0,
            meter: RateMeter::default(),
            payload: RateMeter::default(),
            last_bps: 0,
            unwanted_since: None,
        }
    }
}

/// Planning rate of a video layer not measured yet: the web client's simulcast ladder
/// (q 150k, h 500k, f 1.5M), or 500 kbit/s for a single layer (a 360p camera).
fn nominal_video_bps(layer: usize, layers: usize) -> u64 {
    if layers <= 1 {
        return 500_000;
    }
    const LADDER: [u64; 3] = [150_000, 500_000, 1_500_000];
    let from_top = layers - 1 - layer;
    if from_top < LADDER.len() {
        LADDER[LADDER.len() - 1 - from_top]
    } else {
        150_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{PeerId, TrackId};
    use crate::lesson::role::{TrackKind, TrackSource};

    fn info() -> TrackInfo {
        TrackInfo {
            track_id: TrackId(1),
            peer_id: PeerId(1),
            kind: TrackKind::Video,
            source: TrackSource::Camera,
        }
    }

    #[test]
    fn known_rids_sort_low_to_high_and_best_follows_activity() {
        let rids = [Rid::from("f"), Rid::from("q"), Rid::from("h")];
        let mut t = TrackIn::new(info(), Mid::from("1"), &rids, Duration::from_millis(300));
        let names: Vec<String> = t
            .layers
            .iter()
            .map(|l| l.rid.unwrap().to_string())
            .collect();
        assert_eq!(names, ["q", "h", "f"]);
        assert_eq!(t.best_layer(), None, "nothing seen yet");
        let now = Instant::now();
        let q = t.layer_of(Some(Rid::from("q")), Duration::ZERO);
        t.on_packet(q, now, 100, 100);
        assert_eq!(t.best_layer(), Some(0));
        let f = t.layer_of(Some(Rid::from("f")), Duration::ZERO);
        t.on_packet(f, now, 100, 100);
        assert_eq!(t.best_layer(), Some(2));
        t.set_paused(Some(Rid::from("f")), true);
        assert_eq!(t.best_layer(), Some(0));
    }

    #[test]
    fn unknown_rids_keep_publisher_order_and_stray_rids_get_a_layer() {
        let rids = [Rid::from("a"), Rid::from("b")];
        let mut t = TrackIn::new(info(), Mid::from("1"), &rids, Duration::ZERO);
        assert_eq!(t.layer_of(Some(Rid::from("b")), Duration::ZERO), 1);
        assert_eq!(t.layer_of(Some(Rid::from("c")), Duration::ZERO), 2);
        let mut plain = TrackIn::new(info(), Mid::from("1"), &[], Duration::ZERO);
        assert_eq!(plain.layers.len(), 1);
        assert_eq!(plain.layer_of(None, Duration::ZERO), 0);
    }

    #[test]
    fn layer_rates_are_measured_or_nominal_and_increasing() {
        let rids = [Rid::from("q"), Rid::from("h"), Rid::from("f")];
        let mut t = TrackIn::new(info(), Mid::from("1"), &rids, Duration::ZERO);
        let t0 = Instant::now();
        assert_eq!(t.layer_bps(t0), vec![150_000, 500_000, 1_500_000]);
        // h measured at 100 kbit/s (a static scene): still above q.
        for i in 0..100 {
            t.on_packet(1, t0 + Duration::from_millis(10 * i), 125, 125);
        }
        let bps = t.layer_bps(t0 + Duration::from_millis(999));
        assert_eq!(bps[0], 150_000);
        assert!(bps[1] > bps[0] && bps[2] == 1_500_000, "{bps:?}");
    }

    #[test]
    fn a_restarting_or_stopping_layer_is_planned_at_its_steady_rate() {
        let rids = [Rid::from("q"), Rid::from("h"), Rid::from("f")];
        let mut t = TrackIn::new(info(), Mid::from("1"), &rids, Duration::ZERO);
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        // f flows steadily at 1.2 Mbit/s (30 packets of 5000 bytes a second) for 2 s.
        for i in 0..60 {
            t.on_packet(2, ms(i * 33), 5000, 5000);
        }
        let steady = t.layer_bps(ms(1990))[2];
        assert!((1_150_000..=1_250_000).contains(&steady), "{steady}");
        // It stops (dynacast): over the next second the meter fades, the plan does not.
        for m in [2200, 2500, 2800] {
            assert_eq!(t.layer_bps(ms(m))[2], steady, "{m}");
        }
        // Switched back on 10 s later, the encoder ramps up from a fraction of its rate: the
        // plan keeps the steady rate until the layer has run a full second.
        for i in 0..20u64 {
            t.on_packet(2, ms(12_000 + i * 33), 600, 600);
        }
        assert_eq!(t.layer_bps(ms(12_660))[2], steady);
        // A full second at the new rate: that is its rate now (kept above the layer below).
        for i in 20..40u64 {
            t.on_packet(2, ms(12_000 + i * 33), 600, 600);
        }
        let now = t.layer_bps(ms(13_300));
        assert_eq!(now[2], now[1] + 1, "{now:?}");
    }

    #[test]
    fn dynacast_keeps_the_lowest_layer_and_pauses_unwanted_ones_after_a_hold() {
        let rids = [Rid::from("q"), Rid::from("h"), Rid::from("f")];
        let mut t = TrackIn::new(info(), Mid::from("1"), &rids, Duration::ZERO);
        let t0 = Instant::now();
        t.wants.insert(PeerId(7), 2);
        assert_eq!(t.wanted_layers(t0), vec![true, true, true]);
        t.wants.insert(PeerId(7), 0);
        assert_eq!(
            t.wanted_layers(t0 + Duration::from_secs(1)),
            vec![true, true, true]
        );
        let later = t0 + Duration::from_secs(1) + DYNACAST_HOLD;
        assert_eq!(t.wanted_layers(later), vec![true, false, false]);
        // A school's uplink cap keeps the top layer off even when wanted.
        t.wants.insert(PeerId(7), 2);
        t.uplink_max = Some(1);
        assert_eq!(t.wanted_layers(later), vec![true, true, false]);
    }

    #[test]
    fn the_recorder_keeps_the_layer_it_records_wanted_without_a_subscriber() {
        let rids = [Rid::from("q"), Rid::from("h"), Rid::from("f")];
        let mut t = TrackIn::new(info(), Mid::from("1"), &rids, Duration::ZERO);
        let t0 = Instant::now();
        t.recorder_wants = Some(2);
        let later = t0 + Duration::from_secs(1) + DYNACAST_HOLD;
        assert_eq!(t.wanted_layers(t0), vec![true, true, true]);
        assert_eq!(t.wanted_layers(later), vec![true, true, true]);
        // A subscriber leaving does not take the recorder's layer with it.
        t.wants.insert(PeerId(7), 0);
        t.remove_subscriber(PeerId(7));
        assert_eq!(t.wanted_layers(later), vec![true, true, true]);
        t.recorder_wants = None;
        let end = later + Duration::from_secs(1) + DYNACAST_HOLD;
        t.wanted_layers(later);
        assert_eq!(t.wanted_layers(end), vec![true, false, false]);
    }
}
