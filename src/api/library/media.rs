//! Library files over HTTP: streamed with `Range` (RFC 9110 §14) so that `<video>` can seek,
//! and downloads. Bytes come from the object store as a stream, so memory use does not grow
//! with the file or the range.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::{IntoResponses, ToSchema};

use super::{EntryErrors, LinkQuery, access, load, parse_id, types};
use crate::api::extract::Params;
use crate::api::problem::{ApiResult, Problem, ProblemDoc};
use crate::library::catalog::{self, Entry};
use crate::library::range::{Served, select};
use crate::library::store::{StoreError, container_of, content_type_of, track_key};
use crate::state::AppState;

/// A WebM (VP8/VP9 + Opus) or, for H.264 lessons, fragmented MP4 (H.264 + Opus) file,
/// whole or the requested range; `Content-Type` says which.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct WebmFile(Vec<u8>);

/// 409 and 416 besides the entry errors.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum FileErrors {
    /// Not playable (still recording, or failed).
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(ProblemDoc),
    /// The range does not parse or starts beyond the end (`Content-Range: bytes */LENGTH`).
    #[response(status = 416, content_type = "application/problem+json")]
    Range(ProblemDoc),
}

fn not_ready(e: &Entry) -> Problem {
    Problem::state(match e.state.as_str() {
        catalog::RECORDING => {
            "the lesson is still being recorded; it is in the library once it ends"
        }
        _ => "nothing playable was kept of this recording (see its error)",
    })
}

/// Stream the recording (`Range` supported; add `?t=` with a library link).
#[utoipa::path(get, path = "/api/v1/library/{id}/media", tag = "library",
    params(("id" = String, Path, description = "Recording id"), LinkQuery,
        ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=1000-1999`")),
    responses(
        (status = 200, description = "The whole file (`video/mp4` for an H.264 lesson)",
            content((WebmFile = "video/webm"), (WebmFile = "video/mp4"))),
        (status = 206, description = "The requested byte range (`Content-Range`)",
            content((WebmFile = "video/webm"), (WebmFile = "video/mp4"))),
        EntryErrors, FileErrors))]
pub async fn media(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Params(q): Params<LinkQuery>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    access(&state, &headers, q.t.as_deref(), &id).await?;
    let e = load(&state, &id).await?;
    let key = e.object_key.clone().filter(|_| e.state == catalog::READY);
    let key = key.ok_or_else(|| not_ready(&e))?;
    serve(&state, &key, &method, &headers, e.sha256.as_deref(), None).await
}

/// Download the recording as a file.
#[utoipa::path(get, path = "/api/v1/library/{id}/download", tag = "library",
    params(("id" = String, Path, description = "Recording id"), LinkQuery),
    responses(
        (status = 200, description = "The whole file (`video/mp4` for an H.264 lesson)",
            content((WebmFile = "video/webm"), (WebmFile = "video/mp4"))),
        (status = 206, description = "The requested byte range (`Content-Range`)",
            content((WebmFile = "video/webm"), (WebmFile = "video/mp4"))),
        EntryErrors, FileErrors))]
pub async fn download(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Params(q): Params<LinkQuery>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    access(&state, &headers, q.t.as_deref(), &id).await?;
    let e = load(&state, &id).await?;
    let key = e.object_key.clone().filter(|_| e.state == catalog::READY);
    let key = key.ok_or_else(|| not_ready(&e))?;
    let tz = jiff::tz::TimeZone::get(&e.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    let date = crate::schedule::time::local_date(e.started_at, &tz);
    let name = format!("{date} {}.{}", e.title, container_of(&key));
    serve(
        &state,
        &key,
        &method,
        &headers,
        e.sha256.as_deref(),
        Some(&name),
    )
    .await
}

/// Download one per-track file of the recording.
#[utoipa::path(get, path = "/api/v1/library/{id}/tracks/{source}", tag = "library",
    params(("id" = String, Path, description = "Recording id"),
        ("source" = String, Path, description = "Track source, e.g. `t3-video`"), LinkQuery),
    responses(
        (status = 200, description = "The whole file (`video/mp4` for an H.264 lesson)",
            content((WebmFile = "video/webm"), (WebmFile = "video/mp4"))),
        (status = 206, description = "The requested byte range (`Content-Range`)",
            content((WebmFile = "video/webm"), (WebmFile = "video/mp4"))),
        EntryErrors, FileErrors))]
pub async fn track_file(
    State(state): State<AppState>,
    Path((id, source)): Path<(String, String)>,
    Params(q): Params<LinkQuery>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    access(&state, &headers, q.t.as_deref(), &id).await?;
    load(&state, &id).await?;
    let missing = || Problem::not_found("track file", &format!("{id}/{source}"));
    // Only a source the recorder could have named; the key is then ours, not the path's.
    track_key(&id, &source, "webm").ok_or_else(missing)?;
    let tracks = catalog::tracks(&state.db.pool, id.as_str()).await?;
    let t = tracks
        .into_iter()
        .find(|t| t.source == source)
        .ok_or_else(missing)?;
    let name = format!("{id}-{source}.{}", container_of(&t.object_key));
    serve(
        &state,
        &t.object_key,
        &method,
        &headers,
        Some(&t.sha256),
        Some(&name),
    )
    .await
}

/// `attachment` with the name in ASCII and in UTF-8 (RFC 6266 / 8187).
fn disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_. ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// Serves `key` whole, as one range, or 416, following the request's `Range` and `If-Range`.
/// HEAD (which axum routes to these GET handlers) gets the same headers without the store
/// being read.
async fn serve(
    state: &AppState,
    key: &str,
    method: &Method,
    headers: &HeaderMap,
    sha256: Option<&str>,
    attachment: Option<&str>,
) -> ApiResult<Response> {
    let store = &state.library.store;
    let len = store.size(key).await.map_err(store_problem)?;
    let etag = sha256.map(|s| format!("\"{s}\""));
    // A range of a file that changed since the client's copy would splice two files.
    let range_valid = match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(v) => etag.as_deref() == Some(v.trim()),
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| range_valid);
    let (status, start, end) = match select(range, len) {
        Served::All => (StatusCode::OK, 0, len.saturating_sub(1)),
        Served::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end),
        Served::Unsatisfiable => {
            let mut r = Problem::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                types::RANGE,
                "Range not satisfiable",
                format!(
                    "the file has {len} bytes; ask for one range within them, e.g. bytes=0-999"
                ),
            )
            .into_response();
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes */{len}")),
            );
            return Ok(r);
        }
    };
    let body = if len == 0 || method == Method::HEAD {
        Body::empty()
    } else {
        Body::from_stream(store.read(key, start, end).await.map_err(store_problem)?)
    };
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type_of(key)),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let length = if len == 0 { 0 } else { end - start + 1 };
    h.insert(header::CONTENT_LENGTH, header_value(&length.to_string()));
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_RANGE,
            header_value(&format!("bytes {start}-{end}/{len}")),
        );
    }
    if let Some(tag) = &etag {
        h.insert(header::ETAG, header_value(tag));
    }
    // The link in the URL is the credential: shared caches must not keep the bytes.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if let Some(name) = attachment {
        h.insert(
            header::CONTENT_DISPOSITION,
            header_value(&disposition(name)),
        );
    }
    Ok(resp)
}

fn store_problem(e: StoreError) -> Problem {
    match e {
        StoreError::NotFound => {
            tracing::error!("a ready library entry has no file in the store");
            Problem::new(
                StatusCode::NOT_FOUND,
                crate::api::problem::types::NOT_FOUND,
                "Not found",
                "the recording's file is missing from the library store",
            )
        }
        e => {
            tracing::error!(error = %e, "library store");
            Problem::internal()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_names_survive_in_both_forms() {
        let d = disposition("2030-03-04 三年级数学.webm");
        assert!(
            d.starts_with("attachment; filename=\"2030-03-04 _____.webm\""),
            "{d}"
        );
        assert!(d.contains("filename*=UTF-8''2030-03-04%20%E4%B8%89"), "{d}");
        let tricky = disposition("a\"b\r\n.webm");
        assert!(
            tricky.starts_with("attachment; filename=\"a_b__.webm\";"),
            "{tricky}"
        );
        assert!(HeaderValue::from_str(&tricky).is_ok());
    }
}
