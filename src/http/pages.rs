//! The browser app's pages and files, the room link entry point, and health.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use ketang_sfu::RoomId;
use rust_embed::RustEmbed;
use serde_json::json;

use super::error::{token_error, token_status};
use crate::auth::TokenError;
use crate::signaling::TokenQuery;
use crate::state::AppState;

/// The browser client. Embedded in release builds; read from `web-client/` in debug builds,
/// so edits show on reload.
#[derive(RustEmbed)]
#[folder = "web-client/"]
struct Assets;

fn asset(path: &str) -> Option<Response> {
    let file = Assets::get(path)?;
    let mime = mime_of(path);
    let mut resp = (StatusCode::OK, file.data.into_owned()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    // Pages change with deployments; scripts are small. No long caching without hashed names.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(resp)
}

fn mime_of(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// An embedded file as a response, or 404.
pub(crate) fn page(path: &str) -> Response {
    asset(path).unwrap_or_else(|| StatusCode::NOT_FOUND.into_response())
}

pub async fn index() -> Response {
    asset("index.html").unwrap_or_else(|| StatusCode::NOT_FOUND.into_response())
}

pub async fn static_file(Path(path): Path<String>) -> Response {
    // rust-embed only serves files inside the folder; `..` never resolves outside it.
    if path.split('/').any(|seg| seg == ".." || seg.is_empty()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    asset(&path).unwrap_or_else(|| StatusCode::NOT_FOUND.into_response())
}

/// `GET /r/{room}?t=TOKEN`: the room page, or a 401 page that names the problem.
pub async fn room_page(
    State(state): State<AppState>,
    Path(room): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Response {
    let check = match RoomId::new(&room) {
        Ok(room) => state.admit(q.t.as_deref(), Some(&room)).await,
        Err(e) => Err(TokenError::Malformed(e.to_string())),
    };
    match check {
        Ok(_) => asset("room.html").unwrap_or_else(|| StatusCode::NOT_FOUND.into_response()),
        Err(e) => (token_status(&e), Html(refusal_page(&e))).into_response(),
    }
}

/// `GET /r/{room}/session?t=TOKEN`: the token's claims, for the page before it connects.
pub async fn session_claims(
    State(state): State<AppState>,
    Path(room): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Response {
    let room = match RoomId::new(&room) {
        Ok(r) => r,
        Err(e) => return token_error(&TokenError::Malformed(e.to_string())),
    };
    match state.admit(q.t.as_deref(), Some(&room)).await {
        Ok(c) => Json(json!({
            "room": c.room,
            "role": c.role,
            "name": c.name,
            "classroom": c.classroom,
            "mode": c.mode,
            "nbf": c.nbf,
            "exp": c.exp,
        }))
        .into_response(),
        Err(e) => token_error(&e),
    }
}

/// `GET /admin`: the admin page (it signs in with an API key; the API checks every call).
pub async fn admin_page() -> Response {
    asset("admin.html").unwrap_or_else(|| StatusCode::NOT_FOUND.into_response())
}

/// `GET /library`: the resource library page (an admin key, or `?t=` with a library link; the
/// API checks every call).
pub async fn library_page() -> Response {
    asset("library.html").unwrap_or_else(|| StatusCode::NOT_FOUND.into_response())
}

pub async fn healthz(State(state): State<AppState>) -> Response {
    Json(json!({
        "status": if state.is_shutting_down() { "shuttingDown" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "shards": state.media.shards().len(),
        "uptimeSeconds": state.started.elapsed().as_secs(),
    }))
    .into_response()
}

/// Both languages on one page: the server cannot know the reader's, and the page is tiny.
fn refusal_page(e: &TokenError) -> String {
    let (zh, en) = match e {
        TokenError::Missing => ("链接缺少访问令牌。", "The link has no access token."),
        TokenError::Malformed(_) => ("链接无效或已损坏。", "The link is malformed."),
        TokenError::Invalid => (
            "链接无效（签名不符）。",
            "The link is not valid (bad signature).",
        ),
        TokenError::Expired { .. } => ("链接已过期。", "This room link has expired."),
        TokenError::NotYetValid { .. } => (
            "课程尚未开始，链接暂不可用。",
            "The lesson has not started yet.",
        ),
        TokenError::WrongRoom { .. } => (
            "此链接属于另一个课堂。",
            "This link belongs to another room.",
        ),
        TokenError::Revoked => (
            "此链接已被新链接取代，请向组织者索取最新链接。",
            "This link was replaced by a newer one; ask the organizer for the current link.",
        ),
        TokenError::LessonEnded => ("本节课已结束。", "The lesson has ended."),
        TokenError::LessonCancelled => ("本节课已取消。", "The lesson was cancelled."),
        TokenError::Unavailable => (
            "暂时无法核对课表，请稍后刷新。",
            "The schedule cannot be checked right now; reload in a moment.",
        ),
    };
    format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>Ketang 课堂</title><link rel=\"stylesheet\" href=\"/static/css/app.css\"></head>\
<body class=\"refusal\"><main class=\"error-panel\" data-error-code=\"{code}\">\
<h1>无法进入课堂 · Cannot enter the lesson</h1><p>{zh}</p><p>{en}</p>\
<p class=\"detail\">{detail}</p></main></body></html>",
        code = e.code(),
        detail = escape(&e.to_string()),
    )
}

fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '&' => "&amp;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c => c.to_string(),
        })
        .collect()
}
