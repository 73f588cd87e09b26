//! Live rooms on this server: who is in them since when, and removing a participant.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::tz::TimeZone;
use ketang_sfu::{LeaveReason, PeerId, RoomId};
use serde::Serialize;
use utoipa::ToSchema;

use super::audit::{self, Audit};
use super::extract::AdminKey;
use super::problem::{ApiResult, AuthErrors, ItemErrors, Problem};
use crate::db::ids::OccurrenceId;
use crate::schedule::store;
use crate::schedule::time::{format_in, format_utc, zone};
use crate::state::AppState;

/// Someone in a live room.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveParticipant {
    /// Use it to remove the participant.
    #[schema(minimum = 1)]
    pub peer_id: u64,
    pub name: String,
    /// `teacher`, `classroom`, `observer` or `viewer`.
    pub role: String,
    pub classroom: Option<String>,
    /// How its media travels: `udp`, `tcp` (ICE over TCP), or `turn_udp` / `turn_tcp` /
    /// `turn_tls` (through the embedded TURN server); null until it connects.
    pub transport: Option<String>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub joined_at: String,
}

/// The lesson a live room belongs to.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveLesson {
    pub lesson_id: String,
    pub occurrence_id: String,
    pub title: String,
    #[schema(format = DateTime)]
    pub start: String,
    #[schema(format = DateTime)]
    pub end: String,
}

/// A room with people in it, on this server.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveRoom {
    pub room: String,
    /// Since the first of the present participants joined (RFC 3339); null when empty.
    #[schema(format = DateTime)]
    pub since: Option<String>,
    /// The scheduled lesson, when the room is a lesson's.
    pub lesson: Option<LiveLesson>,
    pub participants: Vec<LiveParticipant>,
}

/// The live rooms of this server.
#[utoipa::path(get, path = "/api/v1/rooms", tag = "live",
    responses((status = 200, description = "OK", body = Vec<LiveRoom>), AuthErrors))]
pub async fn list_rooms(
    State(state): State<AppState>,
    _key: AdminKey,
) -> ApiResult<Json<Vec<LiveRoom>>> {
    let mut snapshots = state.media.snapshots().await;
    snapshots.sort_by(|a, b| a.room.as_str().cmp(b.room.as_str()));
    let ids: Vec<String> = snapshots
        .iter()
        .filter(|s| OccurrenceId::parse(s.room.as_str()).is_some())
        .map(|s| s.room.as_str().to_owned())
        .collect();
    let mut conn = state.db.pool.acquire().await?;
    let occurrences = store::occurrences_by_id(&mut conn, &ids).await?;
    let mut out = Vec::with_capacity(snapshots.len());
    for snap in snapshots {
        let lesson = match occurrences.iter().find(|o| o.id == snap.room.as_str()) {
            None => None,
            Some(o) => store::load_lesson(&mut conn, &o.lesson_id).await?.map(|l| {
                let tz = zone(&l.timezone).unwrap_or(TimeZone::UTC);
                LiveLesson {
                    lesson_id: l.id.clone(),
                    occurrence_id: o.id.clone(),
                    title: l.title,
                    start: format_in(o.starts_at, &tz),
                    end: format_in(o.ends_at, &tz),
                }
            }),
        };
        let since = snap
            .participants
            .iter()
            .map(|p| p.joined_at)
            .min()
            .map(|ms| format_utc(i64::try_from(ms).unwrap_or(0)));
        out.push(LiveRoom {
            room: snap.room.to_string(),
            since,
            lesson,
            participants: snap
                .participants
                .into_iter()
                .map(|p| LiveParticipant {
                    peer_id: p.peer_id.0,
                    transport: snap
                        .transports
                        .iter()
                        .find(|(id, _)| *id == p.peer_id)
                        .map(|(_, t)| t.as_str().to_owned()),
                    name: p.name,
                    role: p.role.as_str().to_owned(),
                    classroom: p.classroom.map(|c| c.to_string()),
                    joined_at: format_utc(i64::try_from(p.joined_at).unwrap_or(0)),
                })
                .collect(),
        });
    }
    Ok(Json(out))
}

/// Remove a participant from a live room on this server; its link cannot rejoin the room.
#[utoipa::path(delete, path = "/api/v1/rooms/{room}/participants/{peerId}", tag = "live",
    params(("room" = String, Path, description = "Room id"), ("peerId" = u64, Path, description = "Peer id (from GET /api/v1/rooms)")),
    responses((status = 204, description = "Removed"), ItemErrors))]
pub async fn remove_participant(
    State(state): State<AppState>,
    AdminKey(key): AdminKey,
    Path((room, peer)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let not_found = || Problem::not_found("participant", &format!("{room}/{peer}"));
    let room_id = RoomId::new(&room).map_err(|_| not_found())?;
    let peer_id = peer.parse::<u64>().map(PeerId).map_err(|_| not_found())?;
    let shard = state.media.shard_of(&room_id).ok_or_else(not_found)?;
    let snapshot = shard
        .snapshot(room_id.clone())
        .await
        .ok()
        .flatten()
        .ok_or_else(not_found)?;
    let present = snapshot.participants.iter().find(|p| p.peer_id == peer_id);
    let Some(p) = present else {
        return Err(not_found());
    };
    let detail = serde_json::json!({"peerId": peer_id.0, "name": p.name, "role": p.role.as_str()});
    match state.media.people.identity(peer_id) {
        Some(identity) if identity.room == room_id => state.remove_link(peer_id, identity).await,
        _ => {
            state
                .media
                .remove_peer(&room_id, peer_id, LeaveReason::Removed);
        }
    }
    let mut conn = state.db.pool.acquire().await?;
    audit::record(
        &mut conn,
        &key,
        Audit::new("participant.remove", room_id.as_str()).detail(detail),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
