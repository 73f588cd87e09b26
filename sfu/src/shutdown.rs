//! Ending a whole shard: every connection is closed the way WebRTC says goodbye (RTCP BYE,
//! DTLS close_notify) before its room is closed.
//!
//! Signaling clients also get `bye` from the application, but a WHEP player or a WHIP encoder
//! has no signaling channel: without the close alert it would only notice the end when its
//! consent checks time out, tens of seconds later, and keep showing a frozen picture meanwhile.

use std::time::Instant;

use crate::event::LeaveReason;
use crate::ids::RoomId;
use crate::sfu::{Sfu, guard};

impl Sfu {
    /// Closes every peer's connection, then every room with `reason` (each peer leaves with
    /// it). The datagrams of the goodbyes are in the output: drain it before the socket goes.
    pub fn shutdown(&mut self, now: Instant, reason: LeaveReason) {
        let Sfu { peers, fx, .. } = self;
        for peer in peers.values_mut() {
            guard(peer, fx, |p, fx| {
                if let Err(e) = p.rtc.close() {
                    tracing::debug!(peer = %p.id, "cannot close the connection: {e}");
                }
                p.drain(fx);
            });
        }
        let rooms: Vec<RoomId> = self.rooms.keys().cloned().collect();
        for room in rooms {
            self.close_room(now, &room, reason);
        }
    }
}
