//! `[turn]`: the embedded TURN server, for networks that block UDP to the media ports. It
//! relays only to Ketang's own media addresses, so it is on by default: it cannot be used as
//! an open relay.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError, duration_str};

/// The TURN port of RFC 8656 (UDP and TCP).
pub const DEFAULT_PORT: u16 = 3478;

/// `[turn]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TurnConfig {
    /// Run the TURN server.
    pub enabled: bool,
    /// UDP and TCP address; `None`: the media listen IP at port 3478 (port 0 when the media
    /// port is 0), and the server starts without TURN, with a warning, if that port is taken.
    pub listen: Option<SocketAddr>,
    /// TURN over TLS (`turns:`), e.g. `0.0.0.0:5349` or a dedicated address's `:443`; off when
    /// `None`.
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain of the TLS listener; `None`: `http.tls_cert`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`; `None`: `http.tls_key`.
    pub tls_key: Option<PathBuf>,
    /// Host name or IP put in the `turn:` URLs handed to clients; `None`: the host of
    /// `http.public_url`, else the first advertised media IP.
    pub public_host: Option<String>,
    /// REALM of the long-term credentials.
    pub realm: String,
    /// How long the credentials handed out with a join stay valid for a new allocation.
    #[serde(with = "duration_str")]
    pub credential_lifetime: Duration,
    /// Allocations at once, over every client.
    pub max_allocations: usize,
    /// Allocations at once from one source IP (a school's classrooms share one NAT address).
    pub max_allocations_per_ip: usize,
    /// TCP and TLS connections from one source IP that have not yet allocated.
    pub max_pending_per_ip: usize,
    /// TCP and TLS connections at once, over every client.
    pub max_connections: usize,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            public_host: None,
            realm: "ketang".to_owned(),
            credential_lifetime: Duration::from_secs(12 * 3600),
            max_allocations: 2000,
            max_allocations_per_ip: 200,
            max_pending_per_ip: 16,
            max_connections: 2000,
        }
    }
}

impl Config {
    /// The TURN UDP/TCP address, and whether it was given (a taken default port is not fatal).
    pub fn turn_listen(&self) -> (SocketAddr, bool) {
        match self.turn.listen {
            Some(a) => (a, true),
            None => {
                let port = if self.media.listen.port() == 0 {
                    0
                } else {
                    DEFAULT_PORT
                };
                (SocketAddr::new(self.media.listen.ip(), port), false)
            }
        }
    }

    /// The host clients are told to reach the TURN server at.
    pub fn turn_public_host(&self) -> String {
        if let Some(h) = &self.turn.public_host {
            return h.clone();
        }
        if let Some(url) = &self.http.public_url
            && let Some(host) = url_host(url)
        {
            return host.to_owned();
        }
        match self.advertised_ips().first() {
            Some(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
            Some(ip) => ip.to_string(),
            None => "127.0.0.1".to_owned(),
        }
    }

    /// `[turn]`: limits that let something through, a TLS listener with a certificate.
    pub(super) fn validate_turn(&self) -> Result<(), ConfigError> {
        let turn = &self.turn;
        if !turn.enabled {
            return Ok(());
        }
        if turn.realm.trim().is_empty() || turn.realm.len() > 127 {
            return Err(ConfigError::invalid(
                "turn.realm",
                "must be 1 to 127 characters",
            ));
        }
        if turn.credential_lifetime < Duration::from_secs(60)
            || turn.credential_lifetime > Duration::from_secs(7 * 24 * 3600)
        {
            return Err(ConfigError::invalid(
                "turn.credential_lifetime",
                "must be between 1m and 7d",
            ));
        }
        for (key, v) in [
            ("turn.max_allocations", turn.max_allocations),
            ("turn.max_allocations_per_ip", turn.max_allocations_per_ip),
            ("turn.max_pending_per_ip", turn.max_pending_per_ip),
            ("turn.max_connections", turn.max_connections),
        ] {
            if v == 0 {
                return Err(ConfigError::invalid(
                    key,
                    "must be at least 1 (set turn.enabled = false to turn TURN off)",
                ));
            }
        }
        if let Some(h) = &turn.public_host
            && (h.is_empty() || h.contains(['/', ' ', '?', '@']))
        {
            return Err(ConfigError::invalid(
                "turn.public_host",
                "must be a bare host name or IP (no scheme, path or port)",
            ));
        }
        if let Some(a) = turn.listen
            && a.ip().is_unspecified()
            && turn.public_host.is_none()
            && self.http.public_url.is_none()
            && self.media.advertise.is_empty()
        {
            return Err(ConfigError::invalid(
                "turn.public_host",
                format!(
                    "turn.listen is {a}, which clients cannot connect to: name the host clients use"
                ),
            ));
        }
        match (&turn.tls_cert, &turn.tls_key) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "turn.tls_cert",
                    "give both turn.tls_cert and turn.tls_key, or neither",
                ));
            }
            _ => {}
        }
        if turn.tls_listen.is_some() && turn.tls_cert.is_none() && !self.http.tls() {
            return Err(ConfigError::invalid(
                "turn.tls_listen",
                "TURN over TLS needs a certificate: set turn.tls_cert and turn.tls_key \
                 (or http.tls_cert and http.tls_key)",
            ));
        }
        Ok(())
    }
}

/// The host of an `http(s)://host[:port][/...]` URL, brackets kept for IPv6.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        return Some(&authority[..=end]);
    }
    let host = authority.split(':').next()?;
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_of_a_url() {
        assert_eq!(
            url_host("https://school.example:8443/x"),
            Some("school.example")
        );
        assert_eq!(url_host("http://[::1]:80"), Some("[::1]"));
        assert_eq!(url_host("http://10.0.0.5"), Some("10.0.0.5"));
    }

    #[test]
    fn the_default_listener_follows_the_media_ip() {
        let mut c = Config::default();
        c.media.listen = "10.1.2.3:10000".parse().unwrap();
        assert_eq!(c.turn_listen(), ("10.1.2.3:3478".parse().unwrap(), false));
        c.media.listen = "127.0.0.1:0".parse().unwrap();
        assert_eq!(c.turn_listen().0.port(), 0, "tests: a free port");
        c.turn.listen = Some("0.0.0.0:3478".parse().unwrap());
        assert_eq!(c.turn_listen(), ("0.0.0.0:3478".parse().unwrap(), true));
    }

    #[test]
    fn limits_and_tls_are_checked() {
        let mut c = Config::default();
        c.turn.max_allocations_per_ip = 0;
        assert_eq!(
            c.validate().unwrap_err().key(),
            Some("turn.max_allocations_per_ip")
        );
        let mut c = Config::default();
        c.turn.tls_listen = Some("0.0.0.0:5349".parse().unwrap());
        assert_eq!(c.validate().unwrap_err().key(), Some("turn.tls_listen"));
        c.turn.tls_cert = Some("c.pem".into());
        c.turn.tls_key = Some("k.pem".into());
        assert!(c.validate().is_ok());
        c.turn.enabled = false;
        c.turn.max_connections = 0;
        assert!(c.validate().is_ok(), "an off TURN server is not checked");
    }
}
