//! Server configuration: plain data with defaults in code, layered by figment as
//! defaults → optional TOML file → `KETANG_*` environment variables (`__` separates sections,
//! so `KETANG_MEDIA__SHARDS=2` sets `media.shards`).
//!
//! Every section refuses unknown keys so that a typo fails the start instead of being silently
//! ignored, and every validation error names the offending key (`media.listen: ...`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "KETANG_";
/// Separator between section and key in environment variable names.
pub const ENV_SEPARATOR: &str = "__";

/// Minimum length of `auth.secret`: HS256 is only as strong as its key, and 32 bytes matches
/// the hash output size.
pub const MIN_SECRET_BYTES: usize = 32;

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file named on the command line cannot be read.
    #[error("config file {}: {source}", path.display())]
    File {
        /// The path as given.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A key has a bad value, a wrong type, or is not a known key at all.
    #[error("{key}: {message}")]
    Invalid {
        /// Dotted key path, e.g. `media.listen`.
        key: String,
        /// What is wrong with it, and where the value came from when known.
        message: String,
    },
}

impl ConfigError {
    fn invalid(key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_owned(),
            message: message.into(),
        }
    }

    /// The dotted key the error is about, if it is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::File { .. } => None,
        }
    }
}

/// The whole server configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP and WebSocket listener.
    pub http: HttpConfig,
    /// UDP media (WebRTC) sockets and shards.
    pub media: MediaConfig,
    /// Room token signing.
    pub auth: AuthConfig,
    /// Where state is kept on disk.
    pub storage: StorageConfig,
    /// WebSocket signaling limits.
    pub signaling: SignalingConfig,
    /// Logging.
    pub log: LogConfig,
    /// The schedule database.
    pub database: DatabaseConfig,
    /// Lesson links and the scheduler.
    pub schedule: ScheduleConfig,
    /// Lesson recording and the resource library (`recording.rs`).
    pub recording: recording::RecordingConfig,
    /// Access to `/metrics`.
    pub metrics: MetricsConfig,
    /// RTMP push from classroom hardware (`rtmp.rs`).
    pub rtmp: rtmp::RtmpConfig,
    /// Admin accounts, sessions and the audit log's retention (`accounts.rs`).
    pub accounts: accounts::AccountsConfig,
    /// Teacher sign-in with OpenID Connect (`accounts.rs`).
    pub oidc: accounts::OidcConfig,
    /// The embedded TURN server (`turn.rs`).
    pub turn: turn::TurnConfig,
}

/// `[metrics]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Bearer token `/metrics` requires. Without one, `/metrics` is open only when
    /// `http.listen` is a loopback address.
    pub token: Option<String>,
}

/// `[http]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Base URL printed in room links; `None` means `http(s)://{listen}`.
    pub public_url: Option<String>,
    /// PEM certificate chain; with `tls_key`, the listener speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// A connection must deliver a complete request head (after the TLS handshake) within
    /// this time of being accepted, and each next request head within this time.
    #[serde(with = "duration_str")]
    pub header_read_timeout: Duration,
    /// A request body must have arrived completely within this time of its head.
    #[serde(with = "duration_str")]
    pub body_read_timeout: Duration,
    /// Open connections (WebSockets included) beyond this are refused.
    pub max_connections: usize,
    /// Origins allowed to show Ketang's pages in a frame (CSP `frame-ancestors`); none when
    /// empty.
    pub frame_ancestors: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            tls_cert: None,
            tls_key: None,
            header_read_timeout: Duration::from_secs(15),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            frame_ancestors: Vec::new(),
        }
    }
}

impl HttpConfig {
    /// Whether the listener speaks HTTPS.
    pub fn tls(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }

    /// Whether browsers on other machines would refuse cameras: plain HTTP reached beyond
    /// loopback, with no HTTPS proxy in front (`public_url`) either.
    pub fn cameras_refused(&self) -> bool {
        let https_in_front = self
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
        !self.listen.ip().is_loopback() && !self.tls() && !https_in_front
    }
}

/// `[media]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// UDP address of shard 0; shard `i` binds `port + i` on the same IP.
    pub listen: SocketAddr,
    /// Number of media shards; 0 means one per CPU core.
    pub shards: usize,
    /// IPs offered to clients as ICE candidates; empty means the listen IP.
    pub advertise: Vec<IpAddr>,
    /// How long a new peer has to complete ICE and DTLS before it is dropped.
    #[serde(with = "duration_str")]
    pub connect_timeout: Duration,
    /// Viewers and observers joining a room that already holds this many of them adapt to
    /// their own receiver reports instead of the send-side estimator (no pacer: cheaper per
    /// packet). 0: every viewer and observer does.
    pub audience_bwe_below: usize,
    /// Joins beyond this many peers on one media shard are refused (`503`, `serverFull`), and
    /// `/readyz` says `full` while every shard is there. 0: no limit.
    pub max_peers_per_shard: usize,
    /// Most audio and video m-lines one peer's offer may bring; a larger offer is refused
    /// (`tooManyTracks`, or 400 on WHIP/WHEP).
    pub max_tracks_per_peer: usize,
    /// ICE over TCP (RFC 6544 passive candidates) beside UDP, for networks that let only TCP out.
    pub tcp: bool,
    /// TCP address of shard 0's listener (shard `i` on `port + i`); `None`: each shard listens
    /// on the IP and port of its UDP socket.
    pub tcp_listen: Option<SocketAddr>,
    /// TCP connections from one source IP that have not yet carried a STUN request for a peer.
    pub tcp_max_pending_per_ip: usize,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 10000)),
            shards: 0,
            advertise: Vec::new(),
            connect_timeout: Duration::from_secs(30),
            audience_bwe_below: ketang_sfu::BwePolicy::default().audience_bwe_below,
            max_peers_per_shard: 1000,
            max_tracks_per_peer: ketang_sfu::DEFAULT_MAX_TRACKS_PER_PEER,
            tcp: true,
            tcp_listen: None,
            tcp_max_pending_per_ip: 16,
        }
    }
}

/// `[auth]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HS256 signing secret; `None` means a generated one kept in `{storage.data_dir}/auth.secret`.
    pub secret: Option<String>,
    /// Tolerance applied to a token's `nbf` and `exp`.
    #[serde(with = "duration_str")]
    pub clock_skew: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            secret: None,
            clock_skew: Duration::from_secs(30),
        }
    }
}

/// `[storage]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory for the generated secret and other server state.
    pub data_dir: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
        }
    }
}

/// `[signaling]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalingConfig {
    /// Larger messages are refused with `messageTooLarge`.
    pub max_message_bytes: usize,
    /// Larger frames close the connection (1009).
    pub hard_max_message_bytes: usize,
    /// Larger SDPs are refused with `invalidSdp`.
    pub max_sdp_bytes: usize,
    /// Sustained message rate per connection.
    pub messages_per_second: u32,
    /// Token bucket size for the rate limit.
    pub burst: u32,
    /// Live WHEP sessions one room link may hold at once (WHIP: always one, the newest).
    pub players_per_link: usize,
}

impl Default for SignalingConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            hard_max_message_bytes: 2 * 1024 * 1024,
            max_sdp_bytes: 48 * 1024,
            messages_per_second: 20,
            burst: 40,
            players_per_link: 3,
        }
    }
}

/// `[database]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DB`; empty means the SQLite file
    /// `{storage.data_dir}/ketang.db`.
    pub url: String,
}

/// `[schedule]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Lesson links open this long before the lesson starts.
    #[serde(with = "duration_str")]
    pub link_lead: Duration,
    /// Lesson links stay valid this long after the lesson ends; the room closes then.
    #[serde(with = "duration_str")]
    pub link_grace: Duration,
    /// Participants are warned this long before the room closes.
    #[serde(with = "duration_str")]
    pub warn_before: Duration,
    /// IANA time zone of lessons created without one.
    pub timezone: String,
    /// How often the scheduler looks at the live rooms.
    #[serde(with = "duration_str")]
    pub tick: Duration,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            link_lead: Duration::from_secs(15 * 60),
            link_grace: Duration::from_secs(15 * 60),
            warn_before: Duration::from_secs(5 * 60),
            timezone: "Asia/Shanghai".to_owned(),
            tick: Duration::from_secs(5),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with span fields.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// `tracing` filter directives; `RUST_LOG` overrides it when set.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".to_owned(),
        }
    }
}

impl Config {
    /// The effective configuration as pretty JSON, with the signing secret hidden.
    pub fn to_redacted_json(&self) -> String {
        let mut shown = self.clone();
        if shown.auth.secret.is_some() {
            shown.auth.secret = Some("<redacted>".into());
        }
        shown.database.url = crate::db::redact_url(&shown.database.url);
        if shown.oidc.client_secret.is_some() {
            shown.oidc.client_secret = Some("<redacted>".into());
        }
        serde_json::to_string_pretty(&shown).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Loads defaults, then `file` if given, then `KETANG_*` environment variables, and
    /// validates the result.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let figment = Self::figment(file)?;
        Self::from_figment(&figment)
    }

    /// The layered sources, without extracting. Separate so that tests can add providers.
    fn figment(file: Option<&Path>) -> Result<Figment, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            // figment treats a missing file as empty; an explicitly named file that is absent
            // is almost certainly a mistake, so it is checked here.
            let meta = std::fs::metadata(path).map_err(|source| ConfigError::File {
                path: path.to_owned(),
                source,
            })?;
            if !meta.is_file() {
                return Err(ConfigError::File {
                    path: path.to_owned(),
                    source: std::io::Error::other("not a regular file"),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // Every key lives in a section, so a config variable always has the separator; other
        // KETANG_* variables (KETANG_BIN in scripts, say) are not config and are left alone.
        let env = Env::prefixed(ENV_PREFIX)
            .filter(|k| k.as_str().contains(ENV_SEPARATOR))
            .split(ENV_SEPARATOR);
        Ok(figment.merge(env))
    }

    /// Extracts and validates a config from any figment.
    fn from_figment(figment: &Figment) -> Result<Config, ConfigError> {
        let mut config: Config = figment.extract().map_err(figment_error)?;
        // Links are built as `{public_url}/r/...`; a trailing slash would double it.
        if let Some(url) = &mut config.http.public_url {
            url.truncate(url.trim_end_matches('/').len());
        }
        config.validate()?;
        Ok(config)
    }

    /// The number of media shards to run: `media.shards`, or one per CPU core when it is 0.
    pub fn media_shard_count(&self) -> usize {
        if self.media.shards > 0 {
            self.media.shards
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// The IPs offered to clients as ICE host candidates.
    pub fn advertised_ips(&self) -> Vec<IpAddr> {
        if self.media.advertise.is_empty() {
            vec![self.media.listen.ip()]
        } else {
            self.media.advertise.clone()
        }
    }

    /// The IPs offered as ICE-TCP candidates: `media.tcp_listen`'s when it names one, else the
    /// UDP ones.
    pub fn advertised_tcp_ips(&self) -> Vec<IpAddr> {
        match self.media.tcp_listen {
            Some(a) if !a.ip().is_unspecified() => vec![a.ip()],
            _ => self.advertised_ips(),
        }
    }

    /// Base URL of room links, without a trailing slash.
    pub fn public_base_url(&self) -> String {
        match &self.http.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None if self.http.tls() => format!("https://{}", self.http.listen),
            None => format!("http://{}", self.http.listen),
        }
    }
}

/// Turns figment's error into ours, naming the dotted key and where the value came from.
fn figment_error(err: figment::Error) -> ConfigError {
    let mut first_key = None;
    let mut messages = Vec::new();
    for e in err {
        let mut path = e.path.clone();
        let what = match &e.kind {
            figment::error::Kind::UnknownField(name, expected) => {
                // figment usually puts the unknown key in the path already; not always.
                if path.last() != Some(name) {
                    path.push(name.clone());
                }
                format!("unknown key (expected one of: {})", expected.join(", "))
            }
            kind => kind.to_string(),
        };
        let key = if path.is_empty() {
            "(config)".to_owned()
        } else {
            path.join(".")
        };
        let origin = match &e.metadata {
            Some(md) if md.name.contains("environment variable") => format!(
                " (from environment variable {ENV_PREFIX}{})",
                path.join(ENV_SEPARATOR).to_ascii_uppercase()
            ),
            Some(md) => match &md.source {
                Some(source) => format!(" (in {} {source})", md.name),
                None => format!(" (in {})", md.name),
            },
            None => String::new(),
        };
        if first_key.is_none() {
            first_key = Some(key.clone());
            messages.push(format!("{what}{origin}"));
        } else {
            messages.push(format!("{key}: {what}{origin}"));
        }
    }
    ConfigError::Invalid {
        key: first_key.unwrap_or_else(|| "(config)".to_owned()),
        message: messages.join("; "),
    }
}

/// Serde for durations as humantime strings ("30s", "2m").
mod duration_str {
    use std::time::Duration;

    use serde::{Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration such as \"30s\" or \"2m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                humantime::parse_duration(v.trim())
                    .map_err(|e| E::custom(format!("invalid duration {v:?}: {e}")))
            }
        }
        d.deserialize_str(Visitor)
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

pub mod accounts;
pub mod recording;
pub mod rtmp;
pub mod turn;
mod validate;

pub use validate::check_base_url;

#[cfg(test)]
mod tests;
