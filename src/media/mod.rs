//! The media plane at the application boundary: shard threads, the room → shard directory, and
//! the registry through which shards reach the signaling sessions of their peers.
//!
//! Each shard is one OS thread owning one `ketang_sfu::Sfu` and one UDP socket; the rest of the
//! server talks to it only through [`ShardCommand`]s. Locks (`DashMap`) live here, never on the
//! packet path inside a shard.

mod budget;
mod people;
pub mod report;
mod shard;
mod signal_queue;
mod tcp;
mod udp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use ketang_sfu::{
    Answer, FloorCommand, FloorContext, FloorOutcome, JoinRequest, LeaveReason, PeerEvent, PeerId,
    RoomId, RoomSnapshot, SfuConfig, SfuError, TrackSource,
};
use tokio::sync::{mpsc, oneshot};

pub use budget::{BudgetSplit, Budgets, CapsChange, ClassroomLink, STAGE_WEIGHT};
pub use people::{Identity, People, Removed};
pub use shard::{PUBLISH_EVERY, Published, ShardStats};
pub use signal_queue::{PEER_QUEUE, PeerReceiver, PeerSender, peer_channel};
pub use tcp::{STUN_DEADLINE as TCP_STUN_DEADLINE, TcpLimits, TcpStats};

/// What a shard tells a peer's session.
#[derive(Debug)]
pub enum PeerSignal {
    /// An event for the client.
    Event(PeerEvent),
    /// The peer is gone from its shard; the session should end.
    Left(LeaveReason),
    /// The application ends the session (a newer session replaced it, the server stops...).
    Close(crate::room_signal::ByeReason),
    /// A message from the application for every client of a room (e.g. the lesson ends soon).
    Notice(crate::room_signal::Notice),
}

/// Where shards deliver recording media: one bounded queue to the recording writer.
pub type RecordSink = mpsc::Sender<ketang_sfu::RecordEvent>;

/// Where shards deliver peer signals: one channel per live peer.
pub type PeerRegistry = DashMap<PeerId, PeerSender>;

/// A request to a shard. Replies come on the enclosed one-shot channel.
#[derive(Debug)]
pub enum ShardCommand {
    Join {
        req: Box<JoinRequest>,
        reply: oneshot::Sender<Result<Answer, MediaError>>,
    },
    Offer {
        peer: PeerId,
        sdp: String,
        sources: Vec<(String, TrackSource)>,
        reply: oneshot::Sender<Result<Answer, MediaError>>,
    },
    Answer {
        peer: PeerId,
        sdp: String,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    /// A reconnecting client replaces its peer's connection.
    Rejoin {
        peer: PeerId,
        sdp: String,
        sources: Vec<(String, TrackSource)>,
        reply: oneshot::Sender<Result<Answer, MediaError>>,
    },
    /// A new signaling session takes over a peer.
    Attach {
        peer: PeerId,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    /// The peer's signaling session is gone; keep the peer for the grace period.
    Detach {
        peer: PeerId,
    },
    Floor {
        peer: PeerId,
        cmd: FloorCommand,
        ctx: FloorContext,
        reply: oneshot::Sender<Result<FloorOutcome, MediaError>>,
    },
    Leave {
        peer: PeerId,
        reason: LeaveReason,
    },
    CloseRoom {
        room: RoomId,
        reason: LeaveReason,
    },
    /// Start or stop recording a room; replies whether the room exists.
    SetRecording {
        room: RoomId,
        on: bool,
        reply: oneshot::Sender<bool>,
    },
    Snapshot {
        room: RoomId,
        reply: oneshot::Sender<Option<RoomSnapshot>>,
    },
    /// New limits for one peer (classroom link, share of its school budget).
    SetCaps {
        peer: PeerId,
        caps: ketang_sfu::PeerCaps,
    },
    /// The bandwidth picture of one peer, or of every peer of a room.
    Bandwidth {
        room: RoomId,
        peer: Option<PeerId>,
        reply: oneshot::Sender<Vec<ketang_sfu::PeerBandwidth>>,
    },
    /// Deliver a notice to every peer of the room.
    Notify {
        room: RoomId,
        notice: crate::room_signal::Notice,
    },
    Stop,
}

/// Why a media-plane request failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The SFU refused the request.
    #[error(transparent)]
    Sfu(#[from] SfuError),
    /// The shard thread is gone (shutdown or a crash).
    #[error("media shard unavailable")]
    ShardGone,
    /// The room was placed on another shard meanwhile; look it up again.
    #[error("room moved to another shard")]
    RoomMoved,
    /// The room's shard holds as many peers as it is allowed (`media.max_peers_per_shard`).
    #[error("the server is full; try again shortly")]
    Full,
}

/// One running shard as the rest of the server sees it.
#[derive(Debug)]
pub struct ShardHandle {
    pub index: usize,
    /// The address the shard's socket is bound to.
    pub local_addr: SocketAddr,
    /// Its ICE-TCP listener's address, when ICE over TCP is on.
    pub tcp_addr: Option<SocketAddr>,
    tx: mpsc::UnboundedSender<ShardCommand>,
    /// Peers on the shard, for placing new rooms.
    load: Arc<AtomicUsize>,
    pub stats: Arc<ShardStats>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// ICE over TCP for the shards.
#[derive(Debug, Clone)]
pub struct TcpSettings {
    /// Shard 0's listener (shard `i` on `port + i`); `None`: beside each UDP socket.
    pub listen: Option<SocketAddr>,
    /// IPs announced as passive TCP candidates.
    pub advertise: Vec<std::net::IpAddr>,
    pub limits: TcpLimits,
}

/// A shard's sockets: UDP, and TCP when on.
fn bind_shard(
    settings: &MediaSettings,
    index: usize,
) -> std::io::Result<(std::net::UdpSocket, Option<std::net::TcpListener>)> {
    let offset = |port: u16| match port {
        0 => 0,
        p => p + index as u16,
    };
    let bind = SocketAddr::new(settings.listen.ip(), offset(settings.listen.port()));
    let udp_err = |e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("cannot bind media UDP {bind}: {e}"))
    };
    let Some(tcp) = &settings.tcp else {
        return Ok((std::net::UdpSocket::bind(bind).map_err(udp_err)?, None));
    };
    if let Some(listen) = tcp.listen {
        let udp = std::net::UdpSocket::bind(bind).map_err(udp_err)?;
        let at = SocketAddr::new(listen.ip(), offset(listen.port()));
        let l = std::net::TcpListener::bind(at).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot bind media TCP {at}: {e}"))
        })?;
        return Ok((udp, Some(l)));
    }
    // The TCP listener takes the UDP socket's port; a port the system picked may be taken on
    // TCP, so pick again a few times.
    let mut last_err = None;
    for _ in 0..8 {
        let udp = std::net::UdpSocket::bind(bind).map_err(udp_err)?;
        let at = udp.local_addr()?;
        match std::net::TcpListener::bind(at) {
            Ok(l) => return Ok((udp, Some(l))),
            Err(e) if bind.port() == 0 => last_err = Some(e),
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot bind media TCP {at} (set media.tcp_listen or media.tcp = false): {e}"
                    ),
                ));
            }
        }
    }
    let e = last_err.unwrap_or_else(|| std::io::Error::other("no port"));
    Err(std::io::Error::new(
        e.kind(),
        format!("cannot bind media TCP beside UDP {bind}: {e}"),
    ))
}

/// All shards, and which room lives where.
pub struct MediaPlane {
    shards: Vec<ShardHandle>,
    rooms: Arc<DashMap<RoomId, usize>>,
    pub registry: Arc<PeerRegistry>,
    /// Which link each peer joined with, and removed links.
    pub people: Arc<People>,
    /// Classroom links and school budgets → peer caps.
    pub budgets: Arc<Budgets>,
    /// Most peers a shard takes (`None`: no limit).
    max_peers_per_shard: Option<usize>,
}

/// Settings for starting the media plane.
pub struct MediaSettings {
    /// Address of shard 0; with port 0 each shard picks a free port.
    pub listen: SocketAddr,
    pub shards: usize,
    /// IPs announced as host candidates.
    pub advertise: Vec<std::net::IpAddr>,
    pub connect_timeout: std::time::Duration,
    /// Who gets send-side bandwidth estimation.
    pub bwe_policy: ketang_sfu::BwePolicy,
    /// Joins beyond this many peers on a shard are refused (0: no limit).
    pub max_peers_per_shard: usize,
    /// Most audio and video m-lines in one peer's offer.
    pub max_tracks_per_peer: usize,
    /// ICE over TCP; `None`: off.
    pub tcp: Option<TcpSettings>,
    /// The recording writer's queue, if recording is enabled.
    pub record: Option<RecordSink>,
    /// The attendance task's queue (`None`: attendance is not recorded).
    pub attendance: Option<crate::attendance::AttendanceSink>,
    /// The TURN server's relay addresses (empty when it is off).
    pub relays: Arc<crate::turn::Relays>,
}

impl MediaPlane {
    /// Binds every shard's socket and starts the shard threads.
    pub fn start(settings: &MediaSettings) -> std::io::Result<MediaPlane> {
        let registry: Arc<PeerRegistry> = Arc::new(DashMap::new());
        let people = Arc::new(People::default());
        let rooms: Arc<DashMap<RoomId, usize>> = Arc::new(DashMap::new());
        let budgets = Arc::new(Budgets::default());
        let mut shards = Vec::new();
        for index in 0..settings.shards.max(1) {
            let (socket, tcp_listener) = bind_shard(settings, index)?;
            let local_addr = socket.local_addr()?;
            let candidates = settings
                .advertise
                .iter()
                .map(|ip| SocketAddr::new(*ip, local_addr.port()))
                .collect();
            let mut sfu_config = SfuConfig::new(candidates);
            let tcp_addr = match &tcp_listener {
                Some(l) => Some(l.local_addr()?),
                None => None,
            };
            if let (Some(at), Some(tcp)) = (tcp_addr, &settings.tcp) {
                sfu_config.tcp_candidates = tcp
                    .advertise
                    .iter()
                    .map(|ip| SocketAddr::new(*ip, at.port()))
                    .collect();
            }
            // Disjoint track id ranges per shard keep ids unique in the process.
            sfu_config.track_id_base = (index as u64) << 40 | 1;
            sfu_config.connect_timeout = settings.connect_timeout;
            sfu_config.bwe_policy = settings.bwe_policy;
            sfu_config.max_tracks_per_peer = settings.max_tracks_per_peer;
            let (tx, rx) = mpsc::unbounded_channel();
            let load = Arc::new(AtomicUsize::new(0));
            let stats = Arc::new(ShardStats::default());
            let ctx = shard::ShardContext {
                index,
                socket,
                tcp: tcp_listener.zip(settings.tcp.as_ref().map(|t| t.limits)),
                commands: rx,
                registry: registry.clone(),
                people: people.clone(),
                budgets: budgets.clone(),
                rooms: rooms.clone(),
                load: load.clone(),
                stats: stats.clone(),
                record: settings.record.clone(),
                attendance: settings.attendance.clone(),
                relays: settings.relays.clone(),
            };
            let thread = shard::spawn(ctx, sfu_config)?;
            match tcp_addr {
                Some(tcp) => {
                    tracing::info!(shard = index, %local_addr, %tcp, "media shard started")
                }
                None => tracing::info!(shard = index, %local_addr, "media shard started"),
            }
            shards.push(ShardHandle {
                index,
                local_addr,
                tcp_addr,
                tx,
                load,
                stats,
                thread: std::sync::Mutex::new(Some(thread)),
            });
        }
        budgets.connect(shards.iter().map(|s| s.tx.clone()).collect(), rooms.clone());
        Ok(MediaPlane {
            shards,
            rooms,
            registry,
            people,
            budgets,
            max_peers_per_shard: (settings.max_peers_per_shard > 0)
                .then_some(settings.max_peers_per_shard),
        })
    }

    pub fn shards(&self) -> &[ShardHandle] {
        &self.shards
    }

    /// The shard of a room, placing a new room on the least loaded shard.
    pub fn shard_for(&self, room: &RoomId) -> &ShardHandle {
        let index = *self.rooms.entry(room.clone()).or_insert_with(|| {
            self.shards
                .iter()
                .min_by_key(|s| s.load.load(Ordering::Relaxed))
                .map(|s| s.index)
                .unwrap_or(0)
        });
        &self.shards[index.min(self.shards.len() - 1)]
    }

    /// Joins a peer to its room's shard; returns the shard index with the answer.
    ///
    /// A room closing on one shard while a peer joins it can race with its placement; the
    /// shard refuses a join for a room it does not own, and the join is placed again.
    pub async fn join(&self, req: JoinRequest) -> Result<(usize, Answer), MediaError> {
        if self.refuses(&req.room) {
            return Err(MediaError::Full);
        }
        for _ in 0..3 {
            let shard = self.shard_for(&req.room);
            match shard.join_once(req.clone()).await {
                Err(MediaError::RoomMoved) => continue,
                r => return r.map(|a| (shard.index, a)),
            }
        }
        Err(MediaError::RoomMoved)
    }

    /// Whether a join to `room` would overload its shard (the room's, or for a new room the
    /// least-loaded one): admitted rooms keep their quality, the newcomer is told to come back.
    fn refuses(&self, room: &RoomId) -> bool {
        let Some(limit) = self.max_peers_per_shard else {
            return false;
        };
        let load = match self.rooms.get(room) {
            Some(index) => self.shards.get(*index).map(|s| s.load()),
            None => self.shards.iter().map(|s| s.load()).min(),
        };
        load.is_some_and(|l| l >= limit)
    }

    /// Whether no shard takes another room: a load balancer should send joins elsewhere.
    pub fn is_full(&self) -> bool {
        let Some(limit) = self.max_peers_per_shard else {
            return false;
        };
        self.shards.iter().all(|s| s.load() >= limit)
    }

    /// The shard of a room if it is live.
    pub fn shard_of(&self, room: &RoomId) -> Option<&ShardHandle> {
        let index = *self.rooms.get(room)?;
        self.shards.get(index)
    }

    /// Tells every client of a live room; false if the room is not live.
    pub fn notify_room(&self, room: &RoomId, notice: crate::room_signal::Notice) -> bool {
        match self.shard_of(room) {
            Some(s) => s
                .send(ShardCommand::Notify {
                    room: room.clone(),
                    notice,
                })
                .is_ok(),
            None => false,
        }
    }

    /// Closes a live room: every peer gets `bye` with `reason`. False if the room is not live.
    pub fn close_room(&self, room: &RoomId, reason: LeaveReason) -> bool {
        match self.shard_of(room) {
            Some(s) => {
                s.close_room(room.clone(), reason);
                true
            }
            None => false,
        }
    }

    /// Starts or stops recording a live room; false if the room is not live.
    pub async fn set_recording(&self, room: &RoomId, on: bool) -> bool {
        let Some(s) = self.shard_of(room) else {
            return false;
        };
        s.request(|reply| ShardCommand::SetRecording {
            room: room.clone(),
            on,
            reply,
        })
        .await
        .unwrap_or(false)
    }

    /// Removes one peer from a live room (its client gets `bye` with `reason`).
    pub fn remove_peer(&self, room: &RoomId, peer: PeerId, reason: LeaveReason) -> bool {
        match self.shard_of(room) {
            Some(s) => {
                s.leave(peer, reason);
                true
            }
            None => false,
        }
    }

    /// Snapshots of every live room.
    pub async fn snapshots(&self) -> Vec<RoomSnapshot> {
        let mut out = Vec::new();
        for room in self.rooms() {
            if let Some(s) = self.shard_of(&room)
                && let Ok(Some(snap)) = s.snapshot(room).await
            {
                out.push(snap);
            }
        }
        out
    }

    /// The bandwidth picture of a live room's peers (`peer`: only that one); empty if the
    /// room is not live.
    pub async fn bandwidth(
        &self,
        room: &RoomId,
        peer: Option<PeerId>,
    ) -> Vec<ketang_sfu::PeerBandwidth> {
        let Some(s) = self.shard_of(room) else {
            return Vec::new();
        };
        s.request(|reply| ShardCommand::Bandwidth {
            room: room.clone(),
            peer,
            reply,
        })
        .await
        .unwrap_or_default()
    }

    /// Live rooms.
    pub fn rooms(&self) -> Vec<RoomId> {
        self.rooms.iter().map(|e| e.key().clone()).collect()
    }

    /// Stops every shard thread and waits for them.
    pub fn stop(&self) {
        for s in &self.shards {
            let _ = s.tx.send(ShardCommand::Stop);
        }
        for s in &self.shards {
            let handle = s.thread.lock().ok().and_then(|mut t| t.take());
            if let Some(h) = handle {
                let _ = h.join();
            }
        }
    }
}

impl ShardHandle {
    fn send(&self, cmd: ShardCommand) -> Result<(), MediaError> {
        self.tx.send(cmd).map_err(|_| MediaError::ShardGone)
    }

    /// Sends the command `make` builds around a reply channel and waits for the reply. The one
    /// shape of every request to a shard: a stopped shard is `ShardGone`, whether it was gone
    /// before the request or went away before replying.
    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> ShardCommand,
    ) -> Result<T, MediaError> {
        let (reply, rx) = oneshot::channel();
        self.send(make(reply))?;
        rx.await.map_err(|_| MediaError::ShardGone)
    }

    async fn join_once(&self, req: JoinRequest) -> Result<Answer, MediaError> {
        let req = Box::new(req);
        self.request(|reply| ShardCommand::Join { req, reply })
            .await?
    }

    pub async fn offer(
        &self,
        peer: PeerId,
        sdp: String,
        sources: Vec<(String, TrackSource)>,
    ) -> Result<Answer, MediaError> {
        self.request(|reply| ShardCommand::Offer {
            peer,
            sdp,
            sources,
            reply,
        })
        .await?
    }

    pub async fn answer(&self, peer: PeerId, sdp: String) -> Result<(), MediaError> {
        self.request(|reply| ShardCommand::Answer { peer, sdp, reply })
            .await?
    }

    pub async fn rejoin(
        &self,
        peer: PeerId,
        sdp: String,
        sources: Vec<(String, TrackSource)>,
    ) -> Result<Answer, MediaError> {
        self.request(|reply| ShardCommand::Rejoin {
            peer,
            sdp,
            sources,
            reply,
        })
        .await?
    }

    pub async fn attach(&self, peer: PeerId) -> Result<(), MediaError> {
        self.request(|reply| ShardCommand::Attach { peer, reply })
            .await?
    }

    pub fn detach(&self, peer: PeerId) {
        let _ = self.send(ShardCommand::Detach { peer });
    }

    pub async fn floor(
        &self,
        peer: PeerId,
        cmd: FloorCommand,
        ctx: FloorContext,
    ) -> Result<FloorOutcome, MediaError> {
        self.request(|reply| ShardCommand::Floor {
            peer,
            cmd,
            ctx,
            reply,
        })
        .await?
    }

    pub fn leave(&self, peer: PeerId, reason: LeaveReason) {
        let _ = self.send(ShardCommand::Leave { peer, reason });
    }

    pub fn close_room(&self, room: RoomId, reason: LeaveReason) {
        let _ = self.send(ShardCommand::CloseRoom { room, reason });
    }

    pub async fn snapshot(&self, room: RoomId) -> Result<Option<RoomSnapshot>, MediaError> {
        self.request(|reply| ShardCommand::Snapshot { room, reply })
            .await
    }

    /// Peers on the shard now.
    pub fn load(&self) -> usize {
        self.load.load(Ordering::Relaxed)
    }

    /// Whether the shard thread runs (it was not stopped and did not die).
    pub fn is_running(&self) -> bool {
        self.thread
            .lock()
            .map(|t| t.as_ref().is_some_and(|h| !h.is_finished()))
            .unwrap_or(false)
    }
}
