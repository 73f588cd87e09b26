//! `[rtmp]`: RTMP push from classroom hardware (recording hosts, hardware encoders, OBS).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[rtmp]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtmpConfig {
    /// Accept RTMP pushes (`rtmp://HOST:PORT/live/ROOM?t=TOKEN`). Off by default: the port is
    /// opened only where an operator asks for it.
    pub enabled: bool,
    /// Address the RTMP listener binds; encoders on the school network need a non-loopback one.
    pub listen: SocketAddr,
    /// Opus bit rate of the re-encoded AAC sound, bits per second.
    pub opus_bitrate: u32,
    /// Concurrent RTMP connections at most (handshaking or publishing); more are closed.
    pub max_connections: usize,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        RtmpConfig {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 1935)),
            opus_bitrate: 48_000,
            max_connections: 64,
        }
    }
}

impl RtmpConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(6_000..=510_000).contains(&self.opus_bitrate) {
            return Err(ConfigError::invalid(
                "rtmp.opus_bitrate",
                "must be between 6000 and 510000 bits per second",
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::invalid(
                "rtmp.max_connections",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
