//! Request extractors whose rejections are problem documents: the admin key, a JSON body and
//! query parameters, with errors naming the offending field by its path.

use axum::body::Bytes;
use axum::extract::MatchedPath;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use serde::de::DeserializeOwned;

use super::keys::{self, KeyInfo};
use super::problem::{FieldError, Problem, types};
use super::roles;
use crate::accounts::{AdminRole, session};
use crate::db::ids::ApiKeyId;
use crate::state::AppState;

/// The caller (an admin API key, or a signed-in admin's session cookie), checked against the
/// database and against the role matrix for the route (`roles`).
#[derive(Debug, Clone)]
pub struct AdminKey(pub KeyInfo);

impl FromRequestParts<AppState> for AdminKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        Caller::from_request_parts(parts, state)
            .await
            .map(|c| AdminKey(c.info))
    }
}

/// The caller with its role.
#[derive(Debug, Clone)]
pub struct Caller {
    pub info: KeyInfo,
    pub role: AdminRole,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let caller = if parts.headers.contains_key(header::AUTHORIZATION) {
            by_key(parts, state).await?
        } else if let Some(token) = session::cookie(&parts.headers, session::SESSION_COOKIE) {
            by_session(parts, state, token).await?
        } else {
            return Err(Problem::unauthorized(
                "send an admin API key as `Authorization: Bearer KEY`, or sign in at /admin",
            ));
        };
        let path = parts
            .extensions
            .get::<MatchedPath>()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
        if !roles::allowed(caller.role, &parts.method, &path) {
            return Err(Problem::forbidden(roles::refusal(
                caller.role,
                &parts.method,
                &path,
            )));
        }
        Ok(caller)
    }
}

async fn by_key(parts: &Parts, state: &AppState) -> Result<Caller, Problem> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            Problem::unauthorized("send an admin API key as `Authorization: Bearer KEY`")
        })?;
    let key = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Problem::unauthorized("the Authorization header must be `Bearer KEY`"))?;
    match keys::lookup_role(&state.db, key, state.clock.now_ms()).await? {
        Some((info, role)) => Ok(Caller { info, role }),
        None => {
            refused_key(state, key).await;
            Err(Problem::unauthorized(
                "the API key is unknown or was revoked (the bootstrap key expires once a \
             personal key exists, or after 24 hours)",
            ))
        }
    }
}

/// Audits a refused key (`key.refused`, with the source address): only its hash prefix, which
/// names a revoked or expired key without being usable.
async fn refused_key(state: &AppState, key: &str) {
    let now = state.clock.now_ms();
    let who = KeyInfo {
        id: ApiKeyId::from_db("-".to_owned()),
        name: "(refused key)".to_owned(),
        at_ms: now,
    };
    let shaped = key.starts_with(keys::KEY_PREFIX) && key.len() == keys::KEY_PREFIX.len() + 64;
    let hint = if shaped {
        keys::hash(key)[..12].to_owned()
    } else {
        "malformed".to_owned()
    };
    let entry = crate::api::audit::Audit::new("key.refused", "-")
        .detail(serde_json::json!({"keyHashPrefix": hint}));
    let written = async {
        let mut conn = state.db.pool.acquire().await?;
        crate::api::audit::record(&mut conn, &who, entry).await
    }
    .await;
    if let Err(e) = written {
        tracing::warn!("cannot audit a refused API key: {e}");
    }
}

/// A session cookie: live, fully signed in (TOTP given), and on a state-changing request
/// carrying the CSRF token.
async fn by_session(parts: &Parts, state: &AppState, token: &str) -> Result<Caller, Problem> {
    let now = state.clock.now_ms();
    let s = session::lookup(&state.db, &state.config.accounts, token, now)
        .await?
        .ok_or_else(|| {
            Problem::unauthorized(
                "the session has ended (signed out or idle too long): sign in again",
            )
        })?;
    if !s.full {
        return Err(Problem::unauthorized(
            "enrol an authenticator app (TOTP) before using the admin API",
        ));
    }
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && !session::csrf_ok(&parts.headers, &s) {
        return Err(Problem::forbidden(
            "the request lacks the session's CSRF token (X-CSRF-Token must equal the \
             ketang_csrf cookie)",
        ));
    }
    let role = s
        .user
        .role
        .ok_or_else(|| Problem::unauthorized("the account has no role"))?;
    Ok(Caller {
        info: KeyInfo {
            id: ApiKeyId::from_db(s.user.id.as_str().to_owned()),
            name: s.user.name.clone(),
            at_ms: now,
        },
        role,
    })
}

/// A JSON body (`application/json`), deserialized strictly.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Problem> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = content_type.split(';').next().unwrap_or("").trim();
        let json = mime.eq_ignore_ascii_case("application/json")
            || mime.to_ascii_lowercase().ends_with("+json");
        if !json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                types::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported media type",
                format!("send the body as Content-Type: application/json (got {content_type:?})"),
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    types::TOO_LARGE,
                    "Body too large",
                    e.body_text(),
                )
            })?;
        parse_json(&bytes).map(Body)
    }
}

/// Parses a JSON body; syntax errors are 400, type and value errors 422 naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    // Syntax first (the whole body), so that `{} trailing` is malformed rather than a
    // struct with missing fields.
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            types::BAD_JSON,
            "Malformed JSON",
            format!(
                "the body is not valid JSON: {}",
                strip_position(&e.to_string())
            ),
        )
    })?;
    // Every body of this API is an object (serde would also read a struct from an array).
    if !value.is_object() {
        return Err(Problem::field("", "the body must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = path_string(err.path());
        let (field, message) = name_field(path, err.into_inner().to_string());
        Problem::field(field, message)
    })
}

/// Query parameters, deserialized strictly; errors are 422 naming the parameter.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Params)
            .map_err(|err| {
                let path = path_string(err.path());
                let (field, message) = name_field(path, err.into_inner().to_string());
                Problem::field(field, message)
            })
    }
}

fn path_string(path: &serde_path_to_error::Path) -> String {
    let p = path.to_string();
    if p == "." { String::new() } else { p }
}

/// serde_json appends " at line 1 column 9"; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Serde names a missing or unknown field only in its message; put it into the path.
fn name_field(path: String, message: String) -> (String, String) {
    for prefix in ["missing field `", "unknown field `"] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some(end) = rest.find('`')
        {
            let name = &rest[..end];
            let field = if path.is_empty() {
                name.to_owned()
            } else if path == name || path.ends_with(&format!(".{name}")) {
                // serde_path_to_error already ends the path with an unknown field's name.
                path
            } else {
                format!("{path}.{name}")
            };
            return (field, message);
        }
    }
    (path, message)
}

/// Several field errors at once, or none.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Records the error of `r` under `field`, returning the value if there was one.
    pub fn check<T>(&mut self, field: &str, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(m) => {
                self.add(field, m);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Err(422)` if any error was recorded.
    pub fn finish(self) -> Result<(), Problem> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Problem::invalid(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Inner {
        #[allow(dead_code)]
        until: String,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Outer {
        #[allow(dead_code)]
        name: String,
        #[allow(dead_code)]
        ids: Vec<u32>,
        #[allow(dead_code)]
        recurrence: Option<Inner>,
    }

    fn fields(body: &str) -> (u16, Vec<String>) {
        match parse_json::<Outer>(body.as_bytes()) {
            Ok(_) => (200, vec![]),
            Err(p) => (p.status, p.errors.iter().map(|e| e.field.clone()).collect()),
        }
    }

    #[test]
    fn json_errors_name_the_field_path() {
        assert_eq!(fields(r#"{"name":"a","ids":[1]}"#), (200, vec![]));
        assert_eq!(fields(r#"{"ids":[1]}"#), (422, vec!["name".into()]));
        assert_eq!(
            fields(r#"{"name":"a","ids":[1,"x"]}"#),
            (422, vec!["ids[1]".into()])
        );
        assert_eq!(
            fields(r#"{"name":"a","ids":[],"recurrence":{}}"#),
            (422, vec!["recurrence.until".into()])
        );
        assert_eq!(
            fields(r#"{"name":"a","ids":[],"colour":"red"}"#),
            (422, vec!["colour".into()])
        );
        assert_eq!(fields(r#"{"name":"a","ids":[]"#).0, 400);
        assert_eq!(fields(r#"{"name":"a","ids":[]} x"#).0, 400);
        assert_eq!(fields("[]"), (422, vec!["".into()]));
    }
}
