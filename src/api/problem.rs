//! RFC 9457 problem details: every API error is `application/problem+json` with a `type`, a
//! `title`, the `status`, a `detail` sentence and, for invalid input, `errors` naming each
//! offending field by its path (`recurrence.weekdays[1]`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

/// Problem types (the `type` member); docs/admin-api.md lists them.
pub mod types {
    pub const VALIDATION: &str = "urn:ketang:problem:validation";
    pub const BAD_JSON: &str = "urn:ketang:problem:bad-json";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "urn:ketang:problem:unsupported-media-type";
    pub const UNAUTHORIZED: &str = "urn:ketang:problem:unauthorized";
    pub const FORBIDDEN: &str = "urn:ketang:problem:forbidden";
    pub const LOCKED: &str = "urn:ketang:problem:locked";
    pub const NOT_FOUND: &str = "urn:ketang:problem:not-found";
    pub const NO_ROUTE: &str = "urn:ketang:problem:no-route";
    pub const METHOD_NOT_ALLOWED: &str = "urn:ketang:problem:method-not-allowed";
    pub const SCHEDULE_CONFLICT: &str = "urn:ketang:problem:schedule-conflict";
    pub const IN_USE: &str = "urn:ketang:problem:in-use";
    pub const STATE: &str = "urn:ketang:problem:state";
    pub const TOO_LARGE: &str = "urn:ketang:problem:too-large";
    pub const INTERNAL: &str = "urn:ketang:problem:internal";
    pub const UNAVAILABLE: &str = "urn:ketang:problem:unavailable";
}

/// One invalid input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Path of the field in the request: `name`, `recurrence.until`, `remoteClassroomIds[2]`;
    /// query parameters are named as such (`from`); an empty path means the whole body.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The other booking in a schedule conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConflictDetail {
    /// `teacher` or `classroom`.
    pub resource: String,
    /// The teacher or classroom booked twice.
    pub resource_id: String,
    /// The requested start that clashes (RFC 3339).
    pub start: String,
    /// The requested end that clashes.
    pub end: String,
    /// The lesson already booked.
    pub lesson_id: String,
    /// Its title.
    pub lesson_title: String,
    /// Its occurrence that overlaps.
    pub occurrence_id: String,
    /// That occurrence's start (RFC 3339, in its lesson's time zone).
    pub occurrence_start: String,
    /// That occurrence's end.
    pub occurrence_end: String,
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDoc {
    /// A URI naming the kind of problem (`urn:ketang:problem:validation`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What happened, for a person.
    pub detail: String,
    /// Invalid fields (422).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub errors: Vec<FieldError>,
    /// Bookings in the way (409 schedule conflict).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub conflicts: Vec<ConflictDetail>,
}

/// An API error: a problem document, boxed so that `Result`s stay small.
#[derive(Debug, Clone)]
pub struct Problem(Box<ProblemDoc>);

impl std::ops::Deref for Problem {
    type Target = ProblemDoc;
    fn deref(&self) -> &ProblemDoc {
        &self.0
    }
}

impl std::ops::DerefMut for Problem {
    fn deref_mut(&mut self) -> &mut ProblemDoc {
        &mut self.0
    }
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Self {
        Self(Box::new(ProblemDoc {
            kind: kind.to_owned(),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            conflicts: Vec::new(),
        }))
    }

    /// 422 with the invalid fields.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] if one.field.is_empty() => one.message.clone(),
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        let mut p = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            types::VALIDATION,
            "Invalid input",
            detail,
        );
        p.errors = errors;
        p
    }

    /// 422 for one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError::new(field, message)])
    }

    /// 404 for a thing that does not exist.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            types::NOT_FOUND,
            "Not found",
            format!("there is no {what} {id:?}"),
        )
    }

    /// 409: the thing cannot go while others refer to it.
    pub fn in_use(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, types::IN_USE, "In use", detail)
    }

    /// 409: not possible in the current state (cancelled, ended, over...).
    pub fn state(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            types::STATE,
            "Not possible now",
            detail,
        )
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            types::UNAUTHORIZED,
            "Unauthorized",
            detail,
        )
    }

    /// 403: authenticated, but the caller's role may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, types::FORBIDDEN, "Forbidden", detail)
    }

    /// 500; the cause is logged, not shown.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            types::INTERNAL,
            "Internal error",
            "the server failed to handle the request; it has been logged",
        )
    }

    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<sqlx::Error> for Problem {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                tracing::warn!(error = %e, "database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    types::UNAVAILABLE,
                    "Unavailable",
                    "the database is unavailable; try again",
                )
            }
            e => {
                tracing::error!(error = %e, "database error");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let unauthorized = status == StatusCode::UNAUTHORIZED;
        let body = serde_json::to_vec(&*self.0).unwrap_or_default();
        let mut resp = (status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if unauthorized {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ketang-admin\""),
            );
        }
        resp
    }
}

/// The result of every API handler.
pub type ApiResult<T> = Result<T, Problem>;

/// 401: no key or an unknown or revoked key.
#[derive(IntoResponses)]
pub enum AuthErrors {
    /// No API key, or an unknown or revoked one.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(ProblemDoc),
    /// The caller's role may not do this (docs/admin-api.md, roles).
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(ProblemDoc),
}

/// 401 and 404.
#[derive(IntoResponses)]
pub enum ItemErrors {
    /// No API key, or an unknown or revoked one.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(ProblemDoc),
    /// The caller's role may not do this (docs/admin-api.md, roles).
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(ProblemDoc),
    /// No such thing.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(ProblemDoc),
}

/// 401 and 422 (bad query parameters).
#[derive(IntoResponses)]
pub enum QueryErrors {
    /// No API key, or an unknown or revoked one.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(ProblemDoc),
    /// The caller's role may not do this (docs/admin-api.md, roles).
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(ProblemDoc),
    /// A query parameter is invalid; `errors` names it.
    #[response(status = 422, content_type = "application/problem+json")]
    Invalid(ProblemDoc),
}

/// Everything a request with a JSON body or a state change can run into.
#[derive(IntoResponses)]
pub enum WriteErrors {
    /// The body is not JSON.
    #[response(status = 400, content_type = "application/problem+json")]
    BadJson(ProblemDoc),
    /// No API key, or an unknown or revoked one.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(ProblemDoc),
    /// The caller's role may not do this (docs/admin-api.md, roles).
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(ProblemDoc),
    /// The thing addressed by the path does not exist.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(ProblemDoc),
    /// A schedule conflict (`conflicts` names the other lessons), a thing still in use, or
    /// not possible in the current state.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(ProblemDoc),
    /// The body is too large.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(ProblemDoc),
    /// The body is not `application/json`.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(ProblemDoc),
    /// Invalid input; `errors` names each field by its path.
    #[response(status = 422, content_type = "application/problem+json")]
    Invalid(ProblemDoc),
}
