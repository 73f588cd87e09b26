//! `/metrics` and `/readyz` of the real server on loopback: the exposition parses as
//! Prometheus text, its counters and gauges follow a WHIP teacher and a WHEP viewer, and
//! readiness turns to 503 with a reason when the server shuts down.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use ketang::metrics::text::{Parsed, parse};
use ketang_loadtest::{WhepOptions, WhepViewer, WhipOptions, WhipPublisher};
use ketang_sfu::Role;

async fn scrape(s: &TestServer) -> Parsed {
    let r = reqwest::get(s.url("/metrics")).await.expect("GET /metrics");
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = r.text().await.expect("body");
    parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Scrapes until `ok` holds (the shards publish once a second), for at most 5 s.
async fn scrape_until(s: &TestServer, ok: impl Fn(&Parsed) -> bool) -> Parsed {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let p = scrape(s).await;
        if ok(&p) || Instant::now() > deadline {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_lesson_and_parse() {
    let s = TestServer::start().await;
    let idle = scrape(&s).await;
    for family in [
        "ketang_rooms",
        "ketang_peers",
        "ketang_udp_datagrams_total",
        "ketang_nacks_total",
        "ketang_plis_total",
        "ketang_rtp_lost_packets_total",
        "ketang_bwe_peers",
        "ketang_layer_switches_total",
        "ketang_signaling_connections",
        "ketang_recording_bytes_total",
        "ketang_attendance_dropped_total",
        "process_cpu_seconds_total",
    ] {
        assert!(idle.types.contains_key(family), "{family} missing");
    }
    assert_eq!(idle.sum("ketang_shards", &[]), 2.0);
    assert_eq!(idle.sum("ketang_peers", &[]), 0.0);

    let teacher = s.token("m1", Role::Teacher, "Ms Li");
    let viewer = s.token("m1", Role::Viewer, "parent");
    let v = WhepViewer::connect(&s.url("/whep/m1"), &viewer, WhepOptions::default())
        .await
        .expect("WHEP session");
    let mut p = WhipPublisher::connect(&s.url("/whip/m1"), &teacher, WhipOptions::default())
        .await
        .expect("WHIP session");
    let sent = p.run_for(Duration::from_secs(3)).await;
    assert!(sent.audio.packets + sent.video.packets > 100);
    let got = v.stats();
    assert!(got.video.unique_packets > 0, "the viewer received video");

    let live = scrape_until(&s, |m| {
        m.sum("ketang_rtp_forwarded_packets_total", &[("kind", "video")]) > 0.0
            && m.sum("ketang_bwe_peers", &[]) >= 1.0
    })
    .await;
    assert_eq!(live.sum("ketang_rooms", &[]), 1.0);
    assert_eq!(live.sum("ketang_peers", &[("role", "teacher")]), 1.0);
    assert_eq!(live.sum("ketang_peers", &[("role", "viewer")]), 1.0);
    assert_eq!(live.sum("ketang_tracks", &[("kind", "video")]), 1.0);
    assert_eq!(live.sum("ketang_subscriptions", &[]), 2.0);
    let rtp_in = live.sum("ketang_rtp_received_packets_total", &[]);
    assert!(rtp_in > 100.0, "{rtp_in}");
    for kind in ["audio", "video"] {
        let out = live.sum("ketang_rtp_forwarded_packets_total", &[("kind", kind)]);
        assert!(out > 0.0, "{kind} forwarded");
    }
    for dir in ["in", "out"] {
        let n = live.sum("ketang_udp_datagrams_total", &[("direction", dir)]);
        assert!(n > idle.sum("ketang_udp_datagrams_total", &[("direction", dir)]));
        assert!(live.sum("ketang_udp_bytes_total", &[("direction", dir)]) > 10_000.0);
    }
    assert!(live.sum("ketang_bwe_estimate_sum_bits_per_second", &[]) > 0.0);
    // Routes are matched paths with their statuses, never raw URLs.
    let whip = [
        ("route", "/whip/{room}"),
        ("method", "POST"),
        ("status", "201"),
    ];
    assert_eq!(live.sum("ketang_http_requests_total", &whip), 1.0);
    assert_eq!(
        live.sum("ketang_http_requests_total", &[("route", "/whep/{room}")]),
        1.0
    );
    assert!(
        !live
            .samples
            .iter()
            .any(|x| x.labels.get("route").is_some_and(|r| r.contains("m1"))),
        "a raw URL became a label"
    );

    // Counters only grow; the viewer leaving shows in the gauges.
    v.close().await.expect("WHEP closed");
    let after = scrape_until(&s, |m| m.sum("ketang_peers", &[("role", "viewer")]) == 0.0).await;
    assert_eq!(after.sum("ketang_peers", &[("role", "viewer")]), 0.0);
    assert!(after.sum("ketang_rtp_received_packets_total", &[]) >= rtp_in);
    p.close().await.expect("WHIP closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_why_it_is_not_ready() {
    let s = TestServer::start().await;
    // The shards publish their first statistics as they start.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut r = reqwest::get(s.url("/readyz")).await.expect("GET /readyz");
    while r.status() != 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        r = reqwest::get(s.url("/readyz")).await.expect("GET /readyz");
    }
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("JSON");
    assert_eq!(body["status"], "ready");

    s.server
        .state
        .shutting_down
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let r = reqwest::get(s.url("/readyz")).await.expect("GET /readyz");
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.expect("JSON");
    assert_eq!(body["status"], "notReady");
    assert_eq!(body["error"], "shuttingDown");
    assert_eq!(body["reasons"][0]["code"], "shuttingDown");
    // The metrics say so as well, and new WHIP sessions are refused with a clear code.
    let m = scrape(&s).await;
    assert_eq!(m.sum("ketang_shutting_down", &[]), 1.0);
    let teacher = s.token("m2", Role::Teacher, "Ms Li");
    let refused = reqwest::Client::new()
        .post(s.url("/whip/m2"))
        .bearer_auth(&teacher)
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await
        .expect("POST /whip");
    assert_eq!(refused.status(), 503);
    let body: serde_json::Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"], "shuttingDown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_asks_the_database_at_most_once_a_second() {
    let s = TestServer::start().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let ready = || async { reqwest::get(s.url("/readyz")).await.expect("GET /readyz") };
    let mut r = ready().await;
    while r.status() != 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        r = ready().await;
    }
    assert_eq!(r.status(), 200);
    // A fresh check now (the one above may have been an answer up to a second old).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let checked = Instant::now();
    assert_eq!(ready().await.status(), 200);
    // The database goes away: requests within the second get the answer already known (no
    // query each), and the first one after it sees the database gone.
    s.server.state.db.pool.close().await;
    let mut answers = Vec::new();
    while checked.elapsed() < Duration::from_millis(700) {
        answers.push(ready().await.status().as_u16());
    }
    assert!(
        answers.len() > 5 && answers.iter().all(|s| *s == 200),
        "{answers:?}"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = ready().await;
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.expect("JSON");
    assert_eq!(body["error"], "databaseUnavailable");
}
