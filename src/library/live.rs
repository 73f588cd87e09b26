//! Recordings of live rooms: when they start and stop, what the room and the teacher are
//! told, and the hand-over of finished files to the library.
//!
//! ```text
//! peer joins a lesson room ──► joined(): lesson.record? ──► media.set_recording(room, on)
//! teacher startRecording / stopRecording ─────────────────► media.set_recording(room, ..)
//!                       shard tap ─► recorder thread ─► RecordingStatus (broadcast)
//!                                                              │ status loop (one task)
//!   Started  ─► catalog entry `recording`, room told `recording {on}`
//!   Finished ─► import queue ─► object store, entry `ready`
//!   Failed   ─► entry error, tap off, teacher told (`error` recordingFailed), room told off;
//!               a partial file that could be finalized is imported like a finished one
//! ```
//!
//! A room whose teacher stopped the recording, or whose recording failed, is not restarted
//! by later joins (the teacher may start it again): a full disk must not turn every join
//! into a new failure.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use ketang_sfu::{Role, RoomId};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use super::catalog::{self, Entry, LessonFacts};
use super::ids::RecordingId;
use super::import::Job;
use crate::auth::RoomClaims;
use crate::db::ids::OccurrenceId;
use crate::media::PeerSignal;
use crate::recording::{RecorderHandle, RecorderStats, RecordingStatus};
use crate::room_signal::Notice;
use crate::state::AppState;

/// Failures kept for the status endpoint.
const RECENT_FAILURES: usize = 20;
/// How long a teacher's stop (or a failure) keeps joins from restarting a room's recording,
/// and how long a room's `record` flag is cached.
const STOP_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// A recording running in a room.
#[derive(Debug, Clone)]
pub struct Active {
    pub id: RecordingId,
    /// Unix ms; notes are timed from here.
    pub started_ms: u64,
    /// The recorder's `.part` file.
    pub part: PathBuf,
}

/// A recording that stopped on an error.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureInfo {
    pub room: String,
    pub recording_id: Option<String>,
    pub at_ms: u64,
    pub error: String,
}

/// Why a teacher's recording command was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("recording is turned off on this server")]
    Disabled,
    #[error("the room is not live on this server")]
    NotLive,
}

/// Live recording state of this server.
pub struct LiveRecordings {
    enabled: bool,
    recorder: Mutex<Option<RecorderHandle>>,
    active: DashMap<RoomId, Active>,
    /// Rooms not to restart on join, with when that was decided (aged out in memory only).
    stopped: DashMap<RoomId, Instant>,
    /// Lesson rooms' `record` flag, read once per room (with when it was read).
    record_flag: DashMap<RoomId, (bool, Instant)>,
    failures: Mutex<VecDeque<FailureInfo>>,
    imports: mpsc::UnboundedSender<Job>,
    import_rx: Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
}

impl LiveRecordings {
    pub fn new(recorder: Option<RecorderHandle>) -> Self {
        let (imports, rx) = mpsc::unbounded_channel();
        LiveRecordings {
            enabled: recorder.is_some(),
            recorder: Mutex::new(recorder),
            active: DashMap::new(),
            stopped: DashMap::new(),
            record_flag: DashMap::new(),
            failures: Mutex::new(VecDeque::new()),
            imports,
            import_rx: Mutex::new(Some(rx)),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The recording running in `room`.
    pub fn active(&self, room: &RoomId) -> Option<Active> {
        self.active.get(room).map(|a| a.clone())
    }

    pub fn active_all(&self) -> Vec<(RoomId, Active)> {
        self.active
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect()
    }

    pub fn recent_failures(&self) -> Vec<FailureInfo> {
        self.failures
            .lock()
            .map(|f| f.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    pub fn recorder_stats(&self) -> Option<RecorderStats> {
        self.recorder.lock().ok()?.as_ref().map(|h| h.stats())
    }

    /// A peer joined `claims.room`: a lesson room whose lesson records starts its recording
    /// (a no-op in the SFU when it already runs). Runs in the background: joins never wait
    /// for the database here.
    pub fn joined(state: &AppState, claims: &RoomClaims) {
        let live = &state.library.live;
        if !live.enabled || claims.lesson.is_none() || live.stopped.contains_key(&claims.room) {
            return;
        }
        let (state, room) = (state.clone(), claims.room.clone());
        tokio::spawn(async move {
            let flag = match state.library.live.record_flag.get(&room).map(|f| f.0) {
                Some(f) => f,
                None => match catalog::lesson_facts(&state.db.pool, room.as_str()).await {
                    Ok(facts) => {
                        let f = facts.is_some_and(|f| f.record);
                        let entry = (f, Instant::now());
                        state.library.live.record_flag.insert(room.clone(), entry);
                        f
                    }
                    Err(e) => {
                        tracing::warn!(%room, error = %e, "cannot read the lesson's record flag");
                        return;
                    }
                },
            };
            if flag && !state.library.live.stopped.contains_key(&room) {
                state.media.set_recording(&room, true).await;
            }
        });
    }

    /// The teacher starts recording `room`.
    pub async fn start(&self, state: &AppState, room: &RoomId) -> Result<(), ControlError> {
        if !self.enabled {
            return Err(ControlError::Disabled);
        }
        self.stopped.remove(room);
        if state.media.set_recording(room, true).await {
            Ok(())
        } else {
            Err(ControlError::NotLive)
        }
    }

    /// The teacher stops recording `room`; the room is told at once (the file is finished and
    /// stored in the background).
    pub async fn stop(&self, state: &AppState, room: &RoomId) -> Result<(), ControlError> {
        self.stopped.insert(room.clone(), Instant::now());
        if !state.media.set_recording(room, false).await {
            return Err(ControlError::NotLive);
        }
        if let Some((_, a)) = self.active.remove(room) {
            state.media.notify_room(room, off(Some(&a.id), None));
        }
        Ok(())
    }

    /// Finishes what is being recorded (for at most `within`); true if all of it finished.
    /// Blocking.
    pub fn shutdown(&self, within: Duration) -> bool {
        let handle = self.recorder.lock().ok().and_then(|mut r| r.take());
        handle.is_none_or(|h| h.shutdown(within))
    }

    /// Hands work to the import worker.
    pub fn queue(&self, job: Job) {
        let _ = self.imports.send(job);
    }

    fn remember_failure(&self, f: FailureInfo) {
        if let Ok(mut q) = self.failures.lock() {
            if q.len() == RECENT_FAILURES {
                q.pop_front();
            }
            q.push_back(f);
        }
    }

    fn forget_old(&self) {
        self.stopped.retain(|_, at| at.elapsed() < STOP_MEMORY);
        self.record_flag
            .retain(|_, (_, at)| at.elapsed() < STOP_MEMORY);
    }
}

fn off(id: Option<&RecordingId>, error: Option<String>) -> Notice {
    Notice::Recording {
        on: false,
        recording_id: id.map(|i| i.to_string()),
        since: None,
        error,
    }
}

/// The notice for a room's current recording state.
pub fn state_notice(a: Option<&Active>) -> Notice {
    match a {
        Some(a) => Notice::Recording {
            on: true,
            recording_id: Some(a.id.to_string()),
            since: Some(a.started_ms),
            error: None,
        },
        None => off(None, None),
    }
}

/// Starts the import worker, queues what earlier runs left for it, and starts the status
/// loop (when recording is enabled).
pub fn spawn(state: AppState, statuses: Option<broadcast::Receiver<RecordingStatus>>) {
    let rx = state
        .library
        .live
        .import_rx
        .lock()
        .ok()
        .and_then(|mut r| r.take());
    if let Some(rx) = rx {
        tokio::spawn(super::import::worker(state.clone(), rx));
    }
    let dir = state.library.recordings_dir.clone();
    if !dir.as_os_str().is_empty() {
        // Taken before any status of this run is handled: entries older than this that are
        // still running were lost.
        let since = state.clock.now_ms();
        let state = state.clone();
        tokio::spawn(async move {
            super::import::at_start(&state, dir, since).await;
        });
    }
    let Some(mut statuses) = statuses else {
        return;
    };
    tokio::spawn(async move {
        loop {
            match statuses.recv().await {
                Ok(s) => on_status(&state, s).await,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    // Lost Finished statuses leave files that the next start imports.
                    tracing::warn!(missed = n, "recording statuses lost");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}

async fn on_status(state: &AppState, s: RecordingStatus) {
    let live = &state.library.live;
    match s {
        RecordingStatus::Started { room, path } => started(state, room, path).await,
        RecordingStatus::Finished(f) => {
            if f.source.is_none() {
                // `name.mp4` (an H.264 lesson) was started as `name.webm.part` too.
                let part = lesson_part_of(&f.path).unwrap_or_else(|| part_of(&f.path));
                live.active.remove_if(&f.room, |_, a| a.part == part);
            }
            live.queue(Job::File(f.path));
        }
        RecordingStatus::Failed {
            room,
            error,
            partial,
        } => failed(state, room, error, partial).await,
    }
    live.forget_old();
}

/// The file a recording was started as (its entry's `local_path`): `dir/room-stamp.webm.part`
/// for the lesson `dir/room-stamp.webm` or `.mp4`, its codec segments `dir/room-stamp.seg2.mp4`
/// and its per-track files `dir/room-stamp.t3-video.webm` (room ids have no dots).
pub fn lesson_part_of(file: &Path) -> Option<PathBuf> {
    let name = file.file_name()?.to_str()?;
    let stem = name.split('.').next()?;
    Some(file.with_file_name(format!("{stem}.webm.part")))
}

/// `….webm` → `….webm.part`.
pub fn part_of(target: &Path) -> PathBuf {
    let mut s = target.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

async fn started(state: &AppState, room: RoomId, path: PathBuf) {
    let now = state.clock.now_ms_u64();
    let tz = &state.config.schedule.timezone;
    let facts = if OccurrenceId::parse(room.as_str()).is_some() {
        match catalog::lesson_facts(&state.db.pool, room.as_str()).await {
            Ok(Some(f)) => f,
            Ok(None) => LessonFacts::ad_hoc(room.as_str(), tz),
            Err(e) => {
                tracing::warn!(%room, error = %e, "lesson facts unavailable; entry made without");
                LessonFacts::ad_hoc(room.as_str(), tz)
            }
        }
    } else {
        LessonFacts::ad_hoc(room.as_str(), tz)
    };
    let id = RecordingId::generate(now);
    let mut entry = Entry::new(&id, room.as_str(), facts, now as i64, now as i64);
    entry.local_path = Some(path.to_string_lossy().into_owned());
    entry.node = Some(state.library.node.clone());
    if let Err(e) = catalog::insert(&state.db.pool, &entry).await {
        // The file is still written; the import at its end makes the entry then.
        tracing::warn!(%room, error = %e, "recording not entered in the catalog");
    }
    let active = Active {
        id,
        started_ms: now,
        part: path,
    };
    state.media.notify_room(&room, state_notice(Some(&active)));
    state.library.live.active.insert(room, active);
}

async fn failed(state: &AppState, room: RoomId, error: String, partial: Option<PathBuf>) {
    let live = &state.library.live;
    let active = live.active.remove(&room).map(|(_, a)| a);
    let now = state.clock.now_ms_u64();
    live.stopped.insert(room.clone(), Instant::now());
    live.remember_failure(FailureInfo {
        room: room.to_string(),
        recording_id: active.as_ref().map(|a| a.id.to_string()),
        at_ms: now,
        error: error.clone(),
    });
    // Stop the tap: its packets would only be counted as dropped.
    state.media.set_recording(&room, false).await;
    let kept = partial.as_deref().and_then(crate::recording::finished_file);
    if let Some(a) = &active
        && let Err(e) = catalog::set_error(
            &state.db.pool,
            a.id.as_str(),
            &error,
            kept.is_none(),
            now as i64,
        )
        .await
    {
        tracing::warn!(%room, error = %e, "recording failure not entered in the catalog");
    }
    let message = format!("the recording stopped: {error}; the lesson goes on");
    tell_teachers(state, &room, Notice::RecordingFailed { message }).await;
    state
        .media
        .notify_room(&room, off(active.as_ref().map(|a| &a.id), Some(error)));
    if let Some(f) = kept {
        live.queue(Job::File(f.path));
    }
}

/// Sends `notice` to the teachers present in `room`.
async fn tell_teachers(state: &AppState, room: &RoomId, notice: Notice) {
    let Some(shard) = state.media.shard_of(room) else {
        return;
    };
    let Ok(Some(snap)) = shard.snapshot(room.clone()).await else {
        return;
    };
    for p in snap.participants.iter().filter(|p| p.role == Role::Teacher) {
        if let Some(tx) = state.media.registry.get(&p.peer_id) {
            let _ = tx.send(PeerSignal::Notice(notice.clone()));
        }
    }
}
