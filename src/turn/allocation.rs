//! The allocation table: one relayed address per client leg (RFC 8656 §5), its permissions and
//! channels, bounded in total and per source IP.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ketang_sfu::Transport;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// How a client reaches the TURN server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    Udp,
    Tcp,
    Tls,
}

impl Leg {
    /// How a peer relayed for this leg is counted.
    pub fn transport(self) -> Transport {
        match self {
            Leg::Udp => Transport::TurnUdp,
            Leg::Tcp => Transport::TurnTcp,
            Leg::Tls => Transport::TurnTls,
        }
    }

    /// ChannelData is padded on streams only.
    pub fn is_stream(self) -> bool {
        self != Leg::Udp
    }
}

/// Where packets for a client go: its UDP address on the listener, or its connection's writer.
#[derive(Debug, Clone)]
pub enum Sink {
    Udp(Arc<UdpSocket>, SocketAddr),
    Stream(mpsc::Sender<Vec<u8>>),
}

impl Sink {
    /// Sends without waiting: a client that cannot keep up loses packets, as on any network.
    pub fn send(&self, data: Vec<u8>) {
        match self {
            Sink::Udp(socket, to) => {
                let _ = socket.try_send_to(&data, *to);
            }
            Sink::Stream(tx) => {
                let _ = tx.try_send(data);
            }
        }
    }
}

/// A client leg: its transport and source address (a TCP connection's address is its own).
pub type ClientKey = (Leg, SocketAddr);

/// Permissions last 300 s and channels 600 s unless refreshed (RFC 8656 §9, §12).
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);

/// What a relay task and the request handler share about one allocation.
#[derive(Debug, Default)]
pub struct Grants {
    /// Peer IP → expiry.
    pub permissions: HashMap<IpAddr, Instant>,
    /// Channel number → (peer as the client named it, expiry).
    pub channels: HashMap<u16, (SocketAddr, Instant)>,
    /// Where the relay socket sends for a peer → the peer as the client named it.
    pub targets: HashMap<SocketAddr, SocketAddr>,
}

impl Grants {
    pub fn permitted(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions.get(&ip).is_some_and(|t| *t > now)
    }

    pub fn channel_of(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        self.channels
            .iter()
            .find(|(_, (p, t))| *p == peer && *t > now)
            .map(|(n, _)| *n)
    }
}

/// One allocation.
#[derive(Debug)]
pub struct Allocation {
    pub leg: Leg,
    pub client: SocketAddr,
    pub relay: Arc<UdpSocket>,
    pub relay_addr: SocketAddr,
    /// Later requests must come with the same credential (441 otherwise).
    pub username: String,
    /// The Allocate's transaction id: a retransmission of it is answered with success again.
    pub transaction: [u8; 12],
    pub sink: Sink,
    pub grants: Mutex<Grants>,
    pub expires: Mutex<Instant>,
    pub task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Allocation {
    pub fn expired(&self, now: Instant) -> bool {
        self.expires.lock().map_or(true, |t| *t <= now)
    }

    /// Stops its relay task; the socket closes with the last reference.
    pub fn stop(&self) {
        if let Ok(mut t) = self.task.lock()
            && let Some(t) = t.take()
        {
            t.abort();
        }
    }
}

/// Why an allocation could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Exists,
    Quota,
}

/// The allocations, by client leg.
#[derive(Debug, Default)]
pub struct Table {
    by_client: HashMap<ClientKey, Arc<Allocation>>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Table {
    pub fn get(&self, key: &ClientKey) -> Option<Arc<Allocation>> {
        self.by_client.get(key).cloned()
    }

    pub fn len(&self) -> usize {
        self.by_client.len()
    }

    /// Whether a new allocation for `key` fits the limits.
    pub fn admit(&self, key: &ClientKey, max: usize, max_per_ip: usize) -> Result<(), Refusal> {
        if self.by_client.contains_key(key) {
            return Err(Refusal::Exists);
        }
        let from_ip = self.per_ip.get(&key.1.ip()).copied().unwrap_or(0);
        if self.by_client.len() >= max || from_ip >= max_per_ip {
            return Err(Refusal::Quota);
        }
        Ok(())
    }

    pub fn insert(&mut self, a: Arc<Allocation>) {
        *self.per_ip.entry(a.client.ip()).or_default() += 1;
        if let Some(old) = self.by_client.insert((a.leg, a.client), a) {
            old.stop();
        }
    }

    pub fn remove(&mut self, key: &ClientKey) -> Option<Arc<Allocation>> {
        let a = self.by_client.remove(key)?;
        if let Some(n) = self.per_ip.get_mut(&key.1.ip()) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_ip.remove(&key.1.ip());
            }
        }
        a.stop();
        Some(a)
    }

    /// Removes every allocation expired at `now`; returns them.
    pub fn sweep(&mut self, now: Instant) -> Vec<Arc<Allocation>> {
        let gone: Vec<ClientKey> = self
            .by_client
            .iter()
            .filter(|(_, a)| a.expired(now))
            .map(|(k, _)| *k)
            .collect();
        gone.iter().filter_map(|k| self.remove(k)).collect()
    }
}
