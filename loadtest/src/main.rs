//! `ketang-loadtest`: the load generator and the single WHIP/WHEP test clients.
//!
//! ```text
//! ketang-loadtest whip --url http://HOST/whip/ROOM --token TOKEN --duration 10s
//! ketang-loadtest whep --url http://HOST/whep/ROOM --token TOKEN --duration 10s
//! ketang-loadtest run --scenario broadcast --viewers 100 --url http://HOST:8080 \
//!     --secret-file data/auth.secret --duration 30s --server-pid PID --json report.json
//! ```
//!
//! `whip` and `whep` connect one client, run it for `--duration`, close the session (DELETE)
//! and print one JSON summary on stdout; the exit code is 1 if connecting failed and 2 if only
//! the closing DELETE failed. `run` plays a whole scenario (see `ketang_loadtest::load`),
//! draws a progress bar on stderr, prints the report table on stdout and writes the JSON
//! report to `--json`; its exit code is 3 if any participant failed to join. Logs go to
//! stderr (`RUST_LOG`).

use clap::{Args, Parser, Subcommand};
use ketang_loadtest::load::tokens::TokenSource;
use ketang_loadtest::load::{LoadConfig, Scenario};
use ketang_loadtest::media::{Clip, ClipCodec, OpusConfig, Vp8Config};
use ketang_loadtest::{
    ClientError, ClientOptions, ReceiveStats, WhepOptions, WhepViewer, WhipOptions, WhipPublisher,
};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "ketang-loadtest",
    version,
    about = "Load generator and WHIP/WHEP test clients for Ketang"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Publish synthetic Opus + VP8 over WHIP and print what was sent.
    Whip(WhipArgs),
    /// Play over WHEP and print what was received.
    Whep(WhepArgs),
    /// Run a load scenario (broadcast, dedicated, master) and report.
    Run(Box<RunArgs>),
}

#[derive(Args)]
struct RunArgs {
    /// Scenario to play.
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Mint tokens with the server's secret ({data_dir}/auth.secret).
    #[arg(
        long,
        env = "KETANG_LOADTEST_SECRET_FILE",
        conflicts_with = "tokens_file"
    )]
    secret_file: Option<PathBuf>,
    /// Use pre-minted tokens, one per line (rooms and roles are read from their claims).
    #[arg(long)]
    tokens_file: Option<PathBuf>,
    /// Room name prefix for minted tokens (rooms are PREFIX-0, PREFIX-1, ...); default a
    /// random `lt-XXXXXX` so runs never share rooms.
    #[arg(long)]
    room_prefix: Option<String>,
    /// Rooms (dedicated).
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Classrooms per room (dedicated).
    #[arg(long, default_value_t = 2)]
    classrooms: usize,
    /// Viewers (broadcast) or observers (master).
    #[arg(long, default_value_t = 10)]
    viewers: usize,
    /// Observers that join as classrooms and publish (master).
    #[arg(long, default_value_t = 0)]
    speakers: usize,
    /// How broadcast viewers connect.
    #[arg(long, value_enum, default_value = "whep")]
    viewer_transport: ViewerTransport,
    /// Publish the teacher camera as 3 simulcast layers q/h/f.
    #[arg(long)]
    simulcast: bool,
    /// Bitrates of the q, h, f layers in kbit/s.
    #[arg(long, value_delimiter = ',', default_value = "150,500,1500")]
    simulcast_kbps: Vec<u32>,
    /// Video bitrate of single-layer publishers, kbit/s.
    #[arg(long, default_value_t = 500)]
    video_kbps: u32,
    /// Video frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// A keyframe every N frames (60 = 2 s at 30 fps).
    #[arg(long, default_value_t = 60)]
    keyframe_interval: u32,
    /// Opus packet size in bytes (50 packets/s; 40 B = 16 kbit/s).
    #[arg(long, default_value_t = 40)]
    audio_packet_bytes: usize,
    /// Joins per second.
    #[arg(long, default_value_t = 5.0)]
    ramp_per_second: f64,
    /// Measurement window, after everyone has joined.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    duration: Duration,
    /// Wait after the last join before measuring (start-up transients).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    settle: Duration,
    /// Wait after the publishers stop before counting loss (late retransmissions).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    grace: Duration,
    /// Bound on one join (signaling, ICE, DTLS).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    connect_timeout: Duration,
    /// Local UDP address of every client; must be a concrete interface address.
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// Subscribers lose the first arrival of every N-th video packet, to see retransmission
    /// repair it (loopback loses nothing).
    #[arg(long)]
    inject_loss_every: Option<u16>,
    /// Subscribers negotiate no transport-wide congestion feedback (TWCC), like players that
    /// send only RTCP receiver reports and NACKs.
    #[arg(long)]
    no_transport_cc: bool,
    /// The server's pid, to read its CPU and memory from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ViewerTransport {
    Whep,
    Ws,
}

#[derive(Args)]
struct Common {
    /// Endpoint URL, e.g. http://127.0.0.1:8080/whip/ROOM.
    #[arg(long)]
    url: String,
    /// Room token (sent as `Authorization: Bearer TOKEN`).
    #[arg(long, env = "KETANG_TOKEN", hide_env_values = true)]
    token: String,
    /// How long to stream, e.g. 10s, 2m.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    duration: Duration,
    /// Local UDP address for media; must be a concrete interface address.
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// Bound on reaching `connected`, e.g. 10s.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    connect_timeout: Duration,
    /// Negotiate no transport-wide congestion feedback (TWCC): act like a player that sends
    /// only RTCP receiver reports and NACKs (aiortc, GStreamer, hardware decoders).
    #[arg(long)]
    no_transport_cc: bool,
}

impl Common {
    fn client_options(&self) -> ClientOptions {
        ClientOptions {
            bind_addr: self.bind,
            connect_timeout: self.connect_timeout,
            transport_cc: !self.no_transport_cc,
            ..ClientOptions::default()
        }
    }
}

#[derive(Args)]
struct WhipArgs {
    #[command(flatten)]
    common: Common,
    /// Average VP8 bitrate in bit/s.
    #[arg(long, default_value_t = 300_000)]
    video_bitrate: u32,
    /// Video frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// A keyframe every N video frames.
    #[arg(long, default_value_t = 60)]
    keyframe_interval: u32,
    /// Opus packet size in bytes (50 packets/s).
    #[arg(long, default_value_t = 40)]
    audio_packet_bytes: usize,
    /// Publish no audio m-line.
    #[arg(long)]
    no_audio: bool,
    /// Publish no video m-line.
    #[arg(long)]
    no_video: bool,
    /// Publish this H.264 Annex-B file (constrained baseline, no B-frames, e.g. from
    /// `ffmpeg ... -c:v libx264 -profile:v baseline -bf 0 -f h264 FILE`) in a loop at `--fps`
    /// instead of synthetic VP8.
    #[arg(long, value_name = "FILE")]
    h264: Option<std::path::PathBuf>,
}

#[derive(Args)]
struct WhepArgs {
    #[command(flatten)]
    common: Common,
    /// Do not send PLIs to ask for the first keyframe.
    #[arg(long)]
    no_keyframe_requests: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(
                    "warn,rtc=error,rtc_ice=error,rtc_dtls=error,webrtc=error",
                )
            }),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Whip(args) => run_whip(args).await,
        Command::Whep(args) => run_whep(args).await,
        Command::Run(args) => return run_load(*args).await,
    };
    match result {
        Ok((summary, code)) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&summary).unwrap_or_default()
            );
            code
        }
        Err(e) => {
            let mut err = json!({ "error": e.to_string() });
            if let ClientError::Http { status, body } = &e {
                err["status"] = json!(status);
                err["body"] = json!(body);
            }
            println!("{err}");
            ExitCode::from(1)
        }
    }
}

async fn run_load(args: RunArgs) -> ExitCode {
    let ttl = args.duration + args.connect_timeout * 4 + Duration::from_secs(3600);
    let tokens = match (&args.secret_file, &args.tokens_file) {
        (Some(p), _) => TokenSource::from_secret_file(p, ttl),
        (None, Some(p)) => TokenSource::from_tokens_file(p),
        (None, None) => {
            Err("give --secret-file (the server's auth.secret) or --tokens-file".into())
        }
    };
    let tokens = match tokens {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ketang-loadtest: {e}");
            return ExitCode::from(1);
        }
    };
    let simulcast = match args.simulcast_kbps.as_slice() {
        [q, h, f] if args.simulcast => Some([q * 1000, h * 1000, f * 1000]),
        _ if args.simulcast => {
            eprintln!("ketang-loadtest: --simulcast-kbps takes three values (q,h,f)");
            return ExitCode::from(1);
        }
        _ => None,
    };
    let cfg = LoadConfig {
        scenario: args.scenario,
        base_url: args.url,
        tokens,
        room_prefix: args
            .room_prefix
            .unwrap_or_else(|| format!("lt-{:06x}", rand::random::<u32>() & 0xff_ffff)),
        rooms: args.rooms,
        classrooms: args.classrooms,
        viewers: args.viewers,
        speakers: args.speakers,
        viewers_over_ws: matches!(args.viewer_transport, ViewerTransport::Ws),
        simulcast,
        video_bps: args.video_kbps * 1000,
        fps: args.fps,
        keyframe_interval: args.keyframe_interval,
        audio_packet_bytes: args.audio_packet_bytes,
        ramp_per_second: args.ramp_per_second,
        duration: args.duration,
        settle: args.settle,
        grace: args.grace,
        connect_timeout: args.connect_timeout,
        bind: args.bind,
        inject_loss_every: args.inject_loss_every,
        transport_cc: !args.no_transport_cc,
        server_pid: args.server_pid,
        progress: !args.no_progress,
    };
    let report = match ketang_loadtest::load::run(cfg).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ketang-loadtest: {e}");
            return ExitCode::from(1);
        }
    };
    println!("{}", report.table());
    if let Some(path) = &args.json {
        let written = serde_json::to_string_pretty(&report)
            .map_err(|e| e.to_string())
            .and_then(|j| std::fs::write(path, j).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("ketang-loadtest: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    if report.failed_joins > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

async fn run_whip(args: WhipArgs) -> Result<(Value, ExitCode), ClientError> {
    let opts = WhipOptions {
        client: args.common.client_options(),
        audio: (!args.no_audio).then_some(OpusConfig {
            packet_bytes: args.audio_packet_bytes,
        }),
        video: (!args.no_video).then(|| Vp8Config {
            fps: args.fps,
            bitrate_bps: args.video_bitrate,
            keyframe_interval: args.keyframe_interval,
            ..Vp8Config::default()
        }),
        simulcast: None,
        clip: None,
        audio_packets: None,
    };
    let mut opts = opts;
    if let Some(path) = &args.h264 {
        let clip = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                Clip::from_annexb(ClipCodec::H264, &b, args.fps).map_err(|e| e.to_string())
            })
            .map_err(|e| ClientError::Protocol(format!("{}: {e}", path.display())))?;
        opts.clip = Some(clip);
    }
    let started = Instant::now();
    let mut publisher = WhipPublisher::connect(&args.common.url, &args.common.token, opts).await?;
    let connect_ms = started.elapsed().as_millis() as u64;
    let location = publisher.location().to_string();
    let sent = publisher.run_for(args.common.duration).await;
    let closed = publisher.close().await;
    let mut summary = json!({
        "mode": "whip",
        "location": location,
        "connect_ms": connect_ms,
        "counts": "rtp packets handed to webrtc-rs; frames generated",
        "sent": sent,
    });
    let code = record_close(&mut summary, closed.err());
    Ok((summary, code))
}

async fn run_whep(args: WhepArgs) -> Result<(Value, ExitCode), ClientError> {
    let opts = WhepOptions {
        client: args.common.client_options(),
        keyframe_request_interval: (!args.no_keyframe_requests).then_some(Duration::from_secs(1)),
        ..WhepOptions::default()
    };
    let started = Instant::now();
    let viewer = WhepViewer::connect(&args.common.url, &args.common.token, opts).await?;
    let connect_ms = started.elapsed().as_millis() as u64;
    let location = viewer.location().to_string();
    let stats = viewer.run_for(args.common.duration).await;
    let closed = viewer.close().await;
    let mut summary = json!({
        "mode": "whep",
        "location": location,
        "connect_ms": connect_ms,
        "duration_secs": args.common.duration.as_secs_f64(),
        "tracks": stats.tracks,
        "plis_sent": stats.plis_sent,
        "audio": kind_summary(&stats.audio),
        "video": kind_summary(&stats.video),
    });
    let code = record_close(&mut summary, closed.err());
    Ok((summary, code))
}

/// The per-kind figures a human wants first, plus the full snapshot.
fn kind_summary(s: &ReceiveStats) -> Value {
    json!({
        "packets": s.packets,
        "bytes": s.bytes,
        "lost_packets": s.lost_packets,
        "loss_ratio": s.loss_ratio(),
        "frames": s.frames,
        "frames_lost": s.frames_lost,
        "keyframes": s.keyframes,
        "latency_p50_ms": s.latency.map(|l| l.p50_us as f64 / 1000.0),
        "latency_p95_ms": s.latency.map(|l| l.p95_us as f64 / 1000.0),
        "detail": s,
    })
}

/// Add a failed DELETE to the summary; it turns the exit code into 2.
fn record_close(summary: &mut Value, close_error: Option<ClientError>) -> ExitCode {
    match close_error {
        Some(e) => {
            summary["close_error"] = json!(e.to_string());
            ExitCode::from(2)
        }
        None => ExitCode::SUCCESS,
    }
}
