//! Words every layer of the server shares about a room's clients: the notices the application
//! sends to a whole room and the reasons a session ends. They sit below `media`, `signaling`,
//! `library` and `schedule`, which all speak them, so none of those imports another for them;
//! `signaling::protocol` puts them on the wire.

use ketang_sfu::LeaveReason;
use serde::Serialize;

/// Application notices for every client of a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Notice {
    /// The lesson's window closes at `ends_at` (Unix seconds); the room closes then.
    LessonEnding { ends_at: u64 },
    /// The lesson is (`on`) or is no longer recorded; `since` is the recording's start (Unix
    /// ms), `error` why it stopped when it failed.
    Recording {
        on: bool,
        recording_id: Option<String>,
        since: Option<u64>,
        error: Option<String>,
    },
    /// For the teacher: the recording failed (sent as `error` with code `recordingFailed`).
    RecordingFailed { message: String },
}

/// `bye.reason` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ByeReason {
    Left,
    RoomClosed,
    Removed,
    TokenExpired,
    Shutdown,
    Replaced,
    MediaFailed,
    /// The media shard the room needs is full (`media.max_peers_per_shard`): try again later.
    ServerFull,
    /// The client read its messages too slowly; events for it were dropped.
    SlowConsumer,
    /// The lesson's links were reissued: this one no longer works.
    LinkRevoked,
}

impl ByeReason {
    /// The bye for a peer the SFU removed.
    pub fn from_leave(reason: LeaveReason) -> ByeReason {
        match reason {
            LeaveReason::Left => ByeReason::Left,
            LeaveReason::RoomClosed => ByeReason::RoomClosed,
            LeaveReason::Removed => ByeReason::Removed,
            LeaveReason::Shutdown => ByeReason::Shutdown,
            LeaveReason::Disconnected | LeaveReason::Internal => ByeReason::MediaFailed,
        }
    }

    /// Why a peer closed by the server with this bye leaves the room (attendance records it):
    /// a shutdown is not a removal.
    pub fn leave_reason(self) -> LeaveReason {
        match self {
            ByeReason::Left => LeaveReason::Left,
            ByeReason::RoomClosed => LeaveReason::RoomClosed,
            ByeReason::Shutdown => LeaveReason::Shutdown,
            ByeReason::MediaFailed | ByeReason::SlowConsumer => LeaveReason::Disconnected,
            // Never admitted: nothing to leave.
            ByeReason::ServerFull => LeaveReason::Internal,
            ByeReason::Removed
            | ByeReason::TokenExpired
            | ByeReason::Replaced
            | ByeReason::LinkRevoked => LeaveReason::Removed,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            ByeReason::Left => "you left the lesson",
            ByeReason::RoomClosed => "the lesson has ended",
            ByeReason::Removed => "you were removed from the lesson",
            ByeReason::TokenExpired => "the room link expired",
            ByeReason::Shutdown => "the server is shutting down",
            ByeReason::Replaced => "the same room link joined from another page",
            ByeReason::MediaFailed => "the media connection failed",
            ByeReason::ServerFull => "the server is full; the page tries again shortly",
            ByeReason::LinkRevoked => {
                "the lesson's links were reissued: ask the organizer for the current link"
            }
            ByeReason::SlowConsumer => {
                "the connection was too slow to follow the lesson; reconnecting should help"
            }
        }
    }
}
