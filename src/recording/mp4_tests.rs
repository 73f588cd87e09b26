//! The fragmented MP4 writer against ffprobe and ffmpeg (installed by scripts/test.sh).

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;

/// `secs` of x264 constrained baseline 640×360 at 30 fps (IDR every second) as
/// length-prefixed access units: (keyframe, AU).
fn h264_frames(dir: &Path, secs: u32) -> Vec<(bool, Vec<u8>)> {
    let path = dir.join("v.h264");
    let ok = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
        ])
        .args([
            "-t",
            &secs.to_string(),
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
        ])
        .args(["-bf", "0", "-g", "30", "-tune", "zerolatency", "-f", "h264"])
        .arg(&path)
        .status()
        .expect("ffmpeg");
    assert!(ok.success());
    let data = std::fs::read(&path).expect("clip");
    // Annex-B → NAL units → access units at each first slice (first_mb_in_slice = 0).
    let mut nals = Vec::new();
    let mut i = 0;
    let mut start = None;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            if let Some(s) = start {
                let mut e = i;
                while e > s && data[e - 1] == 0 {
                    e -= 1;
                }
                nals.push(&data[s..e]);
            }
            start = Some(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    nals.extend(start.map(|s| &data[s..]));
    let mut frames: Vec<(bool, Vec<u8>)> = Vec::new();
    let mut cur: (bool, Vec<u8>, bool) = (false, Vec::new(), false);
    for nal in nals {
        let t = nal[0] & 0x1f;
        let slice = t == 1 || t == 5;
        let new_au = (slice && nal[1] & 0x80 != 0) || matches!(t, 6..=9);
        if cur.2 && new_au {
            frames.push((cur.0, std::mem::take(&mut cur.1)));
            cur = (false, Vec::new(), false);
        }
        cur.1.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        cur.1.extend_from_slice(nal);
        cur.0 |= t == 5;
        cur.2 |= slice;
    }
    if cur.2 {
        frames.push((cur.0, cur.1));
    }
    frames
}

fn tone(frames: usize) -> Vec<Vec<u8>> {
    let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio)
        .expect("encoder");
    let mut buf = [0u8; 1500];
    (0..frames)
        .map(|k| {
            let pcm: Vec<f32> = (0..960)
                .map(|i| {
                    let n = (k * 960 + i) as f32;
                    0.3 * (2.0 * std::f32::consts::PI * 440.0 * n / 48_000.0).sin()
                })
                .collect();
            let n = enc.encode_float(&pcm, &mut buf).expect("encode");
            buf[..n].to_vec()
        })
        .collect()
}

fn probe(path: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

fn errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// 440 Hz power relative to the signal's energy, dB (Goertzel), of the decoded audio.
fn tone_db(path: &Path) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args([
            "-map", "0:a:0", "-f", "s16le", "-ac", "1", "-ar", "48000", "-",
        ])
        .output()
        .expect("ffmpeg");
    let x: Vec<f64> = out
        .stdout
        .chunks_exact(2)
        .map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .skip(4800)
        .take(48_000)
        .collect();
    let c = 2.0 * (2.0 * std::f64::consts::PI * 440.0 / 48_000.0).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for v in &x {
        let s = v + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - c * s1 * s2;
    let energy: f64 = x.iter().map(|v| v * v).sum();
    10.0 * (power / (energy * x.len() as f64 / 2.0)).max(1e-12).log10()
}

/// Writes `secs` of video and the tone interleaved by time, as the recorder does; audio
/// starts at 0, video (like a camera joining) 100 ms later.
fn write(mp4: &mut LiveMp4, secs: u32, dir: &Path) {
    let video = h264_frames(dir, secs);
    let audio = tone(secs as usize * 50);
    let (mut v, mut a) = (0, 0);
    while v < video.len() || a < audio.len() {
        let v_us = 100_000 + v as u64 * 1_000_000 / 30;
        let a_us = a as u64 * 20_000;
        if a < audio.len() && (v >= video.len() || a_us <= v_us) {
            mp4.push_audio(a_us, 20_000, &audio[a]).expect("audio");
            a += 1;
        } else {
            mp4.push_video(v_us, video[v].0, &video[v].1)
                .expect("video");
            v += 1;
        }
    }
}

fn stereo_less() -> Mp4Audio {
    Mp4Audio {
        channels: 1,
        pre_skip: 312,
    }
}

#[test]
fn h264_and_opus_play_with_their_duration_and_tone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let part = dir.path().join("l.mp4.part");
    let mut mp4 = LiveMp4::create(&part, stereo_less(), Duration::from_secs(1)).expect("create");
    // Audio before the first keyframe has nowhere to go (no header yet).
    assert!(!mp4.push_audio(0, 20_000, &[0xf8, 1, 2]).expect("push"));
    write(&mut mp4, 6, dir.path());
    let f = mp4.finalize(&dir.path().join("l.mp4")).expect("finalize");
    let p = probe(&f.path);
    let codecs: Vec<&str> = p["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|s| s["codec_name"].as_str())
        .collect();
    assert_eq!(codecs, ["h264", "opus"], "{p}");
    assert_eq!(p["streams"][0]["width"], 640);
    assert_eq!(p["streams"][0]["height"], 360);
    let d: f64 = p["format"]["duration"]
        .as_str()
        .expect("duration")
        .parse()
        .expect("f64");
    assert!((d - 6.1).abs() < 0.2, "duration {d}, {p}");
    assert!(
        (f.duration_ms as f64 / 1000.0 - 6.1).abs() < 0.1,
        "{}",
        f.duration_ms
    );
    let e = errors(&f.path);
    assert!(e.is_empty(), "ffmpeg: {e}");
    let db = tone_db(&f.path);
    assert!(db > -3.0, "440 Hz at {db:.1} dB");
}

#[test]
fn a_file_cut_mid_fragment_plays_up_to_its_last_fragment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let part = dir.path().join("c.mp4.part");
    let mut mp4 = LiveMp4::create(&part, stereo_less(), Duration::from_secs(1)).expect("create");
    write(&mut mp4, 4, dir.path());
    mp4.sync(
        Instant::now() + Duration::from_secs(5),
        Duration::from_secs(1),
    )
    .expect("sync");
    let whole = mp4.out.written();
    let in_file = mp4.committed_end_us;
    drop(mp4); // a crash: no finalize
    // A torn fragment after the last whole one.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&part)
        .expect("open");
    f.write_all(&[0, 0, 0x10, 0, b'm', b'o', b'o', b'f', 1, 2, 3])
        .expect("tear");
    drop(f);
    let (w, cut) = LiveMp4::reopen(&part).expect("reopen").expect("header");
    assert_eq!(cut, 11);
    assert_eq!(w.out.written(), whole);
    assert_eq!(w.committed_end_us, in_file);
    let f = w.finalize(&dir.path().join("c.mp4")).expect("finalize");
    let p = probe(&f.path);
    let d: f64 = p["format"]["duration"]
        .as_str()
        .expect("duration")
        .parse()
        .expect("f64");
    // Everything up to the last whole fragment: the held last frame was never written.
    assert!(d > 3.5 && d <= 4.2, "duration {d}");
    let e = errors(&f.path);
    assert!(e.is_empty(), "ffmpeg: {e}");
    // No header at all: nothing to recover.
    let empty = dir.path().join("e.mp4.part");
    std::fs::write(&empty, b"\0\0\0\x18ftypisom").expect("write");
    assert!(LiveMp4::reopen(&empty).expect("reopen").is_none());
}
