//! STUN/TURN messages: decoding and encoding through webrtc-rs' `rtc-stun` and `rtc-turn`,
//! plus the few things done by hand because they are on the data path (ChannelData framing)
//! or because the crates read only the first of a repeated attribute (XOR-PEER-ADDRESS).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rtc_stun::attributes::{ATTR_DATA, ATTR_XOR_PEER_ADDRESS};
use rtc_stun::error_code::{ErrorCode, ErrorCodeAttribute};
use rtc_stun::message::{
    CLASS_ERROR_RESPONSE, CLASS_INDICATION, CLASS_SUCCESS_RESPONSE, Message, MessageType, Setter,
};

const MAGIC_COOKIE: u32 = 0x2112_A442;

/// The kind of a packet on a TURN listener, by its first two bits (RFC 8656 §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stun,
    ChannelData,
    Other,
}

pub fn kind(data: &[u8]) -> Kind {
    match data.first() {
        Some(0x00..=0x3F) => Kind::Stun,
        Some(0x40..=0x7F) => Kind::ChannelData,
        _ => Kind::Other,
    }
}

/// The channel number and payload of a ChannelData message.
pub fn channel_data(data: &[u8]) -> Option<(u16, &[u8])> {
    let number = u16::from_be_bytes([*data.first()?, *data.get(1)?]);
    let len = u16::from_be_bytes([*data.get(2)?, *data.get(3)?]) as usize;
    Some((number, data.get(4..4 + len)?))
}

/// A ChannelData message; over TCP and TLS it is padded to a multiple of four (§12.5).
pub fn encode_channel_data(number: u16, payload: &[u8], pad: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&number.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
    if pad {
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }
    out
}

/// The length of the frame at the start of a TCP stream's buffer, once its header is there:
/// a STUN message or a (padded) ChannelData message.
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    if buf.len() < 4 {
        return None;
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    match kind(buf) {
        Kind::Stun => Some(20 + len),
        _ => Some((4 + len + 3) & !3),
    }
}

/// Every XOR-PEER-ADDRESS of a message (CreatePermission may carry several).
pub fn peer_addresses(m: &Message) -> Vec<SocketAddr> {
    m.attributes
        .0
        .iter()
        .filter(|a| a.typ == ATTR_XOR_PEER_ADDRESS)
        .filter_map(|a| xor_address(&a.value, &m.transaction_id.0))
        .collect()
}

/// Decodes an XOR-encoded address attribute value (RFC 8489 §14.2).
pub fn xor_address(v: &[u8], tid: &[u8; 12]) -> Option<SocketAddr> {
    let family = *v.get(1)?;
    let port = u16::from_be_bytes([*v.get(2)?, *v.get(3)?]) ^ (MAGIC_COOKIE >> 16) as u16;
    let mut key = [0u8; 16];
    key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    key[4..].copy_from_slice(tid);
    let ip = match family {
        1 => {
            let b = v.get(4..8)?;
            let mut ip = [0u8; 4];
            for i in 0..4 {
                ip[i] = b[i] ^ key[i];
            }
            IpAddr::V4(Ipv4Addr::from(ip))
        }
        2 => {
            let b = v.get(4..20)?;
            let mut ip = [0u8; 16];
            for i in 0..16 {
                ip[i] = b[i] ^ key[i];
            }
            IpAddr::V6(Ipv6Addr::from(ip))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The DATA attribute's bytes.
pub fn data(m: &Message) -> Option<Vec<u8>> {
    m.get(ATTR_DATA).ok()
}

/// A Data indication carrying `payload` from `peer`.
pub fn data_indication(peer: SocketAddr, payload: &[u8]) -> Option<Vec<u8>> {
    let mut m = Message::new();
    m.new_transaction_id().ok()?;
    let tid = m.transaction_id;
    m.build(&[
        Box::new(MessageType::new(
            rtc_stun::message::METHOD_DATA,
            CLASS_INDICATION,
        )),
        Box::new(tid_setter(tid)),
        Box::new(rtc_turn::proto::peeraddr::PeerAddress {
            ip: peer.ip(),
            port: peer.port(),
        }),
        Box::new(rtc_turn::proto::data::Data(payload.to_vec())),
    ])
    .ok()?;
    Some(m.raw)
}

fn tid_setter(tid: rtc_stun::message::TransactionId) -> Message {
    let mut m = Message::new();
    m.transaction_id = tid;
    m
}

/// A response to `req` of `class` with `attrs`, signed with `key` when given, fingerprinted.
pub fn response(
    req: &Message,
    class: rtc_stun::message::MessageClass,
    attrs: Vec<Box<dyn Setter + '_>>,
    key: Option<(&[u8], &dyn rtc_crypto::RTCCrypto)>,
) -> Option<Vec<u8>> {
    let mut setters: Vec<Box<dyn Setter + '_>> = vec![
        Box::new(MessageType::new(req.typ.method, class)),
        Box::new(tid_setter(req.transaction_id)),
    ];
    setters.extend(attrs);
    if let Some((key, crypto)) = key {
        setters.push(Box::new(
            rtc_stun::integrity::MessageIntegrity::new_raw_integrity_with_provider(
                key.to_vec(),
                crypto,
            ),
        ));
    }
    setters.push(Box::new(rtc_stun::fingerprint::FINGERPRINT));
    let mut m = Message::new();
    m.build(&setters).ok()?;
    Some(m.raw)
}

/// A success response.
pub fn success<'a>(
    req: &Message,
    attrs: Vec<Box<dyn Setter + 'a>>,
    key: Option<(&'a [u8], &'a dyn rtc_crypto::RTCCrypto)>,
) -> Option<Vec<u8>> {
    response(req, CLASS_SUCCESS_RESPONSE, attrs, key)
}

/// An error response with `code` and its reason, plus `attrs`.
pub fn error<'a>(
    req: &Message,
    code: ErrorCode,
    reason: &str,
    mut attrs: Vec<Box<dyn Setter + 'a>>,
    key: Option<(&'a [u8], &'a dyn rtc_crypto::RTCCrypto)>,
) -> Option<Vec<u8>> {
    attrs.insert(
        0,
        Box::new(ErrorCodeAttribute {
            code,
            reason: reason.as_bytes().to_vec(),
        }),
    );
    response(req, CLASS_ERROR_RESPONSE, attrs, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses_round_trip_through_the_crate_encoder() {
        let mut m = Message::new();
        m.new_transaction_id().unwrap();
        let a: SocketAddr = "10.1.2.3:10000".parse().unwrap();
        let b: SocketAddr = "[2001:db8::1]:10001".parse().unwrap();
        let tid = m.transaction_id;
        m.build(&[
            Box::new(tid_setter(tid)),
            Box::new(rtc_turn::proto::peeraddr::PeerAddress {
                ip: a.ip(),
                port: a.port(),
            }),
            Box::new(rtc_turn::proto::peeraddr::PeerAddress {
                ip: b.ip(),
                port: b.port(),
            }),
        ])
        .unwrap();
        let mut back = Message::new();
        back.unmarshal_binary(&m.raw).unwrap();
        assert_eq!(peer_addresses(&back), vec![a, b]);
    }

    #[test]
    fn channel_data_frames() {
        let f = encode_channel_data(0x4001, b"hello", true);
        assert_eq!(f.len(), 12);
        assert_eq!(frame_len(&f), Some(12));
        assert_eq!(channel_data(&f), Some((0x4001, &b"hello"[..])));
        assert_eq!(kind(&f), Kind::ChannelData);
        assert_eq!(channel_data(&f[..6]), None, "truncated");
    }
}
