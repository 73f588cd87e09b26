//! Standard players that give no transport-wide congestion feedback (aiortc, GStreamer,
//! hardware decoders: RTCP receiver reports and NACKs only), against the real server on
//! loopback: a webrtc-rs WHEP player with its TWCC interceptor off. They get every packet of a
//! stream their link carries, their first frame at once, and the best simulcast layer.

mod common;

use std::time::Duration;

use common::TestServer;
use ketang_loadtest::media::{Clip, H264ClipSpec, Vp8Config};
use ketang_loadtest::{
    ClientOptions, VideoCodecs, WhepOptions, WhepViewer, WhipOptions, WhipPublisher,
};
use ketang_sfu::Role;

/// A player that sends only receiver reports and NACKs.
fn plain_player() -> WhepOptions {
    WhepOptions {
        client: ClientOptions {
            transport_cc: false,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn camera(bitrate_bps: u32) -> Vp8Config {
    Vp8Config {
        bitrate_bps,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_without_twcc_gets_every_packet_and_its_first_frame_at_once() {
    let s = TestServer::start().await;
    let teacher = s.token("plain", Role::Teacher, "Ms Li");
    let viewer = s.token("plain", Role::Viewer, "player");
    // One player watches from before the teacher starts: it must get every packet.
    let early = WhepViewer::connect(&s.url("/whep/plain"), &viewer, plain_player())
        .await
        .expect("WHEP session");
    let options = WhipOptions {
        video: Some(camera(1_500_000)),
        ..Default::default()
    };
    let mut p = WhipPublisher::connect(&s.url("/whip/plain"), &teacher, options)
        .await
        .expect("WHIP session");
    let sending = tokio::spawn(async move {
        let sent = p.run_for(Duration::from_secs(30)).await;
        (p, sent)
    });
    // Another joins a running lesson: its first frame comes at once (the keyframe it needs
    // is asked for at once), not after the link has proven itself.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let late = WhepViewer::connect(&s.url("/whep/plain"), &viewer, plain_player())
        .await
        .expect("second WHEP session");
    let (late_first, _) = late
        .wait_for(Duration::from_secs(5), |st| st.video.keyframes > 0)
        .await;
    let (p, sent) = sending.await.expect("publisher task");
    let (got, _) = early
        .wait_for(Duration::from_secs(3), |st| {
            st.video.unique_packets >= sent.video.packets
        })
        .await;
    let first_ms = late_first
        .video
        .first_arrival_us
        .map(|t| t.saturating_sub(late.answered_at_us()) / 1000);
    eprintln!(
        "sent {} video packets, the early player received {} ({} never); the late player's \
         first video {first_ms:?} ms after its answer",
        sent.video.packets, got.video.unique_packets, got.video.lost_packets
    );
    assert!(sent.video.packets > 3000, "sent {}", sent.video.packets);
    assert!(
        got.video.unique_packets * 1000 >= sent.video.packets * 999,
        "{} of {} video packets",
        got.video.unique_packets,
        sent.video.packets
    );
    let first_ms = first_ms.expect("the late player got no video");
    assert!(
        first_ms <= 150,
        "first video {first_ms} ms after the answer"
    );
    p.close().await.unwrap();
    early.close().await.unwrap();
    late.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_without_twcc_gets_the_top_simulcast_layer() {
    let s = TestServer::start().await;
    let teacher = s.token("layers", Role::Teacher, "Ms Li");
    let viewer = s.token("layers", Role::Viewer, "player");
    let v = WhepViewer::connect(&s.url("/whep/layers"), &viewer, plain_player())
        .await
        .expect("WHEP session");
    let options = WhipOptions {
        video: Some(camera(1_500_000)),
        simulcast: Some([150_000, 500_000, 1_500_000]),
        ..Default::default()
    };
    let mut p = WhipPublisher::connect(&s.url("/whip/layers"), &teacher, options)
        .await
        .expect("WHIP session");
    let sending = tokio::spawn(async move {
        let sent = p.run_for(Duration::from_secs(8)).await;
        (p, sent)
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = v.stats().video.bytes;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let bps = (v.stats().video.bytes - before) * 8 / 4;
    let (p, _) = sending.await.expect("publisher task");
    eprintln!("the player received {bps} bit/s of video");
    // The top layer is 1.5 Mbit/s; the middle one 0.5.
    assert!(bps > 1_100_000, "{bps} bit/s: not the top layer");
    p.close().await.unwrap();
    v.close().await.unwrap();
}

/// Issue 11 with an encoder's stream: single-layer H.264 (constrained baseline, as OBS or a
/// hardware encoder sends it over WHIP) at 2.5 Mbit/s, to players without TWCC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_without_twcc_gets_every_h264_packet_and_its_first_frame_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = Clip::generate_h264(
        dir.path(),
        &H264ClipSpec {
            width: 1280,
            height: 720,
            bitrate_bps: 2_500_000,
            ..Default::default()
        },
    )
    .expect("H.264 clip (needs ffmpeg with libx264)");
    let clip_bps = clip.bitrate_bps();
    let s = TestServer::start().await;
    let teacher = s.token("h264", Role::Teacher, "Ms Li");
    let viewer = s.token("h264", Role::Viewer, "player");
    let h264_player = || {
        let mut o = plain_player();
        o.client.video_codecs = VideoCodecs::Vp8AndH264;
        o
    };
    let early = WhepViewer::connect(&s.url("/whep/h264"), &viewer, h264_player())
        .await
        .expect("WHEP session");
    let options = WhipOptions {
        clip: Some(clip),
        ..Default::default()
    };
    let mut p = WhipPublisher::connect(&s.url("/whip/h264"), &teacher, options)
        .await
        .expect("WHIP session");
    let sending = tokio::spawn(async move {
        let sent = p.run_for(Duration::from_secs(30)).await;
        (p, sent)
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let late = WhepViewer::connect(&s.url("/whep/h264"), &viewer, h264_player())
        .await
        .expect("second WHEP session");
    let (late_first, _) = late
        .wait_for(Duration::from_secs(5), |st| st.video.keyframes > 0)
        .await;
    let (p, sent) = sending.await.expect("publisher task");
    let (got, _) = early
        .wait_for(Duration::from_secs(3), |st| {
            st.video.unique_packets >= sent.video.packets
        })
        .await;
    let first_ms = late_first
        .video
        .first_keyframe_us
        .map(|t| t.saturating_sub(late.answered_at_us()) / 1000);
    eprintln!(
        "H.264 clip at {clip_bps} bit/s: sent {} video packets ({} keyframes, {} requests), \
         the early player received {} ({} never, {} keyframes); the late player's first \
         keyframe {first_ms:?} ms after its answer",
        sent.video.packets,
        sent.video.keyframes,
        sent.keyframe_requests,
        got.video.unique_packets,
        got.video.lost_packets,
        got.video.keyframes
    );
    assert!(
        (2_200_000..2_800_000).contains(&clip_bps),
        "clip {clip_bps} bit/s"
    );
    assert!(sent.video.packets > 6000, "sent {}", sent.video.packets);
    assert!(got.video.keyframes > 0, "the early player got no keyframe");
    assert!(
        got.video.unique_packets * 1000 >= sent.video.packets * 999,
        "{} of {} video packets",
        got.video.unique_packets,
        sent.video.packets
    );
    let first_ms = first_ms.expect("the late player got no keyframe");
    assert!(
        first_ms <= 150,
        "first keyframe {first_ms} ms after the answer"
    );
    p.close().await.unwrap();
    early.close().await.unwrap();
    late.close().await.unwrap();
}
