//! Starting and stopping the whole server: secret, media shards, HTTP listener.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::auth::{TokenAuthority, load_or_create_secret};
use crate::config::Config;
use crate::db::Db;
use crate::media::{MediaPlane, MediaSettings, PeerSignal};
use crate::shutdown::{Budget, HARD_DEADLINE, ORDERLY_BUDGET};
use crate::signaling::protocol::ByeReason;
use crate::state::AppState;

/// Why the server stopped with an error.
#[derive(Debug)]
pub struct ServerError(pub String);

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServerError {}

/// A started server.
pub struct RunningServer {
    /// Where HTTP is served (the bound address, also when configured with port 0).
    pub http_addr: SocketAddr,
    /// Where RTMP pushes are taken, if `[rtmp] enabled`.
    pub rtmp_addr: Option<SocketAddr>,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), std::io::Error>>,
    scheduler: tokio::task::JoinHandle<()>,
    audit_sealer: tokio::task::JoinHandle<()>,
    /// Reloads the TLS certificate when its files change.
    cert_watch: Option<tokio::task::JoinHandle<()>>,
    attendance: crate::attendance::AttendanceTask,
}

/// Binds everything and starts serving in the background.
pub async fn start(config: Config) -> Result<RunningServer, ServerError> {
    // A certificate that cannot be used stops the start before anything is bound.
    let certs = open_certificates(&config)?;
    let data = &config.storage.data_dir;
    crate::private::restrict(&[
        data,
        &config.recording.recordings_dir(data),
        &config.recording.library_dir(data),
    ]);
    let secret = load_or_create_secret(config.auth.secret.as_deref(), &config.storage.data_dir)
        .map_err(|e| ServerError(format!("auth secret: {e}")))?;
    let tokens = TokenAuthority::new(&secret, config.auth.clock_skew);
    // The schedule comes before the media plane: a database that cannot be opened or migrated
    // stops the start with nothing else bound yet.
    let db = Db::open(&config)
        .await
        .map_err(|e| ServerError(e.to_string()))?;
    announce_bootstrap_key(&db, &config).await?;
    // Before the media plane: recordings a crash left are repaired before the recorder starts
    // writing into their directory, and the recorder's queue is the shards' record sink.
    let library = {
        let (config, secret) = (config.clone(), secret.clone());
        tokio::task::spawn_blocking(move || crate::library::Library::start(&config, &secret))
            .await
            .map_err(|e| ServerError(e.to_string()))?
            .map_err(|e| ServerError(format!("library: {e}")))?
    };
    // The shards hold the only senders: when they stop, the attendance task writes its last
    // records and ends.
    let clock = crate::time::Clock::default();
    let (attendance_sink, attendance_rx) =
        crate::attendance::AttendanceSink::channel(crate::attendance::QUEUE, clock.clone());
    let attendance = crate::attendance::spawn(db.clone(), attendance_rx, clock.clone());
    let attendance_dropped = attendance_sink.dropped_counter();
    let settings = media_settings(&config, library.sink.clone(), attendance_sink);
    let media = MediaPlane::start(&settings).map_err(|e| ServerError(e.to_string()))?;
    let turn = start_turn(
        &config,
        &secret,
        &media,
        settings.relays.clone(),
        certs.as_ref(),
    )
    .await?;
    let listener = TcpListener::bind(config.http.listen)
        .await
        .map_err(|e| ServerError(format!("cannot listen on {}: {e}", config.http.listen)))?;
    let http_addr = listener
        .local_addr()
        .map_err(|e| ServerError(e.to_string()))?;
    let mut config = config;
    if config.http.public_url.is_none() && config.http.listen.port() == 0 {
        // Links must name the port actually bound (tests, one-machine setups).
        let scheme = if certs.is_some() { "https" } else { "http" };
        config.http.public_url = Some(format!("{scheme}://{http_addr}"));
    }
    warn_if_cameras_refused(&config);
    if config.metrics.token.is_none() && !config.http.listen.ip().is_loopback() {
        tracing::warn!("/metrics answers 403: set metrics.token to let Prometheus read it");
    }
    crate::http::serve::ensure_open_files(config.http.max_connections);
    let limits = crate::http::serve::Limits {
        header_read_timeout: config.http.header_read_timeout,
        max_connections: config.http.max_connections,
    };
    let tls = tls_acceptor(certs.as_ref())?;
    let cert_watch = certs.as_ref().map(|store| store.watch());
    let state = AppState::with_library(config, tokens, media, db, library.library, clock);
    state.metrics.watch_attendance(attendance_dropped);
    if let Some(t) = turn {
        let _ = state.turn.set(t);
    }
    restore_removals(&state).await?;
    crate::library::live::spawn(state.clone(), library.statuses);
    let scheduler = crate::schedule::runner::spawn(state.clone());
    let rtmp_addr = crate::ingest::spawn(state.clone())
        .await
        .map_err(|e| ServerError(format!("rtmp.listen {}: {e}", state.config.rtmp.listen)))?
        .map(|l| l.local_addr);
    let audit_key = crate::api::audit_chain::ChainKey::derive(&secret);
    let _ = state.audit_key.set(audit_key.clone());
    let audit_sealer = crate::api::audit_chain::spawn(
        state.db.clone(),
        audit_key,
        state.config.accounts.clone(),
        state.clock.clone(),
    );
    let app = crate::http::router(state.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(crate::http::serve::serve(
        listener,
        app,
        tls,
        limits,
        async move {
            let _ = stopped.await;
        },
    ));
    Ok(RunningServer {
        http_addr,
        rtmp_addr,
        state,
        stop: Some(stop),
        task,
        scheduler,
        audit_sealer,
        cert_watch,
        attendance,
    })
}

/// The media plane's settings from the configuration.
fn media_settings(
    config: &Config,
    record: Option<crate::media::RecordSink>,
    attendance: crate::attendance::AttendanceSink,
) -> MediaSettings {
    let media = &config.media;
    MediaSettings {
        listen: media.listen,
        shards: config.media_shard_count(),
        advertise: config.advertised_ips(),
        connect_timeout: media.connect_timeout,
        bwe_policy: ketang_sfu::BwePolicy {
            audience_bwe_below: media.audience_bwe_below,
        },
        max_peers_per_shard: media.max_peers_per_shard,
        max_tracks_per_peer: media.max_tracks_per_peer,
        tcp: media.tcp.then(|| crate::media::TcpSettings {
            listen: media.tcp_listen,
            advertise: config.advertised_tcp_ips(),
            limits: crate::media::TcpLimits {
                max_pending_per_ip: media.tcp_max_pending_per_ip,
                stun_deadline: crate::media::TCP_STUN_DEADLINE,
            },
        }),
        record,
        attendance: Some(attendance),
        relays: Default::default(),
    }
}

/// The embedded TURN server, relaying to the shards just bound; `None` when off.
async fn start_turn(
    config: &Config,
    secret: &[u8],
    media: &MediaPlane,
    relays: std::sync::Arc<crate::turn::Relays>,
    http_certs: Option<&std::sync::Arc<crate::http::tls::CertStore>>,
) -> Result<Option<crate::turn::TurnServer>, ServerError> {
    let turn = &config.turn;
    if !turn.enabled {
        return Ok(None);
    }
    let credentials = crate::turn::Credentials::new(secret, &turn.realm, turn.credential_lifetime)
        .map_err(|e| ServerError(format!("turn: {e}")))?;
    let shards: Vec<SocketAddr> = media.shards().iter().map(|s| s.local_addr).collect();
    let tls = match turn.tls_listen {
        None => None,
        Some(_) => Some(turn_tls(config, http_certs)?),
    };
    let (listen, listen_explicit) = config.turn_listen();
    let settings = crate::turn::TurnSettings {
        listen,
        listen_explicit,
        tls_listen: turn.tls_listen,
        tls,
        public_host: config.turn_public_host(),
        credentials,
        targets: crate::turn::MediaTargets::new(&shards, &config.advertised_ips()),
        limits: crate::turn::Limits {
            max_allocations: turn.max_allocations,
            max_allocations_per_ip: turn.max_allocations_per_ip,
            max_pending_per_ip: turn.max_pending_per_ip,
            max_connections: turn.max_connections,
            allocate_deadline: Duration::from_secs(10),
        },
    };
    crate::turn::TurnServer::start(settings, relays)
        .await
        .map_err(ServerError)
}

/// The TLS setup of `turn.tls_listen`: its own certificate, or the HTTPS one; no ALPN (TURN
/// clients send none, or `stun.turn`).
fn turn_tls(
    config: &Config,
    http_certs: Option<&std::sync::Arc<crate::http::tls::CertStore>>,
) -> Result<std::sync::Arc<rustls::ServerConfig>, ServerError> {
    let store = match (&config.turn.tls_cert, &config.turn.tls_key) {
        (Some(cert), Some(key)) => {
            let files = crate::http::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            };
            crate::http::tls::CertStore::open(files)
                .map_err(|e| ServerError(format!("turn.tls_cert / turn.tls_key: {e}")))?
        }
        _ => http_certs
            .cloned()
            .ok_or_else(|| ServerError("turn.tls_listen needs turn.tls_cert".to_owned()))?,
    };
    let config = crate::http::tls::server_config(store)
        .map_err(|e| ServerError(format!("turn.tls_cert: {e}")))?;
    let mut config = (*config).clone();
    config.alpn_protocols.clear();
    Ok(std::sync::Arc::new(config))
}

/// The TLS acceptor over the certificate store, when HTTPS is on.
fn tls_acceptor(
    certs: Option<&std::sync::Arc<crate::http::tls::CertStore>>,
) -> Result<Option<tokio_rustls::TlsAcceptor>, ServerError> {
    let Some(store) = certs else {
        return Ok(None);
    };
    let config = crate::http::tls::server_config(store.clone())
        .map_err(|e| ServerError(format!("http.tls_cert: {e}")))?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(config)))
}

/// Removed links stay out across restarts: barred before the listener serves anyone.
async fn restore_removals(state: &AppState) -> Result<(), ServerError> {
    let restored = state
        .restore_removals()
        .await
        .map_err(|e| ServerError(format!("cannot read removed links: {e}")))?;
    if restored > 0 {
        tracing::info!("{restored} removed room links stay barred");
    }
    Ok(())
}

/// The TLS certificate store when `http.tls_cert` and `http.tls_key` are set.
fn open_certificates(
    config: &Config,
) -> Result<Option<std::sync::Arc<crate::http::tls::CertStore>>, ServerError> {
    let (Some(cert), Some(key)) = (&config.http.tls_cert, &config.http.tls_key) else {
        return Ok(None);
    };
    let files = crate::http::tls::TlsFiles {
        cert: cert.clone(),
        key: key.clone(),
    };
    let store = crate::http::tls::CertStore::open(files)
        .map_err(|e| ServerError(format!("http.tls_cert / http.tls_key: {e}")))?;
    tracing::info!(
        sha256 = %crate::http::tls::fingerprint(&store.current()),
        "serving HTTPS with {}",
        cert.display()
    );
    Ok(Some(store))
}

/// Browsers give pages cameras only on `https://` or `http://localhost`: plain HTTP reached
/// from other machines works for watching but not for classrooms.
fn warn_if_cameras_refused(config: &Config) {
    let http = &config.http;
    if http.cameras_refused() {
        tracing::warn!(
            "HTTP on {} without TLS: browsers on other machines will refuse cameras and              microphones on plain http:// pages. Set http.tls_cert and http.tls_key (try              `ketang cert --host NAME_OR_IP --out DIR`), or put an HTTPS proxy in front and              set http.public_url to its https:// address",
            http.listen
        );
    }
}

/// On a database without admin keys, makes the bootstrap key and says so once, in the log
/// only: the key is not written anywhere else.
async fn announce_bootstrap_key(db: &Db, config: &Config) -> Result<(), ServerError> {
    let key = crate::api::keys::bootstrap(db)
        .await
        .map_err(|e| ServerError(format!("cannot create the bootstrap admin key: {e}")))?;
    let Some(key) = key else {
        return Ok(());
    };
    // Never in the log (log files are shared and kept): a file only its user can read, and
    // the terminal of whoever started the server, if any.
    let path = config
        .storage
        .data_dir
        .join(crate::api::keys::BOOTSTRAP_FILE);
    write_private(&path, &format!("{key}\n"))
        .map_err(|e| ServerError(format!("cannot write {}: {e}", path.display())))?;
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        eprintln!(
            "Bootstrap admin key (shown once, also in {}): {key}",
            path.display()
        );
    }
    tracing::info!(
        "No admin API key existed: a bootstrap key was written to {} (mode 600). Sign in at \
         {}/admin with it and make a personal key (`ketang admin create-key NAME`); the \
         bootstrap key stops working then, or 24 hours after it was made. Its uses are audited.",
        path.display(),
        config.public_base_url()
    );
    Ok(())
}

/// Writes `text` to a new file readable only by this user.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

impl RunningServer {
    /// Stops taking requests, tells every client, stops the shards, finalizes recordings,
    /// waits for HTTP to end. Every wait is bounded by one budget (`shutdown::ORDERLY_BUDGET`).
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        let budget = Budget::new(std::time::Instant::now(), ORDERLY_BUDGET);
        self.state.shutting_down.store(true, Ordering::Relaxed);
        self.scheduler.abort();
        self.audit_sealer.abort();
        if let Some(w) = self.cert_watch.take() {
            w.abort();
        }
        for entry in self.state.media.registry.iter() {
            let _ = entry.value().send(PeerSignal::Close(ByeReason::Shutdown));
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(turn) = self.state.turn.get() {
            turn.stop();
        }
        let state = self.state.clone();
        let shards = tokio::task::spawn_blocking(move || state.media.stop());
        // A shard stops within one loop turn; one that does not is left behind (the process
        // ends anyway) so that recordings still get finalized.
        match tokio::time::timeout(budget.step(Duration::from_secs(2)), shards).await {
            Ok(r) => r.map_err(|e| ServerError(e.to_string()))?,
            Err(_) => tracing::warn!("media shards did not stop in time"),
        }
        // The stopped shards closed their rooms and dropped their attendance sinks: the task
        // writes the stays' ends and stops.
        if !self
            .attendance
            .finish(budget.step(Duration::from_secs(2)))
            .await
        {
            tracing::warn!(
                "attendance not written in time; open stays end at their last heartbeat"
            );
        }
        // The stopped shards closed their rooms, so every recording's end is queued: finalize
        // them, within 5 s of the exit budget (what does not make it is repaired at the next
        // start).
        let state = self.state.clone();
        let within = budget.step(Duration::from_secs(5));
        let recorder = tokio::task::spawn_blocking(move || state.library.live.shutdown(within));
        if !recorder.await.unwrap_or(false) {
            tracing::warn!("recordings not finalized in time; they are repaired at the next start");
        }
        // WebSocket sessions end when their peers do; don't wait forever on a stuck client.
        let served =
            match tokio::time::timeout(budget.step(Duration::from_secs(5)), self.task).await {
                Ok(Ok(r)) => r.map_err(|e| ServerError(e.to_string())),
                Ok(Err(e)) => Err(ServerError(e.to_string())),
                Err(_) => Ok(()),
            };
        // Returns the connections (and checkpoints SQLite's WAL) before the process goes.
        let _ =
            tokio::time::timeout(budget.step(Duration::from_secs(2)), self.state.db.close()).await;
        served
    }
}

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn run(config: Config) -> Result<(), ServerError> {
    let public = config.public_base_url();
    let server = start(config).await?;
    tracing::info!(
        http = %server.http_addr,
        "Ketang is serving; open room links under {public}/r/<room>?t=<token> (mint them with `ketang token`)"
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    // Whatever hangs, the process is gone by the hard deadline.
    crate::shutdown::watchdog(HARD_DEADLINE - Duration::from_millis(500));
    server.shutdown().await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
