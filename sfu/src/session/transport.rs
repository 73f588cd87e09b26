//! How packets travel between the server and a peer: plain UDP, or ICE over TCP (RFC 6544,
//! RFC 4571 framing) where a school's network lets only TCP out. The application owns the
//! sockets; the SFU only needs to know which kind a packet came on and must leave on.

use serde::Serialize;
use str0m::net::Protocol;

/// The transport of a packet, or of a peer's selected candidate pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// UDP datagrams on the shard's socket.
    #[default]
    Udp,
    /// RFC 4571 frames on a TCP connection the client opened to the shard.
    Tcp,
}

impl Transport {
    /// Every transport, for metrics that list each one.
    pub const ALL: [Transport; 2] = [Transport::Udp, Transport::Tcp];

    /// The name in metrics labels, attendance and the protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }

    pub(crate) fn protocol(self) -> Protocol {
        match self {
            Transport::Udp => Protocol::Udp,
            Transport::Tcp => Protocol::Tcp,
        }
    }

    pub(crate) fn from_protocol(p: Protocol) -> Transport {
        match p {
            Protocol::Udp => Transport::Udp,
            // The server announces no SSL-TCP or TLS candidates: everything else is TCP.
            _ => Transport::Tcp,
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
