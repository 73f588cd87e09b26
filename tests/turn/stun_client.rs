//! A bare STUN/TURN client for probing the embedded TURN server: requests built with
//! webrtc-rs' `rtc-stun`/`rtc-turn`, long-term credentials, replies read back.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use rtc_stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use rtc_stun::error_code::ErrorCodeAttribute;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::{
    CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, Getter, METHOD_ALLOCATE, Message, MessageType, Method,
    Setter,
};
use rtc_stun::textattrs::TextAttribute;
use rtc_turn::proto::PROTO_UDP;
use rtc_turn::proto::relayaddr::RelayedAddress;
use rtc_turn::proto::reqtrans::RequestedTransport;
use tokio::net::UdpSocket;

/// A credential and the realm/nonce the server asked for.
#[derive(Clone, Debug)]
pub struct Auth {
    pub username: String,
    pub password: String,
    pub realm: String,
    pub nonce: String,
}

/// What came back.
#[derive(Debug)]
pub struct Reply {
    pub msg: Message,
}

impl Reply {
    pub fn ok(&self) -> bool {
        self.msg.typ.class == CLASS_SUCCESS_RESPONSE
    }

    pub fn code(&self) -> Option<u16> {
        let mut e = ErrorCodeAttribute::default();
        e.get_from(&self.msg).ok().map(|_| e.code.0)
    }

    pub fn text(&self, attr: rtc_stun::attributes::AttrType) -> Option<String> {
        TextAttribute::get_from_as(&self.msg, attr)
            .ok()
            .map(|t| t.text)
    }

    pub fn relayed(&self) -> Option<SocketAddr> {
        let mut r = RelayedAddress::default();
        r.get_from(&self.msg).ok()?;
        Some(SocketAddr::new(r.ip, r.port))
    }
}

/// A request of `method` with `attrs`, signed when `auth` is given.
pub fn request(method: Method, attrs: Vec<Box<dyn Setter>>, auth: Option<&Auth>) -> Vec<u8> {
    let provider = rtc_crypto::default_provider().unwrap();
    let mut m = Message::new();
    m.new_transaction_id().unwrap();
    let mut tid = Message::new();
    tid.transaction_id = m.transaction_id;
    let mut setters: Vec<Box<dyn Setter + '_>> = vec![
        Box::new(MessageType::new(method, CLASS_REQUEST)),
        Box::new(tid),
    ];
    setters.extend(attrs);
    if let Some(a) = auth {
        setters.push(Box::new(TextAttribute::new(
            ATTR_USERNAME,
            a.username.clone(),
        )));
        setters.push(Box::new(TextAttribute::new(ATTR_REALM, a.realm.clone())));
        setters.push(Box::new(TextAttribute::new(ATTR_NONCE, a.nonce.clone())));
        setters.push(Box::new(
            MessageIntegrity::new_long_term_integrity_with_provider(
                a.username.clone(),
                a.realm.clone(),
                a.password.clone(),
                provider.crypto(),
            )
            .unwrap(),
        ));
    }
    m.build(&setters).unwrap();
    m.raw
}

pub fn allocate_attrs() -> Vec<Box<dyn Setter>> {
    vec![Box::new(RequestedTransport {
        protocol: PROTO_UDP,
    })]
}

pub fn parse(data: &[u8]) -> Option<Reply> {
    let mut msg = Message::new();
    msg.unmarshal_binary(data).ok()?;
    Some(Reply { msg })
}

/// Sends `req` and waits (bounded) for the reply to it.
pub async fn exchange(socket: &UdpSocket, server: SocketAddr, req: &[u8]) -> Option<Reply> {
    socket.send_to(req, server).await.ok()?;
    let mut buf = vec![0u8; 2048];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let (n, _) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        if let Some(r) = parse(&buf[..n])
            && r.msg.transaction_id.0 == req[8..20]
        {
            return Some(r);
        }
    }
}

/// Allocate as a client does: unauthenticated first, then with the realm and nonce given.
pub async fn allocate(
    socket: &UdpSocket,
    server: SocketAddr,
    username: &str,
    password: &str,
) -> (Reply, Auth) {
    let first = exchange(
        socket,
        server,
        &request(METHOD_ALLOCATE, allocate_attrs(), None),
    )
    .await
    .expect("401 challenge");
    assert_eq!(first.code(), Some(401), "{:?}", first.msg);
    let auth = Auth {
        username: username.to_owned(),
        password: password.to_owned(),
        realm: first.text(ATTR_REALM).expect("REALM"),
        nonce: first.text(ATTR_NONCE).expect("NONCE"),
    };
    let req = request(METHOD_ALLOCATE, allocate_attrs(), Some(&auth));
    let reply = exchange(socket, server, &req)
        .await
        .expect("allocate reply");
    (reply, auth)
}
