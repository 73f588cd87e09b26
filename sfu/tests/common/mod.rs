//! Test harness: one `Sfu` shard and in-memory str0m clients standing in for browsers, on a
//! virtual clock. Links between each client and the shard go through `str0m-netem` (seeded),
//! so latency, loss and rate limits are reproducible, and a lesson of many seconds runs in a
//! fraction of a second of real time.
//!
//! Clients publish synthetic Opus (20 ms) and VP8 (30 fps, keyframe every 2 s or on request)
//! frames with str0m's frame API, and count what they receive per m-line. Signaling is
//! automatic: server offers are answered at once, as the browser client does.
#![allow(dead_code)]
// The harness picks the virtual clock's starting instant.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ketang_sfu::{
    Answer, FloorCommand, FloorContext, FloorOutcome, JoinRequest, LeaveReason, LessonMode,
    PeerEvent, PeerId, PeerMode, Role, RoomId, Sfu, SfuConfig, SfuError, SfuEvent, SfuOutput,
    TrackInfo, TrackKind, TrackSource,
};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use str0m_netem::{Input as NIn, Netem, NetemConfig, Output as NOut};

pub const SFU_ADDR: &str = "10.0.0.1:10000";

/// What a client received on one m-line.
#[derive(Debug, Default, Clone)]
pub struct RxCount {
    pub frames: u64,
    pub keyframes: u64,
    pub bytes: u64,
    pub last_at: Option<Instant>,
    /// Every frame: (arrival, bytes).
    pub log: Vec<(Instant, usize)>,
    /// Packets received so far, every 100 ms: (time, total).
    pub packet_log: Vec<(Instant, u64)>,
}

pub struct Client {
    pub name: String,
    pub peer: PeerId,
    pub role: Role,
    pub addr: SocketAddr,
    pub rtc: Rtc,
    pub up: Netem<Vec<u8>>,
    pub down: Netem<Vec<u8>>,
    pub events: Vec<PeerEvent>,
    pub rx: HashMap<Mid, RxCount>,
    /// The track on each receiving m-line, from the latest server offer.
    pub mid_tracks: HashMap<Mid, TrackInfo>,
    /// Own publishing m-lines.
    pub send: Vec<(Mid, TrackSource)>,
    pub answer: Option<Answer>,
    pub offers_answered: u32,
    pub keyframe_wanted: bool,
    /// Keyframe requests go unanswered (`Net::deaf`).
    pub deaf: bool,
    pub sent_frames: u64,
    /// Keyframes it published.
    pub keyframes_sent: u64,
    /// Simulcast ladder of the camera: (rid, bytes per frame).
    pub ladder: Option<Vec<(&'static str, usize)>>,
    /// Bytes per delta frame of a single-layer camera (keyframes are 3 times as large);
    /// `None`: the default 1500 (about 360 kbit/s).
    pub camera_bytes: Option<usize>,
    pub frame_no: u64,
    audio_no: u64,
    next_audio: Instant,
    next_video: Instant,
    /// Stop sending media (the client stays connected).
    pub muted: bool,
    /// Every datagram delivered to the client: (arrival, bytes).
    pub down_log: Vec<(Instant, usize)>,
    /// The network is cut: everything to and from the client is lost (it keeps running).
    pub cut: bool,
    /// The RFC 6464 level (dBov) put on outgoing audio: -127 silent, -20 talking.
    pub audio_level: i8,
    pub gone: bool,
    /// The codec of its camera: VP8, or H.264 for a client that offers only that.
    pub video_codec: Codec,
}

pub struct Net {
    pub start: Instant,
    pub now: Instant,
    pub sfu: Sfu,
    pub sfu_addr: SocketAddr,
    pub clients: Vec<Client>,
    pub room: RoomId,
    /// The lesson mode clients join with.
    pub mode: LessonMode,
    /// The bandwidth caps clients join with.
    pub caps: ketang_sfu::PeerCaps,
    /// If set, the next joining client publishes its camera in simulcast with these layers:
    /// (rid, bytes per frame), lowest first.
    pub simulcast: Option<Vec<(&'static str, usize)>>,
    /// Bytes per delta frame of the next joining client's single-layer camera.
    pub camera_bytes: Option<usize>,
    /// Whether the next joining client negotiates transport-wide congestion control (as
    /// browsers do); without it, it sends only receiver reports, as many players do.
    pub twcc: bool,
    /// The only video codec the next joining client offers (and sends); `None`: all of
    /// str0m's, sending VP8.
    pub video_codec: Option<Codec>,
    /// Whether the next joining client offers no PLI or FIR feedback for video and makes
    /// keyframes only every 2 s, as an RTMP bridge or a camera relay does.
    pub deaf: bool,
    sfu_deadline: Instant,
    next_peer: u64,
    /// Every event the SFU produced, for assertions.
    pub sfu_events: Vec<String>,
    /// Attendance activities, with the virtual time since the start.
    pub activities: Vec<(Duration, PeerId, ketang_sfu::Activity)>,
    hold_offers: bool,
    /// What the recorder tap emitted.
    pub recorded: Vec<ketang_sfu::RecordEvent>,
    /// Offers held back while `hold_offers` is set: (client index, sdp).
    pub held: Vec<(usize, String)>,
}

pub fn init_log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

impl Net {
    pub fn new() -> Net {
        Net::with_config(|_| {})
    }

    /// A net whose shard runs with the defaults changed by `tweak`.
    pub fn with_config(tweak: impl FnOnce(&mut SfuConfig)) -> Net {
        init_log();
        let now = Instant::now();
        let sfu_addr: SocketAddr = SFU_ADDR.parse().unwrap();
        let mut config = SfuConfig::new(vec![sfu_addr]);
        tweak(&mut config);
        let sfu = Sfu::new(config, now).unwrap();
        Net {
            start: now,
            now,
            sfu,
            sfu_addr,
            clients: Vec::new(),
            room: RoomId::new("lesson-1").unwrap(),
            mode: LessonMode::Open,
            caps: Default::default(),
            simulcast: None,
            camera_bytes: None,
            twcc: true,
            video_codec: None,
            deaf: false,
            sfu_deadline: now,
            next_peer: 1,
            sfu_events: Vec::new(),
            activities: Vec::new(),
            hold_offers: false,
            recorded: Vec::new(),
            held: Vec::new(),
        }
    }

    /// A client joins with a signaling-style offer publishing `sources`.
    pub fn join(&mut self, name: &str, role: Role, sources: &[TrackSource]) -> usize {
        self.join_mode(name, role, sources, PeerMode::Signaling)
    }

    pub fn join_mode(
        &mut self,
        name: &str,
        role: Role,
        sources: &[TrackSource],
        mode: PeerMode,
    ) -> usize {
        let idx = self.clients.len();
        let addr: SocketAddr = format!("10.0.1.{}:5000", idx + 1).parse().unwrap();
        // Receive statistics every 100 ms: packet arrival per m-line, whatever the frame
        // assembly does with the packets.
        let mut builder = Rtc::builder().set_stats_interval(Some(Duration::from_millis(100)));
        if !self.twcc {
            use str0m::rtp::Extension;
            builder = builder
                .clear_extension_map()
                .set_extension(1, Extension::AudioLevel)
                .set_extension(2, Extension::AbsoluteSendTime)
                .set_extension(4, Extension::RtpMid)
                .set_extension(10, Extension::RtpStreamId)
                .set_extension(11, Extension::RepairedRtpStreamId)
                .set_extension(13, Extension::VideoOrientation);
        }
        if let Some(codec) = self.video_codec {
            builder = builder
                .clear_codecs()
                .enable_opus(true, false)
                .enable_vp8(codec == Codec::Vp8)
                .enable_h264(codec == Codec::H264);
        }
        if self.deaf {
            let codecs = builder.codec_config();
            let params: Vec<_> = codecs
                .params()
                .iter()
                .map(|p| {
                    let mut p = *p;
                    p.set_fb_pli(false);
                    p.set_fb_fir(false);
                    p
                })
                .collect();
            *codecs = str0m::format::CodecConfig::new_from_payload_params(params);
        }
        let mut rtc = builder.build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut api = rtc.sdp_api();
        let mut send = Vec::new();
        match mode {
            PeerMode::Whep => {
                api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
                api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
            }
            _ => {
                for s in sources {
                    let kind = match s.kind() {
                        TrackKind::Audio => MediaKind::Audio,
                        TrackKind::Video => MediaKind::Video,
                    };
                    let sim = match (s, &self.simulcast) {
                        (TrackSource::Camera, Some(ladder)) => {
                            let mut sim = str0m::media::Simulcast::new();
                            for (rid, _) in ladder {
                                sim.add_send_layer(str0m::media::SimulcastLayer::new(rid));
                            }
                            Some(sim)
                        }
                        _ => None,
                    };
                    let mid = api.add_media(kind, Direction::SendOnly, None, None, sim);
                    send.push((mid, *s));
                }
                if sources.is_empty() {
                    api.add_channel("ketang".into());
                }
            }
        }
        let (offer, pending) = api.apply().unwrap();
        let peer = PeerId(self.next_peer);
        self.next_peer += 1;
        let req = JoinRequest {
            peer,
            room: self.room.clone(),
            name: name.into(),
            role,
            classroom: None,
            joined_at_ms: 0,
            mode,
            offer: offer.to_sdp_string(),
            sources: send.iter().map(|(m, s)| (m.to_string(), *s)).collect(),
            lesson_mode: self.mode,
            caps: self.caps,
        };
        let answer = self.sfu.join(self.now, req).expect("join accepted");
        let sdp = SdpAnswer::from_sdp_string(&answer.sdp).unwrap();
        rtc.sdp_api().accept_answer(pending, sdp).unwrap();
        let now = self.now;
        self.clients.push(Client {
            name: name.into(),
            peer,
            role,
            addr,
            rtc,
            up: Netem::new(NetemConfig::new().seed(idx as u64 + 1)),
            down: Netem::new(NetemConfig::new().seed(idx as u64 + 101)),
            events: Vec::new(),
            rx: HashMap::new(),
            mid_tracks: HashMap::new(),
            send,
            answer: Some(answer),
            offers_answered: 0,
            keyframe_wanted: true,
            deaf: self.deaf,
            sent_frames: 0,
            keyframes_sent: 0,
            ladder: self.simulcast.clone(),
            camera_bytes: self.camera_bytes,
            frame_no: 0,
            audio_no: 0,
            next_audio: now,
            next_video: now,
            muted: false,
            audio_level: -100,
            cut: false,
            down_log: Vec::new(),
            gone: false,
            video_codec: self.video_codec.unwrap_or(Codec::Vp8),
        });
        self.drain_sfu();
        idx
    }

    pub fn client(&self, name: &str) -> &Client {
        self.clients.iter().find(|c| c.name == name).unwrap()
    }

    pub fn idx(&self, name: &str) -> usize {
        self.clients.iter().position(|c| c.name == name).unwrap()
    }

    pub fn leave(&mut self, name: &str) {
        let i = self.idx(name);
        let peer = self.clients[i].peer;
        self.clients[i].gone = true;
        self.sfu.leave(self.now, peer, LeaveReason::Left);
        self.drain_sfu();
    }

    /// The client's network dies without a goodbye: nothing more reaches the SFU from it.
    pub fn vanish(&mut self, name: &str) {
        let i = self.idx(name);
        self.clients[i].gone = true;
    }

    /// The client replaces its peer connection with a new one under the same peer (the page's
    /// `fresh` offer after ICE failed): a new `Rtc` publishing the same sources, accepted with
    /// `Sfu::rejoin`. The new connection gets through only while the client is not cut.
    pub fn rebuild(&mut self, name: &str) {
        let i = self.idx(name);
        let now = self.now;
        let addr = self.clients[i].addr;
        let mut rtc = Rtc::builder()
            .set_stats_interval(Some(Duration::from_millis(100)))
            .build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut api = rtc.sdp_api();
        let mut send = Vec::new();
        for (_, s) in self.clients[i].send.clone() {
            let kind = match s.kind() {
                TrackKind::Audio => MediaKind::Audio,
                TrackKind::Video => MediaKind::Video,
            };
            send.push((
                api.add_media(kind, Direction::SendOnly, None, None, None),
                s,
            ));
        }
        let (offer, pending) = api.apply().unwrap();
        let sources: Vec<(String, TrackSource)> =
            send.iter().map(|(m, s)| (m.to_string(), *s)).collect();
        let peer = self.clients[i].peer;
        let answer = self
            .sfu
            .rejoin(now, peer, &offer.to_sdp_string(), &sources)
            .expect("rejoin accepted");
        let sdp = SdpAnswer::from_sdp_string(&answer.sdp).unwrap();
        rtc.sdp_api().accept_answer(pending, sdp).unwrap();
        let c = &mut self.clients[i];
        c.rtc = rtc;
        c.send = send;
        c.rx.clear();
        c.mid_tracks.clear();
        c.keyframe_wanted = true;
        self.drain_sfu();
    }

    /// The client renegotiates to publish one more source (a screen share); returns the
    /// result of the SFU's `client_offer`.
    pub fn add_source(
        &mut self,
        name: &str,
        source: TrackSource,
    ) -> Result<Answer, ketang_sfu::SfuError> {
        let i = self.idx(name);
        let now = self.now;
        let c = &mut self.clients[i];
        let mut api = c.rtc.sdp_api();
        let kind = match source.kind() {
            TrackKind::Audio => MediaKind::Audio,
            TrackKind::Video => MediaKind::Video,
        };
        let mid = api.add_media(kind, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        drain_client(c, now);
        let sources = vec![(mid.to_string(), source)];
        let peer = c.peer;
        let result = self
            .sfu
            .client_offer(now, peer, &offer.to_sdp_string(), &sources);
        let c = &mut self.clients[i];
        if let Ok(answer) = &result {
            let sdp = SdpAnswer::from_sdp_string(&answer.sdp).unwrap();
            c.rtc.sdp_api().accept_answer(pending, sdp).unwrap();
            c.send.push((mid, source));
            drain_client(c, now);
        }
        self.drain_sfu();
        result
    }

    /// `actor` does a floor action.
    pub fn floor(&mut self, actor: &str, cmd: FloorCommand) -> Result<FloorOutcome, SfuError> {
        let peer = self.client(actor).peer;
        let ctx = FloorContext {
            now_ms: self.now.duration_since(self.start).as_millis() as u64,
            random: 7,
        };
        let r = self.sfu.floor(self.now, peer, cmd, ctx);
        self.drain_sfu();
        r
    }

    /// The latest room state a client received.
    pub fn state_of(&self, name: &str) -> Option<ketang_sfu::RoomState> {
        self.client(name).events.iter().rev().find_map(|e| match e {
            PeerEvent::RoomState(s) => Some((**s).clone()),
            _ => None,
        })
    }

    /// Offers from the SFU are answered automatically; tests of glare hold them back.
    pub fn hold_offers(&mut self, hold: bool) {
        self.hold_offers = hold;
    }

    /// Shapes the SFU → client link of `name`.
    pub fn shape_down(&mut self, name: &str, config: NetemConfig) {
        let i = self.idx(name);
        self.clients[i].down.set_config(config);
    }

    /// Shapes the client → SFU link of `name`.
    #[allow(dead_code)]
    pub fn shape_up(&mut self, name: &str, config: NetemConfig) {
        let i = self.idx(name);
        self.clients[i].up.set_config(config);
    }

    /// Inject a raw datagram into the shard as if it came from `from`.
    pub fn inject(&mut self, from: SocketAddr, data: &[u8]) {
        self.sfu
            .handle_datagram(self.now, from, self.sfu_addr, data);
        self.drain_sfu();
    }

    /// Advance virtual time by `d`, moving every packet and timer in order.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        // Bounded: a step always advances to the next deadline, and deadlines are at least
        // a millisecond apart in practice; 5 M steps is far beyond any test.
        // Bounded: every step advances the clock by at least STEP_MIN.
        let max_steps = (d.as_micros() / STEP_MIN.as_micros()) as u64 + 10;
        for _ in 0..max_steps {
            let next = self.next_deadline().min(end);
            // str0m may ask to be woken "now" again (its internal timers compare against the
            // last instant seen); real time always moves, so the virtual clock must too.
            self.now = next.max(self.now + STEP_MIN).min(end);
            self.step();
            if self.now >= end {
                break;
            }
        }
    }

    fn next_deadline(&mut self) -> Instant {
        let mut t = self.sfu_deadline;
        for c in &self.clients {
            if c.gone {
                continue;
            }
            t = t.min(c.up.poll_timeout()).min(c.down.poll_timeout());
            if !c.muted && !c.send.is_empty() {
                t = t.min(c.next_audio).min(c.next_video);
            }
        }
        for c in &mut self.clients {
            if c.gone {
                continue;
            }
            if let Ok(Output::Timeout(ct)) = c.rtc.poll_output() {
                t = t.min(ct);
            }
        }
        t.max(self.now)
    }

    fn step(&mut self) {
        let now = self.now;
        if now >= self.sfu_deadline {
            self.sfu.handle_timeout(now);
        }
        self.drain_sfu();
        for i in 0..self.clients.len() {
            if self.clients[i].gone {
                continue;
            }
            // Network: client → SFU.
            self.clients[i].up.handle_input(NIn::Timeout(now));
            while let Some(o) = self.clients[i].up.poll_output() {
                if let NOut::Packet(data) = o
                    && !self.clients[i].cut
                {
                    let from = self.clients[i].addr;
                    self.sfu.handle_datagram(now, from, self.sfu_addr, &data);
                }
            }
            self.drain_sfu();
            // Network: SFU → client.
            let c = &mut self.clients[i];
            c.down.handle_input(NIn::Timeout(now));
            while let Some(o) = c.down.poll_output() {
                if let NOut::Packet(data) = o
                    && !c.cut
                {
                    c.down_log.push((now, data.len()));
                    let Ok(contents) = data.as_slice().try_into() else {
                        continue;
                    };
                    let input = Input::Receive(
                        now,
                        Receive {
                            proto: Protocol::Udp,
                            source: self.sfu_addr,
                            destination: c.addr,
                            contents,
                        },
                    );
                    c.rtc.handle_input(input).unwrap();
                    drain_client(c, now);
                }
            }
            c.rtc.handle_input(Input::Timeout(now)).unwrap();
            drain_client(c, now);
            send_media(c, now);
            drain_client(c, now);
        }
        self.drain_sfu();
    }

    /// Routes SFU output: datagrams onto client links, events into client signaling.
    pub fn drain_sfu(&mut self) {
        for _ in 0..1_000_000 {
            match self.sfu.poll_output() {
                SfuOutput::Timeout(t) => {
                    self.sfu_deadline = t;
                    return;
                }
                SfuOutput::Transmit(t) => {
                    if let Some(c) = self
                        .clients
                        .iter_mut()
                        .find(|c| c.addr == t.destination && !c.gone)
                    {
                        c.down.handle_input(NIn::Packet(self.now, t.contents));
                    }
                }
                SfuOutput::Event(SfuEvent::ToPeer { peer, event }) => {
                    self.sfu_events.push(format!("{peer} {event:?}"));
                    let Some(i) = self.clients.iter().position(|c| c.peer == peer) else {
                        continue;
                    };
                    if let PeerEvent::Offer { sdp, .. } = &event
                        && self.hold_offers
                    {
                        self.held.push((i, sdp.clone()));
                    } else if let PeerEvent::Offer { sdp, tracks } = &event {
                        let c = &mut self.clients[i];
                        c.mid_tracks = tracks
                            .iter()
                            .map(|t| (Mid::from(t.mid.as_str()), t.track.clone()))
                            .collect();
                        let offer = SdpOffer::from_sdp_string(sdp).unwrap();
                        let answer = c.rtc.sdp_api().accept_offer(offer).unwrap();
                        c.offers_answered += 1;
                        drain_client(c, self.now);
                        self.sfu
                            .client_answer(self.now, peer, &answer.to_sdp_string())
                            .unwrap();
                    }
                    self.clients[i].events.push(event);
                }
                SfuOutput::Event(SfuEvent::Activity { peer, activity, .. }) => {
                    let at = self.now.duration_since(self.start);
                    self.activities.push((at, peer, activity));
                }
                SfuOutput::Event(e) => self.sfu_events.push(format!("{e:?}")),
                SfuOutput::Record(r) => self.recorded.push(r),
            }
        }
        panic!("SFU output did not settle");
    }

    /// Frames `receiver` got from `publisher`'s tracks of `kind`.
    pub fn frames_from(&self, receiver: &str, publisher: &str, kind: TrackKind) -> u64 {
        let r = self.client(receiver);
        let p = self.client(publisher).peer;
        r.mid_tracks
            .iter()
            .filter(|(_, t)| t.peer_id == p && t.kind == kind)
            .filter_map(|(mid, _)| r.rx.get(mid))
            .map(|c| c.frames)
            .sum()
    }

    /// Bit/s of everything delivered to `name` between `from` and `to`.
    pub fn down_bps(&self, name: &str, from: Instant, to: Instant) -> u64 {
        let bytes: usize = self
            .client(name)
            .down_log
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, b)| *b)
            .sum();
        bytes as u64 * 8 * 1000 / (to - from).as_millis().max(1) as u64
    }

    /// Frames `receiver` got from `publisher`'s `kind` tracks: (arrival, bytes), in order.
    pub fn frame_log(
        &self,
        receiver: &str,
        publisher: &str,
        kind: TrackKind,
    ) -> Vec<(Instant, usize)> {
        let r = self.client(receiver);
        let p = self.client(publisher).peer;
        let mut v: Vec<(Instant, usize)> = r
            .mid_tracks
            .iter()
            .filter(|(_, t)| t.peer_id == p && t.kind == kind)
            .filter_map(|(mid, _)| r.rx.get(mid))
            .flat_map(|c| c.log.iter().copied())
            .collect();
        v.sort();
        v
    }

    /// When packets of `publisher`'s `kind` track arrived at `receiver`: the times of the
    /// 100 ms statistics samples that counted new packets.
    pub fn packet_times(&self, receiver: &str, publisher: &str, kind: TrackKind) -> Vec<Instant> {
        let r = self.client(receiver);
        let p = self.client(publisher).peer;
        let mut v: Vec<Instant> = r
            .mid_tracks
            .iter()
            .filter(|(_, t)| t.peer_id == p && t.kind == kind)
            .filter_map(|(mid, _)| r.rx.get(mid))
            .flat_map(|c| {
                c.packet_log
                    .windows(2)
                    .filter(|w| w[1].1 > w[0].1)
                    .map(|w| w[1].0)
                    .collect::<Vec<_>>()
            })
            .collect();
        v.sort();
        v
    }

    /// Snapshot of frames received per (publisher name, kind), for before/after comparisons.
    pub fn frames_snapshot(&self, receiver: &str) -> HashMap<(String, TrackKind), u64> {
        let mut m = HashMap::new();
        for c in &self.clients {
            for k in [TrackKind::Audio, TrackKind::Video] {
                if c.name != receiver {
                    m.insert((c.name.clone(), k), self.frames_from(receiver, &c.name, k));
                }
            }
        }
        m
    }
}

fn drain_client(c: &mut Client, now: Instant) {
    for _ in 0..100_000 {
        match c.rtc.poll_output() {
            Ok(Output::Timeout(_)) => return,
            Ok(Output::Transmit(t)) => c.up.handle_input(NIn::Packet(now, t.contents.into())),
            Ok(Output::Event(e)) => match e {
                Event::MediaData(d) => {
                    let rx = c.rx.entry(d.mid).or_default();
                    rx.frames += 1;
                    rx.bytes += d.data.len() as u64;
                    rx.last_at = Some(now);
                    if d.is_keyframe() {
                        rx.keyframes += 1;
                    }
                    rx.log.push((now, d.data.len()));
                }
                Event::KeyframeRequest(_) => c.keyframe_wanted = !c.deaf,
                Event::MediaIngressStats(st) => {
                    let rx = c.rx.entry(st.mid).or_default();
                    rx.packet_log.push((now, st.packets));
                }
                _ => {}
            },
            Err(e) => panic!("client {} rtc error: {e}", c.name),
        }
    }
    panic!("client output did not settle");
}

/// The smallest step of the virtual clock.
const STEP_MIN: Duration = Duration::from_micros(500);

const AUDIO_EVERY: Duration = Duration::from_millis(20);
const VIDEO_EVERY: Duration = Duration::from_millis(33);

/// Writes due audio and video frames on the client's publishing m-lines.
fn send_media(c: &mut Client, now: Instant) {
    if c.muted || c.send.is_empty() {
        return;
    }
    if now >= c.next_audio {
        c.next_audio = now + AUDIO_EVERY;
        c.audio_no += 1;
        for (mid, src) in c.send.clone() {
            if src == TrackSource::Mic {
                let t = c.audio_no * 960;
                let level = c.audio_level;
                let time = MediaTime::new(t, str0m::media::Frequency::FORTY_EIGHT_KHZ);
                write_audio(c, mid, now, time, level);
            }
        }
    }
    if now >= c.next_video {
        c.next_video = now + VIDEO_EVERY;
        c.frame_no += 1;
        let key = c.keyframe_wanted || c.frame_no.is_multiple_of(60);
        c.keyframe_wanted = false;
        c.keyframes_sent += u64::from(key);
        let frame = match c.video_codec {
            Codec::H264 => h264_frame(key, c.frame_no),
            _ => vp8_frame(key, c.frame_no),
        };
        for (mid, src) in c.send.clone() {
            if src == TrackSource::Camera
                && let Some(ladder) = c.ladder.clone()
            {
                let t = MediaTime::new(c.frame_no * 3000, str0m::media::Frequency::NINETY_KHZ);
                for (rid, size) in ladder {
                    let data = vec_frame(key, c.frame_no, if key { size * 3 } else { size });
                    write_layer(c, mid, rid, now, t, data);
                }
                continue;
            }
            if src != TrackSource::Mic {
                let t = c.frame_no * 3000;
                let frame = match (src, c.camera_bytes) {
                    (TrackSource::Camera, Some(size)) => {
                        vec_frame(key, c.frame_no, if key { size * 3 } else { size })
                    }
                    _ => frame.clone(),
                };
                let codec = c.video_codec;
                write_frame(
                    c,
                    mid,
                    codec,
                    now,
                    MediaTime::new(t, str0m::media::Frequency::NINETY_KHZ),
                    &frame,
                );
            }
        }
    }
}

fn write_audio(c: &mut Client, mid: Mid, now: Instant, t: MediaTime, level: i8) {
    let Some(writer) = c.rtc.writer(mid) else {
        return;
    };
    let Some(pt) = writer
        .payload_params()
        .find(|p| p.spec().codec == Codec::Opus)
        .map(|p| p.pt())
    else {
        return;
    };
    if writer
        .audio_level(level, level > -50)
        .write(pt, now, t, opus_frame())
        .is_ok()
    {
        c.sent_frames += 1;
    }
}

fn write_layer(c: &mut Client, mid: Mid, rid: &str, now: Instant, t: MediaTime, data: Vec<u8>) {
    let Some(writer) = c.rtc.writer(mid) else {
        return;
    };
    let Some(pt) = writer
        .payload_params()
        .find(|p| p.spec().codec == Codec::Vp8)
        .map(|p| p.pt())
    else {
        return;
    };
    if writer.rid(rid.into()).write(pt, now, t, data).is_ok() {
        c.sent_frames += 1;
    }
}

fn write_frame(c: &mut Client, mid: Mid, codec: Codec, now: Instant, t: MediaTime, data: &[u8]) {
    let Some(writer) = c.rtc.writer(mid) else {
        return;
    };
    let Some(pt) = writer
        .payload_params()
        .find(|p| p.spec().codec == codec)
        .map(|p| p.pt())
    else {
        return;
    };
    if writer.write(pt, now, t, data.to_vec()).is_ok() {
        c.sent_frames += 1;
    }
}

pub fn opus_frame() -> Vec<u8> {
    let mut v = vec![0xfc];
    v.extend(std::iter::repeat_n(0x5a, 79));
    v
}

/// A VP8 frame whose header is valid enough for keyframe detection: frame tag with the
/// key-frame bit clear (keyframe) or set, and the start code and size on keyframes.
/// A VP8 frame of about `size` bytes (see `vp8_frame`).
pub fn vec_frame(key: bool, n: u64, size: usize) -> Vec<u8> {
    let mut v = vp8_frame(key, n);
    v.resize(size.max(16), (n & 0xff) as u8);
    v
}

/// An H.264 access unit in Annex-B form, as an encoder hands it to the packetizer: SPS, PPS
/// and an IDR slice on keyframes, one P slice otherwise (the slice data is filler).
pub fn h264_frame(key: bool, n: u64) -> Vec<u8> {
    let mut v = Vec::new();
    let nals: Vec<Vec<u8>> = if key {
        vec![
            vec![
                0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11,
            ],
            vec![0x68, 0xce, 0x3c, 0x80],
            std::iter::once(0x65)
                .chain((0..4000).map(|i| ((i as u64 ^ n) as u8) | 1))
                .collect(),
        ]
    } else {
        vec![
            std::iter::once(0x41)
                .chain((0..1200).map(|i| ((i as u64 ^ n) as u8) | 1))
                .collect(),
        ]
    };
    for nal in nals {
        v.extend_from_slice(&[0, 0, 0, 1]);
        v.extend_from_slice(&nal);
    }
    v
}

pub fn vp8_frame(key: bool, n: u64) -> Vec<u8> {
    let mut v = if key {
        vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]
    } else {
        vec![0x11, 0x02, 0x00]
    };
    let size = if key { 6000 } else { 1500 };
    v.extend((0..size).map(|i| (i as u64 ^ n) as u8));
    v
}

impl Net {
    /// What `name` received on its m-lines of `kind`, whatever track they carry (WHEP players
    /// have fixed m-lines and no server offers to name their tracks).
    pub fn rx_of_kind(&self, name: &str, kind: MediaKind) -> Vec<&RxCount> {
        let c = self.client(name);
        c.rx.iter()
            .filter(|(mid, _)| c.rtc.media(**mid).is_some_and(|m| m.kind() == kind))
            .map(|(_, r)| r)
            .collect()
    }

    /// Frames `name` received on its m-lines of `kind`: (arrival, bytes), in order.
    pub fn frames_of_kind(&self, name: &str, kind: MediaKind) -> Vec<(Instant, usize)> {
        let mut v: Vec<(Instant, usize)> = self
            .rx_of_kind(name, kind)
            .into_iter()
            .flat_map(|r| r.log.iter().copied())
            .collect();
        v.sort();
        v
    }
}
