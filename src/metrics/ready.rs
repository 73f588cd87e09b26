//! `GET /readyz`: whether this node should get new lessons. 200 when every media shard runs
//! and publishes, the database answers and (if recording is on) the recorder runs, and the
//! server is not shutting down; else 503 naming each reason. A load balancer takes a node out
//! on 503; `/healthz` stays the plain liveness check.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::AppState;

/// A shard that has not published its statistics for this long is stuck (it publishes every
/// second, even when idle).
const SHARD_STALE: Duration = Duration::from_secs(5);
/// The database must answer a trivial query within this.
const DB_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the database's answer stands: a load balancer (or anyone) polling `/readyz` makes
/// at most one query a second, however often it asks.
const DB_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The last database check and when it was made. Requests that come while a check runs wait
/// for its answer instead of starting their own.
#[derive(Debug, Default)]
pub struct DbCheck {
    last: tokio::sync::Mutex<Option<(Instant, Option<NotReady>)>>,
}

/// One reason for not being ready: a code for machines and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    pub code: &'static str,
    pub message: String,
}

/// Everything that keeps the node from being ready now; empty when it is ready.
pub async fn check(state: &AppState) -> Vec<NotReady> {
    let mut reasons = Vec::new();
    if state.is_shutting_down() {
        reasons.push(NotReady {
            code: "shuttingDown",
            message: "the server is shutting down".into(),
        });
    }
    let now = Instant::now();
    for s in state.media.shards() {
        let published = s
            .stats
            .published
            .lock()
            .ok()
            .and_then(|p| p.as_ref().map(|p| p.at));
        if !s.is_running() {
            reasons.push(NotReady {
                code: "shardStopped",
                message: format!("media shard {} is not running", s.index),
            });
        } else if published.is_none_or(|at| now.saturating_duration_since(at) > SHARD_STALE) {
            reasons.push(NotReady {
                code: "shardStalled",
                message: format!(
                    "media shard {} has not reported for over {} s",
                    s.index,
                    SHARD_STALE.as_secs()
                ),
            });
        }
    }
    if state.media.is_full() {
        reasons.push(NotReady {
            code: "full",
            message: "every media shard holds media.max_peers_per_shard peers".into(),
        });
    }
    reasons.extend(database(state).await);
    let live = &state.library.live;
    if live.enabled() && live.recorder_stats().is_none() {
        reasons.push(NotReady {
            code: "recorderStopped",
            message: "recording is enabled but the recorder is not running".into(),
        });
    }
    reasons
}

/// The database's state, at most [`DB_CHECK_EVERY`] old.
async fn database(state: &AppState) -> Option<NotReady> {
    let mut last = state.metrics.ready_db.last.lock().await;
    if let Some((at, answer)) = &*last
        && at.elapsed() < DB_CHECK_EVERY
    {
        return answer.clone();
    }
    let ping = sqlx::query("SELECT 1").execute(&state.db.pool);
    let answer = match tokio::time::timeout(DB_TIMEOUT, ping).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(NotReady {
            code: "databaseUnavailable",
            message: format!("the database refused a query: {e}"),
        }),
        Err(_) => Some(NotReady {
            code: "databaseUnavailable",
            message: format!(
                "the database did not answer within {} s",
                DB_TIMEOUT.as_secs()
            ),
        }),
    };
    *last = Some((Instant::now(), answer.clone()));
    answer
}

/// The handler.
pub async fn handler(State(state): State<AppState>) -> Response {
    let reasons = check(&state).await;
    if reasons.is_empty() {
        return (StatusCode::OK, Json(json!({ "status": "ready" }))).into_response();
    }
    let list: Vec<_> = reasons
        .iter()
        .map(|r| json!({ "code": r.code, "message": r.message }))
        .collect();
    let body = json!({
        "status": "notReady",
        "error": reasons[0].code,
        "message": reasons[0].message,
        "reasons": list,
    });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}
