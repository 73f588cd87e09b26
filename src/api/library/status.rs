//! The recorder's status on this server: running recordings, failures, drops
//! (`GET /api/v1/library/status`).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::extract::AdminKey;
use crate::api::problem::{ApiResult, AuthErrors};
use crate::schedule::time::format_utc;
use crate::state::AppState;

/// A recording running now.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActiveRecording {
    pub room: String,
    pub recording_id: String,
    #[schema(format = DateTime)]
    pub since: String,
}

/// A recording that stopped on an error.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingFailure {
    pub room: String,
    pub recording_id: Option<String>,
    #[schema(format = DateTime)]
    pub at: String,
    /// What went wrong (e.g. `No space left on device`).
    pub error: String,
}

/// The recorder of this server.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecorderStatus {
    /// `recording.enabled`.
    pub enabled: bool,
    /// Where the library keeps files (`local:/path`).
    pub store: String,
    /// Events the writer handled.
    pub events: u64,
    /// Files finished, and recordings failed, since the start.
    pub finished: u64,
    pub failed: u64,
    /// Media packets dropped on the way to the writer because it fell behind.
    pub dropped: u64,
    pub active: Vec<ActiveRecording>,
    /// The latest failures on this server, newest first.
    pub recent_failures: Vec<RecordingFailure>,
}

/// Recording on this server: running recordings, failures, drops.
#[utoipa::path(get, path = "/api/v1/library/status", tag = "library",
    responses((status = 200, description = "OK", body = RecorderStatus), AuthErrors))]
pub async fn recorder_status(
    State(state): State<AppState>,
    _key: AdminKey,
) -> ApiResult<Json<RecorderStatus>> {
    let live = &state.library.live;
    let stats = live.recorder_stats().unwrap_or_default();
    let dropped = state
        .media
        .shards()
        .iter()
        .map(|s| {
            s.stats
                .record_dropped
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    let at = |ms: u64| format_utc(i64::try_from(ms).unwrap_or(0));
    let mut active: Vec<ActiveRecording> = live
        .active_all()
        .into_iter()
        .map(|(room, a)| ActiveRecording {
            room: room.to_string(),
            recording_id: a.id.to_string(),
            since: at(a.started_ms),
        })
        .collect();
    active.sort_by(|a, b| a.room.cmp(&b.room));
    let recent_failures = live
        .recent_failures()
        .into_iter()
        .map(|f| RecordingFailure {
            at: at(f.at_ms),
            room: f.room,
            recording_id: f.recording_id,
            error: f.error,
        })
        .collect();
    Ok(Json(RecorderStatus {
        enabled: live.enabled(),
        store: state.library.store.describe.clone(),
        events: stats.events,
        finished: stats.finished,
        failed: stats.failed,
        dropped,
        active,
        recent_failures,
    }))
}
