//! What the TURN server does with each packet from a client: Binding, Allocate, Refresh,
//! CreatePermission and ChannelBind requests (long-term credentials, RFC 8489 §9.2), Send
//! indications and ChannelData.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rtc_stun::attributes::{ATTR_MESSAGE_INTEGRITY, ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use rtc_stun::error_code::{
    CODE_ALLOC_MISMATCH, CODE_ALLOC_QUOTA_REACHED, CODE_BAD_REQUEST, CODE_FORBIDDEN,
    CODE_SERVER_ERROR, CODE_STALE_NONCE, CODE_UNAUTHORIZED, CODE_UNSUPPORTED_TRANS_PROTO,
    CODE_WRONG_CREDENTIALS, ErrorCode,
};
use rtc_stun::message::{
    CLASS_INDICATION, CLASS_REQUEST, Getter, METHOD_ALLOCATE, METHOD_BINDING, METHOD_CHANNEL_BIND,
    METHOD_CREATE_PERMISSION, METHOD_REFRESH, METHOD_SEND, Message, Setter,
};
use rtc_stun::textattrs::TextAttribute;
use rtc_stun::xoraddr::XorMappedAddress;
use rtc_turn::proto::channum::ChannelNumber;
use rtc_turn::proto::lifetime::Lifetime;
use rtc_turn::proto::relayaddr::RelayedAddress;
use rtc_turn::proto::reqtrans::RequestedTransport;

use super::Inner;
use super::allocation::{
    Allocation, CHANNEL_LIFETIME, Grants, Leg, PERMISSION_LIFETIME, Refusal, Sink,
};
use super::message::{self, Kind};

/// Allocations live 10 minutes unless refreshed, at most an hour per request (RFC 8656 §7.2).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
const MAX_LIFETIME: Duration = Duration::from_secs(3600);

type Reply = Option<Vec<u8>>;

impl Inner {
    /// A packet from a client on `leg`; returns the reply for it, if any.
    pub(super) fn on_packet(
        &self,
        leg: Leg,
        client: SocketAddr,
        sink: &Sink,
        data: &[u8],
    ) -> Reply {
        match message::kind(data) {
            Kind::ChannelData => {
                self.channel_data(leg, client, data);
                None
            }
            Kind::Stun => {
                let mut m = Message::new();
                m.unmarshal_binary(data).ok()?;
                self.stun(leg, client, sink, &mut m)
            }
            Kind::Other => None,
        }
    }

    fn channel_data(&self, leg: Leg, client: SocketAddr, data: &[u8]) {
        let Some((number, payload)) = message::channel_data(data) else {
            return;
        };
        let Some(a) = self.allocation(leg, client) else {
            return;
        };
        let now = Instant::now();
        let target = {
            let Ok(g) = a.grants.lock() else { return };
            match g.channels.get(&number) {
                Some((peer, t)) if *t > now => self.targets.target(*peer),
                _ => None,
            }
        };
        if let Some(target) = target {
            let _ = a.relay.try_send_to(payload, target);
        }
    }

    fn allocation(&self, leg: Leg, client: SocketAddr) -> Option<Arc<Allocation>> {
        self.table.lock().ok()?.get(&(leg, client))
    }

    fn stun(&self, leg: Leg, client: SocketAddr, sink: &Sink, m: &mut Message) -> Reply {
        let (method, class) = (m.typ.method, m.typ.class);
        if class == CLASS_INDICATION {
            if method == METHOD_SEND {
                self.send_indication(leg, client, m);
            }
            return None;
        }
        if class != CLASS_REQUEST {
            return None;
        }
        if method == METHOD_BINDING {
            let mapped = XorMappedAddress {
                ip: client.ip(),
                port: client.port(),
            };
            return message::success(m, vec![Box::new(mapped)], None);
        }
        if ![
            METHOD_ALLOCATE,
            METHOD_REFRESH,
            METHOD_CREATE_PERMISSION,
            METHOD_CHANNEL_BIND,
        ]
        .contains(&method)
        {
            return message::error(m, CODE_BAD_REQUEST, "Unsupported method", vec![], None);
        }
        let (username, key) = match self.authenticate(m, client) {
            Ok(k) => k,
            Err(reply) => {
                self.stats
                    .refused_unauthorized
                    .fetch_add(1, Ordering::Relaxed);
                return reply;
            }
        };
        let crypto = self.credentials.crypto();
        let signed = Some((key.as_slice(), crypto));
        if method == METHOD_ALLOCATE {
            return self.allocate(leg, client, sink, m, username, &key);
        }
        let Some(a) = self.allocation(leg, client) else {
            return message::error(
                m,
                CODE_ALLOC_MISMATCH,
                "Allocation Mismatch",
                vec![],
                signed,
            );
        };
        if a.username != username {
            return message::error(
                m,
                CODE_WRONG_CREDENTIALS,
                "Wrong Credentials",
                vec![],
                signed,
            );
        }
        let now = Instant::now();
        match method {
            METHOD_REFRESH => {
                let mut asked = Lifetime(DEFAULT_LIFETIME);
                let _ = asked.get_from(m);
                let lifetime = asked.0.min(MAX_LIFETIME);
                if lifetime.is_zero() {
                    self.release(leg, client);
                } else if let Ok(mut t) = a.expires.lock() {
                    *t = now + lifetime;
                }
                message::success(m, vec![Box::new(Lifetime(lifetime))], signed)
            }
            METHOD_CREATE_PERMISSION => {
                let peers = message::peer_addresses(m);
                if peers.is_empty() {
                    return message::error(m, CODE_BAD_REQUEST, "No peer address", vec![], signed);
                }
                if !peers.iter().all(|p| self.targets.target(*p).is_some()) {
                    return self.forbidden(m, signed);
                }
                if let Ok(mut g) = a.grants.lock() {
                    for p in peers {
                        self.permit(&mut g, p, now);
                    }
                }
                message::success(m, vec![], signed)
            }
            _ => self.channel_bind(&a, m, now, signed),
        }
    }

    fn forbidden(&self, m: &Message, signed: Option<(&[u8], &dyn rtc_crypto::RTCCrypto)>) -> Reply {
        self.stats.refused_forbidden.fetch_add(1, Ordering::Relaxed);
        message::error(
            m,
            CODE_FORBIDDEN,
            "Forbidden: this server relays only to its own media",
            vec![],
            signed,
        )
    }

    fn permit(&self, g: &mut Grants, peer: SocketAddr, now: Instant) {
        if let Some(target) = self.targets.target(peer) {
            g.permissions.insert(peer.ip(), now + PERMISSION_LIFETIME);
            g.targets.insert(target, peer);
        }
    }

    fn channel_bind(
        &self,
        a: &Allocation,
        m: &Message,
        now: Instant,
        signed: Option<(&[u8], &dyn rtc_crypto::RTCCrypto)>,
    ) -> Reply {
        let mut number = ChannelNumber::default();
        let peer = message::peer_addresses(m).first().copied();
        let (Ok(()), Some(peer)) = (number.get_from(m), peer) else {
            return message::error(m, CODE_BAD_REQUEST, "Bad Request", vec![], signed);
        };
        if !number.valid() {
            return message::error(m, CODE_BAD_REQUEST, "Bad channel number", vec![], signed);
        }
        if self.targets.target(peer).is_none() {
            return self.forbidden(m, signed);
        }
        let Ok(mut g) = a.grants.lock() else {
            return message::error(m, CODE_SERVER_ERROR, "Server Error", vec![], signed);
        };
        let taken = g.channels.get(&number.0).is_some_and(|(p, _)| *p != peer)
            || g.channels
                .iter()
                .any(|(n, (p, _))| *p == peer && *n != number.0);
        if taken {
            return message::error(m, CODE_BAD_REQUEST, "Channel taken", vec![], signed);
        }
        g.channels.insert(number.0, (peer, now + CHANNEL_LIFETIME));
        self.permit(&mut g, peer, now);
        drop(g);
        message::success(m, vec![], signed)
    }

    fn send_indication(&self, leg: Leg, client: SocketAddr, m: &Message) {
        let Some(a) = self.allocation(leg, client) else {
            return;
        };
        let (Some(peer), Some(data)) = (
            message::peer_addresses(m).first().copied(),
            message::data(m),
        ) else {
            return;
        };
        let Some(target) = self.targets.target(peer) else {
            self.stats.refused_forbidden.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let permitted = a
            .grants
            .lock()
            .is_ok_and(|g| g.permitted(peer.ip(), Instant::now()));
        if permitted {
            let _ = a.relay.try_send_to(&data, target);
        }
    }

    /// Checks the long-term credential of a request; the error reply otherwise.
    fn authenticate(
        &self,
        m: &mut Message,
        client: SocketAddr,
    ) -> Result<(String, Vec<u8>), Reply> {
        let now = SystemTime::now();
        let challenge =
            |m: &Message, code, reason: &str| self.challenge(m, client, now, code, reason);
        if !m.contains(ATTR_MESSAGE_INTEGRITY) {
            return Err(challenge(m, CODE_UNAUTHORIZED, "Unauthorized"));
        }
        let text = |attr| TextAttribute::get_from_as(m, attr).map(|t| t.text);
        let (Ok(username), Ok(realm), Ok(nonce)) =
            (text(ATTR_USERNAME), text(ATTR_REALM), text(ATTR_NONCE))
        else {
            return Err(message::error(
                m,
                CODE_BAD_REQUEST,
                "Bad Request",
                vec![],
                None,
            ));
        };
        if realm != self.credentials.realm() {
            return Err(challenge(m, CODE_UNAUTHORIZED, "Unknown realm"));
        }
        if !self.credentials.nonce_fresh(&nonce, client.ip(), now) {
            return Err(challenge(m, CODE_STALE_NONCE, "Stale Nonce"));
        }
        let password = match self.credentials.check(&username, now) {
            Ok(p) => p,
            Err(e) => return Err(challenge(m, CODE_UNAUTHORIZED, &e.to_string())),
        };
        let key = self.credentials.integrity_key(&username, &password);
        if rtc_stun::integrity::MessageIntegrity::check(m, &key, self.credentials.crypto()).is_err()
        {
            return Err(challenge(m, CODE_UNAUTHORIZED, "Unauthorized"));
        }
        Ok((username, key))
    }

    /// An error that tells the client the realm and a fresh nonce to authenticate with.
    fn challenge(
        &self,
        m: &Message,
        client: SocketAddr,
        now: SystemTime,
        code: ErrorCode,
        reason: &str,
    ) -> Reply {
        let nonce = self.credentials.nonce(client.ip(), now);
        let attrs: Vec<Box<dyn Setter>> = vec![
            Box::new(TextAttribute::new(
                ATTR_REALM,
                self.credentials.realm().to_owned(),
            )),
            Box::new(TextAttribute::new(ATTR_NONCE, nonce)),
        ];
        message::error(m, code, reason, attrs, None)
    }

    fn allocate(
        &self,
        leg: Leg,
        client: SocketAddr,
        sink: &Sink,
        m: &Message,
        username: String,
        key: &[u8],
    ) -> Reply {
        let crypto = self.credentials.crypto();
        let signed = Some((key, crypto));
        let mut transport = RequestedTransport::default();
        if transport.get_from(m).is_err() {
            return message::error(
                m,
                CODE_BAD_REQUEST,
                "No REQUESTED-TRANSPORT",
                vec![],
                signed,
            );
        }
        if transport.protocol != rtc_turn::proto::PROTO_UDP {
            return message::error(
                m,
                CODE_UNSUPPORTED_TRANS_PROTO,
                "Only UDP is relayed",
                vec![],
                signed,
            );
        }
        let mut asked = Lifetime(DEFAULT_LIFETIME);
        let _ = asked.get_from(m);
        let lifetime = asked.0.clamp(Duration::from_secs(60), MAX_LIFETIME);
        let Ok(mut table) = self.table.lock() else {
            return message::error(m, CODE_SERVER_ERROR, "Server Error", vec![], signed);
        };
        match table.admit(
            &(leg, client),
            self.limits.max_allocations,
            self.limits.max_allocations_per_ip,
        ) {
            Ok(()) => {}
            Err(Refusal::Exists) => {
                // A retransmission (its success was lost on the way) gets the success again
                // (RFC 8656 §7.2); another Allocate on the same leg is a mismatch.
                if let Some(a) = table.get(&(leg, client))
                    && a.transaction == m.transaction_id.0
                {
                    let left = a.expires.lock().map_or(Duration::ZERO, |t| {
                        t.saturating_duration_since(Instant::now())
                    });
                    return allocated(m, a.relay_addr, left, client, signed);
                }
                return message::error(
                    m,
                    CODE_ALLOC_MISMATCH,
                    "Allocation Mismatch",
                    vec![],
                    signed,
                );
            }
            Err(Refusal::Quota) => {
                self.stats.refused_quota.fetch_add(1, Ordering::Relaxed);
                return message::error(
                    m,
                    CODE_ALLOC_QUOTA_REACHED,
                    "Allocation Quota Reached",
                    vec![],
                    signed,
                );
            }
        }
        let relay = match bind_relay(self.relay_ip) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("TURN relay socket: {e}");
                return message::error(m, CODE_SERVER_ERROR, "Server Error", vec![], signed);
            }
        };
        let Ok(relay_addr) = relay.local_addr() else {
            return message::error(m, CODE_SERVER_ERROR, "Server Error", vec![], signed);
        };
        let a = Arc::new(Allocation {
            leg,
            client,
            relay: Arc::new(relay),
            relay_addr,
            username,
            transaction: m.transaction_id.0,
            sink: sink.clone(),
            grants: Mutex::new(Grants::default()),
            expires: Mutex::new(Instant::now() + lifetime),
            task: Mutex::new(None),
        });
        self.relays.add(relay_addr, leg.transport());
        let task = super::relay::spawn(a.clone());
        if let Ok(mut t) = a.task.lock() {
            *t = Some(task);
        }
        table.insert(a);
        drop(table);
        self.stats.allocations.fetch_add(1, Ordering::Relaxed);
        self.stats.allocations_total.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%client, ?leg, %relay_addr, "TURN allocation");
        allocated(m, relay_addr, lifetime, client, signed)
    }

    /// Ends the allocation of a client leg (a Refresh with lifetime 0, a closed connection).
    pub(super) fn release(&self, leg: Leg, client: SocketAddr) {
        let gone = self
            .table
            .lock()
            .ok()
            .and_then(|mut t| t.remove(&(leg, client)));
        if let Some(a) = gone {
            self.forget(&a);
        }
    }

    /// Whether a client leg holds an allocation.
    pub(super) fn has_allocation(&self, leg: Leg, client: SocketAddr) -> bool {
        self.allocation(leg, client).is_some()
    }
}

/// The success response to an Allocate.
fn allocated(
    m: &Message,
    relay_addr: SocketAddr,
    lifetime: Duration,
    client: SocketAddr,
    signed: Option<(&[u8], &dyn rtc_crypto::RTCCrypto)>,
) -> Reply {
    message::success(
        m,
        vec![
            Box::new(RelayedAddress {
                ip: relay_addr.ip(),
                port: relay_addr.port(),
            }),
            Box::new(Lifetime(lifetime)),
            Box::new(XorMappedAddress {
                ip: client.ip(),
                port: client.port(),
            }),
        ],
        signed,
    )
}

fn bind_relay(ip: std::net::IpAddr) -> std::io::Result<tokio::net::UdpSocket> {
    let s = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
    s.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(s)
}
