//! ICE over TCP for networks that let only TCP out (RFC 6544 passive candidates, RFC 4571
//! framing: each packet is preceded by its 16-bit length).
//!
//! Each shard listens on TCP beside its UDP socket. Connection tasks run on the shard's own
//! runtime and hand whole frames to the shard loop over one bounded queue; the loop gives them
//! to the SFU like datagrams and sends the SFU's TCP transmits back through each connection's
//! bounded write queue (a full queue drops the packet, as a full UDP buffer would).
//!
//! Bounds, because a TCP listener on the open internet is easy to hold open: a connection
//! that has not carried a packet the SFU routed to a peer (a STUN binding request with a known
//! ufrag) within `STUN_DEADLINE` is closed; each source IP may have at most
//! `max_pending_per_ip` such unproven connections; a frame longer than `MAX_FRAME` ends the
//! connection; an established connection silent for `IDLE` (consent checks come every few
//! seconds) is closed.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A connection must carry a packet for a known peer this soon after it opens.
pub const STUN_DEADLINE: Duration = Duration::from_secs(5);
/// The largest packet a frame may carry (a frame is this plus the 2-byte length).
pub const MAX_FRAME: usize = 1500;
/// An established connection with nothing to read this long is gone.
const IDLE: Duration = Duration::from_secs(30);
/// Packets waiting to be written to one connection.
const WRITE_QUEUE: usize = 512;
/// Frames from all connections waiting for the shard loop.
const READ_QUEUE: usize = 1024;

/// Counters of a shard's TCP side (read by metrics).
#[derive(Debug, Default)]
pub struct TcpStats {
    /// Connections open now.
    pub open: AtomicUsize,
    /// Connections closed unproven: no packet for a peer within the deadline.
    pub unproven_closed: AtomicU64,
    /// Connections refused at accept: their source IP had too many unproven ones.
    pub refused: AtomicU64,
    /// Connections ended by an oversized frame.
    pub oversized: AtomicU64,
    /// Packets dropped because a connection's write queue was full.
    pub write_dropped: AtomicU64,
}

/// What connection tasks tell the shard loop.
#[derive(Debug)]
pub enum TcpEvent {
    Opened {
        id: u64,
        remote: SocketAddr,
        writer: mpsc::Sender<Vec<u8>>,
        proven: Arc<AtomicBool>,
    },
    Frame {
        remote: SocketAddr,
        local: SocketAddr,
        data: Vec<u8>,
    },
    Closed {
        id: u64,
        remote: SocketAddr,
    },
}

struct Conn {
    id: u64,
    writer: mpsc::Sender<Vec<u8>>,
    proven: Arc<AtomicBool>,
}

/// The shard loop's side: open connections by remote address.
pub struct TcpConns {
    conns: HashMap<SocketAddr, Conn>,
    stats: Arc<TcpStats>,
}

impl TcpConns {
    pub fn new(stats: Arc<TcpStats>) -> TcpConns {
        TcpConns {
            conns: HashMap::new(),
            stats,
        }
    }

    /// Applies an open or close; a frame is returned for the SFU.
    pub fn on_event(&mut self, ev: TcpEvent) -> Option<(SocketAddr, SocketAddr, Vec<u8>)> {
        match ev {
            TcpEvent::Opened {
                id,
                remote,
                writer,
                proven,
                ..
            } => {
                self.conns.insert(remote, Conn { id, writer, proven });
                None
            }
            TcpEvent::Closed { id, remote } => {
                if self.conns.get(&remote).is_some_and(|c| c.id == id) {
                    self.conns.remove(&remote);
                }
                None
            }
            TcpEvent::Frame {
                remote,
                local,
                data,
            } => Some((remote, local, data)),
        }
    }

    /// The SFU took a packet of this connection for one of its peers.
    pub fn prove(&self, remote: SocketAddr) {
        if let Some(c) = self.conns.get(&remote) {
            c.proven.store(true, Ordering::Relaxed);
        }
    }

    /// Queues a packet for the connection from `remote`; false if it is gone or full.
    pub fn send(&self, remote: SocketAddr, data: Vec<u8>) -> bool {
        let Some(c) = self.conns.get(&remote) else {
            return false;
        };
        match c.writer.try_send(data) {
            Ok(()) => true,
            Err(_) => {
                self.stats.write_dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

/// Settings of the TCP side of one shard.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    /// Unproven connections allowed per source IP.
    pub max_pending_per_ip: usize,
    /// How long a connection has to prove itself (`STUN_DEADLINE`; shorter in tests).
    pub stun_deadline: Duration,
}

/// Unproven connections per source IP, shared by a shard's connection tasks.
type Pending = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Accepts connections until the listener fails; returns the queue of their frames.
pub fn start(
    listener: std::net::TcpListener,
    limits: TcpLimits,
    stats: Arc<TcpStats>,
) -> io::Result<mpsc::Receiver<TcpEvent>> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let (tx, rx) = mpsc::channel(READ_QUEUE);
    tokio::spawn(accept_loop(listener, limits, stats, tx));
    Ok(rx)
}

async fn accept_loop(
    listener: TcpListener,
    limits: TcpLimits,
    stats: Arc<TcpStats>,
    tx: mpsc::Sender<TcpEvent>,
) {
    let pending: Pending = Arc::default();
    let mut next_id = 0u64;
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::debug!("media TCP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if tx.is_closed() {
            return;
        }
        let ip = remote.ip();
        let admitted = pending
            .lock()
            .map(|mut p| {
                let n = p.entry(ip).or_insert(0);
                if *n >= limits.max_pending_per_ip {
                    false
                } else {
                    *n += 1;
                    true
                }
            })
            .unwrap_or(false);
        if !admitted {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        }
        next_id += 1;
        let guard = PendingGuard {
            pending: pending.clone(),
            ip,
            held: true,
        };
        tokio::spawn(connection(
            next_id,
            stream,
            remote,
            guard,
            limits.stun_deadline,
            stats.clone(),
            tx.clone(),
        ));
    }
}

/// One unproven connection counted against its source IP until proven or closed.
struct PendingGuard {
    pending: Pending,
    ip: IpAddr,
    held: bool,
}

impl PendingGuard {
    fn release(&mut self) {
        if !std::mem::replace(&mut self.held, false) {
            return;
        }
        if let Ok(mut p) = self.pending.lock()
            && let Some(n) = p.get_mut(&self.ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                p.remove(&self.ip);
            }
        }
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.release();
    }
}

/// Why a connection ended.
enum End {
    Eof,
    Unproven,
    Oversized,
    Idle,
    Error,
}

async fn connection(
    id: u64,
    stream: TcpStream,
    remote: SocketAddr,
    mut guard: PendingGuard,
    stun_deadline: Duration,
    stats: Arc<TcpStats>,
    tx: mpsc::Sender<TcpEvent>,
) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    // Media: small packets must not wait for more.
    let _ = stream.set_nodelay(true);
    let (mut rd, wr) = stream.into_split();
    let (writer, write_rx) = mpsc::channel(WRITE_QUEUE);
    let proven = Arc::new(AtomicBool::new(false));
    let opened = TcpEvent::Opened {
        id,
        remote,
        writer,
        proven: proven.clone(),
    };
    if tx.send(opened).await.is_err() {
        return;
    }
    stats.open.fetch_add(1, Ordering::Relaxed);
    let write_task = tokio::spawn(write_loop(wr, write_rx));

    let deadline = Instant::now() + stun_deadline;
    let mut frames = FrameReader::default();
    let end = loop {
        let is_proven = proven.load(Ordering::Relaxed);
        if is_proven {
            guard.release();
        }
        let until = if is_proven {
            Instant::now() + IDLE
        } else {
            deadline
        };
        // `FrameReader::next` is cancel-safe: a deadline passing mid-frame loses nothing.
        let data = match tokio::time::timeout_at(until, frames.next(&mut rd)).await {
            Err(_) if !is_proven && proven.load(Ordering::Relaxed) => continue,
            Err(_) if is_proven => break End::Idle,
            Err(_) => break End::Unproven,
            Ok(Ok(Frame::Packet(data))) => data,
            Ok(Ok(Frame::Oversized)) => break End::Oversized,
            Ok(Ok(Frame::Eof)) => break End::Eof,
            Ok(Err(_)) => break End::Error,
        };
        if data.is_empty() {
            continue;
        }
        let frame = TcpEvent::Frame {
            remote,
            local,
            data,
        };
        if tx.send(frame).await.is_err() {
            break End::Error;
        }
    };
    match end {
        End::Unproven => {
            stats.unproven_closed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%remote, "media TCP connection closed: no STUN for a peer in time");
        }
        End::Oversized => {
            stats.oversized.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%remote, "media TCP connection closed: oversized frame");
        }
        End::Eof | End::Idle | End::Error => {}
    }
    write_task.abort();
    stats.open.fetch_sub(1, Ordering::Relaxed);
    let _ = tx.send(TcpEvent::Closed { id, remote }).await;
}

#[derive(Debug, PartialEq, Eq)]
enum Frame {
    Packet(Vec<u8>),
    Oversized,
    Eof,
}

/// Splits a byte stream into RFC 4571 frames.
#[derive(Default)]
struct FrameReader {
    acc: Vec<u8>,
}

impl FrameReader {
    /// The next whole frame. Cancel-safe: bytes read are kept until a frame is complete.
    async fn next<R: tokio::io::AsyncRead + Unpin>(&mut self, rd: &mut R) -> io::Result<Frame> {
        let mut chunk = [0u8; 2048];
        loop {
            if let Some(f) = self.parse() {
                return Ok(f);
            }
            let n = rd.read(&mut chunk).await?;
            if n == 0 {
                return Ok(Frame::Eof);
            }
            self.acc.extend_from_slice(&chunk[..n]);
        }
    }

    fn parse(&mut self) -> Option<Frame> {
        let len = u16::from_be_bytes([*self.acc.first()?, *self.acc.get(1)?]) as usize;
        if len > MAX_FRAME {
            return Some(Frame::Oversized);
        }
        if self.acc.len() < 2 + len {
            return None;
        }
        let packet = self.acc[2..2 + len].to_vec();
        self.acc.drain(..2 + len);
        Some(Frame::Packet(packet))
    }
}

async fn write_loop(mut wr: tokio::net::tcp::OwnedWriteHalf, mut rx: mpsc::Receiver<Vec<u8>>) {
    let mut out = Vec::with_capacity(2 + MAX_FRAME);
    while let Some(packet) = rx.recv().await {
        let Ok(len) = u16::try_from(packet.len()) else {
            continue;
        };
        out.clear();
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&packet);
        // Whatever else is queued goes out in the same write.
        while out.len() < 16 * 1024 {
            match rx.try_recv() {
                Ok(p) => {
                    if let Ok(l) = u16::try_from(p.len()) {
                        out.extend_from_slice(&l.to_be_bytes());
                        out.extend_from_slice(&p);
                    }
                }
                Err(_) => break,
            }
        }
        if wr.write_all(&out).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(packets: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for p in packets {
            v.extend_from_slice(&(p.len() as u16).to_be_bytes());
            v.extend_from_slice(p);
        }
        v
    }

    #[tokio::test]
    async fn frames_split_across_reads_come_out_whole() {
        let bytes = framed(&[b"stun", &[7u8; 1500], b""]);
        // One byte per read: every frame boundary falls mid-read somewhere.
        let mut rd = tokio_test_reader(bytes);
        let mut f = FrameReader::default();
        assert_eq!(
            f.next(&mut rd).await.unwrap(),
            Frame::Packet(b"stun".to_vec())
        );
        assert_eq!(
            f.next(&mut rd).await.unwrap(),
            Frame::Packet(vec![7u8; 1500])
        );
        assert_eq!(f.next(&mut rd).await.unwrap(), Frame::Packet(Vec::new()));
        assert_eq!(f.next(&mut rd).await.unwrap(), Frame::Eof);
    }

    #[tokio::test]
    async fn a_frame_over_1500_bytes_is_refused_before_its_body_is_read() {
        let mut bytes = 1501u16.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0u8; 10]);
        let mut rd = tokio_test_reader(bytes);
        let mut f = FrameReader::default();
        assert_eq!(f.next(&mut rd).await.unwrap(), Frame::Oversized);
    }

    /// A reader that hands out one byte per read.
    fn tokio_test_reader(bytes: Vec<u8>) -> impl tokio::io::AsyncRead + Unpin {
        struct OneByte(std::collections::VecDeque<u8>);
        impl tokio::io::AsyncRead for OneByte {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<io::Result<()>> {
                if let Some(b) = self.0.pop_front() {
                    buf.put_slice(&[b]);
                }
                std::task::Poll::Ready(Ok(()))
            }
        }
        OneByte(bytes.into())
    }

    async fn listener(limits: TcpLimits) -> (SocketAddr, Arc<TcpStats>, mpsc::Receiver<TcpEvent>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let stats = Arc::new(TcpStats::default());
        let rx = start(l, limits, stats.clone()).unwrap();
        (addr, stats, rx)
    }

    /// Reads until the server closes the connection; false if it stays open `within`.
    async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
        let mut b = [0u8; 64];
        matches!(
            tokio::time::timeout(within, s.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    #[tokio::test]
    async fn an_unproven_connection_is_closed_at_the_deadline_and_a_proven_one_stays() {
        let limits = TcpLimits {
            max_pending_per_ip: 4,
            stun_deadline: Duration::from_millis(300),
        };
        let (addr, stats, mut rx) = listener(limits).await;
        let mut conns = TcpConns::new(stats.clone());
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut good = TcpStream::connect(addr).await.unwrap();
        good.write_all(&framed(&[b"\x00\x01stun"])).await.unwrap();
        let good_local = good.local_addr().unwrap();
        // The shard's part: the good connection's packet was for a peer.
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await
            else {
                continue;
            };
            if let Some((remote, _, _)) = conns.on_event(ev)
                && remote == good_local
            {
                conns.prove(remote);
                break;
            }
        }
        assert!(closed_within(&mut silent, Duration::from_secs(2)).await);
        assert!(!closed_within(&mut good, Duration::from_millis(600)).await);
        assert_eq!(stats.unproven_closed.load(Ordering::Relaxed), 1);
        // Frames the server writes reach the client framed.
        assert!(conns.send(good_local, b"answer".to_vec()));
        let mut got = [0u8; 8];
        good.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"\x00\x06answer");
    }

    #[tokio::test]
    async fn one_address_gets_at_most_the_configured_unproven_connections() {
        let limits = TcpLimits {
            max_pending_per_ip: 3,
            stun_deadline: Duration::from_secs(5),
        };
        let (addr, stats, _rx) = listener(limits).await;
        let mut open = Vec::new();
        for _ in 0..3 {
            open.push(TcpStream::connect(addr).await.unwrap());
        }
        let mut extra = TcpStream::connect(addr).await.unwrap();
        assert!(closed_within(&mut extra, Duration::from_secs(2)).await);
        assert_eq!(stats.refused.load(Ordering::Relaxed), 1);
        for s in &mut open {
            assert!(!closed_within(s, Duration::from_millis(100)).await);
        }
    }

    #[tokio::test]
    async fn an_oversized_frame_ends_the_connection() {
        let limits = TcpLimits {
            max_pending_per_ip: 3,
            stun_deadline: Duration::from_secs(5),
        };
        let (addr, stats, _rx) = listener(limits).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut bytes = 1501u16.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[1u8; 1501]);
        s.write_all(&bytes).await.unwrap();
        assert!(closed_within(&mut s, Duration::from_secs(2)).await);
        assert_eq!(stats.oversized.load(Ordering::Relaxed), 1);
    }
}
