//! Ketang SFU (crate docs written with the run loop below).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod ids;
mod role;

pub use ids::{ClassroomId, InvalidId, PeerId, RoomId, TrackId};
pub use role::{Role, TrackKind, TrackSource};
