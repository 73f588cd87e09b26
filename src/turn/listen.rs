//! The TURN listeners: UDP and TCP on one port, TLS on its own. A stream carries STUN messages
//! and padded ChannelData back to back (RFC 8656 §12.5); its connection must allocate within a
//! deadline, and the connections from one IP that have not are bounded.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use super::Inner;
use super::allocation::{Leg, Sink};
use super::message;

/// Largest STUN or ChannelData frame accepted on a stream: a media packet with its headers.
const MAX_FRAME: usize = 4096;
/// Frames queued to a slow stream client before more are dropped.
const WRITE_QUEUE: usize = 256;

pub(super) struct Bound {
    pub udp: UdpSocket,
    pub tcp: TcpListener,
    pub udp_addr: SocketAddr,
    pub tcp_addr: SocketAddr,
}

/// UDP and TCP on the same port (a port 0 is picked for UDP first).
pub(super) async fn bind(at: SocketAddr) -> std::io::Result<Bound> {
    let mut last = None;
    for _ in 0..8 {
        let udp = UdpSocket::bind(at).await?;
        let udp_addr = udp.local_addr()?;
        match TcpListener::bind(udp_addr).await {
            Ok(tcp) => {
                let tcp_addr = tcp.local_addr()?;
                return Ok(Bound {
                    udp,
                    tcp,
                    udp_addr,
                    tcp_addr,
                });
            }
            Err(e) if at.port() == 0 => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no port")))
}

pub(super) fn spawn(inner: Arc<Inner>, bound: Bound) -> Vec<tokio::task::JoinHandle<()>> {
    let conns = Arc::new(Conns::default());
    vec![
        tokio::spawn(serve_udp(inner.clone(), Arc::new(bound.udp))),
        tokio::spawn(serve_tcp(inner, bound.tcp, None, conns)),
    ]
}

pub(super) async fn spawn_tls(
    inner: Arc<Inner>,
    at: SocketAddr,
    config: Arc<rustls::ServerConfig>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(at).await?;
    let addr = listener.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let conns = Arc::new(Conns::default());
    Ok((
        addr,
        tokio::spawn(serve_tcp(inner, listener, Some(acceptor), conns)),
    ))
}

async fn serve_udp(inner: Arc<Inner>, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; MAX_FRAME];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("TURN UDP: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let sink = Sink::Udp(socket.clone(), from);
        if let Some(reply) = inner.on_packet(Leg::Udp, from, &sink, &buf[..n]) {
            let _ = socket.try_send_to(&reply, from);
        }
    }
}

/// Open stream connections, in total and per IP before they allocate.
#[derive(Debug, Default)]
struct Conns {
    open: AtomicUsize,
    pending: DashMap<IpAddr, usize>,
}

/// A connection counted as open, and as pending until it allocates.
struct Slot {
    conns: Arc<Conns>,
    ip: IpAddr,
    pending: bool,
}

impl Slot {
    fn allocated(&mut self) {
        if std::mem::take(&mut self.pending) {
            self.conns.unpend(self.ip);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.allocated();
        self.conns.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Conns {
    fn admit(self: &Arc<Self>, ip: IpAddr, max_open: usize, max_pending: usize) -> Option<Slot> {
        let mut pending = self.pending.entry(ip).or_default();
        if *pending >= max_pending || self.open.load(Ordering::Relaxed) >= max_open {
            return None;
        }
        *pending += 1;
        self.open.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            conns: self.clone(),
            ip,
            pending: true,
        })
    }

    fn unpend(&self, ip: IpAddr) {
        self.pending.remove_if_mut(&ip, |_, n| {
            *n = n.saturating_sub(1);
            *n == 0
        });
    }
}

async fn serve_tcp(
    inner: Arc<Inner>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    conns: Arc<Conns>,
) {
    let leg = if tls.is_some() { Leg::Tls } else { Leg::Tcp };
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("TURN accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let limits = inner.limits;
        let Some(slot) = conns.admit(from.ip(), limits.max_connections, limits.max_pending_per_ip)
        else {
            inner
                .stats
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let inner = inner.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let deadline = limits.allocate_deadline;
            match tls {
                None => serve_stream(inner, leg, from, stream, slot).await,
                Some(acceptor) => {
                    match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => serve_stream(inner, leg, from, s, slot).await,
                        Ok(Err(e)) => tracing::debug!(%from, "TURN TLS handshake: {e}"),
                        Err(_) => tracing::debug!(%from, "TURN TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// One client connection: frames in, replies and relayed data out, the allocation released
/// when it closes.
async fn serve_stream<S>(inner: Arc<Inner>, leg: Leg, from: SocketAddr, stream: S, mut slot: Slot)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    let mut writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let sink = Sink::Stream(tx.clone());
    let deadline = tokio::time::Instant::now() + inner.limits.allocate_deadline;
    let mut buf: Vec<u8> = Vec::with_capacity(MAX_FRAME);
    let mut chunk = vec![0u8; MAX_FRAME];
    'conn: loop {
        let read = if slot.pending {
            match tokio::time::timeout_at(deadline, rd.read(&mut chunk)).await {
                Ok(r) => r,
                Err(_) => break,
            }
        } else {
            rd.read(&mut chunk).await
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(len) = message::frame_len(&buf) {
            if len > MAX_FRAME || message::kind(&buf) == message::Kind::Other {
                break 'conn;
            }
            if buf.len() < len {
                break;
            }
            let frame: Vec<u8> = buf.drain(..len).collect();
            if let Some(reply) = inner.on_packet(leg, from, &sink, &frame)
                && tx.try_send(reply).is_err()
            {
                break 'conn;
            }
            if slot.pending && inner.has_allocation(leg, from) {
                slot.allocated();
            }
        }
    }
    inner.release(leg, from);
    drop(sink);
    drop(tx);
    // The relay task may hold a sender a moment longer: give the last replies a second.
    if tokio::time::timeout(std::time::Duration::from_secs(1), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}
