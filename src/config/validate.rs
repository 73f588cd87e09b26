//! Checks of the relations between keys that types alone cannot express, run at start: each
//! error names the key to fix.

use std::time::Duration;

use super::{Config, ConfigError, MIN_SECRET_BYTES};

impl Config {
    /// Checks the relations between keys that types alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_http()?;

        self.validate_media()?;

        if let Some(secret) = &self.auth.secret
            && secret.len() < MIN_SECRET_BYTES
        {
            return Err(ConfigError::invalid(
                "auth.secret",
                format!(
                    "must be at least {MIN_SECRET_BYTES} bytes (got {}); \
                     remove it to use a generated secret",
                    secret.len()
                ),
            ));
        }

        if self.storage.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid(
                "storage.data_dir",
                "must not be empty",
            ));
        }

        self.validate_signaling()?;

        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            return Err(ConfigError::invalid("log.filter", e.to_string()));
        }
        self.recording.validate(&self.storage.data_dir)?;
        self.rtmp.validate()?;
        self.accounts.validate()?;
        self.oidc.validate()?;
        self.validate_turn()?;
        self.validate_schedule()
    }

    /// `[media]`: ports in range, addresses clients can reach, ICE over TCP's bounds.
    fn validate_media(&self) -> Result<(), ConfigError> {
        let media = &self.media;
        // Port 0 lets every shard pick a free port (tests, one-machine setups); the chosen
        // ports are announced in SDP, so only firewalled deployments need fixed ones.
        let shards = self.media_shard_count();
        let last_port = usize::from(media.listen.port()) + shards - 1;
        if media.listen.port() != 0 && last_port > usize::from(u16::MAX) {
            return Err(ConfigError::invalid(
                "media.listen",
                format!(
                    "{shards} shards starting at port {} need ports up to {last_port}, beyond 65535",
                    media.listen.port()
                ),
            ));
        }
        if media.listen.ip().is_unspecified() && media.advertise.is_empty() {
            return Err(ConfigError::invalid(
                "media.advertise",
                format!(
                    "media.listen is {}, which clients cannot connect to: list the public IP(s) here",
                    media.listen.ip()
                ),
            ));
        }
        if let Some(ip) = media.advertise.iter().find(|ip| ip.is_unspecified()) {
            return Err(ConfigError::invalid(
                "media.advertise",
                format!("{ip} cannot be advertised: give an address clients can reach"),
            ));
        }
        if let Some(tcp) = media.tcp_listen {
            let last = usize::from(tcp.port()) + shards - 1;
            if tcp.port() != 0 && last > usize::from(u16::MAX) {
                return Err(ConfigError::invalid(
                    "media.tcp_listen",
                    format!(
                        "{shards} shards starting at port {} need ports up to {last}, beyond 65535",
                        tcp.port()
                    ),
                ));
            }
            if tcp.ip().is_unspecified() && media.advertise.is_empty() {
                return Err(ConfigError::invalid(
                    "media.tcp_listen",
                    format!(
                        "{} cannot be announced to clients: give the address itself, or list \
                         the public IP(s) in media.advertise",
                        tcp.ip()
                    ),
                ));
            }
        }
        if media.tcp_max_pending_per_ip == 0 {
            return Err(ConfigError::invalid(
                "media.tcp_max_pending_per_ip",
                "must be at least 1 (set media.tcp = false to turn ICE over TCP off)",
            ));
        }
        if media.connect_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "media.connect_timeout",
                "must be greater than zero",
            ));
        }
        if !(2..=64).contains(&media.max_tracks_per_peer) {
            return Err(ConfigError::invalid(
                "media.max_tracks_per_peer",
                "must be between 2 (a microphone and a camera) and 64",
            ));
        }
        Ok(())
    }

    /// `[signaling]`: message and SDP sizes that fit each other, rates that allow a burst.
    fn validate_signaling(&self) -> Result<(), ConfigError> {
        let sig = &self.signaling;
        if sig.max_message_bytes == 0 {
            return Err(ConfigError::invalid(
                "signaling.max_message_bytes",
                "must be greater than zero",
            ));
        }
        if sig.hard_max_message_bytes < sig.max_message_bytes {
            return Err(ConfigError::invalid(
                "signaling.hard_max_message_bytes",
                format!(
                    "must be at least signaling.max_message_bytes ({})",
                    sig.max_message_bytes
                ),
            ));
        }
        if sig.max_sdp_bytes == 0 || sig.max_sdp_bytes > sig.max_message_bytes {
            return Err(ConfigError::invalid(
                "signaling.max_sdp_bytes",
                format!(
                    "must be between 1 and signaling.max_message_bytes ({})",
                    sig.max_message_bytes
                ),
            ));
        }
        if sig.players_per_link == 0 {
            return Err(ConfigError::invalid(
                "signaling.players_per_link",
                "must be at least 1",
            ));
        }
        if sig.messages_per_second == 0 {
            return Err(ConfigError::invalid(
                "signaling.messages_per_second",
                "must be greater than zero",
            ));
        }
        if sig.burst < sig.messages_per_second {
            return Err(ConfigError::invalid(
                "signaling.burst",
                format!(
                    "must be at least signaling.messages_per_second ({})",
                    sig.messages_per_second
                ),
            ));
        }
        Ok(())
    }

    fn validate_http(&self) -> Result<(), ConfigError> {
        let http = &self.http;
        if let Some(url) = &http.public_url {
            check_base_url(url).map_err(|m| ConfigError::invalid("http.public_url", m))?;
        }
        // The files themselves are read (and checked) when the server starts: `ketang token`
        // and `ketang config` load this configuration on machines without them.
        match (&http.tls_cert, &http.tls_key) {
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    "http.tls_key",
                    "http.tls_cert is set: give the PEM file of its private key too",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "http.tls_cert",
                    "http.tls_key is set: give the PEM file of its certificate chain too",
                ));
            }
            (Some(c), Some(k)) if c.as_os_str().is_empty() || k.as_os_str().is_empty() => {
                return Err(ConfigError::invalid(
                    "http.tls_cert",
                    "the certificate and key paths must not be empty",
                ));
            }
            _ => {}
        }
        let (lo, hi) = (Duration::from_secs(1), Duration::from_secs(600));
        for (key, value) in [
            ("http.header_read_timeout", http.header_read_timeout),
            ("http.body_read_timeout", http.body_read_timeout),
        ] {
            if value < lo || value > hi {
                return Err(ConfigError::invalid(key, "must be between 1s and 10m"));
            }
        }
        for origin in &http.frame_ancestors {
            check_frame_ancestor(origin)
                .map_err(|m| ConfigError::invalid("http.frame_ancestors", m))?;
        }
        if http.max_connections < 16 {
            return Err(ConfigError::invalid(
                "http.max_connections",
                "must be at least 16 (a browser alone opens several connections)",
            ));
        }
        Ok(())
    }

    fn validate_schedule(&self) -> Result<(), ConfigError> {
        let url = &self.database.url;
        if !url.is_empty() && crate::db::engine_of(url).is_none() {
            return Err(ConfigError::invalid(
                "database.url",
                format!(
                    "{:?} is neither sqlite://... nor postgres://...; leave it empty for the \
                     SQLite file in storage.data_dir",
                    crate::db::redact_url(url)
                ),
            ));
        }
        let s = &self.schedule;
        const DAY: Duration = Duration::from_secs(24 * 3600);
        for (key, value) in [
            ("schedule.link_lead", s.link_lead),
            ("schedule.link_grace", s.link_grace),
        ] {
            if value > DAY {
                return Err(ConfigError::invalid(key, "must be at most 24h"));
            }
        }
        if s.warn_before.is_zero() || s.warn_before > Duration::from_secs(3600) {
            return Err(ConfigError::invalid(
                "schedule.warn_before",
                "must be between 1s and 1h",
            ));
        }
        if s.tick < Duration::from_millis(10) || s.tick > Duration::from_secs(60) {
            return Err(ConfigError::invalid(
                "schedule.tick",
                "must be between 10ms and 60s",
            ));
        }
        if let Err(e) = jiff::tz::TimeZone::get(&s.timezone) {
            return Err(ConfigError::invalid(
                "schedule.timezone",
                format!(
                    "{:?} is not a time zone of the tz database (e.g. Asia/Shanghai): {e}",
                    s.timezone
                ),
            ));
        }
        Ok(())
    }
}

/// An origin allowed to frame the pages: `'self'`, or `https://host[:port]` (`http://` for
/// tests), nothing a CSP could read as another directive.
fn check_frame_ancestor(origin: &str) -> Result<(), String> {
    if origin == "'self'" {
        return Ok(());
    }
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| {
            format!("{origin:?}: give an origin such as https://portal.school.cn, or 'self'")
        })?;
    let ok = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '*' | '[' | ']'));
    if !ok {
        return Err(format!(
            "{origin:?}: an origin is scheme://host[:port], without path, spaces or ';'"
        ));
    }
    Ok(())
}

/// Checks a base URL for room links: `http(s)://` followed by a host. Shared with the CLI's
/// `--base-url`.
pub fn check_base_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?;
    if rest.trim_end_matches('/').is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{url:?} must not contain spaces or control characters"
        ));
    }
    if rest.contains(['?', '#']) {
        return Err(format!("{url:?} must not have a query or fragment"));
    }
    Ok(())
}
