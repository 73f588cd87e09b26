//! Synthetic Opus and VP8 media that needs no codec library (and, re-exported from the
//! `clip` module, real H.264 clips for publishers that must send it).
//!
//! A load test only needs media that survives an SFU: correctly framed codec bitstreams that
//! the server can packetize, depacketize and classify (keyframe or not), at a realistic rate.
//! Decodable pictures or sound are not needed, so frames are built by hand:
//!
//! * [`OpusSource`] yields one packet every 20 ms (50 packets/s). Each packet is a valid
//!   single-frame Opus packet: TOC byte `0xF8` (config 31 = CELT-only fullband 20 ms, mono,
//!   frame-count code 0) followed by opaque frame bytes, which any Opus parser accepts.
//! * [`Vp8Source`] yields frames at `fps` (default 30). Every frame starts with a VP8 frame
//!   header per RFC 6386 §9.1: a 3-byte frame tag (P bit = inverse keyframe flag, version 0,
//!   show_frame 1, first-partition size), and for keyframes the start code `9d 01 2a` plus
//!   14-bit width and height. A keyframe is sent every `keyframe_interval` frames; frame sizes
//!   are derived from `bitrate_bps` so one frame spans several RTP packets.
//!
//! # Payload layout
//!
//! Directly after the codec header every frame carries a [`Stamp`] of 16 bytes, then filler:
//!
//! ```text
//! Opus:        F8 | seq (u64 BE) | sent_at_us (u64 BE) | filler ...
//! VP8 key:     tag(3) 9d 01 2a w(2 LE) h(2 LE) | seq (u64 BE) | sent_at_us (u64 BE) | filler ...
//! VP8 inter:   tag(3) | seq (u64 BE) | sent_at_us (u64 BE) | filler ...
//! ```
//!
//! `seq` counts frames per source from 0; `sent_at_us` is the wall-clock send time in
//! microseconds since the UNIX epoch. A receiver reads the stamp from the first RTP packet of
//! a frame (Opus: every packet; VP8: the packet with S=1, PID=0, see [`parse_vp8_descriptor`])
//! to count frames and estimate loss from counter gaps and one-way latency (meaningful only
//! when sender and receiver share a clock, e.g. run on one machine).

pub use crate::clip::{Clip, ClipCodec, ClipError, ClipSource, H264ClipSpec, h264_keyframe_start};

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Length of the [`Stamp`] that follows the codec header.
pub const STAMP_LEN: usize = 16;

/// Opus TOC byte: config 31 (CELT-only, fullband, 20 ms), mono, one frame per packet.
pub const OPUS_TOC: u8 = 0xF8;

/// Duration of one Opus packet produced by [`OpusSource`].
pub const OPUS_FRAME_DURATION: Duration = Duration::from_millis(20);

/// The VP8 keyframe start code (RFC 6386 §9.1).
pub const VP8_START_CODE: [u8; 3] = [0x9d, 0x01, 0x2a];

const VP8_TAG_LEN: usize = 3;
const VP8_KEY_HEADER_LEN: usize = VP8_TAG_LEN + 3 + 4;
const OPUS_HEADER_LEN: usize = 1;

/// Audio or video; used to key statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// Opus audio.
    Audio,
    /// VP8 video.
    Video,
}

/// Frame counter and send time carried after the codec header of every synthetic frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stamp {
    /// Per-source frame counter, starting at 0.
    pub seq: u64,
    /// Send time, microseconds since the UNIX epoch.
    pub sent_at_us: u64,
}

impl Stamp {
    /// Serialise into the first [`STAMP_LEN`] bytes of `out` (big-endian).
    pub fn write(&self, out: &mut BytesMut) {
        out.put_u64(self.seq);
        out.put_u64(self.sent_at_us);
    }

    /// Read a stamp from the start of `buf`; `None` if it is too short.
    pub fn read(buf: &[u8]) -> Option<Stamp> {
        let seq = u64::from_be_bytes(buf.get(0..8)?.try_into().ok()?);
        let sent_at_us = u64::from_be_bytes(buf.get(8..16)?.try_into().ok()?);
        Some(Stamp { seq, sent_at_us })
    }

    /// One-way latency in microseconds from the stamp to `arrival_us`. Signed, because with
    /// unsynchronised clocks (sender and receiver on different hosts) it can be negative.
    pub fn latency_us(&self, arrival_us: u64) -> i64 {
        (arrival_us as i128 - self.sent_at_us as i128).clamp(i64::MIN as i128, i64::MAX as i128)
            as i64
    }
}

/// Microseconds since the UNIX epoch of `t` (0 for times before the epoch).
pub fn unix_micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Microseconds since the UNIX epoch, now.
pub fn now_unix_micros() -> u64 {
    unix_micros(SystemTime::now())
}

/// One encoded frame ready for a packetizer.
#[derive(Debug, Clone)]
pub struct MediaFrame {
    /// Audio or video.
    pub kind: MediaKind,
    /// The codec bitstream (codec header + stamp + filler).
    pub data: Bytes,
    /// Media duration of the frame; advances the RTP timestamp.
    pub duration: Duration,
    /// The frame counter written into the stamp.
    pub seq: u64,
    /// Whether this is a VP8 keyframe (always false for audio).
    pub keyframe: bool,
}

/// Settings of [`OpusSource`].
#[derive(Debug, Clone)]
pub struct OpusConfig {
    /// Total packet size in bytes (TOC + stamp + filler); clamped to at least 17 and at most
    /// 1275 (the Opus frame limit). Default 40 bytes = 16 kbit/s.
    pub packet_bytes: usize,
}

impl Default for OpusConfig {
    fn default() -> Self {
        OpusConfig { packet_bytes: 40 }
    }
}

/// Endless source of synthetic 20 ms Opus packets (or of given real ones, in a loop).
#[derive(Debug, Clone)]
pub struct OpusSource {
    packet_bytes: usize,
    seq: u64,
    packets: Option<std::sync::Arc<[Bytes]>>,
}

impl OpusSource {
    /// A new source whose first packet has counter 0.
    pub fn new(config: &OpusConfig) -> Self {
        OpusSource {
            packet_bytes: config.packet_bytes.clamp(OPUS_HEADER_LEN + STAMP_LEN, 1275),
            seq: 0,
            packets: None,
        }
    }

    /// Send these real 20 ms Opus packets in a loop instead (e.g. a tone a recording test
    /// listens for); they carry no [`Stamp`]. An empty list keeps the synthetic packets.
    pub fn with_packets(mut self, packets: std::sync::Arc<[Bytes]>) -> Self {
        self.packets = (!packets.is_empty()).then_some(packets);
        self
    }

    /// Packet interval (20 ms).
    pub fn frame_duration(&self) -> Duration {
        OPUS_FRAME_DURATION
    }

    /// The next packet, stamped with the current wall-clock time.
    pub fn next_frame(&mut self) -> MediaFrame {
        let stamp = Stamp {
            seq: self.seq,
            sent_at_us: now_unix_micros(),
        };
        self.seq += 1;
        if let Some(packets) = &self.packets {
            return MediaFrame {
                kind: MediaKind::Audio,
                data: packets[(stamp.seq % packets.len() as u64) as usize].clone(),
                duration: OPUS_FRAME_DURATION,
                seq: stamp.seq,
                keyframe: false,
            };
        }
        let mut out = BytesMut::with_capacity(self.packet_bytes);
        out.put_u8(OPUS_TOC);
        stamp.write(&mut out);
        fill(&mut out, self.packet_bytes, stamp.seq);
        MediaFrame {
            kind: MediaKind::Audio,
            data: out.freeze(),
            duration: OPUS_FRAME_DURATION,
            seq: stamp.seq,
            keyframe: false,
        }
    }
}

/// Settings of [`Vp8Source`].
#[derive(Debug, Clone)]
pub struct Vp8Config {
    /// Frames per second (default 30).
    pub fps: u32,
    /// Target average bitrate of the bitstream in bit/s (default 300 000).
    pub bitrate_bps: u32,
    /// A keyframe every this many frames; the first frame is always a keyframe (default 60,
    /// i.e. every 2 s at 30 fps).
    pub keyframe_interval: u32,
    /// How many times larger a keyframe is than an interframe (default 4), as with real
    /// encoders; the sizes are balanced so the average still meets `bitrate_bps`.
    pub keyframe_weight: u32,
    /// Width written into keyframe headers (default 640).
    pub width: u16,
    /// Height written into keyframe headers (default 360).
    pub height: u16,
}

impl Default for Vp8Config {
    fn default() -> Self {
        Vp8Config {
            fps: 30,
            bitrate_bps: 300_000,
            keyframe_interval: 60,
            keyframe_weight: 4,
            width: 640,
            height: 360,
        }
    }
}

/// Endless source of synthetic VP8 frames.
#[derive(Debug, Clone)]
pub struct Vp8Source {
    config: Vp8Config,
    key_bytes: usize,
    inter_bytes: usize,
    seq: u64,
    /// Frames since the last keyframe; `None` forces the next frame to be one.
    since_key: Option<u32>,
}

impl Vp8Source {
    /// A new source whose first frame is a keyframe with counter 0.
    pub fn new(config: &Vp8Config) -> Self {
        let mut config = config.clone();
        config.fps = config.fps.clamp(1, 240);
        config.keyframe_interval = config.keyframe_interval.max(1);
        config.keyframe_weight = config.keyframe_weight.max(1);
        config.width &= 0x3fff;
        config.height &= 0x3fff;
        // Split one keyframe interval's byte budget into one keyframe of `weight` shares and
        // `interval - 1` interframes of one share each, so the average rate is the target.
        let gop = u64::from(config.keyframe_interval);
        let budget = u64::from(config.bitrate_bps) * gop / 8 / u64::from(config.fps);
        let shares = u64::from(config.keyframe_weight) + gop - 1;
        let share = (budget / shares) as usize;
        let key_bytes =
            (share * config.keyframe_weight as usize).max(VP8_KEY_HEADER_LEN + STAMP_LEN);
        let inter_bytes = share.max(VP8_TAG_LEN + STAMP_LEN);
        Vp8Source {
            config,
            key_bytes,
            inter_bytes,
            seq: 0,
            since_key: None,
        }
    }

    /// Make the next frame a keyframe (the answer to a PLI/FIR). Like a real encoder, the
    /// periodic keyframe schedule restarts from there.
    pub fn force_keyframe(&mut self) {
        self.since_key = None;
    }

    /// Frame interval (1 / fps).
    pub fn frame_duration(&self) -> Duration {
        Duration::from_secs(1) / self.config.fps
    }

    /// Sizes in bytes of keyframes and interframes.
    pub fn frame_sizes(&self) -> (usize, usize) {
        (self.key_bytes, self.inter_bytes)
    }

    /// The next frame, stamped with the current wall-clock time.
    pub fn next_frame(&mut self) -> MediaFrame {
        let stamp = Stamp {
            seq: self.seq,
            sent_at_us: now_unix_micros(),
        };
        self.seq += 1;
        let keyframe = match self.since_key {
            Some(n) if n + 1 < self.config.keyframe_interval => {
                self.since_key = Some(n + 1);
                false
            }
            _ => {
                self.since_key = Some(0);
                true
            }
        };
        let (len, header_len) = if keyframe {
            (self.key_bytes, VP8_KEY_HEADER_LEN)
        } else {
            (self.inter_bytes, VP8_TAG_LEN)
        };
        // Everything after the header counts as the first partition, so the size field is
        // consistent with the frame length (it must not point past the end of the frame).
        let first_partition = ((len - header_len) as u32).min(0x7_ffff);
        // Frame tag, little-endian: bit 0 = P (0 = keyframe), bits 1-3 version 0, bit 4
        // show_frame, bits 5-23 first partition size.
        let tag = u32::from(!keyframe) | (1 << 4) | (first_partition << 5);
        let mut out = BytesMut::with_capacity(len);
        out.put_slice(&tag.to_le_bytes()[..3]);
        if keyframe {
            out.put_slice(&VP8_START_CODE);
            // 14-bit dimensions with a 2-bit scale of 0.
            out.put_u16_le(self.config.width);
            out.put_u16_le(self.config.height);
        }
        stamp.write(&mut out);
        fill(&mut out, len, stamp.seq);
        MediaFrame {
            kind: MediaKind::Video,
            data: out.freeze(),
            duration: self.frame_duration(),
            seq: stamp.seq,
            keyframe,
        }
    }
}

/// Pad `out` to `len` bytes with a counter-dependent pattern (not zeros, so nothing on the
/// path can mistake the filler for padding or compress it away).
fn fill(out: &mut BytesMut, len: usize, seq: u64) {
    let mut b = seq as u8;
    while out.len() < len {
        out.put_u8(b);
        b = b.wrapping_add(1);
    }
}

/// Read the stamp of a synthetic Opus packet (RTP payload or depacketized frame).
///
/// Returns `None` for packets not produced by [`OpusSource`] (other TOC or too short), e.g.
/// real Opus from a browser.
pub fn parse_opus_payload(payload: &[u8]) -> Option<Stamp> {
    if *payload.first()? != OPUS_TOC {
        return None;
    }
    Stamp::read(payload.get(OPUS_HEADER_LEN..)?)
}

/// What a VP8 frame header says, plus the stamp if the frame is synthetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8FrameInfo {
    /// P bit = 0.
    pub keyframe: bool,
    /// Width and height from a keyframe header.
    pub dimensions: Option<(u16, u16)>,
    /// The [`Stamp`] after the header, if the start code matched (keyframes) and the frame is
    /// long enough. For frames not produced by [`Vp8Source`] this is garbage or `None`.
    pub stamp: Option<Stamp>,
}

/// Parse the start of a VP8 frame (a depacketized frame, or the payload of the first RTP
/// packet of a frame after its payload descriptor).
///
/// Returns `None` if the buffer is too short for a frame tag, or if a keyframe lacks the start
/// code.
pub fn parse_vp8_frame(frame: &[u8]) -> Option<Vp8FrameInfo> {
    let tag = frame.get(..VP8_TAG_LEN)?;
    let keyframe = tag[0] & 0x01 == 0;
    if !keyframe {
        return Some(Vp8FrameInfo {
            keyframe,
            dimensions: None,
            stamp: Stamp::read(frame.get(VP8_TAG_LEN..)?),
        });
    }
    if frame.get(VP8_TAG_LEN..VP8_TAG_LEN + 3)? != VP8_START_CODE {
        return None;
    }
    let dims = frame.get(VP8_TAG_LEN + 3..VP8_KEY_HEADER_LEN)?;
    let width = u16::from_le_bytes([dims[0], dims[1]]) & 0x3fff;
    let height = u16::from_le_bytes([dims[2], dims[3]]) & 0x3fff;
    Some(Vp8FrameInfo {
        keyframe,
        dimensions: Some((width, height)),
        stamp: frame.get(VP8_KEY_HEADER_LEN..).and_then(Stamp::read),
    })
}

/// The fields of a VP8 RTP payload descriptor (RFC 7741 §4.2) a receiver needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Descriptor {
    /// S bit: the packet starts a VP8 partition.
    pub start_of_partition: bool,
    /// Partition index (PID).
    pub partition_id: u8,
    /// Length of the descriptor; the VP8 payload starts at this offset.
    pub header_len: usize,
}

impl Vp8Descriptor {
    /// True for the first packet of a frame (S=1, PID=0): its payload starts with the VP8
    /// frame header.
    pub fn starts_frame(&self) -> bool {
        self.start_of_partition && self.partition_id == 0
    }
}

/// Parse the VP8 payload descriptor at the start of an RTP payload; `None` if truncated.
pub fn parse_vp8_descriptor(payload: &[u8]) -> Option<Vp8Descriptor> {
    let b0 = *payload.first()?;
    let mut len = 1;
    if b0 & 0x80 != 0 {
        // X: extension byte with I, L, T, K flags.
        let x = *payload.get(len)?;
        len += 1;
        if x & 0x80 != 0 {
            // I: PictureID, 15 bits when M is set, else 7 bits.
            let pid = *payload.get(len)?;
            len += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            len += 1; // L: TL0PICIDX
        }
        if x & 0x30 != 0 {
            len += 1; // T or K: TID/Y/KEYIDX byte
        }
    }
    if payload.len() < len {
        return None;
    }
    Some(Vp8Descriptor {
        start_of_partition: b0 & 0x10 != 0,
        partition_id: b0 & 0x07,
        header_len: len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_packets_carry_toc_and_stamp() {
        let mut src = OpusSource::new(&OpusConfig::default());
        let a = src.next_frame();
        let b = src.next_frame();
        assert_eq!(a.data.len(), 40);
        assert_eq!(a.data[0], OPUS_TOC);
        let sa = parse_opus_payload(&a.data).expect("stamp");
        let sb = parse_opus_payload(&b.data).expect("stamp");
        assert_eq!((sa.seq, sb.seq), (0, 1));
        assert!(sb.sent_at_us >= sa.sent_at_us && sa.sent_at_us > 0);
        assert_eq!(parse_opus_payload(&[0x78, 1, 2]), None);
    }

    #[test]
    fn vp8_frames_have_valid_headers_and_hit_the_bitrate() {
        let cfg = Vp8Config::default();
        let mut src = Vp8Source::new(&cfg);
        let mut total = 0usize;
        let mut keys = 0;
        for i in 0..cfg.keyframe_interval as u64 * 2 {
            let f = src.next_frame();
            total += f.data.len();
            let info = parse_vp8_frame(&f.data).expect("header");
            assert_eq!(info.keyframe, f.keyframe);
            assert_eq!(info.stamp.map(|s| s.seq), Some(i));
            if f.keyframe {
                keys += 1;
                assert_eq!(info.dimensions, Some((640, 360)));
                assert_eq!(&f.data[3..6], &VP8_START_CODE);
            }
            // First partition size must fit inside the frame.
            let tag = u32::from_le_bytes([f.data[0], f.data[1], f.data[2], 0]);
            let header = if f.keyframe { 10 } else { 3 };
            assert_eq!((tag >> 5) as usize, f.data.len() - header);
            assert_eq!((tag >> 4) & 1, 1, "show_frame");
        }
        assert_eq!(keys, 2);
        let bps = total as f64 * 8.0 / 4.0; // 120 frames at 30 fps = 4 s
        assert!((bps - 300_000.0).abs() < 3_000.0, "bitrate {bps}");
        let (key, inter) = src.frame_sizes();
        // Over the 1200-byte RTP MTU: keyframes take 4-5 packets, interframes 2.
        assert!(
            key > 3 * 1200 && inter > 1188,
            "frames span several RTP packets"
        );
    }

    #[test]
    fn forced_keyframes_restart_the_schedule() {
        let mut src = Vp8Source::new(&Vp8Config {
            keyframe_interval: 3,
            ..Vp8Config::default()
        });
        let keys = |src: &mut Vp8Source, n| {
            (0..n)
                .map(|_| src.next_frame().keyframe)
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&mut src, 4), [true, false, false, true]);
        src.force_keyframe();
        assert_eq!(keys(&mut src, 4), [true, false, false, true]);
    }

    #[test]
    fn vp8_descriptor_parsing() {
        // X=1, S=1, PID=0; I=1 with a 15-bit picture id; then the frame.
        let d = parse_vp8_descriptor(&[0x90, 0x80, 0x81, 0x23, 0xAA]).expect("descriptor");
        assert!(d.starts_frame());
        assert_eq!(d.header_len, 4);
        // Minimal descriptor, continuation packet.
        let d = parse_vp8_descriptor(&[0x00, 0xAA]).expect("descriptor");
        assert!(!d.starts_frame());
        assert_eq!(d.header_len, 1);
        // L, T and 7-bit picture id.
        let d = parse_vp8_descriptor(&[0x90, 0xE0, 0x05, 0x01, 0x02]).expect("descriptor");
        assert_eq!(d.header_len, 5);
        assert_eq!(parse_vp8_descriptor(&[0x90, 0x80]), None);
        assert_eq!(parse_vp8_descriptor(&[]), None);
    }

    #[test]
    fn latency_is_signed() {
        let s = Stamp {
            seq: 0,
            sent_at_us: 1_000,
        };
        assert_eq!(s.latency_us(1_500), 500);
        assert_eq!(s.latency_us(500), -500);
    }
}
