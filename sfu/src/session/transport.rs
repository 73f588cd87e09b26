//! How packets travel between the server and a peer: plain UDP, or ICE over TCP (RFC 6544,
//! RFC 4571 framing) where a school's network lets only TCP out. The application owns the
//! sockets; the SFU only needs to know which kind a packet came on and must leave on.
//!
//! A peer behind the embedded TURN server reaches the shard over UDP from its relay address;
//! the application tells which leg the client used (`Turn*`), which only the reports show.

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
    /// UDP through the embedded TURN server, the client on UDP to it.
    TurnUdp,
    /// Through the TURN server, the client on TCP to it.
    TurnTcp,
    /// Through the TURN server, the client on TLS to it.
    TurnTls,
}

impl Transport {
    /// Every transport, for metrics that list each one.
    pub const ALL: [Transport; 5] = [
        Transport::Udp,
        Transport::Tcp,
        Transport::TurnUdp,
        Transport::TurnTcp,
        Transport::TurnTls,
    ];

    /// The name in metrics labels, attendance and the protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::TurnUdp => "turn_udp",
            Transport::TurnTcp => "turn_tcp",
            Transport::TurnTls => "turn_tls",
        }
    }

    /// Whether the shard exchanges the packets on its UDP socket (relayed ones included).
    pub fn is_udp(self) -> bool {
        self != Transport::Tcp
    }

    pub(crate) fn protocol(self) -> Protocol {
        if self.is_udp() {
            Protocol::Udp
        } else {
            Protocol::Tcp
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
