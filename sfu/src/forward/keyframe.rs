//! Keyframe detection on RTP payloads (once per incoming packet, before the fan-out), and the
//! throttle that keeps subscribers' keyframe requests from flooding a publisher.

use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::rtp::Vp8Descriptor;

/// What the SFU learns from a video payload's codec header.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PayloadInfo {
    /// The packet starts a keyframe: a subscriber can start (or switch) decoding here.
    pub keyframe_start: bool,
    /// The parsed VP8 descriptor, for picture-id rewriting.
    pub vp8: Option<Vp8Descriptor>,
}

pub(crate) fn inspect(codec: Codec, payload: &[u8]) -> PayloadInfo {
    match codec {
        Codec::Vp8 => match Vp8Descriptor::parse(payload) {
            Ok(d) => PayloadInfo {
                keyframe_start: d.starts_keyframe(payload),
                vp8: Some(d),
            },
            Err(_) => PayloadInfo::default(),
        },
        Codec::Vp9 => PayloadInfo {
            keyframe_start: vp9_keyframe_start(payload),
            vp8: None,
        },
        Codec::H264 => PayloadInfo {
            keyframe_start: h264_keyframe_start(payload),
            vp8: None,
        },
        // Audio decodes from any packet.
        c if c.is_audio() => PayloadInfo {
            keyframe_start: true,
            vp8: None,
        },
        _ => PayloadInfo::default(),
    }
}

/// VP9 payload descriptor (RFC 9628): I|P|L|F|B|E|V|Z. A keyframe starts where B (start of
/// frame) is set and P (inter-picture predicted) is not, on spatial layer 0.
fn vp9_keyframe_start(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    let inter = b0 & 0x40 != 0;
    let begin = b0 & 0x08 != 0;
    if inter || !begin {
        return false;
    }
    let has_pid = b0 & 0x80 != 0;
    let has_layers = b0 & 0x20 != 0;
    if !has_layers {
        return true;
    }
    let mut i = 1;
    if has_pid {
        match payload.get(1) {
            Some(p) if p & 0x80 != 0 => i += 2,
            Some(_) => i += 1,
            None => return false,
        }
    }
    // Layer indices: TID(3) U(1) SID(3) D(1).
    payload.get(i).is_some_and(|l| (l >> 1) & 0x07 == 0)
}

/// H.264 (RFC 6184): an IDR slice or an SPS starts a keyframe, alone, inside a STAP-A, or as
/// the first fragment of an FU-A.
fn h264_keyframe_start(payload: &[u8]) -> bool {
    let is_key = |nal_type: u8| nal_type == 5 || nal_type == 7;
    let Some(&b0) = payload.first() else {
        return false;
    };
    match b0 & 0x1f {
        24 => {
            // STAP-A: 16-bit size, then the NAL unit.
            let mut i = 1;
            while i + 2 < payload.len() {
                let size = u16::from_be_bytes([payload[i], payload[i + 1]]) as usize;
                if size == 0 {
                    return false;
                }
                if is_key(payload[i + 2] & 0x1f) {
                    return true;
                }
                i += 2 + size;
            }
            false
        }
        28 => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && is_key(fu & 0x1f)),
        t => is_key(t),
    }
}

/// Minimum spacing of keyframe requests sent upstream for one layer of one track.
#[derive(Debug, Clone)]
pub(crate) struct KeyframeThrottle {
    interval: Duration,
    last: Option<Instant>,
}

impl KeyframeThrottle {
    pub fn new(interval: Duration) -> Self {
        KeyframeThrottle {
            interval,
            last: None,
        }
    }

    /// Whether a request may go out now; records it if so.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.interval => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframe_and_interframe() {
        // X=1, S=1, PID=0; I=1 (15-bit picture id 0x8123); then VP8 header byte with P=0.
        let key = [0x90, 0x80, 0x81, 0x23, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        let inter = [0x90, 0x80, 0x81, 0x24, 0x11, 0x02, 0x00];
        let k = inspect(Codec::Vp8, &key);
        assert!(k.keyframe_start);
        assert_eq!(k.vp8.unwrap().picture_id(), Some(0x0123));
        assert!(!inspect(Codec::Vp8, &inter).keyframe_start);
        // A continuation packet (S=0) never starts a keyframe.
        assert!(!inspect(Codec::Vp8, &[0x80, 0x80, 0x81, 0x23, 0x10]).keyframe_start);
        assert!(!inspect(Codec::Vp8, &[]).keyframe_start);
    }

    #[test]
    fn h264_keyframe_forms() {
        assert!(h264_keyframe_start(&[0x65, 0x88])); // IDR
        assert!(h264_keyframe_start(&[0x67, 0x42])); // SPS
        assert!(!h264_keyframe_start(&[0x41, 0x9a])); // non-IDR slice
        // STAP-A holding SPS.
        assert!(h264_keyframe_start(&[
            0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68
        ]));
        // FU-A start of IDR, and a middle fragment.
        assert!(h264_keyframe_start(&[0x7c, 0x85, 0x00]));
        assert!(!h264_keyframe_start(&[0x7c, 0x05, 0x00]));
        // Malformed STAP-A with a zero size terminates.
        assert!(!h264_keyframe_start(&[0x78, 0x00, 0x00, 0x00]));
    }

    #[test]
    fn vp9_keyframe_forms() {
        assert!(vp9_keyframe_start(&[0x08])); // B=1, P=0, no layers
        assert!(!vp9_keyframe_start(&[0x48])); // inter-predicted
        assert!(!vp9_keyframe_start(&[0x00])); // not the frame start
        // I=1 (7-bit pid), L=1, SID=1: not the base spatial layer.
        assert!(!vp9_keyframe_start(&[0xa8, 0x05, 0x02]));
        assert!(vp9_keyframe_start(&[0xa8, 0x05, 0x00]));
    }

    #[test]
    fn audio_always_decodable() {
        assert!(inspect(Codec::Opus, &[0xf8]).keyframe_start);
    }

    #[test]
    fn throttle_spaces_requests() {
        let t0 = Instant::now();
        let mut t = KeyframeThrottle::new(Duration::from_millis(300));
        assert!(t.allow(t0));
        assert!(!t.allow(t0 + Duration::from_millis(299)));
        assert!(t.allow(t0 + Duration::from_millis(300)));
    }
}
