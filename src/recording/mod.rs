//! Recording lessons: the consumer of the SFU's recorder tap, one playable file per lesson (and
//! codec segment): WebM for VP8/VP9, fragmented MP4 for H.264 (see `lesson_file`).
//!
//! ## Data flow
//!
//! ```text
//! shard threads ── RecordSink (bounded mpsc, try_send; a full queue is counted by the shard)
//!        │
//!        ▼  recorder thread (one OS thread; never a shard or a tokio worker)
//!   Started ─► RoomRecording::start: dir/<room>/<room>-<UTC>.webm.part + <…>.json
//!   Video ───► reorder ─► VP8/VP9 depacketize ─► frames on the recording's clock ─┐
//!   Audio ───► per-mic Opus decode (PLC/FEC) ─► mix ─► Opus encode ───────────────┴► LiveWebm
//!   tick (≤ flush_every / 2) ─► clusters to the file, fdatasync
//!   Stopped ─► finalize in place (Cues, Duration, SeekHead) ─► rename to .webm
//!        │
//!        ▼  hasher thread: SHA-256 of the file ─► sidecar JSON ─► RecordingStatus::Finished
//! ```
//!
//! Statuses (`Started`, `Finished`, `Failed`) go out on a broadcast channel, which never blocks
//! the recorder. A write error (a full disk) stops that room's recording only: what is on disk
//! is finalized if the Cues still fit, else left as `.part` for [`recover`], which after a crash
//! also cuts a torn last cluster off and finalizes what survived. The `.part` file is a live
//! WebM (unknown-size Segment, whole clusters) that players read up to its last cluster.
//!
//! The recorder does not choose what is recorded: the tap in `ketang_sfu` follows the stage and
//! gets keyframes on switches (`Sources` events are informational here: a microphone joins the
//! mix with its first packet and leaves it when its packets stop). VP8 and VP9 are written as
//! they come (no video transcoding; a resolution change is a keyframe with a new size, which
//! VP8/VP9 decoders and players follow). H.264 cannot go into WebM: it goes into a fragmented
//! MP4 (`mp4`, depacketized by `h264`), and a switch between the two families starts the
//! next codec segment, a file of its own (`lesson_file`).
//!
//! The files use a TimestampScale of 100 µs instead of the usual 1 ms (see `webm::TICK_US`).

mod audio;
mod ebml;
#[cfg(test)]
mod fuzz_tests;
mod h264;
mod lesson_file;
mod manifest;
mod mp4;
mod mp4_box;
mod part_file;
mod repair;
mod room;
mod video;
mod webm;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ketang_sfu::{RecordEvent, RoomId};
use serde::Serialize;

pub use manifest::{OnDisk, finished_file, finished_files, prune_empty, recover, remove_finished};
pub use worker::{Recorder, RecorderHandle, RecorderStats};

/// Called on the recorder thread before each event is handled. For instrumentation; tests use
/// it to stall the writer the way a slow disk would.
pub type EventHook = Arc<dyn Fn(&RecordEvent) + Send + Sync>;

/// How the recorder runs.
#[derive(Clone)]
pub struct RecorderSettings {
    /// Recordings go to `dir/<room>/`.
    pub dir: PathBuf,
    /// Capacity of the queue from the shards (events; a 720p lesson is ~200 per second).
    pub queue: usize,
    /// Data older than this reaches the file and the disk (capped at 2 s).
    pub flush_every: Duration,
    /// Also keep every recorded track as its own WebM (video as sent while it was on the
    /// stage, audio as received, not re-encoded).
    pub per_track: bool,
    /// Jitter buffer of the mix: audio is mixed this far behind the newest arrival.
    pub mix_delay: Duration,
    /// How long a missing video packet is waited for.
    pub video_reorder: Duration,
    /// Longest cluster in media time (at most 3 s); a cluster also starts at every video
    /// keyframe, so seeking lands on keyframes.
    pub cluster_max: Duration,
    /// Bitrate of the mixed Opus stream (mono, 48 kHz, 20 ms frames).
    pub audio_bitrate: u32,
    /// See [`EventHook`].
    pub on_event: Option<EventHook>,
}

impl RecorderSettings {
    /// Defaults for recording into `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        RecorderSettings {
            dir: dir.into(),
            queue: 4096,
            flush_every: Duration::from_secs(1),
            per_track: false,
            mix_delay: Duration::from_millis(300),
            video_reorder: Duration::from_millis(150),
            cluster_max: Duration::from_secs(1),
            audio_bitrate: 48_000,
            on_event: None,
        }
    }
}

impl std::fmt::Debug for RecorderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecorderSettings")
            .field("dir", &self.dir)
            .field("queue", &self.queue)
            .field("flush_every", &self.flush_every)
            .field("per_track", &self.per_track)
            .field("mix_delay", &self.mix_delay)
            .finish_non_exhaustive()
    }
}

/// What happened to a recording.
#[derive(Debug, Clone)]
pub enum RecordingStatus {
    /// A room's recording started; `path` is the live `.part` file.
    Started { room: RoomId, path: PathBuf },
    /// A file is finished: seekable, hashed. One per file (the lesson, and with `per_track`
    /// each track's own).
    Finished(Finished),
    /// The room's recording stopped on an error (disk full, write error). The lesson goes on;
    /// `partial` is what stays on disk (finalized, or a `.part` for [`recover`]).
    Failed {
        room: RoomId,
        error: String,
        partial: Option<PathBuf>,
    },
}

/// A finished recording file and its facts.
#[derive(Debug, Clone, Serialize)]
pub struct Finished {
    pub room: RoomId,
    pub path: PathBuf,
    /// `None` for the lesson; `Some("t3-video")` for a per-track file.
    pub source: Option<String>,
    pub started: SystemTime,
    pub duration: Duration,
    pub bytes: u64,
    pub sha256: String,
    /// What the recorder dropped inside (the lesson file only).
    pub drops: DropCounts,
}

/// A recording finalized by [`recover`] after a crash.
#[derive(Debug, Clone, Serialize)]
pub struct Recovered {
    pub room: String,
    pub path: PathBuf,
    pub source: Option<String>,
    /// From the sidecar; the Unix epoch when it was lost.
    pub started: SystemTime,
    pub duration: Duration,
    pub bytes: u64,
    pub sha256: String,
    /// Bytes of a torn tail cut off.
    pub truncated_bytes: u64,
    /// Time spent repairing and hashing this file.
    pub took: Duration,
}

/// What the recorder dropped inside one room (queue drops are the shard's `record_dropped`).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct DropCounts {
    /// Video packets that never came (lost upstream, or dropped at a full queue).
    pub lost_video: u64,
    /// Video packets that came after their place in the stream was given up.
    pub late_video: u64,
    /// Video frames with a packet missing.
    pub incomplete_frames: u64,
    /// Complete frames skipped while waiting for a keyframe.
    pub skipped_frames: u64,
    /// Video packets or frames of a codec the file cannot hold (H.264, or a codec change).
    pub unsupported_video: u64,
    /// Audio packets that never came.
    pub lost_audio: u64,
    /// Audio packets after their slot was mixed, or duplicates.
    pub late_audio: u64,
    /// Audio synthesized by loss concealment, in milliseconds.
    pub concealed_ms: u64,
    /// Audio packets libopus refused.
    pub audio_errors: u64,
    /// Events dropped because the room's recording had failed.
    pub after_failure: u64,
    /// Per-track files that could not be created or written.
    pub track_files_failed: u64,
}

impl DropCounts {
    fn add_paths(
        &mut self,
        depack: &video::Depacketizer,
        reorder: &video::Reorder,
        mixer: &audio::Mixer,
    ) {
        self.lost_video = reorder.lost;
        self.late_video = reorder.late;
        self.incomplete_frames = depack.incomplete;
        self.skipped_frames = depack.skipped;
        self.lost_audio = mixer.stats.lost_packets;
        self.late_audio = mixer.stats.late_packets;
        self.concealed_ms = mixer.stats.concealed_samples / 48;
        self.audio_errors += mixer.stats.decode_errors;
    }
}

/// The room an event belongs to.
fn room_of(ev: &RecordEvent) -> Option<&RoomId> {
    match ev {
        RecordEvent::Started { room }
        | RecordEvent::Stopped { room }
        | RecordEvent::Video { room, .. }
        | RecordEvent::Audio { room, .. }
        | RecordEvent::Sources { room, .. } => Some(room),
        _ => None,
    }
}
