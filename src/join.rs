//! The one door into a room. Signaling (`/ws`), WHIP and WHEP all join through [`join`], which
//! owns the order of the steps and their undoing: the peer's limits are read (registering it
//! with the school budgets), the shard that owns the room is asked to add it, and then either
//! the lesson's recording is started if it records, or, when the shard refuses, the budget
//! registration is given back. Each entry point keeps only what its transport needs (its
//! session registry, its reply format).

use ketang_sfu::{Answer, JoinRequest, PeerId, PeerMode, TrackSource};

use crate::auth::RoomClaims;
use crate::library::live::LiveRecordings;
use crate::media::MediaError;
use crate::state::AppState;

/// What an entry point brings to a join besides the link's claims.
#[derive(Debug)]
pub struct Entry {
    pub peer: PeerId,
    pub mode: PeerMode,
    pub offer: String,
    /// Which source each offered mid carries (signaling only; WHIP/WHEP infer it).
    pub sources: Vec<(String, TrackSource)>,
}

/// A peer in its room: the shard that owns it and the answer to its offer.
#[derive(Debug)]
pub struct Joined {
    pub shard: usize,
    pub answer: Answer,
}

/// Adds a peer to the room its link names. On failure nothing of the attempt is left behind.
pub async fn join(
    state: &AppState,
    claims: &RoomClaims,
    entry: Entry,
) -> Result<Joined, MediaError> {
    let caps = state.peer_caps(entry.peer, claims).await;
    let req = JoinRequest {
        peer: entry.peer,
        room: claims.room.clone(),
        name: claims.name.clone(),
        role: claims.role,
        classroom: claims.classroom.clone(),
        joined_at_ms: state.clock.now_ms_u64(),
        mode: entry.mode,
        offer: entry.offer,
        sources: entry.sources,
        lesson_mode: claims.mode.unwrap_or_default(),
        caps,
    };
    match state.media.join(req).await {
        Ok((shard, answer)) => {
            // An encoder or a browser opening a recorded lesson starts its recording.
            LiveRecordings::joined(state, claims);
            Ok(Joined { shard, answer })
        }
        Err(e) => {
            state.media.budgets.left(entry.peer);
            Err(e)
        }
    }
}
