//! Library links: a signed link to one recording, for its teacher or for playing it on the
//! library page (`POST /api/v1/library/{id}/links`).

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{load, parse_id};
use crate::api::audit::{self, Audit};
use crate::api::extract::{AdminKey, Body, Errors};
use crate::api::problem::{ApiResult, Problem, WriteErrors};
use crate::api::validate::text;
use crate::config::recording::MAX_LINK_TTL;
use crate::schedule::time::format_utc;
use crate::state::AppState;

/// `POST /api/v1/library/{id}/links` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewLink {
    /// Whom the link is for (the author of notes posted with it); default: the lesson's
    /// teacher.
    pub name: Option<String>,
    /// Validity in seconds, 60 to 31 622 400 (366 days); default `recording.link_ttl`.
    pub ttl_seconds: Option<u64>,
}

/// A library link to one recording.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LibraryLink {
    pub recording_id: String,
    pub name: String,
    /// The library page opened on this recording.
    pub url: String,
    /// The token alone, for `?t=` or `Authorization: Bearer` on the recording's routes.
    pub token: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// Make a library link to one recording (for its teacher, or for playing on the library
/// page).
#[utoipa::path(post, path = "/api/v1/library/{id}/links", tag = "library",
    params(("id" = String, Path, description = "Recording id")), request_body = NewLink,
    responses((status = 201, description = "Created", body = LibraryLink), WriteErrors))]
pub async fn create_link(
    State(state): State<AppState>,
    AdminKey(key): AdminKey,
    Path(id): Path<String>,
    Body(body): Body<NewLink>,
) -> ApiResult<(StatusCode, Json<LibraryLink>)> {
    let id = parse_id(&id)?;
    let mut errors = Errors::default();
    let name = body
        .name
        .as_deref()
        .and_then(|n| errors.check("name", text(n, 1, 64)));
    let ttl = match body.ttl_seconds {
        None => state.library.link_ttl,
        Some(s) if (60..=MAX_LINK_TTL.as_secs()).contains(&s) => Duration::from_secs(s),
        Some(_) => {
            errors.add("ttlSeconds", "must be between 60 and 31622400");
            Duration::ZERO
        }
    };
    errors.finish()?;
    let entry = load(&state, &id).await?;
    let name = name.unwrap_or_else(|| {
        if entry.teacher_name.is_empty() {
            "teacher".to_owned()
        } else {
            entry.teacher_name.clone()
        }
    });
    let (token, exp) = state
        .library
        .links
        .mint(&id, &name, ttl, state.clock.now())
        .map_err(|e| {
            tracing::error!(error = %e, "library link not signed");
            Problem::internal()
        })?;
    let mut conn = state.db.pool.acquire().await?;
    let detail = serde_json::json!({"name": name, "expiresAt": exp});
    audit::record(
        &mut conn,
        &key,
        Audit::new("library.link", id.as_str()).detail(detail),
    )
    .await?;
    let link = LibraryLink {
        recording_id: id.to_string(),
        url: format!("{}/library?t={token}", state.config.public_base_url()),
        token,
        name,
        expires_at: format_utc(i64::try_from(exp).unwrap_or(0).saturating_mul(1000)),
    };
    Ok((StatusCode::CREATED, Json(link)))
}
