//! `ketang-loadtest`: command-line front end of the WHIP/WHEP test clients.
//!
//! ```text
//! ketang-loadtest whip --url http://HOST/whip/ROOM --token TOKEN --duration 10s
//! ketang-loadtest whep --url http://HOST/whep/ROOM --token TOKEN --duration 10s
//! ```
//!
//! Each subcommand connects one client, runs it for `--duration`, closes the session
//! (DELETE) and prints one JSON summary on stdout; logs go to stderr (`RUST_LOG`). The exit
//! code is 1 if connecting failed and 2 if only the closing DELETE failed. Multi-client load
//! scenarios are not part of this binary yet.

use clap::{Args, Parser, Subcommand};
use ketang_loadtest::media::{OpusConfig, Vp8Config};
use ketang_loadtest::{
    ClientError, ClientOptions, ReceiveStats, WhepOptions, WhepViewer, WhipOptions, WhipPublisher,
};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "ketang-loadtest",
    version,
    about = "WHIP/WHEP test clients for Ketang"
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
}

impl Common {
    fn client_options(&self) -> ClientOptions {
        ClientOptions {
            bind_addr: self.bind,
            connect_timeout: self.connect_timeout,
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
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Whip(args) => run_whip(args).await,
        Command::Whep(args) => run_whep(args).await,
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
    };
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
