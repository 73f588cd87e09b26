//! The load generator: scenarios, ramp, measurement window, report.
//!
//! ```text
//! LoadConfig ─plan()─▶ [Plan] (room, role, token, transport, media)
//!    run():  /proc samples (server, self)
//!            stage 0 (teachers) joins at --ramp-per-second ─▶ wait until they are up
//!            stage 1 (everyone else) joins at the same rate ─▶ wait until all joined or failed
//!            settle (--settle: first keyframes, new subscribers' queues)
//!            measurement window (--duration): LiveCounters and /proc snapshots at both ends,
//!                                             latency samples recorded only inside it
//!            stop publishers ─▶ grace period (late retransmissions) ─▶ report::build
//!            everyone leaves (bounded)
//! ```
//!
//! Each participant is one actor task ([`clients::run_member`]) with its own webrtc-rs peer
//! connection and UDP socket; publishers send the synthetic media of [`crate::media`] (valid
//! VP8/Opus headers, a frame counter and a send timestamp in every frame; an SFU forwards
//! without decoding, so this is enough to measure forwarding). Scenarios:
//!
//! * `broadcast`: 1 teacher (WHIP, optionally simulcast) → N viewers (WHEP, or signaling as
//!   role `viewer` with `--viewer-transport ws`).
//! * `dedicated`: R rooms × (1 teacher + K classrooms) over signaling, all two-way: everyone
//!   publishes mic + camera and receives the others (ad-hoc rooms, role table of §2).
//! * `master`: 1 teacher + N observers over signaling; `--speakers S` of them join with
//!   `classroom` tokens and publish (stand-ins for invited speakers), the others only receive.

pub mod clients;
pub mod procstat;
pub mod recv;
pub mod report;
pub mod tokens;

use crate::live::{LiveCounters, LiveSnapshot};
use crate::media::{OpusConfig, Vp8Config};
use crate::send::{MediaConfig, VideoLayer};
use crate::signaling::ClientOptions;
use clients::{Ctx, Member, Plan, Transport, run_member};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use procstat::{ProcUsage, sample};
use report::{Report, ScenarioLine, Window};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokens::{Role, TokenSource};
use tokio::sync::{oneshot, watch};

/// Which scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// 1 teacher → N viewers.
    Broadcast,
    /// R rooms × (1 teacher + K classrooms), all two-way.
    Dedicated,
    /// 1 teacher + N observers, S of them speaking.
    Master,
}

/// Everything a run needs.
#[derive(Debug)]
pub struct LoadConfig {
    /// Scenario.
    pub scenario: Scenario,
    /// Server base URL, `http://HOST:PORT`.
    pub base_url: String,
    /// Tokens.
    pub tokens: TokenSource,
    /// Room name prefix for minted tokens.
    pub room_prefix: String,
    /// Rooms (dedicated).
    pub rooms: usize,
    /// Classrooms per room (dedicated).
    pub classrooms: usize,
    /// Viewers (broadcast) or observers (master).
    pub viewers: usize,
    /// Observers that publish (master).
    pub speakers: usize,
    /// Broadcast viewers over signaling instead of WHEP.
    pub viewers_over_ws: bool,
    /// Teacher camera in 3 layers.
    pub simulcast: Option<[u32; 3]>,
    /// Video bit/s of single-layer publishers.
    pub video_bps: u32,
    /// Frames per second.
    pub fps: u32,
    /// Keyframe every N frames.
    pub keyframe_interval: u32,
    /// Opus packet bytes (50 packets/s).
    pub audio_packet_bytes: usize,
    /// Joins per second.
    pub ramp_per_second: f64,
    /// Measurement window.
    pub duration: Duration,
    /// Wait after the last join before the measurement window opens (start-up transients:
    /// first keyframes, queues of new subscribers, bandwidth estimates ramping up).
    pub settle: Duration,
    /// Wait after publishers stop before counting loss.
    pub grace: Duration,
    /// Bound on one join (ICE + DTLS).
    pub connect_timeout: Duration,
    /// Local UDP address of every client.
    pub bind: SocketAddr,
    /// Subscribers lose the first arrival of every N-th video packet (`ClientOptions`), so
    /// loss before and after retransmission can be compared on a loopback that loses nothing.
    pub inject_loss_every: Option<u16>,
    /// Clients negotiate transport-wide congestion feedback (TWCC), as browsers do.
    pub transport_cc: bool,
    /// Server process to watch.
    pub server_pid: Option<u32>,
    /// Draw a progress bar on stderr (when it is a terminal).
    pub progress: bool,
}

impl LoadConfig {
    fn media(&self, simulcast: bool) -> MediaConfig {
        let vp8 = Vp8Config {
            fps: self.fps,
            bitrate_bps: self.video_bps,
            keyframe_interval: self.keyframe_interval,
            ..Vp8Config::default()
        };
        let video = match (simulcast, self.simulcast) {
            (true, Some(rates)) => VideoLayer::simulcast(&vp8, rates),
            _ => VideoLayer::single(vp8),
        };
        MediaConfig {
            audio: Some(OpusConfig {
                packet_bytes: self.audio_packet_bytes,
            }),
            video,
            clip: None,
            audio_packets: None,
        }
    }

    /// The participants, in join order within each stage.
    pub fn plan(&mut self) -> Result<Vec<Plan>, String> {
        let mut plans = Vec::new();
        let rooms = if self.scenario == Scenario::Dedicated {
            self.rooms.max(1)
        } else {
            1
        };
        for r in 0..rooms {
            let room = self.tokens.room(&self.room_prefix, r)?;
            let mut add = |tokens: &mut TokenSource,
                           role: Role,
                           name: String,
                           transport,
                           publish: Option<MediaConfig>,
                           stage| {
                let classroom = (role == Role::Classroom).then(|| name.clone());
                let token = tokens.token(&room, role, &name, classroom.as_deref())?;
                let simulcast = publish
                    .as_ref()
                    .and(self.simulcast)
                    .filter(|_| role == Role::Teacher);
                plans.push(Plan {
                    room: room.clone(),
                    role,
                    name,
                    token,
                    transport,
                    publish,
                    simulcast,
                    stage,
                });
                Ok::<_, String>(())
            };
            let teacher_media = Some(self.media(true));
            let media = Some(self.media(false));
            match self.scenario {
                Scenario::Broadcast => {
                    add(
                        &mut self.tokens,
                        Role::Teacher,
                        "teacher".into(),
                        Transport::Whip,
                        teacher_media,
                        0,
                    )?;
                    let t = if self.viewers_over_ws {
                        Transport::Ws
                    } else {
                        Transport::Whep
                    };
                    for v in 0..self.viewers {
                        add(
                            &mut self.tokens,
                            Role::Viewer,
                            format!("viewer-{v}"),
                            t,
                            None,
                            1,
                        )?;
                    }
                }
                Scenario::Dedicated => {
                    add(
                        &mut self.tokens,
                        Role::Teacher,
                        format!("teacher-{r}"),
                        Transport::Ws,
                        teacher_media,
                        0,
                    )?;
                    for c in 0..self.classrooms {
                        add(
                            &mut self.tokens,
                            Role::Classroom,
                            format!("c{r}-{c}"),
                            Transport::Ws,
                            media.clone(),
                            1,
                        )?;
                    }
                }
                Scenario::Master => {
                    add(
                        &mut self.tokens,
                        Role::Teacher,
                        "teacher".into(),
                        Transport::Ws,
                        teacher_media,
                        0,
                    )?;
                    for o in 0..self.viewers {
                        if o < self.speakers {
                            add(
                                &mut self.tokens,
                                Role::Classroom,
                                format!("speaker-{o}"),
                                Transport::Ws,
                                media.clone(),
                                1,
                            )?;
                        } else {
                            add(
                                &mut self.tokens,
                                Role::Observer,
                                format!("observer-{o}"),
                                Transport::Ws,
                                None,
                                1,
                            )?;
                        }
                    }
                }
            }
        }
        Ok(plans)
    }

    fn scenario_line(&self, plans: &[Plan]) -> ScenarioLine {
        let rooms = plans
            .iter()
            .map(|p| &p.room)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let shape = match self.scenario {
            Scenario::Broadcast => format!(
                "1 teacher (WHIP) → {} viewers ({})",
                self.viewers,
                if self.viewers_over_ws {
                    "signaling"
                } else {
                    "WHEP"
                }
            ),
            Scenario::Dedicated => format!(
                "{rooms} room(s) × (1 teacher + {} classrooms), all two-way",
                self.classrooms
            ),
            Scenario::Master => format!(
                "1 teacher + {} observers, {} of them speaking",
                self.viewers,
                self.speakers.min(self.viewers)
            ),
        };
        let layers = self.simulcast.map_or(Vec::new(), |r| {
            ["q", "h", "f"]
                .iter()
                .zip(r)
                .map(|(n, b)| ((*n).to_owned(), b))
                .collect()
        });
        ScenarioLine {
            name: format!("{:?}", self.scenario).to_lowercase(),
            shape,
            rooms,
            participants: plans.len(),
            codec: "VP8/Opus".into(),
            layers,
            video_bps: self.video_bps,
            audio_bps: (self.audio_packet_bytes * 8 * 50) as u32,
            duration_secs: self.duration.as_secs_f64(),
            ramp_per_second: self.ramp_per_second,
            viewer_transport: if self.viewers_over_ws { "ws" } else { "whep" }.into(),
            media: "synthetic".into(),
        }
    }
}

/// Live progress: joins, elapsed time, bitrates.
struct Progress {
    bar: ProgressBar,
    last: (Instant, LiveSnapshot),
}

impl Progress {
    fn new(enabled: bool, joins: usize) -> Progress {
        let bar = ProgressBar::with_draw_target(
            Some(joins as u64),
            if enabled {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix:>9} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
        ) {
            bar.set_style(style);
        }
        bar.set_prefix("joining");
        if enabled {
            bar.enable_steady_tick(Duration::from_millis(500));
        }
        Progress {
            bar,
            last: (Instant::now(), LiveSnapshot::default()),
        }
    }

    fn tick(&mut self, live: &LiveCounters) {
        let now = (Instant::now(), live.snapshot());
        let secs = now.0.saturating_duration_since(self.last.0).as_secs_f64();
        if secs < 0.4 {
            return; // rates over shorter intervals are noise
        }
        let d = now.1.since(&self.last.1);
        self.bar.set_message(format!(
            "in {:.1} Mbit/s {:.0} pkt/s | out {:.1} Mbit/s {:.0} pkt/s",
            d.sent_bytes as f64 * 8.0 / 1e6 / secs,
            d.sent_packets as f64 / secs,
            d.recv_bytes as f64 * 8.0 / 1e6 / secs,
            d.recv_packets as f64 / secs,
        ));
        self.last = now;
    }
}

/// How late the generator's runtime wakes a 10 ms timer, µs, sampled until `end`: when this
/// grows, the generator (not the server) is the bottleneck and adds latency itself.
async fn scheduling_lag(end: Instant) -> hdrhistogram::Histogram<u64> {
    let mut h = recv::latency_histogram();
    let period = Duration::from_millis(10);
    while Instant::now() + period < end {
        let t = Instant::now();
        tokio::time::sleep(period).await;
        let late = t.elapsed().saturating_sub(period).as_micros() as u64;
        h.saturating_record(late.clamp(1, recv::MAX_LATENCY_US));
    }
    h
}

/// Run the scenario and return the report. Errors are setup problems (tokens); failed joins
/// are part of the report.
pub async fn run(mut cfg: LoadConfig) -> Result<Report, String> {
    let plans = cfg.plan()?;
    let line = cfg.scenario_line(&plans);
    let live = Arc::new(LiveCounters::default());
    let (stop_tx, stop_media) = watch::channel(false);
    let (leave_tx, leave) = watch::channel(false);
    let http = reqwest::Client::builder()
        .build()
        .map_err(|e| e.to_string())?;
    let ramp_gap = Duration::from_secs_f64(1.0 / cfg.ramp_per_second.clamp(0.01, 10_000.0));
    let max_life = ramp_gap * plans.len() as u32
        + cfg.duration
        + cfg.connect_timeout * 2
        + Duration::from_secs(120);
    let ctx = Arc::new(Ctx {
        live: Arc::clone(&live),
        client: ClientOptions {
            bind_addr: cfg.bind,
            connect_timeout: cfg.connect_timeout,
            http_client: Some(http),
            inject_loss_every: cfg.inject_loss_every,
            transport_cc: cfg.transport_cc,
            ..ClientOptions::default()
        },
        base_url: cfg.base_url.trim_end_matches('/').to_owned(),
        reply_timeout: cfg.connect_timeout,
        stop_media,
        leave,
        max_life,
    });
    let server_before = cfg.server_pid.and_then(|p| sample(Some(p)).ok());
    let mut progress = Progress::new(cfg.progress, plans.len());
    let ramp_start = Instant::now();
    let mut members = Vec::new();
    let mut actors = tokio::task::JoinSet::new();
    for stage in 0..=1u8 {
        let mut pending = Vec::new();
        let mut due = Instant::now();
        for plan in plans.iter().filter(|p| p.stage == stage) {
            tokio::time::sleep_until(due.into()).await;
            due += ramp_gap;
            let member = Arc::new(Member::new(plan.clone()));
            members.push(Arc::clone(&member));
            let (tx, rx) = oneshot::channel();
            actors.spawn(run_member(member, Arc::clone(&ctx), tx));
            pending.push(rx);
            progress.tick(&live);
        }
        // Bounded: each actor answers within its connect and reply timeouts.
        let wait = cfg.connect_timeout * 3 + Duration::from_secs(5);
        for rx in pending {
            let _ = tokio::time::timeout(wait, rx).await;
            progress.bar.inc(1);
            progress.tick(&live);
        }
    }
    let ramp_secs = ramp_start.elapsed().as_secs_f64();

    // Let start-up transients pass, then open the measurement window.
    progress.bar.set_prefix("settling");
    tokio::time::sleep(cfg.settle).await;
    progress.tick(&live);
    progress.bar.set_prefix("measuring");
    progress.bar.set_length(cfg.duration.as_secs().max(1));
    progress.bar.set_position(0);
    live.measuring
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let (t0, c0) = (Instant::now(), live.snapshot());
    let server0 = cfg.server_pid.and_then(|p| sample(Some(p)).ok());
    let self0 = sample(None).ok();
    let load0 = procstat::loadavg();
    let drops0 = procstat::udp_rcvbuf_errors();
    let end = t0 + cfg.duration;
    let lag_probe = tokio::spawn(scheduling_lag(end));
    while Instant::now() < end {
        let step = end
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(500));
        tokio::time::sleep(step).await;
        progress.bar.set_position(t0.elapsed().as_secs());
        progress.tick(&live);
    }
    let c1 = live.snapshot();
    let secs = t0.elapsed().as_secs_f64();
    let server1 = cfg.server_pid.and_then(|p| sample(Some(p)).ok());
    let self1 = sample(None).ok();
    let drops1 = procstat::udp_rcvbuf_errors();
    live.measuring
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let lag = lag_probe
        .await
        .unwrap_or_else(|_| recv::latency_histogram());

    // Stop media, let retransmissions land, then count.
    progress.bar.set_prefix("stopping");
    let _ = stop_tx.send(true);
    tokio::time::sleep(cfg.grace).await;
    progress.bar.finish_and_clear();
    let usage = |a: Option<procstat::ProcSample>, b: Option<procstat::ProcSample>| match (a, b) {
        (Some(a), Some(b)) => Some(ProcUsage::between(&a, &b)),
        _ => None,
    };
    let server = match (cfg.server_pid, usage(server0, server1)) {
        (Some(pid), Some(u)) => Some((pid, u, server_before.map_or(0, |s| s.rss_kib))),
        _ => None,
    };
    let zero = ProcUsage {
        cpu_secs: 0.0,
        cpu_cores: 0.0,
        rss_mib_start: 0.0,
        rss_mib_end: 0.0,
        rss_mib_peak: 0.0,
        threads: 0,
    };
    let window = Window {
        scenario: line,
        secs,
        ramp_secs,
        delta: c1.since(&c0),
        server,
        generator: usage(self0, self1).unwrap_or(zero),
        generator_lag: lag,
        loadavg: [load0, procstat::loadavg()],
        udp_drops: drops0.zip(drops1).map(|(a, b)| b.saturating_sub(a)),
    };
    let report = report::build(&members, window);

    // Everyone leaves; bounded by the actors' own timeouts plus a margin.
    let _ = leave_tx.send(true);
    let _ = tokio::time::timeout(cfg.connect_timeout * 2 + Duration::from_secs(10), async {
        while actors.join_next().await.is_some() {}
    })
    .await;
    actors.abort_all();
    Ok(report)
}
