//! Who is behind each peer: the room link (token id) a peer joined with, so that a reconnecting
//! client takes its old place back, and the links the teacher removed from a room.

use dashmap::DashMap;
use ketang_sfu::{PeerId, RoomId};

/// A room link as the media plane remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token id (`jti`): one per link.
    pub link: String,
    pub room: RoomId,
    pub name: String,
}

/// A link removed from a room by the teacher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The peer id it had when removed (how the teacher's page knows it).
    pub peer: PeerId,
    pub identity: Identity,
}

#[derive(Debug, Default)]
pub struct People {
    by_link: DashMap<String, PeerId>,
    by_peer: DashMap<PeerId, Identity>,
    removed: DashMap<RoomId, Vec<Removed>>,
}

impl People {
    /// The live peer of a link, if any.
    pub fn peer_of(&self, link: &str) -> Option<PeerId> {
        self.by_link.get(link).map(|p| *p)
    }

    pub fn insert(&self, peer: PeerId, identity: Identity) {
        self.by_link.insert(identity.link.clone(), peer);
        self.by_peer.insert(peer, identity);
    }

    /// The peer is gone from its room. A removal bars its link from the room.
    pub fn left(&self, peer: PeerId, removed: bool) {
        let Some((_, identity)) = self.by_peer.remove(&peer) else {
            return;
        };
        self.by_link.remove_if(&identity.link, |_, p| *p == peer);
        if removed {
            self.removed
                .entry(identity.room.clone())
                .or_default()
                .push(Removed { peer, identity });
        }
    }

    pub fn is_removed(&self, room: &RoomId, link: &str) -> bool {
        self.removed
            .get(room)
            .is_some_and(|v| v.iter().any(|r| r.identity.link == link))
    }

    /// Lets a removed link in again; false if it was not removed.
    pub fn readmit(&self, room: &RoomId, peer: PeerId) -> bool {
        let Some(mut v) = self.removed.get_mut(room) else {
            return false;
        };
        let before = v.len();
        v.retain(|r| r.peer != peer);
        before != v.len()
    }

    /// Links removed from a room.
    pub fn removed_from(&self, room: &RoomId) -> Vec<Removed> {
        self.removed
            .get(room)
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// Forgets a closed room's removals.
    pub fn forget_room(&self, room: &RoomId) {
        self.removed.remove(room);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(link: &str) -> Identity {
        Identity {
            link: link.into(),
            room: RoomId::new("r").unwrap(),
            name: "n".into(),
        }
    }

    #[test]
    fn a_removed_link_is_barred_until_readmitted() {
        let p = People::default();
        let room = RoomId::new("r").unwrap();
        p.insert(PeerId(1), id("a"));
        p.insert(PeerId(2), id("b"));
        assert_eq!(p.peer_of("a"), Some(PeerId(1)));
        p.left(PeerId(1), true);
        p.left(PeerId(2), false);
        assert_eq!(p.peer_of("a"), None);
        assert!(p.is_removed(&room, "a"));
        assert!(!p.is_removed(&room, "b"));
        assert!(p.readmit(&room, PeerId(1)));
        assert!(!p.is_removed(&room, "a"));
        assert!(!p.readmit(&room, PeerId(1)));
    }

    #[test]
    fn a_newer_peer_of_the_same_link_is_not_forgotten_by_the_older_ones_leave() {
        let p = People::default();
        p.insert(PeerId(1), id("a"));
        p.insert(PeerId(2), id("a"));
        p.left(PeerId(1), false);
        assert_eq!(p.peer_of("a"), Some(PeerId(2)));
    }
}
