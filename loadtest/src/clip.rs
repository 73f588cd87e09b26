//! Recorded video clips for publishers that must send a real codec: H.264 as hardware
//! encoders, OBS and some browsers publish it.
//!
//! Unlike the synthetic VP8 of [`crate::media::Vp8Source`], an H.264 bitstream cannot be faked
//! cheaply (an SFU, a recorder or a browser has to decode it), so a [`Clip`] holds real access
//! units: an Annex-B byte stream (start codes, SPS/PPS in band before every IDR) split into
//! access units, one per frame. [`Clip::generate_h264`] makes one with `ffmpeg` (libx264,
//! constrained baseline, no B-frames) at test time, so nothing large is committed;
//! [`Clip::from_annexb`] takes any such stream.
//!
//! [`ClipSource`] plays a clip in a loop as [`MediaFrame`]s for the sender. It restarts at the
//! clip's first frame, which is an IDR, so the loop stays decodable; a keyframe request jumps
//! to the clip's next IDR, the closest a recording can come to an encoder's forced keyframe.
//! Clip frames carry no [`crate::media::Stamp`]: receivers count their packets, keyframes and
//! bytes, not frame counters or latency.

use bytes::Bytes;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::media::{MediaFrame, MediaKind};

/// The codec of a [`Clip`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipCodec {
    /// H.264, Annex-B access units, constrained baseline profile (no B-frames).
    H264,
}

/// Why a clip could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    /// `ffmpeg` could not be started or failed.
    #[error("ffmpeg: {0}")]
    Ffmpeg(String),
    /// Reading the clip file failed.
    #[error("reading the clip: {0}")]
    Io(#[from] std::io::Error),
    /// The bitstream is not what a WebRTC H.264 publisher may send.
    #[error("not a usable H.264 clip: {0}")]
    Invalid(String),
}

/// NAL unit types this module cares about (ITU-T H.264 Table 7-1).
const NAL_SLICE: u8 = 1;
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
/// `profile_idc` of the baseline profile; browsers decode (constrained) baseline everywhere.
const PROFILE_BASELINE: u8 = 66;

/// One access unit of a clip.
#[derive(Debug, Clone)]
struct ClipFrame {
    /// Annex-B bytes (start codes included).
    data: Bytes,
    /// Contains an IDR slice.
    keyframe: bool,
}

/// A decodable video clip held in memory; cheap to clone.
#[derive(Debug, Clone)]
pub struct Clip {
    codec: ClipCodec,
    fps: u32,
    frames: Arc<[ClipFrame]>,
}

/// What [`Clip::generate_h264`] asks ffmpeg for.
#[derive(Debug, Clone)]
pub struct H264ClipSpec {
    /// Picture size (default 640×360).
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Frame rate (default 30).
    pub fps: u32,
    /// Target bitrate in bit/s (default 1 000 000); x264 holds it within a few percent over
    /// whole seconds.
    pub bitrate_bps: u32,
    /// Clip length (default 4 s); the source loops it.
    pub seconds: u32,
    /// An IDR every this many frames (default 60: 2 s at 30 fps).
    pub keyframe_interval: u32,
}

impl Default for H264ClipSpec {
    fn default() -> Self {
        H264ClipSpec {
            width: 640,
            height: 360,
            fps: 30,
            bitrate_bps: 1_000_000,
            seconds: 4,
            keyframe_interval: 60,
        }
    }
}

impl Clip {
    /// Encode `testsrc2` (a moving test picture) with ffmpeg's libx264 into `dir` and load
    /// it. Needs `ffmpeg` on the PATH (`scripts/test.sh` installs it).
    pub fn generate_h264(dir: &Path, spec: &H264ClipSpec) -> Result<Clip, ClipError> {
        let path = dir.join(format!(
            "clip-{}x{}-{}fps-{}bps.h264",
            spec.width, spec.height, spec.fps, spec.bitrate_bps
        ));
        let rate = spec.bitrate_bps.to_string();
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!(
                "testsrc2=size={}x{}:rate={}",
                spec.width, spec.height, spec.fps
            ))
            .args(["-t", &spec.seconds.to_string()])
            .args(["-c:v", "libx264", "-profile:v", "baseline", "-level", "3.1"])
            .args(["-pix_fmt", "yuv420p", "-bf", "0", "-tune", "zerolatency"])
            .args([
                "-g",
                &spec.keyframe_interval.to_string(),
                "-sc_threshold",
                "0",
            ])
            .args(["-b:v", &rate, "-maxrate", &rate])
            .args(["-bufsize", &(spec.bitrate_bps / 2).to_string()])
            .args(["-f", "h264"])
            .arg(&path)
            .output()
            .map_err(|e| ClipError::Ffmpeg(format!("cannot run ffmpeg: {e}")))?;
        if !out.status.success() {
            return Err(ClipError::Ffmpeg(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ));
        }
        let bytes = std::fs::read(&path)?;
        Clip::from_annexb(ClipCodec::H264, &bytes, spec.fps)
    }

    /// Split an Annex-B H.264 stream into access units. The stream must start with an IDR
    /// access unit carrying SPS and PPS, and be baseline profile (which has no B-frames).
    pub fn from_annexb(codec: ClipCodec, stream: &[u8], fps: u32) -> Result<Clip, ClipError> {
        let frames = split_access_units(stream);
        let first = frames
            .first()
            .ok_or_else(|| ClipError::Invalid("no access unit".into()))?;
        if !first.keyframe {
            return Err(ClipError::Invalid("does not start with an IDR".into()));
        }
        let sps = nal_units(&first.data)
            .find(|n| n.first().is_some_and(|h| h & 0x1f == NAL_SPS))
            .ok_or_else(|| ClipError::Invalid("no SPS before the first IDR".into()))?;
        let profile = sps.get(1).copied().unwrap_or(0);
        if profile != PROFILE_BASELINE {
            return Err(ClipError::Invalid(format!(
                "profile_idc {profile}, browsers need (constrained) baseline, 66"
            )));
        }
        Ok(Clip {
            codec,
            fps: fps.clamp(1, 240),
            frames: frames.into(),
        })
    }

    /// The clip's codec.
    pub fn codec(&self) -> ClipCodec {
        self.codec
    }

    /// Frames in one pass of the clip.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True for a clip without frames (never, for a clip that loaded).
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// IDR access units in one pass.
    pub fn keyframes(&self) -> usize {
        self.frames.iter().filter(|f| f.keyframe).count()
    }

    /// Frame rate the clip plays at.
    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// Average bitrate of one pass, bit/s.
    pub fn bitrate_bps(&self) -> u64 {
        let bytes: usize = self.frames.iter().map(|f| f.data.len()).sum();
        (bytes as u64 * 8 * u64::from(self.fps)) / (self.frames.len().max(1) as u64)
    }

    /// The Annex-B bytes of frame `i` (one pass).
    pub fn frame(&self, i: usize) -> Option<&Bytes> {
        self.frames.get(i).map(|f| &f.data)
    }
}

/// Plays a [`Clip`] in a loop.
#[derive(Debug, Clone)]
pub struct ClipSource {
    clip: Clip,
    next: usize,
    seq: u64,
    key_wanted: bool,
}

impl ClipSource {
    /// A source starting at the clip's first frame (an IDR).
    pub fn new(clip: Clip) -> Self {
        ClipSource {
            clip,
            next: 0,
            seq: 0,
            key_wanted: false,
        }
    }

    /// Make the next frame an IDR: the clip's next one (or its start, if none follows).
    pub fn force_keyframe(&mut self) {
        self.key_wanted = true;
    }

    /// Frame interval (1 / fps).
    pub fn frame_duration(&self) -> Duration {
        Duration::from_secs(1) / self.clip.fps
    }

    /// The next access unit.
    pub fn next_frame(&mut self) -> MediaFrame {
        let frames = &self.clip.frames;
        if self.key_wanted {
            self.key_wanted = false;
            self.next = (self.next..frames.len())
                .find(|&i| frames[i].keyframe)
                .unwrap_or(0);
        }
        if self.next >= frames.len() {
            self.next = 0;
        }
        let f = &frames[self.next];
        self.next += 1;
        let seq = self.seq;
        self.seq += 1;
        MediaFrame {
            kind: MediaKind::Video,
            data: f.data.clone(),
            duration: self.frame_duration(),
            seq,
            keyframe: f.keyframe,
        }
    }
}

/// The NAL units of an Annex-B buffer, without their start codes.
pub fn nal_units(stream: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&s| {
            // The next start code, with a 4-byte code's leading zero and trailing zeros
            // (trailing_zero_8bits) belonging to neither unit.
            let mut e = s - 3;
            while e > 0 && stream[e - 1] == 0 {
                e -= 1;
            }
            e
        })
        .chain(std::iter::once(stream.len()))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .filter(|(s, e)| e > s)
        .map(move |(s, e)| &stream[s..e])
}

/// Group NAL units into access units (H.264 §7.4.1.2.3): a new one starts with an AUD, SEI,
/// SPS or PPS after a picture's slices, or with a slice whose `first_mb_in_slice` is 0.
fn split_access_units(stream: &[u8]) -> Vec<ClipFrame> {
    let mut frames = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut has_slice = false;
    let mut keyframe = false;
    for nal in nal_units(stream) {
        let t = nal[0] & 0x1f;
        let slice = t == NAL_SLICE || t == NAL_IDR;
        // first_mb_in_slice is ue(v) at the start of the slice header: 0 is the single bit 1.
        let first_slice = slice && nal.get(1).is_some_and(|b| b & 0x80 != 0);
        let starts_au = matches!(t, 6..=9 | 14..=18) || first_slice;
        if has_slice && starts_au {
            frames.push(ClipFrame {
                data: Bytes::from(std::mem::take(&mut cur)),
                keyframe,
            });
            has_slice = false;
            keyframe = false;
        }
        cur.extend_from_slice(&[0, 0, 0, 1]);
        cur.extend_from_slice(nal);
        has_slice |= slice;
        keyframe |= t == NAL_IDR;
    }
    if has_slice {
        frames.push(ClipFrame {
            data: Bytes::from(cur),
            keyframe,
        });
    }
    frames
}

/// Whether an H.264 RTP payload (RFC 6184) starts a keyframe: an IDR is counted once, at its
/// parameter sets (a STAP-A with an SPS, or a single SPS), which WebRTC senders and x264 put
/// before every IDR. `None` for any other packet.
pub fn h264_keyframe_start(payload: &[u8]) -> Option<bool> {
    let header = *payload.first()?;
    match header & 0x1f {
        NAL_SPS => Some(true),
        24 => {
            // STAP-A: 16-bit sizes, then NAL units.
            let mut i = 1;
            let mut key = false;
            while let Some(len) = payload.get(i..i + 2) {
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                let t = payload.get(i + 2).map(|h| h & 0x1f);
                key |= matches!(t, Some(NAL_SPS) | Some(NAL_IDR));
                i += 2 + len;
            }
            key.then_some(true)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny hand-made stream: SPS, PPS, IDR; then two P frames, one in two slices.
    fn stream() -> Vec<u8> {
        let mut s = Vec::new();
        for nal in [
            &[0x67, 66, 0xc0, 0x1f, 0xaa][..],
            &[0x68, 0xce, 0x3c, 0x80],
            &[0x65, 0x88, 0x84, 0x00],
            &[0x41, 0x9a, 0x01],
            &[0x41, 0x9a, 0x02],
            &[0x41, 0x12, 0x03], // first_mb_in_slice != 0: same picture
        ] {
            s.extend_from_slice(&[0, 0, 0, 1]);
            s.extend_from_slice(nal);
        }
        s
    }

    #[test]
    fn access_units_are_split_at_first_slices() {
        let clip = Clip::from_annexb(ClipCodec::H264, &stream(), 30).expect("clip");
        assert_eq!(clip.len(), 3);
        assert_eq!(clip.keyframes(), 1);
        assert_eq!(nal_units(clip.frame(0).expect("f0")).count(), 3);
        assert_eq!(nal_units(clip.frame(2).expect("f2")).count(), 2);
        let mut src = ClipSource::new(clip);
        let keys: Vec<bool> = (0..5).map(|_| src.next_frame().keyframe).collect();
        assert_eq!(keys, [true, false, false, true, false]);
        src.force_keyframe();
        assert!(src.next_frame().keyframe);
    }

    #[test]
    fn high_profile_and_headless_streams_are_refused() {
        let mut high = stream();
        high[5] = 100;
        let e = Clip::from_annexb(ClipCodec::H264, &high, 30).unwrap_err();
        assert!(e.to_string().contains("profile_idc 100"), "{e}");
        let p_only = [0, 0, 0, 1, 0x41, 0x9a, 0x01];
        assert!(Clip::from_annexb(ClipCodec::H264, &p_only, 30).is_err());
        assert!(Clip::from_annexb(ClipCodec::H264, &[], 30).is_err());
    }

    #[test]
    fn keyframe_starts_in_rtp_payloads() {
        let stap = [24, 0, 2, 0x67, 66, 0, 2, 0x68, 0xce];
        assert_eq!(h264_keyframe_start(&stap), Some(true));
        assert_eq!(h264_keyframe_start(&[0x67, 66]), Some(true));
        assert_eq!(h264_keyframe_start(&[0x41, 0x9a]), None);
        assert_eq!(h264_keyframe_start(&[24, 0, 200]), None);
        assert_eq!(h264_keyframe_start(&[]), None);
    }
}
