//! A full disk during a recorded lesson, against the real server: the recording stops, the
//! teacher is told (`error` with `recordingFailed`), the admin API shows the failure (status
//! and entry), what was written before is kept in the library, and the lesson goes on (a
//! WHEP viewer keeps receiving the teacher).
//!
//! The room's recordings directory is a 300 KiB tmpfs, so the test needs root (as
//! tests/recording_faults.rs).

mod api_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use api_common::{Api, Engine};
use ketang::auth::MintRequest;
use ketang_loadtest::ws::{WsClient, WsOptions, ws_url};
use ketang_loadtest::{WhepOptions, WhepViewer, WhipOptions, WhipPublisher};
use ketang_sfu::{Role, RoomId};
use serde_json::Value;

const ROOM: &str = "disk-full";

/// A small tmpfs mounted for the test, unmounted on drop (also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).expect("mount point");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount");
        assert!(st.success(), "mounting a tmpfs needs root");
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the recorder may still hold a file open there.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn token(api: &Api, role: Role, name: &str) -> String {
    let req = MintRequest {
        room: RoomId::new(ROOM).expect("room"),
        role,
        name: name.into(),
        classroom: None,
        mode: None,
        not_before: None,
        ttl: Duration::from_secs(3600),
    };
    api.server
        .state
        .tokens
        .mint(&req, SystemTime::now())
        .expect("token")
}

async fn wait_for(api: &Api, path: &str, within: Duration, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let r = api.get(path).await;
        if r.status == 200 && ok(&r.body) {
            return r.body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} not as expected within {within:?}: {} {:#}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_recording_and_the_lesson_goes_on() {
    let tmp = tempfile::tempdir().expect("tmp");
    let recordings = tmp.path().join("recordings");
    // Recordings go to {dir}/{room}/: only this room's directory is small.
    let _disk = Tmpfs::mount(&recordings.join(ROOM), "160k");
    let dir = recordings.clone();
    let api = Api::start_with(Engine::Sqlite, move |c| c.recording.dir = dir).await;

    let mut publisher = WhipPublisher::connect(
        &api.url(&format!("/whip/{ROOM}")),
        &token(&api, Role::Teacher, "encoder"),
        // A light stream (100 kbit/s video), as in tests/whip_whep.rs: the viewer runs in this
        // test process, and on a loaded machine its late feedback reads as congestion to the
        // bandwidth estimate, which may pause the one video layer for a while. That policy is
        // tested in sfu/tests; this test is about the disk.
        WhipOptions {
            video: Some(ketang_loadtest::media::Vp8Config {
                bitrate_bps: 100_000,
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await
    .expect("WHIP teacher");
    let viewer = WhepViewer::connect(
        &api.url(&format!("/whep/{ROOM}")),
        &token(&api, Role::Viewer, "家长"),
        WhepOptions::default(),
    )
    .await
    .expect("WHEP viewer");
    let teacher = WsClient::connect(
        &ws_url(&api.base, &token(&api, Role::Teacher, "李老师")).expect("ws url"),
        WsOptions::default(),
        None,
    )
    .await
    .expect("teacher on signaling");
    assert!(
        teacher
            .send(serde_json::json!({"type": "startRecording"}))
            .await
    );

    // Publish until the disk is full and the teacher is told (bounded).
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        publisher.run_for(Duration::from_millis(500)).await;
        if teacher.stats().errors.contains_key("recordingFailed") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recordingFailed for the teacher: {:?}",
            teacher.stats()
        );
    }

    // The admin API shows it.
    let status = api.get("/api/v1/library/status").await.expect(200);
    let failure = &status.body["recentFailures"][0];
    assert_eq!(failure["room"], ROOM, "{:#}", status.body);
    let error = failure["error"].as_str().unwrap_or("").to_owned();
    assert!(error.contains("No space left"), "{error}");
    assert_eq!(status.body["active"], serde_json::json!([]));
    let id = failure["recordingId"]
        .as_str()
        .expect("recording id")
        .to_owned();
    let entry = wait_for(
        &api,
        &format!("/api/v1/library/{id}"),
        Duration::from_secs(20),
        |e| e["state"] != "recording",
    )
    .await;
    assert_eq!(entry["error"], error.as_str(), "{entry:#}");
    println!(
        "the recording stopped on {error:?}; the entry is {} with {} ms",
        entry["state"], entry["durationMs"]
    );
    // What was written before the disk filled is kept and plays.
    if entry["state"] == "ready" {
        assert!(
            entry["durationMs"].as_i64().is_some_and(|d| d > 0),
            "{entry:#}"
        );
        let r = api
            .client
            .get(api.url(&format!("/api/v1/library/{id}/media")))
            .bearer_auth(&api.key)
            .header("range", "bytes=0-99")
            .send()
            .await
            .expect("media");
        assert_eq!(r.status(), 206);
    } else {
        assert_eq!(entry["state"], "failed", "{entry:#}");
    }

    // The lesson goes on: the viewer keeps receiving the teacher, signaling stays up.
    let before = viewer.stats().video.unique_packets;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        publisher.run_for(Duration::from_millis(500)).await;
        let after = viewer.stats().video.unique_packets;
        if after > before + 20 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the viewer got {before} then {after} packets"
        );
    }
    assert!(teacher.is_connected());
    drop(viewer);
    let _ = publisher.close().await;
    teacher.leave(Duration::from_secs(3)).await;
    api.finish().await;
}
