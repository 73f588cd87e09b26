//! One shard thread: the IO loop around a sans-IO `Sfu`.
//!
//! The thread runs a single-threaded tokio runtime and loops: drain the SFU (send datagrams,
//! route events), then wait for one of a datagram, a command, or the SFU's deadline. Nothing
//! else touches the `Sfu`, so it needs no lock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use dashmap::DashMap;
use ketang_sfu::{LeaveReason, RoomId, Sfu, SfuConfig, SfuEvent, SfuOutput, Transport};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::tcp::{self, TcpConns, TcpEvent, TcpLimits};
use super::udp;
use super::{MediaError, PeerRegistry, PeerSignal, People, RecordSink, ShardCommand};
use crate::attendance::{AttendanceSink, Observed};

/// Datagrams read per wake-up before the SFU's output is flushed.
const RECV_BATCH: usize = 64;

/// Counters of one shard, read by metrics and health endpoints.
#[derive(Debug, Default)]
pub struct ShardStats {
    pub datagrams_in: AtomicU64,
    pub datagrams_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub send_errors: AtomicU64,
    pub rooms: AtomicUsize,
    /// The ICE-TCP side's counters.
    pub tcp: Arc<tcp::TcpStats>,
    /// Recording packets dropped because the writer fell behind (a slow disk never slows
    /// forwarding: the queue to the writer is bounded and never waited on).
    pub record_dropped: AtomicU64,
    /// The SFU's counters and holdings, copied out by the shard thread every
    /// `PUBLISH_EVERY` (`crate::metrics` reads it; the lock is never taken per packet).
    pub published: std::sync::Mutex<Option<Published>>,
}

/// A copy of a shard's SFU statistics and when it was taken: a shard whose copy is old is
/// stuck (`/readyz`).
#[derive(Debug, Clone)]
pub struct Published {
    pub at: Instant,
    pub sfu: ketang_sfu::SfuSnapshot,
}

/// How often the shard publishes its statistics.
pub const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

fn publish(sfu: &mut Sfu, ctx: &ShardContext, now: Instant) {
    let snapshot = sfu.stats_snapshot(now);
    if let Ok(mut p) = ctx.stats.published.lock() {
        *p = Some(Published {
            at: now,
            sfu: snapshot,
        });
    }
}

pub(super) struct ShardContext {
    pub index: usize,
    pub socket: std::net::UdpSocket,
    /// The ICE-TCP listener and its bounds, when ICE over TCP is on.
    pub tcp: Option<(std::net::TcpListener, TcpLimits)>,
    pub commands: mpsc::UnboundedReceiver<ShardCommand>,
    pub registry: Arc<PeerRegistry>,
    pub people: Arc<People>,
    pub budgets: Arc<super::Budgets>,
    pub rooms: Arc<DashMap<RoomId, usize>>,
    pub load: Arc<AtomicUsize>,
    pub stats: Arc<ShardStats>,
    pub record: Option<RecordSink>,
    /// Where attendance observations go (lesson rooms only; `None`: not recorded).
    pub attendance: Option<AttendanceSink>,
    /// The TURN server's relay addresses, to tell relayed peers apart.
    pub relays: Arc<crate::turn::Relays>,
}

pub(super) fn spawn(
    ctx: ShardContext,
    config: SfuConfig,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(format!("ketang-shard-{}", ctx.index))
        .spawn(move || {
            let index = ctx.index;
            if let Err(e) = rt.block_on(run(ctx, config)) {
                tracing::error!(shard = index, "media shard stopped: {e}");
            }
        })
}

async fn run(mut ctx: ShardContext, config: SfuConfig) -> Result<(), String> {
    let mut sfu = Sfu::new(config, Instant::now()).map_err(|e| e.to_string())?;
    ctx.socket
        .set_nonblocking(true)
        .map_err(|e| e.to_string())?;
    let socket = UdpSocket::from_std(ctx.socket.try_clone().map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    if let Err(e) = udp::enable_pktinfo(&ctx.socket) {
        // Then a wildcard-bound shard only answers ICE for the first advertised address.
        tracing::warn!(shard = ctx.index, "cannot read datagram destinations: {e}");
    }
    let mut tcp_rx = match ctx.tcp.take() {
        Some((listener, limits)) => {
            Some(tcp::start(listener, limits, ctx.stats.tcp.clone()).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let mut conns = TcpConns::new(ctx.stats.tcp.clone());
    let mut batch = udp::RecvBatch::default();
    let mut out: Vec<(SocketAddr, Vec<u8>)> = Vec::with_capacity(udp::BATCH);
    let mut next_publish = Instant::now();
    loop {
        let mut deadline = flush(&mut sfu, &socket, &conns, &ctx, &mut out).await;
        let now = Instant::now();
        if now >= next_publish {
            publish(&mut sfu, &ctx, now);
            next_publish = now + PUBLISH_EVERY;
        }
        // Idle shards wake for it too, so that a scrape never sees a stale copy.
        deadline = deadline.min(next_publish);
        // Under a steady stream of datagrams the timer branch below could lose every race;
        // honour a passed deadline before waiting again.
        if deadline <= Instant::now() {
            sfu.handle_timeout(Instant::now());
            deadline = flush(&mut sfu, &socket, &conns, &ctx, &mut out).await;
        }
        tokio::select! {
            cmd = ctx.commands.recv() => match cmd {
                None | Some(ShardCommand::Stop) => break,
                Some(cmd) => command(&mut sfu, cmd, &ctx),
            },
            r = socket.readable() => {
                if let Err(e) = r {
                    tracing::debug!(shard = ctx.index, "socket not readable: {e}");
                }
                // Up to RECV_BATCH datagrams before the output is flushed.
                for _ in 0..RECV_BATCH / udp::BATCH {
                    let n = match udp::try_recv_batch(&socket, &mut batch) {
                        Ok(n) => n,
                        Err(e) => {
                            tracing::debug!(shard = ctx.index, "recv failed: {e}");
                            0
                        }
                    };
                    for i in 0..n {
                        if let Some((from, data)) = batch.get(i) {
                            // ICE needs the address the datagram was sent to, which a
                            // wildcard-bound socket only knows from IP_PKTINFO.
                            let to = batch
                                .local_ip(i)
                                .map_or(local, |ip| SocketAddr::new(ip, local.port()));
                            datagram(&mut sfu, &ctx, from, to, data);
                        }
                    }
                    if n < udp::BATCH {
                        break;
                    }
                }
            }
            ev = next_tcp(&mut tcp_rx) => match ev {
                Some(ev) => {
                    if let Some((remote, local, data)) = conns.on_event(ev)
                        && sfu.handle_packet(Instant::now(), Transport::Tcp, remote, local, &data)
                    {
                        conns.prove(remote);
                    }
                }
                None => tcp_rx = None,
            },
            _ = tokio::time::sleep_until(deadline.into()) => sfu.handle_timeout(Instant::now()),
        }
    }
    // Tell every remaining session that the server is going away: the shard's rooms close
    // (signaling sessions get `bye`) after each connection's DTLS close alert, which is all a
    // WHEP player or WHIP encoder hears.
    sfu.shutdown(Instant::now(), LeaveReason::Shutdown);
    flush(&mut sfu, &socket, &conns, &ctx, &mut out).await;
    Ok(())
}

/// The next event of the TCP side; never, when ICE over TCP is off.
async fn next_tcp(rx: &mut Option<tokio::sync::mpsc::Receiver<TcpEvent>>) -> Option<TcpEvent> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn datagram(sfu: &mut Sfu, ctx: &ShardContext, from: SocketAddr, local: SocketAddr, data: &[u8]) {
    ctx.stats.datagrams_in.fetch_add(1, Ordering::Relaxed);
    ctx.stats
        .bytes_in
        .fetch_add(data.len() as u64, Ordering::Relaxed);
    // TURN relay sockets live on loopback, where real clients do not: a datagram from anywhere
    // else costs one comparison more than before.
    let transport = if from.ip().is_loopback() {
        ctx.relays.transport_of(from)
    } else {
        Transport::Udp
    };
    sfu.handle_packet(Instant::now(), transport, from, local, data);
}

/// Sends and routes everything the SFU has queued; returns its next deadline. Datagrams go
/// out in batches of `udp::BATCH`.
async fn flush(
    sfu: &mut Sfu,
    socket: &UdpSocket,
    conns: &TcpConns,
    ctx: &ShardContext,
    out: &mut Vec<(SocketAddr, Vec<u8>)>,
) -> Instant {
    loop {
        if out.len() >= udp::BATCH {
            send(socket, ctx, out).await;
        }
        match sfu.poll_output() {
            SfuOutput::Timeout(t) => {
                send(socket, ctx, out).await;
                return t;
            }
            SfuOutput::Transmit(t) => {
                if t.transport.is_udp() {
                    out.push((t.destination, t.contents));
                } else {
                    conns.send(t.destination, t.contents);
                }
            }
            SfuOutput::Event(e) => route(e, ctx),
            SfuOutput::Record(e) => {
                if let Some(tx) = &ctx.record
                    && let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) = tx.try_send(e)
                {
                    ctx.stats.record_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

async fn send(socket: &UdpSocket, ctx: &ShardContext, out: &mut Vec<(SocketAddr, Vec<u8>)>) {
    if out.is_empty() {
        return;
    }
    let bytes: usize = out.iter().map(|(_, d)| d.len()).sum();
    let failed = udp::send_all(socket, out).await;
    ctx.stats
        .datagrams_out
        .fetch_add((out.len() - failed) as u64, Ordering::Relaxed);
    ctx.stats
        .bytes_out
        .fetch_add(bytes as u64, Ordering::Relaxed);
    ctx.stats
        .send_errors
        .fetch_add(failed as u64, Ordering::Relaxed);
    out.clear();
}

fn route(e: SfuEvent, ctx: &ShardContext) {
    match e {
        SfuEvent::ToPeer { peer, event } => {
            if let ketang_sfu::PeerEvent::RoomState(state) = &event {
                ctx.budgets.stage(peer, state.stage.contains(&peer));
            }
            if let Some(tx) = ctx.registry.get(&peer) {
                let _ = tx.send(PeerSignal::Event(event));
            }
        }
        SfuEvent::PeerLeft { peer, reason, room } => {
            ctx.load.fetch_sub(1, Ordering::Relaxed);
            ctx.people.left(peer);
            ctx.budgets.left(peer);
            if let Some(tx) = ctx.registry.get(&peer) {
                let _ = tx.send(PeerSignal::Left(reason));
            }
            if let Some(a) = &ctx.attendance {
                a.offer(&room, Observed::Left { peer, reason });
            }
        }
        SfuEvent::RoomClosed { room } => {
            ctx.rooms.remove_if(&room, |_, owner| *owner == ctx.index);
            ctx.stats.rooms.fetch_sub(1, Ordering::Relaxed);
            if let Some(a) = &ctx.attendance {
                a.offer(&room, Observed::RoomClosed);
            }
        }
        // Joins, losses and turns: rare next to packets; the sink never blocks.
        SfuEvent::Activity {
            room,
            peer,
            activity,
        } => {
            if let Some(a) = &ctx.attendance {
                a.offer(&room, Observed::Activity { peer, activity });
            }
        }
        _ => {}
    }
}

fn command(sfu: &mut Sfu, cmd: ShardCommand, ctx: &ShardContext) {
    let now = Instant::now();
    match cmd {
        ShardCommand::Join { req, reply } => {
            let owner = *ctx.rooms.entry(req.room.clone()).or_insert(ctx.index);
            if owner != ctx.index {
                let _ = reply.send(Err(MediaError::RoomMoved));
                return;
            }
            let room = req.room.clone();
            let new_room = sfu.room_snapshot(&room).is_none();
            let result = sfu.join(now, *req).map_err(MediaError::from);
            match &result {
                Ok(_) => {
                    ctx.load.fetch_add(1, Ordering::Relaxed);
                    if new_room {
                        ctx.stats.rooms.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(_) if new_room => {
                    ctx.rooms.remove_if(&room, |_, owner| *owner == ctx.index);
                }
                Err(_) => {}
            }
            let _ = reply.send(result);
        }
        ShardCommand::Offer {
            peer,
            sdp,
            sources,
            reply,
        } => {
            let r = sfu.client_offer(now, peer, &sdp, &sources);
            let _ = reply.send(r.map_err(MediaError::from));
        }
        ShardCommand::Answer { peer, sdp, reply } => {
            let r = sfu.client_answer(now, peer, &sdp);
            let _ = reply.send(r.map_err(MediaError::from));
        }
        ShardCommand::Rejoin {
            peer,
            sdp,
            sources,
            reply,
        } => {
            let r = sfu.rejoin(now, peer, &sdp, &sources);
            let _ = reply.send(r.map_err(MediaError::from));
        }
        ShardCommand::Attach { peer, reply } => {
            let _ = reply.send(sfu.attach(now, peer).map_err(MediaError::from));
        }
        ShardCommand::Detach { peer } => sfu.detach(now, peer),
        ShardCommand::Floor {
            peer,
            cmd,
            ctx: fctx,
            reply,
        } => {
            let r = sfu.floor(now, peer, cmd, fctx);
            let _ = reply.send(r.map_err(MediaError::from));
        }
        ShardCommand::Leave { peer, reason } => {
            sfu.leave(now, peer, reason);
        }
        ShardCommand::CloseRoom { room, reason } => sfu.close_room(now, &room, reason),
        ShardCommand::SetRecording { room, on, reply } => {
            let _ = reply.send(sfu.set_recording(now, &room, on));
        }
        ShardCommand::SetCaps { peer, caps } => {
            sfu.set_caps(now, peer, caps);
        }
        ShardCommand::Bandwidth { room, peer, reply } => {
            let _ = reply.send(sfu.room_bandwidth(&room, peer));
        }
        ShardCommand::Snapshot { room, reply } => {
            let _ = reply.send(sfu.room_snapshot(&room));
        }
        ShardCommand::Notify { room, notice } => {
            let peers = sfu
                .room_snapshot(&room)
                .map(|s| s.participants)
                .unwrap_or_default();
            for p in peers {
                if let Some(tx) = ctx.registry.get(&p.peer_id) {
                    let _ = tx.send(PeerSignal::Notice(notice.clone()));
                }
            }
        }
        ShardCommand::Stop => {}
    }
}
