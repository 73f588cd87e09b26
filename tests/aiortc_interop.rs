//! A second independent WebRTC client: aiortc (Python) publishes over WHIP and plays over WHEP,
//! both with bundlePolicy max-bundle, through the real server on loopback. aiortc starts no
//! connectivity checks unless the m-line it bundles on lists the server's candidates, so this
//! is the test of answers every client accepts (issue 12).
//!
//! Needs the pinned venv of `scripts/aiortc-venv.sh` (scripts/test.sh creates it and sets
//! KETANG_AIORTC_PYTHON).

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::TestServer;
use ketang_sfu::Role;

fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = std::env::var_os("KETANG_AIORTC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/aiortc-venv/bin/python"));
    assert!(
        path.exists(),
        "no aiortc Python at {}: run `eval \"$(./scripts/aiortc-venv.sh)\"` first \
         (scripts/test.sh does)",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_whip_publisher_reaches_aiortc_whep_player_with_max_bundle() {
    let python = python();
    let s = TestServer::start().await;
    let teacher = s.token("aio", Role::Teacher, "aiortc teacher");
    let viewer = s.token("aio", Role::Viewer, "aiortc viewer");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/aiortc/whip_whep.py");

    let child = tokio::process::Command::new(&python)
        .arg(&script)
        .args([
            s.base.as_str(),
            "aio",
            teacher.as_str(),
            viewer.as_str(),
            "5",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python starts");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the aiortc script ends within 60 s")
        .expect("the aiortc script runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "aiortc script failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let line = stdout.lines().last().unwrap_or_default();
    let f: serde_json::Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("figures not JSON ({e}): {stdout}\n{stderr}"));
    // Shown only when the test fails: the offers and answers, aiortc's complaints.
    eprintln!("aiortc stderr:\n{stderr}\naiortc figures: {f}");

    // Candidates in both bundled m-lines of each answer, and the end marker in each.
    assert!(f["whipAnswerCandidateLines"].as_u64() >= Some(2), "{f}");
    assert!(f["whipAnswerEndOfCandidates"].as_u64() >= Some(2), "{f}");
    assert!(f["whepAnswerCandidateLines"].as_u64() >= Some(2), "{f}");
    let pub_s = f["whipConnectedS"].as_f64();
    let play_s = f["whepConnectedS"].as_f64();
    assert!(
        pub_s.is_some_and(|s| s < 5.0),
        "WHIP publisher not connected within 5 s: {f}"
    );
    assert!(
        play_s.is_some_and(|s| s < 5.0),
        "WHEP player not connected within 5 s: {f}"
    );
    // 5 s of play at aiortc's 30 frames/s and 50 audio frames/s: ask for a fair part of it
    // (the first keyframe comes after the player's PLI reaches the publisher).
    let video = f["videoFrames"].as_u64().unwrap_or(0);
    let audio = f["audioFrames"].as_u64().unwrap_or(0);
    assert!(video >= 60, "only {video} video frames decoded: {f}");
    assert!(audio >= 100, "only {audio} audio frames received: {f}");
    assert_eq!(f["videoHeight"].as_u64(), Some(480), "{f}");
}
