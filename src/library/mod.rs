//! The resource library (课程库): recorded lessons as searchable entries with their files,
//! and the observation notes (听课评课) of master lessons. docs/library.md has the design.
//!
//! ```text
//! recorder (crate::recording) ── statuses ──► live: entries, room/teacher notices
//!      │ finished files in {recordings dir}          │
//!      └──────────────────────────────► import ──► store (object_store) + catalog (SQL)
//!                                                       ▲
//! /api/v1/library (api::library) ── list, get, stream (Range), download, delete, notes,
//!                                   export; admin key or a library link (link)
//! ```
//!
//! At start, before the recorder runs: unfinished files of a crash are repaired
//! (`recording::recover`), then every finished file not yet in the library is imported and
//! entries whose recording was lost are marked failed.

pub mod catalog;
pub mod ids;
pub mod import;
pub mod link;
pub mod live;
pub mod note_limit;
pub mod range;
pub mod store;

use std::path::PathBuf;
use std::time::Duration;

use crate::config::Config;
use crate::config::recording::LibraryStore;
use crate::media::RecordSink;
use crate::recording::{Recorder, RecorderSettings, RecordingStatus};

/// Why the library (or the recorder) could not start.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("{0}")]
    Store(#[from] store::StoreError),
    #[error("recordings directory {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot start the recorder: {0}")]
    Recorder(std::io::Error),
}

/// The library of this server.
pub struct Library {
    pub store: store::Store,
    pub links: link::LinkSigner,
    pub live: live::LiveRecordings,
    /// Where the recorder writes.
    pub recordings_dir: PathBuf,
    /// Default validity of library links.
    pub link_ttl: Duration,
    /// Which server records: its host name and recordings directory (see [`node_name`]).
    pub node: String,
    /// Notes posted per library link.
    pub note_limits: note_limit::NoteLimits,
}

/// This server as the catalog names it: the host and the recordings directory. Servers that
/// share a database each sweep only their own unfinished entries at start.
pub fn node_name(recordings_dir: &std::path::Path) -> String {
    // Linux names the host here; elsewhere the directory alone still tells servers apart on
    // one machine.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let dir = std::fs::canonicalize(recordings_dir).unwrap_or_else(|_| recordings_dir.to_owned());
    format!("{host}:{}", dir.display())
}

/// A started library: give `sink` to the media plane, and the statuses to [`live::spawn`].
pub struct Started {
    pub library: Library,
    pub sink: Option<RecordSink>,
    pub statuses: Option<tokio::sync::broadcast::Receiver<RecordingStatus>>,
}

impl Library {
    /// Opens the store, repairs what a crash left in the recordings directory and, if
    /// recording is enabled, starts the recorder on it. Blocking (repair reads whole files).
    pub fn start(config: &Config, secret: &[u8]) -> Result<Started, LibraryError> {
        let rc = &config.recording;
        let data = &config.storage.data_dir;
        let dir = rc.recordings_dir(data);
        let dir_err = |source| LibraryError::Dir {
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(dir_err)?;
        let store = match rc.library_store {
            LibraryStore::Local => store::Store::local(&rc.library_dir(data))?,
            LibraryStore::S3 => store::Store::s3(rc)?,
        };
        tracing::info!(store = %store.describe, "library store");
        // Before the recorder starts: nothing may be writing there while files are repaired.
        let recovered = crate::recording::recover(&dir).map_err(dir_err)?;
        if !recovered.is_empty() {
            tracing::info!(
                count = recovered.len(),
                "recordings recovered after a crash"
            );
        }
        let _ = crate::recording::prune_empty(&dir);
        let (sink, handle) = if rc.enabled {
            let mut s = RecorderSettings::new(&dir);
            s.queue = rc.queue;
            s.flush_every = rc.flush_every;
            s.per_track = rc.per_track;
            let (sink, handle) = Recorder::start(s).map_err(LibraryError::Recorder)?;
            (Some(sink), Some(handle))
        } else {
            (None, None)
        };
        let statuses = handle.as_ref().map(|h| h.subscribe());
        let library = Library {
            store,
            links: link::LinkSigner::new(secret, config.auth.clock_skew),
            live: live::LiveRecordings::new(handle),
            node: node_name(&dir),
            recordings_dir: dir,
            link_ttl: rc.link_ttl,
            note_limits: Default::default(),
        };
        Ok(Started {
            library,
            sink,
            statuses,
        })
    }

    /// A library with nothing behind it, for states built without a server (tools, tests):
    /// an in-memory store, no recorder.
    pub fn detached(secret: &[u8]) -> Library {
        Library {
            store: store::Store::memory(),
            links: link::LinkSigner::new(secret, Duration::from_secs(30)),
            live: live::LiveRecordings::new(None),
            recordings_dir: PathBuf::new(),
            link_ttl: Duration::from_secs(3600),
            node: "detached".into(),
            note_limits: Default::default(),
        }
    }
}
