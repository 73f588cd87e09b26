//! The bandwidth picture of a live room, for IT staff: per participant the send-side estimate,
//! the configured limits (classroom link, share of the school budget), what the allocator gave
//! it and which layer of each stream it receives; per published track the cost of each
//! simulcast layer and whether subscribers ask for it (dynacast).

use axum::Json;
use axum::extract::{Path, State};
use ketang_sfu::RoomId;

pub use crate::media::report::{
    ParticipantBandwidth, PublishedLayer, PublishedStream, ReceivedStream, view,
};

use super::extract::AdminKey;
use super::problem::{ApiResult, ItemErrors, Problem};
use crate::state::AppState;

/// The bandwidth picture of a live room on this server.
#[utoipa::path(get, path = "/api/v1/rooms/{room}/bandwidth", tag = "live",
    params(("room" = String, Path, description = "Room id")),
    responses((status = 200, description = "OK", body = Vec<ParticipantBandwidth>), ItemErrors))]
pub async fn room_bandwidth(
    State(state): State<AppState>,
    _key: AdminKey,
    Path(room): Path<String>,
) -> ApiResult<Json<Vec<ParticipantBandwidth>>> {
    let not_found = || Problem::not_found("live room", &room);
    let room_id = RoomId::new(&room).map_err(|_| not_found())?;
    if state.media.shard_of(&room_id).is_none() {
        return Err(not_found());
    }
    let peers = state.media.bandwidth(&room_id, None).await;
    Ok(Json(peers.into_iter().map(view).collect()))
}
