//! WebSocket signaling at `GET /ws?t=TOKEN` (protocol §4): the token is checked before the
//! upgrade, then a [`session`] actor serves the connection.

mod floor;
pub mod protocol;
mod ratelimit;
mod recording;
mod session;

use axum::extract::{Query, State, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::http::error::token_error;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    pub t: Option<String>,
}

pub async fn ws_handler(
    State(state): State<AppState>,
    Query(q): Query<TokenQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    if state.is_shutting_down() {
        return crate::http::error::shutting_down();
    }
    let claims = match state.admit(q.t.as_deref(), None).await {
        Ok(c) => c,
        Err(e) => return token_error(&e),
    };
    let cfg = &state.config.signaling;
    // Frames up to the hard limit are read and refused with an error message; beyond it the
    // socket is closed (tungstenite would otherwise buffer without bound).
    ws.max_message_size(cfg.hard_max_message_bytes)
        .max_frame_size(cfg.hard_max_message_bytes)
        .on_upgrade(move |socket| async move {
            // Counted as open for as long as the session runs.
            let _open = state.metrics.signaling_connected();
            session::run(socket, state, claims).await
        })
        .into_response()
}
