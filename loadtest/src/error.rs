//! Typed errors of the WHIP/WHEP clients.
//!
//! Integration tests assert on these, so HTTP failures keep their status and body
//! ([`ClientError::Http`]) instead of being flattened into a string, and every waiting step
//! that can hang names itself in [`ClientError::Timeout`].

use std::time::Duration;

/// Everything that can go wrong while connecting, streaming or closing a client session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an unexpected HTTP status (anything but `201` on POST, or a
    /// non-2xx on DELETE). `body` is the response body as text, possibly empty, so tests can
    /// check e.g. `{"error":"forbidden"}`.
    #[error("HTTP {status}: {body}")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The response body (lossy UTF-8).
        body: String,
    },

    /// The HTTP request could not be made or its response could not be read (connection
    /// refused, reset, request timeout, ...).
    #[error("HTTP request failed: {0}")]
    Request(#[from] reqwest::Error),

    /// A URL given to the client, or a `Location` header, could not be parsed.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The offending URL text.
        url: String,
        /// Why it was rejected.
        reason: String,
    },

    /// The server's `201` response broke the WHIP/WHEP contract (no `Location`, wrong
    /// content type, an answer that does not parse, ...).
    #[error("protocol violation: {0}")]
    Protocol(String),

    /// The WebRTC stack (webrtc-rs) reported an error.
    #[error("WebRTC error: {0}")]
    WebRtc(#[from] webrtc::error::Error),

    /// A bounded wait expired: ICE gathering, connection establishment, ...
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was being waited for.
        what: &'static str,
        /// The configured bound.
        after: Duration,
    },

    /// The peer connection reached `failed` or `closed` before it was connected.
    #[error("peer connection {0}")]
    ConnectionFailed(String),
}

impl ClientError {
    /// The HTTP status if this is an [`ClientError::Http`] error; handy in test assertions.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ClientError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}
