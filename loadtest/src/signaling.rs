//! Plumbing shared by the WHIP publisher, the WHEP viewer and (peer-connection building,
//! gathering, waiting for `connected`) the WebSocket signaling client.
//!
//! The HTTP clients follow the same non-trickle exchange (RFC 9725 / draft-ietf-wish-whep, as
//! profiled in `docs/protocol.md` §6):
//!
//! 1. [`build_peer_connection`]: a webrtc-rs `PeerConnection` with only Opus and VP8
//!    registered, bound to one explicit UDP address (`127.0.0.1:0` by default, because
//!    webrtc-rs expands a wildcard to every non-loopback interface), mDNS off, and an event
//!    handler that publishes ICE-gathering and connection state through `watch` channels.
//! 2. The caller adds its transceivers, then [`negotiate`]: create the offer, wait until ICE
//!    gathering is complete so the offer carries all candidates, `POST` it with
//!    `Content-Type: application/sdp` and the bearer token, require `201` + `Location`
//!    (resolved against the POST URL) + an SDP body, apply the answer.
//! 3. [`wait_connected`] until ICE + DTLS are up (bounded).
//! 4. On close, [`delete_session`] sends `DELETE` to the `Location`.

use crate::error::ClientError;
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::interceptor::{Attribute, Interceptor, Packet, Registry, Slot, StreamInfo, TaggedPacket};
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_nack, configure_rtcp_reports, configure_simulcast_extension_headers,
    register_default_interceptors,
};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::sansio::Protocol;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription,
};

/// Network and timing options shared by [`crate::WhipPublisher`] and [`crate::WhepViewer`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Local UDP address for the peer connection (default `127.0.0.1:0`). Use a concrete
    /// interface address; a wildcard makes webrtc-rs bind every non-loopback interface.
    pub bind_addr: SocketAddr,
    /// Bound on each HTTP request (default 10 s).
    pub http_timeout: Duration,
    /// Bound on ICE gathering before the offer is sent (default 5 s).
    pub gather_timeout: Duration,
    /// Bound on reaching `connected` after the answer is applied (default 10 s).
    pub connect_timeout: Duration,
    /// HTTP client to reuse (connection pooling across many clients in a load test); a new
    /// one is created when `None`.
    pub http_client: Option<reqwest::Client>,
    /// Drop the first arrival of every N-th inbound video packet, as if the network had lost
    /// it, so that retransmission can be seen to repair it (loopback loses nothing). Default
    /// `None`.
    pub inject_loss_every: Option<u16>,
    /// Negotiate transport-wide congestion control feedback (TWCC), as browsers do (default
    /// `true`). `false` gives a player that sends only RTCP receiver reports and NACKs, like
    /// aiortc, GStreamer or a hardware decoder.
    pub transport_cc: bool,
    /// Connect over ICE-TCP only (an active TCP candidate on `bind_addr`'s IP, no UDP), as a
    /// client whose network drops UDP (default `false`).
    pub ice_tcp: bool,
    /// Video codecs the peer connection offers (default VP8 only, as the synthetic media
    /// is VP8). A publisher of an H.264 [`crate::media::Clip`] offers H.264 only, whatever
    /// this says.
    pub video_codecs: VideoCodecs,
    /// STUN/TURN servers, e.g. those of a WHIP/WHEP answer's `Link: rel="ice-server"` headers
    /// (see [`ice_servers_from_links`]). Default none.
    pub ice_servers: Vec<webrtc::peer_connection::RTCIceServer>,
    /// Gather relay candidates only (`iceTransportPolicy: "relay"`), as a client whose
    /// network lets nothing but the TURN server through (default `false`).
    pub relay_only: bool,
}

/// Which video codecs a client registers, in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VideoCodecs {
    /// VP8 only, like a client without an H.264 decoder.
    #[default]
    Vp8,
    /// H.264 only (constrained baseline, packetization-mode 1).
    H264,
    /// VP8 first, then H.264, like a browser.
    Vp8AndH264,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            bind_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_timeout: Duration::from_secs(10),
            gather_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            http_client: None,
            inject_loss_every: None,
            transport_cc: true,
            video_codecs: VideoCodecs::Vp8,
            ice_tcp: false,
            ice_servers: Vec::new(),
            relay_only: false,
        }
    }
}

/// The ICE servers of `Link: <turn:...>; rel="ice-server"; username="..."; credential="..."`
/// headers (RFC 9725 §4.6).
pub fn ice_servers_from_links<'a>(
    links: impl IntoIterator<Item = &'a str>,
) -> Vec<webrtc::peer_connection::RTCIceServer> {
    let mut out = Vec::new();
    for header in links {
        // One header may list several links, comma-separated outside quotes and brackets.
        for link in split_links(header) {
            let Some((url, params)) = link
                .trim()
                .strip_prefix('<')
                .and_then(|l| l.split_once('>'))
            else {
                continue;
            };
            let mut rel = None;
            let (mut username, mut credential) = (String::new(), String::new());
            for p in params.split(';') {
                let Some((k, v)) = p.trim().split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"').to_owned();
                match k.trim() {
                    "rel" => rel = Some(v),
                    "username" => username = v,
                    "credential" => credential = v,
                    _ => {}
                }
            }
            if rel.as_deref() == Some("ice-server") {
                out.push(webrtc::peer_connection::RTCIceServer {
                    urls: vec![url.to_owned()],
                    username,
                    credential,
                });
            }
        }
    }
    out
}

fn split_links(header: &str) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut bracket) = (Vec::new(), 0, false, false);
    for (i, c) in header.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => bracket = true,
            '>' if !quoted => bracket = false,
            ',' if !quoted && !bracket => {
                parts.push(&header[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&header[start..]);
    parts
}

/// Called (on the webrtc-rs driver task, so it must not block) for every remote track.
pub(crate) type TrackCallback = Arc<dyn Fn(Arc<dyn TrackRemote>) + Send + Sync>;

/// A built peer connection plus the state channels its handler feeds.
pub(crate) struct PeerParts {
    pub pc: Arc<dyn PeerConnection>,
    pub gathering: watch::Receiver<RTCIceGatheringState>,
    /// The answer's `Link` headers (ICE servers, RFC 9725 §4.6), once negotiated.
    pub links: Vec<String>,
    pub state: watch::Receiver<RTCPeerConnectionState>,
}

struct Handler {
    gathering: watch::Sender<RTCIceGatheringState>,
    state: watch::Sender<RTCPeerConnectionState>,
    on_track: Option<TrackCallback>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        // `send_replace` never fails, even with no receiver left.
        self.gathering.send_replace(state);
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(%state, "peer connection state");
        self.state.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if let Some(cb) = &self.on_track {
            cb(track);
        }
    }
}

/// Opus as browsers offer it; PT 111 is only our preference, the answer decides.
pub(crate) fn opus_codec() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: 111,
    }
}

/// VP8 with the feedback an SFU relies on (NACK, PLI, FIR). Retransmissions come on the RTX
/// stream of [`rtx_codec`], which the receiver unwraps to the original sequence number.
pub(crate) fn vp8_codec() -> RTCRtpCodecParameters {
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_VP8.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![
                fb("goog-remb", ""),
                fb("ccm", "fir"),
                fb("nack", ""),
                fb("nack", "pli"),
            ],
        },
        payload_type: 96,
    }
}

/// H.264 constrained baseline, level 3.1, packetization-mode 1, as browsers offer it, with
/// the same feedback as [`vp8_codec`].
pub(crate) fn h264_codec() -> RTCRtpCodecParameters {
    let mut c = vp8_codec();
    c.rtp_codec.mime_type = MIME_TYPE_H264.to_owned();
    c.rtp_codec.sdp_fmtp_line =
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f".to_owned();
    c.payload_type = 102;
    c
}

/// RTX for [`h264_codec`].
fn h264_rtx_codec() -> RTCRtpCodecParameters {
    let mut c = rtx_codec();
    c.rtp_codec.sdp_fmtp_line = "apt=102".to_owned();
    c.payload_type = 103;
    c
}

/// RTX (RFC 4588) for [`vp8_codec`]: str0m retransmits only on a negotiated RTX stream, so
/// without it a NACKed packet would never be repaired and "loss after retransmission" would
/// equal the loss before.
pub(crate) fn rtx_codec() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_RTX.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: "apt=96".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: 97,
    }
}

/// How [`build_peer_connection`] sets up a peer connection.
pub(crate) struct PcSetup {
    /// Called for every remote track.
    pub on_track: Option<TrackCallback>,
    /// Let inbound PLI/FIR reach the application through `TrackLocal::poll` (webrtc-rs ends
    /// inbound RTCP at the interceptor chain otherwise).
    pub forward_keyframe_requests: bool,
    /// Register the `sdes:mid` and `sdes:rtp-stream-id` header extensions for video, which
    /// simulcast publishing needs.
    pub simulcast_extensions: bool,
    /// Overrides [`ClientOptions::video_codecs`] (a clip publisher sends one codec).
    pub video_codecs: Option<VideoCodecs>,
}

/// Build a peer connection that speaks only Opus and VP8 and/or H.264 (see module docs).
pub(crate) async fn build_peer_connection(
    opts: &ClientOptions,
    setup: PcSetup,
) -> Result<PeerParts, ClientError> {
    let mut media_engine = MediaEngine::default();
    media_engine.register_codec(opus_codec(), RtpCodecKind::Audio)?;
    let codecs = setup.video_codecs.unwrap_or(opts.video_codecs);
    if codecs != VideoCodecs::H264 {
        media_engine.register_codec(vp8_codec(), RtpCodecKind::Video)?;
        media_engine.register_codec(rtx_codec(), RtpCodecKind::Video)?;
    }
    if codecs != VideoCodecs::Vp8 {
        media_engine.register_codec(h264_codec(), RtpCodecKind::Video)?;
        media_engine.register_codec(h264_rtx_codec(), RtpCodecKind::Video)?;
    }
    if setup.simulcast_extensions {
        for uri in [
            crate::send::MID_EXTENSION_URI,
            crate::send::RID_EXTENSION_URI,
        ] {
            media_engine.register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: uri.to_owned(),
                },
                RtpCodecKind::Video,
                None,
            )?;
        }
    }
    // NACK, RTCP reports and TWCC feedback, as a browser would have; without TWCC, what a
    // plain player has.
    let mut registry = if opts.transport_cc {
        register_default_interceptors(Registry::new(), &mut media_engine)?
    } else {
        configure_simulcast_extension_headers(&mut media_engine)?;
        configure_rtcp_reports(configure_nack(Registry::new(), &mut media_engine))
    };
    if let Some(every) = opts.inject_loss_every {
        let pt = vp8_codec().payload_type;
        registry = registry.with(
            Slot::from(crate::loss::SLOT),
            crate::loss::LossInjector::new(every, pt),
        );
    }
    if setup.forward_keyframe_requests {
        // Application-most slot, so every other interceptor has seen the RTCP first (as in
        // webrtc-rs' rtcp-processing example).
        registry = registry.with(Slot::from(14_000), KeyframeRequestForwarder::default());
    }
    // mDNS would open a multicast socket per connection, useless on loopback and costly
    // with hundreds of clients.
    // Connectivity checks on a 20 ms tick instead of webrtc-rs' 200 ms: its driver sends the
    // first check and the first DTLS flight on that tick, so the default adds about 0.4 s to
    // every connection (a browser checks at once after the answer, then every 50 ms), which
    // is the client's doing, not the server's. Same 1.4 s of attempts per candidate.
    let mut settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_ice_connection_attempts(Some(Duration::from_millis(20)), Some(70));
    if opts.ice_tcp {
        settings = settings.with_network_types(vec![NetworkType::Tcp4, NetworkType::Tcp6]);
    }
    let settings = settings.build();

    let (gathering_tx, gathering) = watch::channel(RTCIceGatheringState::default());
    let (state_tx, state) = watch::channel(RTCPeerConnectionState::default());
    let handler = Arc::new(Handler {
        gathering: gathering_tx,
        state: state_tx,
        on_track: setup.on_track,
    });
    let mut configuration = webrtc::peer_connection::RTCConfigurationBuilder::new()
        .with_ice_servers(opts.ice_servers.clone());
    if opts.relay_only {
        configuration = configuration
            .with_ice_transport_policy(webrtc::peer_connection::RTCIceTransportPolicy::Relay);
    }
    let pc = PeerConnectionBuilder::new()
        .with_configuration(configuration.build())
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .with_handler(handler)
        .with_udp_addrs(if opts.ice_tcp {
            Vec::new()
        } else {
            vec![opts.bind_addr]
        })
        .with_tcp_addrs(if opts.ice_tcp {
            vec![opts.bind_addr]
        } else {
            Vec::new()
        })
        .build()
        .await?;
    Ok(PeerParts {
        pc: Arc::new(pc),
        gathering,
        links: Vec::new(),
        state,
    })
}

/// Interceptor marking inbound PLI/FIR with `DeliverToApplication` and dropping all other
/// inbound RTCP at this last stage (the interceptors before it have already acted on it).
#[derive(Default)]
struct KeyframeRequestForwarder {
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestForwarder {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = webrtc::error::Error;
    type Time = std::time::Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let requests: Vec<_> = packets
                .iter()
                .filter(|p| {
                    let any = p.as_any();
                    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
                })
                .cloned()
                .collect();
            if requests.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(requests);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for KeyframeRequestForwarder {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// Parse a client-supplied endpoint URL.
pub(crate) fn parse_url(url: &str) -> Result<Url, ClientError> {
    Url::parse(url).map_err(|e| ClientError::InvalidUrl {
        url: url.to_owned(),
        reason: e.to_string(),
    })
}

/// The HTTP client to use for a session.
pub(crate) fn http_client(opts: &ClientOptions) -> Result<reqwest::Client, ClientError> {
    match &opts.http_client {
        Some(c) => Ok(c.clone()),
        None => Ok(reqwest::Client::builder().build()?),
    }
}

/// Wait (bounded) until ICE gathering is complete, then return the local description's SDP,
/// which then lists every candidate (Ketang takes no trickled candidates).
pub(crate) async fn gathered_local_sdp(
    parts: &mut PeerParts,
    timeout: Duration,
) -> Result<String, ClientError> {
    let gathered = tokio::time::timeout(
        timeout,
        parts
            .gathering
            .wait_for(|s| *s == RTCIceGatheringState::Complete),
    )
    .await
    .map(|r| r.map(|_| ()));
    match gathered {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return Err(ClientError::ConnectionFailed("driver stopped".into())),
        Err(_) => {
            return Err(ClientError::Timeout {
                what: "ICE gathering",
                after: timeout,
            });
        }
    }
    Ok(parts
        .pc
        .local_description()
        .await
        .ok_or_else(|| ClientError::Protocol("no local description after gathering".into()))?
        .sdp)
}

/// Offer → gather → POST → answer. Returns the resolved session URL (`Location`).
pub(crate) async fn negotiate(
    parts: &mut PeerParts,
    http: &reqwest::Client,
    url: &Url,
    token: &str,
    opts: &ClientOptions,
) -> Result<Url, ClientError> {
    let started = std::time::Instant::now();
    let offer = parts.pc.create_offer(None).await?;
    parts.pc.set_local_description(offer).await?;
    // Non-trickle: WHIP PATCH is not supported by Ketang, so the offer must carry every
    // candidate.
    let offer_sdp = gathered_local_sdp(parts, opts.gather_timeout).await?;
    tracing::debug!(elapsed = ?started.elapsed(), "ICE gathering complete");

    let response = http
        .post(url.clone())
        .timeout(opts.http_timeout)
        .header(CONTENT_TYPE, "application/sdp")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(offer_sdp)
        .send()
        .await?;
    let status = response.status();
    if status.as_u16() != 201 {
        let body = response.text().await.unwrap_or_default();
        return Err(ClientError::Http {
            status: status.as_u16(),
            body,
        });
    }
    let location = response
        .headers()
        .get(LOCATION)
        .ok_or_else(|| ClientError::Protocol("201 without Location header".into()))?
        .to_str()
        .map_err(|_| ClientError::Protocol("Location header is not ASCII".into()))?
        .to_owned();
    parts.links = response
        .headers()
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    // Ketang returns a relative Location; RFC 9725 allows either form.
    let location = url.join(&location).map_err(|e| ClientError::InvalidUrl {
        url: location.clone(),
        reason: e.to_string(),
    })?;
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/sdp") {
        return Err(ClientError::Protocol(format!(
            "answer has Content-Type {content_type:?}, expected application/sdp"
        )));
    }
    let answer_sdp = response.text().await?;
    let answer = RTCSessionDescription::answer(answer_sdp.clone())
        .map_err(|e| ClientError::Protocol(format!("answer does not parse: {e}")))?;
    parts.pc.set_remote_description(answer).await?;
    if opts.ice_tcp {
        // webrtc-rs opens TCP connections only to passive candidates added one by one, not
        // to those in a description: hand them over again.
        let mut seen = Vec::new();
        for line in answer_sdp.lines() {
            let Some(c) = line.strip_prefix("a=") else {
                continue;
            };
            if c.starts_with("candidate:") && c.contains(" tcptype passive") && !seen.contains(&c) {
                seen.push(c);
                let init = webrtc::peer_connection::RTCIceCandidateInit {
                    candidate: c.to_owned(),
                    sdp_mline_index: Some(0),
                    ..Default::default()
                };
                parts.pc.add_ice_candidate(init).await?;
            }
        }
    }
    tracing::debug!(elapsed = ?started.elapsed(), %location, "answer applied");
    Ok(location)
}

/// Wait (bounded) until the connection is `connected`; `failed`/`closed` end the wait early.
pub(crate) async fn wait_connected(
    state: &mut watch::Receiver<RTCPeerConnectionState>,
    timeout: Duration,
) -> Result<(), ClientError> {
    let waited = tokio::time::timeout(
        timeout,
        state.wait_for(|s| {
            matches!(
                s,
                RTCPeerConnectionState::Connected
                    | RTCPeerConnectionState::Failed
                    | RTCPeerConnectionState::Closed
            )
        }),
    )
    .await;
    match waited {
        Ok(Ok(s)) if *s == RTCPeerConnectionState::Connected => Ok(()),
        Ok(Ok(s)) => Err(ClientError::ConnectionFailed(s.to_string())),
        Ok(Err(_)) => Err(ClientError::ConnectionFailed("driver stopped".into())),
        Err(_) => Err(ClientError::Timeout {
            what: "peer connection to reach connected",
            after: timeout,
        }),
    }
}

/// `DELETE` the session resource; any 2xx is success.
pub(crate) async fn delete_session(
    http: &reqwest::Client,
    location: &Url,
    token: &str,
    timeout: Duration,
) -> Result<(), ClientError> {
    let response = http
        .delete(location.clone())
        .timeout(timeout)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        let body = response.text().await.unwrap_or_default();
        Err(ClientError::Http {
            status: status.as_u16(),
            body,
        })
    }
}

/// Everything after `build_peer_connection`: negotiate and wait for `connected`, cleaning up
/// on failure (close the PC; DELETE the server session if one was created) so a failed
/// connect leaks neither a driver task nor a server-side session.
pub(crate) async fn establish(
    parts: &mut PeerParts,
    http: &reqwest::Client,
    url: &Url,
    token: &str,
    opts: &ClientOptions,
) -> Result<(Url, u64), ClientError> {
    let location = match negotiate(parts, http, url, token, opts).await {
        Ok(location) => location,
        Err(e) => {
            let _ = parts.pc.close().await;
            return Err(e);
        }
    };
    let started = std::time::Instant::now();
    let answered_us = crate::media::now_unix_micros();
    if let Err(e) = wait_connected(&mut parts.state, opts.connect_timeout).await {
        let _ = delete_session(http, &location, token, opts.http_timeout).await;
        let _ = parts.pc.close().await;
        return Err(e);
    }
    tracing::debug!(elapsed = ?started.elapsed(), "connected (ICE + DTLS)");
    Ok((location, answered_us))
}
