//! The HTTP surface: pages, signaling upgrade, WHIP/WHEP, health, and the admin API
//! (`crate::api`). `router` builds it without binding a socket, so tests can drive it directly.

mod body;
pub mod error;
pub mod headers;
mod pages;
pub mod serve;
pub mod tls;
pub(crate) mod whip;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, header};
use axum::routing::{delete, get, post};
use tower_http::cors::{Any, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::signaling::ws_handler;
use crate::state::AppState;

/// A page of the embedded web client, by its file name (`admin.html`), or 404.
pub(crate) fn embedded_page(name: &str) -> axum::response::Response {
    pages::page(name)
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.config.signaling.max_sdp_bytes + 1024;
    // WHIP/WHEP players run in other origins (a school's portal page, OBS's browser source).
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::DELETE, Method::PATCH, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([
            header::LOCATION,
            header::ETAG,
            HeaderName::from_static("link"),
        ]);
    let ingest = Router::new()
        .route("/whip/{room}", post(whip::whip_post))
        .route(
            "/whip/{room}/{session}",
            delete(whip::whip_delete).patch(whip::patch_not_allowed),
        )
        .route("/whep/{room}", post(whip::whep_post))
        .route(
            "/whep/{room}/{session}",
            delete(whip::whep_delete).patch(whip::patch_not_allowed),
        )
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(cors);

    Router::new()
        .route("/", get(pages::index))
        .route("/r/{room}", get(pages::room_page))
        .route("/r/{room}/session", get(pages::session_claims))
        // HTTP/1.1 upgrades with GET; over HTTP/2 (HTTPS) browsers open WebSockets on the
        // same connection with an extended CONNECT (RFC 8441).
        .route("/ws", get(ws_handler).connect(ws_handler))
        .route("/healthz", get(pages::healthz))
        .route("/readyz", get(crate::metrics::ready::handler))
        .route("/metrics", get(crate::metrics::handler))
        .route("/admin", get(pages::admin_page))
        .route("/library", get(pages::library_page))
        .route("/static/{*path}", get(pages::static_file))
        .merge(ingest)
        .merge(crate::api::router())
        .merge(crate::oidc::portal::router(&state))
        .layer(axum::middleware::from_fn_with_state(
            state.config.http.body_read_timeout,
            body::deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(
            headers::SecurityHeaders::new(&state.config.http.frame_ancestors),
            headers::add,
        ))
        // The span names the path only: the query holds room tokens (`?t=`).
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::extract::Request| {
                tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
            }),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::http::track,
        ))
        .with_state(state)
}
