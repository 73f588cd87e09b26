//! H.264 lessons through the whole server (issue 15's checks): a WHIP publisher sending H.264
//! (x264 constrained baseline, as OBS does) and a 440 Hz Opus tone in a recorded lesson ends up
//! in the library as fragmented MP4 that ffprobe calls h264 + opus, as long as the lesson,
//! decoding cleanly with the tone in it; and `kill -9` of `ketang serve` during an H.264
//! recording leaves an entry listed as recovered that plays to within 2 s of the kill.

mod recording_common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ketang_loadtest::media::{Clip, H264ClipSpec};
use ketang_loadtest::ws::{WsClient, WsOptions, ws_url};
use ketang_loadtest::{WhipOptions, WhipPublisher};
use ketang_sfu::Role;
use recording_common as rc;

/// `ketang serve` in a temporary data directory, an admin key, and room tokens.
struct Server {
    child: std::process::Child,
    base: String,
    key: String,
    config: std::path::PathBuf,
    data: std::path::PathBuf,
}

impl Server {
    fn setup(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
        let data = dir.join("data");
        let config = dir.join("ketang.toml");
        std::fs::write(
            &config,
            format!(
                "[http]\nlisten = \"127.0.0.1:0\"\n[media]\nlisten = \"127.0.0.1:0\"\nshards = 1\n\
                 [storage]\ndata_dir = \"{}\"\n[log]\nfilter = \"info\"\n",
                data.display()
            ),
        )
        .expect("config");
        let out = Command::new(env!("CARGO_BIN_EXE_ketang"))
            .args(["admin", "create-key", "h264 test", "--config"])
            .arg(&config)
            .output()
            .expect("create-key");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (config, data, key)
    }

    fn start(config: &Path, data: &Path, key: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ketang"))
            .args(["serve", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ketang starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[ketang] {line}");
                if line.contains("Ketang is serving")
                    && let Some(addr) = line.split("http=").nth(1)
                {
                    let addr = addr.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(format!("http://{addr}"));
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => Server {
                child,
                base,
                key: key.to_owned(),
                config: config.to_owned(),
                data: data.to_owned(),
            },
            Err(e) => {
                let _ = child.kill();
                panic!("the server did not say it serves within 60 s: {e}");
            }
        }
    }

    fn token(&self, room: &str, role: Role, name: &str) -> String {
        let secret = ketang::auth::load_or_create_secret(None, &self.data).expect("secret");
        let tokens = ketang::auth::TokenAuthority::new(&secret, Duration::from_secs(30));
        let req = ketang::auth::MintRequest {
            room: ketang_sfu::RoomId::new(room).expect("room"),
            role,
            name: name.into(),
            classroom: None,
            mode: None,
            not_before: None,
            ttl: Duration::from_secs(3600),
        };
        tokens
            .mint(&req, std::time::SystemTime::now())
            .expect("token")
    }

    /// GET `path` with the admin key as JSON until `ok` holds (at most `within`).
    async fn poll(
        &self,
        path: &str,
        within: Duration,
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + within;
        loop {
            let got = http
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.key)
                .send()
                .await;
            if let Ok(r) = got
                && r.status() == 200
                && let Ok(v) = r.json::<serde_json::Value>().await
                && ok(&v)
            {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{path}: not as expected within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Downloads an entry's file into `to`; returns its Content-Type.
    async fn download(&self, id: &str, to: &Path) -> String {
        let r = reqwest::Client::new()
            .get(format!("{}/api/v1/library/{id}/download", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("download");
        assert_eq!(r.status(), 200);
        let ct = r.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        std::fs::write(to, r.bytes().await.expect("bytes")).expect("write");
        ct
    }
}

/// An H.264 publisher with the tone, and the teacher's signaling session that starts the
/// recording; returns them once the library lists the recording, with its id.
async fn h264_lesson(s: &Server, room: &str, dir: &Path) -> (WhipPublisher, WsClient, String) {
    let clip = Clip::generate_h264(
        dir,
        &H264ClipSpec {
            width: 640,
            height: 360,
            fps: 25,
            bitrate_bps: 600_000,
            seconds: 4,
            keyframe_interval: 25,
        },
    )
    .expect("H.264 clip (ffmpeg with libx264)");
    let tone: Arc<[Bytes]> = rc::tone_packets(440.0, 50 * 30)
        .iter()
        .map(|p| Bytes::copy_from_slice(p))
        .collect();
    let options = WhipOptions {
        clip: Some(clip),
        audio_packets: Some(tone),
        ..Default::default()
    };
    let publisher = WhipPublisher::connect(
        &format!("{}/whip/{room}", s.base),
        &s.token(room, Role::Teacher, "encoder"),
        options,
    )
    .await
    .expect("WHIP H.264 teacher");
    let url = ws_url(&s.base, &s.token(room, Role::Teacher, "李老师")).expect("ws url");
    let teacher = WsClient::connect(&url, WsOptions::default(), None)
        .await
        .expect("teacher on signaling");
    assert!(
        teacher
            .send(serde_json::json!({"type": "startRecording"}))
            .await
    );
    let running = s
        .poll("/api/v1/library", Duration::from_secs(15), |v| {
            v["items"][0]["state"] == "recording"
        })
        .await;
    let id = running["items"][0]["id"].as_str().expect("id").to_owned();
    (publisher, teacher, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h264_whip_lesson_is_in_the_library_as_mp4_with_picture_and_sound() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (config, data, key) = Server::setup(tmp.path());
    let mut s = Server::start(&config, &data, &key);
    let (mut publisher, teacher, id) = h264_lesson(&s, "h264-lesson", tmp.path()).await;
    let started = Instant::now();
    let sent = publisher.run_for(Duration::from_secs(20)).await;
    assert!(
        teacher
            .send(serde_json::json!({"type": "stopRecording"}))
            .await
    );
    let lesson = started.elapsed().as_secs_f64();
    let e = s
        .poll(
            &format!("/api/v1/library/{id}"),
            Duration::from_secs(30),
            |v| v["state"] == "ready",
        )
        .await;
    let _ = publisher.close().await;
    drop(teacher);
    // The room's recording is over for the live side too (its file was started as .webm).
    s.poll("/api/v1/library/status", Duration::from_secs(5), |v| {
        v["active"].as_array().is_some_and(|a| a.is_empty())
    })
    .await;
    assert_eq!(e["container"], "mp4", "{e:#}");
    assert_eq!(e["codecs"], serde_json::json!(["h264", "opus"]), "{e:#}");
    let path = tmp.path().join("lesson.mp4");
    assert_eq!(s.download(&id, &path).await, "video/mp4");
    let probe = rc::ffprobe(&path);
    assert_eq!(rc::codecs(&probe), ["h264", "opus"]);
    let d = rc::format_duration(&probe).expect("duration");
    let frames = rc::video_frames(&path);
    println!(
        "sent {} video frames in {lesson:.2} s; the file: {d:.2} s, {} frames",
        sent.video.frames,
        frames.len()
    );
    assert!(
        (d - lesson).abs() <= 1.0,
        "{d:.2} s of a {lesson:.2} s lesson"
    );
    assert!(
        frames.len() as u64 >= sent.video.frames * 9 / 10,
        "{} frames",
        frames.len()
    );
    assert!(frames.iter().all(|f| (f.1, f.2) == (640, 360)));
    let errors = rc::ffmpeg_errors(&path);
    assert!(errors.is_empty(), "ffmpeg: {errors}");
    let audio = rc::decode_audio(&path);
    for at in [2.0, 10.0, 18.0] {
        let from = (at * 48_000.0) as usize;
        let db = rc::tone_db(&audio[from..from + 24_000], 440.0);
        assert!(db > -6.0, "440 Hz at {at} s: {db:.1} dB");
    }
    let _ = s.child.kill();
    let _ = s.child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_an_h264_recording_leaves_a_recovered_entry_that_plays() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (config, data, key) = Server::setup(tmp.path());
    let mut s = Server::start(&config, &data, &key);
    let (mut publisher, teacher, id) = h264_lesson(&s, "h264-crash", tmp.path()).await;
    let started = Instant::now();
    publisher.run_for(Duration::from_secs(8)).await;
    s.child.kill().expect("SIGKILL");
    let recorded = started.elapsed().as_secs_f64();
    let _ = s.child.wait();
    drop(publisher);
    drop(teacher);
    assert_eq!(
        rc::files(&s.data, ".mp4.part").len(),
        1,
        "the kill left the live MP4"
    );

    let s = Server::start(&s.config, &s.data, &s.key);
    let e = s
        .poll(
            &format!("/api/v1/library/{id}"),
            Duration::from_secs(30),
            |v| v["state"] == "ready",
        )
        .await;
    assert_eq!(e["recovered"], true, "{e:#}");
    assert_eq!(e["container"], "mp4", "{e:#}");
    assert_eq!(e["codecs"], serde_json::json!(["h264", "opus"]), "{e:#}");
    let d = e["durationMs"].as_f64().expect("duration") / 1000.0;
    let path = tmp.path().join("recovered.mp4");
    s.download(&id, &path).await;
    let frames = rc::video_frames(&path);
    let last = frames.last().map_or(0.0, |f| f.0);
    println!(
        "recorded about {recorded:.2} s before the kill; recovered {d:.2} s, video to {last:.2} s"
    );
    assert!(
        d >= recorded - 2.0 && d <= recorded + 0.5,
        "recovered {d:.2} s of about {recorded:.2} s"
    );
    assert!(last >= recorded - 2.0, "video decodes to {last:.2} s");
    let errors = rc::ffmpeg_errors(&path);
    assert!(errors.is_empty(), "ffmpeg: {errors}");
    assert!(rc::files(&s.data, ".mp4.part").is_empty());
    let mut s = s;
    let _ = s.child.kill();
    let _ = s.child.wait();
}
