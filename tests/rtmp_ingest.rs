//! RTMP push from classroom hardware, with ffmpeg as the encoder (libx264 + AAC, as a recording
//! host or OBS sends): the stream reaches a WHEP player of the room as H.264 it can decode and
//! Opus it can hear; streams browsers cannot play are refused with a named reason.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::TestServer;
use ketang_loadtest::{ClientOptions, VideoCodecs, WhepOptions, WhepViewer};
use ketang_sfu::Role;
use tokio::process::Command;

async fn rtmp_server() -> (TestServer, String) {
    let s = TestServer::start_with(|c| {
        c.rtmp.enabled = true;
        c.rtmp.listen = "127.0.0.1:0".parse().unwrap();
    })
    .await;
    let addr = s.server.rtmp_addr.expect("RTMP listener");
    (s, format!("rtmp://{addr}/live"))
}

fn h264_player() -> WhepOptions {
    WhepOptions {
        client: ClientOptions {
            video_codecs: VideoCodecs::H264,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// ffmpeg publishing a test picture and a 440 Hz tone for `seconds`, with extra x264 options.
fn ffmpeg(url: &str, seconds: u32, x264: &[&str]) -> Command {
    let mut c = Command::new("ffmpeg");
    c.args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "50"])
        .args(x264)
        .args(["-c:a", "aac", "-b:a", "96k", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtmp_encoder_reaches_a_whep_player_as_h264_and_opus() {
    let (s, base) = rtmp_server().await;
    let teacher = s.token("hw", Role::Teacher, "录播主机");
    let viewer = s.token("hw", Role::Viewer, "player");
    let player = WhepViewer::connect(&s.url("/whep/hw"), &viewer, h264_player())
        .await
        .expect("WHEP session");
    let url = format!("{base}/hw?t={teacher}");
    let mut encoder = ffmpeg(&url, 8, &["-profile:v", "baseline", "-bf", "0"])
        .spawn()
        .expect("ffmpeg runs");
    let (got, _) = player
        .wait_for(Duration::from_secs(10), |st| {
            st.video.keyframes >= 2 && st.audio.packets >= 100
        })
        .await;
    eprintln!(
        "player: {} video packets, {} keyframes, {} lost; {} audio packets",
        got.video.unique_packets, got.video.keyframes, got.video.lost_packets, got.audio.packets
    );
    // The picture: keyframes every 2 s (-g 50 at 25 fps) and the frames between them.
    assert!(
        got.video.keyframes >= 2,
        "{} keyframes",
        got.video.keyframes
    );
    assert!(
        got.video.unique_packets > 100,
        "{}",
        got.video.unique_packets
    );
    // The sound: AAC re-encoded as Opus, 50 packets a second.
    assert!(
        got.audio.packets >= 100,
        "{} audio packets",
        got.audio.packets
    );
    // The encoder is in the room as its link's teacher while it publishes.
    let snap = s
        .server
        .state
        .media
        .snapshots()
        .await
        .into_iter()
        .find(|r| r.room.as_str() == "hw")
        .expect("the room is live");
    assert!(
        snap.participants
            .iter()
            .any(|p| p.name == "录播主机" && p.role == Role::Teacher),
        "{:?}",
        snap.participants
    );
    let status = tokio::time::timeout(Duration::from_secs(20), encoder.wait())
        .await
        .expect("ffmpeg ends")
        .expect("ffmpeg status");
    assert!(status.success(), "ffmpeg: {status}");
    // When the encoder stops, it leaves the room.
    let mut left = false;
    for _ in 0..50 {
        let snaps = s.server.state.media.snapshots().await;
        left = !snaps
            .iter()
            .flat_map(|r| &r.participants)
            .any(|p| p.name == "录播主机");
        if left {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(left, "the RTMP publisher is still in the room");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_frames_and_bad_links_are_refused_with_their_reason() {
    let (s, base) = rtmp_server().await;
    let teacher = s.token("hw", Role::Teacher, "encoder");
    let viewer = s.token("hw", Role::Viewer, "player");
    let player = WhepViewer::connect(&s.url("/whep/hw"), &viewer, h264_player())
        .await
        .expect("WHEP session");
    // x264's default: B-frames, which WebRTC players do not reorder.
    let mut encoder = ffmpeg(&format!("{base}/hw?t={teacher}"), 4, &["-bf", "3"])
        .spawn()
        .expect("ffmpeg runs");
    let _ = tokio::time::timeout(Duration::from_secs(20), encoder.wait()).await;
    // A forged link never gets a room.
    let mut forged = ffmpeg(&format!("{base}/hw?t=not-a-token"), 2, &["-bf", "0"])
        .spawn()
        .expect("ffmpeg runs");
    let forged_status = tokio::time::timeout(Duration::from_secs(20), forged.wait())
        .await
        .expect("ffmpeg ends")
        .expect("ffmpeg status");
    assert!(!forged_status.success(), "a forged link was accepted");
    let stats = player.stats();
    assert_eq!(stats.video.keyframes, 0, "B-frame video reached the player");
    let metrics = reqwest::get(s.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let b_frames = metric(&metrics, "ketang_rtmp_errors_total{reason=\"bFrames\"}");
    let refused = metric(&metrics, "ketang_rtmp_errors_total{reason=\"refused\"}");
    assert_eq!(b_frames, 1.0, "{metrics}");
    assert_eq!(refused, 1.0, "{metrics}");
}
