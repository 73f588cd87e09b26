//! `TrackIn`: one published track (a microphone, a camera, a screen) and its simulcast layers,
//! with the list of peers subscribed to it. Owned by the room.

use std::time::{Duration, Instant};

use str0m::media::{Mid, Rid};

use crate::event::TrackInfo;
use crate::ids::PeerId;
use crate::keyframe::KeyframeThrottle;

/// One encoding of a track: the whole track without simulcast, or one simulcast layer.
#[derive(Debug)]
pub(crate) struct LayerIn {
    pub rid: Option<Rid>,
    /// The publisher is sending it (not reported paused by str0m).
    pub active: bool,
    pub throttle: KeyframeThrottle,
    pub packets: u64,
}

#[derive(Debug)]
pub(crate) struct TrackIn {
    pub info: TrackInfo,
    /// The publisher's m-line.
    pub mid: Mid,
    /// Layers from lowest to highest quality.
    pub layers: Vec<LayerIn>,
    pub subscribers: Vec<PeerId>,
}

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

    /// A packet of `layer` arrived.
    pub fn on_packet(&mut self, layer: usize) {
        if let Some(l) = self.layers.get_mut(layer) {
            l.packets += 1;
            l.active = true;
        }
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
    }
}

impl LayerIn {
    fn new(rid: Option<Rid>, keyframe_interval: Duration) -> Self {
        LayerIn {
            rid,
            active: false,
            throttle: KeyframeThrottle::new(keyframe_interval),
            packets: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{PeerId, TrackId};
    use crate::role::{TrackKind, TrackSource};

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
        let q = t.layer_of(Some(Rid::from("q")), Duration::ZERO);
        t.on_packet(q);
        assert_eq!(t.best_layer(), Some(0));
        let f = t.layer_of(Some(Rid::from("f")), Duration::ZERO);
        t.on_packet(f);
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
}
