//! The resource library under `/api/v1/library` (docs/library.md): list and search the
//! recorded lessons, read one, stream it with `Range` (so `<video>` seeks), download it,
//! delete it, hand out library links, observation notes and their export, and the recorder's
//! status.
//!
//! Access: an admin key for everything; a library link (`?t=` or `Authorization: Bearer`) for
//! the one recording it names (read, stream, download, notes, export). A `<video>` element
//! cannot send headers, which is why the query form exists; the library page gets a short
//! link for playing.

pub mod links;
pub mod media;
pub mod notes;
pub mod status;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, IntoResponses, ToSchema};

use super::audit::{self, Audit};
use super::extract::{AdminKey, Errors, Params};
use super::keys::{self, KEY_PREFIX, KeyInfo};
use super::problem::{ApiResult, Problem, ProblemDoc, QueryErrors};
use super::validate::text;
use crate::library::catalog::{self, Entry, Filter};
use crate::library::ids::RecordingId;
use crate::library::link::{LinkClaims, LinkError};
use crate::library::store::container_of;
use crate::schedule::time::{format_in, local_date, parse_date, parse_instant, zone};
use crate::state::AppState;

/// Problem types of the library (besides the API's common ones).
pub mod types {
    pub const FORBIDDEN: &str = "urn:ketang:problem:forbidden";
    pub const RANGE: &str = "urn:ketang:problem:range-not-satisfiable";
}

/// Who is asking.
#[derive(Debug, Clone)]
pub enum Access {
    Admin(KeyInfo),
    Link(LinkClaims),
}

impl Access {
    /// The author of notes posted with this access.
    pub fn name(&self) -> &str {
        match self {
            Access::Admin(k) => &k.name,
            Access::Link(c) => &c.name,
        }
    }
}

/// `?t=LINK` on the routes a library link opens.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    /// A library link token (instead of `Authorization: Bearer`), for `<video src>`.
    pub t: Option<String>,
}

fn link_problem(e: &LinkError) -> Problem {
    match e {
        LinkError::OtherRecording => Problem::new(
            StatusCode::FORBIDDEN,
            types::FORBIDDEN,
            "Forbidden",
            e.to_string(),
        ),
        _ => Problem::unauthorized(e.to_string()),
    }
}

/// Checks the caller against recording `id`: an admin key, or a library link for `id`.
pub async fn access(
    state: &AppState,
    headers: &HeaderMap,
    t: Option<&str>,
    id: &RecordingId,
) -> ApiResult<Access> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty());
    let token = match (bearer, t.map(str::trim).filter(|t| !t.is_empty())) {
        (Some(key), _) if key.starts_with(KEY_PREFIX) => {
            return match keys::lookup_role(&state.db, key, state.clock.now_ms()).await? {
                Some((_, role))
                    if super::roles::access(role, "library") == super::roles::Access::None =>
                {
                    Err(Problem::forbidden(format!(
                        "a {role} admin may not use the library (system admins do)"
                    )))
                }
                Some((k, _)) => Ok(Access::Admin(k)),
                None => Err(Problem::unauthorized(
                    "the API key is unknown or was revoked",
                )),
            };
        }
        (Some(token), _) | (None, Some(token)) => token,
        (None, None) => {
            return Err(Problem::unauthorized(
                "send an admin API key (Authorization: Bearer) or a library link (?t=)",
            ));
        }
    };
    state
        .library
        .links
        .verify(token, id, state.clock.now())
        .map(Access::Link)
        .map_err(|e| link_problem(&e))
}

/// A path id: anything not shaped like a recording id names nothing.
pub fn parse_id(id: &str) -> ApiResult<RecordingId> {
    RecordingId::parse(id).ok_or_else(|| Problem::not_found("recording", id))
}

/// An entry that exists.
pub async fn load(state: &AppState, id: &RecordingId) -> ApiResult<Entry> {
    catalog::get(&state.db.pool, id.as_str())
        .await?
        .ok_or_else(|| Problem::not_found("recording", id.as_str()))
}

/// 401, 403 (a link for another recording), 404 and 422 (bad `t`).
#[derive(IntoResponses)]
pub enum EntryErrors {
    /// No admin key or library link, or an invalid or expired one.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(ProblemDoc),
    /// A library link for another recording.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(ProblemDoc),
    /// No such recording.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(ProblemDoc),
    /// An unknown query parameter.
    #[response(status = 422, content_type = "application/problem+json")]
    Invalid(ProblemDoc),
}

/// A per-track file of an entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackEntry {
    /// The source track and kind, e.g. `t3-video`; or a codec segment of the lesson, `seg2`,
    /// `seg3`, … (played after the lesson file, in order).
    pub source: String,
    /// `webm` or `mp4`.
    pub container: String,
    pub duration_ms: i64,
    pub bytes: i64,
    pub sha256: String,
    /// Where to download it (add `?t=` with a library link).
    pub url: String,
}

/// A recorded lesson.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LibraryEntry {
    pub id: String,
    /// The room recorded (for a scheduled lesson, its occurrence id).
    pub room: String,
    pub occurrence_id: Option<String>,
    pub lesson_id: Option<String>,
    pub title: String,
    pub subject: String,
    pub grade: String,
    /// `open`, `dedicated`, `master` or `broadcast`.
    pub mode: String,
    pub teacher_id: Option<String>,
    pub teacher_name: String,
    pub school_id: Option<String>,
    pub school_name: String,
    /// When the recording started (RFC 3339, in the lesson's time zone).
    #[schema(format = DateTime)]
    pub started_at: String,
    /// Its date in the lesson's time zone (`YYYY-MM-DD`).
    #[schema(format = Date)]
    pub date: String,
    pub timezone: String,
    /// `recording` (running), `ready` (playable) or `failed` (nothing playable kept).
    pub state: String,
    /// Why the recording stopped early (disk full...), if it did.
    pub error: Option<String>,
    /// Repaired after a crash of the server.
    pub recovered: bool,
    pub duration_ms: Option<i64>,
    pub bytes: Option<i64>,
    /// Hex SHA-256 of the file.
    pub sha256: Option<String>,
    /// The file's container once ready: `webm` (VP8 or VP9 video, Opus audio) or `mp4`
    /// (fragmented MP4: H.264 video, Opus audio; a lesson whose video was H.264).
    pub container: Option<String>,
    /// The codecs in the lesson file, e.g. `["h264", "opus"]`, once ready.
    pub codecs: Option<Vec<String>>,
    /// Streams the file with `Range` support (add `?t=` with a library link); null until ready.
    pub media_url: Option<String>,
    /// Downloads it as an attachment.
    pub download_url: Option<String>,
    /// Per-track files (`recording.per_track`); only in single-entry responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub tracks: Option<Vec<TrackEntry>>,
}

impl LibraryEntry {
    pub fn from_entry(e: Entry, tracks: Option<Vec<catalog::TrackFile>>) -> Self {
        let tz = zone(&e.timezone).unwrap_or(TimeZone::UTC);
        let ready = e.state == catalog::READY;
        let base = format!("/api/v1/library/{}", e.id);
        LibraryEntry {
            started_at: format_in(e.started_at, &tz),
            date: local_date(e.started_at, &tz).to_string(),
            container: e
                .object_key
                .as_deref()
                .filter(|_| ready)
                .map(|k| container_of(k).to_owned()),
            codecs: e
                .codecs
                .as_deref()
                .filter(|_| ready)
                .map(|c| c.split(',').map(str::to_owned).collect()),
            media_url: ready.then(|| format!("{base}/media")),
            download_url: ready.then(|| format!("{base}/download")),
            tracks: tracks.map(|ts| {
                ts.into_iter()
                    .map(|t| TrackEntry {
                        url: format!("{base}/tracks/{}", t.source),
                        container: container_of(&t.object_key).to_owned(),
                        source: t.source,
                        duration_ms: t.duration_ms,
                        bytes: t.bytes,
                        sha256: t.sha256,
                    })
                    .collect()
            }),
            id: e.id,
            room: e.room,
            occurrence_id: e.occurrence_id,
            lesson_id: e.lesson_id,
            title: e.title,
            subject: e.subject,
            grade: e.grade,
            mode: e.mode,
            teacher_id: e.teacher_id,
            teacher_name: e.teacher_name,
            school_id: e.school_id,
            school_name: e.school_name,
            timezone: e.timezone,
            state: e.state,
            error: e.error,
            recovered: e.recovered != 0,
            duration_ms: e.duration_ms,
            bytes: e.bytes,
            sha256: e.sha256,
        }
    }
}

/// A page of the library.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LibraryPage {
    pub items: Vec<LibraryEntry>,
    /// Pass as `before` for the next (older) page; null on the last page.
    pub next: Option<String>,
}

/// `GET /api/v1/library` parameters: search text and filters, all optional.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct ListQuery {
    /// Free text, matched in title, subject, grade, teacher and school (case-insensitive).
    pub q: Option<String>,
    pub subject: Option<String>,
    pub grade: Option<String>,
    pub teacher_id: Option<String>,
    pub school_id: Option<String>,
    /// `open`, `dedicated`, `master` or `broadcast`.
    pub mode: Option<String>,
    /// `recording`, `ready` or `failed`.
    pub state: Option<String>,
    pub recovered: Option<bool>,
    /// Recorded on or after this date (`YYYY-MM-DD`, in `schedule.timezone`) or instant.
    pub from: Option<String>,
    /// Recorded on or before this date (inclusive), or before this instant.
    pub to: Option<String>,
    /// Entries per page, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// Only entries older than this entry id (the previous page's `next`).
    pub before: Option<String>,
}

/// A date is the start of that day (`end`: of the next day); an instant is itself.
fn bound(s: &str, tz: &TimeZone, end: bool) -> Result<i64, String> {
    let s = s.trim();
    if s.len() != 10 {
        return parse_instant(s, tz);
    }
    let day = parse_date(s)?;
    let day = if end {
        day.tomorrow().map_err(|e| e.to_string())?
    } else {
        day
    };
    parse_instant(&format!("{day}T00:00"), tz)
}

/// Accepts `v` when it is one of `allowed`.
fn one_of(errors: &mut Errors, field: &str, v: Option<String>, allowed: &[&str]) -> Option<String> {
    let v = v?;
    let ok = allowed.contains(&v.as_str());
    let r = ok
        .then_some(v)
        .ok_or_else(|| format!("must be one of {}", allowed.join(", ")));
    errors.check(field, r)
}

/// List and search the library, newest first.
#[utoipa::path(get, path = "/api/v1/library", tag = "library", params(ListQuery),
    responses((status = 200, description = "OK", body = LibraryPage), QueryErrors))]
pub async fn list_library(
    State(state): State<AppState>,
    _key: AdminKey,
    Params(q): Params<ListQuery>,
) -> ApiResult<Json<LibraryPage>> {
    let tz = zone(&state.config.schedule.timezone).unwrap_or(TimeZone::UTC);
    let mut errors = Errors::default();
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        errors.add("limit", "must be between 1 and 200");
    }
    let mut words =
        |field: &str, v: Option<String>| v.and_then(|v| errors.check(field, text(&v, 1, 120)));
    let (text_q, subject, grade) = (
        words("q", q.q),
        words("subject", q.subject),
        words("grade", q.grade),
    );
    let (teacher_id, school_id) = (
        words("teacherId", q.teacher_id),
        words("schoolId", q.school_id),
    );
    let modes = ["open", "dedicated", "master", "broadcast"];
    let filter = Filter {
        text: text_q,
        subject,
        grade,
        teacher_id,
        school_id,
        mode: one_of(&mut errors, "mode", q.mode, &modes),
        state: one_of(
            &mut errors,
            "state",
            q.state,
            &["recording", "ready", "failed"],
        ),
        recovered: q.recovered,
        from_ms: q
            .from
            .and_then(|s| errors.check("from", bound(&s, &tz, false))),
        to_ms: q.to.and_then(|s| errors.check("to", bound(&s, &tz, true))),
        before: q.before.and_then(|b| {
            let r = RecordingId::parse(&b)
                .map(|_| b)
                .ok_or_else(|| "must be a recording id (rec_...)".to_owned());
            errors.check("before", r)
        }),
        limit,
    };
    errors.finish()?;
    let (rows, more) = catalog::list(&state.db.pool, &filter).await?;
    let next = if more {
        rows.last().map(|e| e.id.clone())
    } else {
        None
    };
    let items = rows
        .into_iter()
        .map(|e| LibraryEntry::from_entry(e, None))
        .collect();
    Ok(Json(LibraryPage { items, next }))
}

/// One recorded lesson, with its per-track files.
#[utoipa::path(get, path = "/api/v1/library/{id}", tag = "library",
    params(("id" = String, Path, description = "Recording id"), LinkQuery),
    responses((status = 200, description = "OK", body = LibraryEntry), EntryErrors))]
pub async fn get_recording(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Params(q): Params<LinkQuery>,
    headers: HeaderMap,
) -> ApiResult<Json<LibraryEntry>> {
    let id = parse_id(&id)?;
    access(&state, &headers, q.t.as_deref(), &id).await?;
    let entry = load(&state, &id).await?;
    let tracks = catalog::tracks(&state.db.pool, id.as_str()).await?;
    Ok(Json(LibraryEntry::from_entry(entry, Some(tracks))))
}

/// 401, 404, 409 (still running).
#[derive(IntoResponses)]
pub enum DeleteErrors {
    /// No API key, or an unknown or revoked one.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(ProblemDoc),
    /// No such recording.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(ProblemDoc),
    /// The recording is still running.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(ProblemDoc),
}

/// Delete a recording: its files, notes and entry. A running recording cannot be deleted.
#[utoipa::path(delete, path = "/api/v1/library/{id}", tag = "library",
    params(("id" = String, Path, description = "Recording id")),
    responses((status = 204, description = "Deleted"), DeleteErrors))]
pub async fn delete_recording(
    State(state): State<AppState>,
    AdminKey(key): AdminKey,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id)?;
    let entry = load(&state, &id).await?;
    if entry.state == catalog::RECORDING {
        return Err(Problem::state(
            "the recording is still running; stop it (or end the lesson) first",
        ));
    }
    // Files first: a failure half-way leaves an entry whose delete can be repeated, never a
    // file that no entry knows.
    let tracks = catalog::tracks(&state.db.pool, id.as_str()).await?;
    let keys = entry
        .object_key
        .iter()
        .cloned()
        .chain(tracks.into_iter().map(|t| t.object_key));
    for k in keys {
        state.library.store.delete(&k).await.map_err(|e| {
            tracing::error!(key = %k, error = %e, "library file not deleted");
            Problem::internal()
        })?;
    }
    let mut tx = state.db.write().await?;
    catalog::delete(&mut tx, id.as_str()).await?;
    let detail = serde_json::json!({"title": entry.title, "startedAt": entry.started_at});
    audit::record(
        &mut tx,
        &key,
        Audit::new("library.delete", id.as_str()).detail(detail),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
