//! The audit log: every write through the API is recorded, in the same transaction as the
//! write itself, with the key that made it. `GET /api/v1/audit` reads it newest first, in
//! pages (`before` = the last id of the previous page).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};

use super::extract::{AdminKey, Params};
use super::keys::KeyInfo;
use super::problem::{ApiResult, Problem, QueryErrors};
use crate::db::ids::AuditId;
use crate::schedule::time::format_utc;
use crate::state::AppState;

/// One entry to record.
#[derive(Debug)]
pub struct Audit {
    pub action: &'static str,
    pub target: String,
    pub detail: Option<serde_json::Value>,
}

impl Audit {
    pub fn new(action: &'static str, target: impl Into<String>) -> Self {
        Self {
            action,
            target: target.into(),
            detail: None,
        }
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

tokio::task_local! {
    /// The address the current API request came from (set by [`with_source`]).
    static SOURCE: Option<String>;
}

/// Middleware: makes the request's source address available to [`record`], so that every
/// audit row says where its request came from without each handler passing it.
pub async fn with_source(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let ip = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    SOURCE.scope(ip, next.run(req)).await
}

/// The current request's source address, if known.
pub fn current_source() -> Option<String> {
    SOURCE.try_with(Clone::clone).ok().flatten()
}

/// Writes `entry` for `key` within the caller's transaction. The row is sealed into the HMAC
/// chain shortly after (`chain`), by the server that holds the key.
pub async fn record(
    conn: &mut sqlx::AnyConnection,
    key: &KeyInfo,
    entry: Audit,
) -> Result<(), sqlx::Error> {
    let now = u64::try_from(key.at_ms).unwrap_or(0);
    sqlx::query(
        "INSERT INTO audit (id, at, key_id, key_name, action, target, detail, source) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(AuditId::generate(now).as_str())
    .bind(now as i64)
    .bind(key.id.as_str())
    .bind(&key.name)
    .bind(entry.action)
    .bind(&entry.target)
    .bind(entry.detail.map(|d| d.to_string()))
    .bind(current_source())
    .execute(conn)
    .await?;
    Ok(())
}

/// A recorded write.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    #[schema(value_type = String)]
    pub id: AuditId,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub at: String,
    pub key_id: String,
    pub key_name: String,
    /// `school.create`, `lesson.update`, `occurrence.cancel`, `links.reissue`, ...
    pub action: String,
    /// The id of the thing written.
    pub target: String,
    /// What was written, when useful (any JSON).
    pub detail: Option<serde_json::Value>,
    /// The address the request came from (null for the command line and older rows).
    pub source: Option<String>,
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; null on the last page.
    pub next: Option<String>,
}

/// `GET /api/v1/audit` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries per page, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// Only entries older than this entry id.
    pub before: Option<String>,
    /// Only entries about this id.
    pub target: Option<String>,
}

/// Read the audit log, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "OK", body = AuditPage), QueryErrors))]
pub async fn list_audit(
    State(state): State<AppState>,
    _key: AdminKey,
    Params(q): Params<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Problem::field("limit", "must be between 1 and 200"));
    }
    let before = match q.before.as_deref() {
        None => None,
        Some(b) => Some(
            AuditId::parse(b)
                .ok_or_else(|| Problem::field("before", "must be an audit entry id (aud_...)"))?,
        ),
    };
    if let Some(t) = &q.target
        && (t.is_empty() || t.len() > 64)
    {
        return Err(Problem::field(
            "target",
            "must be an id of 1 to 64 characters",
        ));
    }
    // Ids sort by time (ULID), so they are the cursor.
    let rows = sqlx::query(
        "SELECT id, at, key_id, key_name, action, target, detail, source FROM audit \
         WHERE ($1 IS NULL OR id < $1) AND ($2 IS NULL OR target = $2) \
         ORDER BY id DESC LIMIT $3",
    )
    .bind(before.as_ref().map(|b| b.as_str().to_owned()))
    .bind(q.target.clone())
    .bind(i64::from(limit) + 1)
    .fetch_all(&state.db.pool)
    .await?;
    let mut items: Vec<AuditEntry> = rows
        .iter()
        .map(|r| AuditEntry {
            id: AuditId::from_db(r.get("id")),
            at: format_utc(r.get("at")),
            key_id: r.get("key_id"),
            key_name: r.get("key_name"),
            action: r.get("action"),
            target: r.get("target"),
            detail: r
                .get::<Option<String>, _>("detail")
                .and_then(|d| serde_json::from_str(&d).ok()),
            source: r.get("source"),
        })
        .collect();
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|e| e.id.to_string())
    } else {
        None
    };
    Ok(Json(AuditPage { items, next }))
}
