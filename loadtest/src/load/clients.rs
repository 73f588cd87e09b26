//! One load participant = one actor task: join, publish and/or receive, wait, leave.
//!
//! ```text
//! orchestrator ──spawn──▶ run_member(plan) ──join──▶ joined (oneshot: ok?)
//!                             │ publishers: MediaSender / WhipPublisher runs until `stop_media`
//!                             │ receivers: on_track ──▶ TrackRecv + read_track task (recv.rs)
//!                             └─ waits for `leave`, then leaves (WebSocket `leave`, WHIP/WHEP
//!                                DELETE) and closes the peer connection, each bounded
//! ```
//!
//! Everything the report needs is written into the participant's [`Member`], which the
//! orchestrator reads once the actors are done (or at the end of the measurement window for
//! receive statistics, which the track readers keep updating).

use super::recv::{SharedTrack, TrackRecv, read_track};
use super::tokens::Role;
use crate::live::LiveCounters;
use crate::send::{MediaConfig, SendReport, StopWhen};
use crate::signaling::{self, ClientOptions, PcSetup, TrackCallback, build_peer_connection};
use crate::whip::{WhipOptions, WhipPublisher};
use crate::ws::{RemoteTrackHandler, WsClient, WsOptions, WsStats, ws_url};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use serde::Serialize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_remote::TrackRemote;

/// How a participant talks to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// WHIP publisher.
    Whip,
    /// WHEP player.
    Whep,
    /// WebSocket signaling.
    Ws,
}

/// Who joins, how, with what.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Room name.
    pub room: String,
    /// Token role.
    pub role: Role,
    /// Display name.
    pub name: String,
    /// Room token.
    pub token: String,
    /// Transport.
    pub transport: Transport,
    /// Media to publish, if any.
    pub publish: Option<MediaConfig>,
    /// Simulcast bitrates, for a WHIP publisher.
    pub simulcast: Option<[u32; 3]>,
    /// Teachers join first, the rest once they are up.
    pub stage: u8,
}

/// Settings shared by every participant of a run.
pub struct Ctx {
    /// Counters of the whole run.
    pub live: Arc<LiveCounters>,
    /// Network options (with a shared HTTP client).
    pub client: ClientOptions,
    /// Server base URL, `http://HOST:PORT`.
    pub base_url: String,
    /// Bound on signaling replies.
    pub reply_timeout: Duration,
    /// Turns true when publishers must stop.
    pub stop_media: watch::Receiver<bool>,
    /// Turns true when participants must leave.
    pub leave: watch::Receiver<bool>,
    /// Upper bound on a participant's life (a safety net; the signals come first).
    pub max_life: Duration,
}

/// What one participant did; filled in by its actor.
#[derive(Default)]
pub struct Member {
    /// Its plan (name, role, transport, ...).
    pub plan: Option<Plan>,
    /// Peer id (signaling only).
    pub peer_id: Mutex<Option<u64>>,
    /// Time from starting to join to being connected.
    pub join_time: Mutex<Option<Duration>>,
    /// Why joining (or anything later) failed.
    pub error: Mutex<Option<String>>,
    /// Received tracks.
    pub tracks: Mutex<Vec<SharedTrack>>,
    /// What it sent, once it stopped.
    pub sent: Mutex<Option<SendReport>>,
    /// Signaling counters, once it left.
    pub ws: Mutex<Option<WsStats>>,
    readers: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Member {
    /// A member for `plan`.
    pub fn new(plan: Plan) -> Member {
        Member {
            plan: Some(plan),
            ..Member::default()
        }
    }

    /// Lock a field (a poisoned lock still holds plain data).
    pub fn get<T: Clone>(m: &Mutex<T>) -> T {
        lock(m).clone()
    }

    fn add_track(
        self: &Arc<Self>,
        live: &Arc<LiveCounters>,
        track: Arc<dyn TrackRemote>,
        recv: TrackRecv,
    ) {
        let shared: SharedTrack = Arc::new(Mutex::new(recv));
        lock(&self.tracks).push(Arc::clone(&shared));
        let task = tokio::spawn(read_track(
            track,
            shared,
            Arc::clone(live),
            Duration::from_secs(1),
        ));
        let mut readers = lock(&self.readers);
        readers.retain(|t| !t.is_finished());
        readers.push(task);
    }

    fn fail(&self, e: impl std::fmt::Display) {
        lock(&self.error).get_or_insert_with(|| e.to_string());
    }

    fn stop_readers(&self) {
        for t in std::mem::take(&mut *lock(&self.readers)) {
            t.abort();
        }
    }
}

/// Wait until `rx` turns true (or its sender is gone, or `max` passes).
async fn wait_true(rx: &mut watch::Receiver<bool>, max: Duration) {
    let _ = tokio::time::timeout(max, rx.wait_for(|v| *v)).await;
}

/// The actor of one participant. `joined` gets whether joining worked.
pub async fn run_member(member: Arc<Member>, ctx: Arc<Ctx>, joined: oneshot::Sender<bool>) {
    let Some(plan) = member.plan.clone() else {
        let _ = joined.send(false);
        return;
    };
    let started = Instant::now();
    match plan.transport {
        Transport::Whip => whip_member(&member, &ctx, &plan, started, joined).await,
        Transport::Whep => whep_member(&member, &ctx, &plan, started, joined).await,
        Transport::Ws => ws_member(&member, &ctx, &plan, started, joined).await,
    }
    member.stop_readers();
}

async fn whip_member(
    m: &Arc<Member>,
    ctx: &Ctx,
    plan: &Plan,
    started: Instant,
    joined: oneshot::Sender<bool>,
) {
    let media = plan.publish.clone().unwrap_or_default();
    let opts = WhipOptions {
        client: ctx.client.clone(),
        audio: media.audio.clone(),
        video: media.video.first().map(|l| l.vp8.clone()),
        simulcast: plan.simulcast,
        clip: media.clip.clone(),
        audio_packets: media.audio_packets.clone(),
    };
    let url = format!("{}/whip/{}", ctx.base_url, plan.room);
    let mut publisher = match WhipPublisher::connect(&url, &plan.token, opts).await {
        Ok(p) => p,
        Err(e) => {
            m.fail(format!("WHIP: {e}"));
            let _ = joined.send(false);
            return;
        }
    };
    *lock(&m.join_time) = Some(started.elapsed());
    let _ = joined.send(true);
    let sent = publisher
        .run_until(ctx.stop_media.clone(), ctx.max_life, Some(&ctx.live))
        .await;
    *lock(&m.sent) = Some(sent);
    wait_true(&mut ctx.leave.clone(), ctx.max_life).await;
    if let Ok(Err(e)) = tokio::time::timeout(ctx.reply_timeout, publisher.close()).await {
        m.fail(format!("WHIP close: {e}"));
    }
}

async fn whep_member(
    m: &Arc<Member>,
    ctx: &Ctx,
    plan: &Plan,
    started: Instant,
    joined: oneshot::Sender<bool>,
) {
    let on_track: TrackCallback = {
        let (m, live) = (Arc::clone(m), Arc::clone(&ctx.live));
        Arc::new(move |track: Arc<dyn TrackRemote>| {
            let (m, live) = (Arc::clone(&m), Arc::clone(&live));
            tokio::spawn(async move {
                let kind = match track.kind().await {
                    RtpCodecKind::Audio => "audio",
                    _ => "video",
                };
                let source = if kind == "audio" { "mic" } else { "camera" };
                m.add_track(&live, track, TrackRecv::new(kind, None, source, started));
            });
        })
    };
    let setup = PcSetup {
        on_track: Some(on_track),
        forward_keyframe_requests: false,
        simulcast_extensions: false,
        video_codecs: None,
    };
    let url = format!("{}/whep/{}", ctx.base_url, plan.room);
    let connected = async {
        let url = signaling::parse_url(&url)?;
        let http = signaling::http_client(&ctx.client)?;
        let mut parts = build_peer_connection(&ctx.client, setup).await?;
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            let init = RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                streams: vec![],
                send_encodings: vec![],
            };
            if let Err(e) = parts.pc.add_transceiver_from_kind(kind, Some(init)).await {
                let _ = parts.pc.close().await;
                return Err(e.into());
            }
        }
        let (location, _) =
            signaling::establish(&mut parts, &http, &url, &plan.token, &ctx.client).await?;
        Ok::<_, crate::ClientError>((parts.pc, http, location))
    }
    .await;
    let (pc, http, location) = match connected {
        Ok(v) => v,
        Err(e) => {
            m.fail(format!("WHEP: {e}"));
            let _ = joined.send(false);
            return;
        }
    };
    *lock(&m.join_time) = Some(started.elapsed());
    let _ = joined.send(true);
    wait_true(&mut ctx.leave.clone(), ctx.max_life).await;
    let t = ctx.reply_timeout;
    if let Ok(Err(e)) = tokio::time::timeout(
        t,
        signaling::delete_session(&http, &location, &plan.token, t),
    )
    .await
    {
        m.fail(format!("WHEP DELETE: {e}"));
    }
    let _ = tokio::time::timeout(t, pc.close()).await;
}

async fn ws_member(
    m: &Arc<Member>,
    ctx: &Ctx,
    plan: &Plan,
    started: Instant,
    joined: oneshot::Sender<bool>,
) {
    let handler: RemoteTrackHandler = {
        let (m, live) = (Arc::clone(m), Arc::clone(&ctx.live));
        Arc::new(move |track, info| {
            let (kind, publisher, source, since) = match &info {
                Some(i) => (
                    if i.kind == "audio" { "audio" } else { "video" },
                    Some(i.peer_id),
                    i.source.as_str(),
                    i.offered_at.max(started),
                ),
                None => ("video", None, "", started),
            };
            m.add_track(&live, track, TrackRecv::new(kind, publisher, source, since));
        })
    };
    let url = match ws_url(&ctx.base_url, &plan.token) {
        Ok(u) => u,
        Err(e) => {
            m.fail(e);
            let _ = joined.send(false);
            return;
        }
    };
    let opts = WsOptions {
        client: ctx.client.clone(),
        publish: plan.publish.clone(),
        reply_timeout: ctx.reply_timeout,
    };
    let mut client = match WsClient::connect(&url, opts, Some(handler)).await {
        Ok(c) => c,
        Err(e) => {
            m.fail(format!("signaling: {e}"));
            let _ = joined.send(false);
            return;
        }
    };
    *lock(&m.peer_id) = Some(client.peer_id());
    *lock(&m.join_time) = Some(started.elapsed());
    let _ = joined.send(true);
    if let Some(mut sender) = client.take_sender() {
        let stop = StopWhen {
            deadline: Some(Instant::now() + ctx.max_life),
            signal: Some(ctx.stop_media.clone()),
        };
        let sent = sender.run(stop, Some(&ctx.live)).await;
        *lock(&m.sent) = Some(sent);
    }
    wait_true(&mut ctx.leave.clone(), ctx.max_life).await;
    let stats = client.leave(ctx.reply_timeout).await;
    if stats.bye.as_deref().is_some_and(|b| b != "left") {
        m.fail(format!("bye: {}", stats.bye.as_deref().unwrap_or("")));
    }
    *lock(&m.ws) = Some(stats);
}
