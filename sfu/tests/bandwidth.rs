//! Bandwidth allocation on simulated links (seeded `str0m-netem`, virtual clock).

mod common;

use std::time::{Duration, Instant};

use common::Net;
use ketang_sfu::{FloorCommand, LessonMode, PeerCaps, Role, TrackKind, TrackSource};
use str0m_netem::NetemConfig;

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
