//! The bridge: a WebRTC publisher inside the server that carries one RTMP stream into its room.
//!
//! It is a str0m `Rtc` in frame mode offering one `sendonly` audio (Opus) and one video (H.264
//! with the encoder's profile) m-line, joined through the WHIP handler with the stream key's
//! room link, so admission, attendance, removal, token expiry and the per-link session limit
//! apply as to any WHIP encoder. It talks to the room's media shard over UDP on this host, from
//! a socket bound to the address the shard's answer names. The owner (the RTMP connection)
//! drives it: `handle_datagram`, `handle_timeout`, the `send_*` calls, and `poll` until it
//! returns the next deadline.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::{Codec, CodecConfig, PayloadParams};
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;

use super::IngestError;
use super::flv::AvcConfig;
use crate::state::AppState;

/// The H.264 payload type offered (any dynamic one would do; the answer keeps it).
const PT_H264: u8 = 102;

pub struct Bridge {
    rtc: Rtc,
    pub socket: UdpSocket,
    local: SocketAddr,
    audio: Mid,
    video: Mid,
    /// `/whip/{room}/{session}`: where the session is ended.
    location: String,
    pub connected: bool,
    /// Video from the latest keyframe on, while the connection comes up: sent once it is, so
    /// viewers already in the room start at the encoder's first keyframe rather than wait a
    /// whole keyframe interval for its second (an RTMP source cannot be asked for one).
    early_video: Vec<(u64, Vec<u8>)>,
}

/// At most this much video is held while connecting (a few seconds of a 1080p stream).
const EARLY_VIDEO_BYTES: usize = 4 * 1024 * 1024;

impl Bridge {
    /// Joins `room` as the publisher of `token`'s link, for a stream with `avc`'s profile.
    pub async fn join(
        state: &AppState,
        room: &str,
        token: &str,
        avc: &AvcConfig,
    ) -> Result<Bridge, IngestError> {
        let now = Instant::now();
        let mut builder = Rtc::builder().clear_codecs().enable_opus(true, false);
        let codecs = builder.codec_config();
        codecs.add_h264(PT_H264.into(), None, true, avc.sdp_profile());
        // An RTMP encoder cannot be asked for a keyframe: offering no PLI or FIR tells the room
        // so, and it keeps each GOP for viewers who start in the middle of one.
        let params: Vec<PayloadParams> = codecs
            .params()
            .iter()
            .map(|p| {
                let mut p = *p;
                if p.spec().codec == Codec::H264 {
                    p.set_fb_pli(false);
                    p.set_fb_fir(false);
                }
                p
            })
            .collect();
        *codecs = CodecConfig::new_from_payload_params(params);
        let mut rtc = builder.build(now);
        let mut api = rtc.sdp_api();
        let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| IngestError::WebRtc("no offer".into()))?;
        let (answer, location) = post_offer(state, room, token, offer.to_sdp_string()).await?;
        let (socket, local, remote) = bind_towards(&answer).await?;
        let mut bridge = Bridge {
            rtc,
            socket,
            local,
            audio,
            video,
            location,
            connected: false,
            early_video: Vec::new(),
        };
        bridge.accept(pending, &answer, local, remote)?;
        Ok(bridge)
    }

    fn accept(
        &mut self,
        pending: SdpPendingOffer,
        answer: &str,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<(), IngestError> {
        let sdp =
            SdpAnswer::from_sdp_string(answer).map_err(|e| IngestError::WebRtc(e.to_string()))?;
        let host = |a| Candidate::host(a, "udp").map_err(|e| IngestError::WebRtc(e.to_string()));
        self.rtc.add_local_candidate(host(local)?);
        self.rtc.add_remote_candidate(host(remote)?);
        self.rtc
            .sdp_api()
            .accept_answer(pending, sdp)
            .map_err(|e| IngestError::WebRtc(e.to_string()))
    }

    pub fn handle_datagram(&mut self, from: SocketAddr, data: &[u8]) {
        let Ok(contents) = data.try_into() else {
            return;
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: self.local,
                contents,
            },
        );
        if self.rtc.accepts(&input) {
            let _ = self.rtc.handle_input(input);
        }
    }

    pub fn handle_timeout(&mut self) {
        let _ = self.rtc.handle_input(Input::Timeout(Instant::now()));
    }

    /// One H.264 access unit (Annex B) at `ts90` (90 kHz).
    pub fn send_video(&mut self, ts90: u64, au: Vec<u8>, keyframe: bool) {
        if !self.connected {
            if keyframe {
                self.early_video.clear();
            }
            let held: usize = self.early_video.iter().map(|(_, a)| a.len()).sum();
            if (keyframe || !self.early_video.is_empty()) && held + au.len() <= EARLY_VIDEO_BYTES {
                self.early_video.push((ts90, au));
            }
            return;
        }
        self.write(self.video, Codec::H264, MediaTime::from_90khz(ts90), au);
    }

    /// One Opus packet at `ts48` (48 kHz).
    pub fn send_audio(&mut self, ts48: u64, packet: Vec<u8>) {
        let t = MediaTime::new(ts48, str0m::media::Frequency::FORTY_EIGHT_KHZ);
        self.write(self.audio, Codec::Opus, t, packet);
    }

    fn write(&mut self, mid: Mid, codec: Codec, t: MediaTime, data: Vec<u8>) {
        // Nothing before the connection is up (str0m would only buffer it).
        if !self.connected {
            return;
        }
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        let Some(pt) = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
        else {
            return;
        };
        if let Err(e) = writer.write(pt, Instant::now(), t, data) {
            tracing::debug!("ingest write: {e}");
        }
    }

    /// Sends what str0m has queued; returns when it next wants `handle_timeout`, or an error
    /// once the connection is lost.
    pub async fn poll(&mut self) -> Result<Instant, IngestError> {
        for _ in 0..10_000 {
            match self
                .rtc
                .poll_output()
                .map_err(|e| IngestError::WebRtc(e.to_string()))?
            {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => {
                    // A full socket buffer drops the datagram, as a network would.
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(Event::IceConnectionStateChange(s)) => {
                    if s == IceConnectionState::Disconnected {
                        return Err(IngestError::WebRtc(
                            "the room's media connection was lost".into(),
                        ));
                    }
                }
                Output::Event(Event::Connected) => {
                    self.connected = true;
                    for (ts90, au) in std::mem::take(&mut self.early_video) {
                        self.write(self.video, Codec::H264, MediaTime::from_90khz(ts90), au);
                    }
                }
                Output::Event(_) => {}
            }
        }
        Ok(Instant::now() + Duration::from_millis(1))
    }

    /// Ends the WHIP session (the room sees the encoder leave).
    pub fn leave(&self, state: &AppState) {
        let mut parts = self.location.trim_start_matches('/').split('/');
        if let (Some("whip"), Some(room), Some(session)) =
            (parts.next(), parts.next(), parts.next())
        {
            let path = Path((room.to_string(), session.to_string()));
            let state = state.clone();
            tokio::spawn(async move {
                crate::http::whip::whip_delete(State(state), path).await;
            });
        }
    }
}

/// The WHIP request, handled in process: the answer and the session's location.
async fn post_offer(
    state: &AppState,
    room: &str,
    token: &str,
    offer: String,
) -> Result<(String, String), IngestError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| IngestError::BadStreamKey("the token has characters a header cannot hold"))?;
    headers.insert(header::AUTHORIZATION, bearer);
    let response = crate::http::whip::whip_post(
        State(state.clone()),
        Path(room.to_string()),
        headers,
        Body::from(offer),
    )
    .await;
    let status = response.status();
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = axum::body::to_bytes(response.into_body(), 256 * 1024)
        .await
        .map_err(|e| IngestError::WebRtc(e.to_string()))?;
    let text = String::from_utf8_lossy(&body).into_owned();
    match (status, location) {
        (StatusCode::CREATED, Some(location)) => Ok((text, location)),
        _ => Err(IngestError::Refused {
            status: status.as_u16(),
            message: text,
        }),
    }
}

/// A UDP socket on this host that can reach the room's shard: bound to the address of the
/// first UDP candidate in the answer that is one of ours (the shard's own address).
async fn bind_towards(answer: &str) -> Result<(UdpSocket, SocketAddr, SocketAddr), IngestError> {
    for line in answer.lines() {
        let Some(c) = line.trim().strip_prefix("a=candidate:") else {
            continue;
        };
        let f: Vec<&str> = c.split_whitespace().collect();
        let (Some(proto), Some(ip), Some(port)) = (f.get(2), f.get(4), f.get(5)) else {
            continue;
        };
        if !proto.eq_ignore_ascii_case("udp") {
            continue;
        }
        let (Ok(ip), Ok(port)) = (ip.parse::<std::net::IpAddr>(), port.parse::<u16>()) else {
            continue;
        };
        if let Ok(socket) = UdpSocket::bind(SocketAddr::new(ip, 0)).await {
            let local = socket.local_addr()?;
            return Ok((socket, local, SocketAddr::new(ip, port)));
        }
    }
    Err(IngestError::WebRtc(
        "none of the room's media addresses is on this host (media.advertise names only \
         addresses of other hosts); RTMP ingest needs one local address"
            .into(),
    ))
}
