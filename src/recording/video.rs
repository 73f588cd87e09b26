//! Video: RTP packets of the tap's one continuous stream → whole VP8/VP9 frames.
//!
//! ```text
//! Video events ─► Reorder (by seq, small window) ─► Depacketizer ─► Frame { ts, keyframe, size }
//! ```
//!
//! Frames are only emitted complete, starting at a keyframe; after any loss the depacketizer
//! waits for the next keyframe (the tap gets one at every source switch, and encoders send them
//! periodically), so the file never holds a frame that references a missing one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ketang_sfu::{TrackId, VideoCodec};

use super::h264;

/// One video packet as the reorder buffer keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Packet {
    pub track: TrackId,
    pub codec: VideoCodec,
    pub seq: u64,
    pub ts: u32,
    pub marker: bool,
    pub payload: Arc<[u8]>,
    pub at: Instant,
}

/// Orders packets by sequence number; a missing one is given up on once `window` of later
/// packets (by arrival) is waiting or the buffer is full.
pub(crate) struct Reorder {
    next: Option<u64>,
    pending: BTreeMap<u64, Packet>,
    window: Duration,
    pub late: u64,
    /// Sequence numbers skipped over (lost upstream or dropped at the queue).
    pub lost: u64,
}

/// What leaves the reorder buffer.
pub(crate) enum Ordered {
    Packet(Packet),
    /// Packets before this one never came.
    Lost,
}

const MAX_PENDING: usize = 512;

impl Reorder {
    pub fn new(window: Duration) -> Self {
        Reorder {
            next: None,
            pending: BTreeMap::new(),
            window,
            late: 0,
            lost: 0,
        }
    }

    pub fn push(&mut self, p: Packet, out: &mut Vec<Ordered>) {
        let next = *self.next.get_or_insert(p.seq);
        if p.seq < next || self.pending.contains_key(&p.seq) {
            self.late += 1;
            return;
        }
        let newest = p.at;
        self.pending.insert(p.seq, p);
        self.release(Some(newest), out);
    }

    /// Releases what is in order; with `now`, gives up on gaps older than the window; with
    /// `None`, releases everything (end of the recording).
    pub fn release(&mut self, now: Option<Instant>, out: &mut Vec<Ordered>) {
        loop {
            let full = self.pending.len() > MAX_PENDING;
            let Some(entry) = self.pending.first_entry() else {
                break;
            };
            let seq = *entry.key();
            let in_order = Some(seq) == self.next;
            let give_up = match now {
                None => true,
                Some(now) => now.saturating_duration_since(entry.get().at) > self.window || full,
            };
            if !in_order && !give_up {
                break;
            }
            if !in_order {
                self.lost += seq - self.next.unwrap_or(seq);
                out.push(Ordered::Lost);
            }
            let p = entry.remove();
            self.next = Some(seq + 1);
            out.push(Ordered::Packet(p));
        }
    }
}

/// A complete frame.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub track: TrackId,
    pub codec: VideoCodec,
    pub ts: u32,
    pub at: Instant,
    pub keyframe: bool,
    /// Coded size, from keyframes.
    pub size: Option<(u16, u16)>,
    pub data: Vec<u8>,
}

/// Largest frame the depacketizer assembles. A 4K keyframe is a few hundred kilobytes; a
/// frame whose marker never comes (a broken or hostile publisher) would otherwise grow
/// without bound. Beyond this the frame is dropped and the next keyframe resyncs.
pub(crate) const MAX_FRAME_BYTES: usize = 4 << 20;

/// Assembles frames from ordered packets.
#[derive(Default)]
pub(crate) struct Depacketizer {
    current: Option<Frame>,
    /// VP9 layer frames of the current picture (for a superframe).
    vp9_parts: Vec<usize>,
    synced: bool,
    /// The open H.264 FU-A's length field in the current frame.
    h264_fu: Option<usize>,
    pub incomplete: u64,
    pub skipped: u64,
}

impl Depacketizer {
    /// Something was lost: drop the partial frame and wait for a keyframe.
    pub fn lost(&mut self) {
        if self.current.take().is_some() {
            self.incomplete += 1;
        }
        self.h264_fu = None;
        self.synced = false;
    }

    /// H.264: a frame is the packets of one RTP timestamp, up to the marker; its data is
    /// length-prefixed NAL units (what MP4 stores).
    fn push_h264(&mut self, p: Packet) -> Option<Frame> {
        let same_frame = self
            .current
            .as_ref()
            .is_some_and(|f| f.ts == p.ts && f.track == p.track && f.codec == p.codec);
        if self.current.is_some() && !same_frame {
            self.lost(); // the previous frame's marker never came
        }
        let f = self.current.get_or_insert_with(|| Frame {
            track: p.track,
            codec: p.codec,
            ts: p.ts,
            at: p.at,
            keyframe: false,
            size: None,
            data: Vec::new(),
        });
        let from = f.data.len();
        let Some(added) = h264::append_payload(&mut f.data, &p.payload, &mut self.h264_fu) else {
            self.lost();
            return None;
        };
        if f.data.len() > MAX_FRAME_BYTES {
            self.lost();
            return None;
        }
        f.keyframe |= added.idr;
        if f.size.is_none()
            && let Some(sps) = h264::nal_units(&f.data[from..])
                .find(|n| n.first().is_some_and(|h| h & 0x1f == h264::NAL_SPS))
        {
            f.size = h264::sps_size(sps);
        }
        if !p.marker {
            return None;
        }
        if self.h264_fu.is_some() {
            self.lost();
            return None;
        }
        let frame = self.current.take()?;
        if !self.synced && !frame.keyframe {
            self.skipped += 1;
            return None;
        }
        self.synced = true;
        Some(frame)
    }

    pub fn push(&mut self, p: Packet) -> Option<Frame> {
        if p.payload.is_empty() {
            return None; // padding
        }
        let parsed = match p.codec {
            VideoCodec::Vp8 => vp8_descriptor(&p.payload),
            VideoCodec::Vp9 => vp9_descriptor(&p.payload),
            VideoCodec::H264 => return self.push_h264(p),
        };
        let Some((start, begin_layer, offset)) = parsed else {
            self.lost();
            return None;
        };
        let body = &p.payload[offset..];
        let same_frame = self
            .current
            .as_ref()
            .is_some_and(|f| f.ts == p.ts && f.track == p.track && f.codec == p.codec);
        if start {
            if self.current.is_some() && !same_frame {
                self.lost();
            }
            if self.current.is_none() {
                self.vp9_parts.clear();
                self.current = Some(Frame {
                    track: p.track,
                    codec: p.codec,
                    ts: p.ts,
                    at: p.at,
                    keyframe: false,
                    size: None,
                    data: Vec::new(),
                });
            }
        } else if !same_frame {
            // The middle of a frame whose start we do not have.
            self.lost();
            return None;
        }
        let f = self.current.as_mut()?;
        if begin_layer {
            self.vp9_parts.push(f.data.len());
            let (key, size) = match p.codec {
                VideoCodec::Vp9 => vp9_keyframe(body),
                _ => vp8_keyframe(body),
            };
            // The first (base) layer decides for the picture.
            if self.vp9_parts.len() <= 1 {
                f.keyframe = key;
            }
            f.size = size.or(f.size);
        }
        if f.data.len() + body.len() > MAX_FRAME_BYTES {
            self.lost();
            return None;
        }
        f.data.extend_from_slice(body);
        if !p.marker {
            return None;
        }
        let mut frame = self.current.take()?;
        if frame.codec == VideoCodec::Vp9 && self.vp9_parts.len() > 1 {
            superframe(&mut frame.data, &self.vp9_parts);
        }
        if !self.synced && !frame.keyframe {
            self.skipped += 1;
            return None;
        }
        self.synced = true;
        Some(frame)
    }
}

/// RFC 7741 payload descriptor: (start of frame, payload offset). Start means S=1 and
/// partition index 0.
fn vp8_descriptor(b: &[u8]) -> Option<(bool, bool, usize)> {
    let b0 = *b.first()?;
    let start = b0 & 0x10 != 0 && b0 & 0x07 == 0;
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let x = *b.get(i)?;
        i += 1;
        if x & 0x80 != 0 {
            // Picture id: 7 or 15 bits.
            i += if *b.get(i)? & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    (i < b.len()).then_some((start, start, i))
}

/// VP8 frame header: keyframe flag and, for keyframes, the coded size.
fn vp8_keyframe(b: &[u8]) -> (bool, Option<(u16, u16)>) {
    let Some(&b0) = b.first() else {
        return (false, None);
    };
    let key = b0 & 0x01 == 0;
    if !key {
        return (false, None);
    }
    let size = (b.len() >= 10 && b[3..6] == [0x9d, 0x01, 0x2a]).then(|| {
        let w = u16::from_le_bytes([b[6], b[7]]) & 0x3fff;
        let h = u16::from_le_bytes([b[8], b[9]]) & 0x3fff;
        (w, h)
    });
    (size.is_some(), size)
}

/// VP9 RTP descriptor (RFC 9628): (start of picture, start of a layer frame, payload offset).
fn vp9_descriptor(b: &[u8]) -> Option<(bool, bool, usize)> {
    let b0 = *b.first()?;
    let (i_bit, p_bit, l_bit, f_bit, b_bit, v_bit) = (
        b0 & 0x80 != 0,
        b0 & 0x40 != 0,
        b0 & 0x20 != 0,
        b0 & 0x10 != 0,
        b0 & 0x08 != 0,
        b0 & 0x02 != 0,
    );
    let mut i = 1;
    if i_bit {
        i += if *b.get(i)? & 0x80 != 0 { 2 } else { 1 };
    }
    let mut sid = 0;
    if l_bit {
        sid = (*b.get(i)? >> 1) & 0x07;
        i += if f_bit { 1 } else { 2 };
    }
    if f_bit && p_bit {
        // Up to three reference diffs, each with a "more follow" bit.
        for _ in 0..3 {
            let n = *b.get(i)?;
            i += 1;
            if n & 0x01 == 0 {
                break;
            }
        }
    }
    if v_bit {
        let ss = *b.get(i)?;
        i += 1;
        let n_s = usize::from(ss >> 5) + 1;
        if ss & 0x10 != 0 {
            i += 4 * n_s;
        }
        if ss & 0x08 != 0 {
            let n_g = usize::from(*b.get(i)?);
            i += 1;
            for _ in 0..n_g {
                let r = usize::from((*b.get(i)? >> 2) & 0x03);
                i += 1 + r;
            }
        }
    }
    let start_of_picture = b_bit && sid == 0;
    (i < b.len()).then_some((start_of_picture, b_bit, i))
}

/// VP9 uncompressed header: keyframe flag and, for keyframes, the size.
fn vp9_keyframe(b: &[u8]) -> (bool, Option<(u16, u16)>) {
    let mut r = Bits { b, pos: 0 };
    let parse = |r: &mut Bits| -> Option<(bool, Option<(u16, u16)>)> {
        if r.read(2)? != 2 {
            return None; // frame marker
        }
        let profile = r.read(1)? | (r.read(1)? << 1);
        if profile == 3 {
            r.read(1)?;
        }
        if r.read(1)? == 1 {
            return Some((false, None)); // show an existing frame
        }
        if r.read(1)? != 0 {
            return Some((false, None)); // inter frame
        }
        r.read(2)?; // show_frame, error_resilient
        if r.read(24)? != 0x49_83_42 {
            return None;
        }
        if profile >= 2 {
            r.read(1)?; // ten_or_twelve_bit
        }
        let color_space = r.read(3)?;
        if color_space != 7 {
            r.read(1)?;
            if profile == 1 || profile == 3 {
                r.read(3)?;
            }
        } else if profile == 1 || profile == 3 {
            r.read(1)?;
        }
        let w = r.read(16)? + 1;
        let h = r.read(16)? + 1;
        Some((true, Some((w as u16, h as u16))))
    };
    parse(&mut r).unwrap_or((false, None))
}

struct Bits<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.b.get(self.pos / 8)?;
            v = (v << 1) | u32::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Some(v)
    }
}

/// Joins the layer frames of one VP9 picture into a superframe (index at the end, 4-byte
/// sizes), the form decoders and WebM expect for spatial layers.
fn superframe(data: &mut Vec<u8>, starts: &[usize]) {
    let n = starts.len().min(8);
    let mut index = vec![0xc0 | 0x18 | (n as u8 - 1)];
    for (k, &s) in starts.iter().take(n).enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(data.len());
        index.extend_from_slice(&((end - s) as u32).to_le_bytes());
    }
    index.push(index[0]);
    data.extend_from_slice(&index);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u64, ts: u32, marker: bool, payload: &[u8], at: Instant) -> Packet {
        Packet {
            track: TrackId(1),
            codec: VideoCodec::Vp8,
            seq,
            ts,
            marker,
            payload: Arc::from(payload),
            at,
        }
    }

    fn key(w: u16, h: u16) -> Vec<u8> {
        let mut f = vec![0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a];
        f.extend_from_slice(&w.to_le_bytes());
        f.extend_from_slice(&h.to_le_bytes());
        f.extend_from_slice(&[7; 20]);
        f
    }

    #[test]
    fn reorder_releases_in_order_and_gives_up_on_gaps_after_the_window() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut r = Reorder::new(Duration::from_millis(50));
        let mut out = Vec::new();
        r.push(pkt(10, 0, false, &[1], ms(0)), &mut out);
        r.push(pkt(12, 0, false, &[1], ms(1)), &mut out);
        r.push(pkt(11, 0, false, &[1], ms(2)), &mut out);
        let seqs: Vec<u64> = out
            .iter()
            .filter_map(|o| match o {
                Ordered::Packet(p) => Some(p.seq),
                Ordered::Lost => None,
            })
            .collect();
        assert_eq!(seqs, [10, 11, 12]);
        out.clear();
        r.push(pkt(14, 0, false, &[1], ms(10)), &mut out);
        assert!(out.is_empty(), "13 may still come");
        r.push(pkt(15, 0, false, &[1], ms(70)), &mut out);
        assert!(matches!(out[0], Ordered::Lost));
        assert_eq!(out.len(), 3);
        r.push(pkt(13, 0, false, &[1], ms(71)), &mut out);
        assert_eq!(r.late, 1);
    }

    #[test]
    fn vp8_frames_start_at_keyframes_and_incomplete_ones_are_dropped() {
        let t0 = Instant::now();
        let mut d = Depacketizer::default();
        // A delta frame first: skipped until a keyframe.
        assert!(d.push(pkt(1, 0, true, &[0x10, 0x01, 9], t0)).is_none());
        assert_eq!(d.skipped, 1);
        // A keyframe in two packets, with an extended descriptor (15-bit picture id).
        let k = key(640, 360);
        let mut first = vec![0x90, 0x80, 0x81, 0x02];
        first.extend_from_slice(&k[..12]);
        let mut second = vec![0x80, 0x80, 0x81, 0x02];
        second.extend_from_slice(&k[12..]);
        assert!(d.push(pkt(2, 3000, false, &first, t0)).is_none());
        let f = d.push(pkt(3, 3000, true, &second, t0)).expect("frame");
        assert!(f.keyframe);
        assert_eq!(f.size, Some((640, 360)));
        assert_eq!(f.data, k);
        // A delta frame whose last packet is lost: never emitted, and sync is lost.
        assert!(d.push(pkt(4, 6000, false, &[0x10, 0x01, 1], t0)).is_none());
        d.lost();
        assert_eq!(d.incomplete, 1);
        assert!(d.push(pkt(6, 9000, true, &[0x10, 0x01, 1], t0)).is_none());
        let k2 = key(1280, 720);
        let mut p = vec![0x10];
        p.extend_from_slice(&k2);
        let f = d.push(pkt(7, 12000, true, &p, t0)).expect("keyframe");
        assert_eq!(f.size, Some((1280, 720)));
    }

    #[test]
    fn a_frame_without_its_marker_stops_growing_and_the_next_keyframe_resyncs() {
        let t0 = Instant::now();
        for codec in [VideoCodec::Vp8, VideoCodec::H264] {
            let mut d = Depacketizer::default();
            let (start, middle) = match codec {
                // VP8: a keyframe's first packet, then continuations (S=0).
                VideoCodec::Vp8 => {
                    let mut s = vec![0x10];
                    s.extend_from_slice(&key(640, 360));
                    (s, vec![0x00; 1200])
                }
                // H.264: an IDR's FU-A start, then FU-A middles (no end bit).
                _ => {
                    let mut s = vec![0x7c, 0x85];
                    s.extend_from_slice(&[1; 1000]);
                    let mut m = vec![0x7c, 0x05];
                    m.extend_from_slice(&[2; 1200]);
                    (s, m)
                }
            };
            let packet = |seq: u64, ts: u32, marker: bool, payload: &[u8]| Packet {
                codec,
                ..pkt(seq, ts, marker, payload, t0)
            };
            assert!(d.push(packet(1, 3000, false, &start)).is_none());
            // 8 MB of one frame whose marker never comes.
            for seq in 2..7000 {
                assert!(d.push(packet(seq, 3000, false, &middle)).is_none());
                let held = d.current.as_ref().map_or(0, |f| f.data.len());
                assert!(held <= MAX_FRAME_BYTES, "{codec:?}: {held} bytes held");
            }
            assert!(d.incomplete >= 1, "{codec:?}: the frame was dropped");
            // The next keyframe is recorded.
            let f = match codec {
                VideoCodec::Vp8 => {
                    let mut p = vec![0x10];
                    p.extend_from_slice(&key(640, 360));
                    d.push(packet(7000, 6000, true, &p))
                }
                _ => d.push(packet(7000, 6000, true, &[0x65, 1, 2, 3])),
            };
            assert!(f.is_some_and(|f| f.keyframe), "{codec:?}: no resync");
        }
    }

    #[test]
    fn vp9_keyframe_size_and_superframes() {
        // profile 0 keyframe: marker 10, profile 00, show_existing 0, type 0, show 1, er 0,
        // sync code, color space 010, range 0, w-1=639, h-1=359.
        let mut bits = String::from("10000010");
        bits += "010010011000001101000010"; // sync code
        bits += "0100"; // color space 2, full range 0
        bits += &format!("{:016b}{:016b}", 639, 359);
        while bits.len() % 8 != 0 {
            bits.push('0');
        }
        let bytes: Vec<u8> = (0..bits.len() / 8)
            .map(|i| u8::from_str_radix(&bits[i * 8..i * 8 + 8], 2).unwrap_or(0))
            .collect();
        assert_eq!(vp9_keyframe(&bytes), (true, Some((640, 360))));
        let mut data = vec![1, 2, 3, 4, 5];
        superframe(&mut data, &[0, 2]);
        assert_eq!(data[5], 0xd9);
        assert_eq!(&data[6..10], &2u32.to_le_bytes());
        assert_eq!(&data[10..14], &3u32.to_le_bytes());
        assert_eq!(data[14], 0xd9);
    }
}
