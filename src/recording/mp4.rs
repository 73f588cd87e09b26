//! A fragmented MP4 (H.264 + Opus) written live, for lessons whose video is H.264, which
//! WebM cannot hold. Chromium and Firefox play H.264 + Opus in MP4.
//!
//! Layout:
//!
//! ```text
//! ftyp | moov (mvhd, trak video avc1, trak audio Opus, mvex: mehd ← patched at finalize, trex×2)
//! moof | mdat | moof | mdat | …   ← each fragment written whole, in one write
//! ```
//!
//! Like the WebM path, fragments are built in memory and handed to the file whole: after a
//! crash the file is a playable fragmented MP4 plus at most one torn fragment, which
//! [`LiveMp4::reopen`] cuts off. A fragment starts at every video keyframe (so seeking lands
//! on one) and is written once it is `fragment_max` long in media time or [`LiveMp4::sync`]
//! finds it older than the flush age. Finalizing only patches the movie's duration into the
//! `mehd` box reserved in the header. The header needs the SPS and PPS, so it is written
//! with the first fragment, which starts at the first keyframe.
//!
//! Samples: video in 1/90 000 s, durations from the next frame's time (a frame is held until
//! the next one comes), parameter sets kept in band as WebRTC senders send them; audio in
//! 1/48 000 s, 20 ms Opus packets.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::h264::{parameter_sets, sps_size};
use super::webm::Finalized;

/// Track ids in the file.
pub(crate) const VIDEO_TRACK: u32 = 1;
pub(crate) const AUDIO_TRACK: u32 = 2;
const VIDEO_SCALE: u64 = 90_000;
const AUDIO_SCALE: u64 = 48_000;
const MOVIE_SCALE: u64 = 1_000;
/// `sample_flags`: a sync sample, and a sample that depends on others (ISO 14496-12 §8.8.3.1).
const SYNC: u32 = 0x0200_0000;
const NON_SYNC: u32 = 0x0101_0000;

/// The audio track of a file.
#[derive(Debug, Clone)]
pub(crate) struct Mp4Audio {
    pub channels: u8,
    pub pre_skip: u16,
}

struct Sample {
    dts: u64,
    duration: u32,
    flags: u32,
    data: Vec<u8>,
}

#[derive(Default)]
struct Fragment {
    video: Vec<Sample>,
    audio: Vec<Sample>,
    opened: Option<Instant>,
}

impl Fragment {
    fn is_empty(&self) -> bool {
        self.video.is_empty() && self.audio.is_empty()
    }
}

/// A video frame waiting for the next one, which gives its duration.
struct Held {
    dts: u64,
    key: bool,
    data: Vec<u8>,
}

/// A fragmented MP4 being written (`*.mp4.part`).
pub(crate) struct LiveMp4 {
    file: File,
    path: PathBuf,
    audio: Mp4Audio,
    /// Offset of mehd's 64-bit duration, once the header is on disk.
    mehd_at: Option<u64>,
    frag: Fragment,
    held: Option<Held>,
    sequence: u32,
    /// Bytes known to be complete in the file.
    written: u64,
    dirty: bool,
    /// End of the media in the file and in the open fragment, µs.
    end_us: u64,
    committed_end_us: u64,
    fragment_max_us: u64,
    last_video_dts: Option<u64>,
    last_audio_end: Option<u64>,
}

impl LiveMp4 {
    /// Creates `path` (which must not exist); the header follows with the first keyframe.
    pub fn create(path: &Path, audio: Mp4Audio, fragment_max: Duration) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(LiveMp4 {
            file,
            path: path.to_owned(),
            audio,
            mehd_at: None,
            frag: Fragment::default(),
            held: None,
            sequence: 0,
            written: 0,
            dirty: false,
            end_us: 0,
            committed_end_us: 0,
            fragment_max_us: fragment_max.as_micros().clamp(100_000, 3_000_000) as u64,
            last_video_dts: None,
            last_audio_end: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the header (hence anything) is on disk.
    pub fn header_written(&self) -> bool {
        self.mehd_at.is_some()
    }

    /// Adds a video access unit (length-prefixed NAL units) at `us` on the recording's clock.
    /// Frames before the first keyframe with parameter sets are dropped (nothing could decode
    /// them); returns false for those.
    pub fn push_video(&mut self, us: u64, key: bool, au: &[u8]) -> io::Result<bool> {
        if self.mehd_at.is_none() && self.held.is_none() {
            if !key {
                return Ok(false);
            }
            let Some((sps, pps)) = parameter_sets(au) else {
                return Ok(false);
            };
            let header = header(sps, pps, &self.audio);
            self.write_at_end(&header.bytes)?;
            self.mehd_at = Some(header.mehd_at);
        }
        let mut dts = us * VIDEO_SCALE / 1_000_000;
        if let Some(last) = self.last_video_dts {
            dts = dts.max(last + 1);
        }
        self.last_video_dts = Some(dts);
        if let Some(h) = self.held.take() {
            let duration = (dts - h.dts).min(u64::from(u32::MAX)) as u32;
            self.frag.video.push(Sample {
                dts: h.dts,
                duration,
                flags: if h.key { SYNC } else { NON_SYNC },
                data: h.data,
            });
        }
        if key {
            self.close_fragment()?;
        }
        self.frag.opened.get_or_insert_with(Instant::now);
        self.held = Some(Held {
            dts,
            key,
            data: au.to_vec(),
        });
        self.end_us = self.end_us.max(us);
        self.close_if_long()?;
        Ok(true)
    }

    /// Adds an Opus packet of `dur_us` at `us`. Audio before the header (no keyframe yet) is
    /// dropped; returns false for it.
    pub fn push_audio(&mut self, us: u64, dur_us: u64, packet: &[u8]) -> io::Result<bool> {
        if self.mehd_at.is_none() {
            return Ok(false);
        }
        let dts = us * AUDIO_SCALE / 1_000_000;
        let duration = (dur_us * AUDIO_SCALE / 1_000_000) as u32;
        // A gap or an overlap: start a fragment so its decode time is exact again.
        if self
            .last_audio_end
            .is_some_and(|end| dts.abs_diff(end) > u64::from(duration) / 2)
        {
            self.close_fragment()?;
        }
        let dts = match self.last_audio_end {
            Some(end) if dts.abs_diff(end) <= u64::from(duration) / 2 => end,
            _ => dts,
        };
        self.last_audio_end = Some(dts + u64::from(duration));
        self.frag.opened.get_or_insert_with(Instant::now);
        self.frag.audio.push(Sample {
            dts,
            duration,
            flags: SYNC,
            data: packet.to_vec(),
        });
        self.end_us = self.end_us.max(us + dur_us);
        self.close_if_long()?;
        Ok(true)
    }

    fn close_if_long(&mut self) -> io::Result<()> {
        let start = |s: &[Sample], scale: u64| s.first().map(|x| x.dts * 1_000_000 / scale);
        let first = [
            start(&self.frag.video, VIDEO_SCALE),
            start(&self.frag.audio, AUDIO_SCALE),
        ]
        .into_iter()
        .flatten()
        .min();
        if first.is_some_and(|f| self.end_us.saturating_sub(f) >= self.fragment_max_us) {
            self.close_fragment()?;
        }
        Ok(())
    }

    /// Writes the open fragment (without the held frame) as one moof + mdat.
    pub fn close_fragment(&mut self) -> io::Result<()> {
        let frag = std::mem::take(&mut self.frag);
        if frag.is_empty() || self.mehd_at.is_none() {
            return Ok(());
        }
        self.sequence += 1;
        let bytes = fragment(self.sequence, &frag);
        self.write_at_end(&bytes)?;
        let end = |s: &[Sample], scale: u64| {
            s.last()
                .map(|x| (x.dts + u64::from(x.duration)) * 1_000_000 / scale)
        };
        let e = end(&frag.video, VIDEO_SCALE).max(end(&frag.audio, AUDIO_SCALE));
        self.committed_end_us = self.committed_end_us.max(e.unwrap_or(0));
        Ok(())
    }

    /// Drops what is not yet in the file (after a write error).
    pub fn abandon_fragment(&mut self) {
        self.frag = Fragment::default();
        self.held = None;
        self.end_us = self.committed_end_us;
    }

    /// Writes the open fragment if it was opened at least `age` before `now`, and makes what
    /// is written durable. The held frame waits for the next one (one frame interval).
    pub fn sync(&mut self, now: Instant, age: Duration) -> io::Result<()> {
        if self
            .frag
            .opened
            .is_some_and(|o| now.saturating_duration_since(o) >= age)
        {
            self.close_fragment()?;
        }
        if self.dirty {
            self.file.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    fn write_at_end(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(self.written))?;
        if let Err(e) = self.file.write_all(bytes) {
            // Cut a torn write off so the file stays a sequence of whole boxes.
            let _ = self.file.set_len(self.written);
            return Err(e);
        }
        self.written += bytes.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// Writes the held frame (with the previous frame's duration) and the open fragment,
    /// patches the duration, syncs and renames the file to `final_path`.
    pub fn finalize(mut self, final_path: &Path) -> io::Result<Finalized> {
        if let Some(h) = self.held.take() {
            let prev = self.frag.video.last().map_or(3_000, |s| s.duration);
            self.frag.video.push(Sample {
                dts: h.dts,
                duration: prev,
                flags: if h.key { SYNC } else { NON_SYNC },
                data: h.data,
            });
        }
        self.close_fragment()?;
        let duration_ms = self.committed_end_us / 1000;
        if let Some(at) = self.mehd_at {
            self.file.seek(SeekFrom::Start(at))?;
            self.file
                .write_all(&(duration_ms * MOVIE_SCALE / 1000).to_be_bytes())?;
        }
        self.file.set_len(self.written)?;
        self.file.sync_all()?;
        std::fs::rename(&self.path, final_path)?;
        if let Some(dir) = final_path.parent() {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(Finalized {
            path: final_path.to_owned(),
            duration_ms,
            bytes: self.written,
        })
    }

    /// Opens a file left by a crash: cuts a torn last fragment off and returns a writer ready
    /// to [`finalize`](Self::finalize) and the bytes cut; `Ok(None)` if the header never made
    /// it to disk.
    pub fn reopen(path: &Path) -> io::Result<Option<(Self, u64)>> {
        let mut file = OpenOptions::new().read(true).write(true).open(path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let Some(scan) = scan(&data) else {
            return Ok(None);
        };
        let cut = data.len() as u64 - scan.good_end;
        file.set_len(scan.good_end)?;
        let w = LiveMp4 {
            file,
            path: path.to_owned(),
            audio: Mp4Audio {
                channels: 1,
                pre_skip: 0,
            },
            mehd_at: Some(scan.mehd_at),
            frag: Fragment::default(),
            held: None,
            sequence: scan.fragments,
            written: scan.good_end,
            dirty: true,
            end_us: scan.end_us,
            committed_end_us: scan.end_us,
            fragment_max_us: 1_000_000,
            last_video_dts: None,
            last_audio_end: None,
        };
        Ok(Some((w, cut)))
    }
}

/// Box writer: sizes are patched when a box closes.
#[derive(Default)]
struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn zeros(&mut self, n: usize) {
        self.0.resize(self.0.len() + n, 0);
    }
    fn boxed(&mut self, kind: &[u8; 4], f: impl FnOnce(&mut W)) {
        let start = self.0.len();
        self.u32(0);
        self.0.extend_from_slice(kind);
        f(self);
        let len = (self.0.len() - start) as u32;
        self.0[start..start + 4].copy_from_slice(&len.to_be_bytes());
    }
    fn full(&mut self, kind: &[u8; 4], version: u8, flags: u32, f: impl FnOnce(&mut W)) {
        self.boxed(kind, |w| {
            w.u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
            f(w);
        });
    }
    /// The unity matrix of mvhd and tkhd.
    fn matrix(&mut self) {
        for v in [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000u32] {
            self.u32(v);
        }
    }
}

struct Header {
    bytes: Vec<u8>,
    mehd_at: u64,
}

fn header(sps: &[u8], pps: &[u8], audio: &Mp4Audio) -> Header {
    let (width, height) = sps_size(sps).unwrap_or((1280, 720));
    let mut w = W::default();
    w.boxed(b"ftyp", |w| {
        w.0.extend_from_slice(b"isom");
        w.u32(0x200);
        for brand in [b"isom", b"iso6", b"avc1", b"mp41"] {
            w.0.extend_from_slice(brand);
        }
    });
    let mut mehd_at = 0;
    w.boxed(b"moov", |w| {
        w.full(b"mvhd", 0, 0, |w| {
            w.u32(0); // creation
            w.u32(0); // modification
            w.u32(MOVIE_SCALE as u32);
            w.u32(0); // duration: in the fragments (and mehd)
            w.u32(0x0001_0000); // rate
            w.u16(0x0100); // volume
            w.zeros(10);
            w.matrix();
            w.zeros(24);
            w.u32(AUDIO_TRACK + 1);
        });
        trak(w, VIDEO_TRACK, Some((width, height)), (sps, pps), audio);
        trak(w, AUDIO_TRACK, None, (sps, pps), audio);
        w.boxed(b"mvex", |w| {
            w.full(b"mehd", 1, 0, |w| {
                mehd_at = w.0.len() as u64;
                w.u64(0);
            });
            for (track, flags) in [(VIDEO_TRACK, NON_SYNC), (AUDIO_TRACK, SYNC)] {
                w.full(b"trex", 0, 0, |w| {
                    w.u32(track);
                    w.u32(1); // sample description index
                    w.u32(0);
                    w.u32(0);
                    w.u32(flags);
                });
            }
        });
    });
    Header {
        bytes: w.0,
        mehd_at,
    }
}

/// A track; `video` is its picture size, else it is the audio track.
fn trak(w: &mut W, track: u32, video: Option<(u16, u16)>, sets: (&[u8], &[u8]), audio: &Mp4Audio) {
    let scale = if video.is_some() {
        VIDEO_SCALE
    } else {
        AUDIO_SCALE
    };
    w.boxed(b"trak", |w| {
        // Flags: enabled, in movie, in preview.
        w.full(b"tkhd", 0, 3, |w| {
            w.u32(0);
            w.u32(0);
            w.u32(track);
            w.u32(0);
            w.u32(0); // duration
            w.zeros(8);
            w.u16(0); // layer
            w.u16(if video.is_some() { 0 } else { 1 }); // alternate group
            w.u16(if video.is_some() { 0 } else { 0x0100 }); // volume
            w.u16(0);
            w.matrix();
            let (width, height) = video.unwrap_or((0, 0));
            w.u32(u32::from(width) << 16);
            w.u32(u32::from(height) << 16);
        });
        w.boxed(b"mdia", |w| {
            w.full(b"mdhd", 0, 0, |w| {
                w.u32(0);
                w.u32(0);
                w.u32(scale as u32);
                w.u32(0);
                w.u16(0x55c4); // language "und"
                w.u16(0);
            });
            w.full(b"hdlr", 0, 0, |w| {
                w.u32(0);
                w.0.extend_from_slice(if video.is_some() { b"vide" } else { b"soun" });
                w.zeros(12);
                w.0.extend_from_slice(if video.is_some() {
                    b"VideoHandler\0"
                } else {
                    b"SoundHandler\0"
                });
            });
            w.boxed(b"minf", |w| {
                if video.is_some() {
                    w.full(b"vmhd", 0, 1, |w| w.zeros(8));
                } else {
                    w.full(b"smhd", 0, 0, |w| w.zeros(4));
                }
                w.boxed(b"dinf", |w| {
                    w.full(b"dref", 0, 0, |w| {
                        w.u32(1);
                        w.full(b"url ", 0, 1, |_| {});
                    });
                });
                w.boxed(b"stbl", |w| {
                    w.full(b"stsd", 0, 0, |w| {
                        w.u32(1);
                        match video {
                            Some((width, height)) => avc1(w, width, height, sets.0, sets.1),
                            None => opus(w, audio),
                        }
                    });
                    for kind in [b"stts", b"stsc", b"stco"] {
                        w.full(kind, 0, 0, |w| w.u32(0));
                    }
                    w.full(b"stsz", 0, 0, |w| {
                        w.u32(0);
                        w.u32(0);
                    });
                });
            });
        });
    });
}

fn avc1(w: &mut W, width: u16, height: u16, sps: &[u8], pps: &[u8]) {
    w.boxed(b"avc1", |w| {
        w.zeros(6);
        w.u16(1); // data reference index
        w.zeros(16);
        w.u16(width);
        w.u16(height);
        w.u32(0x0048_0000); // 72 dpi
        w.u32(0x0048_0000);
        w.u32(0);
        w.u16(1); // frame count
        w.zeros(32); // compressor name
        w.u16(0x0018); // depth
        w.u16(0xffff);
        w.boxed(b"avcC", |w| {
            w.u8(1);
            w.u8(sps.get(1).copied().unwrap_or(66));
            w.u8(sps.get(2).copied().unwrap_or(0));
            w.u8(sps.get(3).copied().unwrap_or(31));
            w.u8(0xff); // 4-byte NAL lengths
            w.u8(0xe1); // one SPS
            w.u16(sps.len() as u16);
            w.0.extend_from_slice(sps);
            w.u8(1); // one PPS
            w.u16(pps.len() as u16);
            w.0.extend_from_slice(pps);
        });
    });
}

fn opus(w: &mut W, a: &Mp4Audio) {
    w.boxed(b"Opus", |w| {
        w.zeros(6);
        w.u16(1);
        w.zeros(8);
        w.u16(u16::from(a.channels));
        w.u16(16);
        w.zeros(4);
        w.u32((AUDIO_SCALE as u32) << 16);
        // "Encapsulation of Opus in ISO Base Media File Format" §4.3.2 (big-endian, unlike
        // the OpusHead of Ogg and WebM).
        w.boxed(b"dOps", |w| {
            w.u8(0);
            w.u8(a.channels);
            w.u16(a.pre_skip);
            w.u32(AUDIO_SCALE as u32);
            w.u16(0);
            w.u8(0);
        });
    });
}

/// One moof + mdat: the video run, then the audio run.
fn fragment(sequence: u32, f: &Fragment) -> Vec<u8> {
    let mut w = W::default();
    let mut offsets = Vec::new();
    w.boxed(b"moof", |w| {
        w.full(b"mfhd", 0, 0, |w| w.u32(sequence));
        for (track, samples, scale_flags) in [
            (VIDEO_TRACK, &f.video, true),
            (AUDIO_TRACK, &f.audio, false),
        ] {
            let Some(first) = samples.first() else {
                continue;
            };
            w.boxed(b"traf", |w| {
                // default-base-is-moof
                w.full(b"tfhd", 0, 0x02_0000, |w| w.u32(track));
                w.full(b"tfdt", 1, 0, |w| w.u64(first.dts));
                // data offset, sample duration, size, and (video) flags
                let flags = 0x001 | 0x100 | 0x200 | if scale_flags { 0x400 } else { 0 };
                w.full(b"trun", 0, flags, |w| {
                    w.u32(samples.len() as u32);
                    offsets.push(w.0.len());
                    w.u32(0);
                    for s in samples.iter() {
                        w.u32(s.duration);
                        w.u32(s.data.len() as u32);
                        if scale_flags {
                            w.u32(s.flags);
                        }
                    }
                });
            });
        }
    });
    // data_offset counts from the moof's first byte to the run's first sample.
    let mut at = w.0.len() + 8;
    let runs = [&f.video, &f.audio];
    let mut offsets = offsets.into_iter();
    for run in runs.iter().filter(|r| !r.is_empty()) {
        if let Some(o) = offsets.next() {
            w.0[o..o + 4].copy_from_slice(&(at as u32).to_be_bytes());
        }
        at += run.iter().map(|s| s.data.len()).sum::<usize>();
    }
    let mdat_len = 8 + runs
        .iter()
        .flat_map(|r| r.iter())
        .map(|s| s.data.len())
        .sum::<usize>();
    w.u32(mdat_len as u32);
    w.0.extend_from_slice(b"mdat");
    for s in runs.iter().flat_map(|r| r.iter()) {
        w.0.extend_from_slice(&s.data);
    }
    w.0
}

/// What [`scan`] found in a file.
struct Scan {
    good_end: u64,
    mehd_at: u64,
    fragments: u32,
    end_us: u64,
}

/// Top-level boxes: `(kind, start, end)`; stops at the first one that is cut short.
fn boxes(data: &[u8], mut at: usize, end: usize) -> Vec<([u8; 4], usize, usize)> {
    let mut out = Vec::new();
    while at + 8 <= end {
        let size =
            u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let kind = [data[at + 4], data[at + 5], data[at + 6], data[at + 7]];
        if size < 8 || at + size > end {
            break;
        }
        out.push((kind, at, at + size));
        at += size;
    }
    out
}

fn child(
    data: &[u8],
    parent: (usize, usize),
    kind: &[u8; 4],
    header: usize,
) -> Option<(usize, usize)> {
    boxes(data, parent.0 + header, parent.1)
        .into_iter()
        .find(|b| &b.0 == kind)
        .map(|b| (b.1, b.2))
}

/// Finds the header and the last whole moof + mdat pair, and the media's end.
fn scan(data: &[u8]) -> Option<Scan> {
    let top = boxes(data, 0, data.len());
    let moov = top.iter().find(|b| &b.0 == b"moov")?;
    let mvex = child(data, (moov.1, moov.2), b"mvex", 8)?;
    let mehd = child(data, mvex, b"mehd", 8)?;
    let mut good_end = moov.2 as u64;
    let mut fragments = 0;
    let mut end_us = 0u64;
    for pair in top.windows(2) {
        let (moof, mdat) = (&pair[0], &pair[1]);
        if &moof.0 != b"moof" || &mdat.0 != b"mdat" {
            continue;
        }
        fragments += 1;
        good_end = mdat.2 as u64;
        for traf in boxes(data, moof.1 + 8, moof.2)
            .iter()
            .filter(|b| &b.0 == b"traf")
        {
            if let Some(e) = traf_end_us(data, (traf.1, traf.2)) {
                end_us = end_us.max(e);
            }
        }
    }
    Some(Scan {
        good_end,
        mehd_at: mehd.0 as u64 + 12,
        fragments,
        end_us,
    })
}

/// End of a track fragment in µs: its decode time plus its samples' durations.
fn traf_end_us(data: &[u8], traf: (usize, usize)) -> Option<u64> {
    let rd32 = |at: usize| {
        data.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let tfhd = child(data, traf, b"tfhd", 8)?;
    let track = rd32(tfhd.0 + 12)?;
    let tfdt = child(data, traf, b"tfdt", 8)?;
    let base = u64::from_be_bytes(data.get(tfdt.0 + 12..tfdt.0 + 20)?.try_into().ok()?);
    let trun = child(data, traf, b"trun", 8)?;
    let flags = rd32(trun.0 + 8)? & 0x00ff_ffff;
    let count = rd32(trun.0 + 12)? as usize;
    let mut at =
        trun.0 + 16 + if flags & 0x1 != 0 { 4 } else { 0 } + if flags & 0x4 != 0 { 4 } else { 0 };
    let per = [0x100, 0x200, 0x400, 0x800]
        .iter()
        .filter(|f| flags & **f != 0)
        .count()
        * 4;
    if flags & 0x100 == 0 {
        return None;
    }
    let mut total = 0u64;
    for _ in 0..count {
        total += u64::from(rd32(at)?);
        at += per;
    }
    let scale = if track == VIDEO_TRACK {
        VIDEO_SCALE
    } else {
        AUDIO_SCALE
    };
    Some((base + total) * 1_000_000 / scale)
}

#[cfg(test)]
#[path = "mp4_tests.rs"]
mod tests;
