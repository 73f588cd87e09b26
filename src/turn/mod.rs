//! The embedded TURN server (RFC 8656, over UDP, TCP and TLS), for classrooms whose network
//! lets no UDP through to the media ports.
//!
//! It relays only to Ketang's own media sockets: a permission, channel or Send for any other
//! peer address is refused with 403, so it is no open relay. Each allocation gets its own UDP
//! socket on loopback; the shard sees the relayed client at that address (ICE-lite treats it
//! as any other candidate pair) and learns from [`Relays`] which leg the client used.
//!
//! - `auth.rs`: REST-API style credentials and stateless nonces
//! - `message.rs`: STUN/TURN encoding (webrtc-rs `rtc-stun`, `rtc-turn`)
//! - `allocation.rs`: the table, permissions and channels, limits
//! - `handler.rs`: the requests
//! - `relay.rs`: the relay sockets' side
//! - `listen.rs`: the UDP, TCP and TLS listeners

mod allocation;
pub mod auth;
mod handler;
mod listen;
mod message;
mod relay;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use ketang_sfu::Transport;

pub use allocation::Leg;
pub use auth::{Credentials, IceServer};

/// Relay socket address → the leg its client uses, for the shards (read only for datagrams
/// from loopback, where the relay sockets live).
#[derive(Debug, Default)]
pub struct Relays {
    count: AtomicUsize,
    map: DashMap<SocketAddr, Transport>,
}

impl Relays {
    /// How a datagram from `from` reached Ketang.
    pub fn transport_of(&self, from: SocketAddr) -> Transport {
        if self.count.load(Ordering::Relaxed) == 0 {
            return Transport::Udp;
        }
        self.map.get(&from).map_or(Transport::Udp, |t| *t)
    }

    fn add(&self, at: SocketAddr, t: Transport) {
        if self.map.insert(at, t).is_none() {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn remove(&self, at: SocketAddr) {
        if self.map.remove(&at).is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Ketang's media addresses as clients name them, and where the relay sends to reach each.
#[derive(Debug, Clone, Default)]
pub struct MediaTargets {
    map: std::collections::HashMap<SocketAddr, SocketAddr>,
}

impl MediaTargets {
    /// From each shard's bound UDP address and the advertised IPs: a shard bound to one IP is
    /// reached there (whatever the client was told); a wildcard-bound one at the address named.
    pub fn new(shards: &[SocketAddr], advertised: &[IpAddr]) -> Self {
        let mut map = std::collections::HashMap::new();
        for bound in shards {
            let target = |named: SocketAddr| {
                if bound.ip().is_unspecified() {
                    named
                } else {
                    *bound
                }
            };
            for ip in advertised {
                let named = SocketAddr::new(*ip, bound.port());
                map.insert(named, target(named));
            }
            if !bound.ip().is_unspecified() {
                map.insert(*bound, *bound);
            }
        }
        Self { map }
    }

    /// Where to send for `peer`, if it is one of Ketang's media addresses.
    pub fn target(&self, peer: SocketAddr) -> Option<SocketAddr> {
        self.map.get(&peer).copied()
    }
}

/// What the TURN server is given to start.
#[derive(Debug, Clone)]
pub struct TurnSettings {
    pub listen: SocketAddr,
    /// Whether `listen` was configured (a taken default port only warns).
    pub listen_explicit: bool,
    pub tls_listen: Option<SocketAddr>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub public_host: String,
    pub credentials: Credentials,
    pub targets: MediaTargets,
    pub limits: Limits,
}

/// The TURN server's bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_allocations: usize,
    pub max_allocations_per_ip: usize,
    pub max_pending_per_ip: usize,
    pub max_connections: usize,
    /// A TCP or TLS connection must allocate within this time.
    pub allocate_deadline: Duration,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct TurnStats {
    pub allocations: AtomicUsize,
    pub allocations_total: AtomicU64,
    pub refused_forbidden: AtomicU64,
    pub refused_unauthorized: AtomicU64,
    pub refused_quota: AtomicU64,
    pub connections_refused: AtomicU64,
}

pub(crate) struct Inner {
    credentials: Credentials,
    targets: MediaTargets,
    relays: Arc<Relays>,
    limits: Limits,
    table: Mutex<allocation::Table>,
    pub stats: TurnStats,
    /// The relay sockets' IP: loopback of the media family.
    relay_ip: IpAddr,
}

/// A running TURN server.
pub struct TurnServer {
    inner: Arc<Inner>,
    /// Bound addresses, for the URLs handed out.
    pub udp_addr: SocketAddr,
    pub tcp_addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
    public_host: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl TurnServer {
    /// Binds the listeners and starts serving. `Ok(None)`: the default port is taken (warned).
    pub async fn start(
        settings: TurnSettings,
        relays: Arc<Relays>,
    ) -> Result<Option<TurnServer>, String> {
        let relay_ip = if settings.listen.is_ipv6() {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        };
        let inner = Arc::new(Inner {
            credentials: settings.credentials.clone(),
            targets: settings.targets.clone(),
            relays,
            limits: settings.limits,
            table: Mutex::new(allocation::Table::default()),
            stats: TurnStats::default(),
            relay_ip,
        });
        let bound = match listen::bind(settings.listen).await {
            Ok(b) => b,
            Err(e) if !settings.listen_explicit => {
                tracing::warn!(
                    "TURN server off: cannot listen on {} ({e}); set turn.listen to another \
                     address, or turn.enabled = false",
                    settings.listen
                );
                return Ok(None);
            }
            Err(e) => return Err(format!("turn.listen {}: {e}", settings.listen)),
        };
        let (udp_addr, tcp_addr) = (bound.udp_addr, bound.tcp_addr);
        let mut tasks = listen::spawn(inner.clone(), bound);
        let tls_addr = match (settings.tls_listen, settings.tls) {
            (Some(at), Some(config)) => {
                let (addr, task) = listen::spawn_tls(inner.clone(), at, config)
                    .await
                    .map_err(|e| format!("turn.tls_listen {at}: {e}"))?;
                tasks.push(task);
                Some(addr)
            }
            _ => None,
        };
        tasks.push(tokio::spawn(sweep(inner.clone())));
        tracing::info!(%udp_addr, %tcp_addr, tls = ?tls_addr, "TURN server started");
        Ok(Some(TurnServer {
            inner,
            udp_addr,
            tcp_addr,
            tls_addr,
            public_host: settings.public_host,
            tasks,
        }))
    }

    /// The ICE servers for a participant, with a fresh credential.
    pub fn ice_servers(&self, peer: &str) -> Vec<IceServer> {
        let (username, credential) = self
            .inner
            .credentials
            .mint(peer, std::time::SystemTime::now());
        let host = &self.public_host;
        let mut urls = vec![
            format!("turn:{host}:{}?transport=udp", self.udp_addr.port()),
            format!("turn:{host}:{}?transport=tcp", self.tcp_addr.port()),
        ];
        if let Some(tls) = self.tls_addr {
            urls.push(format!("turns:{host}:{}?transport=tcp", tls.port()));
        }
        vec![IceServer {
            urls,
            username,
            credential,
        }]
    }

    /// The credentials it accepts (tests mint expired ones with them).
    pub fn credentials(&self) -> &Credentials {
        &self.inner.credentials
    }

    pub fn stats(&self) -> &TurnStats {
        &self.inner.stats
    }

    /// Allocations now.
    pub fn allocations(&self) -> usize {
        self.inner.table.lock().map_or(0, |t| t.len())
    }

    /// Stops the listeners and drops every allocation.
    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Ok(mut table) = self.inner.table.lock() {
            for a in table.sweep(std::time::Instant::now() + Duration::from_secs(86_400 * 365)) {
                self.inner.relays.remove(a.relay_addr);
            }
        }
    }
}

impl Drop for TurnServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Inner {
    fn forget(&self, a: &allocation::Allocation) {
        self.relays.remove(a.relay_addr);
        self.stats.allocations.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Drops expired allocations every few seconds.
async fn sweep(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let gone = match inner.table.lock() {
            Ok(mut t) => t.sweep(std::time::Instant::now()),
            Err(_) => return,
        };
        for a in gone {
            inner.forget(&a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_shards_media_addresses_are_targets() {
        let shards: Vec<SocketAddr> = vec![
            "0.0.0.0:10000".parse().unwrap(),
            "0.0.0.0:10001".parse().unwrap(),
        ];
        let advertised: Vec<IpAddr> = vec!["192.0.2.7".parse().unwrap()];
        let t = MediaTargets::new(&shards, &advertised);
        let ok: SocketAddr = "192.0.2.7:10001".parse().unwrap();
        assert_eq!(t.target(ok), Some(ok));
        for refused in [
            "192.0.2.7:10002",
            "192.0.2.7:8080",
            "192.0.2.8:10000",
            "127.0.0.1:10000",
            "0.0.0.0:10000",
        ] {
            assert_eq!(t.target(refused.parse().unwrap()), None, "{refused}");
        }
        // A shard bound to one IP is reached there, whatever address the client was given.
        let bound: SocketAddr = "10.0.0.5:10000".parse().unwrap();
        let t = MediaTargets::new(&[bound], &["203.0.113.9".parse().unwrap()]);
        assert_eq!(t.target("203.0.113.9:10000".parse().unwrap()), Some(bound));
        assert_eq!(t.target(bound), Some(bound));
    }

    fn settings(listen: SocketAddr, explicit: bool) -> TurnSettings {
        TurnSettings {
            listen,
            listen_explicit: explicit,
            tls_listen: None,
            tls: None,
            public_host: "127.0.0.1".into(),
            credentials: Credentials::new(&[1; 32], "ketang", Duration::from_secs(60)).unwrap(),
            targets: MediaTargets::default(),
            limits: Limits {
                max_allocations: 1,
                max_allocations_per_ip: 1,
                max_pending_per_ip: 1,
                max_connections: 1,
                allocate_deadline: Duration::from_secs(1),
            },
        }
    }

    #[tokio::test]
    async fn a_taken_default_port_leaves_turn_off_and_a_configured_one_fails() {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let at = taken.local_addr().unwrap();
        let relays = Arc::new(Relays::default());
        let r = TurnServer::start(settings(at, false), relays.clone()).await;
        assert!(matches!(r, Ok(None)), "the default port: warned, off");
        let r = TurnServer::start(settings(at, true), relays.clone()).await;
        let Err(e) = r else {
            panic!("a configured port that is taken must stop the start")
        };
        assert!(e.contains("turn.listen"), "{e}");
        let free = SocketAddr::from(([127, 0, 0, 1], 0));
        let t = TurnServer::start(settings(free, true), relays)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            t.udp_addr.port(),
            t.tcp_addr.port(),
            "UDP and TCP on one port"
        );
    }

    #[test]
    fn relays_are_told_apart_only_when_known() {
        let r = Relays::default();
        let a: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_eq!(r.transport_of(a), Transport::Udp);
        r.add(a, Transport::TurnTcp);
        assert_eq!(r.transport_of(a), Transport::TurnTcp);
        assert_eq!(
            r.transport_of("127.0.0.1:40001".parse().unwrap()),
            Transport::Udp
        );
        r.remove(a);
        assert_eq!(r.transport_of(a), Transport::Udp);
    }
}
