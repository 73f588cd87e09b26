//! A WebM file written live and made seekable in place.
//!
//! Layout, fixed when the header is written:
//!
//! ```text
//! EBML header | Segment (size: 8 bytes, "unknown" while live)
//!   Void (80 bytes: becomes SeekHead + Void)   ← patched at finalize
//!   Info (.., Void 11 bytes: becomes Duration) ← patched at finalize
//!   Tracks
//!   Cluster (known size) | Cluster | …         ← each written whole, in one write
//!   Cues                                       ← appended at finalize
//! ```
//!
//! Clusters are built in memory and handed to the file whole, so after a crash the file is a
//! playable live WebM plus at most one torn cluster, which [`LiveWebm::reopen`] cuts off.
//! Finalizing appends Cues and patches three fixed-size fields: O(cues), never a copy of the
//! file, so stopping a long lesson does not stall the recorder thread that serves every room.

use super::part_file::PartFile;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::ebml::{self, Buf, id};
use super::repair::scan;

/// What one track of a file carries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TrackSpec {
    Video {
        /// "V_VP8" or "V_VP9".
        codec: &'static str,
        width: u16,
        height: u16,
    },
    Audio {
        channels: u8,
        /// OpusHead.
        private: Vec<u8>,
        codec_delay_ns: u64,
        seek_preroll_ns: u64,
    },
}

impl TrackSpec {
    pub fn is_video(&self) -> bool {
        matches!(self, TrackSpec::Video { .. })
    }
}

/// Where the patched fields live (absolute file offsets).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Layout {
    pub segment_size: u64,
    pub segment_data: u64,
    pub seek_area: u64,
    pub seek_area_len: u64,
    pub duration: u64,
    pub info: u64,
    pub tracks: u64,
}

pub(crate) struct Cue {
    pub time_t: u64,
    pub track: u64,
    /// Relative to the segment's data.
    pub pos: u64,
}

struct OpenCluster {
    start_t: u64,
    body: Buf,
    opened: Instant,
}

/// A file finalized: seekable, with Duration and Cues, under its final name.
#[derive(Debug, Clone)]
pub(crate) struct Finalized {
    pub path: PathBuf,
    pub duration_ms: u64,
    pub bytes: u64,
}

/// A WebM file being written (`*.webm.part`).
pub(crate) struct LiveWebm {
    out: PartFile,
    tracks: Vec<TrackSpec>,
    title: String,
    created: SystemTime,
    layout: Option<Layout>,
    cluster: Option<OpenCluster>,
    cues: Vec<Cue>,
    /// Bytes known to be complete in the file.
    end_t: u64,
    /// `end_t` of what is in the file.
    committed_end_t: u64,
    last_t: u64,
    video_cue_seen: bool,
    cluster_max_t: u64,
}

/// Longest cluster in media time; block timestamps are 16-bit relative to the cluster.
const CLUSTER_MAX_MS: u64 = 3_000;
/// One timestamp unit (TimestampScale 100 µs): 30 fps frames land within 0.3 % of their true
/// time, where whole milliseconds (33, 33, 34) make ffmpeg see two frames in one 1/30 s slot.
/// Block timestamps are 16-bit relative to the cluster: clusters stay under 3.2 s.
pub(crate) const TICK_US: u64 = 100;
const SEEK_AREA: usize = 80;
const DURATION_LEN: usize = 11;

impl LiveWebm {
    /// Creates `path` (which must not exist). The header is written with the first cluster, so
    /// a video track's size can come from the first keyframe.
    pub fn create(
        path: &Path,
        tracks: Vec<TrackSpec>,
        title: &str,
        cluster_max_ms: u64,
    ) -> io::Result<Self> {
        Ok(LiveWebm {
            out: PartFile::create(path)?,
            tracks,
            title: title.to_owned(),
            created: SystemTime::now(),
            layout: None,
            cluster: None,
            cues: Vec::new(),
            end_t: 0,
            committed_end_t: 0,
            last_t: 0,
            video_cue_seen: false,
            cluster_max_t: cluster_max_ms.clamp(100, CLUSTER_MAX_MS) * 1000 / TICK_US,
        })
    }

    pub fn path(&self) -> &Path {
        self.out.path()
    }

    /// Replaces a track's description while the header is not written yet; true if it was.
    /// Whether the header (hence anything) is on disk.
    pub fn header_written(&self) -> bool {
        self.layout.is_some()
    }

    pub fn set_track(&mut self, index: usize, spec: TrackSpec) -> bool {
        if self.layout.is_some() {
            return false;
        }
        if let Some(t) = self.tracks.get_mut(index) {
            *t = spec;
        }
        true
    }

    /// Adds one frame to track `track` (1-based), times in µs. Times must not decrease across
    /// tracks; a smaller one is clamped (the caller interleaves, this only keeps the file
    /// valid).
    pub fn push(
        &mut self,
        track: u64,
        time_us: u64,
        dur_us: u64,
        keyframe: bool,
        data: &[u8],
    ) -> io::Result<()> {
        let time_t = (time_us / TICK_US).max(self.last_t);
        let is_video = self
            .tracks
            .get(track.saturating_sub(1) as usize)
            .is_some_and(TrackSpec::is_video);
        let video_key = is_video && keyframe;
        if let Some(c) = &self.cluster {
            let span = time_t - c.start_t;
            if (video_key && !c.body.0.is_empty())
                || span >= self.cluster_max_t
                || c.body.0.len() > 8 << 20
            {
                self.close_cluster()?;
            }
        }
        if self.cluster.is_none() {
            // Seeking lands on clusters that start with a video keyframe; until the first
            // keyframe (or in a file without video) every cluster is a seek point.
            let cue = if video_key {
                self.video_cue_seen = true;
                true
            } else {
                !self.video_cue_seen
            };
            if cue {
                self.cues.push(Cue {
                    time_t,
                    track,
                    pos: u64::MAX, // set when the cluster is written
                });
            }
            let mut body = Buf::default();
            body.uint(id::TIMESTAMP, time_t);
            self.cluster = Some(OpenCluster {
                start_t: time_t,
                body,
                opened: Instant::now(),
            });
        }
        let Some(c) = self.cluster.as_mut() else {
            return Ok(());
        };
        let rel = (time_t - c.start_t) as i16;
        let mut block = Vec::with_capacity(data.len() + 4);
        block.push(0x80 | track as u8);
        block.extend_from_slice(&rel.to_be_bytes());
        block.push(if keyframe { 0x80 } else { 0 });
        block.extend_from_slice(data);
        c.body.bytes(id::SIMPLE_BLOCK, &block);
        self.last_t = time_t;
        self.end_t = self.end_t.max(time_t.saturating_add(dur_us / TICK_US));
        Ok(())
    }

    /// Hands the open cluster to the file.
    pub fn close_cluster(&mut self) -> io::Result<()> {
        let Some(c) = self.cluster.take() else {
            return Ok(());
        };
        let written = self.ensure_header().and_then(|layout| {
            let mut out = Buf::default();
            out.bytes(id::CLUSTER, &c.body.0);
            let pos = self.out.written() - layout.segment_data;
            self.out.append(&out.0).map(|()| pos)
        });
        match written {
            Ok(pos) => {
                if let Some(cue) = self.cues.last_mut()
                    && cue.pos == u64::MAX
                {
                    cue.pos = pos;
                }
                self.committed_end_t = self.end_t;
                Ok(())
            }
            Err(e) => {
                // The cluster is lost; keep the index consistent with the file.
                self.cluster = Some(c);
                self.abandon_cluster();
                Err(e)
            }
        }
    }

    /// Forgets the cluster being built (after a failed write, so finalizing needs no space
    /// beyond the Cues).
    pub fn abandon_cluster(&mut self) {
        self.end_t = self.committed_end_t;
        if self.cluster.take().is_some()
            && let Some(cue) = self.cues.last()
            && cue.pos == u64::MAX
        {
            self.cues.pop();
        }
    }

    /// Writes the open cluster if it was opened at least `age` before `now` (wall clock), and
    /// makes what is written durable.
    pub fn sync(&mut self, now: Instant, age: Duration) -> io::Result<()> {
        if self
            .cluster
            .as_ref()
            .is_some_and(|c| now.saturating_duration_since(c.opened) >= age)
        {
            self.close_cluster()?;
        }
        self.out.sync_if_dirty()
    }

    fn ensure_header(&mut self) -> io::Result<Layout> {
        if let Some(l) = self.layout {
            return Ok(l);
        }
        let mut b = Buf::default();
        b.master(id::EBML, |e| {
            e.uint(id::EBML_VERSION, 1);
            e.uint(id::EBML_READ_VERSION, 1);
            e.uint(id::EBML_MAX_ID_LENGTH, 4);
            e.uint(id::EBML_MAX_SIZE_LENGTH, 8);
            e.bytes(id::DOC_TYPE, b"webm");
            e.uint(id::DOC_TYPE_VERSION, 4);
            e.uint(id::DOC_TYPE_READ_VERSION, 2);
        });
        b.id(id::SEGMENT);
        let segment_size = b.0.len() as u64;
        b.0.extend_from_slice(&ebml::UNKNOWN_SIZE_8);
        let segment_data = b.0.len() as u64;
        b.void(SEEK_AREA);
        let info = b.0.len() as u64;
        let mut info_body = Buf::default();
        info_body.uint(id::TIMESTAMP_SCALE, TICK_US * 1000);
        info_body.bytes(id::MUXING_APP, b"ketang");
        info_body.bytes(id::WRITING_APP, b"ketang");
        info_body.bytes(id::DATE_UTC, &date_utc(self.created).to_be_bytes());
        info_body.bytes(id::TITLE, self.title.as_bytes());
        let duration_in_body = info_body.0.len();
        info_body.void(DURATION_LEN);
        b.id(id::INFO);
        b.size(info_body.0.len() as u64);
        let duration = b.0.len() as u64 + duration_in_body as u64;
        b.0.extend_from_slice(&info_body.0);
        let tracks = b.0.len() as u64;
        b.master(id::TRACKS, |t| {
            for (i, spec) in self.tracks.iter().enumerate() {
                t.master(id::TRACK_ENTRY, |e| track_entry(e, i as u64 + 1, spec));
            }
        });
        let layout = Layout {
            segment_size,
            segment_data,
            seek_area: segment_data,
            seek_area_len: SEEK_AREA as u64,
            duration,
            info,
            tracks,
        };
        self.out.rewind();
        self.out.append(&b.0)?;
        self.layout = Some(layout);
        Ok(layout)
    }

    /// Appends Cues, patches Duration, SeekHead and the Segment size, syncs and renames the
    /// file to `final_path`.
    pub fn finalize(mut self, final_path: &Path) -> io::Result<Finalized> {
        self.close_cluster()?;
        let l = self.ensure_header()?;
        let cues_pos = self.out.written() - l.segment_data;
        let mut cues = Buf::default();
        let written: Vec<&Cue> = self.cues.iter().filter(|c| c.pos != u64::MAX).collect();
        if !written.is_empty() {
            cues.master(id::CUES, |b| {
                for c in &written {
                    b.master(id::CUE_POINT, |p| {
                        p.uint(id::CUE_TIME, c.time_t);
                        p.master(id::CUE_TRACK_POSITIONS, |t| {
                            t.uint(id::CUE_TRACK, c.track);
                            t.uint(id::CUE_CLUSTER_POSITION, c.pos);
                        });
                    });
                }
            });
            self.out.append(&cues.0)?;
        }
        let mut d = Buf::default();
        d.float(id::DURATION, self.end_t as f64);
        self.out.patch(l.duration, &d.0)?;
        let mut seek = Buf::default();
        seek.master(id::SEEK_HEAD, |s| {
            let mut entry = |target: u32, pos: u64| {
                s.master(id::SEEK, |e| {
                    e.bytes(id::SEEK_ID, &target.to_be_bytes());
                    e.uint8(id::SEEK_POSITION, pos);
                });
            };
            entry(id::INFO, l.info - l.segment_data);
            entry(id::TRACKS, l.tracks - l.segment_data);
            if !cues.0.is_empty() {
                entry(id::CUES, cues_pos);
            }
        });
        // A reopened file's seek area is what the scan found before Info.
        let rest = (l.seek_area_len as usize)
            .checked_sub(seek.0.len())
            .ok_or_else(|| io::Error::other("no room for the SeekHead before Info"))?;
        seek.void(rest);
        self.out.patch(l.seek_area, &seek.0)?;
        let mut size = Buf::default();
        size.size_fixed(self.out.written() - l.segment_data, 8);
        self.out.patch(l.segment_size, &size.0)?;
        let bytes = self.out.finish(final_path)?;
        Ok(Finalized {
            path: final_path.to_owned(),
            duration_ms: self.end_t.saturating_mul(TICK_US) / 1000,
            bytes,
        })
    }

    /// Opens a file left by a crash: cuts a torn tail (and Cues of an interrupted finalize)
    /// off and returns a writer ready to [`finalize`](Self::finalize); `Ok(None)` if not even
    /// the header made it to disk.
    pub fn reopen(path: &Path) -> io::Result<Option<(Self, u64)>> {
        let (file, data) = PartFile::open_left(path)?;
        let Some(scan) = scan(&data) else {
            return Ok(None);
        };
        let cut = data.len() as u64 - scan.good_end;
        let w = LiveWebm {
            out: PartFile::resume(file, path, scan.good_end)?,
            tracks: scan.tracks,
            title: String::new(),
            created: SystemTime::now(),
            layout: Some(scan.layout),
            cluster: None,
            video_cue_seen: scan.cues.iter().any(|c| c.1),
            cues: scan.cues.into_iter().map(|(c, _)| c).collect(),
            end_t: scan.end_t,
            committed_end_t: scan.end_t,
            last_t: scan.end_t,
            cluster_max_t: CLUSTER_MAX_MS * 1000 / TICK_US,
        };
        Ok(Some((w, cut)))
    }
}

fn track_entry(e: &mut Buf, number: u64, spec: &TrackSpec) {
    e.uint(id::TRACK_NUMBER, number);
    e.uint(id::TRACK_UID, number);
    e.uint(id::FLAG_LACING, 0);
    match spec {
        TrackSpec::Video {
            codec,
            width,
            height,
        } => {
            e.uint(id::TRACK_TYPE, 1);
            e.bytes(id::CODEC_ID, codec.as_bytes());
            e.master(id::VIDEO, |v| {
                v.uint(id::PIXEL_WIDTH, u64::from(*width));
                v.uint(id::PIXEL_HEIGHT, u64::from(*height));
            });
        }
        TrackSpec::Audio {
            channels,
            private,
            codec_delay_ns,
            seek_preroll_ns,
        } => {
            e.uint(id::TRACK_TYPE, 2);
            e.bytes(id::CODEC_ID, b"A_OPUS");
            e.bytes(id::CODEC_PRIVATE, private);
            e.uint(id::CODEC_DELAY, *codec_delay_ns);
            e.uint(id::SEEK_PRE_ROLL, *seek_preroll_ns);
            e.master(id::AUDIO, |a| {
                a.float(id::SAMPLING_FREQUENCY, 48_000.0);
                a.uint(id::CHANNELS, u64::from(*channels));
            });
        }
    }
}

/// Matroska's DateUTC: nanoseconds since 2001-01-01T00:00:00 UTC.
fn date_utc(t: SystemTime) -> i64 {
    const EPOCH_2001: i64 = 978_307_200;
    let unix_ns = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    unix_ns - EPOCH_2001 * 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tracks() -> Vec<TrackSpec> {
        vec![
            TrackSpec::Video {
                codec: "V_VP8",
                width: 64,
                height: 64,
            },
            TrackSpec::Audio {
                channels: 1,
                private: b"OpusHead".to_vec(),
                codec_delay_ns: 0,
                seek_preroll_ns: 80_000_000,
            },
        ]
    }

    #[test]
    fn a_torn_tail_and_an_interrupted_finalize_are_repaired() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let part = dir.path().join("x.webm.part");
        let mut w = LiveWebm::create(&part, tracks(), "t", 1000)?;
        for i in 0..100u64 {
            if i % 25 == 0 {
                w.push(1, i * 20_000, 0, true, &[0x10, 0, 0])?;
            }
            w.push(2, i * 20_000, 20_000, true, &[0xf8, 1, 2])?;
        }
        w.sync(Instant::now(), Duration::ZERO)?;
        drop(w); // a crash: no finalize
        let good = std::fs::metadata(&part)?.len();
        let mut torn = std::fs::OpenOptions::new().append(true).open(&part)?;
        torn.write_all(&[0x1F, 0x43, 0xB6, 0x75, 0x40, 0x80, 0xE7, 0x81, 0x00, 0xA3])?;
        drop(torn);

        let (w, cut) = LiveWebm::reopen(&part)?.expect("header");
        assert_eq!(cut, 10);
        let done = dir.path().join("x.webm");
        let f = w.finalize(&done)?;
        assert_eq!(f.duration_ms, 2000);
        assert!(!part.exists());
        let bytes = std::fs::read(&done)?;
        assert_eq!(f.bytes, bytes.len() as u64);
        assert!(bytes.len() as u64 > good);
        // The Segment's size is known now and ends at the end of the file.
        let e = ebml::header(&bytes).expect("ebml");
        let seg_at = e.len + e.size.expect("size") as usize;
        let seg = ebml::header(&bytes[seg_at..]).expect("segment");
        assert_eq!(
            seg_at + seg.len + seg.size.expect("known") as usize,
            bytes.len()
        );
        let top: Vec<u32> = ebml::children(&bytes[seg_at + seg.len..])
            .map(|c| c.0)
            .collect();
        assert_eq!(top[..3], [id::SEEK_HEAD, id::VOID, id::INFO]);
        assert_eq!(top.last(), Some(&id::CUES));
        // Four keyframe clusters → four cue points.
        let cues = ebml::children(&bytes[seg_at + seg.len..])
            .find(|c| c.0 == id::CUES)
            .map_or(0, |c| ebml::children(c.1).count());
        assert_eq!(cues, 4);

        // A crash during finalize (Cues written, rename not done): finalizing again gives the
        // same file.
        std::fs::rename(&done, &part)?;
        let (w, cut) = LiveWebm::reopen(&part)?.expect("header");
        assert!(cut > 0);
        let again = w.finalize(&done)?;
        assert_eq!(std::fs::read(&again.path)?, bytes);
        Ok(())
    }

    #[test]
    fn a_file_without_a_header_is_not_recoverable() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let part = dir.path().join("y.webm.part");
        LiveWebm::create(&part, tracks(), "t", 1000)?;
        assert!(LiveWebm::reopen(&part)?.is_none());
        Ok(())
    }
}
