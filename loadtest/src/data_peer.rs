//! [`DataPeer`]: a media connection that sends and receives nothing but a data channel, for a
//! caller that runs the signaling itself (a test speaking the WebSocket protocol directly).
//! It makes a participant present the way a browser page that publishes nothing is: its
//! ICE and DTLS connect, and keep the connection alive (consent checks) for as long as it lives,
//! also while the caller's signaling socket is gone.

use std::time::Duration;

use webrtc::peer_connection::RTCSessionDescription;

use crate::error::ClientError;
use crate::signaling::{self, ClientOptions, PcSetup, PeerParts};

pub struct DataPeer {
    parts: PeerParts,
    connect_timeout: Duration,
}

impl DataPeer {
    /// A new connection with one data channel; returns it with its offer (all candidates
    /// gathered: Ketang takes no trickled ones).
    pub async fn offer(opts: &ClientOptions) -> Result<(DataPeer, String), ClientError> {
        let setup = PcSetup {
            on_track: None,
            forward_keyframe_requests: false,
            simulcast_extensions: false,
            video_codecs: None,
        };
        let mut parts = signaling::build_peer_connection(opts, setup).await?;
        parts.pc.create_data_channel("ketang", None).await?;
        let offer = parts.pc.create_offer(None).await?;
        parts.pc.set_local_description(offer).await?;
        let sdp = signaling::gathered_local_sdp(&mut parts, opts.gather_timeout).await?;
        let peer = DataPeer {
            parts,
            connect_timeout: opts.connect_timeout,
        };
        Ok((peer, sdp))
    }

    /// Applies the server's answer and waits (bounded) until the connection is up.
    pub async fn accept_answer(&mut self, sdp: String) -> Result<(), ClientError> {
        let answer = RTCSessionDescription::answer(sdp)
            .map_err(|e| ClientError::Protocol(format!("answer does not parse: {e}")))?;
        self.parts.pc.set_remote_description(answer).await?;
        signaling::wait_connected(&mut self.parts.state, self.connect_timeout).await
    }

    /// Closes the connection (DTLS close_notify: the server takes it as leaving).
    pub async fn close(self) {
        let _ = self.parts.pc.close().await;
    }
}
