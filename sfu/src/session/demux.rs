//! Routing datagrams from the shard's one UDP port to the peer they belong to.
//!
//! A peer is found by the datagram's source address once that address has been seen carrying
//! a STUN binding request for the peer's ICE username fragment. STUN packets are always routed
//! by their USERNAME attribute first (it is authoritative, and a client that reconnects from a
//! reused port must reach its new peer, not the old one). Anything else from an unknown address
//! is dropped: it cannot be a packet of an established session.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::ids::PeerId;

/// What kind of packet a datagram is, by its first byte (RFC 7983 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PacketClass {
    Stun,
    Dtls,
    Rtp,
    Unknown,
}

pub(crate) fn classify(data: &[u8]) -> PacketClass {
    match data.first() {
        Some(0..=3) => PacketClass::Stun,
        Some(20..=63) => PacketClass::Dtls,
        Some(128..=191) => PacketClass::Rtp,
        _ => PacketClass::Unknown,
    }
}

const STUN_HEADER_LEN: usize = 20;
const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const ATTR_USERNAME: u16 = 0x0006;

/// The local (server) ufrag of a STUN binding request, i.e. the part of USERNAME before ':'.
///
/// Returns `None` for anything that is not a well-formed STUN message with a USERNAME. The
/// message integrity is not checked here; str0m does that once the packet reaches its peer.
pub(crate) fn stun_local_ufrag(data: &[u8]) -> Option<&str> {
    if data.len() < STUN_HEADER_LEN || data[4..8] != STUN_MAGIC_COOKIE {
        return None;
    }
    let body_len = u16::from_be_bytes([data[2], data[3]]) as usize;
    let body = data.get(STUN_HEADER_LEN..STUN_HEADER_LEN + body_len)?;
    let mut rest = body;
    while rest.len() >= 4 {
        let typ = u16::from_be_bytes([rest[0], rest[1]]);
        let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
        let value = rest.get(4..4 + len)?;
        if typ == ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            let (local, _remote) = username.split_once(':')?;
            return Some(local);
        }
        // Attributes are padded to 4 bytes.
        let padded = (len + 3) & !3;
        rest = rest.get(4 + padded..)?;
    }
    None
}

/// Address and ufrag tables of one shard.
#[derive(Debug, Default)]
pub(crate) struct Demux {
    by_ufrag: HashMap<String, PeerId>,
    by_addr: HashMap<SocketAddr, PeerId>,
    addrs_of: HashMap<PeerId, Vec<SocketAddr>>,
}

impl Demux {
    pub fn add_peer(&mut self, peer: PeerId, local_ufrag: String) {
        self.by_ufrag.insert(local_ufrag, peer);
    }

    pub fn remove_peer(&mut self, peer: PeerId) {
        self.by_ufrag.retain(|_, p| *p != peer);
        if let Some(addrs) = self.addrs_of.remove(&peer) {
            for a in addrs {
                if self.by_addr.get(&a) == Some(&peer) {
                    self.by_addr.remove(&a);
                }
            }
        }
    }

    /// Find the peer for a datagram, learning the source address from STUN.
    pub fn route(&mut self, from: SocketAddr, data: &[u8]) -> Option<PeerId> {
        if classify(data) == PacketClass::Stun
            && let Some(ufrag) = stun_local_ufrag(data)
        {
            {
                let peer = *self.by_ufrag.get(ufrag)?;
                if self.by_addr.insert(from, peer) != Some(peer) {
                    let addrs = self.addrs_of.entry(peer).or_default();
                    // A client has a handful of candidate addresses; cap the list so that a
                    // flood of spoofed sources cannot grow it without bound.
                    if addrs.len() >= 16 {
                        let old = addrs.remove(0);
                        if self.by_addr.get(&old) == Some(&peer) {
                            self.by_addr.remove(&old);
                        }
                    }
                    addrs.push(from);
                }
                return Some(peer);
            }
        }
        self.by_addr.get(&from).copied()
    }

    #[cfg(test)]
    pub fn peer_count(&self) -> usize {
        self.by_ufrag.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun_with_username(username: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        attr.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        m.extend_from_slice(&STUN_MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attr);
        m
    }

    #[test]
    fn classifies_by_first_byte() {
        assert_eq!(classify(&[0x00, 1]), PacketClass::Stun);
        assert_eq!(classify(&[22]), PacketClass::Dtls);
        assert_eq!(classify(&[0x80]), PacketClass::Rtp);
        assert_eq!(classify(&[0xff]), PacketClass::Unknown);
        assert_eq!(classify(&[]), PacketClass::Unknown);
    }

    #[test]
    fn parses_the_local_ufrag() {
        assert_eq!(
            stun_local_ufrag(&stun_with_username("srv1:cli9")),
            Some("srv1")
        );
        assert_eq!(stun_local_ufrag(&stun_with_username("nocolon")), None);
        assert_eq!(stun_local_ufrag(&[0u8; 10]), None);
        let mut truncated = stun_with_username("srv1:cli9");
        truncated.truncate(26);
        assert_eq!(stun_local_ufrag(&truncated), None);
    }

    #[test]
    fn routes_by_ufrag_then_by_learned_address() {
        let mut d = Demux::default();
        d.add_peer(PeerId(1), "aaaa".into());
        d.add_peer(PeerId(2), "bbbb".into());
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let rtp = [0x80u8, 96, 0, 1];

        // Media from an address never seen in STUN goes nowhere.
        assert_eq!(d.route(a, &rtp), None);
        // A bogus ufrag goes nowhere and teaches nothing.
        assert_eq!(d.route(a, &stun_with_username("zzzz:x")), None);
        assert_eq!(d.route(a, &rtp), None);

        assert_eq!(d.route(a, &stun_with_username("aaaa:x")), Some(PeerId(1)));
        assert_eq!(d.route(a, &rtp), Some(PeerId(1)));

        // The same address reused by another session follows the newest STUN.
        assert_eq!(d.route(a, &stun_with_username("bbbb:y")), Some(PeerId(2)));
        assert_eq!(d.route(a, &rtp), Some(PeerId(2)));

        d.remove_peer(PeerId(2));
        assert_eq!(d.route(a, &rtp), None);
        assert_eq!(d.peer_count(), 1);
    }

    #[test]
    fn address_list_per_peer_is_bounded() {
        let mut d = Demux::default();
        d.add_peer(PeerId(1), "aaaa".into());
        for port in 0..100u16 {
            let from = SocketAddr::from(([10, 0, 0, 1], 1000 + port));
            d.route(from, &stun_with_username("aaaa:x"));
        }
        assert!(d.by_addr.len() <= 16);
        assert!(d.addrs_of[&PeerId(1)].len() <= 16);
    }
}
