//! The boxes of the fragmented MP4 writer (`mp4`): the header (ftyp + moov), one fragment
//! (moof + mdat), and the scan that finds the last whole fragment of a file cut by a crash.

use super::h264::sps_size;
use super::mp4::{
    AUDIO_SCALE, AUDIO_TRACK, Fragment, MOVIE_SCALE, Mp4Audio, NON_SYNC, SYNC, VIDEO_SCALE,
    VIDEO_TRACK,
};

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

pub(super) struct Header {
    pub bytes: Vec<u8>,
    pub mehd_at: u64,
}

pub(super) fn header(sps: &[u8], pps: &[u8], audio: &Mp4Audio) -> Header {
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
pub(super) fn fragment(sequence: u32, f: &Fragment) -> Vec<u8> {
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
pub(super) struct Scan {
    pub good_end: u64,
    pub mehd_at: u64,
    pub fragments: u32,
    pub end_us: u64,
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
pub(super) fn scan(data: &[u8]) -> Option<Scan> {
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
