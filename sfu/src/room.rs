//! `Room`: the peers of one lesson and the tracks they publish. All of a room lives on one
//! shard, so routing a packet never leaves the thread.

use std::collections::BTreeMap;

use crate::event::{RoomSnapshot, TrackInfo};
use crate::ids::{PeerId, RoomId, TrackId};
use crate::track::TrackIn;

#[derive(Debug)]
pub(crate) struct Room {
    pub id: RoomId,
    /// In joining order.
    pub peers: Vec<PeerId>,
    /// Ordered so that snapshots and offers list tracks deterministically.
    pub tracks: BTreeMap<TrackId, TrackIn>,
}

impl Room {
    pub fn new(id: RoomId) -> Self {
        Room {
            id,
            peers: Vec::new(),
            tracks: BTreeMap::new(),
        }
    }

    pub fn track_infos(&self) -> Vec<TrackInfo> {
        self.tracks.values().map(|t| t.info.clone()).collect()
    }

    pub fn snapshot(&self, participants: Vec<crate::event::ParticipantInfo>) -> RoomSnapshot {
        RoomSnapshot {
            room: self.id.clone(),
            participants,
            tracks: self.track_infos(),
        }
    }
}
