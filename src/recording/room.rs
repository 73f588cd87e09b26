//! One room being recorded: its timeline, the video and audio paths, and its files.
//!
//! ```text
//! Video ─► Reorder ─► Depacketizer ─► frame time from RTP ts ─► video queue ─┐
//! Audio ─► Mixer (decode, place, conceal) ─► mix up to horizon ─► Opus ──────┴► interleave
//!                                                            by time ─► LiveWebm (.part)
//! (per_track) video frames by source track, Opus packets as received ─► one LiveWebm each
//! ```
//!
//! The timeline starts at the first media packet's arrival (`t0`); both paths map onto it, so
//! audio and video share one clock. Everything advances with event arrival times, never the
//! wall clock, so a backlog drained late still lands in the right place. The mix horizon
//! (newest arrival − mix delay) is where both streams are written up to, which keeps the file
//! interleaved in time.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use ketang_sfu::{RecordEvent, RoomId, TrackId, VideoCodec};
use tracing::{info, warn};

use super::audio::{FRAME, Mixer, RawAudio, opus_head};
use super::lesson_file::{Container, LessonFile, Writer, codec_name, finish_lesson};
use super::manifest::Manifest;
use super::mp4::{LiveMp4, Mp4Audio};
use super::video::{Depacketizer, Frame, Ordered, Packet, Reorder};
use super::webm::{Finalized, LiveWebm, TrackSpec};
use super::{DropCounts, RecorderSettings};

/// A recording failed; `partial` is what stays on disk.
#[derive(Debug)]
pub(crate) struct Failure {
    pub error: String,
    pub partial: Option<PathBuf>,
}

struct VideoOut {
    us: u64,
    frame: Frame,
}

struct TrackFile {
    webm: LiveWebm,
    manifest: Manifest,
}

pub(crate) struct RoomRecording {
    room: RoomId,
    settings: Arc<RecorderSettings>,
    /// The current codec segment's file; `None` once failed.
    main: Option<LessonFile>,
    pub manifest: Manifest,
    /// Segments already finished (a codec switch), in order.
    segments: Vec<(Finalized, Manifest)>,
    /// `dir/<room>-<UTC>[-n]`: the lesson's file name without extension.
    base: PathBuf,
    t0: Option<Instant>,
    latest: Option<Instant>,
    reorder: Reorder,
    depack: Depacketizer,
    /// (extended ts, µs) of the video anchor, and the last extended ts.
    video_anchor: Option<(i64, u64)>,
    video_last_ts: i64,
    video_queue: VecDeque<VideoOut>,
    mixer: Mixer,
    tracks: HashMap<TrackId, TrackFile>,
    pub drops: DropCounts,
    pub failed: bool,
}

fn codec_id(c: VideoCodec) -> &'static str {
    match c {
        VideoCodec::Vp9 => "V_VP9",
        _ => "V_VP8",
    }
}

fn webm_tracks(mixer: &Mixer) -> Vec<TrackSpec> {
    vec![
        TrackSpec::Video {
            codec: "V_VP8",
            width: 1280,
            height: 720,
        },
        TrackSpec::Audio {
            channels: 1,
            private: mixer.opus_head(),
            codec_delay_ns: mixer.codec_delay_ns(),
            seek_preroll_ns: 80_000_000,
        },
    ]
}

impl RoomRecording {
    /// Creates `dir/<room>/<room>-<UTC time>.webm.part` and its manifest.
    pub fn start(room: RoomId, settings: Arc<RecorderSettings>) -> io::Result<Self> {
        let mixer = Mixer::new(settings.audio_bitrate).map_err(io::Error::other)?;
        let dir = settings.dir.join(room.as_str());
        std::fs::create_dir_all(&dir)?;
        let started = SystemTime::now();
        let stamp = jiff::Timestamp::try_from(started)
            .map(|t| t.strftime("%Y%m%dT%H%M%SZ").to_string())
            .unwrap_or_else(|_| "unknown".into());
        let tracks = webm_tracks(&mixer);
        let cluster_ms = settings.cluster_max.as_millis() as u64;
        let (webm, target) = create_unique(&dir, &format!("{room}-{stamp}"), |p| {
            LiveWebm::create(p, tracks.clone(), room.as_str(), cluster_ms)
        })?;
        let manifest = Manifest::new(room.as_str(), started, &target, None);
        manifest.store()?;
        info!(room = %room, path = %webm.path().display(), "recording started");
        Ok(RoomRecording {
            room,
            main: Some(LessonFile {
                writer: Writer::Webm(webm),
                origin_us: 0,
                video: None,
            }),
            manifest,
            segments: Vec::new(),
            base: target.with_extension(""),
            t0: None,
            latest: None,
            reorder: Reorder::new(settings.video_reorder),
            depack: Depacketizer::default(),
            video_anchor: None,
            video_last_ts: 0,
            video_queue: VecDeque::new(),
            mixer,
            tracks: HashMap::new(),
            drops: DropCounts::default(),
            failed: false,
            settings,
        })
    }

    pub fn part_path(&self) -> Option<&Path> {
        self.main.as_ref().map(LessonFile::path)
    }

    fn us(&self, at: Instant) -> u64 {
        self.t0
            .map_or(0, |t0| at.saturating_duration_since(t0).as_micros() as u64)
    }

    fn samples(&self, at: Instant) -> i64 {
        self.t0.map_or(0, |t0| {
            (at.saturating_duration_since(t0).as_micros() as i64) * 48 / 1000
        })
    }

    fn arrived(&mut self, at: Instant) {
        let t0 = *self.t0.get_or_insert(at);
        let latest = self.latest.get_or_insert(t0);
        *latest = (*latest).max(at);
    }

    /// Handles one event of this room (not Started/Stopped).
    pub fn on_event(&mut self, ev: RecordEvent) -> Result<(), Failure> {
        if self.failed {
            self.drops.after_failure += 1;
            return Ok(());
        }
        match ev {
            RecordEvent::Video {
                track,
                codec,
                seq,
                ts,
                marker,
                payload,
                at,
                ..
            } => {
                self.arrived(at);
                let p = Packet {
                    track,
                    codec,
                    seq,
                    ts,
                    marker,
                    payload,
                    at,
                };
                let mut ordered = Vec::new();
                self.reorder.push(p, &mut ordered);
                self.on_ordered(ordered);
                self.advance()
            }
            RecordEvent::Audio {
                track,
                seq,
                ts,
                payload,
                at,
                ..
            } => {
                self.arrived(at);
                let arrival = self.samples(at);
                if self.mixer.push(track, seq, ts, arrival, payload).is_err() {
                    self.drops.audio_errors += 1;
                }
                self.advance()
            }
            _ => Ok(()),
        }
    }

    fn on_ordered(&mut self, ordered: Vec<Ordered>) {
        for o in ordered {
            let p = match o {
                Ordered::Lost => {
                    self.depack.lost();
                    continue;
                }
                Ordered::Packet(p) => p,
            };
            if let Some(f) = self.depack.push(p) {
                self.on_frame(f);
            }
        }
    }

    fn on_frame(&mut self, f: Frame) {
        let at_us = self.us(f.at);
        let ext = match self.video_anchor {
            None => i64::from(f.ts),
            Some(_) => {
                self.video_last_ts + i64::from(f.ts.wrapping_sub(self.video_last_ts as u32) as i32)
            }
        };
        self.video_last_ts = ext;
        // RTP time, not arrival: frames keep their capture spacing through network jitter.
        let mut us = match self.video_anchor {
            Some((ats, aus)) => aus as i64 + (ext - ats) * 100 / 9,
            None => at_us as i64,
        };
        if self.video_anchor.is_none() || (us - at_us as i64).abs() > 1_000_000 || us < 0 {
            self.video_anchor = Some((ext, at_us));
            us = at_us as i64;
        }
        self.video_queue.push_back(VideoOut {
            us: us as u64,
            frame: f,
        });
    }

    /// Mixes audio up to the horizon and writes both streams up to there.
    fn advance(&mut self) -> Result<(), Failure> {
        let Some(latest) = self.latest else {
            return Ok(());
        };
        let mut ordered = Vec::new();
        self.reorder.release(Some(latest), &mut ordered);
        self.on_ordered(ordered);
        let delay = self.settings.mix_delay.as_micros() as i64 * 48 / 1000;
        let horizon = self.samples(latest) - delay;
        self.write_up_to(Some(horizon))
    }

    fn write_up_to(&mut self, horizon: Option<i64>) -> Result<(), Failure> {
        let mut audio = Vec::new();
        let mut raw = Vec::new();
        let raw_out = self.settings.per_track.then_some(&mut raw);
        self.mixer.pump(horizon, raw_out, &mut audio);
        let r = self.write_interleaved(audio, horizon.is_none());
        for a in raw {
            self.write_raw_audio(a);
        }
        r.map_err(|e| self.fail(e))
    }

    fn write_interleaved(&mut self, audio: Vec<(i64, Vec<u8>)>, all: bool) -> io::Result<()> {
        for (pos, packet) in audio {
            let a_us = samples_us(pos);
            while self.video_queue.front().is_some_and(|v| v.us <= a_us) {
                self.write_video()?;
            }
            if let Some(main) = self.main.as_mut() {
                main.push_audio(a_us, samples_us(FRAME), &packet)?;
            }
        }
        let audio_us = samples_us(self.mixer.mixed);
        while self
            .video_queue
            .front()
            .is_some_and(|v| all || v.us <= audio_us)
        {
            self.write_video()?;
        }
        Ok(())
    }

    fn write_video(&mut self) -> io::Result<()> {
        let Some(v) = self.video_queue.pop_front() else {
            return Ok(());
        };
        if let Some(main) = self.main.as_mut() {
            let f = &v.frame;
            // A keyframe declares the file's video track (its codec and first size; VP8/VP9
            // and H.264 decoders follow later size changes in the bitstream), or, of a codec
            // the file cannot hold, starts the next segment.
            let fits = match main.video {
                Some(declared) => declared == f.codec,
                None => !f.keyframe || main.accept_keyframe(f.codec, f.size),
            };
            if fits {
                main.push_video(v.us, f.keyframe, &f.data)?;
                if self.manifest.codecs.is_empty() {
                    // On disk at once, so a file recovered after a crash says it too.
                    self.manifest.codecs = vec![codec_name(f.codec).into(), "opus".into()];
                    self.manifest.store()?;
                }
            } else if f.keyframe {
                self.next_segment(&v)?;
            } else {
                self.drops.unsupported_video += 1;
            }
        }
        if self.settings.per_track && v.frame.codec != VideoCodec::H264 {
            let f = &v.frame;
            let spec = TrackSpec::Video {
                codec: codec_id(f.codec),
                width: f.size.map_or(1280, |s| s.0),
                height: f.size.map_or(720, |s| s.1),
            };
            // A source's own file starts at its first keyframe.
            if f.keyframe || self.tracks.contains_key(&f.track) {
                let (track, us, key) = (f.track, v.us, f.keyframe);
                self.write_track(track, "video", spec, us, 0, key, &v.frame.data);
            }
        }
        Ok(())
    }

    fn write_raw_audio(&mut self, a: RawAudio) {
        let stereo = a.payload.first().is_some_and(|toc| toc & 0x04 != 0);
        let spec = TrackSpec::Audio {
            channels: if stereo { 2 } else { 1 },
            private: opus_head(if stereo { 2 } else { 1 }, 0),
            codec_delay_ns: 0,
            seek_preroll_ns: 80_000_000,
        };
        let (us, dur) = (samples_us(a.pos), samples_us(a.samples));
        self.write_track(a.track, "audio", spec, us, dur, true, &a.payload);
    }

    #[allow(clippy::too_many_arguments)]
    fn write_track(
        &mut self,
        track: TrackId,
        kind: &str,
        spec: TrackSpec,
        us: u64,
        dur: u64,
        key: bool,
        data: &[u8],
    ) {
        if self.drops.track_files_failed > 0 && !self.tracks.contains_key(&track) {
            return; // one failure (likely the disk) stops new per-track files too
        }
        let tf = match self.tracks.entry(track) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                if self.main.is_none() {
                    return;
                }
                let base = main_base(&self.base);
                let stem = format!("{base}.{track}-{kind}");
                let dir = self.base.parent().unwrap_or(Path::new("."));
                let cluster_ms = self.settings.cluster_max.as_millis() as u64;
                let created = create_unique(dir, &stem, |p| {
                    LiveWebm::create(p, vec![spec.clone()], self.room.as_str(), cluster_ms)
                });
                let (webm, base) = match created {
                    Ok(x) => x,
                    Err(err) => {
                        warn!(room = %self.room, %track, %err, "per-track file not created");
                        self.drops.track_files_failed += 1;
                        return;
                    }
                };
                let manifest = Manifest::new(
                    self.room.as_str(),
                    self.manifest.started(),
                    &base,
                    Some(format!("{track}-{kind}")),
                );
                if let Err(err) = manifest.store() {
                    warn!(room = %self.room, %track, %err, "per-track manifest not written");
                }
                e.insert(TrackFile { webm, manifest })
            }
        };
        if let Err(err) = tf.webm.push(1, us, dur, key, data) {
            warn!(room = %self.room, %track, %err, "per-track file failed; it stops here");
            self.drops.track_files_failed += 1;
            if let Some(tf) = self.tracks.remove(&track) {
                let _ = finish_file(tf.webm, tf.manifest);
            }
        }
    }

    /// Called every `flush_every / 2`: writes clusters opened at least that long ago and syncs
    /// the files, so no data waits longer than `flush_every` to reach the disk.
    pub fn tick(&mut self, now: Instant) -> Result<(), Failure> {
        let age = self.settings.flush_every / 2;
        let mut failed = Vec::new();
        for (id, tf) in &mut self.tracks {
            if tf.webm.sync(now, age).is_err() {
                failed.push(*id);
            }
        }
        for id in failed {
            self.drops.track_files_failed += 1;
            if let Some(tf) = self.tracks.remove(&id) {
                let _ = finish_file(tf.webm, tf.manifest);
            }
        }
        let Some(main) = self.main.as_mut() else {
            return Ok(());
        };
        main.sync(now, age).map_err(|e| self.fail(e))
    }

    /// A keyframe of a codec the current file cannot hold: replace a blank file, or finish
    /// it and start the next segment at this keyframe.
    fn next_segment(&mut self, v: &VideoOut) -> io::Result<()> {
        let Some(old) = self.main.take() else {
            return Ok(());
        };
        let container = Container::for_codec(v.frame.codec);
        let origin_us = if old.is_blank() {
            let _ = std::fs::remove_file(old.path());
            old.origin_us
        } else {
            let done = finish_lesson(old, self.manifest.clone())?;
            self.segments.push(done);
            v.us
        };
        let n = self.segments.len() + 1;
        let stem = main_base(&self.base);
        let name = if n == 1 {
            format!("{stem}.{}", container.ext())
        } else {
            format!("{stem}.seg{n}.{}", container.ext())
        };
        let target = self.base.with_file_name(name);
        let part = PathBuf::from(format!("{}.part", target.display()));
        let writer = match container {
            Container::Mp4 => {
                let audio = Mp4Audio {
                    channels: 1,
                    pre_skip: self.mixer.pre_skip(),
                };
                Writer::Mp4(LiveMp4::create(&part, audio, self.settings.cluster_max)?)
            }
            Container::Webm => {
                let cluster_ms = self.settings.cluster_max.as_millis() as u64;
                let tracks = webm_tracks(&self.mixer);
                Writer::Webm(LiveWebm::create(
                    &part,
                    tracks,
                    self.room.as_str(),
                    cluster_ms,
                )?)
            }
        };
        let source = (n > 1).then(|| format!("seg{n}"));
        let started = self.manifest.started();
        let mut manifest = Manifest::new(self.room.as_str(), started, &target, source);
        manifest.offset_ms = Some(origin_us / 1000);
        manifest.codecs = vec![codec_name(v.frame.codec).into(), "opus".into()];
        manifest.store()?;
        self.manifest = manifest;
        info!(room = %self.room, path = %part.display(), codec = ?v.frame.codec, "recording: next codec segment");
        let mut file = LessonFile {
            writer,
            origin_us,
            video: None,
        };
        file.accept_keyframe(v.frame.codec, v.frame.size);
        file.push_video(v.us, true, &v.frame.data)?;
        self.main = Some(file);
        Ok(())
    }

    /// Writes everything still buffered and finalizes the files (the lesson's first).
    pub fn finish(mut self) -> Result<(Vec<(Finalized, Manifest)>, DropCounts), Failure> {
        if self.failed {
            return Err(Failure {
                error: "recording had failed".into(),
                partial: None,
            });
        }
        let mut ordered = Vec::new();
        self.reorder.release(None, &mut ordered);
        self.on_ordered(ordered);
        self.write_up_to(None)?;
        self.drops
            .add_paths(&self.depack, &self.reorder, &self.mixer);
        let mut done = Vec::new();
        for (_, tf) in self.tracks.drain() {
            match finish_file(tf.webm, tf.manifest) {
                Ok(x) => done.push(x),
                Err(err) => warn!(room = %self.room, %err, "per-track file not finalized"),
            }
        }
        let Some(main) = self.main.take() else {
            return Err(Failure {
                error: "no file".into(),
                partial: None,
            });
        };
        let part = main.path().to_owned();
        match finish_lesson(main, self.manifest.clone()) {
            Ok(x) => {
                // The lesson's segments first, in order, then the per-track files.
                let mut files = std::mem::take(&mut self.segments);
                files.push(x);
                files.extend(done);
                Ok((files, self.drops))
            }
            Err(e) => Err(Failure {
                error: e.to_string(),
                partial: Some(part),
            }),
        }
    }

    /// Stops this room's recording after an IO error; keeps what is on disk playable.
    fn fail(&mut self, e: io::Error) -> Failure {
        self.failed = true;
        self.video_queue.clear();
        warn!(room = %self.room, error = %e, "recording failed; stopping it");
        for (_, tf) in self.tracks.drain() {
            let _ = finish_file(tf.webm, tf.manifest);
        }
        let partial = self.main.take().map(|mut w| {
            w.abandon_pending();
            let part = w.path().to_owned();
            // On a full disk the Cues may not fit; then the .part stays for `recover`.
            match finish_lesson(w, self.manifest.clone()) {
                Ok((f, _)) => f.path,
                Err(_) => part,
            }
        });
        Failure {
            error: e.to_string(),
            partial,
        }
    }
}

/// Output samples (48 kHz) → µs.
fn samples_us(pos: i64) -> u64 {
    (pos.max(0) as u64) * 125 / 6
}

/// `…/name` (or `…/name.webm.part`) → `name`.
fn main_base(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("rec");
    name.trim_end_matches(".part")
        .trim_end_matches(".webm")
        .to_owned()
}

/// Creates `dir/stem[-n].webm.part` with the first free `n`; returns the writer and the
/// final path (`….webm`).
fn create_unique(
    dir: &Path,
    stem: &str,
    mut create: impl FnMut(&Path) -> io::Result<LiveWebm>,
) -> io::Result<(LiveWebm, PathBuf)> {
    for n in 1..100 {
        let name = if n == 1 {
            format!("{stem}.webm")
        } else {
            format!("{stem}-{n}.webm")
        };
        let target = dir.join(&name);
        if target.exists() {
            continue;
        }
        match create(&dir.join(format!("{name}.part"))) {
            Ok(w) => return Ok((w, target)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free recording file name",
    ))
}

/// Finalizes one file into its manifest's target and marks the manifest finished (the
/// SHA-256 is added later, off this thread).
pub(crate) fn finish_file(w: LiveWebm, mut m: Manifest) -> io::Result<(Finalized, Manifest)> {
    let f = w.finalize(&m.target())?;
    m.finished(f.duration_ms, f.bytes, None);
    m.store()?;
    Ok((f, m))
}
