//! Who is behind each peer: the room link (token id) a peer joined with, so that a reconnecting
//! client takes its old place back, and the links removed from a room.
//!
//! A removal binds the link, not the peer: every session of it (signaling, WHIP, WHEP) ends and
//! none may start again until the link expires or the teacher re-admits it. Removals outlive
//! the room (it may empty and reopen within the lesson) and, through the database
//! (`crate::removal`), a restart.

use dashmap::DashMap;
use ketang_sfu::{PeerId, RoomId};

/// A room link as the media plane remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token id (`jti`): one per link.
    pub link: String,
    pub room: RoomId,
    pub name: String,
    /// The link's expiry (Unix seconds): a removal need not be kept longer.
    pub expires: u64,
    /// The lesson link version it was minted at (`lv`), for ending revoked links' sessions.
    pub version: Option<u32>,
}

/// A link removed from a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The peer id it had when removed (how the teacher's page knows it).
    pub peer: PeerId,
    pub identity: Identity,
}

#[derive(Debug, Default)]
pub struct People {
    /// Signaling peers only: the peer a reconnecting link takes over.
    by_link: DashMap<String, PeerId>,
    /// Every peer, WHIP and WHEP included.
    by_peer: DashMap<PeerId, Identity>,
    removed: DashMap<RoomId, Vec<Removed>>,
}

impl People {
    /// The live signaling peer of a link, if any.
    pub fn peer_of(&self, link: &str) -> Option<PeerId> {
        self.by_link.get(link).map(|p| *p)
    }

    /// A signaling peer: a new session of its link resumes it.
    pub fn insert(&self, peer: PeerId, identity: Identity) {
        self.by_link.insert(identity.link.clone(), peer);
        self.by_peer.insert(peer, identity);
    }

    /// A WHIP or WHEP peer: each POST is a new session, never resumed, but a removal of its
    /// link must find it.
    pub fn insert_http(&self, peer: PeerId, identity: Identity) {
        self.by_peer.insert(peer, identity);
    }

    pub fn identity(&self, peer: PeerId) -> Option<Identity> {
        self.by_peer.get(&peer).map(|i| i.clone())
    }

    /// Live peers of a room whose link is of a version older than `current` (revoked).
    pub fn revoked_in(&self, room: &RoomId, current: u32) -> Vec<PeerId> {
        self.by_peer
            .iter()
            .filter(|e| e.room == *room && e.version.is_some_and(|v| v < current))
            .map(|e| *e.key())
            .collect()
    }

    /// Every live peer of a link in a room.
    pub fn peers_of_link(&self, room: &RoomId, link: &str) -> Vec<PeerId> {
        self.by_peer
            .iter()
            .filter(|e| e.room == *room && e.link == link)
            .map(|e| *e.key())
            .collect()
    }

    /// The peer is gone from its room.
    pub fn left(&self, peer: PeerId) {
        let Some((_, identity)) = self.by_peer.remove(&peer) else {
            return;
        };
        self.by_link.remove_if(&identity.link, |_, p| *p == peer);
    }

    /// Bars a link from its room; false if it already was. Removals whose link expired
    /// before `now_secs` are dropped on the way.
    pub fn bar(&self, removed: Removed, now_secs: u64) -> bool {
        let mut v = self
            .removed
            .entry(removed.identity.room.clone())
            .or_default();
        v.retain(|r| r.identity.expires >= now_secs);
        if v.iter().any(|r| r.identity.link == removed.identity.link) {
            return false;
        }
        v.push(removed);
        true
    }

    pub fn is_removed(&self, room: &RoomId, link: &str) -> bool {
        self.removed
            .get(room)
            .is_some_and(|v| v.iter().any(|r| r.identity.link == link))
    }

    /// Lets a removed link in again; the link it was, or `None` if it was not removed.
    pub fn readmit(&self, room: &RoomId, peer: PeerId) -> Option<String> {
        let mut v = self.removed.get_mut(room)?;
        let i = v.iter().position(|r| r.peer == peer)?;
        Some(v.remove(i).identity.link)
    }

    /// Links removed from a room.
    pub fn removed_from(&self, room: &RoomId) -> Vec<Removed> {
        self.removed
            .get(room)
            .map(|v| v.clone())
            .unwrap_or_default()
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
            expires: 1_000,
            version: None,
        }
    }

    #[test]
    fn a_removed_link_is_barred_until_readmitted() {
        let p = People::default();
        let room = RoomId::new("r").unwrap();
        p.insert(PeerId(1), id("a"));
        p.insert(PeerId(2), id("b"));
        assert_eq!(p.peer_of("a"), Some(PeerId(1)));
        let removed = Removed {
            peer: PeerId(1),
            identity: p.identity(PeerId(1)).unwrap(),
        };
        assert!(p.bar(removed.clone(), 10));
        assert!(!p.bar(removed, 10));
        p.left(PeerId(1));
        p.left(PeerId(2));
        assert_eq!(p.peer_of("a"), None);
        assert!(p.is_removed(&room, "a"));
        assert!(!p.is_removed(&room, "b"));
        assert_eq!(p.readmit(&room, PeerId(1)).as_deref(), Some("a"));
        assert!(!p.is_removed(&room, "a"));
        assert_eq!(p.readmit(&room, PeerId(1)), None);
    }

    #[test]
    fn expired_removals_are_dropped() {
        let p = People::default();
        let room = RoomId::new("r").unwrap();
        let old = Removed {
            peer: PeerId(1),
            identity: id("a"),
        };
        assert!(p.bar(old, 10));
        let later = Removed {
            peer: PeerId(2),
            identity: id("b"),
        };
        assert!(p.bar(later, 2_000));
        assert!(!p.is_removed(&room, "a"));
    }

    #[test]
    fn every_peer_of_a_link_is_found() {
        let p = People::default();
        let room = RoomId::new("r").unwrap();
        p.insert(PeerId(1), id("a"));
        p.insert_http(PeerId(2), id("a"));
        p.insert_http(PeerId(3), id("b"));
        let mut peers = p.peers_of_link(&room, "a");
        peers.sort();
        assert_eq!(peers, vec![PeerId(1), PeerId(2)]);
        // WHIP/WHEP sessions are never resumed.
        assert_eq!(p.peer_of("a"), Some(PeerId(1)));
    }

    #[test]
    fn a_newer_peer_of_the_same_link_is_not_forgotten_by_the_older_ones_leave() {
        let p = People::default();
        p.insert(PeerId(1), id("a"));
        p.insert(PeerId(2), id("a"));
        p.left(PeerId(1));
        assert_eq!(p.peer_of("a"), Some(PeerId(2)));
    }
}
