//! Observation notes (听课评课) while replaying, and the export of a recording with its notes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoResponses, ToSchema};

use super::{Access, EntryErrors, LibraryEntry, LinkQuery, access, load, parse_id};
use crate::api::audit::{self, Audit};
use crate::api::extract::{Body, Errors, Params};
use crate::api::problem::{ApiResult, ProblemDoc};
use crate::api::validate::text;
use crate::library::catalog::{self, Note};
use crate::schedule::time::format_utc;
use crate::state::AppState;

/// Longest note, in characters (as chat messages).
const MAX_NOTE_CHARS: usize = ketang_sfu::MAX_TEXT_CHARS;

/// An observation note on a recording's timeline.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NoteEntry {
    pub id: String,
    pub recording_id: String,
    /// Milliseconds from the start of the recording.
    pub at_ms: i64,
    pub author: String,
    /// `teacher` or `observer` (posted live), `link` (a library link's holder), `admin`.
    pub role: String,
    pub text: String,
    /// `live` (during the lesson) or `replay`.
    pub via: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<Note> for NoteEntry {
    fn from(n: Note) -> Self {
        NoteEntry {
            id: n.id,
            recording_id: n.recording_id,
            at_ms: n.at_ms,
            author: n.author,
            role: n.role,
            text: n.text,
            via: n.via,
            created_at: format_utc(n.created_at),
        }
    }
}

/// `POST /api/v1/library/{id}/notes` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewNote {
    /// Where on the timeline, in milliseconds from the start (at most the duration).
    #[schema(minimum = 0)]
    pub at_ms: i64,
    /// 1–500 characters.
    pub text: String,
    /// Author shown with the note (admins only; a link's notes carry its name).
    pub author: Option<String>,
}

/// The notes of a recording, in timeline order.
#[utoipa::path(get, path = "/api/v1/library/{id}/notes", tag = "library",
    params(("id" = String, Path, description = "Recording id"), LinkQuery),
    responses((status = 200, description = "OK", body = Vec<NoteEntry>), EntryErrors))]
pub async fn list_notes(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Params(q): Params<LinkQuery>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<NoteEntry>>> {
    let id = parse_id(&id)?;
    access(&state, &headers, q.t.as_deref(), &id).await?;
    load(&state, &id).await?;
    let notes = catalog::notes(&state.db.pool, id.as_str()).await?;
    Ok(Json(notes.into_iter().map(NoteEntry::from).collect()))
}

/// Everything adding a note can run into.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum NoteErrors {
    /// The body is not JSON.
    #[response(status = 400, content_type = "application/problem+json")]
    BadJson(ProblemDoc),
    /// No admin key or library link, or an invalid or expired one.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(ProblemDoc),
    /// A library link for another recording.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(ProblemDoc),
    /// No such recording.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(ProblemDoc),
    /// Not a master lesson, or the recording is not in the library (yet).
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(ProblemDoc),
    /// The body is too large.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(ProblemDoc),
    /// The body is not `application/json`.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(ProblemDoc),
    /// Invalid input; `errors` names each field.
    #[response(status = 422, content_type = "application/problem+json")]
    Invalid(ProblemDoc),
}

/// Add a note while replaying a master lesson (admin key or library link).
#[utoipa::path(post, path = "/api/v1/library/{id}/notes", tag = "library",
    params(("id" = String, Path, description = "Recording id"), LinkQuery), request_body = NewNote,
    responses((status = 201, description = "Created", body = NoteEntry), NoteErrors))]
pub async fn add_note(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Params(q): Params<LinkQuery>,
    headers: HeaderMap,
    // Read after the caller is checked: a caller refused gets 403, not a body complaint.
    body: Result<Body<NewNote>, crate::api::problem::Problem>,
) -> ApiResult<(StatusCode, Json<NoteEntry>)> {
    let id = parse_id(&id)?;
    let who = access(&state, &headers, q.t.as_deref(), &id).await?;
    let Body(body) = body?;
    let entry = load(&state, &id).await?;
    let mut errors = Errors::default();
    let note_text = errors.check("text", text(&body.text, 1, MAX_NOTE_CHARS));
    let duration = entry.duration_ms.unwrap_or(0);
    if entry.state == catalog::READY && !(0..=duration).contains(&body.at_ms) {
        errors.add(
            "atMs",
            format!("must be between 0 and the duration, {duration}"),
        );
    }
    let author = match (&who, body.author.as_deref()) {
        (Access::Admin(_), Some(a)) => errors.check("author", text(a, 1, 64)),
        (Access::Link(_), Some(_)) => {
            errors.add("author", "a library link's notes carry its own name");
            None
        }
        (_, None) => Some(who.name().to_owned()),
    };
    errors.finish()?;
    // 听课评课 belongs to master lessons: other lessons have no observers to comment.
    if entry.mode != "master" {
        return Err(crate::api::problem::Problem::state(
            "observation notes are for master lessons (名师课堂) only",
        ));
    }
    if entry.state != catalog::READY {
        return Err(crate::api::problem::Problem::state(
            "notes while replaying need the recording in the library; during the lesson, \
             post them from the room",
        ));
    }
    let (Some(note_text), Some(author)) = (note_text, author) else {
        return Err(crate::api::problem::Problem::internal());
    };
    let role = match who {
        Access::Admin(_) => "admin",
        Access::Link(_) => "link",
    };
    let note = Note::new(
        id.as_str(),
        body.at_ms,
        &author,
        role,
        &note_text,
        "replay",
        state.clock.now_ms(),
    );
    let mut tx = state.db.write().await?;
    catalog::add_note(&mut tx, &note).await?;
    if let Access::Admin(key) = &who {
        let detail = serde_json::json!({"noteId": note.id, "atMs": note.at_ms});
        audit::record(
            &mut tx,
            key,
            Audit::new("note.create", id.as_str()).detail(detail),
        )
        .await?;
    }
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(NoteEntry::from(note))))
}

/// A recording and its notes, as exported.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotesExport {
    pub recording: LibraryEntry,
    pub notes: Vec<NoteEntry>,
    #[schema(format = DateTime)]
    pub exported_at: String,
}

/// Export the recording's facts and its notes as a JSON file.
#[utoipa::path(get, path = "/api/v1/library/{id}/export", tag = "library",
    params(("id" = String, Path, description = "Recording id"), LinkQuery),
    responses((status = 200, description = "The export (an attachment)", body = NotesExport), EntryErrors))]
pub async fn export(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Params(q): Params<LinkQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    access(&state, &headers, q.t.as_deref(), &id).await?;
    let entry = load(&state, &id).await?;
    let tracks = catalog::tracks(&state.db.pool, id.as_str()).await?;
    let notes = catalog::notes(&state.db.pool, id.as_str()).await?;
    let doc = NotesExport {
        recording: LibraryEntry::from_entry(entry, Some(tracks)),
        notes: notes.into_iter().map(NoteEntry::from).collect(),
        exported_at: format_utc(state.clock.now_ms()),
    };
    let mut resp = Json(doc).into_response();
    let value = format!("attachment; filename=\"{id}-notes.json\"");
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
