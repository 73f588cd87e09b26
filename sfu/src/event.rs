//! What the SFU tells the application: datagrams to send, events for peers, and its next
//! deadline. Drained with `Sfu::poll_output` until `Timeout`.

use std::net::SocketAddr;
use std::time::Instant;

use serde::Serialize;

use crate::ids::{ClassroomId, PeerId, RoomId, TrackId};
use crate::role::{Role, TrackKind, TrackSource};
use crate::sdp::RejectedMid;

/// One output of the SFU.
#[derive(Debug)]
pub enum SfuOutput {
    /// Send `contents` from `source` (the shard socket's address) to `destination`.
    Transmit(Transmit),
    /// Something the application must act on.
    Event(SfuEvent),
    /// Nothing more to do before this instant (unless input arrives).
    Timeout(Instant),
}

/// A datagram to send.
#[derive(Debug)]
pub struct Transmit {
    /// Local address to send from.
    pub source: SocketAddr,
    /// Remote address.
    pub destination: SocketAddr,
    /// The datagram.
    pub contents: Vec<u8>,
}

/// An event for the application.
#[derive(Debug)]
#[non_exhaustive]
pub enum SfuEvent {
    /// Deliver `event` to `peer`'s client.
    ToPeer {
        /// Recipient.
        peer: PeerId,
        /// What to tell it.
        event: PeerEvent,
    },
    /// A peer is gone from the shard (it left, timed out, was removed, or its room closed).
    PeerLeft {
        /// The peer.
        peer: PeerId,
        /// Its room.
        room: RoomId,
        /// Why.
        reason: LeaveReason,
    },
    /// The last peer left; the room no longer exists on this shard.
    RoomClosed {
        /// The room.
        room: RoomId,
    },
}

/// An event for one peer's client (mapped 1:1 onto signaling messages).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PeerEvent {
    /// A server offer; the client must answer.
    Offer {
        /// SDP text.
        sdp: String,
        /// Which track each receiving m-line carries.
        tracks: Vec<MidTrack>,
    },
    /// Someone joined the room.
    ParticipantJoined(ParticipantInfo),
    /// Someone left the room.
    ParticipantLeft {
        /// Who.
        peer: PeerId,
        /// Why.
        reason: LeaveReason,
    },
    /// Someone started publishing a track.
    TrackAdded(TrackInfo),
    /// A track ended.
    TrackRemoved {
        /// The track.
        track: TrackId,
        /// Its publisher.
        peer: PeerId,
    },
    /// This peer's own media connection is up (ICE and DTLS done).
    Connected,
}

/// A participant as others see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantInfo {
    /// Peer id.
    pub peer_id: PeerId,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Classroom, if the token named one.
    pub classroom: Option<ClassroomId>,
    /// Unix milliseconds of joining.
    pub joined_at: u64,
}

/// A published track as others see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TrackInfo {
    /// Track id.
    pub track_id: TrackId,
    /// Publisher.
    pub peer_id: PeerId,
    /// Audio or video.
    pub kind: TrackKind,
    /// Microphone, camera or screen.
    pub source: TrackSource,
}

/// The track carried by one m-line of a server offer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MidTrack {
    /// The m-line.
    pub mid: String,
    /// The track on it.
    #[serde(flatten)]
    pub track: TrackInfo,
}

/// Why a peer left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LeaveReason {
    /// It said goodbye (or its client closed the connection).
    Left,
    /// Its media connection timed out or never came up.
    Disconnected,
    /// It was removed (by a moderator, an admin, or a newer session of the same link).
    Removed,
    /// The room was closed.
    RoomClosed,
    /// The server is shutting down.
    Shutdown,
    /// A bug was caught while handling it.
    Internal,
}

impl LeaveReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaveReason::Left => "left",
            LeaveReason::Disconnected => "disconnected",
            LeaveReason::Removed => "removed",
            LeaveReason::RoomClosed => "roomClosed",
            LeaveReason::Shutdown => "shutdown",
            LeaveReason::Internal => "internal",
        }
    }
}

/// A request to join a room with an SDP offer.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Id chosen by the application (unique per process).
    pub peer: PeerId,
    /// The room.
    pub room: RoomId,
    /// How others see the peer.
    pub name: String,
    /// Role from the token.
    pub role: Role,
    /// Classroom from the token.
    pub classroom: Option<ClassroomId>,
    /// Unix milliseconds, for `joinedAt`.
    pub joined_at_ms: u64,
    /// Browser, WHIP or WHEP.
    pub mode: crate::sdp::PeerMode,
    /// The client's SDP offer.
    pub offer: String,
    /// Sources the client named per mid (screen shares); others default by kind.
    pub sources: Vec<(String, TrackSource)>,
}

/// The SDP answer to a client offer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// SDP text.
    pub sdp: String,
    /// m-lines that were refused, with reasons.
    pub rejected: Vec<RejectedMid>,
}

/// A room as the application sees it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomSnapshot {
    /// The room.
    pub room: RoomId,
    /// Everyone in it.
    pub participants: Vec<ParticipantInfo>,
    /// Everything published in it.
    pub tracks: Vec<TrackInfo>,
}
