//! Bandwidth allocation on simulated links (seeded `str0m-netem`, virtual clock): simulcast
//! layers follow a subscriber's link down fast and back up, audio never stops, and a
//! configured downlink cap is never exceeded.

mod common;

use std::time::{Duration, Instant};

use common::Net;
use ketang_sfu::{FloorCommand, LessonMode, PeerCaps, Role, TrackKind, TrackSource};
use str0m_netem::{Bitrate, DataSize, NetemConfig, Probability, RandomLoss};

const MIC_CAM: &[TrackSource] = &[TrackSource::Mic, TrackSource::Camera];
/// Bytes per frame at 30 fps: q ≈ 144 kbit/s, h ≈ 480 kbit/s, f ≈ 1.2 Mbit/s.
const LADDER: [(&str, usize); 3] = [("q", 600), ("h", 2000), ("f", 5000)];

/// A dedicated lesson: teacher and two classrooms publishing simulcast cameras, the first
/// classroom on stage; `c2` watches both (teacher + stage), about 2.5 Mbit/s at full quality.
fn lesson() -> Net {
    let mut net = Net::new();
    net.mode = LessonMode::Dedicated;
    net.simulcast = Some(LADDER.to_vec());
    net.join("teacher", Role::Teacher, MIC_CAM);
    net.join("c1", Role::Classroom, MIC_CAM);
    net.join("c2", Role::Classroom, MIC_CAM);
    let c1 = net.client("c1").peer;
    net.floor(
        "teacher",
        FloorCommand::CallOn {
            peer: c1,
            replace: true,
        },
    )
    .unwrap();
    net
}

/// A bottleneck of `kbps` with 20 ms one-way delay (40 ms RTT with the uplink's), `loss` random
/// loss, and a router queue of 250 ms at that rate (the usual sizing of an access link; a fixed
/// 100 KB queue would hold 1.3 s at 600 kbit/s, which no interactive flow survives).
fn link(kbps: u64, loss: f32) -> NetemConfig {
    let queue = (kbps * 1000 / 8 / 4).max(15_000);
    NetemConfig::new()
        .latency(Duration::from_millis(20))
        .link(Bitrate::kbps(kbps), DataSize::bytes(queue as i64))
        .loss(RandomLoss::new(Probability::new(loss)))
        .seed(7)
}

fn uplink() -> NetemConfig {
    NetemConfig::new()
        .latency(Duration::from_millis(20))
        .seed(11)
}

/// The longest stretch without a frame in `log` between `from` and `to`.
fn max_gap(log: &[(Instant, usize)], from: Instant, to: Instant) -> Duration {
    let times: Vec<Instant> = log
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t >= from && *t <= to)
        .collect();
    let mut gap = times.first().map_or(to - from, |f| *f - from);
    for w in times.windows(2) {
        gap = gap.max(w[1] - w[0]);
    }
    gap.max(times.last().map_or(Duration::ZERO, |l| to - *l))
}

fn video_bps(net: &Net, from: Instant, to: Instant) -> u64 {
    let bytes: usize = ["teacher", "c1"]
        .iter()
        .flat_map(|p| net.frame_log("c2", p, TrackKind::Video))
        .filter(|(t, _)| *t >= from && *t < to)
        .map(|(_, b)| b)
        .sum();
    bytes as u64 * 8 * 1000 / (to - from).as_millis() as u64
}

#[test]
fn a_configured_downlink_cap_is_never_exceeded() {
    let mut net = lesson();
    let i = net.idx("c2");
    let c2 = net.clients[i].peer;
    let caps = PeerCaps {
        down_bps: Some(2_000_000),
        up_bps: None,
    };
    assert!(net.sfu.set_caps(net.now, c2, caps));
    net.drain_sfu();
    // A fast link: only the cap limits.
    net.shape_down(
        "c2",
        NetemConfig::new()
            .latency(Duration::from_millis(10))
            .seed(3),
    );
    net.run_for(Duration::from_secs(20));
    let start = net.now - Duration::from_secs(18);
    for k in 0..8u32 {
        let from = start + Duration::from_secs(2 * k as u64);
        let bps = net.down_bps("c2", from, from + Duration::from_secs(2));
        assert!(bps <= 2_000_000, "2 s average {k}: {bps}");
    }
    // And it still gets a good picture: more than the lowest layers.
    let now = net.now;
    assert!(video_bps(&net, now - Duration::from_secs(4), now) > 900_000);
}

/// Two classrooms of one school with a 3 Mbit/s budget, on fast links: the server splits the
/// budget among the school's live classrooms, the one on stage counting twice (`BudgetSplit`
/// in src/media/budget.rs, tested there and through the API in tests/api_bandwidth.rs), so
/// `c1` (on stage) gets 2 Mbit/s and `c2` 1 Mbit/s. What they receive stays under the shares
/// and the budget over every 2 s, and the one on stage gets more.
#[test]
fn classrooms_sharing_a_school_budget_stay_under_it_and_the_stage_gets_more() {
    let mut net = lesson();
    for (name, share) in [("c1", 2_000_000), ("c2", 1_000_000)] {
        let peer = net.client(name).peer;
        let caps = PeerCaps {
            down_bps: Some(share),
            up_bps: None,
        };
        assert!(net.sfu.set_caps(net.now, peer, caps));
        net.shape_down(
            name,
            NetemConfig::new()
                .latency(Duration::from_millis(10))
                .seed(5),
        );
    }
    net.drain_sfu();
    net.run_for(Duration::from_secs(20));
    let start = net.now - Duration::from_secs(18);
    for k in 0..9u64 {
        let from = start + Duration::from_secs(2 * k);
        let to = from + Duration::from_secs(2);
        let (c1, c2) = (net.down_bps("c1", from, to), net.down_bps("c2", from, to));
        assert!(c1 <= 2_000_000, "c1, 2 s average {k}: {c1}");
        assert!(c2 <= 1_000_000, "c2, 2 s average {k}: {c2}");
        assert!(
            c1 + c2 <= 3_000_000,
            "together, 2 s average {k}: {}",
            c1 + c2
        );
    }
    let (from, to) = (net.now - Duration::from_secs(4), net.now);
    let (c1, c2) = (net.down_bps("c1", from, to), net.down_bps("c2", from, to));
    eprintln!("over the last 4 s: c1 (on stage) {c1} bit/s, c2 {c2} bit/s");
    assert!(c1 > c2, "the classroom on stage gets more: {c1} vs {c2}");
    // Both still get a picture above the lowest layers: the shares are used, not just obeyed.
    assert!(c2 > 600_000, "c2 uses its share: {c2}");
}

/// The last `PublishLayers` a client was sent for its camera: which rids are active.
fn published_layers(net: &Net, name: &str) -> Option<Vec<(String, bool)>> {
    net.client(name).events.iter().rev().find_map(|e| match e {
        ketang_sfu::PeerEvent::PublishLayers { layers, .. } => {
            Some(layers.iter().map(|l| (l.rid.clone(), l.active)).collect())
        }
        _ => None,
    })
}

#[test]
fn dynacast_stops_upper_layers_nobody_watches_and_restarts_them() {
    let mut net = Net::new();
    net.mode = LessonMode::Dedicated;
    net.simulcast = Some(LADDER.to_vec());
    // The teacher alone: nobody needs more than the lowest layer (kept for a quick start).
    net.join("teacher", Role::Teacher, MIC_CAM);
    net.run_for(Duration::from_secs(8));
    let alone = published_layers(&net, "teacher");
    assert_eq!(
        alone,
        Some(vec![
            ("q".to_string(), true),
            ("h".to_string(), false),
            ("f".to_string(), false)
        ]),
        "alone for 8 s"
    );
    // A classroom on a fast link joins: the upper layers come back.
    net.join("c1", Role::Classroom, MIC_CAM);
    net.run_for(Duration::from_secs(15));
    let watched = published_layers(&net, "teacher");
    assert_eq!(
        watched
            .as_ref()
            .map(|l| l.iter().filter(|(_, on)| *on).count()),
        Some(3),
        "watched: {watched:?}"
    );
}

/// With `BW_DEBUG=1`: what `c2` gets, its estimate, and (target, forwarded) layer per track.
fn print_state(net: &Net, phase: &str, since: Instant, every: Duration) {
    let c2 = net.client("c2").peer;
    let bw = net.sfu.peer_bandwidth(c2).expect("c2 is in the room");
    let n = net.now;
    eprintln!(
        "{phase} +{}ms down={} est={:?} {:?}",
        (n - since).as_millis(),
        net.down_bps("c2", n - every, n),
        bw.estimate_bps,
        bw.tracks
            .iter()
            .map(|t| (t.target, t.current))
            .collect::<Vec<_>>()
    );
}

/// Issue 6: a subscriber on 3 Mbit/s whose link drops to 600 kbit/s (40 ms RTT, 1 % loss)
/// receives layers that fit within 1.5 s, without a video gap of a second; when the capacity
/// returns it uses 80 % of it within 15 s; audio goes on throughout.
///
/// The 1 % random loss is that of the degraded link; the 3 Mbit/s link has the same RTT and no
/// random loss. 80 % of 3 Mbit/s needs both videos at the top layer (2.6 Mbit/s on the wire):
/// the estimate must climb to within 10 % of the link and hold there (estimate.rs).
#[test]
fn layers_follow_a_collapsing_and_recovering_link() {
    let mut net = lesson();
    net.shape_down("c2", link(3000, 0.0));
    net.shape_up("c2", uplink());
    let c2 = net.client("c2").peer;
    let debug = std::env::var("BW_DEBUG").is_ok();
    let start = net.now;
    let half = Duration::from_millis(500);
    for _ in 0..40 {
        net.run_for(half);
        if debug {
            print_state(&net, "start", start, half);
        }
    }
    let t = net.now;
    let full = video_bps(&net, t - Duration::from_secs(3), t);
    assert!(full > 1_600_000, "on 3 Mbit/s, high layers: {full}");

    // The link drops to 600 kbit/s. Which layers are forwarded, every 100 ms.
    net.shape_down("c2", link(600, 0.01));
    let drop = net.now;
    let tick = Duration::from_millis(100);
    let nominal = |l: usize| LADDER[l].1 as u64 * 8 * 30;
    let mut fit_at = None;
    for k in 1..=100u32 {
        net.run_for(tick);
        if debug {
            print_state(&net, "drop", drop, tick);
        }
        let bw = net.sfu.peer_bandwidth(c2).expect("c2 is in the room");
        let video: u64 = bw
            .tracks
            .iter()
            .filter(|t| t.layers == 3)
            .filter_map(|t| t.current.map(nominal))
            .sum();
        // Two Opus streams of 32 kbit/s besides.
        if fit_at.is_none() && video + 64_000 <= 600_000 {
            fit_at = Some(tick * k);
        }
    }
    let fit_at = fit_at.expect("the layers never fitted the link");
    let s = Duration::from_secs(1);
    // Video gaps are measured in packets arriving (per 100 ms statistics sample of the
    // receiver): what the server and the link deliver. Gaps in decoded frames are printed as a
    // diagnostic only: the str0m receiver assembles frames strictly in order, so one packet lost
    // for good holds back the frames behind it (up to 30 at once) much longer than a browser's
    // jitter buffer, which gives up on it and asks for a keyframe.
    //
    // The switch (the first 5 s) must leave no gap in either video. Later on, the link's 1 %
    // loss holds str0m's estimate (and its pacer) near 350 kbit/s, about what two lowest
    // layers and two Opus streams take on the wire: the allocator may then pause the second
    // stage video (its policy, tested in allocator.rs), but never the first, the teacher's.
    let switch = (drop - s, drop + s * 5);
    let phase = (drop - s, drop + s * 10);
    let mut video_gap = Duration::ZERO;
    let mut teacher_gap = Duration::ZERO;
    let mut frame_gap = Duration::ZERO;
    let mut audio_gap = Duration::ZERO;
    for p in ["teacher", "c1"] {
        let packets: Vec<(Instant, usize)> = net
            .packet_times("c2", p, TrackKind::Video)
            .into_iter()
            .map(|t| (t, 0))
            .collect();
        video_gap = video_gap.max(max_gap(&packets, switch.0, switch.1));
        if p == "teacher" {
            teacher_gap = max_gap(&packets, phase.0, phase.1);
        }
        let frames = net.frame_log("c2", p, TrackKind::Video);
        frame_gap = frame_gap.max(max_gap(&frames, switch.0, switch.1));
        let a = net.frame_log("c2", p, TrackKind::Audio);
        audio_gap = audio_gap.max(max_gap(&a, phase.0, phase.1));
    }
    eprintln!(
        "after the drop: layers fit in {fit_at:?}, longest video gap in the switch {video_gap:?} \
         (decoded frames: {frame_gap:?}), teacher's video over the phase {teacher_gap:?}, \
         longest audio gap {audio_gap:?}"
    );
    assert!(
        fit_at <= Duration::from_millis(1500),
        "layers fit after {fit_at:?}"
    );
    assert!(video_gap < s, "video gap {video_gap:?}");
    assert!(teacher_gap < s, "teacher's video gap {teacher_gap:?}");
    // Audio is never held back by the SFU, but at the moment of the drop the bottleneck's queue
    // is full of video sent for 3 Mbit/s, and it drops whatever arrives, audio included, until
    // the server has stepped down (a few hundred milliseconds). Less than a second of it is a
    // hiccup, not a stop.
    assert!(audio_gap < s, "audio gap {audio_gap:?}");

    // Capacity returns: at least 80 % of it in use within 15 s.
    net.shape_down("c2", link(3000, 0.0));
    let back = net.now;
    for _ in 0..30 {
        net.run_for(half);
        if debug {
            print_state(&net, "back", back, half);
        }
    }
    let used = (0..15u32)
        .map(|k| net.down_bps("c2", back + s * k, back + s * (k + 1)))
        .max()
        .unwrap_or(0);
    eprintln!("after recovery: best second within 15 s: {used} bit/s");
    assert!(used >= 2_400_000, "best second within 15 s: {used} bit/s");
}

/// A new subscription flows at once at the publisher's rate. Before a stream has been measured
/// for a second its rate is extrapolated, not read as a fraction of a second's bytes: read that
/// way, a camera that started 200 ms ago looked five times slower than it is, the allocator's
/// desired rate followed, str0m probed at (at most twice) that and paced everything at the
/// probe's rate meanwhile, so the first keyframe waited in the pacer and the video was stopped
/// as congested until the next keyframe.
#[test]
fn a_new_subscription_is_not_held_back_while_its_rate_is_measured() {
    let mut net = Net::new();
    // The classroom joins while the teacher's camera is 150 ms old.
    net.join("teacher", Role::Teacher, MIC_CAM);
    net.run_for(Duration::from_millis(150));
    net.join("c1", Role::Classroom, &[]);
    let start = net.client("teacher").frame_no;
    net.run_for(Duration::from_secs(4));
    let sent = net.client("teacher").frame_no - start;
    let got = net.frames_from("c1", "teacher", TrackKind::Video);
    let frames = net.frame_log("c1", "teacher", TrackKind::Video);
    let first = frames
        .first()
        .map(|(t, _)| *t)
        .expect("c1 decoded no video");
    let gap = max_gap(&frames, first, net.now);
    eprintln!("teacher sent {sent} video frames, c1 decoded {got}, longest gap {gap:?}");
    assert!(sent >= 100, "the teacher sent {sent} frames");
    // The frame in flight when the subscription opened may be missed, none after it: no frame
    // waits in the pacer, none is dropped while a stopped video waits for a keyframe.
    assert!(got + 2 >= sent, "c1 decoded {got} of {sent} frames");
    assert!(
        gap < Duration::from_millis(50),
        "c1's video stalled for {gap:?}"
    );
}
