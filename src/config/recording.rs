//! `[recording]`: whether and how lessons are recorded, and where the resource library keeps
//! the finished files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, duration_str};

/// `[recording]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Record lessons at all. Off: no recorder runs, `record` lessons and `startRecording`
    /// are not recorded (the teacher is told); the library still serves what it has.
    pub enabled: bool,
    /// Also keep every published track as its own WebM next to the lesson's file.
    pub per_track: bool,
    /// Capacity of the queue from the media shards to the writer, in events (a 720p lesson
    /// is about 200 per second). What does not fit is dropped and counted, never waited for.
    pub queue: usize,
    /// Data older than this reaches the disk (at most 2 s).
    #[serde(with = "duration_str")]
    pub flush_every: Duration,
    /// Where recordings are written while they run; empty means `{storage.data_dir}/recordings`.
    pub dir: PathBuf,
    /// Where the resource library keeps finished files: `local` (a directory) or `s3` (an
    /// S3-compatible bucket, the `s3_*` keys).
    pub library_store: LibraryStore,
    /// The library directory for `library_store = "local"`; empty means
    /// `{storage.data_dir}/library`.
    pub library_dir: PathBuf,
    /// Default validity of a library link (a teacher's link to one recording).
    #[serde(with = "duration_str")]
    pub link_ttl: Duration,
    /// S3 endpoint URL for MinIO and other S3-compatible stores (`http://127.0.0.1:9000`);
    /// empty means AWS itself.
    pub s3_endpoint: String,
    /// The bucket for `library_store = "s3"` (it must exist).
    pub s3_bucket: String,
    /// The bucket's region (MinIO accepts the default).
    pub s3_region: String,
    /// Access key id; empty means the `AWS_ACCESS_KEY_ID` environment variable.
    pub s3_access_key_id: String,
    /// Secret access key; empty means `AWS_SECRET_ACCESS_KEY`. Never shown (`<redacted>`).
    pub s3_secret_access_key: Secret,
    /// Allow a plain `http://` endpoint (a MinIO on the same host or network).
    pub s3_allow_http: bool,
    /// Virtual-hosted-style requests (`bucket.host/key`, what AWS prefers) instead of
    /// path-style (`host/bucket/key`, what MinIO and most S3-compatible stores expect).
    pub s3_virtual_hosted_style: bool,
}

/// A secret from the configuration: hidden from `Debug` and from the effective configuration
/// (`--print-config` and logs), read normally.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<redacted>"
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            per_track: false,
            queue: 4096,
            flush_every: Duration::from_secs(1),
            dir: PathBuf::new(),
            library_store: LibraryStore::Local,
            library_dir: PathBuf::new(),
            link_ttl: Duration::from_secs(7 * 24 * 3600),
            s3_endpoint: String::new(),
            s3_bucket: String::new(),
            s3_region: "us-east-1".into(),
            s3_access_key_id: String::new(),
            s3_secret_access_key: Secret::default(),
            s3_allow_http: false,
            s3_virtual_hosted_style: false,
        }
    }
}

/// Where library files are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LibraryStore {
    /// A directory on this machine (`recording.library_dir`).
    #[default]
    Local,
    /// An S3-compatible object store (`recording.s3_*`).
    S3,
}

/// Longest library link a server issues.
pub const MAX_LINK_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

impl RecordingConfig {
    /// Where running recordings are written.
    pub fn recordings_dir(&self, data_dir: &Path) -> PathBuf {
        if self.dir.as_os_str().is_empty() {
            data_dir.join("recordings")
        } else {
            self.dir.clone()
        }
    }

    /// The local library directory.
    pub fn library_dir(&self, data_dir: &Path) -> PathBuf {
        if self.library_dir.as_os_str().is_empty() {
            data_dir.join("library")
        } else {
            self.library_dir.clone()
        }
    }

    /// Checks the section; `data_dir` resolves the default directories.
    pub fn validate(&self, data_dir: &Path) -> Result<(), ConfigError> {
        if self.queue == 0 || self.queue > 1_000_000 {
            return Err(ConfigError::invalid(
                "recording.queue",
                "must be between 1 and 1000000 events",
            ));
        }
        if self.flush_every < Duration::from_millis(50) || self.flush_every > Duration::from_secs(2)
        {
            return Err(ConfigError::invalid(
                "recording.flush_every",
                "must be between 50ms and 2s (data must reach the disk at least every 2 s)",
            ));
        }
        if self.library_store == LibraryStore::S3 {
            self.validate_s3()?;
        }
        if self.link_ttl < Duration::from_secs(60) || self.link_ttl > MAX_LINK_TTL {
            return Err(ConfigError::invalid(
                "recording.link_ttl",
                "must be between 1m and 366d",
            ));
        }
        let (live, library) = (self.recordings_dir(data_dir), self.library_dir(data_dir));
        if live == library || library.starts_with(&live) || live.starts_with(&library) {
            return Err(ConfigError::invalid(
                "recording.library_dir",
                format!(
                    "{} must not be inside (or contain) the recordings directory {}: recovery \
                     scans that directory for unfinished files",
                    library.display(),
                    live.display()
                ),
            ));
        }
        Ok(())
    }

    fn validate_s3(&self) -> Result<(), ConfigError> {
        let b = &self.s3_bucket;
        // S3's bucket naming rules, so a typo fails here rather than at the first upload.
        let bucket_ok = (3..=63).contains(&b.len())
            && b.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
            && !b.starts_with(['-', '.'])
            && !b.ends_with(['-', '.']);
        if !bucket_ok {
            return Err(ConfigError::invalid(
                "recording.s3_bucket",
                "library_store = \"s3\" needs a bucket name: 3 to 63 lowercase letters, \
                 digits, '-' or '.'",
            ));
        }
        if self.s3_region.is_empty() {
            return Err(ConfigError::invalid(
                "recording.s3_region",
                "must not be empty (us-east-1 suits MinIO)",
            ));
        }
        if !self.s3_endpoint.is_empty() {
            let plain = self.s3_endpoint.starts_with("http://");
            if !plain && !self.s3_endpoint.starts_with("https://") {
                return Err(ConfigError::invalid(
                    "recording.s3_endpoint",
                    "must be an http:// or https:// URL, or empty for AWS",
                ));
            }
            if plain && !self.s3_allow_http {
                return Err(ConfigError::invalid(
                    "recording.s3_endpoint",
                    "is plain http: set recording.s3_allow_http = true to allow it",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn defaults_are_valid_and_live_under_the_data_dir() {
        let c = RecordingConfig::default();
        let data = Path::new("/srv/ketang");
        assert!(c.validate(data).is_ok());
        assert_eq!(c.recordings_dir(data), data.join("recordings"));
        assert_eq!(c.library_dir(data), data.join("library"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let data = Path::new("d");
        let key = |c: RecordingConfig| {
            c.validate(data)
                .err()
                .and_then(|e| e.key().map(str::to_owned))
        };
        let c = RecordingConfig {
            flush_every: Duration::from_secs(3),
            ..Default::default()
        };
        assert_eq!(key(c).as_deref(), Some("recording.flush_every"));
        let c = RecordingConfig {
            queue: 0,
            ..Default::default()
        };
        assert_eq!(key(c).as_deref(), Some("recording.queue"));
        let c = RecordingConfig {
            library_store: LibraryStore::S3,
            ..Default::default()
        };
        assert_eq!(key(c).as_deref(), Some("recording.s3_bucket"));
        let s3 = RecordingConfig {
            library_store: LibraryStore::S3,
            s3_bucket: "lessons".into(),
            s3_endpoint: "http://127.0.0.1:9000".into(),
            ..Default::default()
        };
        assert_eq!(key(s3.clone()).as_deref(), Some("recording.s3_endpoint"));
        let c = RecordingConfig {
            s3_allow_http: true,
            ..s3.clone()
        };
        assert!(c.validate(data).is_ok());
        let c = RecordingConfig {
            s3_bucket: "Bad_Bucket".into(),
            s3_allow_http: true,
            ..s3
        };
        assert_eq!(key(c).as_deref(), Some("recording.s3_bucket"));
        let c = RecordingConfig {
            library_dir: PathBuf::from("d/recordings/lib"),
            ..Default::default()
        };
        assert_eq!(key(c).as_deref(), Some("recording.library_dir"));
        let c = RecordingConfig {
            link_ttl: Duration::from_secs(5),
            ..Default::default()
        };
        assert_eq!(key(c).as_deref(), Some("recording.link_ttl"));
    }

    #[test]
    fn the_section_loads_from_toml_and_refuses_unknown_keys() {
        let toml = "[recording]\nper_track = true\nflush_every = \"500ms\"\n\
                    library_dir = \"/lib\"\nlink_ttl = \"2d\"\n";
        let c: Config = figment::Figment::new()
            .merge(<figment::providers::Toml as figment::providers::Format>::string(toml))
            .extract()
            .expect("loads");
        assert!(c.recording.per_track);
        assert_eq!(c.recording.flush_every, Duration::from_millis(500));
        assert_eq!(c.recording.library_dir, PathBuf::from("/lib"));
        assert_eq!(c.recording.link_ttl, Duration::from_secs(2 * 86400));
        let bad = "[recording]\nbucket = \"x\"\n";
        let r: Result<Config, _> = figment::Figment::new()
            .merge(<figment::providers::Toml as figment::providers::Format>::string(bad))
            .extract();
        assert!(r.is_err());
    }

    #[test]
    fn the_s3_secret_is_read_but_never_shown() {
        let toml = "[recording]\nlibrary_store = \"s3\"\ns3_bucket = \"b\"\n\
                    s3_secret_access_key = \"hunter2\"\n";
        let c: Config = figment::Figment::new()
            .merge(<figment::providers::Toml as figment::providers::Format>::string(toml))
            .extract()
            .expect("loads");
        assert_eq!(c.recording.s3_secret_access_key.expose(), "hunter2");
        assert!(!format!("{:?}", c.recording).contains("hunter2"));
        assert!(!c.to_redacted_json().contains("hunter2"));
    }
}
