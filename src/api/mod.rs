//! The admin REST API under `/api/v1` (docs/admin-api.md): schools, classrooms, teachers,
//! lessons and their occurrences, room links, live rooms, API keys and the audit log.
//!
//! Every route is registered through utoipa-axum's `routes!`, which takes the path and
//! methods from the handler's `#[utoipa::path]`, so the router and the OpenAPI 3.1 document
//! (`/api/v1/openapi.json`, rendered at `/api/v1/docs` by an embedded page) are built from the
//! same source; a test compares the two. Requests need an admin key (`Authorization: Bearer`); errors are RFC 9457
//! problem documents.

pub mod accounts;
pub mod attendance;
pub mod audit;
pub mod audit_chain;
pub mod bandwidth;
pub mod classrooms;
pub mod extract;
pub mod keys;
pub(crate) mod lesson_ops;
mod lesson_plan;
pub mod lessons;
pub mod library;
pub mod live;
pub mod occurrences;
pub mod problem;
pub mod roles;
pub mod schools;
pub mod session;
pub mod teachers;
pub mod validate;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Extension};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;
use problem::{Problem, types};

/// The document's fixed parts; the paths come from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ketang admin API",
        description = "Schedule three-classrooms lessons (专递课堂, 名师课堂, 名校网络课堂): schools, \
            classrooms, teachers, lessons and their occurrences, room links, live rooms. \
            Authenticate with an admin API key: `Authorization: Bearer KEY`. Errors are RFC 9457 \
            problem documents (`application/problem+json`).",
    ),
    // Problem documents are referenced by the shared error responses (`problem::*Errors`);
    // listing them here puts their schemas into the document's components.
    components(schemas(
        problem::ProblemDoc,
        problem::FieldError,
        problem::ConflictDetail,
        library::media::WebmFile
    )),
    modifiers(&BearerAuth),
    security(("adminKey" = [])),
    tags(
        (name = "schools"), (name = "classrooms"), (name = "teachers"), (name = "lessons"),
        (name = "occurrences"), (name = "live"), (name = "keys"), (name = "audit"), (name = "docs"),
        (name = "library"), (name = "session"), (name = "accounts"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "adminKey",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An admin API key (`kt_...`)"))
                    .build(),
            ),
        );
    }
}

/// The serialized document, built once.
#[derive(Clone)]
struct Rendered {
    json: Arc<String>,
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "docs", security(()),
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)))]
async fn openapi_json(Extension(r): Extension<Rendered>) -> Response {
    let mut resp = (StatusCode::OK, r.json.as_str().to_owned()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The API reference page, rendered in the browser from the OpenAPI document by the
/// server's own scripts (`web-client/js/api-docs/`): nothing is loaded from elsewhere.
#[utoipa::path(get, path = "/api/v1/docs", tag = "docs", security(()),
    responses((status = 200, description = "HTML", content_type = "text/html", body = String)))]
async fn docs_page() -> Response {
    crate::http::embedded_page("api-docs.html")
}

/// A path under `/api/v1` that no route serves.
async fn no_route() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        types::NO_ROUTE,
        "Not found",
        "no such API endpoint; see /api/v1/docs",
    )
}

/// A known path with a method it does not serve.
async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        types::METHOD_NOT_ALLOWED,
        "Method not allowed",
        "this endpoint does not serve that method; see /api/v1/docs",
    )
}

/// The API's routes and their OpenAPI document.
pub fn routes() -> (Router<AppState>, OpenApiDoc) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(schools::list_schools, schools::create_school))
        .routes(routes!(
            schools::get_school,
            schools::update_school,
            schools::delete_school
        ))
        .routes(routes!(
            classrooms::list_classrooms,
            classrooms::create_classroom
        ))
        .routes(routes!(
            classrooms::get_classroom,
            classrooms::update_classroom,
            classrooms::delete_classroom
        ))
        .routes(routes!(teachers::list_teachers, teachers::create_teacher))
        .routes(routes!(
            teachers::get_teacher,
            teachers::update_teacher,
            teachers::delete_teacher
        ))
        .routes(routes!(lessons::list_lessons, lessons::create_lesson))
        .routes(routes!(
            lessons::get_lesson,
            lessons::update_lesson,
            lessons::delete_lesson
        ))
        .routes(routes!(occurrences::lesson_occurrences))
        .routes(routes!(lesson_ops::cancel_lesson))
        .routes(routes!(lesson_ops::end_lesson))
        .routes(routes!(lesson_ops::get_links))
        .routes(routes!(lesson_ops::reissue_links))
        .routes(routes!(attendance::lesson_attendance))
        .routes(routes!(occurrences::timetable))
        .routes(routes!(
            occurrences::get_occurrence,
            occurrences::move_occurrence
        ))
        .routes(routes!(occurrences::cancel_occurrence))
        .routes(routes!(occurrences::restore_occurrence))
        .routes(routes!(live::list_rooms))
        .routes(routes!(live::remove_participant))
        .routes(routes!(bandwidth::room_bandwidth))
        .routes(routes!(keys::list_keys, keys::create_key))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(audit::list_audit))
        .routes(routes!(audit_chain::verify_audit))
        .routes(routes!(
            session::sign_in,
            session::current,
            session::sign_out
        ))
        .routes(routes!(session::start_totp))
        .routes(routes!(session::confirm_totp))
        .routes(routes!(accounts::list_accounts, accounts::create_account))
        .routes(routes!(accounts::disable_account))
        .routes(routes!(accounts::reset_account))
        .routes(routes!(library::list_library))
        .routes(routes!(library::status::recorder_status))
        .routes(routes!(library::get_recording, library::delete_recording))
        .routes(routes!(library::media::media))
        .routes(routes!(library::media::download))
        .routes(routes!(library::media::track_file))
        .routes(routes!(library::links::create_link))
        .routes(routes!(
            library::notes::list_notes,
            library::notes::add_note
        ))
        .routes(routes!(library::notes::export))
        .routes(routes!(openapi_json))
        .routes(routes!(docs_page))
        .split_for_parts()
}

/// The OpenAPI document alone (for tests and tools).
pub fn openapi() -> OpenApiDoc {
    routes().1
}

/// The API router, ready to merge into the server's.
pub fn router() -> Router<AppState> {
    let (router, doc) = routes();
    let json = doc.to_pretty_json().unwrap_or_else(|_| "{}".to_owned());
    let rendered = Rendered {
        json: Arc::new(json),
    };
    router
        .method_not_allowed_fallback(method_not_allowed)
        .route("/api/v1/{*rest}", any(no_route))
        .route("/api/v1", any(no_route))
        .layer(Extension(rendered))
        .layer(axum::middleware::from_fn(audit::with_source))
        // Lessons with fifty classrooms are a few KiB; nothing legitimate comes near this.
        .layer(DefaultBodyLimit::max(64 * 1024))
}
