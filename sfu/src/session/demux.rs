//! Routing datagrams from the shard's one UDP port to the peer they belong to.
//!
//! A peer is found by the datagram's source address once that address has been seen carrying
//! a STUN binding request for the peer's ICE username fragment whose MESSAGE-INTEGRITY checks
//! out against the peer's ICE password. STUN packets are always routed by their USERNAME
//! attribute first (it is authoritative, and a client that reconnects from a reused port must
//! reach its new peer, not the old one). Anything else from an unknown address is dropped: it
//! cannot be a packet of an established session.
//!
//! The integrity is checked before the address is learned: the ufrag travels in clear in every
//! check, so anyone who saw one could otherwise point made-up source addresses at the peer and
//! push its real addresses out of the bounded list.

use std::collections::HashMap;
use std::net::SocketAddr;

use str0m::crypto::Sha1HmacProvider;
use str0m::ice::{IceCreds, StunMessage};

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

/// HMAC-SHA1 of str0m's crypto provider, for STUN's MESSAGE-INTEGRITY.
struct Hmac(&'static dyn Sha1HmacProvider);

impl Default for Hmac {
    fn default() -> Self {
        let provider = str0m::config::CryptoProvider::get_default()
            .map(|p| p.sha1_hmac_provider)
            .unwrap_or_else(|| str0m::crypto::from_feature_flags().sha1_hmac_provider);
        Hmac(provider)
    }
}

impl std::fmt::Debug for Hmac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hmac")
    }
}

/// Whether `data` is a STUN message carrying a MESSAGE-INTEGRITY made with `password`.
fn integrity_ok(hmac: &Hmac, data: &[u8], password: &str) -> bool {
    StunMessage::parse(data).is_ok_and(|m| {
        m.verify(password.as_bytes(), |key, parts| {
            hmac.0.sha1_hmac(key, parts)
        })
    })
}

/// Address and ufrag tables of one shard.
#[derive(Debug, Default)]
pub(crate) struct Demux {
    /// Local ufrag → the peer and its local ICE password.
    by_ufrag: HashMap<String, (PeerId, String)>,
    by_addr: HashMap<SocketAddr, PeerId>,
    addrs_of: HashMap<PeerId, Vec<SocketAddr>>,
    hmac: Hmac,
}

impl Demux {
    /// Routes checks for the peer's local ICE credentials to it.
    pub fn add_peer(&mut self, peer: PeerId, local: IceCreds) {
        self.by_ufrag.insert(local.ufrag, (peer, local.pass));
    }

    pub fn remove_peer(&mut self, peer: PeerId) {
        self.by_ufrag.retain(|_, (p, _)| *p != peer);
        if let Some(addrs) = self.addrs_of.remove(&peer) {
            for a in addrs {
                if self.by_addr.get(&a) == Some(&peer) {
                    self.by_addr.remove(&a);
                }
            }
        }
    }

    /// Find the peer for a datagram, learning the source address from STUN that proves it
    /// knows the peer's ICE password. A check that names a peer but fails the integrity
    /// check goes nowhere.
    pub fn route(&mut self, from: SocketAddr, data: &[u8]) -> Option<PeerId> {
        if classify(data) == PacketClass::Stun
            && let Some(ufrag) = stun_local_ufrag(data)
        {
            {
                let (peer, pass) = self.by_ufrag.get(ufrag)?;
                let peer = *peer;
                if !integrity_ok(&self.hmac, data, pass) {
                    return None;
                }
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

    fn creds(ufrag: &str) -> IceCreds {
        IceCreds {
            ufrag: ufrag.into(),
            pass: format!("{ufrag}-password-of-22+chars"),
        }
    }

    /// A binding request as a client sends it: USERNAME, then MESSAGE-INTEGRITY with
    /// `password`, then FINGERPRINT.
    fn check(username: &str, password: &str) -> Vec<u8> {
        let hmac = Hmac::default();
        let msg = StunMessage::binding_request(
            username,
            str0m::ice::TransId::new(),
            true,
            1,
            2_130_706_431,
            false,
        );
        let mut buf = vec![0u8; 256];
        let n = msg
            .to_bytes(Some(password.as_bytes()), &mut buf, |k, p| {
                hmac.0.sha1_hmac(k, p)
            })
            .expect("serialize");
        buf.truncate(n);
        buf
    }

    fn check_for(ufrag: &str) -> Vec<u8> {
        check(&format!("{ufrag}:cli"), &creds(ufrag).pass)
    }

    #[test]
    fn routes_by_ufrag_then_by_learned_address() {
        let mut d = Demux::default();
        d.add_peer(PeerId(1), creds("aaaa"));
        d.add_peer(PeerId(2), creds("bbbb"));
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let rtp = [0x80u8, 96, 0, 1];

        // Media from an address never seen in STUN goes nowhere.
        assert_eq!(d.route(a, &rtp), None);
        // A bogus ufrag goes nowhere and teaches nothing.
        assert_eq!(d.route(a, &check_for("zzzz")), None);
        assert_eq!(d.route(a, &rtp), None);

        assert_eq!(d.route(a, &check_for("aaaa")), Some(PeerId(1)));
        assert_eq!(d.route(a, &rtp), Some(PeerId(1)));

        // The same address reused by another session follows the newest STUN.
        assert_eq!(d.route(a, &check_for("bbbb")), Some(PeerId(2)));
        assert_eq!(d.route(a, &rtp), Some(PeerId(2)));

        d.remove_peer(PeerId(2));
        assert_eq!(d.route(a, &rtp), None);
        assert_eq!(d.peer_count(), 1);
    }

    #[test]
    fn a_check_that_fails_its_integrity_teaches_no_address() {
        let mut d = Demux::default();
        d.add_peer(PeerId(1), creds("aaaa"));
        let client: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let rtp = [0x80u8, 96, 0, 1];
        assert_eq!(d.route(client, &check_for("aaaa")), Some(PeerId(1)));

        // Someone who saw the ufrag (it travels in clear) but not the password: checks
        // without integrity, with a wrong password, or tampered with after signing, from
        // many made-up sources.
        let mut tampered = check_for("aaaa");
        let last = tampered.len() - 30;
        tampered[last] ^= 1;
        for port in 0..100u16 {
            let spoofed = SocketAddr::from(([10, 6, 6, 6], 1000 + port));
            assert_eq!(d.route(spoofed, &stun_with_username("aaaa:cli")), None);
            assert_eq!(d.route(spoofed, &check("aaaa:cli", "guessed")), None);
            assert_eq!(d.route(spoofed, &tampered), None);
            assert_eq!(d.route(spoofed, &rtp), None, "{spoofed} was learned");
        }
        // The client's real address is still known.
        assert_eq!(d.route(client, &rtp), Some(PeerId(1)));
        assert_eq!(d.addrs_of[&PeerId(1)], [client]);
    }

    #[test]
    fn address_list_per_peer_is_bounded() {
        let mut d = Demux::default();
        d.add_peer(PeerId(1), creds("aaaa"));
        for port in 0..100u16 {
            let from = SocketAddr::from(([10, 0, 0, 1], 1000 + port));
            d.route(from, &check_for("aaaa"));
        }
        assert!(d.by_addr.len() <= 16);
        assert!(d.addrs_of[&PeerId(1)].len() <= 16);
    }
}
