//! WHIP publisher: pushes synthetic Opus + VP8 (or an H.264 clip) into a room like a
//! teacher's browser or encoder.
//!
//! Data flow:
//!
//! ```text
//! OpusSource / Vp8Source ──frame──▶ own rtp packetizer ──RTP──▶ TrackLocalStaticRTP
//!        (media.rs)               (counts packets/bytes)        ──▶ webrtc-rs driver ──UDP──▶ SFU
//! ```
//!
//! [`WhipPublisher::connect`] builds the peer connection with two `sendonly` transceivers,
//! runs the WHIP exchange (see the private `signaling` module) and waits until ICE and DTLS are up.
//! [`WhipPublisher::run_for`] (or [`WhipPublisher::run_until`]) then paces frames in real time
//! on an absolute schedule (frame `i` is due at `start + i·period`), so a slow iteration does
//! not slow the stream down. The sending machinery, simulcast included, lives in
//! [`crate::send`].
//!
//! Like a browser, the publisher answers keyframe requests (PLI/FIR) from the SFU: a small
//! interceptor (see `signaling`) lets them through to the video track, a task flags them and
//! the video pump turns the next frame into a keyframe.
//!
//! We packetize ourselves (with the same `rtc` packetizer and 1200-byte MTU that webrtc-rs'
//! `TrackLocalStaticSample` uses) instead of writing samples, because only then do we know
//! how many RTP packets each frame became. Counts are of packets *handed to* webrtc-rs; its
//! driver can still drop one (it logs rather than reports such errors).

use crate::error::ClientError;
use crate::live::LiveCounters;
use crate::media::{Clip, OpusConfig, Vp8Config};
use crate::send::{MediaConfig, MediaSender, StopWhen, VideoLayer};
use crate::signaling::{self, ClientOptions, PcSetup, build_peer_connection, parse_url};
use reqwest::Url;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};

pub use crate::send::{KindSendStats, SendReport};

/// Options of [`WhipPublisher::connect`].
#[derive(Debug, Clone)]
pub struct WhipOptions {
    /// Network and timeouts.
    pub client: ClientOptions,
    /// Opus settings; `None` publishes no audio m-line.
    pub audio: Option<OpusConfig>,
    /// VP8 settings; `None` publishes no video m-line.
    pub video: Option<Vp8Config>,
    /// Simulcast layer bitrates (bit/s) for `q`, `h`, `f`; `None` publishes one layer with
    /// `video`'s bitrate. The layers take `video`'s frame rate and keyframe interval.
    pub simulcast: Option<[u32; 3]>,
    /// Publish this clip (e.g. H.264 from [`crate::media::Clip::generate_h264`]) as the
    /// video instead of synthetic VP8; one layer, `video` and `simulcast` are then ignored.
    pub clip: Option<Clip>,
    /// Real 20 ms Opus packets sent in a loop instead of synthetic audio (see
    /// [`crate::media::OpusSource::with_packets`]).
    pub audio_packets: Option<std::sync::Arc<[bytes::Bytes]>>,
}

impl Default for WhipOptions {
    fn default() -> Self {
        WhipOptions {
            client: ClientOptions::default(),
            audio: Some(OpusConfig::default()),
            video: Some(Vp8Config::default()),
            simulcast: None,
            clip: None,
            audio_packets: None,
        }
    }
}

impl WhipOptions {
    /// The media this publisher sends.
    pub fn media(&self) -> MediaConfig {
        let video = match (&self.video, self.simulcast) {
            _ if self.clip.is_some() => VideoLayer::single(Vp8Config::default()),
            (None, _) => Vec::new(),
            (Some(v), None) => VideoLayer::single(v.clone()),
            (Some(v), Some(rates)) => VideoLayer::simulcast(v, rates),
        };
        MediaConfig {
            audio: self.audio.clone(),
            video,
            clip: self.clip.clone(),
            audio_packets: self.audio_packets.clone(),
        }
    }
}

/// A connected WHIP session publishing synthetic media.
pub struct WhipPublisher {
    pc: Arc<dyn PeerConnection>,
    state: watch::Receiver<RTCPeerConnectionState>,
    http: reqwest::Client,
    location: Url,
    token: String,
    http_timeout: Duration,
    sender: MediaSender,
    closed: bool,
    links: Vec<String>,
}

impl WhipPublisher {
    /// Create the peer connection, POST the offer to `url` (`…/whip/{room}`) with bearer
    /// `token`, apply the answer and wait until connected.
    ///
    /// HTTP failures come back as [`ClientError::Http`] with the server's status and body.
    pub async fn connect(
        url: &str,
        token: &str,
        opts: WhipOptions,
    ) -> Result<WhipPublisher, ClientError> {
        let url = parse_url(url)?;
        let http = signaling::http_client(&opts.client)?;
        let setup = PcSetup {
            on_track: None,
            forward_keyframe_requests: true,
            simulcast_extensions: opts.simulcast.is_some() && opts.clip.is_none(),
            video_codecs: opts.media().video_codecs(),
        };
        let mut parts = build_peer_connection(&opts.client, setup).await?;
        let sender = match MediaSender::add(&parts.pc, &opts.media()).await {
            Ok(s) => s,
            Err(e) => {
                let _ = parts.pc.close().await;
                return Err(e);
            }
        };
        let (location, _) =
            signaling::establish(&mut parts, &http, &url, token, &opts.client).await?;
        let mut publisher = WhipPublisher {
            pc: Arc::clone(&parts.pc),
            state: parts.state.clone(),
            http,
            location,
            token: token.to_owned(),
            http_timeout: opts.client.http_timeout,
            sender,
            closed: false,
            links: parts.links.clone(),
        };
        if let Err(e) = publisher.sender.bind().await {
            // Dropping would leave the server session behind; close it first.
            let _ = publisher.close_inner().await;
            return Err(e);
        }
        Ok(publisher)
    }

    /// The answer's `Link` headers (the server's ICE servers, RFC 9725 §4.6).
    pub fn links(&self) -> &[String] {
        &self.links
    }

    /// The session URL from the `Location` header, resolved against the POST URL.
    pub fn location(&self) -> &Url {
        &self.location
    }

    /// Current peer-connection state.
    pub fn connection_state(&self) -> RTCPeerConnectionState {
        *self.state.borrow()
    }

    /// Send media at real-time pace for `duration` and report what was sent per kind.
    ///
    /// Counters (frame stamps, RTP sequence numbers) continue across calls.
    pub async fn run_for(&mut self, duration: Duration) -> SendReport {
        let stop = StopWhen {
            deadline: Some(Instant::now() + duration),
            signal: None,
        };
        self.sender.run(stop, None).await
    }

    /// Send until `stop` turns true (or `max` passes), adding every packet to `live`.
    pub async fn run_until(
        &mut self,
        stop: watch::Receiver<bool>,
        max: Duration,
        live: Option<&LiveCounters>,
    ) -> SendReport {
        let stop = StopWhen {
            deadline: Some(Instant::now() + max),
            signal: Some(stop),
        };
        self.sender.run(stop, live).await
    }

    /// `DELETE` the session and close the peer connection. The connection is closed even if
    /// the DELETE fails; the DELETE error is returned.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.close_inner().await
    }

    async fn close_inner(&mut self) -> Result<(), ClientError> {
        self.closed = true;
        let deleted =
            signaling::delete_session(&self.http, &self.location, &self.token, self.http_timeout)
                .await;
        let closed = self.pc.close().await;
        deleted?;
        closed?;
        Ok(())
    }
}

impl Drop for WhipPublisher {
    fn drop(&mut self) {
        // A dropped-but-not-closed connection would keep its driver task running; close it in
        // the background. (The server session is not DELETEd here: that needs an await.)
        if !self.closed
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            let pc = Arc::clone(&self.pc);
            handle.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}
