//! Signaling messages: serde-tagged JSON, `type` names the message, fields are camelCase.
//! `docs/protocol.md` §4 is the specification; keep the two in step.

use ketang_sfu::{
    ChatMessage, ClassroomId, LeaveReason, MidTrack, ParticipantInfo, PeerEvent, PeerId,
    RejectedMid, Role, RoomId, RoomState, TrackId, TrackInfo, TrackSource,
};
use serde::{Deserialize, Serialize};

pub use crate::room_signal::{ByeReason, Notice};

/// A message from the client.
#[derive(Debug, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ClientMsg {
    /// The client's SDP offer: the first one joins, later ones renegotiate. `fresh` marks the
    /// first offer of a new `RTCPeerConnection` (after a reload or a failed connection), so a
    /// resumed session replaces the old connection instead of renegotiating it.
    Offer {
        sdp: String,
        #[serde(default)]
        tracks: Vec<TrackSourceDecl>,
        #[serde(default)]
        fresh: bool,
    },
    /// The answer to the latest server offer.
    Answer { sdp: String },
    /// The client leaves.
    Leave {},
    /// Liveness check.
    Ping {},
    /// The stats overlay asks for the server's bandwidth picture of this peer.
    GetStats {},
    /// A classroom or observer asks to speak.
    RaiseHand {},
    /// ... and no longer does.
    LowerHand {},
    /// Teacher: put a participant on stage.
    CallOn {
        peer_id: PeerId,
        #[serde(default = "yes")]
        replace: bool,
    },
    /// Teacher: end a participant's turn.
    Done { peer_id: PeerId },
    /// Teacher: call on a present classroom at random.
    RollCall {},
    /// Teacher: mute or unmute someone's microphone and/or camera.
    Mute {
        peer_id: PeerId,
        mic: Option<bool>,
        video: Option<bool>,
    },
    /// Teacher: mute every classroom.
    MuteAllClassrooms {},
    /// Mute or unmute oneself.
    SetMuted {
        mic: Option<bool>,
        video: Option<bool>,
    },
    /// A chat message to the room.
    Chat { text: String },
    /// A viewer's question.
    Ask { text: String },
    /// Teacher: mark a question answered or dismissed.
    SettleQuestion { id: u64, answered: bool },
    /// Teacher: remove a participant; its link cannot rejoin unless re-admitted.
    Remove { peer_id: PeerId },
    /// Teacher: let a removed participant's link in again.
    Readmit { peer_id: PeerId },
    /// Teacher: start recording the lesson into the library.
    StartRecording {},
    /// Teacher: stop recording.
    StopRecording {},
    /// An observation note on the running recording (master lessons: teacher and observers).
    Note { text: String },
}

fn yes() -> bool {
    true
}

/// The source a client declares for one of its sending m-lines.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackSourceDecl {
    pub mid: String,
    pub source: TrackSource,
}

/// Limits announced in `welcome`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_sdp_bytes: usize,
    pub messages_per_second: u32,
}

/// A refused m-line in `answer`.
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    pub mid: String,
    pub reason: String,
}

impl From<RejectedMid> for Rejected {
    fn from(r: RejectedMid) -> Self {
        Rejected {
            mid: r.mid,
            reason: r.reason,
        }
    }
}

/// A message to the client.
#[derive(Debug, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ServerMsg {
    Welcome {
        peer_id: PeerId,
        room: RoomId,
        role: Role,
        name: String,
        classroom: Option<ClassroomId>,
        participants: Vec<ParticipantInfo>,
        tracks: Vec<TrackInfo>,
        limits: Limits,
        expires_at: u64,
        /// The session took over a peer that was still in the room (a reconnect).
        resumed: bool,
        /// The embedded TURN server with a short-lived credential for this peer, for the
        /// `RTCPeerConnection` configuration (empty when it is off).
        ice_servers: Vec<crate::turn::IceServer>,
    },
    Answer {
        sdp: String,
        rejected: Vec<Rejected>,
    },
    /// The reply to `getStats`: estimate, limits, allocation and layers (null before the
    /// peer is in a room).
    Stats {
        bandwidth: Option<crate::media::report::ParticipantBandwidth>,
    },
    Offer {
        sdp: String,
        tracks: Vec<MidTrack>,
    },
    ParticipantJoined {
        participant: ParticipantInfo,
    },
    ParticipantLeft {
        peer_id: PeerId,
        reason: LeaveReason,
    },
    TrackAdded {
        track: TrackInfo,
    },
    TrackRemoved {
        track_id: TrackId,
        peer_id: PeerId,
    },
    /// This client cannot decode a track it receives (the publisher's codec was not in its
    /// offer); nothing of it is sent.
    CodecMismatch {
        track_id: TrackId,
        peer_id: PeerId,
        codec: String,
    },
    /// For a track's publisher: a participant cannot decode it.
    ViewerCodecMismatch {
        track_id: TrackId,
        viewer_id: PeerId,
        codec: String,
    },
    Error {
        code: ErrorCode,
        message: String,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    Bye {
        reason: ByeReason,
        message: String,
    },
    Pong {},
    /// See [`Notice::LessonEnding`].
    LessonEnding {
        ends_at: u64,
    },
    RoomState {
        state: Box<RoomState>,
    },
    Chat {
        message: ChatMessage,
    },
    ActiveSpeaker {
        peer_id: Option<PeerId>,
    },
    RollCall {
        peer_id: PeerId,
    },
    /// Dynacast: which simulcast layers of the client's own m-line anyone needs.
    PublishLayers {
        mid: String,
        layers: Vec<ketang_sfu::LayerWanted>,
    },
    /// See [`Notice::Recording`].
    Recording {
        on: bool,
        recording_id: Option<String>,
        since: Option<u64>,
        error: Option<String>,
    },
    /// The sender's observation note was stored.
    NoteAdded {
        note: NoteInfo,
    },
}

/// An observation note as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NoteInfo {
    pub id: String,
    pub recording_id: String,
    /// Milliseconds from the start of the recording.
    pub at_ms: u64,
    pub author: String,
    pub role: String,
    pub text: String,
}

/// `error.code` values (protocol §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorCode {
    BadMessage,
    MessageTooLarge,
    RateLimited,
    InvalidSdp,
    Glare,
    NoPendingOffer,
    Forbidden,
    NotJoined,
    Internal,
    /// The offer has more audio and video m-lines than `media.max_tracks_per_peer`.
    TooManyTracks,
    /// A note while nothing is recorded.
    NotRecording,
    /// Recording could not start, or stopped on an error.
    RecordingFailed,
}

impl ServerMsg {
    pub fn error(code: ErrorCode, message: impl Into<String>, reference: Option<&str>) -> Self {
        ServerMsg::Error {
            code,
            message: message.into(),
            reference: reference.map(str::to_string),
        }
    }

    pub fn bye(reason: ByeReason) -> Self {
        ServerMsg::Bye {
            reason,
            message: reason.message().into(),
        }
    }

    pub fn from_notice(n: Notice) -> ServerMsg {
        match n {
            Notice::LessonEnding { ends_at } => ServerMsg::LessonEnding { ends_at },
            Notice::Recording {
                on,
                recording_id,
                since,
                error,
            } => ServerMsg::Recording {
                on,
                recording_id,
                since,
                error,
            },
            Notice::RecordingFailed { message } => {
                ServerMsg::error(ErrorCode::RecordingFailed, message, None)
            }
        }
    }

    /// The message for an SFU event, if the client is told about it.
    pub fn from_event(e: PeerEvent) -> Option<ServerMsg> {
        Some(match e {
            PeerEvent::Offer { sdp, tracks } => ServerMsg::Offer { sdp, tracks },
            PeerEvent::ParticipantJoined(participant) => {
                ServerMsg::ParticipantJoined { participant }
            }
            PeerEvent::ParticipantLeft { peer, reason } => ServerMsg::ParticipantLeft {
                peer_id: peer,
                reason,
            },
            PeerEvent::TrackAdded(track) => ServerMsg::TrackAdded { track },
            PeerEvent::TrackRemoved { track, peer } => ServerMsg::TrackRemoved {
                track_id: track,
                peer_id: peer,
            },
            PeerEvent::RoomState(state) => ServerMsg::RoomState { state },
            PeerEvent::Chat(message) => ServerMsg::Chat { message },
            PeerEvent::ActiveSpeaker { peer } => ServerMsg::ActiveSpeaker { peer_id: peer },
            PeerEvent::RollCall { peer } => ServerMsg::RollCall { peer_id: peer },
            PeerEvent::PublishLayers { mid, layers } => ServerMsg::PublishLayers { mid, layers },
            PeerEvent::CodecMismatch { track, peer, codec } => ServerMsg::CodecMismatch {
                track_id: track,
                peer_id: peer,
                codec,
            },
            PeerEvent::ViewerCodecMismatch {
                track,
                viewer,
                codec,
            } => ServerMsg::ViewerCodecMismatch {
                track_id: track,
                viewer_id: viewer,
                codec,
            },
            _ => return None,
        })
    }
}

/// The `type` of a raw message, for error references; `None` if it has none.
pub fn message_type(text: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.get("type")?
        .as_str()
        .map(|s| s.chars().take(32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_close_leaves_for_its_own_reason() {
        assert_eq!(ByeReason::Shutdown.leave_reason(), LeaveReason::Shutdown);
        assert_eq!(
            ByeReason::RoomClosed.leave_reason(),
            LeaveReason::RoomClosed
        );
        assert_eq!(ByeReason::Removed.leave_reason(), LeaveReason::Removed);
        for r in [
            LeaveReason::Left,
            LeaveReason::RoomClosed,
            LeaveReason::Removed,
            LeaveReason::Shutdown,
        ] {
            assert_eq!(ByeReason::from_leave(r).leave_reason(), r);
        }
    }

    #[test]
    fn codec_mismatches_serialize_as_documented() {
        let told = ServerMsg::from_event(PeerEvent::CodecMismatch {
            track: TrackId(3),
            peer: PeerId(1),
            codec: "H264".into(),
        });
        assert_eq!(
            serde_json::to_value(told).unwrap(),
            serde_json::json!({"type": "codecMismatch", "trackId": 3, "peerId": 1, "codec": "H264"})
        );
        let publisher = ServerMsg::from_event(PeerEvent::ViewerCodecMismatch {
            track: TrackId(3),
            viewer: PeerId(9),
            codec: "H264".into(),
        });
        assert_eq!(
            serde_json::to_value(publisher).unwrap(),
            serde_json::json!({"type": "viewerCodecMismatch", "trackId": 3, "viewerId": 9, "codec": "H264"})
        );
    }

    #[test]
    fn client_messages_parse_as_documented() {
        let m: ClientMsg = serde_json::from_str(
            r#"{"type":"offer","sdp":"v=0","tracks":[{"mid":"2","source":"screen"}]}"#,
        )
        .unwrap();
        match m {
            ClientMsg::Offer { sdp, tracks, fresh } => {
                assert!(!fresh);
                assert_eq!(sdp, "v=0");
                assert_eq!(tracks[0].source, TrackSource::Screen);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            serde_json::from_str::<ClientMsg>(r#"{"type":"leave"}"#).unwrap(),
            ClientMsg::Leave {}
        ));
        assert!(matches!(
            serde_json::from_str::<ClientMsg>(r#"{"type":"ping"}"#).unwrap(),
            ClientMsg::Ping {}
        ));
        assert!(serde_json::from_str::<ClientMsg>(r#"{"type":"dance"}"#).is_err());
        match serde_json::from_str::<ClientMsg>(r#"{"type":"callOn","peerId":4}"#).unwrap() {
            ClientMsg::CallOn { peer_id, replace } => {
                assert_eq!(peer_id, PeerId(4));
                assert!(replace, "replace defaults to true");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            serde_json::from_str::<ClientMsg>(r#"{"type":"mute","peerId":4,"mic":true}"#).unwrap(),
            ClientMsg::Mute {
                mic: Some(true),
                video: None,
                ..
            }
        ));
        assert!(serde_json::from_str::<ClientMsg>(r#"{"type":"answer"}"#).is_err());
        assert!(serde_json::from_str::<ClientMsg>(r#"{"sdp":"x"}"#).is_err());
    }

    #[test]
    fn server_messages_serialise_camel_case_with_type() {
        let v = serde_json::to_value(ServerMsg::TrackRemoved {
            track_id: TrackId(3),
            peer_id: PeerId(9),
        })
        .unwrap();
        assert_eq!(v["type"], "trackRemoved");
        assert_eq!(v["trackId"], 3);
        assert_eq!(v["peerId"], 9);
        let e = serde_json::to_value(ServerMsg::error(
            ErrorCode::RateLimited,
            "slow",
            Some("offer"),
        ))
        .unwrap();
        assert_eq!(e["code"], "rateLimited");
        assert_eq!(e["ref"], "offer");
        let b = serde_json::to_value(ServerMsg::bye(ByeReason::TokenExpired)).unwrap();
        assert_eq!(b["reason"], "tokenExpired");
    }
}
