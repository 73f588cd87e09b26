//! The SFU's errors: what a caller did wrong, never an internal fault (those are bugs and are
//! isolated per peer, see `Sfu`).

use crate::ids::{PeerId, RoomId};

/// Why an SFU call was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SfuError {
    /// The SDP text does not parse, or str0m refused it.
    #[error("invalid SDP: {0}")]
    InvalidSdp(String),
    /// A client offer arrived while a server offer waits for its answer (see protocol §4.3).
    #[error("an offer from the server is pending; answer it first")]
    Glare,
    /// An answer arrived but no server offer is outstanding.
    #[error("no offer from the server is pending")]
    NoPendingOffer,
    /// The peer id is already in use on this shard.
    #[error("peer {0} already joined")]
    PeerExists(PeerId),
    /// No such peer on this shard.
    #[error("unknown peer {0}")]
    UnknownPeer(PeerId),
    /// No such room on this shard.
    #[error("unknown room {0}")]
    UnknownRoom(RoomId),
    /// The request is not allowed for this peer.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Too many requests of this kind from the peer; this one was dropped.
    #[error("{0}")]
    RateLimited(String),
    /// The offer has more audio and video m-lines than a peer may have.
    #[error("the offer has {offered} audio and video m-lines; at most {max} are allowed")]
    TooManyTracks {
        /// Live audio and video m-lines of the client's own in the offer.
        offered: usize,
        /// `SfuConfig::max_tracks_per_peer`.
        max: usize,
    },
    /// The room is closing; no new peers.
    #[error("room {0} is closing")]
    RoomClosing(RoomId),
    /// A bug was caught while handling the peer; the peer was removed.
    #[error("internal error while handling peer {0}; it was removed")]
    Internal(PeerId),
}
