//! ICE over TCP (RFC 6544, RFC 4571 framing) against the real server on loopback: webrtc-rs
//! clients with no UDP socket at all publish over WHIP and play over WHEP through the shard's
//! passive TCP candidate.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::TestServer;
use ketang_loadtest::{ClientOptions, WhepOptions, WhepViewer, WhipOptions, WhipPublisher};
use ketang_sfu::{Role, Transport};

fn tcp_only() -> ClientOptions {
    ClientOptions {
        ice_tcp: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_udp_publish_and_play_over_tcp() {
    let s = TestServer::start().await;
    for shard in s.server.state.media.shards() {
        let tcp = shard.tcp_addr.expect("ICE over TCP is on by default");
        assert_eq!(tcp.port(), shard.local_addr.port(), "same port as UDP");
    }
    let teacher = s.token("tcp", Role::Teacher, "Ms Li");
    let viewer = s.token("tcp", Role::Viewer, "student");

    let started = Instant::now();
    let v = WhepViewer::connect(
        &s.url("/whep/tcp"),
        &viewer,
        WhepOptions {
            client: tcp_only(),
            ..Default::default()
        },
    )
    .await
    .expect("WHEP session over TCP");
    let viewer_connected = started.elapsed();
    let options = WhipOptions {
        client: tcp_only(),
        video: Some(ketang_loadtest::media::Vp8Config {
            bitrate_bps: 300_000,
            ..Default::default()
        }),
        ..Default::default()
    };
    let started = Instant::now();
    let mut p = WhipPublisher::connect(&s.url("/whip/tcp"), &teacher, options)
        .await
        .expect("WHIP session over TCP");
    let publisher_connected = started.elapsed();
    eprintln!("connected over TCP: player {viewer_connected:?}, publisher {publisher_connected:?}");
    assert!(viewer_connected < Duration::from_secs(5));
    assert!(publisher_connected < Duration::from_secs(5));
    let open: usize = s
        .server
        .state
        .media
        .shards()
        .iter()
        .map(|sh| sh.stats.tcp.open.load(Ordering::Relaxed))
        .sum();
    assert!(open >= 2, "{open} TCP connections open");
    // Both are counted, shown and reported as TCP.
    let per_transport = transports_counted(&s, 2).await;
    assert_eq!(per_transport, (0, 2), "(udp, tcp) peers in /metrics");
    assert_eq!(live_transports(&s, "tcp").await, vec!["tcp", "tcp"]);
    let room = ketang_sfu::RoomId::new("tcp").unwrap();
    for b in s.server.state.media.bandwidth(&room, None).await {
        assert_eq!(b.transport, Some(Transport::Tcp), "{b:?}");
    }

    let sent = p.run_for(Duration::from_secs(5)).await;
    let total = sent.audio.packets + sent.video.packets;
    let (got, _) = v
        .wait_for(Duration::from_secs(2), |st| {
            st.audio.unique_packets + st.video.unique_packets >= total
        })
        .await;
    let received = got.audio.unique_packets + got.video.unique_packets;
    eprintln!(
        "over TCP: sent audio {} video {}; received audio {} video {}; keyframes {}",
        sent.audio.packets,
        sent.video.packets,
        got.audio.unique_packets,
        got.video.unique_packets,
        got.video.keyframes
    );
    assert!(total > 300, "the publisher sent too little: {total}");
    assert!(
        received * 100 >= total * 95,
        "only {received} of {total} packets arrived"
    );
    assert!(got.video.keyframes >= 1);
    p.close().await.ok();
}

/// `ketang_peers_by_transport` summed over shards as (udp, tcp), once it counts `peers`
/// (shards publish their figures every second).
async fn transports_counted(s: &TestServer, peers: u64) -> (u64, u64) {
    let mut last = (0, 0);
    for _ in 0..30 {
        let text = reqwest::get(s.url("/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body");
        let sum = |transport: &str| -> u64 {
            let label = format!("transport=\"{transport}\"");
            text.lines()
                .filter(|l| l.starts_with("ketang_peers_by_transport{") && l.contains(&label))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64
        };
        last = (sum("udp"), sum("tcp"));
        if last.0 + last.1 >= peers {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

/// The transports the live-rooms page shows for `room`'s participants, sorted.
async fn live_transports(s: &TestServer, room: &str) -> Vec<String> {
    let room_id = ketang_sfu::RoomId::new(room).unwrap();
    let snap = s
        .server
        .state
        .media
        .shard_of(&room_id)
        .expect("room is live")
        .snapshot(room_id.clone())
        .await
        .unwrap()
        .expect("snapshot");
    let mut v: Vec<String> = snap
        .transports
        .iter()
        .map(|(_, t)| t.as_str().to_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_restrictions_media_stays_on_udp() {
    let s = TestServer::start().await;
    let teacher = s.token("udp", Role::Teacher, "Ms Li");
    let viewer = s.token("udp", Role::Viewer, "student");
    // Both candidates are offered; the clients may check both, and UDP's priority wins.
    let _v = WhepViewer::connect(&s.url("/whep/udp"), &viewer, WhepOptions::default())
        .await
        .expect("WHEP session");
    let mut p = WhipPublisher::connect(&s.url("/whip/udp"), &teacher, WhipOptions::default())
        .await
        .expect("WHIP session");
    p.run_for(Duration::from_secs(1)).await;
    assert_eq!(transports_counted(&s, 2).await, (2, 0), "(udp, tcp) peers");
    assert_eq!(live_transports(&s, "udp").await, vec!["udp", "udp"]);
    p.close().await.ok();
}
