//! Smoke runs of the load generator against the real Ketang server, started in-process (the
//! server package is a dev-dependency; it dev-depends on this crate in turn, which cargo
//! allows because no build-graph cycle results).
//!
//! * `dedicated_smoke_media_flows_both_ways`: the `dedicated` scenario, 1 room × (1 teacher +
//!   2 classrooms) over WebSocket signaling for 10 s. Every peer must receive audio and video
//!   from every other, with zero loss after retransmission on loopback, and a sane report:
//!   non-zero packet rates, latency p50 < 50 ms, time to first frame, CPU figures (the server
//!   runs in this process, so its pid is ours).
//!   `/metrics` is scraped before and after the run: it parses as Prometheus text and its
//!   packet counters grew by at least what the generator sent and received.
//! * `cli_broadcast_writes_a_json_report`: the binary runs `broadcast` (WHIP teacher → 2 WHEP
//!   viewers, 3 s) against the same kind of server, minting tokens from its `auth.secret`, and
//!   writes a JSON report.
//!
//! Every wait is bounded; the two tests run in parallel in about 20 s.

use ketang::config::Config;
use ketang::server::{RunningServer, start};
use ketang_loadtest::load::tokens::TokenSource;
use ketang_loadtest::load::{LoadConfig, Scenario, run};
use std::collections::BTreeSet;
use std::time::Duration;

struct Server {
    server: RunningServer,
    dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::default();
        config.http.listen = "127.0.0.1:0".parse().expect("addr");
        config.media.listen = "127.0.0.1:0".parse().expect("addr");
        config.media.shards = 1;
        config.storage.data_dir = dir.path().to_path_buf();
        let server = start(config).await.expect("server starts");
        Server { server, dir }
    }

    fn base(&self) -> String {
        format!("http://{}", self.server.http_addr)
    }

    fn secret(&self) -> std::path::PathBuf {
        self.dir.path().join("auth.secret")
    }
}

/// `/metrics`, parsed (and so checked) as Prometheus text.
async fn scrape(base: &str) -> ketang::metrics::text::Parsed {
    let r = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("GET /metrics");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("metrics body");
    ketang::metrics::text::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedicated_smoke_media_flows_both_ways() {
    init_tracing();
    let s = Server::start().await;
    let tokens = TokenSource::from_secret_file(&s.secret(), Duration::from_secs(600))
        .expect("secret readable");
    let cfg = LoadConfig {
        scenario: Scenario::Dedicated,
        base_url: s.base(),
        tokens,
        room_prefix: "smoke".into(),
        rooms: 1,
        classrooms: 2,
        viewers: 0,
        speakers: 0,
        viewers_over_ws: false,
        simulcast: None,
        video_bps: 300_000,
        fps: 30,
        keyframe_interval: 60,
        audio_packet_bytes: 40,
        ramp_per_second: 10.0,
        duration: Duration::from_secs(10),
        settle: Duration::from_secs(1),
        grace: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(10),
        bind: "127.0.0.1:0".parse().expect("addr"),
        inject_loss_every: None,
        transport_cc: true,
        server_pid: Some(std::process::id()),
        progress: false,
    };
    let before = scrape(&s.base()).await;
    let report = tokio::time::timeout(Duration::from_secs(60), run(cfg))
        .await
        .expect("run finished in time")
        .expect("run");
    eprintln!("{}", report.table());
    // The shard publishes its SFU counters once a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = scrape(&s.base()).await;

    assert_eq!(report.failed_joins, 0, "{:#?}", report.participants);
    assert_eq!((report.publishers, report.subscribers), (3, 3));
    assert_eq!(report.tracks_published, 6);
    assert_eq!(
        report.tracks_expected, 12,
        "each peer receives 2 × (mic, camera)"
    );
    assert_eq!(report.tracks_received, 12, "{:#?}", report.participants);

    // Every peer received audio and video from every other.
    let peers: BTreeSet<u64> = report
        .participants
        .iter()
        .map(|p| p.peer_id.expect("signaling peers have ids"))
        .collect();
    assert_eq!(peers.len(), 3);
    for p in &report.participants {
        let me = p.peer_id.expect("peer id");
        let got: BTreeSet<(u64, String)> = p
            .tracks
            .iter()
            .filter(|t| t.packets > 0)
            .filter_map(|t| t.publisher.map(|pubr| (pubr, t.kind.clone())))
            .collect();
        let want: BTreeSet<(u64, String)> = peers
            .iter()
            .filter(|o| **o != me)
            .flat_map(|o| [(*o, "audio".to_owned()), (*o, "video".to_owned())])
            .collect();
        assert_eq!(got, want, "{} received {:?}", p.name, p.tracks);
        assert!(p.sent_packets > 0, "{} published", p.name);
    }

    // Zero loss after retransmission on loopback.
    assert!(report.loss.expected_packets > 1000, "{:?}", report.loss);
    assert_eq!(
        report.loss.after_retransmission_packets, 0,
        "{:?}",
        report.loss
    );

    // A sane report.
    assert!(report.r#in.packets_per_sec > 100.0, "{:?}", report.r#in);
    assert!(
        report.out.packets_per_sec > report.r#in.packets_per_sec,
        "fan-out 2"
    );
    assert!(report.out.mbit_per_sec > 0.5, "{:?}", report.out);
    for kind in ["audio", "video"] {
        let l = report.latency_us.get(kind).expect("latency samples");
        assert!(l.count > 100, "{kind}: {l:?}");
        assert!(l.p50 < 50_000.0, "{kind} p50 {} µs", l.p50);
    }
    let ttff = report.ttff_ms.expect("time to first frame");
    assert_eq!((ttff.count, report.ttff_missing), (6, 0));
    let server = report.server.as_ref().expect("server CPU");
    assert!(server.usage.cpu_cores > 0.0 && server.usage.rss_mib_end > 0.0);
    let per_packet = server.cpu_us_per_egress_packet.expect("CPU per packet");
    assert!(per_packet > 0.0, "{per_packet}");
    assert!(report.generator.cpu_cores > 0.0);
    let json = serde_json::to_value(&report).expect("JSON");
    assert_eq!(json["scenario"]["name"], "dedicated");
    assert!(
        json["server"]["cpu_us_per_egress_packet"]
            .as_f64()
            .is_some()
    );

    // The server's counters moved with the run: at least what the generator counted in its
    // window went through them (the whole run, ramp and grace included, is more).
    let grew =
        |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    let sent = report.r#in.packets as f64;
    let received = report.out.packets as f64;
    assert!(grew("ketang_rtp_received_packets_total", &[]) >= sent);
    // The forwarded counter leaves out retransmissions (RTX repairs and duplicates), which
    // the generator counts among the packets it received.
    let first_sends = report
        .out
        .packets
        .saturating_sub(report.loss.duplicate_packets + report.loss.recovered_packets);
    assert!(grew("ketang_rtp_forwarded_packets_total", &[]) >= first_sends as f64);
    assert!(grew("ketang_udp_datagrams_total", &[("direction", "in")]) >= sent);
    assert!(grew("ketang_udp_datagrams_total", &[("direction", "out")]) >= received);
    assert!(grew("ketang_udp_bytes_total", &[("direction", "out")]) > 0.0);
    assert!(grew("ketang_signaling_connections_total", &[]) >= 3.0);
    assert!(grew("ketang_http_requests_total", &[("route", "/ws")]) >= 3.0);

    s.server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_broadcast_writes_a_json_report() {
    let s = Server::start().await;
    let out = s.dir.path().join("report.json");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_ketang-loadtest"))
        .args(["run", "--scenario", "broadcast", "--viewers", "2"])
        .args(["--url", &s.base(), "--duration", "3s", "--grace", "1s"])
        .args(["--ramp-per-second", "10", "--no-progress"])
        .arg("--secret-file")
        .arg(s.secret())
        .arg("--json")
        .arg(&out)
        .args(["--server-pid", &std::process::id().to_string()])
        .kill_on_drop(true)
        .output();
    let ran = tokio::time::timeout(Duration::from_secs(40), run)
        .await
        .expect("CLI finished in time")
        .expect("CLI ran");
    let stdout = String::from_utf8_lossy(&ran.stdout);
    eprintln!("{stdout}");
    assert!(
        ran.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(stdout.contains("Out pkt/s"), "table printed");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("report written")).expect("JSON");
    assert_eq!(json["scenario"]["name"], "broadcast");
    assert_eq!(json["publishers"], 1);
    assert_eq!(json["subscribers"], 2);
    assert_eq!(json["tracks_received"], 4, "{json:#}");
    assert!(json["out"]["packets_per_sec"].as_f64().unwrap_or(0.0) > 50.0);
    s.server.shutdown().await.expect("shutdown");
}
