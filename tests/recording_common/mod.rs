//! Test media for the recording tests: real VP8 from ffmpeg/libvpx packetized as the tap sends
//! it, Opus tones from libopus, lessons as timed `RecordEvent`s, and ffmpeg/ffprobe checks.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ketang::recording::RecordingStatus;
use ketang_sfu::{
    PeerId, RecordEvent, RoomId, TrackId, TrackInfo, TrackKind, TrackSource, VideoCodec,
};
use tokio::sync::broadcast;

/// VP8 frames at 30 fps: the teacher's camera (640x360) and a shared screen (1280x720).
pub struct Media {
    pub cam: Vec<Vec<u8>>,
    pub screen: Vec<Vec<u8>>,
    pub dir: PathBuf,
}

/// Encodes the test videos once per test process (or reuses `KETANG_REC_MEDIA`).
pub fn media() -> &'static Media {
    static M: OnceLock<Media> = OnceLock::new();
    M.get_or_init(|| {
        // Shared between test processes and runs: the same inputs give the same files.
        let dir = std::env::var_os("KETANG_REC_MEDIA").map_or_else(
            || std::env::temp_dir().join("ketang-rec-media-v1"),
            PathBuf::from,
        );
        std::fs::create_dir_all(&dir).expect("media dir");
        let make = |name: &str, src: &str| encode(&dir, name, src, "libvpx");
        Media {
            cam: make("cam.ivf", "testsrc=size=640x360:rate=30"),
            screen: make("screen.ivf", "testsrc=size=1280x720:rate=30"),
            dir,
        }
    })
}

/// Encodes 13 s (camera) or 7 s of a lavfi source into `dir/name` (IVF) once; concurrent
/// test processes race harmlessly (each writes its own temporary file, then renames).
pub fn encode(dir: &Path, name: &str, src: &str, codec: &str) -> Vec<Vec<u8>> {
    let out = dir.join(name);
    if !out.exists() {
        let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
        let secs = if name.starts_with("cam") { "13" } else { "7" };
        let st = Command::new("ffmpeg")
            .args([
                "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", src, "-t", secs,
            ])
            .args([
                "-c:v",
                codec,
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-g",
                "30",
            ])
            .args([
                "-b:v",
                "400k",
                "-auto-alt-ref",
                "0",
                "-lag-in-frames",
                "0",
                "-f",
                "ivf",
            ])
            .arg(&tmp)
            .status()
            .expect("ffmpeg must be installed (apt-get install ffmpeg)");
        assert!(st.success(), "ffmpeg failed for {name}");
        std::fs::rename(&tmp, &out).expect("rename");
    }
    parse_ivf(&std::fs::read(&out).expect("ivf"))
}

/// The frames of an IVF file.
pub fn parse_ivf(b: &[u8]) -> Vec<Vec<u8>> {
    assert_eq!(&b[..4], b"DKIF");
    let header = u16::from_le_bytes([b[6], b[7]]) as usize;
    let mut at = header;
    let mut frames = Vec::new();
    while at + 12 <= b.len() {
        let n = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
        at += 12;
        frames.push(b[at..at + n].to_vec());
        at += n;
    }
    frames
}

/// RFC 7741 payloads of one frame: extended descriptor with a 15-bit picture id, ≤1200 bytes.
pub fn vp8_payloads(frame: &[u8], picture_id: u16) -> Vec<Vec<u8>> {
    frame
        .chunks(1200)
        .enumerate()
        .map(|(i, chunk)| {
            let s = if i == 0 { 0x10 } else { 0 };
            let mut p = vec![
                0x80 | s,
                0x80,
                0x80 | (picture_id >> 8) as u8 & 0x7f,
                picture_id as u8,
            ];
            p.extend_from_slice(chunk);
            p
        })
        .collect()
}

/// A small deterministic PRNG (xorshift64*).
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A lesson to feed.
#[derive(Clone)]
pub struct Lesson {
    pub room: &'static str,
    pub secs: f64,
    pub video: bool,
    /// The screen share replaces the camera from here (at the screen's first keyframe).
    pub switch_at: Option<f64>,
    /// A classroom (880 Hz) is on stage during this interval.
    pub stage: Option<(f64, f64)>,
    /// Drop every n-th teacher audio packet.
    pub audio_loss_every: Option<usize>,
    /// Drop the second packet of the video frame nearest this time.
    pub drop_video_at: Option<f64>,
    pub jitter_ms: u64,
    pub seed: u64,
}

impl Lesson {
    pub fn new(room: &'static str, secs: f64) -> Self {
        Lesson {
            room,
            secs,
            video: true,
            switch_at: None,
            stage: None,
            audio_loss_every: None,
            drop_video_at: None,
            jitter_ms: 15,
            seed: 7,
        }
    }
}

pub const TEACHER_MIC: TrackId = TrackId(11);
pub const CLASS_MIC: TrackId = TrackId(21);
pub const CAM: TrackId = TrackId(12);
pub const SCREEN: TrackId = TrackId(13);

fn mic(track: TrackId, peer: u64) -> TrackInfo {
    TrackInfo {
        track_id: track,
        peer_id: PeerId(peer),
        kind: TrackKind::Audio,
        source: TrackSource::Mic,
    }
}

fn cam(track: TrackId, source: TrackSource) -> TrackInfo {
    TrackInfo {
        track_id: track,
        peer_id: PeerId(1),
        kind: TrackKind::Video,
        source,
    }
}

/// Opus packets (20 ms, mono) of a sine tone, one per 20 ms.
pub fn tone_packets(hz: f32, frames: usize) -> Vec<Arc<[u8]>> {
    let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio)
        .expect("encoder");
    let mut buf = [0u8; 1500];
    (0..frames)
        .map(|k| {
            let pcm: Vec<f32> = (0..960)
                .map(|i| {
                    let n = (k * 960 + i) as f32;
                    0.3 * (2.0 * std::f32::consts::PI * hz * n / 48_000.0).sin()
                })
                .collect();
            let n = enc.encode_float(&pcm, &mut buf).expect("encode");
            Arc::from(&buf[..n])
        })
        .collect()
}

/// The events of a lesson as the tap emits them: (offset from the start, event). Started is
/// first and Stopped last; media is sorted by arrival, with jitter.
pub fn lesson(l: &Lesson, base: Instant) -> Vec<(Duration, RecordEvent)> {
    let room = RoomId::new(l.room).expect("room id");
    let mut rng = Rng(l.seed | 1);
    let mut ev: Vec<(Duration, RecordEvent)> = Vec::new();
    let at = |t: f64, rng: &mut Rng, jitter: u64| {
        Duration::from_secs_f64(t) + Duration::from_micros(rng.below(jitter * 1000 + 1))
    };
    let frames = (l.secs * 50.0) as usize;
    let teacher = tone_packets(440.0, frames);
    let class = tone_packets(880.0, frames);
    let t_ts0: u32 = 0xFFFF_0000; // wraps after ~1.4 s
    let c_ts0: u32 = 123_456;
    for k in 0..frames {
        let t = k as f64 * 0.02;
        if l.audio_loss_every.is_none_or(|n| k % n != 7) {
            ev.push((
                at(t, &mut rng, l.jitter_ms),
                RecordEvent::Audio {
                    room: room.clone(),
                    track: TEACHER_MIC,
                    peer: PeerId(1),
                    seq: 1000 + k as u64,
                    ts: t_ts0.wrapping_add(960 * k as u32),
                    payload: teacher[k].clone(),
                    at: base,
                },
            ));
        }
        if let Some((s, e)) = l.stage
            && t >= s
            && t < e
        {
            ev.push((
                at(t, &mut rng, l.jitter_ms),
                RecordEvent::Audio {
                    room: room.clone(),
                    track: CLASS_MIC,
                    peer: PeerId(2),
                    seq: 50 + k as u64,
                    ts: c_ts0.wrapping_add(960 * k as u32),
                    payload: class[k].clone(),
                    at: base,
                },
            ));
        }
    }
    if let Some((s, e)) = l.stage {
        let v = Some(cam(CAM, TrackSource::Camera));
        let both = vec![mic(TEACHER_MIC, 1), mic(CLASS_MIC, 2)];
        ev.push((Duration::from_secs_f64(s), sources(&room, v.clone(), both)));
        ev.push((
            Duration::from_secs_f64(e),
            sources(&room, v, vec![mic(TEACHER_MIC, 1)]),
        ));
    }
    if l.video {
        let m = media();
        let v_ts0: u32 = 0xFFF0_0000; // wraps after ~11.6 s
        let mut seq = 5_000u64;
        let n = (l.secs * 30.0) as usize;
        let switch_frame = l.switch_at.map(|s| (s * 30.0).round() as usize);
        for f in 0..n {
            let t = f as f64 / 30.0;
            let (track, frame) = match switch_frame {
                Some(sf) if f >= sf => (SCREEN, &m.screen[(f - sf) % m.screen.len()]),
                _ => (CAM, &m.cam[f % m.cam.len()]),
            };
            if switch_frame == Some(f) {
                let v = Some(cam(SCREEN, TrackSource::Screen));
                ev.push((
                    Duration::from_secs_f64(t),
                    sources(&room, v, vec![mic(TEACHER_MIC, 1)]),
                ));
            }
            let key = frame[0] & 1 == 0;
            let drop_here = l
                .drop_video_at
                .is_some_and(|d| (d * 30.0).round() as usize == f);
            let payloads = vp8_payloads(frame, f as u16);
            let count = payloads.len();
            let jitter = at(t, &mut rng, l.jitter_ms);
            for (i, p) in payloads.into_iter().enumerate() {
                seq += 1;
                if drop_here && i == count.min(2) - 1 {
                    continue;
                }
                ev.push((
                    jitter + Duration::from_micros(200 * i as u64),
                    RecordEvent::Video {
                        room: room.clone(),
                        track,
                        codec: VideoCodec::Vp8,
                        seq,
                        ts: v_ts0.wrapping_add((t * 90_000.0).round() as u32),
                        marker: i + 1 == count,
                        keyframe: key && i == 0,
                        payload: Arc::from(p),
                        at: base,
                    },
                ));
            }
        }
    }
    ev.sort_by_key(|(d, _)| *d);
    let mut out = vec![(Duration::ZERO, RecordEvent::Started { room: room.clone() })];
    for (d, mut e) in ev {
        match &mut e {
            RecordEvent::Audio { at, .. } | RecordEvent::Video { at, .. } => *at = base + d,
            _ => {}
        }
        out.push((d, e));
    }
    out.push((
        Duration::from_secs_f64(l.secs),
        RecordEvent::Stopped { room },
    ));
    out
}

fn sources(room: &RoomId, video: Option<TrackInfo>, audio: Vec<TrackInfo>) -> RecordEvent {
    RecordEvent::Sources {
        room: room.clone(),
        video,
        audio,
    }
}

/// Waits (bounded) for a status matching `pred`.
pub fn wait_status(
    rx: &mut broadcast::Receiver<RecordingStatus>,
    within: Duration,
    pred: impl Fn(&RecordingStatus) -> bool,
) -> RecordingStatus {
    let deadline = Instant::now() + within;
    loop {
        match rx.try_recv() {
            Ok(s) if pred(&s) => return s,
            Ok(_) => {}
            Err(broadcast::error::TryRecvError::Empty) => {
                assert!(
                    Instant::now() < deadline,
                    "no matching status within {within:?}"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("status channel: {e}"),
        }
    }
}

/// `ffmpeg -v error -i FILE -f null -`: what it prints (empty when the file decodes cleanly).
pub fn ffmpeg_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `ffprobe -show_format -show_streams` as JSON.
pub fn ffprobe(path: &Path) -> serde_json::Value {
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

/// Codec names of the streams.
pub fn codecs(probe: &serde_json::Value) -> Vec<String> {
    probe["streams"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|s| s["codec_name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The container's duration in seconds (`None`: not in the file).
pub fn format_duration(probe: &serde_json::Value) -> Option<f64> {
    probe["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
}

/// Decoded video frames: (time, width, height).
pub fn video_frames(path: &Path) -> Vec<(f64, u32, u32)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["frame=pts_time,width,height", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',');
            let t = f.next()?.parse().ok()?;
            let w = f.next()?.parse().ok()?;
            let h = f.next()?.parse().ok()?;
            Some((t, w, h))
        })
        .collect()
}

/// The audio decoded to 48 kHz mono 16-bit PCM.
pub fn decode_audio(path: &Path) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args([
            "-map", "0:a:0", "-f", "s16le", "-ac", "1", "-ar", "48000", "-",
        ])
        .output()
        .expect("ffmpeg");
    out.stdout
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect()
}

/// Goertzel power of `hz` in `x`, relative to the window's energy (0 dB: all of it).
pub fn tone_db(x: &[f32], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / 48_000.0;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s = f64::from(v) + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - c * s1 * s2;
    let energy: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    let n = x.len() as f64;
    // A pure tone of energy E has Goertzel power ≈ E·N/2.
    10.0 * ((power / (energy * n / 2.0)).max(1e-12)).log10()
}

/// Every `*.webm` (not `.part`) under `dir`, recursively one level.
pub fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.to_str().is_some_and(|s| s.ends_with(suffix)) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
