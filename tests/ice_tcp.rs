//! ICE over TCP (RFC 6544, RFC 4571 framing) against the real server on loopback: webrtc-rs
//! clients with no UDP socket at all publish over WHIP and play over WHEP through the shard's
//! passive TCP candidate.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::TestServer;
use ketang_loadtest::{ClientOptions, WhepOptions, WhepViewer, WhipOptions, WhipPublisher};
use ketang_sfu::Role;

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
