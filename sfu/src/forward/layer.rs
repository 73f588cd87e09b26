//! Keyframe-gated layer selection for one subscription.
//!
//! A simulcast publisher sends the same picture as several independent streams (layers). A
//! subscriber gets exactly one of them. Switching is only possible where the new layer starts a
//! keyframe: until then the old layer keeps flowing, so a switch never shows a broken picture.
//! Who decides the *target* layer is outside this struct (for now the best layer the publisher
//! sends; the bandwidth allocator plugs in here).

/// What to do with one packet of the track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Forward it. `new_segment` is true for the first packet after a (re)start or switch.
    Forward {
        /// The packet starts a new rewrite segment.
        new_segment: bool,
    },
    /// Drop it.
    Drop,
    /// Drop it; the target layer needs a keyframe before the switch can happen.
    DropNeedKeyframe,
}

/// The layer state of one subscription.
#[derive(Debug, Clone)]
pub struct LayerSelector {
    current: Option<usize>,
    target: Option<usize>,
    /// Video must switch at keyframes; audio can start anywhere.
    keyframe_gated: bool,
}

impl LayerSelector {
    /// A selector that forwards nothing until a target is set.
    pub fn new(keyframe_gated: bool) -> Self {
        LayerSelector {
            current: None,
            target: None,
            keyframe_gated,
        }
    }

    /// The layer being forwarded now.
    pub fn current(&self) -> Option<usize> {
        self.current
    }

    /// The layer wanted.
    pub fn target(&self) -> Option<usize> {
        self.target
    }

    /// Sets the wanted layer; `None` pauses the subscription at once. A step down also stops
    /// the current layer at once: it no longer fits the link, and flooding a congested link
    /// while waiting for the lower layer's keyframe would delay everything behind it. A step up
    /// keeps the current layer until the new one's keyframe.
    pub fn set_target(&mut self, target: Option<usize>) {
        let down = match (target, self.current) {
            (None, _) => true,
            (Some(t), Some(c)) => t < c,
            _ => false,
        };
        self.target = target;
        if down {
            self.current = None;
        }
    }

    /// Stops forwarding now and resumes at the target's next keyframe (the link is congested).
    pub fn interrupt(&mut self) {
        self.current = None;
    }

    /// Decides for one packet of `layer`.
    pub fn select(&mut self, layer: usize, keyframe_start: bool) -> Selection {
        let Some(target) = self.target else {
            return Selection::Drop;
        };
        if self.current == Some(target) {
            return if layer == target {
                Selection::Forward { new_segment: false }
            } else {
                Selection::Drop
            };
        }
        if layer == target {
            if keyframe_start || !self.keyframe_gated {
                self.current = Some(target);
                return Selection::Forward { new_segment: true };
            }
            return Selection::DropNeedKeyframe;
        }
        // Waiting for the target's keyframe: keep the old layer going meanwhile.
        if self.current == Some(layer) {
            Selection::Forward { new_segment: false }
        } else {
            Selection::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Selection::*;
    use super::*;

    const KEY: bool = true;
    const DELTA: bool = false;

    #[test]
    fn video_starts_only_at_a_keyframe() {
        let mut s = LayerSelector::new(true);
        assert_eq!(s.select(0, KEY), Drop, "no target yet");
        s.set_target(Some(0));
        assert_eq!(s.select(0, DELTA), DropNeedKeyframe);
        assert_eq!(s.select(0, KEY), Forward { new_segment: true });
        assert_eq!(s.select(0, DELTA), Forward { new_segment: false });
        assert_eq!(s.current(), Some(0));
    }

    #[test]
    fn audio_starts_anywhere() {
        let mut s = LayerSelector::new(false);
        s.set_target(Some(0));
        assert_eq!(s.select(0, DELTA), Forward { new_segment: true });
        assert_eq!(s.select(0, DELTA), Forward { new_segment: false });
    }

    #[test]
    fn upswitch_keeps_the_old_layer_until_the_new_keyframe() {
        let mut s = LayerSelector::new(true);
        s.set_target(Some(0));
        assert_eq!(s.select(0, KEY), Forward { new_segment: true });
        // Bandwidth allows layer 2 now.
        s.set_target(Some(2));
        // Layer 1 is not involved at all.
        assert_eq!(s.select(1, KEY), Drop);
        // Layer 2 delta frames cannot be decoded yet: ask for a keyframe, keep layer 0.
        assert_eq!(s.select(2, DELTA), DropNeedKeyframe);
        assert_eq!(s.select(0, DELTA), Forward { new_segment: false });
        // The keyframe arrives: switch, and layer 0 stops.
        assert_eq!(s.select(2, KEY), Forward { new_segment: true });
        assert_eq!(s.select(0, KEY), Drop);
        assert_eq!(s.select(2, DELTA), Forward { new_segment: false });
        assert_eq!(s.current(), Some(2));
    }

    #[test]
    fn downswitch_stops_the_old_layer_at_once_and_resumes_at_a_keyframe() {
        let mut s = LayerSelector::new(true);
        s.set_target(Some(2));
        s.select(2, KEY);
        // The link cannot carry layer 2 any more: it stops now, not at layer 0's keyframe.
        s.set_target(Some(0));
        assert_eq!(s.current(), None);
        assert_eq!(s.select(2, DELTA), Drop);
        assert_eq!(s.select(0, DELTA), DropNeedKeyframe);
        assert_eq!(s.select(0, KEY), Forward { new_segment: true });
        assert_eq!(s.select(2, DELTA), Drop);
    }

    #[test]
    fn pause_stops_at_once_and_resume_waits_for_a_keyframe() {
        let mut s = LayerSelector::new(true);
        s.set_target(Some(1));
        s.select(1, KEY);
        s.set_target(None);
        assert_eq!(s.select(1, KEY), Drop);
        assert_eq!(s.current(), None);
        s.set_target(Some(1));
        assert_eq!(s.select(1, DELTA), DropNeedKeyframe);
        assert_eq!(s.select(1, KEY), Forward { new_segment: true });
    }
}
