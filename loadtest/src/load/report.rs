//! The load report: one JSON document (schema = the `Serialize` structs below) and a table.
//!
//! Built once at the end from the participants' [`Member`]s, the live-counter snapshots of the
//! measurement window and the `/proc` samples. Rates (packets and bytes per second) and CPU
//! are over the measurement window only; loss, time to first frame and freezes cover each
//! track's whole life; latency samples were only recorded inside the window.

use super::clients::{Member, Transport};
use super::procstat::ProcUsage;
use super::recv::{MAX_LATENCY_US, latency_histogram, lock_track};
use super::tokens::Role;
use crate::live::LiveSnapshot;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// The scenario line (LiveKit-compatible fields plus ours).
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioLine {
    /// `broadcast`, `dedicated` or `master`.
    pub name: String,
    /// Human description, e.g. "2 rooms × (1 teacher + 4 classrooms)".
    pub shape: String,
    /// Rooms.
    pub rooms: usize,
    /// Planned participants.
    pub participants: usize,
    /// Codecs.
    pub codec: String,
    /// Video layers of the teacher camera: rid and bit/s.
    pub layers: Vec<(String, u32)>,
    /// Video bit/s of non-simulcast publishers.
    pub video_bps: u32,
    /// Opus bit/s.
    pub audio_bps: u32,
    /// Measurement window, seconds.
    pub duration_secs: f64,
    /// Joins per second.
    pub ramp_per_second: f64,
    /// `whep` or `ws` for broadcast viewers.
    pub viewer_transport: String,
    /// Always "synthetic": VP8/Opus with valid headers, counters and send stamps.
    pub media: String,
}

/// Packets and bytes per second in one direction.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Rate {
    /// Packets in the window.
    pub packets: u64,
    /// Packets per second.
    pub packets_per_sec: f64,
    /// RTP bytes (header + payload, no SRTP tag or UDP/IP) per second.
    pub bytes_per_sec: f64,
    /// `bytes_per_sec · 8 / 10⁶`.
    pub mbit_per_sec: f64,
}

/// Loss figures.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Loss {
    /// Packets expected by sequence numbers over all received tracks.
    pub expected_packets: u64,
    /// Holes seen when they opened (before NACK retransmission).
    pub before_retransmission_packets: u64,
    /// `before / expected`.
    pub before_retransmission_ratio: f64,
    /// Holes never filled (after retransmission, after the grace period).
    pub after_retransmission_packets: u64,
    /// `after / expected`.
    pub after_retransmission_ratio: f64,
    /// Holes filled late (retransmissions, reordering).
    pub recovered_packets: u64,
    /// Duplicate packets.
    pub duplicate_packets: u64,
    /// Frames whose counter was skipped (end-to-end, before late fills).
    pub frames_skipped: u64,
}

/// Percentiles of a histogram.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>, scale: f64) -> Option<Percentiles> {
        (!h.is_empty()).then(|| Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.50) as f64 / scale,
            p95: h.value_at_quantile(0.95) as f64 / scale,
            p99: h.value_at_quantile(0.99) as f64 / scale,
            max: h.max() as f64 / scale,
        })
    }
}

/// Freezes (W3C: inter-frame gap ≥ max(3 × average, average + 150 ms)).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Freezes {
    /// Freezes over all video tracks.
    pub count: u64,
    /// Their total duration, ms.
    pub total_ms: f64,
    /// Received video tracks with at least one freeze.
    pub tracks_with_freezes: u64,
    /// Freeze time ÷ watch time (first to last frame, summed over tracks).
    pub ratio: f64,
}

/// One received track of a subscriber.
#[derive(Debug, Clone, Serialize)]
pub struct TrackRow {
    /// Publisher peer id (signaling) or null (WHEP slot).
    pub publisher: Option<u64>,
    /// `audio` / `video`.
    pub kind: String,
    /// `mic` / `camera` / `screen`.
    pub source: String,
    /// Packets received.
    pub packets: u64,
    /// Packets lost after retransmission.
    pub lost: u64,
    /// Time to first frame (keyframe for video), ms.
    pub ttff_ms: Option<f64>,
    /// Freezes.
    pub freezes: u64,
}

/// One participant.
#[derive(Debug, Clone, Serialize)]
pub struct ParticipantRow {
    /// Display name.
    pub name: String,
    /// Token role.
    pub role: Role,
    /// Transport.
    pub transport: Transport,
    /// Room.
    pub room: String,
    /// Peer id (signaling).
    pub peer_id: Option<u64>,
    /// Join time, ms.
    pub join_ms: Option<f64>,
    /// First error.
    pub error: Option<String>,
    /// Tracks received.
    pub tracks: Vec<TrackRow>,
    /// Packets sent (publishers).
    pub sent_packets: u64,
}

/// CPU and memory of the server.
#[derive(Debug, Clone, Serialize)]
pub struct ServerUsage {
    /// Its pid.
    pub pid: u32,
    /// CPU and memory over the window.
    #[serde(flatten)]
    pub usage: ProcUsage,
    /// Server CPU time ÷ packets the generator received, µs.
    pub cpu_us_per_egress_packet: Option<f64>,
    /// RSS growth from before the joins to the end of the window, per subscriber, KiB.
    pub rss_kib_per_subscriber: Option<f64>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What ran.
    pub scenario: ScenarioLine,
    /// Participants that joined and publish.
    pub publishers: usize,
    /// Participants that joined and receive.
    pub subscribers: usize,
    /// Joins that failed.
    pub failed_joins: usize,
    /// Tracks published by joined publishers.
    pub tracks_published: usize,
    /// Subscriptions the role table entitles the joined subscribers to.
    pub tracks_expected: usize,
    /// Received tracks that got packets.
    pub tracks_received: usize,
    /// Measurement window, seconds.
    pub window_secs: f64,
    /// Ramp (all joins), seconds.
    pub ramp_secs: f64,
    /// Sent by the generator's publishers (= into the server).
    pub r#in: Rate,
    /// Received by the generator's subscribers (= out of the server).
    pub out: Rate,
    /// Loss.
    pub loss: Loss,
    /// One-way latency by kind, µs (loopback: one clock).
    pub latency_us: HashMap<String, Percentiles>,
    /// Time to first frame of video subscriptions, ms.
    pub ttff_ms: Option<Percentiles>,
    /// Video subscriptions that never got a keyframe.
    pub ttff_missing: u64,
    /// Freezes.
    pub freezes: Freezes,
    /// The server process, when `--server-pid` was given.
    pub server: Option<ServerUsage>,
    /// The load generator itself.
    pub generator: ProcUsage,
    /// How late the generator's runtime woke a 10 ms timer during the window, µs. Growing
    /// values mean the generator itself is saturated and adds latency.
    pub generator_timer_lag_us: Option<Percentiles>,
    /// The host's 1-minute load average at the start and end of the window: other processes
    /// competing for the cores skew every figure.
    pub host_loadavg: [Option<f64>; 2],
    /// UDP datagrams the host's kernel dropped for full socket receive buffers during the
    /// window (`RcvbufErrors`, all processes): the cause of loss on loopback.
    pub host_udp_rcvbuf_drops: Option<u64>,
    /// Per participant.
    pub participants: Vec<ParticipantRow>,
}

/// Inputs besides the members.
pub struct Window {
    /// Scenario line.
    pub scenario: ScenarioLine,
    /// Window length, s.
    pub secs: f64,
    /// Ramp length, s.
    pub ramp_secs: f64,
    /// Counter deltas over the window.
    pub delta: LiveSnapshot,
    /// Server pid and usage over the window, and RSS before the joins (KiB).
    pub server: Option<(u32, ProcUsage, u64)>,
    /// Generator usage.
    pub generator: ProcUsage,
    /// Generator timer lateness, µs.
    pub generator_lag: Histogram<u64>,
    /// `/proc/loadavg` (1 min) at the start and end of the window.
    pub loadavg: [Option<f64>; 2],
    /// UDP datagrams the kernel dropped (full receive buffers) during the window.
    pub udp_drops: Option<u64>,
}

fn rate(packets: u64, bytes: u64, secs: f64) -> Rate {
    let per = |v: u64| if secs > 0.0 { v as f64 / secs } else { 0.0 };
    Rate {
        packets,
        packets_per_sec: per(packets),
        bytes_per_sec: per(bytes),
        mbit_per_sec: per(bytes) * 8.0 / 1e6,
    }
}

/// Who `role` receives (docs/protocol.md §2).
fn receives(subscriber: Role, publisher: Role) -> bool {
    match subscriber {
        Role::Teacher => true,
        Role::Classroom | Role::Observer => matches!(publisher, Role::Teacher | Role::Classroom),
        Role::Viewer => publisher == Role::Teacher,
    }
}

/// Build the report.
pub fn build(members: &[Arc<Member>], w: Window) -> Report {
    let mut latency: HashMap<String, Histogram<u64>> = HashMap::new();
    let mut ttff = latency_histogram();
    let (mut ttff_missing, mut loss, mut freezes) = (0u64, Loss::default(), Freezes::default());
    let mut watch_ms = 0.0;
    let mut rows = Vec::new();
    let (mut publishers, mut subscribers, mut failed) = (0, 0, 0);
    let (mut published, mut expected, mut received) = (0usize, 0usize, 0usize);
    // Tracks published per (room, role) by joined publishers, for the expectations.
    let mut pub_tracks: Vec<(String, Role, usize, Option<u64>)> = Vec::new();
    for m in members {
        let Some(plan) = &m.plan else { continue };
        let error = Member::get(&m.error);
        let joined = Member::get(&m.join_time).is_some();
        if !joined {
            failed += 1;
        }
        let n_pub = plan.publish.as_ref().map_or(0, |p| {
            usize::from(p.audio.is_some()) + usize::from(!p.video.is_empty())
        });
        if joined && n_pub > 0 {
            publishers += 1;
            published += n_pub;
            pub_tracks.push((plan.room.clone(), plan.role, n_pub, Member::get(&m.peer_id)));
        }
        if joined && plan.transport != Transport::Whip {
            subscribers += 1;
        }
        let mut track_rows = Vec::new();
        for t in Member::get(&m.tracks) {
            let t = lock_track(&t);
            if t.packets > 0 {
                received += 1;
            }
            let lost = t.lost();
            loss.expected_packets += t.expected();
            loss.before_retransmission_packets += t.gaps;
            loss.after_retransmission_packets += lost;
            loss.recovered_packets += t.late;
            loss.duplicate_packets += t.duplicates;
            loss.frames_skipped += t.frames_skipped;
            let _ = latency
                .entry(t.kind.to_owned())
                .or_insert_with(latency_histogram)
                .add(&t.latency);
            let (fc, fms) = t.freezes();
            if t.kind == "video" {
                freezes.count += fc;
                freezes.total_ms += fms;
                freezes.tracks_with_freezes += u64::from(fc > 0);
                if let Some((a, b)) = t.span {
                    watch_ms += b.saturating_duration_since(a).as_secs_f64() * 1000.0;
                }
                match t.first_frame {
                    Some(d) => {
                        ttff.saturating_record((d.as_micros() as u64).clamp(1, MAX_LATENCY_US))
                    }
                    None => ttff_missing += 1,
                }
            }
            track_rows.push(TrackRow {
                publisher: t.publisher,
                kind: t.kind.to_owned(),
                source: t.source.clone(),
                packets: t.packets,
                lost,
                ttff_ms: t.first_frame.map(|d| d.as_secs_f64() * 1000.0),
                freezes: fc,
            });
        }
        rows.push(ParticipantRow {
            name: plan.name.clone(),
            role: plan.role,
            transport: plan.transport,
            room: plan.room.clone(),
            peer_id: Member::get(&m.peer_id),
            join_ms: Member::get(&m.join_time).map(|d| d.as_secs_f64() * 1000.0),
            error,
            tracks: track_rows,
            sent_packets: Member::get(&m.sent).map_or(0, |s| s.audio.packets + s.video.packets),
        });
    }
    for m in members {
        let Some(plan) = &m.plan else { continue };
        if Member::get(&m.join_time).is_none() || plan.transport == Transport::Whip {
            continue;
        }
        let me = Member::get(&m.peer_id);
        expected += pub_tracks
            .iter()
            .filter(|(room, role, _, peer)| {
                *room == plan.room && receives(plan.role, *role) && (me.is_none() || *peer != me)
            })
            .map(|(_, _, n, _)| n)
            .sum::<usize>();
    }
    let ratio = |n: u64| {
        if loss.expected_packets > 0 {
            n as f64 / loss.expected_packets as f64
        } else {
            0.0
        }
    };
    loss.before_retransmission_ratio = ratio(loss.before_retransmission_packets);
    loss.after_retransmission_ratio = ratio(loss.after_retransmission_packets);
    freezes.ratio = if watch_ms > 0.0 {
        freezes.total_ms / watch_ms
    } else {
        0.0
    };
    let out = rate(w.delta.recv_packets, w.delta.recv_bytes, w.secs);
    let server = w.server.map(|(pid, usage, rss_before_kib)| ServerUsage {
        pid,
        usage,
        cpu_us_per_egress_packet: (out.packets > 0)
            .then(|| usage.cpu_secs * 1e6 / out.packets as f64),
        rss_kib_per_subscriber: (subscribers > 0)
            .then(|| (usage.rss_mib_end * 1024.0 - rss_before_kib as f64) / subscribers as f64),
    });
    Report {
        scenario: w.scenario,
        publishers,
        subscribers,
        failed_joins: failed,
        tracks_published: published,
        tracks_expected: expected,
        tracks_received: received,
        window_secs: w.secs,
        ramp_secs: w.ramp_secs,
        r#in: rate(w.delta.sent_packets, w.delta.sent_bytes, w.secs),
        out,
        loss,
        latency_us: latency
            .iter()
            .filter_map(|(k, h)| Percentiles::of(h, 1.0).map(|p| (k.clone(), p)))
            .collect(),
        ttff_ms: Percentiles::of(&ttff, 1000.0),
        ttff_missing,
        freezes,
        server,
        generator: w.generator,
        generator_timer_lag_us: Percentiles::of(&w.generator_lag, 1.0),
        host_loadavg: w.loadavg,
        host_udp_rcvbuf_drops: w.udp_drops,
        participants: rows,
    }
}

impl Report {
    /// The human-readable summary (LiveKit load-tester style).
    pub fn table(&self) -> String {
        let s = &self.scenario;
        let mut o = String::new();
        let layers: Vec<String> = s
            .layers
            .iter()
            .map(|(r, b)| format!("{r} {} kbit/s", b / 1000))
            .collect();
        let video = if layers.is_empty() {
            format!("{} kbit/s", s.video_bps / 1000)
        } else {
            format!("simulcast [{}]", layers.join(", "))
        };
        let _ = writeln!(o, "\nKetang load test: {} — {}", s.name, s.shape);
        let _ = writeln!(
            o,
            "  {} ({video}, Opus {} kbit/s, {} media), window {:.0} s after a {:.1} s ramp at {}/s",
            s.codec,
            s.audio_bps / 1000,
            s.media,
            self.window_secs,
            self.ramp_secs,
            s.ramp_per_second
        );
        let _ = writeln!(
            o,
            "\n  {:>5} {:>5} {:>8} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9}",
            "Pubs",
            "Subs",
            "Tracks",
            "In pkt/s",
            "In Mbit/s",
            "Out pkt/s",
            "Out Mbit/s",
            "Loss raw",
            "Loss RTX"
        );
        let _ = writeln!(
            o,
            "  {:>5} {:>5} {:>8} {:>10.0} {:>10.2} {:>10.0} {:>10.2} {:>8.3}% {:>8.3}%",
            self.publishers,
            self.subscribers,
            format!("{}/{}", self.tracks_received, self.tracks_expected),
            self.r#in.packets_per_sec,
            self.r#in.mbit_per_sec,
            self.out.packets_per_sec,
            self.out.mbit_per_sec,
            self.loss.before_retransmission_ratio * 100.0,
            self.loss.after_retransmission_ratio * 100.0
        );
        let _ = writeln!(o);
        for kind in ["audio", "video"] {
            if let Some(p) = self.latency_us.get(kind) {
                let _ = writeln!(
                    o,
                    "  latency {kind:<5}  p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms  ({} frames)",
                    p.p50 / 1000.0,
                    p.p95 / 1000.0,
                    p.p99 / 1000.0,
                    p.max / 1000.0,
                    p.count
                );
            }
        }
        if let Some(t) = &self.ttff_ms {
            let _ = writeln!(
                o,
                "  first frame    p50 {:>7.0} ms  p95 {:>7.0} ms  max {:>7.0} ms  ({} video subscriptions, {} without)",
                t.p50, t.p95, t.max, t.count, self.ttff_missing
            );
        }
        let _ = writeln!(
            o,
            "  freezes        {} ({:.0} ms, {} tracks, ratio {:.4}%)",
            self.freezes.count,
            self.freezes.total_ms,
            self.freezes.tracks_with_freezes,
            self.freezes.ratio * 100.0
        );
        if let Some(sv) = &self.server {
            let per = sv
                .cpu_us_per_egress_packet
                .map_or("-".to_owned(), |v| format!("{v:.2}"));
            let _ = writeln!(
                o,
                "  server pid {}   CPU {:.3} cores  {per} µs/egress pkt  RSS {:.1} MiB (peak {:.1}, {:.0} KiB/sub), {} threads",
                sv.pid,
                sv.usage.cpu_cores,
                sv.usage.rss_mib_end,
                sv.usage.rss_mib_peak,
                sv.rss_kib_per_subscriber.unwrap_or(0.0),
                sv.usage.threads
            );
        }
        let g = &self.generator;
        let lag = self.generator_timer_lag_us.map_or(String::new(), |l| {
            format!(
                ", timer lag p99 {:.1} ms max {:.1} ms",
                l.p99 / 1000.0,
                l.max / 1000.0
            )
        });
        let _ = writeln!(
            o,
            "  generator      CPU {:.3} cores  RSS {:.1} MiB, {} threads{lag}",
            g.cpu_cores, g.rss_mib_end, g.threads
        );
        if let [Some(a), Some(b)] = self.host_loadavg {
            let drops = self.host_udp_rcvbuf_drops.unwrap_or(0);
            let _ = writeln!(
                o,
                "  host           load avg {a:.2} → {b:.2}; {drops} UDP datagrams dropped by the kernel (full receive buffers)"
            );
        }
        if self.failed_joins > 0 {
            let _ = writeln!(o, "  FAILED JOINS: {}", self.failed_joins);
            for r in self
                .participants
                .iter()
                .filter(|r| r.error.is_some())
                .take(5)
            {
                let _ = writeln!(o, "    {}: {}", r.name, r.error.as_deref().unwrap_or(""));
            }
        }
        o
    }
}
