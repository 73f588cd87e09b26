//! What the SFU tells the application: datagrams to send, events for peers, and its next
//! deadline. Drained with `Sfu::poll_output` until `Timeout`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::ids::{ClassroomId, PeerId, RoomId, TrackId};
use crate::lesson::role::{Role, TrackKind, TrackSource};
use crate::session::sdp::RejectedMid;

/// One output of the SFU.
#[derive(Debug)]
pub enum SfuOutput {
    /// Send `contents` from `source` (the shard socket's address) to `destination`.
    Transmit(Transmit),
    /// Something the application must act on.
    Event(SfuEvent),
    /// Media for the lesson recording (only while a room is recorded).
    Record(RecordEvent),
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
    /// UDP, or the TCP connection from `destination`.
    pub transport: crate::session::transport::Transport,
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
    /// A participant's presence or turn changed, for the lesson's records (attendance). Its
    /// leaving is [`SfuEvent::PeerLeft`], which every removal already emits.
    Activity {
        /// The room.
        room: RoomId,
        /// Who.
        peer: PeerId,
        /// What happened.
        activity: Activity,
    },
}

/// What a participant did, as attendance follows it. The application stamps the time.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Activity {
    /// Its media connected for the first time: it is present (a new peer, not a reconnection of
    /// an existing one; a peer whose media never connects is never reported).
    Joined {
        /// Role from the token.
        role: Role,
        /// Classroom from the token.
        classroom: Option<ClassroomId>,
        /// Display name.
        name: String,
        /// How its media travels.
        transport: crate::session::transport::Transport,
    },
    /// Its media stopped arriving; it is shown reconnecting.
    Reconnecting {
        /// How long nothing has arrived from it, ms: its absence began that long ago.
        silent_ms: u64,
    },
    /// Its media arrives again after `Reconnecting`.
    Resumed,
    /// Its signaling connection went away; it has the grace period to come back.
    Detached,
    /// A new signaling connection took it over after `Detached`.
    Attached,
    /// It replaced its media connection with a new one (a reconnecting client's fresh offer).
    Rejoined,
    /// It went on stage (called on by the teacher, or picked by the roll call).
    CalledOn {
        /// Picked by the random roll call.
        roll_call: bool,
    },
    /// It left the stage while staying in the room (done, or replaced by another).
    OffStage,
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
    /// The room's floor changed: stage, hands, mutes, screen, questions, participants.
    RoomState(Box<RoomState>),
    /// A chat message for everyone in the room.
    Chat(ChatMessage),
    /// The loudest participant changed.
    ActiveSpeaker {
        /// Who speaks now (`None`: the speaker left).
        peer: Option<PeerId>,
    },
    /// Dynacast: which simulcast layers of the peer's own m-line `mid` anyone needs. The
    /// client turns the others off (`RTCRtpEncodingParameters.active = false`).
    PublishLayers {
        /// The publisher's m-line.
        mid: String,
        /// Each layer by rid, lowest first.
        layers: Vec<LayerWanted>,
    },
    /// The teacher's random roll call picked a classroom.
    RollCall {
        /// The classroom picked (now on stage).
        peer: PeerId,
    },
    /// This peer cannot decode a track it is subscribed to: the publisher sends a codec the
    /// peer's offer did not include (an H.264 camera, a VP8-only client). Nothing of the
    /// track is sent; the client shows why instead of an empty tile. Told once per track.
    CodecMismatch {
        /// The track.
        track: TrackId,
        /// Its publisher.
        peer: PeerId,
        /// The publisher's codec, e.g. `H264`.
        codec: String,
    },
    /// A subscriber of this peer's track cannot decode it (the publisher's side of
    /// [`PeerEvent::CodecMismatch`]): who cannot see the camera.
    ViewerCodecMismatch {
        /// The track.
        track: TrackId,
        /// The subscriber that cannot decode it.
        viewer: PeerId,
        /// The codec it lacks.
        codec: String,
    },
}

/// One simulcast layer in a `PublishLayers` event.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LayerWanted {
    /// The rid.
    pub rid: String,
    /// Send it.
    pub active: bool,
}

/// Bandwidth limits of a peer's link, from the lesson's configuration (classroom downlink,
/// its share of the school budget). `None`: no configured limit, the estimate alone decides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerCaps {
    /// Most the SFU sends to the peer, bit/s.
    pub down_bps: Option<u64>,
    /// Most the peer should publish, bit/s (enforced by turning simulcast layers off).
    pub up_bps: Option<u64>,
}

/// The floor of a room, pushed whole to every participant whenever it changes.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoomState {
    /// Increases with every change; clients ignore older states.
    pub seq: u64,
    /// The lesson mode.
    pub mode: crate::lesson::floor::LessonMode,
    /// On stage, in call order.
    pub stage: Vec<PeerId>,
    /// Raised hands, in raise order.
    pub hands: Vec<HandInfo>,
    /// Teachers, classrooms, and watchers who are on stage or have a hand up.
    pub participants: Vec<ParticipantState>,
    /// How many watchers (observers and viewers) are present.
    pub audience: usize,
    /// The shared screen, if any.
    pub screen: Option<TrackInfo>,
    /// Questions from viewers (broadcast lessons), newest last.
    pub questions: Vec<Question>,
}

/// A raised hand.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HandInfo {
    /// Whose.
    pub peer_id: PeerId,
    /// Unix ms.
    pub raised_at: u64,
}

/// One participant in the room state.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantState {
    /// Who.
    #[serde(flatten)]
    pub info: ParticipantInfo,
    /// On stage now.
    pub on_stage: bool,
    /// Microphone muted (by itself or the teacher).
    pub mic_muted: bool,
    /// Camera stopped (by itself or the teacher).
    pub video_stopped: bool,
    /// Muted by the teacher: the participant cannot undo it.
    pub muted_by_teacher: bool,
    /// Camera stopped by the teacher.
    pub video_stopped_by_teacher: bool,
    /// Its media stopped arriving a few seconds ago; it may come back.
    pub reconnecting: bool,
}

/// A chat message.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    /// Per room, increasing.
    pub id: u64,
    /// Sender.
    pub peer_id: PeerId,
    /// Sender's name.
    pub name: String,
    /// Sender's role.
    pub role: Role,
    /// The text (plain text; clients never interpret it as markup).
    pub text: String,
    /// Unix ms.
    pub at: u64,
}

/// A viewer's question.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Question {
    /// Per room, increasing.
    pub id: u64,
    /// Asker.
    pub peer_id: PeerId,
    /// Asker's name.
    pub name: String,
    /// The question.
    pub text: String,
    /// Unix ms.
    pub at: u64,
    /// `open`, `answered` or `dismissed`.
    pub status: QuestionStatus,
}

/// Where a question stands.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum QuestionStatus {
    /// Waiting for the teacher.
    Open,
    /// The teacher answered it.
    Answered,
    /// The teacher set it aside.
    Dismissed,
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
    pub mode: crate::session::sdp::PeerMode,
    /// The client's SDP offer.
    pub offer: String,
    /// The lesson's mode; the room takes it from its first peer.
    pub lesson_mode: crate::lesson::floor::LessonMode,
    /// Bandwidth limits of the peer's link.
    pub caps: PeerCaps,
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
    /// The transport of each connected participant (the others are not listed).
    #[serde(skip)]
    pub transports: Vec<(PeerId, crate::session::transport::Transport)>,
}

/// A video codec as the recording writer needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// VP8.
    Vp8,
    /// VP9.
    Vp9,
    /// H.264.
    H264,
}

/// What the recorder tap emits (through `SfuOutput::Record`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RecordEvent {
    /// Recording of a room started.
    Started {
        /// The room.
        room: RoomId,
    },
    /// A packet of the recorded video stream (continuous across source switches).
    Video {
        /// The room.
        room: RoomId,
        /// The source track of this packet.
        track: TrackId,
        /// Its codec.
        codec: VideoCodec,
        /// Rewritten, continuous, extended sequence number.
        seq: u64,
        /// Rewritten, continuous RTP timestamp (90 kHz).
        ts: u32,
        /// RTP marker: last packet of a frame.
        marker: bool,
        /// The packet starts a keyframe.
        keyframe: bool,
        /// The RTP payload.
        payload: Arc<[u8]>,
        /// Arrival at the SFU.
        at: Instant,
    },
    /// A packet of one of the microphones being mixed.
    Audio {
        /// The room.
        room: RoomId,
        /// The microphone track.
        track: TrackId,
        /// Its publisher.
        peer: PeerId,
        /// Source extended sequence number.
        seq: u64,
        /// Source RTP timestamp (48 kHz).
        ts: u32,
        /// The Opus payload.
        payload: Arc<[u8]>,
        /// Arrival at the SFU.
        at: Instant,
    },
    /// The sources the recording follows now.
    Sources {
        /// The room.
        room: RoomId,
        /// The video source (`None`: nothing to show).
        video: Option<TrackInfo>,
        /// The microphones mixed.
        audio: Vec<TrackInfo>,
    },
    /// Recording of a room stopped (asked to, or the room closed).
    Stopped {
        /// The room.
        room: RoomId,
    },
}
