//! Crash safety: a recorder process is killed with SIGKILL mid-lesson; the `.part` it leaves
//! decodes to within 3 s of the kill, and `recover()` finalizes it into a seekable file listed
//! as recovered with its duration.
//!
//! The child is this test binary run again with `KETANG_REC_CHILD_DIR` set: the same test
//! function then records a lesson in real time until it is killed.

mod recording_common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    let errors = rc::ffmpeg_errors(&part);
    assert!(
        errors.is_empty(),
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
