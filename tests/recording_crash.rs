//! Crash safety: a recorder process is killed with SIGKILL mid-lesson; the `.part` it leaves
//! decodes to within 3 s of the kill, and `recover()` finalizes it into a seekable file listed
//! as recovered with its duration.
//!
//! The child is this test binary run again with `KETANG_REC_CHILD_DIR` set: the same test
//! function then records a lesson in real time until it is killed.
//!
//! The same for the whole server: `ketang serve` is killed with SIGKILL while a WHIP teacher's
//! lesson is recorded; after the restart the library lists the lesson as ready and
//! "recovered", with a duration that reaches to within 3 s of the kill, and its file's audio
//! decodes that far.

mod recording_common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ketang::library::catalog::{self, Entry, LessonFacts};
use ketang::library::ids::RecordingId;
use ketang::recording::{Recorder, RecorderSettings, recover};
use recording_common as rc;

const CHILD_ENV: &str = "KETANG_REC_CHILD_DIR";
const TEST_NAME: &str = "kill_9_mid_lesson_leaves_a_playable_part_that_recover_finalizes";
/// Media time fed before the kill.
const KILL_AFTER: f64 = 6.0;

#[test]
fn kill_9_mid_lesson_leaves_a_playable_part_that_recover_finalizes() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        record_until_killed(Path::new(&dir));
        return;
    }
    let media = rc::media();
    let tmp = tempfile::tempdir().expect("tmp");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, tmp.path())
        .env("KETANG_REC_MEDIA", &media.dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(t) = line
                .strip_prefix("fed ")
                .and_then(|t| t.parse::<f64>().ok())
                && tx.send(t).is_err()
            {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let fed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(t) if t >= KILL_AFTER => break t,
            Ok(_) => {}
            Err(e) => {
                let _ = child.kill();
                panic!("child did not get to {KILL_AFTER} s of lesson: {e}");
            }
        }
    };
    child.kill().expect("SIGKILL");
    let killed = Instant::now();
    let _ = child.wait();
    println!("killed the recorder after {fed:.2} s of lesson");

    // The live file as the crash left it.
    let parts = rc::files(tmp.path(), ".webm.part");
    assert_eq!(parts.len(), 1, "{parts:?}");
    let part = parts[0].clone();
    let part_bytes = std::fs::metadata(&part).expect("part").len();
    // kill -9 may cut the last cluster mid-write: ffmpeg then says the file ended early,
    // which is the crash itself; anything else is damage.
    let errors = rc::ffmpeg_errors(&part);
    let damage: Vec<&str> = errors
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("File ended prematurely"))
        .collect();
    assert!(
        damage.is_empty(),
        "the .part does not decode cleanly: {errors}"
    );
    let audio = rc::decode_audio(&part).len() as f64 / 48_000.0;
    let video = rc::video_frames(&part).last().map_or(0.0, |f| f.0);
    println!(
        ".part: {part_bytes} bytes, audio decodes to {audio:.2} s, last video frame {video:.2} s"
    );
    assert!(audio >= fed - 3.0, "audio only to {audio:.2} s of {fed:.2}");
    assert!(video >= fed - 3.0, "video only to {video:.2} s of {fed:.2}");

    // Recovery at the next start.
    let t = Instant::now();
    let rec = recover(tmp.path()).expect("recover");
    let took = t.elapsed();
    println!(
        "recover() took {took:?} ({:?} after the kill): {rec:?}",
        killed.elapsed()
    );
    assert_eq!(rec.len(), 1);
    let r = &rec[0];
    assert_eq!(r.room, "crash-1");
    assert!(r.path.extension().is_some_and(|e| e == "webm"));
    assert!(!part.exists(), "the .part is gone");
    let d = r.duration.as_secs_f64();
    assert!(
        (d - audio).abs() <= 0.5,
        "listed {d:.2} s, decodes {audio:.2} s"
    );
    let probe = rc::ffprobe(&r.path);
    assert_eq!(rc::codecs(&probe), ["vp8", "opus"]);
    let pd = rc::format_duration(&probe).expect("Duration written");
    assert!((pd - d).abs() <= 0.1, "file says {pd}, listed {d}");
    assert!(rc::ffmpeg_errors(&r.path).is_empty());
    let bytes = std::fs::read(&r.path).expect("file");
    assert!(
        bytes.windows(4).any(|w| w == [0x1C, 0x53, 0xBB, 0x6B]),
        "Cues"
    );
    assert_eq!(r.bytes, bytes.len() as u64);
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(r.path.with_extension("json")).expect("json"))
            .expect("sidecar");
    assert_eq!(sidecar["recovered"], true);
    assert_eq!(sidecar["state"], "finished");
    assert_eq!(sidecar["sha256"], r.sha256.as_str());
    // Nothing left to recover the second time.
    assert!(recover(tmp.path()).expect("again").is_empty());
}

/// The child: a recorder fed a lesson in real time, printing how far it got.
fn record_until_killed(dir: &Path) {
    let (sink, handle) = Recorder::start(RecorderSettings::new(PathBuf::from(dir))).expect("rec");
    let mut lesson = rc::Lesson::new("crash-1", 60.0);
    lesson.stage = Some((2.0, 4.0));
    let base = Instant::now();
    let events = rc::lesson(&lesson, base);
    let mut next_report = 0.0;
    for (off, ev) in events {
        let due = base + off;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        sink.blocking_send(ev).expect("recorder alive");
        let t = off.as_secs_f64();
        if t >= next_report {
            println!("fed {t:.2}");
            let _ = std::io::stdout().flush();
            next_report += 0.5;
        }
    }
    // Only reached if nobody kills us: the parent fails on the missing kill anyway.
    handle.shutdown(Duration::from_secs(10));
}

/// `ketang serve` with `config`, its HTTP base URL once it says it serves (bounded).
struct Served {
    child: std::process::Child,
    base: String,
}

fn serve(config: &Path) -> Served {
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
        Ok(base) => Served { child, base },
        Err(e) => {
            let _ = child.kill();
            panic!("the server did not say it serves within 60 s: {e}");
        }
    }
}

/// GET `url` with the admin key as JSON, polled until `ok` holds (at most `within`).
async fn poll(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    within: Duration,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let got = http.get(url).bearer_auth(key).send().await;
        if let Ok(r) = got
            && r.status() == 200
            && let Ok(v) = r.json::<serde_json::Value>().await
            && ok(&v)
        {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{url}: not as expected within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_server_mid_lesson_lists_the_recording_as_recovered() {
    use ketang_loadtest::ws::{WsClient, WsOptions, ws_url};
    use ketang_loadtest::{WhipOptions, WhipPublisher};
    use ketang_sfu::Role;

    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let config = tmp.path().join("ketang.toml");
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
        .args(["admin", "create-key", "crash test", "--config"])
        .arg(&config)
        .output()
        .expect("create-key");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let http = reqwest::Client::new();

    let mut s = serve(&config);
    let secret = ketang::auth::load_or_create_secret(None, &data).expect("secret");
    let tokens = ketang::auth::TokenAuthority::new(&secret, Duration::from_secs(30));
    let token = |role, name: &str| {
        let req = ketang::auth::MintRequest {
            room: ketang_sfu::RoomId::new("crash-2").expect("room"),
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
    };
    let mut publisher = WhipPublisher::connect(
        &format!("{}/whip/crash-2", s.base),
        &token(Role::Teacher, "encoder"),
        WhipOptions::default(),
    )
    .await
    .expect("WHIP teacher");
    let url = ws_url(&s.base, &token(Role::Teacher, "李老师")).expect("ws url");
    let teacher = WsClient::connect(&url, WsOptions::default(), None)
        .await
        .expect("teacher on signaling");
    assert!(
        teacher
            .send(serde_json::json!({"type": "startRecording"}))
            .await
    );
    let list = format!("{}/api/v1/library", s.base);
    let running = poll(&http, &list, &key, Duration::from_secs(15), |v| {
        v["items"][0]["state"] == "recording"
    })
    .await;
    let id = running["items"][0]["id"].as_str().expect("id").to_owned();
    let started = Instant::now();
    publisher.run_for(Duration::from_secs(6)).await;
    s.child.kill().expect("SIGKILL");
    let recorded = started.elapsed().as_secs_f64();
    let _ = s.child.wait();
    drop(publisher);
    drop(teacher);
    assert_eq!(
        rc::files(&data, ".webm.part").len(),
        1,
        "the kill left the live file"
    );

    // Two entries the crash did not make, written while the server is down: one of this
    // server whose file is gone, one that another server sharing the catalog is recording.
    let (lost, foreign) = {
        let url = ketang::db::sqlite_file_url(&data.join(ketang::db::SQLITE_FILE));
        let db = ketang::db::Db::connect(&url)
            .await
            .expect("the server's database");
        let mine = ketang::library::node_name(&data.join("recordings"));
        let mut ids = Vec::new();
        for node in [mine, "another-host:/srv/ketang/recordings".to_owned()] {
            let id = RecordingId::generate(1);
            let now = i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock")
                    .as_millis(),
            )
            .expect("ms");
            let facts = LessonFacts::ad_hoc("elsewhere", "Asia/Shanghai");
            let mut e = Entry::new(&id, "elsewhere", facts, now - 5_000, now - 5_000);
            e.node = Some(node);
            catalog::insert(&db.pool, &e).await.expect("entry");
            ids.push(id.to_string());
        }
        db.close().await;
        (ids[0].clone(), ids[1].clone())
    };

    // The next start repairs the file and the library lists it as recovered.
    let mut s = serve(&config);
    let list = format!("{}/api/v1/library", s.base);
    let entry = format!("{list}/{id}");
    let e = poll(&http, &entry, &key, Duration::from_secs(30), |v| {
        v["state"] == "ready"
    })
    .await;
    assert_eq!(e["recovered"], true, "{e:#}");
    let listed = poll(
        &http,
        &format!("{list}?recovered=true"),
        &key,
        Duration::from_secs(5),
        |v| v["items"].as_array().is_some_and(|a| a.len() == 1),
    )
    .await;
    assert_eq!(listed["items"][0]["id"], id.as_str());
    let d = e["durationMs"].as_f64().expect("duration") / 1000.0;
    println!("recorded about {recorded:.2} s before the kill; recovered {d:.2} s");
    assert!(
        d >= recorded - 3.0 && d <= recorded + 1.0,
        "recovered {d:.2} s of about {recorded:.2} s"
    );
    // The stored file decodes as far as the catalog says.
    let file = http
        .get(format!("{entry}/download"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("download")
        .bytes()
        .await
        .expect("bytes");
    let path = tmp.path().join("recovered.webm");
    std::fs::write(&path, &file).expect("write");
    let audio = rc::decode_audio(&path).len() as f64 / 48_000.0;
    assert!(
        audio >= recorded - 3.0,
        "audio decodes to {audio:.2} s of {recorded:.2}"
    );
    assert!(
        rc::files(&data, ".webm.part").is_empty(),
        "nothing left to repair"
    );
    // This server's entry without a file is marked lost; the other server's is left alone.
    let gone = poll(
        &http,
        &format!("{list}/{lost}"),
        &key,
        Duration::from_secs(10),
        |v| v["state"] == "failed",
    )
    .await;
    assert!(
        gone["error"]
            .as_str()
            .is_some_and(|e| e.contains("stopped")),
        "{gone:#}"
    );
    let theirs = poll(
        &http,
        &format!("{list}/{foreign}"),
        &key,
        Duration::from_secs(5),
        |_| true,
    )
    .await;
    assert_eq!(theirs["state"], "recording", "{theirs:#}");
    let _ = s.child.kill();
    let _ = s.child.wait();
}
