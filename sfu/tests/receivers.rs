//! Players that give no transport-wide feedback (aiortc, GStreamer, hardware decoders: RTCP
//! receiver reports only, sometimes REMB): they get every packet a link carries at once, the
//! best layer from the start, and a single video layer is paused only when loss shows the link
//! cannot carry it, and comes back by itself. Seeded `str0m-netem` links, virtual clock.

mod common;

use std::time::{Duration, Instant};

use common::Net;
use ketang_sfu::{Feedback, PeerMode, Role, TrackSource};
use str0m::media::MediaKind;
use str0m_netem::{Bitrate, DataSize, NetemConfig};

const MIC_CAM: &[TrackSource] = &[TrackSource::Mic, TrackSource::Camera];
/// A single-layer camera at about 1.5 Mbit/s: 6250 bytes a frame at 30 fps.
const CAMERA_1500K: usize = 6250;

/// A player without TWCC watching a teacher who publishes one layer of `camera` bytes a frame.
fn broadcast(camera: usize) -> Net {
    let mut net = Net::new();
    net.camera_bytes = Some(camera);
    net.join("teacher", Role::Teacher, MIC_CAM);
    net.run_for(Duration::from_secs(1));
    net.twcc = false;
    net.join_mode("player", Role::Viewer, &[], PeerMode::Whep);
    net
}

/// A bottleneck of `kbps`, 20 ms one way, with a router queue of 250 ms at that rate.
fn link(kbps: u64) -> NetemConfig {
    let queue = (kbps * 1000 / 8 / 4).max(15_000);
    NetemConfig::new()
        .latency(Duration::from_millis(20))
        .link(Bitrate::kbps(kbps), DataSize::bytes(queue as i64))
        .seed(9)
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

#[test]
fn a_player_without_twcc_is_served_unpaced_and_gets_every_frame_at_once() {
    let mut net = broadcast(CAMERA_1500K);
    let joined = net.now;
    let player = net.client("player").peer;
    let sent_before = net.client("teacher").frame_no;
    net.run_for(Duration::from_secs(30));
    let bw = net
        .sfu
        .peer_bandwidth(player)
        .expect("the player is in the room");
    assert_eq!(bw.feedback, Feedback::Reports);
    let frames = net.frames_of_kind("player", MediaKind::Video);
    let first = frames.first().map(|(t, _)| *t).expect("no video arrived");
    let sent = net.client("teacher").frame_no - sent_before;
    let got = frames.len() as u64;
    let gap = max_gap(&frames, first, net.now - Duration::from_millis(100));
    eprintln!(
        "first frame {:?} after joining; {got} of {sent} frames; longest gap {gap:?}",
        first - joined
    );
    // Connecting (ICE, DTLS) on 0 ms links takes a few rounds; then the keyframe requested
    // for the new subscriber, not a slow start.
    assert!(
        first - joined < Duration::from_millis(150),
        "{:?}",
        first - joined
    );
    // Every frame after the first keyframe (the frames in flight while connecting may be
    // missed): ≥ 99.9 % of what was sent, no stall.
    assert!(got * 1000 >= (sent - 3) * 999, "{got} of {sent} frames");
    assert!(
        gap < Duration::from_millis(100),
        "the video stalled for {gap:?}"
    );
}

#[test]
fn a_player_without_twcc_gets_the_top_simulcast_layer_from_the_start() {
    let mut net = Net::new();
    net.simulcast = Some(vec![("q", 600), ("h", 2000), ("f", 5000)]);
    net.join("teacher", Role::Teacher, MIC_CAM);
    net.run_for(Duration::from_secs(1));
    net.twcc = false;
    net.simulcast = None;
    net.join_mode("player", Role::Viewer, &[], PeerMode::Whep);
    net.run_for(Duration::from_secs(5));
    let player = net.client("player").peer;
    let bw = net.sfu.peer_bandwidth(player).unwrap();
    let video = bw.tracks.iter().find(|t| t.layers == 3).expect("camera");
    assert_eq!(video.current, Some(2), "{bw:?}");
    // And it got there without stepping up: f frames (5000 bytes, 15000 for keyframes) from
    // the first frame on.
    let frames = net.frames_of_kind("player", MediaKind::Video);
    let small = frames.iter().filter(|(_, b)| *b < 4000).count();
    assert!(
        small <= 2,
        "{small} frames of lower layers before the top one"
    );
}

#[test]
fn loss_pauses_a_single_layer_the_link_cannot_carry_and_its_return_resumes_it() {
    let mut net = broadcast(CAMERA_1500K);
    net.shape_down("player", link(5000));
    net.run_for(Duration::from_secs(5));
    // The link falls to 1 Mbit/s, below the 1.5 Mbit/s camera.
    net.shape_down("player", link(1000));
    let cut = net.now;
    let tick = Duration::from_millis(100);
    let mut paused_at = None;
    for k in 1..=150u32 {
        net.run_for(tick);
        let bw = net.sfu.peer_bandwidth(net.client("player").peer).unwrap();
        let video = bw
            .tracks
            .iter()
            .find(|t| t.layers == 1 && t.source == TrackSource::Camera);
        if paused_at.is_none() && video.is_some_and(|v| v.target.is_none()) {
            paused_at = Some(tick * k);
        }
    }
    let paused_at = paused_at.expect("the video was never paused on a 1 Mbit/s link");
    let audio = net.frames_of_kind("player", MediaKind::Audio);
    let audio_gap = max_gap(&audio, cut, net.now);
    eprintln!("paused {paused_at:?} after the drop; longest audio gap {audio_gap:?}");
    assert!(
        paused_at <= Duration::from_secs(3),
        "paused after {paused_at:?}"
    );
    assert!(
        audio_gap < Duration::from_secs(1),
        "audio stopped for {audio_gap:?}"
    );

    // The link returns: the video is back within 5 s, and stays.
    net.shape_down("player", link(5000));
    let back = net.now;
    net.run_for(Duration::from_secs(12));
    let video = net.frames_of_kind("player", MediaKind::Video);
    let resumed = video
        .iter()
        .map(|(t, _)| *t)
        .find(|t| *t >= back)
        .expect("the video never resumed");
    let gap = max_gap(&video, resumed, net.now);
    eprintln!(
        "resumed {:?} after the link returned; longest gap since {gap:?}",
        resumed - back
    );
    assert!(
        resumed - back <= Duration::from_secs(5),
        "{:?}",
        resumed - back
    );
    assert!(
        gap < Duration::from_millis(500),
        "gap {gap:?} after resuming"
    );
}

/// The layer of the three-layer camera `name` receives now (`None`: paused).
fn camera_layer(net: &Net, name: &str) -> Option<usize> {
    let bw = net.sfu.peer_bandwidth(net.client(name).peer)?;
    bw.tracks.iter().find(|t| t.layers == 3)?.current
}

#[test]
fn an_audience_viewer_without_the_estimator_steps_down_on_loss_and_back_up() {
    // Every viewer adapts to its own reports (a large audience, as BwePolicy decides), though
    // this one negotiates TWCC like a browser.
    let mut net = Net::with_config(|c| c.bwe_policy.audience_bwe_below = 0);
    // About 0.15, 0.5 and 1.2 Mbit/s.
    net.simulcast = Some(vec![("q", 600), ("h", 2000), ("f", 5000)]);
    net.join("teacher", Role::Teacher, MIC_CAM);
    net.run_for(Duration::from_secs(1));
    net.simulcast = None;
    net.join("viewer", Role::Viewer, &[]);
    net.shape_down("viewer", link(5000));
    net.run_for(Duration::from_secs(8));
    let viewer = net.client("viewer").peer;
    let bw = net.sfu.peer_bandwidth(viewer).unwrap();
    assert_eq!(bw.feedback, Feedback::Reports, "{bw:?}");
    assert_eq!(camera_layer(&net, "viewer"), Some(2), "{bw:?}");

    // A 5x drop: 1 Mbit/s holds the middle layer, not the top one.
    net.shape_down("viewer", link(1000));
    let cut = net.now;
    let tick = Duration::from_millis(100);
    let mut down_at = None;
    for k in 1..=100u32 {
        net.run_for(tick);
        if down_at.is_none() && camera_layer(&net, "viewer").is_some_and(|l| l < 2) {
            down_at = Some(tick * k);
        }
    }
    let down_at = down_at.expect("the viewer never stepped down on a 1 Mbit/s link");
    let audio = net.frames_of_kind("viewer", MediaKind::Audio);
    let audio_gap = max_gap(&audio, cut, net.now);
    let during = camera_layer(&net, "viewer");
    eprintln!("down {down_at:?} after the drop to {during:?}; longest audio gap {audio_gap:?}");
    assert!(down_at <= Duration::from_secs(3), "down after {down_at:?}");
    assert!(during.is_some(), "the video was paused, not stepped down");
    assert!(
        audio_gap < Duration::from_secs(1),
        "audio stopped for {audio_gap:?}"
    );

    // The link returns: back at the top layer within 15 s.
    net.shape_down("viewer", link(5000));
    let mut up_at = None;
    for k in 1..=150u32 {
        net.run_for(tick);
        if up_at.is_none() && camera_layer(&net, "viewer") == Some(2) {
            up_at = Some(tick * k);
        }
    }
    let up_at = up_at.expect("the viewer never came back to the top layer");
    eprintln!("back at the top layer {up_at:?} after the link returned");
    assert!(up_at <= Duration::from_secs(15), "up after {up_at:?}");
}

#[test]
fn a_small_audience_keeps_the_estimator() {
    let mut net = Net::new();
    net.join("teacher", Role::Teacher, MIC_CAM);
    net.join("viewer", Role::Viewer, &[]);
    net.run_for(Duration::from_secs(2));
    let bw = net.sfu.peer_bandwidth(net.client("viewer").peer).unwrap();
    assert_eq!(bw.feedback, Feedback::Twcc);
}

#[test]
fn viewers_joining_in_a_storm_start_at_once_from_the_recent_keyframe() {
    // A lesson starts and its audience arrives: 30 players, one every 40 ms. Keyframe requests
    // are throttled per layer (300 ms), so most of them join just after a keyframe went by;
    // they start from the layer's copy of it rather than wait for the throttle.
    let mut net = broadcast(CAMERA_1500K);
    net.run_for(Duration::from_secs(2));
    let keyframes_before = net.client("teacher").keyframes_sent;
    let mut joins = Vec::new();
    for i in 0..30 {
        let name = format!("v{i}");
        joins.push((name.clone(), net.now));
        net.join_mode(&name, Role::Viewer, &[], PeerMode::Whep);
        net.run_for(Duration::from_millis(40));
    }
    net.run_for(Duration::from_secs(1));
    let mut waits: Vec<Duration> = joins
        .iter()
        .map(|(name, at)| {
            let frames = net.frames_of_kind(name, MediaKind::Video);
            let first = frames.first().map(|(t, _)| *t).expect("no video arrived");
            first - *at
        })
        .collect();
    waits.sort();
    let keyframes = net.client("teacher").keyframes_sent - keyframes_before;
    let (p50, max) = (waits[waits.len() / 2], waits[waits.len() - 1]);
    eprintln!("first frame p50 {p50:?}, max {max:?}; {keyframes} keyframes in the storm");
    // Connecting takes a few 0 ms rounds; no player waits for the throttle.
    assert!(p50 < Duration::from_millis(60), "p50 {p50:?}");
    assert!(max < Duration::from_millis(150), "max {max:?}");
    // And the publisher is not asked for a keyframe per viewer: at most one per throttle
    // interval of the 1.2 s storm (plus its own every 2 s).
    assert!(keyframes <= 7, "{keyframes} keyframes for 30 viewers");
    // After the start each player gets every frame.
    for (name, _) in &joins {
        let frames = net.frames_of_kind(name, MediaKind::Video);
        let gap = max_gap(&frames, frames[0].0, net.now - Duration::from_millis(100));
        assert!(
            gap < Duration::from_millis(100),
            "{name} stalled for {gap:?}"
        );
    }
}

#[test]
fn a_viewer_of_a_source_that_takes_no_keyframe_requests_starts_from_its_last_keyframe() {
    // An RTMP bridge offers no PLI or FIR: keyframes come only every 2 s (its GOP). A player
    // joining in the middle of a GOP starts from the kept one instead of waiting for the next.
    let mut net = Net::new();
    net.camera_bytes = Some(CAMERA_1500K);
    net.deaf = true;
    net.join("encoder", Role::Teacher, MIC_CAM);
    net.deaf = false;
    net.run_for(Duration::from_millis(2700));
    let keyframes_before = net.client("encoder").keyframes_sent;
    // 0.7 s after the encoder's keyframe at 2 s: 1.3 s before its next one.
    let joined = net.now;
    net.join_mode("player", Role::Viewer, &[], PeerMode::Whep);
    net.run_for(Duration::from_millis(1000));
    let frames = net.frames_of_kind("player", MediaKind::Video);
    let first = frames.first().map(|(t, _)| *t).expect("no video arrived");
    eprintln!("first frame {:?} after joining", first - joined);
    assert!(
        first - joined < Duration::from_millis(150),
        "{:?}",
        first - joined
    );
    // The requests went unanswered: no keyframe beyond the encoder's own.
    assert_eq!(net.client("encoder").keyframes_sent, keyframes_before);
    // And from the kept keyframe on, the player decodes every frame that follows.
    let gap = max_gap(&frames, first, net.now - Duration::from_millis(100));
    assert!(gap < Duration::from_millis(100), "stalled for {gap:?}");
}

#[test]
fn a_batch_of_ingress_packets_costs_each_subscriber_one_round() {
    // One round per subscriber per ingress batch (issue 16 item 2): a 1.5 Mbit/s camera sends
    // its frames as bursts of several packets that arrive together; the shard writes each to
    // every subscriber and lets them all go in the subscriber's next round, not a round per
    // packet. Twenty players, plain (no pacer) so the count is about batching alone.
    let mut net = broadcast(CAMERA_1500K);
    for i in 0..19 {
        net.join_mode(&format!("p{i}"), Role::Viewer, &[], PeerMode::Whep);
    }
    net.run_for(Duration::from_secs(3));
    let (rounds0, sent0) = {
        let s = net.sfu.stats();
        (s.peer_rounds, s.forwarded_video + s.forwarded_audio)
    };
    net.run_for(Duration::from_secs(5));
    let s = net.sfu.stats();
    let (rounds, sent) = (
        s.peer_rounds - rounds0,
        s.forwarded_video + s.forwarded_audio - sent0,
    );
    eprintln!("{sent} packets forwarded in {rounds} peer rounds");
    assert!(sent > 20 * 5 * 100, "{sent} forwarded");
    // Audio packets come alone (one round each); a video frame's 5 packets share one. Every
    // round also serves the peer's own timers (RTCP, ICE): well under one per packet.
    assert!(rounds * 10 < sent * 6, "{rounds} rounds for {sent} packets");
}
