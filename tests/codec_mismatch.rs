//! No black tiles through the real server (issue 15 item 4): a classroom whose client offered
//! only VP8 is told over signaling (`codecMismatch`) within 2 s that the teacher's H.264 camera
//! cannot be shown, and the teacher (`viewerCodecMismatch`) who cannot see her; a classroom
//! that offered H.264 too is told nothing.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use ketang_loadtest::media::{Clip, H264ClipSpec};
use ketang_loadtest::send::MediaConfig;
use ketang_loadtest::send::StopWhen;
use ketang_loadtest::ws::{WsClient, WsOptions, ws_url};
use ketang_loadtest::{ClientOptions, VideoCodecs};
use ketang_sfu::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vp8_only_classroom_is_told_it_cannot_see_an_h264_camera() {
    let dir = tempfile::tempdir().expect("tmp");
    let clip = Clip::generate_h264(dir.path(), &H264ClipSpec::default()).expect("H.264 clip");
    let s = TestServer::start().await;
    let join = |role, name: &str, opts: WsOptions| {
        let url = ws_url(&s.base, &s.token("codecs", role, name)).expect("ws url");
        async move { WsClient::connect(&url, opts, None).await.expect("joined") }
    };
    let mut teacher = join(
        Role::Teacher,
        "李老师",
        WsOptions {
            publish: Some(MediaConfig {
                clip: Some(clip),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    let mut sender = teacher.take_sender().expect("publishing");
    let sending = tokio::spawn(async move {
        let stop = StopWhen {
            deadline: Some(Instant::now() + Duration::from_secs(6)),
            signal: None,
        };
        sender.run(stop, None).await
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let joined = Instant::now();
    let vp8_only = join(Role::Classroom, "三(1)班", WsOptions::default()).await;
    let both = join(
        Role::Classroom,
        "三(2)班",
        WsOptions {
            client: ClientOptions {
                video_codecs: VideoCodecs::Vp8AndH264,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await;
    let deadline = joined + Duration::from_secs(2);
    while vp8_only.stats().codec_mismatches.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let told_after = joined.elapsed();
    let told = vp8_only.stats().codec_mismatches;
    println!("told after {told_after:?}: {told:?}");
    assert_eq!(told, [(teacher.peer_id(), "H264".to_owned())]);
    assert!(told_after <= Duration::from_secs(2), "{told_after:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        teacher.stats().viewer_codec_mismatches,
        [(vp8_only.peer_id(), "H264".to_owned())],
        "the teacher is told who cannot see her"
    );
    assert!(both.stats().codec_mismatches.is_empty());
    sending.await.expect("sender");
    let _ = vp8_only.leave(Duration::from_secs(2)).await;
    let _ = both.leave(Duration::from_secs(2)).await;
    let _ = teacher.leave(Duration::from_secs(2)).await;
}
