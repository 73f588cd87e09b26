//! The JSON sidecar next to every recording file, and recovery of files left by a crash.
//!
//! `name.webm.part` is written live; `name.json` says which room it is, when it started and,
//! once finished, its duration, size and SHA-256. Finalizing renames the `.part` to `name.webm`
//! and rewrites the sidecar, so a directory listing alone tells finished from unfinished work,
//! and the facts survive a restart before the library stores them.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use ketang_sfu::RoomId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::Recovered;
use super::lesson_file::{LessonFile, Writer};
use super::mp4::LiveMp4;
use super::webm::LiveWebm;

/// What is known about one recording file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub room: String,
    pub started_unix_ms: u64,
    pub started_at: String,
    /// Final file name (in the same directory).
    pub file: String,
    /// `None`: the mixed lesson; else the source track (`t3-video`, `t5-audio`).
    pub source: Option<String>,
    /// `recording`, `finished`.
    pub state: String,
    pub duration_ms: Option<u64>,
    pub bytes: Option<u64>,
    pub sha256: Option<String>,
    #[serde(default)]
    pub recovered: bool,
    /// What the file holds: `["h264", "opus"]`, `["vp8", "opus"]`, `["opus"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codecs: Vec<String>,
    /// Where a codec segment (`source` = `seg2`, …) starts in the lesson, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_ms: Option<u64>,
    #[serde(skip)]
    dir: PathBuf,
}

impl Manifest {
    pub fn new(room: &str, started: SystemTime, target: &Path, source: Option<String>) -> Self {
        let unix_ms = started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Manifest {
            room: room.to_owned(),
            started_unix_ms: unix_ms,
            started_at: jiff::Timestamp::try_from(started)
                .map(|t| t.to_string())
                .unwrap_or_default(),
            file: target
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned(),
            source,
            state: "recording".into(),
            duration_ms: None,
            bytes: None,
            sha256: None,
            recovered: false,
            codecs: Vec::new(),
            offset_ms: None,
            dir: target.parent().unwrap_or(Path::new(".")).to_owned(),
        }
    }

    pub fn started(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(self.started_unix_ms)
    }

    pub fn target(&self) -> PathBuf {
        self.dir.join(&self.file)
    }

    fn path(&self) -> PathBuf {
        sidecar(&self.target())
    }

    pub fn finished(&mut self, duration_ms: u64, bytes: u64, sha256: Option<String>) {
        self.state = "finished".into();
        self.duration_ms = Some(duration_ms);
        self.bytes = Some(bytes);
        self.sha256 = sha256.or(self.sha256.take());
    }

    /// Writes the sidecar atomically (temporary file, then rename).
    pub fn store(&self) -> io::Result<()> {
        let path = self.path();
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, &path)
    }

    fn load(target: &Path) -> Option<Self> {
        let bytes = std::fs::read(sidecar(target)).ok()?;
        let mut m: Manifest = serde_json::from_slice(&bytes).ok()?;
        // The file is the one next to the sidecar, whatever the sidecar says.
        m.file = target.file_name()?.to_str()?.to_owned();
        m.dir = target.parent()?.to_owned();
        Some(m)
    }
}

/// `name.webm` → `name.json`.
fn sidecar(target: &Path) -> PathBuf {
    target.with_extension("json")
}

/// A finished file in the recordings directory, as its sidecar describes it: what the library
/// imports (also files finished before a restart that were not imported yet).
#[derive(Debug, Clone)]
pub struct OnDisk {
    pub path: PathBuf,
    pub room: String,
    /// `None`: the lesson; else the source track (`t3-video`).
    pub source: Option<String>,
    pub started: SystemTime,
    pub duration: Duration,
    pub bytes: u64,
    /// Absent when the file was finalized after a failure (not hashed by the recorder).
    pub sha256: Option<String>,
    pub recovered: bool,
    /// See [`Manifest::codecs`].
    pub codecs: Vec<String>,
}

/// The finished file `path` (`….webm`) and its sidecar; `None` if either is missing or the
/// sidecar does not say finished.
pub fn finished_file(path: &Path) -> Option<OnDisk> {
    let m = Manifest::load(path)?;
    if m.state != "finished" || !path.is_file() {
        return None;
    }
    Some(OnDisk {
        path: path.to_owned(),
        room: m.room.clone(),
        source: m.source.clone(),
        started: m.started(),
        duration: Duration::from_millis(m.duration_ms.unwrap_or(0)),
        bytes: m.bytes.unwrap_or(0),
        sha256: m.sha256.clone(),
        recovered: m.recovered,
        codecs: m.codecs.clone(),
    })
}

/// Every finished file under `dir` (its room folders), lessons before per-track files.
pub fn finished_files(dir: &Path) -> io::Result<Vec<OnDisk>> {
    let mut out = Vec::new();
    for room in std::fs::read_dir(dir)? {
        let room = room?;
        if !room.file_type()?.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(room.path())? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "webm" || e == "mp4")
                && let Some(f) = finished_file(&path)
            {
                out.push(f);
            }
        }
    }
    out.sort_by(|a, b| (a.source.is_some(), &a.path).cmp(&(b.source.is_some(), &b.path)));
    Ok(out)
}

/// Removes a file and its sidecar once the library has it. (Its room folder stays: the
/// recorder may be creating the room's next file in it.)
pub fn remove_finished(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)?;
    match std::fs::remove_file(sidecar(path)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes empty room folders under `dir`; only while no recorder runs on it.
pub fn prune_empty(dir: &Path) -> io::Result<()> {
    for room in std::fs::read_dir(dir)? {
        let room = room?;
        if room.file_type()?.is_dir() {
            // Fails (harmlessly) on a folder that still holds files.
            let _ = std::fs::remove_dir(room.path());
        }
    }
    Ok(())
}

/// SHA-256 of a file, hex.
pub(crate) fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Finds recordings a crash left unfinished (`*.webm.part` and `*.mp4.part` in `dir` and its
/// room folders), cuts a torn last cluster or fragment off, finalizes them into seekable files and lists them. Run it
/// before [`Recorder::start`](super::Recorder::start) on the same directory. Files with not even
/// a header are renamed `*.webm.broken` and skipped.
pub fn recover(dir: &Path) -> io::Result<Vec<Recovered>> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            dirs.push(entry.path());
        }
    }
    for d in dirs {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path
                .to_str()
                .is_some_and(|p| p.ends_with(".webm.part") || p.ends_with(".mp4.part"))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    let mut out = Vec::new();
    for part in found {
        let started = Instant::now();
        match recover_one(&part) {
            Ok(Some(mut r)) => {
                r.took = started.elapsed();
                info!(path = %r.path.display(), duration = ?r.duration, "recording recovered");
                out.push(r);
            }
            Ok(None) => {
                warn!(path = %part.display(), "unrecoverable recording (no header); set aside");
                let _ = std::fs::rename(&part, part.with_extension("broken"));
            }
            Err(err) => warn!(path = %part.display(), %err, "recording not recovered"),
        }
    }
    Ok(out)
}

fn recover_one(part: &Path) -> io::Result<Option<Recovered>> {
    let target = PathBuf::from(part.to_str().unwrap_or_default().trim_end_matches(".part"));
    let reopened = if target.extension().is_some_and(|e| e == "mp4") {
        LiveMp4::reopen(part)?.map(|(m, cut)| (Writer::Mp4(m), cut))
    } else {
        LiveWebm::reopen(part)?.map(|(w, cut)| (Writer::Webm(w), cut))
    };
    let Some((writer, cut)) = reopened else {
        return Ok(None);
    };
    let file = LessonFile {
        writer,
        origin_us: 0,
        video: None,
    };
    let mut m = Manifest::load(&target).unwrap_or_else(|| {
        // No sidecar: the room is the folder's name, the start time unknown.
        let room = target
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .filter(|n| RoomId::new(n).is_ok())
            .unwrap_or("unknown");
        Manifest::new(room, SystemTime::UNIX_EPOCH, &target, None)
    });
    let f = file.finalize(&m.target())?;
    if m.codecs.is_empty() {
        m.codecs = vec!["opus".into()];
    }
    let sha = sha256_file(&f.path)?;
    m.recovered = true;
    m.finished(f.duration_ms, f.bytes, Some(sha.clone()));
    m.store()?;
    Ok(Some(Recovered {
        room: m.room.clone(),
        path: f.path,
        source: m.source.clone(),
        started: m.started(),
        duration: Duration::from_millis(f.duration_ms),
        bytes: f.bytes,
        sha256: sha,
        truncated_bytes: cut,
        took: Duration::ZERO,
    }))
}
