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

use super::part_file::PartFile;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use super::h264::parameter_sets;
use super::mp4_box::{fragment, header, scan};
use super::webm::Finalized;

/// Track ids in the file.
pub(crate) const VIDEO_TRACK: u32 = 1;
pub(crate) const AUDIO_TRACK: u32 = 2;
pub(super) const VIDEO_SCALE: u64 = 90_000;
pub(super) const AUDIO_SCALE: u64 = 48_000;
pub(super) const MOVIE_SCALE: u64 = 1_000;
/// `sample_flags`: a sync sample, and a sample that depends on others (ISO 14496-12 §8.8.3.1).
pub(super) const SYNC: u32 = 0x0200_0000;
pub(super) const NON_SYNC: u32 = 0x0101_0000;

/// The audio track of a file.
#[derive(Debug, Clone)]
pub(crate) struct Mp4Audio {
    pub channels: u8,
    pub pre_skip: u16,
}

pub(super) struct Sample {
    pub dts: u64,
    pub duration: u32,
    pub flags: u32,
    pub data: Vec<u8>,
}

#[derive(Default)]
pub(super) struct Fragment {
    pub video: Vec<Sample>,
    pub audio: Vec<Sample>,
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
    out: PartFile,
    audio: Mp4Audio,
    /// Offset of mehd's 64-bit duration, once the header is on disk.
    mehd_at: Option<u64>,
    frag: Fragment,
    held: Option<Held>,
    sequence: u32,
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
        Ok(LiveMp4 {
            out: PartFile::create(path)?,
            audio,
            mehd_at: None,
            frag: Fragment::default(),
            held: None,
            sequence: 0,
            end_us: 0,
            committed_end_us: 0,
            fragment_max_us: fragment_max.as_micros().clamp(100_000, 3_000_000) as u64,
            last_video_dts: None,
            last_audio_end: None,
        })
    }

    pub fn path(&self) -> &Path {
        self.out.path()
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
            self.out.append(&header.bytes)?;
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
        self.out.append(&bytes)?;
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
        self.out.sync_if_dirty()
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
            self.out
                .patch(at, &(duration_ms * MOVIE_SCALE / 1000).to_be_bytes())?;
        }
        let bytes = self.out.finish(final_path)?;
        Ok(Finalized {
            path: final_path.to_owned(),
            duration_ms,
            bytes,
        })
    }

    /// Opens a file left by a crash: cuts a torn last fragment off and returns a writer ready
    /// to [`finalize`](Self::finalize) and the bytes cut; `Ok(None)` if the header never made
    /// it to disk.
    pub fn reopen(path: &Path) -> io::Result<Option<(Self, u64)>> {
        let (file, data) = PartFile::open_left(path)?;
        let Some(scan) = scan(&data) else {
            return Ok(None);
        };
        let cut = data.len() as u64 - scan.good_end;
        let w = LiveMp4 {
            out: PartFile::resume(file, path, scan.good_end)?,
            audio: Mp4Audio {
                channels: 1,
                pre_skip: 0,
            },
            mehd_at: Some(scan.mehd_at),
            frag: Fragment::default(),
            held: None,
            sequence: scan.fragments,
            end_us: scan.end_us,
            committed_end_us: scan.end_us,
            fragment_max_us: 1_000_000,
            last_video_dts: None,
            last_audio_end: None,
        };
        Ok(Some((w, cut)))
    }
}

#[cfg(test)]
#[path = "mp4_tests.rs"]
mod tests;
