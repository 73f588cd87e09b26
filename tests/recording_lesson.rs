//! A recorded lesson, checked with ffprobe/ffmpeg: VP8 + Opus, the expected duration, a clean
//! decode, 440 Hz throughout and 880 Hz only while the classroom is on stage, the resolution
//! change at the screen share, seekability, per-track files, and a second room interleaved.

mod recording_common;

use std::time::{Duration, Instant};

use ketang::recording::{Recorder, RecorderSettings, RecordingStatus};
use recording_common as rc;

const SECS: f64 = 12.0;
const STAGE: (f64, f64) = (3.5, 7.5);
const SWITCH: f64 = 6.0;

#[test]
fn a_recorded_lesson_plays_with_its_tones_and_the_screen_share() {
    // KETANG_REC_KEEP=1 keeps the recordings for a look.
    let keep = std::env::var_os("KETANG_REC_KEEP").is_some();
    let tmp = tempfile::Builder::new()
        .disable_cleanup(keep)
        .tempdir()
        .expect("tmp");
    println!("recording into {}", tmp.path().display());
    let mut settings = RecorderSettings::new(tmp.path());
    settings.per_track = true;
    let (sink, handle) = Recorder::start(settings).expect("recorder");
    let mut status = handle.subscribe();

    let base = Instant::now();
    let mut main = rc::Lesson::new("math-101", SECS);
    main.switch_at = Some(SWITCH);
    main.stage = Some(STAGE);
    main.audio_loss_every = Some(53);
    main.drop_video_at = Some(2.4);
    let mut other = rc::Lesson::new("art-7", 5.0);
    other.video = false;
    other.seed = 99;
    // Two rooms' events interleave in the one queue, as from one shard.
    let mut events = rc::lesson(&main, base);
    events.extend(rc::lesson(&other, base));
    events.sort_by_key(|(d, e)| (*d, !matches!(e, ketang_sfu::RecordEvent::Started { .. })));
    let fed = Instant::now();
    for (_, e) in events {
        sink.blocking_send(e).expect("recorder alive");
    }

    let mut finished = Vec::new();
    while finished.len() < 7 {
        // math-101: the lesson, camera, screen and two mics; art-7: the lesson and its mic.
        match rc::wait_status(&mut status, Duration::from_secs(60), |s| {
            matches!(
                s,
                RecordingStatus::Finished(_) | RecordingStatus::Failed { .. }
            )
        }) {
            RecordingStatus::Finished(f) => finished.push(f),
            other => panic!("{other:?}"),
        }
    }
    let took = fed.elapsed();
    assert!(handle.shutdown(Duration::from_secs(30)), "shutdown in time");
    let all = rc::files(tmp.path(), ".webm");
    assert!(rc::files(tmp.path(), ".part").is_empty(), "no .part left");

    let lesson = all
        .iter()
        .find(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.starts_with("math-101-") && !n.contains(".t")
        })
        .expect("lesson file")
        .clone();
    println!("recorded {SECS} s of lesson + 5 s of a second room in {took:?}");

    // Container facts.
    let probe = rc::ffprobe(&lesson);
    let codecs = rc::codecs(&probe);
    assert_eq!(codecs, ["vp8", "opus"], "{probe}");
    let duration = rc::format_duration(&probe).expect("duration in the file");
    println!("ffprobe duration {duration:.3} s (expected {SECS})");
    assert!((duration - SECS).abs() <= 0.5, "duration {duration}");
    assert_eq!(
        probe["streams"][0]["width"], 640,
        "track header: first size"
    );
    let errors = rc::ffmpeg_errors(&lesson);
    assert!(errors.is_empty(), "ffmpeg -v error printed: {errors}");

    // The resolution follows the stage: 640x360 until the share, 1280x720 after.
    let frames = rc::video_frames(&lesson);
    let first_big = frames
        .iter()
        .find(|f| f.1 == 1280)
        .expect("1280x720 frames");
    println!(
        "{} video frames; first 1280x720 at {:.3} s",
        frames.len(),
        first_big.0
    );
    assert!(
        (first_big.0 - SWITCH).abs() <= 0.5,
        "switch at {}",
        first_big.0
    );
    assert!(
        frames
            .iter()
            .all(|f| (f.1, f.2) == (640, 360) || (f.1, f.2) == (1280, 720))
    );
    assert!(
        frames
            .iter()
            .filter(|f| f.0 < SWITCH - 0.1)
            .all(|f| f.1 == 640)
    );
    // A lost packet at 2.4 s: frames until the next keyframe (3.0 s) are left out, not broken.
    let gap = frames
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .fold(0.0, f64::max);
    assert!(gap > 0.3 && gap < 1.1, "largest frame gap {gap}");
    assert!(frames.len() > 300, "{} frames", frames.len());

    // The tones: 440 Hz in every 0.5 s window, 880 Hz only on stage.
    let pcm = rc::decode_audio(&lesson);
    let secs = pcm.len() as f64 / 48_000.0;
    assert!((secs - SECS).abs() <= 0.5, "audio {secs} s");
    let mut report = String::new();
    for (i, w) in pcm.chunks_exact(24_000).enumerate() {
        let (t0, t1) = (i as f64 * 0.5, i as f64 * 0.5 + 0.5);
        let (a, b) = (rc::tone_db(w, 440.0), rc::tone_db(w, 880.0));
        report += &format!("{t0:>4.1}s 440:{a:>6.1} dB 880:{b:>6.1} dB\n");
        assert!(a > -6.0, "440 Hz missing at {t0}: {a:.1} dB\n{report}");
        let on = t0 >= STAGE.0 && t1 <= STAGE.1;
        let off = t1 <= STAGE.0 - 0.5 || t0 >= STAGE.1 + 0.5;
        if on {
            assert!(b > -6.0, "880 Hz missing at {t0}: {b:.1} dB\n{report}");
        }
        if off {
            assert!(
                b < -30.0,
                "880 Hz outside the stage at {t0}: {b:.1} dB\n{report}"
            );
        }
    }
    println!("{report}");

    // Seekable: Cues and a seek to 8 s decode from there.
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-ss", "8", "-i"])
        .arg(&lesson)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success() && out.stderr.is_empty());
    let bytes = std::fs::read(&lesson).expect("read");
    assert!(
        bytes.windows(4).any(|w| w == [0x1C, 0x53, 0xBB, 0x6B]),
        "Cues"
    );

    // The status carries the facts, and the sidecar too.
    let f = finished
        .iter()
        .find(|f| f.path == lesson)
        .expect("status of the lesson");
    assert_eq!(f.bytes, bytes.len() as u64);
    assert!((f.duration.as_secs_f64() - SECS).abs() <= 0.5);
    assert_eq!(f.sha256.len(), 64);
    println!("drops inside the recorder: {:?}", f.drops);
    assert_eq!(f.drops.incomplete_frames, 1, "{:?}", f.drops);
    assert!(f.drops.concealed_ms >= 100, "{:?}", f.drops);
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lesson.with_extension("json")).expect("json"))
            .expect("sidecar");
    assert_eq!(sidecar["state"], "finished");
    assert_eq!(sidecar["sha256"], f.sha256.as_str());
    assert_eq!(sidecar["room"], "math-101");

    // Per-track files: the camera (while on stage), the screen, both mics as received.
    let names: Vec<String> = all
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .collect();
    for want in ["t12-video", "t13-video", "t11-audio", "t21-audio"] {
        let p = all
            .iter()
            .find(|p| p.to_str().is_some_and(|s| s.contains(want)))
            .unwrap_or_else(|| panic!("{want} in {names:?}"));
        let probe = rc::ffprobe(p);
        let expect = if want.ends_with("video") {
            "vp8"
        } else {
            "opus"
        };
        assert_eq!(rc::codecs(&probe), [expect], "{want}");
        let errors = rc::ffmpeg_errors(p);
        assert!(errors.is_empty(), "{want}: {errors}");
    }
    let class = all
        .iter()
        .find(|p| p.to_str().is_some_and(|s| s.contains("t21-audio")))
        .expect("classroom mic");
    let class_secs = rc::decode_audio(class).len() as f64 / 48_000.0;
    println!("classroom mic file: {class_secs:.2} s of audio");
    assert!(class_secs > 3.5, "{class_secs}");

    // The second room, interleaved in the same queue, is its own good file.
    let art = all
        .iter()
        .find(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.starts_with("art-7-") && !n.contains(".t")
        })
        .expect("art-7 file");
    let probe = rc::ffprobe(art);
    let d = rc::format_duration(&probe).expect("duration");
    assert!((d - 5.0).abs() <= 0.5, "art-7 {d}");
    assert!(rc::ffmpeg_errors(art).is_empty());
}

/// RFC 9628 payloads of one VP9 frame (one spatial layer): picture id, B/E bits, P on
/// inter frames.
fn vp9_payloads(frame: &[u8], picture_id: u16, key: bool) -> Vec<Vec<u8>> {
    let chunks: Vec<&[u8]> = frame.chunks(1200).collect();
    let n = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let mut b0 = 0x80u8; // I: picture id present
            if !key {
                b0 |= 0x40;
            }
            if i == 0 {
                b0 |= 0x08;
            }
            if i + 1 == n {
                b0 |= 0x04;
            }
            let mut p = vec![b0, 0x80 | (picture_id >> 8) as u8 & 0x7f, picture_id as u8];
            p.extend_from_slice(c);
            p
        })
        .collect()
}

#[test]
fn vp9_is_recorded_as_vp9_and_undecodable_h264_is_not_written() {
    use ketang_sfu::{PeerId, RecordEvent, RoomId, VideoCodec};
    use std::sync::Arc;

    let media = rc::media();
    let vp9 = rc::encode(
        &media.dir,
        "vp9.ivf",
        "testsrc=size=320x180:rate=30",
        "libvpx-vp9",
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let (sink, handle) = Recorder::start(RecorderSettings::new(tmp.path())).expect("recorder");
    let mut status = handle.subscribe();
    let base = Instant::now();
    let tone = rc::tone_packets(440.0, 150);
    let (r9, r264) = (
        RoomId::new("vp9-1").expect("id"),
        RoomId::new("h264-1").expect("id"),
    );
    let mut events = vec![
        RecordEvent::Started { room: r9.clone() },
        RecordEvent::Started { room: r264.clone() },
    ];
    let mut seq = 0u64;
    for (k, packet) in tone.iter().enumerate() {
        let at = base + Duration::from_millis(20 * k as u64);
        for room in [&r9, &r264] {
            events.push(RecordEvent::Audio {
                room: room.clone(),
                track: rc::TEACHER_MIC,
                peer: PeerId(1),
                seq: k as u64,
                ts: 960 * k as u32,
                payload: packet.clone(),
                at,
            });
        }
        if k % 2 == 1 {
            continue;
        }
        // A video frame every 40 ms: VP9 in one room, and the same bytes labelled H.264 (never
        // an IDR, so nothing to start a picture from; real H.264: tests/recording_h264.rs).
        let f = k / 2;
        let frame = &vp9[f % vp9.len()];
        // VP9 profile 0: frame_type is bit 2 of the first byte (0: keyframe).
        let key = frame[0] & 0x04 == 0;
        let ts = 3600 * f as u32;
        let payloads = vp9_payloads(frame, f as u16, key);
        let n = payloads.len();
        for (i, p) in payloads.into_iter().enumerate() {
            seq += 1;
            for (room, codec) in [(&r9, VideoCodec::Vp9), (&r264, VideoCodec::H264)] {
                events.push(RecordEvent::Video {
                    room: room.clone(),
                    track: rc::CAM,
                    codec,
                    seq,
                    ts,
                    marker: i + 1 == n,
                    keyframe: key && i == 0,
                    payload: Arc::from(p.clone()),
                    at,
                });
            }
        }
    }
    events.push(RecordEvent::Stopped { room: r9 });
    events.push(RecordEvent::Stopped { room: r264 });
    for e in events {
        sink.blocking_send(e).expect("alive");
    }
    let mut done = Vec::new();
    while done.len() < 2 {
        match rc::wait_status(&mut status, Duration::from_secs(60), |s| {
            matches!(
                s,
                RecordingStatus::Finished(_) | RecordingStatus::Failed { .. }
            )
        }) {
            RecordingStatus::Finished(f) => done.push(f),
            other => panic!("{other:?}"),
        }
    }
    assert!(handle.shutdown(Duration::from_secs(30)));
    for f in &done {
        let probe = rc::ffprobe(&f.path);
        let errors = rc::ffmpeg_errors(&f.path);
        assert!(errors.is_empty(), "{}: {errors}", f.room);
        let d = rc::format_duration(&probe).expect("duration");
        assert!((d - 3.0).abs() <= 0.5, "{}: {d}", f.room);
        let frames = rc::video_frames(&f.path);
        println!(
            "{}: {:?}, {} video frames, drops {:?}",
            f.room,
            rc::codecs(&probe),
            frames.len(),
            f.drops
        );
        if f.room.as_str() == "vp9-1" {
            assert_eq!(rc::codecs(&probe), ["vp9", "opus"]);
            assert!(frames.len() >= 70, "{}", frames.len());
            assert!(frames.iter().all(|f| (f.1, f.2) == (320, 180)));
            assert_eq!(f.drops.unsupported_video, 0);
        } else {
            // The lesson's sound is kept; the undecodable video is counted, not written.
            assert!(frames.is_empty());
            assert!(
                f.drops.skipped_frames + f.drops.incomplete_frames >= 50,
                "{:?}",
                f.drops
            );
            assert!(rc::tone_db(&rc::decode_audio(&f.path)[24_000..48_000], 440.0) > -6.0);
        }
    }
}
