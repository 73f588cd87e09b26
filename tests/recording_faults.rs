//! Faults around the recorder: a full disk stops one room's recording cleanly while the others
//! go on and the sink keeps accepting events; a stalled writer never blocks the sender, and
//! what does not fit the queue is counted.

mod recording_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ketang::recording::{Recorder, RecorderSettings, RecordingStatus};
use ketang_sfu::RecordEvent;
use recording_common as rc;
use tokio::sync::mpsc::error::TrySendError;

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

#[test]
fn a_full_disk_stops_that_room_only_and_nothing_blocks() {
    let tmp = tempfile::tempdir().expect("tmp");
    // Recordings go to dir/<room>/: room "full-a" gets a 200 KiB disk, "ok-b" the real one.
    let _disk = Tmpfs::mount(&tmp.path().join("full-a"), "200k");
    let mut settings = RecorderSettings::new(tmp.path());
    settings.queue = 100_000;
    let (sink, handle) = Recorder::start(settings).expect("recorder");
    let mut status = handle.subscribe();

    let base = Instant::now();
    let a = rc::Lesson::new("full-a", 10.0);
    let mut b = rc::Lesson::new("ok-b", 10.0);
    b.seed = 3;
    let mut events = rc::lesson(&a, base);
    let stop_a = events.pop().expect("Stopped");
    events.extend(rc::lesson(&b, base));
    events.sort_by_key(|(d, e)| (*d, !matches!(e, RecordEvent::Started { .. })));
    let mut slowest = Duration::ZERO;
    for (_, e) in events {
        let t = Instant::now();
        sink.try_send(e).expect("queue has room");
        slowest = slowest.max(t.elapsed());
    }
    let failed = rc::wait_status(&mut status, Duration::from_secs(60), |s| {
        matches!(s, RecordingStatus::Failed { .. })
    });
    let RecordingStatus::Failed {
        room,
        error,
        partial,
    } = failed
    else {
        unreachable!()
    };
    assert_eq!(room.as_str(), "full-a");
    println!("full-a failed: {error}; kept {partial:?}");
    let finished = rc::wait_status(&mut status, Duration::from_secs(60), |s| {
        matches!(s, RecordingStatus::Finished(_))
    });
    let RecordingStatus::Finished(fin) = finished else {
        unreachable!()
    };
    assert_eq!(fin.room.as_str(), "ok-b");

    // After the failure the sink still takes events of the failed room, at once.
    let more = rc::lesson(&a, base + Duration::from_secs(10));
    let n = more.len();
    for (_, e) in more.into_iter().skip(1).take(n - 2).chain([stop_a]) {
        let t = Instant::now();
        sink.try_send(e).expect("still accepting");
        slowest = slowest.max(t.elapsed());
    }
    println!("slowest try_send: {slowest:?}");
    assert!(slowest < Duration::from_millis(50), "{slowest:?}");
    assert!(handle.shutdown(Duration::from_secs(30)));

    // The other room's lesson is whole.
    let probe = rc::ffprobe(&fin.path);
    let d = rc::format_duration(&probe).expect("duration");
    println!("ok-b: {d:.2} s, {} bytes", fin.bytes);
    assert!((d - 10.0).abs() <= 0.5, "{d}");
    assert!(rc::ffmpeg_errors(&fin.path).is_empty());

    // What the full disk got stays playable up to the failure.
    let partial = partial.expect("a partial file");
    let errors = rc::ffmpeg_errors(&partial);
    assert!(errors.is_empty(), "{}: {errors}", partial.display());
    let secs = rc::decode_audio(&partial).len() as f64 / 48_000.0;
    let size = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    println!(
        "full-a kept {} ({size} bytes): {secs:.2} s playable",
        partial.display()
    );
    assert!(secs > 1.0, "{secs}");
    assert!(size <= 200 * 1024);
    let stats = handle_stats_after(&tmp);
    assert!(stats, "sidecar of the failed room exists");
}

/// The failed room's sidecar is there (written at start, before the disk filled).
fn handle_stats_after(tmp: &tempfile::TempDir) -> bool {
    rc::files(&tmp.path().join("full-a"), ".json").len() == 1
}

#[derive(Default)]
struct Stall {
    armed: bool,
    stalled: bool,
    released: bool,
}

#[test]
fn a_stalled_writer_never_blocks_the_sender_and_drops_are_counted() {
    let tmp = tempfile::tempdir().expect("tmp");
    let gate = Arc::new((Mutex::new(Stall::default()), Condvar::new()));
    let mut settings = RecorderSettings::new(tmp.path());
    settings.queue = 16;
    let hook_gate = gate.clone();
    // The writer stops on the next event once armed, the way a write into a dying disk would.
    settings.on_event = Some(Arc::new(move |_: &RecordEvent| {
        let (m, cv) = &*hook_gate;
        let mut s = m.lock().unwrap_or_else(|e| e.into_inner());
        if s.armed && !s.released {
            s.stalled = true;
            cv.notify_all();
            while !s.released {
                s = cv.wait(s).unwrap_or_else(|e| e.into_inner());
            }
        }
    }));
    let (sink, handle) = Recorder::start(settings).expect("recorder");
    let mut status = handle.subscribe();

    let mut lesson = rc::Lesson::new("slow-1", 8.0);
    lesson.stage = Some((1.0, 7.0));
    let events = rc::lesson(&lesson, Instant::now());
    // The gap ends mid-GOP (keyframes every second): the video waits for the one at 6 s.
    let (stall_from, stall_to) = (Duration::from_secs(3), Duration::from_millis(5200));
    let mut latencies = Vec::new();
    let (mut sent, mut dropped) = (0u64, 0u64);
    let mut armed = false;
    for (off, e) in events {
        if off < stall_from || off >= stall_to {
            if armed && off >= stall_to {
                let (m, cv) = &*gate;
                m.lock().unwrap_or_else(|e| e.into_inner()).released = true;
                cv.notify_all();
                armed = false;
            }
            sink.blocking_send(e).expect("alive");
            continue;
        }
        if !armed && latencies.is_empty() {
            // Let the writer catch up, arm the stall, and hand it one event to stall on: then
            // the queue is empty and exactly its capacity fits.
            let deadline = Instant::now() + Duration::from_secs(10);
            while sink.capacity() < sink.max_capacity() {
                assert!(Instant::now() < deadline, "the writer never caught up");
                std::thread::sleep(Duration::from_millis(5));
            }
            let (m, cv) = &*gate;
            m.lock().unwrap_or_else(|e| e.into_inner()).armed = true;
            sink.blocking_send(e).expect("alive");
            let mut s = m.lock().unwrap_or_else(|e| e.into_inner());
            while !s.stalled {
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(!left.is_zero(), "the writer never stalled");
                s = cv
                    .wait_timeout(s, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            armed = true;
            latencies.push(Duration::ZERO);
            continue;
        }
        // As a shard does: try, and count what does not fit.
        let t = Instant::now();
        match sink.try_send(e) {
            Ok(()) => sent += 1,
            Err(TrySendError::Full(_)) => dropped += 1,
            Err(TrySendError::Closed(_)) => panic!("recorder gone"),
        }
        latencies.push(t.elapsed());
    }
    latencies.remove(0); // the event the writer stalled on
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    let max = latencies.last().copied().unwrap_or_default();
    println!(
        "stalled for 2 s of lesson: {} try_send, {sent} queued, {dropped} dropped; p99 {p99:?}, max {max:?}",
        latencies.len()
    );
    assert_eq!(sent, 16, "exactly the queue's capacity got in");
    assert_eq!(dropped, latencies.len() as u64 - 16);
    assert!(p99 < Duration::from_millis(1), "p99 {p99:?}");
    assert!(max < Duration::from_millis(50), "max {max:?}");

    let RecordingStatus::Finished(fin) =
        rc::wait_status(&mut status, Duration::from_secs(60), |s| {
            matches!(
                s,
                RecordingStatus::Finished(_) | RecordingStatus::Failed { .. }
            )
        })
    else {
        panic!("recording failed");
    };
    assert!(handle.shutdown(Duration::from_secs(30)));
    println!("drops inside the recorder: {:?}", fin.drops);
    // The recording goes on after the gap: silence there, the video resumes at a keyframe.
    let d = rc::format_duration(&rc::ffprobe(&fin.path)).expect("duration");
    assert!((d - 8.0).abs() <= 0.5, "{d}");
    assert!(rc::ffmpeg_errors(&fin.path).is_empty());
    let frames = rc::video_frames(&fin.path);
    assert!(frames.iter().any(|f| f.0 > 5.5) && frames.iter().any(|f| f.0 < 2.5));
    assert!(
        !frames.iter().any(|f| f.0 > 3.3 && f.0 < 5.9),
        "no video from the gap"
    );
    let pcm = rc::decode_audio(&fin.path);
    let level = |from: f64| rc::tone_db(&pcm[(from * 48_000.0) as usize..][..24_000], 440.0);
    let energy = |from: f64| -> f32 {
        pcm[(from * 48_000.0) as usize..][..24_000]
            .iter()
            .map(|x| x * x)
            .sum()
    };
    println!(
        "440 Hz at 2 s {:.1} dB, at 6 s {:.1} dB; energy in the gap {:.2e}",
        level(2.0),
        level(6.0),
        energy(3.8)
    );
    assert!(level(2.0) > -6.0 && level(6.0) > -6.0);
    assert!(energy(3.8) < 1e-3, "silence in the gap");
    assert!(fin.drops.skipped_frames >= 20, "{:?}", fin.drops);
    assert!(
        fin.drops.lost_video > 0 && fin.drops.lost_audio >= 2 * 90,
        "{:?}",
        fin.drops
    );
}
