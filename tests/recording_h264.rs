//! H.264 lessons recorded with their picture (issue 15 item 1): fragmented MP4 with H.264 +
//! Opus, checked with ffprobe/ffmpeg; a stage that switches between VP8 and H.264 keeps one
//! lesson in codec segments, each a playable file.

mod recording_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ketang::recording::{Finished, Recorder, RecorderSettings, RecordingStatus};
use ketang_loadtest::media::{Clip, H264ClipSpec};
use ketang_sfu::{PeerId, RecordEvent, RoomId, VideoCodec};
use recording_common as rc;
use rtc::rtp::codec::h264::H264Payloader;
use rtc::rtp::packetizer::Payloader;

/// 25 fps, 320×180 constrained baseline, an IDR every second.
fn h264_clip(dir: &std::path::Path) -> Clip {
    Clip::generate_h264(
        dir,
        &H264ClipSpec {
            width: 320,
            height: 180,
            fps: 25,
            bitrate_bps: 300_000,
            seconds: 4,
            keyframe_interval: 25,
        },
    )
    .expect("H.264 clip (ffmpeg with libx264)")
}

/// RFC 6184 payloads of one Annex-B access unit, as a WebRTC sender makes them (SPS and PPS
/// in a STAP-A, FU-A for large NAL units).
fn h264_payloads(p: &mut H264Payloader, au: &Bytes) -> Vec<Vec<u8>> {
    p.payload(1200, au)
        .expect("payload")
        .into_iter()
        .map(|b| b.to_vec())
        .collect()
}

fn is_idr(au: &[u8]) -> bool {
    au.windows(4)
        .any(|w| w[..3] == [0, 0, 1] && w[3] & 0x1f == 5)
}

/// Feeds a lesson of `frames` 40 ms frames with the 440 Hz tone; `codec_at(f)` says which
/// codec frame `f` is (VP8 frames come from the shared VP8 camera clip).
fn feed(
    room: &RoomId,
    frames: usize,
    clip: &Clip,
    codec_at: impl Fn(usize) -> VideoCodec,
) -> Vec<RecordEvent> {
    let media = rc::media();
    let vp8 = &media.cam;
    let base = Instant::now();
    let tone = rc::tone_packets(440.0, frames * 2);
    let mut events = vec![RecordEvent::Started { room: room.clone() }];
    let mut seq = 0u64;
    let mut payloader = H264Payloader::default();
    // Each codec's frames count from its first one, so every segment starts at a keyframe.
    let mut first_of = None;
    for (k, packet) in tone.iter().enumerate() {
        let at = base + Duration::from_millis(20 * k as u64);
        events.push(RecordEvent::Audio {
            room: room.clone(),
            track: rc::TEACHER_MIC,
            peer: PeerId(1),
            seq: k as u64,
            ts: 960 * k as u32,
            payload: packet.clone(),
            at,
        });
        if k % 2 == 1 {
            continue;
        }
        let f = k / 2;
        let codec = codec_at(f);
        let start = match first_of {
            Some((c, s)) if c == codec => s,
            _ => {
                first_of = Some((codec, f));
                f
            }
        };
        let i = f - start;
        let (payloads, key) = match codec {
            VideoCodec::H264 => {
                let au = clip.frame(i % clip.len()).expect("frame").clone();
                (h264_payloads(&mut payloader, &au), is_idr(&au))
            }
            _ => {
                let frame = &vp8[i % 30];
                (rc::vp8_payloads(frame, f as u16), frame[0] & 1 == 0)
            }
        };
        let n = payloads.len();
        for (j, p) in payloads.into_iter().enumerate() {
            seq += 1;
            events.push(RecordEvent::Video {
                room: room.clone(),
                track: rc::CAM,
                codec,
                seq,
                ts: 3600 * f as u32,
                marker: j + 1 == n,
                keyframe: key && j == 0,
                payload: Arc::from(p),
                at,
            });
        }
    }
    events.push(RecordEvent::Stopped { room: room.clone() });
    events
}

fn record(events: Vec<RecordEvent>, files: usize) -> (Vec<Finished>, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tmp");
    let (sink, handle) = Recorder::start(RecorderSettings::new(tmp.path())).expect("recorder");
    let mut status = handle.subscribe();
    for e in events {
        sink.blocking_send(e).expect("alive");
    }
    let mut done = Vec::new();
    while done.len() < files {
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
    (done, tmp)
}

fn check(f: &Finished, codecs: [&str; 2], secs: f64) -> Vec<(f64, u32, u32)> {
    let probe = rc::ffprobe(&f.path);
    let errors = rc::ffmpeg_errors(&f.path);
    assert!(errors.is_empty(), "{}: {errors}", f.path.display());
    assert_eq!(rc::codecs(&probe), codecs, "{}", f.path.display());
    let d = rc::format_duration(&probe).expect("duration");
    let frames = rc::video_frames(&f.path);
    println!(
        "{}: {d:.2} s, {} video frames, drops {:?}",
        f.path.display(),
        frames.len(),
        f.drops
    );
    assert!((d - secs).abs() <= 0.5, "{}: {d} s", f.path.display());
    let audio = rc::decode_audio(&f.path);
    let mid = audio.len() / 2;
    let db = rc::tone_db(&audio[mid.saturating_sub(12_000)..mid + 12_000], 440.0);
    assert!(db > -6.0, "{}: 440 Hz at {db:.1} dB", f.path.display());
    frames
}

#[test]
fn an_h264_lesson_is_recorded_with_its_picture_in_mp4() {
    let tmp = tempfile::tempdir().expect("tmp");
    let clip = h264_clip(tmp.path());
    let room = RoomId::new("h264-2").expect("id");
    let events = feed(&room, 100, &clip, |_| VideoCodec::H264);
    let (done, _dir) = record(events, 1);
    let f = &done[0];
    assert_eq!(f.path.extension().and_then(|e| e.to_str()), Some("mp4"));
    let frames = check(f, ["h264", "opus"], 4.0);
    assert!(frames.len() >= 95, "{} frames", frames.len());
    assert!(frames.iter().all(|f| (f.1, f.2) == (320, 180)));
    assert_eq!(f.drops.unsupported_video, 0);
    assert_eq!(f.drops.skipped_frames, 0);
}

#[test]
fn a_stage_switching_between_vp8_and_h264_keeps_one_lesson_in_codec_segments() {
    let tmp = tempfile::tempdir().expect("tmp");
    let clip = h264_clip(tmp.path());
    let room = RoomId::new("switch-1").expect("id");
    // VP8 for 3 s, H.264 for 3 s, VP8 again for 3 s.
    let codec = |f: usize| match f {
        75..150 => VideoCodec::H264,
        _ => VideoCodec::Vp8,
    };
    let events = feed(&room, 225, &clip, codec);
    let (done, _dir) = record(events, 3);
    let names: Vec<String> = done
        .iter()
        .map(|f| {
            let n = f.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.split_once('.').map_or(n, |(_, ext)| ext).to_owned()
        })
        .collect();
    assert_eq!(names, ["webm", "seg2.mp4", "seg3.webm"]);
    let sources: Vec<Option<&str>> = done.iter().map(|f| f.source.as_deref()).collect();
    assert_eq!(sources, [None, Some("seg2"), Some("seg3")]);
    let first = check(&done[0], ["vp8", "opus"], 3.0);
    let second = check(&done[1], ["h264", "opus"], 3.0);
    let third = check(&done[2], ["vp8", "opus"], 3.0);
    // Every segment starts at 0 and holds its codec's pictures.
    for frames in [&first, &second, &third] {
        assert!(frames.len() >= 70, "{} frames", frames.len());
        assert!(frames[0].0 < 0.1, "starts at {}", frames[0].0);
    }
    let total: f64 = done.iter().map(|f| f.duration.as_secs_f64()).sum();
    assert!((total - 9.0).abs() <= 0.5, "{total} s in all");
}
