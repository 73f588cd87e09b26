//! Moving finished recordings into the library: upload to the store, entry `ready`, local
//! file removed. One worker does it in order, so a long upload never holds up the status
//! loop, and each step can be repeated: after a crash between the upload and the cleanup the
//! next start finds the file again, sees the entry ready (or the same SHA-256 stored) and only
//! cleans up.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::catalog::{self, Entry, LessonFacts, TrackFile};
use super::ids::RecordingId;
use super::live::{lesson_part_of, part_of};
use super::store::{StoreError, lesson_key, track_key};
use crate::db::ids::OccurrenceId;
use crate::recording::{OnDisk, finished_file, finished_files, remove_finished};
use crate::state::AppState;

/// Work for the import worker.
#[derive(Debug)]
pub enum Job {
    /// A finished file (lesson or per-track) in the recordings directory.
    File(PathBuf),
    /// After the start's own imports: entries created before `before_ms` that are still
    /// `recording` lost their file in a crash.
    Sweep { before_ms: i64 },
}

/// Why a file was not imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("catalog: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no library entry for the lesson file of {0}")]
    NoLesson(String),
    #[error("unexpected track source {0:?}")]
    BadSource(String),
}

/// Handles jobs in order until the queue closes.
pub async fn worker(state: AppState, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = rx.recv().await {
        match job {
            Job::File(path) => {
                let probe = path.clone();
                let found = tokio::task::spawn_blocking(move || finished_file(&probe))
                    .await
                    .ok()
                    .flatten();
                let Some(f) = found else {
                    tracing::warn!(path = %path.display(), "finished recording not found for import");
                    continue;
                };
                match import(&state, &f).await {
                    Ok(id) => {
                        tracing::info!(path = %path.display(), %id, "recording in the library")
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "recording not imported; retried at the next start")
                    }
                }
            }
            Job::Sweep { before_ms } => sweep(&state, before_ms).await,
        }
    }
}

/// Queues every finished file already in `dir` (recovered ones included), then the sweep.
pub async fn at_start(state: &AppState, dir: PathBuf, started_ms: i64) {
    let files = tokio::task::spawn_blocking(move || finished_files(&dir))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let live = &state.library.live;
    for f in files {
        live.queue(Job::File(f.path));
    }
    live.queue(Job::Sweep {
        before_ms: started_ms,
    });
}

async fn sweep(state: &AppState, before_ms: i64) {
    let pool = &state.db.pool;
    let stale = match catalog::running(pool, &state.library.node).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot look for recordings lost in a crash");
            return;
        }
    };
    for e in stale.into_iter().filter(|e| e.created_at < before_ms) {
        let msg = "the server stopped during the recording and nothing of it could be recovered";
        if let Err(err) = catalog::set_error(pool, &e.id, msg, true, state.clock.now_ms()).await {
            tracing::warn!(id = %e.id, error = %err, "cannot mark a lost recording");
        }
    }
}

/// Imports one finished file; returns its entry.
pub async fn import(state: &AppState, f: &OnDisk) -> Result<RecordingId, ImportError> {
    match &f.source {
        None => import_lesson(state, f).await,
        Some(source) => import_track(state, f, source).await,
    }
}

async fn cleanup(path: &Path) {
    let path = path.to_owned();
    let done = tokio::task::spawn_blocking(move || remove_finished(&path)).await;
    if let Ok(Err(e)) = done {
        tracing::warn!(error = %e, "imported recording not removed from the recordings directory");
    }
}

async fn import_lesson(state: &AppState, f: &OnDisk) -> Result<RecordingId, ImportError> {
    let pool = &state.db.pool;
    // The entry was made for the lesson's first file, `name.webm.part`, also when an H.264
    // lesson's file became `name.mp4`.
    let part = lesson_part_of(&f.path)
        .unwrap_or_else(|| part_of(&f.path))
        .to_string_lossy()
        .into_owned();
    let now = state.clock.now_ms();
    let existing = catalog::by_local_path(pool, &part).await?;
    if let Some(e) = existing.as_ref().filter(|e| e.state == catalog::READY) {
        cleanup(&f.path).await;
        return Ok(RecordingId::from_db(e.id.clone()));
    }
    let id = match existing {
        Some(e) => RecordingId::from_db(e.id),
        None => {
            if let Some(sha) = &f.sha256
                && let Some(e) = catalog::by_sha256(pool, sha).await?
            {
                cleanup(&f.path).await;
                return Ok(RecordingId::from_db(e.id));
            }
            // Started before the catalog knew it (the entry's insert failed, or the status
            // was lost): make the entry now.
            let started = f
                .started
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let facts = facts_of(state, &f.room).await;
            let id = RecordingId::generate(state.clock.now_ms_u64());
            let mut entry = Entry::new(&id, &f.room, facts, started, now);
            entry.local_path = Some(part);
            entry.node = Some(state.library.node.clone());
            catalog::insert(pool, &entry).await?;
            id
        }
    };
    let key = lesson_key(&id, &ext_of(&f.path));
    let stored = state.library.store.put_file(&f.path, &key).await?;
    if f.sha256.as_ref().is_some_and(|s| *s != stored.sha256) {
        tracing::warn!(path = %f.path.display(), "recording changed after it was hashed; stored as read");
    }
    let file = TrackFile {
        source: "lesson".into(),
        object_key: stored.key,
        duration_ms: f.duration.as_millis() as i64,
        bytes: stored.bytes as i64,
        sha256: stored.sha256,
    };
    // Codecs first: an entry is read as soon as it is ready, and must say what it holds then.
    if !f.codecs.is_empty() {
        catalog::set_codecs(pool, id.as_str(), &f.codecs.join(",")).await?;
    }
    catalog::set_ready(pool, id.as_str(), &file, f.recovered, state.clock.now_ms()).await?;
    cleanup(&f.path).await;
    Ok(id)
}

async fn facts_of(state: &AppState, room: &str) -> LessonFacts {
    let tz = &state.config.schedule.timezone;
    if OccurrenceId::parse(room).is_none() {
        return LessonFacts::ad_hoc(room, tz);
    }
    match catalog::lesson_facts(&state.db.pool, room).await {
        Ok(Some(f)) => f,
        _ => LessonFacts::ad_hoc(room, tz),
    }
}

/// A recording file's extension (its container).
fn ext_of(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("webm")
        .to_owned()
}

async fn import_track(
    state: &AppState,
    f: &OnDisk,
    source: &str,
) -> Result<RecordingId, ImportError> {
    let pool = &state.db.pool;
    let lesson_part = lesson_part_of(&f.path)
        .ok_or_else(|| ImportError::NoLesson(f.path.display().to_string()))?;
    let entry = catalog::by_local_path(pool, &lesson_part.to_string_lossy())
        .await?
        .ok_or_else(|| ImportError::NoLesson(f.path.display().to_string()))?;
    let id = RecordingId::from_db(entry.id);
    let key = track_key(&id, source, &ext_of(&f.path))
        .ok_or_else(|| ImportError::BadSource(source.to_owned()))?;
    let stored = state.library.store.put_file(&f.path, &key).await?;
    let file = TrackFile {
        source: source.to_owned(),
        object_key: stored.key,
        duration_ms: f.duration.as_millis() as i64,
        bytes: stored.bytes as i64,
        sha256: stored.sha256,
    };
    catalog::put_track(pool, id.as_str(), &file).await?;
    cleanup(&f.path).await;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track_and_segment_files_name_their_lesson_file() {
        let want = Some(PathBuf::from("/r/occ_1/occ_1-20301104T080000Z-2.webm.part"));
        for f in [
            "occ_1-20301104T080000Z-2.t11-audio.webm",
            "occ_1-20301104T080000Z-2.mp4",
        ] {
            assert_eq!(lesson_part_of(&Path::new("/r/occ_1").join(f)), want, "{f}");
        }
        let seg = Path::new("/r/occ_1/occ_1-20301104T080000Z-2.seg3.webm");
        assert_eq!(lesson_part_of(seg), want);
    }
}
