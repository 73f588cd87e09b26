//! Who is connected and how: one `Peer` per participant (its str0m `Rtc`, liveness, what it
//! publishes, what it receives and how that was negotiated), and the steps of its life in a
//! room.
//!
//! ```text
//! datagram ─► demux (address, else STUN username) ─► Peer.rtc ─► drain ─► Effects
//! join / rejoin / leave ─► membership ─► subscribe (who receives what) ─► negotiate (offers)
//! ```
//!
//! `sdp` screens a client's offer before str0m reads it and tells how the client reports on
//! its link (`Feedback`); `subscription` is one track a peer receives, with its output stream.

pub(crate) mod candidates;
pub(crate) mod demux;
pub(crate) mod keyframes;
pub(crate) mod liveness;
pub(crate) mod membership;
pub(crate) mod negotiate;
pub(crate) mod peer;
pub(crate) mod sdp;
pub(crate) mod subscribe;
pub(crate) mod subscription;
pub(crate) mod transport;
