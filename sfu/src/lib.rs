//! # ketang-sfu: the media plane of Ketang, sans-IO
//!
//! A selective forwarding unit for live classrooms, built on [str0m] in RTP mode. This crate
//! opens no sockets, starts no threads and never reads the clock: the application feeds it
//! datagrams and time, and takes datagrams and events out. That makes it deterministic and lets
//! the tests in `sfu/tests/` run whole lessons on a virtual clock, many times faster than real
//! time.
//!
//! ## Vocabulary
//!
//! - **Room**: one live lesson. All its peers live on one shard ([`Sfu`]), so routing a packet
//!   never crosses threads and needs no locks.
//! - **Peer**: one connection (a browser page, a WHIP encoder, a WHEP player) with a
//!   [`Role`]: one str0m `Rtc`.
//! - **TrackIn**: a published track (microphone, camera, screen) with its simulcast layers.
//! - **Subscription**: one track sent to one peer, with its `LayerSelector` (keyframe-gated
//!   layer switching) and header rewriter (sequence numbers, timestamps, VP8 picture ids).
//!
//! ## Run loop
//!
//! The application owns one [`Sfu`] per shard thread and one UDP socket per shard:
//!
//! ```text
//! loop {
//!     // 1. Drain: send every Transmit, route every Event, until Timeout(t).
//!     let deadline = loop {
//!         match sfu.poll_output() {
//!             SfuOutput::Transmit(t) => socket.send_to(&t.contents, t.destination),
//!             SfuOutput::Event(e) => app.route(e),         // to signaling sessions
//!             SfuOutput::Timeout(t) => break t,
//!         }
//!     };
//!     // 2. Wait for ONE of: a datagram, a command, the deadline.
//!     match wait(deadline) {
//!         Datagram(from, bytes) => sfu.handle_datagram(now, from, local_addr, &bytes),
//!         Command(Join(req)) => reply(sfu.join(now, req)),
//!         Command(Answer(peer, sdp)) => reply(sfu.client_answer(now, peer, &sdp)),
//!         Deadline => sfu.handle_timeout(now),
//!     }
//! }
//! ```
//!
//! ## Data flow of one packet
//!
//! ```text
//! datagram ─► Demux (source address, else STUN username) ─► Peer.rtc.handle_input
//!   └► drain: Event::RtpPacket ─► Effects.media ─► Sfu::fan_out
//!        keyframe detection once ─► for each subscriber of the TrackIn:
//!          Subscription::forward: LayerSelector ─► Sink (Rewriter) ─► StreamTx::write_rtp
//!          ─► subscriber due now; the recorder tap: a Sink following the stage
//!   Timeout (already due) ─► Sfu::handle_timeout ─► drain ─► Transmit
//!        subscribers waiting for a keyframe ─► publisher StreamRx::request_keyframe (throttled)
//! ```
//!
//! ## Bandwidth, per subscriber (its `Downlink`)
//!
//! ```text
//! TWCC receivers: str0m estimate, 3 s average (event) + current (PeerStats) ─► EstimateFilter
//! others: REMB, receiver reports (loss, round trip) ─► ReceiverEstimate (no pacer at all)
//!   ─► budget = min(estimate, downlink cap, school share); optimistic until video has flowed
//!   ─► CongestionCap (pacer queue, only on a strained link)
//!   ─► BandwidthAllocator (every 500 ms, or at once on a new estimate or congestion);
//!      single layers paused only as a LastResort
//!   ─► LayerSelector targets, bwe().set_bitrate / reset (TWCC), dynacast to publishers
//! ```
//!
//! Every mutation of an `Rtc` is followed by a full drain (str0m's single-mutation invariant),
//! with one exception: `StreamTx::write_rtp` on the packet path. str0m only queues a written
//! packet until the `Rtc`'s next `handle_timeout`, so a drain right after it would find nothing
//! to send and only learn a deadline: a poll loop per packet and subscriber for nothing. The
//! subscriber is made due at once instead: `poll_output` then reports a timeout already past,
//! and the `Sfu::handle_timeout` that follows drains it; several packets written to one
//! subscriber before that go out in that one round. Anything a drain produces for *other* peers is queued
//! in `Effects` and processed after it.
//! A panic while handling one peer removes that peer only.
//!
//! [str0m]: https://docs.rs/str0m

#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Unit tests may read the clock to get a starting instant; the library itself never does.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod bandwidth;
mod config;
mod effects;
mod error;
mod event;
mod forward;
#[cfg(test)]
mod fuzz_tests;
mod ids;
mod lesson;
mod report;
mod session;
mod sfu;
mod shutdown;

mod stats;
mod timers;

pub use bandwidth::allocator::{
    AllocatorConfig, BandwidthAllocator, Decision, Demand, LinkSignals, Priority,
};
pub use bandwidth::carried::CarriedRate;
pub use bandwidth::last_resort::{LastResort, Verdict};
pub use bandwidth::policy::BwePolicy;
pub use bandwidth::rate::RateMeter;
pub use bandwidth::receiver_estimate::ReceiverEstimate;
pub use bandwidth::upgrade_backoff::{Upgrade, UpgradeBackoff};
pub use config::SfuConfig;
pub use error::SfuError;
pub use event::{
    Activity, Answer, ChatMessage, HandInfo, JoinRequest, LayerWanted, LeaveReason, MidTrack,
    ParticipantInfo, ParticipantState, PeerCaps, PeerEvent, Question, QuestionStatus, RoomSnapshot,
    RoomState, SfuEvent, SfuOutput, TrackInfo, Transmit,
};
pub use event::{RecordEvent, VideoCodec};
pub use forward::layer::{LayerSelector, Selection};
pub use forward::rewrite::{Rewriter, Rewritten, SourceFields};
pub use ids::{ClassroomId, InvalidId, PeerId, RoomId, TrackId};
pub use lesson::control::{FloorCommand, FloorContext, FloorOutcome, MAX_TEXT_CHARS};
pub use lesson::floor::{Floor, FloorError, LessonMode};
pub use lesson::role::{Role, TrackKind, TrackSource};
pub use lesson::speaker::SpeakerDetector;
pub use report::{LayerReport, PeerBandwidth, PublishedTrack, TrackBandwidth};
pub use session::sdp::Feedback;
pub use session::sdp::{PeerMode, RejectedMid};
pub use session::transport::Transport;
pub use sfu::Sfu;
pub use stats::{BWE_BUCKETS_BPS, SfuSnapshot, SfuStats};
