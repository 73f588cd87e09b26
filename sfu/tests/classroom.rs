//! A live lesson through one shard: teacher and classrooms exchange audio and video, peers
//! leave, strangers send garbage, and roles are enforced. Runs on a virtual clock.

mod common;

use std::time::Duration;

use common::Net;
use ketang_sfu::{PeerEvent, PeerMode, Role, TrackKind, TrackSource};

const MIC_CAM: &[TrackSource] = &[TrackSource::Mic, TrackSource::Camera];

fn lesson() -> Net {
    let mut net = Net::new();
    net.join("teacher", Role::Teacher, MIC_CAM);
    net.join("c1", Role::Classroom, MIC_CAM);
    net.join("c2", Role::Classroom, MIC_CAM);
    net.run_for(Duration::from_secs(5));
    net
}

#[test]
fn teacher_and_two_classrooms_receive_each_others_audio_and_video() {
    let net = lesson();
    let names = ["teacher", "c1", "c2"];
    for r in names {
        for p in names.iter().filter(|p| **p != r) {
            let audio = net.frames_from(r, p, TrackKind::Audio);
            let video = net.frames_from(r, p, TrackKind::Video);
            // About 4 s of media after connecting: 50 audio and 30 video frames per second.
            assert!(audio > 150, "{r} got {audio} audio frames from {p}");
            assert!(video > 80, "{r} got {video} video frames from {p}");
        }
        let c = net.client(r);
        // Each receives exactly the other two participants' two tracks.
        assert_eq!(c.mid_tracks.len(), 4, "{r}: {:?}", c.mid_tracks);
        assert!(
            c.rx.values().any(|x| x.keyframes > 0),
            "{r} saw no keyframe"
        );
    }
}

#[test]
fn a_peer_leaving_renegotiates_the_others() {
    let mut net = lesson();
    let c2 = net.client("c2").peer;
    let answered_before = net.client("teacher").offers_answered;
    net.leave("c2");
    net.run_for(Duration::from_secs(1));

    for r in ["teacher", "c1"] {
        let c = net.client(r);
        assert!(
            c.events
                .iter()
                .any(|e| matches!(e, PeerEvent::ParticipantLeft { peer, .. } if *peer == c2)),
            "{r} was not told that c2 left"
        );
        let removed = c
            .events
            .iter()
            .filter(|e| matches!(e, PeerEvent::TrackRemoved { peer, .. } if *peer == c2))
            .count();
        assert_eq!(removed, 2, "{r} should see c2's two tracks removed");
        // The server offered again, without c2's m-lines.
        assert!(
            c.mid_tracks.values().all(|t| t.peer_id != c2),
            "{r}: {:?}",
            c.mid_tracks
        );
        assert_eq!(c.mid_tracks.len(), 2);
    }
    assert!(net.client("teacher").offers_answered > answered_before);

    // Media from the remaining participants keeps flowing.
    let before = net.frames_from("teacher", "c1", TrackKind::Video);
    net.run_for(Duration::from_secs(2));
    assert!(net.frames_from("teacher", "c1", TrackKind::Video) > before + 40);
}

#[test]
fn garbage_datagrams_and_bogus_stun_change_nothing() {
    let mut net = lesson();
    let before = net.frames_snapshot("teacher");
    let c1_addr = net.client("c1").addr;
    let stranger = "10.9.9.9:4444".parse().unwrap();

    // Random bytes of every class from a stranger and from a real client's address.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..2000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 1400) as usize + 1;
        let data: Vec<u8> = (0..len).map(|j| (seed >> (j % 56)) as u8).collect();
        let from = if i % 2 == 0 { stranger } else { c1_addr };
        net.inject(from, &data);
    }
    // A well-formed STUN binding request with a made-up username, and one naming a real
    // peer's ufrag but without valid integrity.
    net.inject(stranger, &stun("nobody:x"));
    net.inject(c1_addr, &stun("nobody:x"));
    net.run_for(Duration::from_secs(2));

    assert_eq!(net.sfu.peer_count(), 3);
    let after = net.frames_snapshot("teacher");
    for (k, v) in &before {
        assert!(after[k] > *v + 20, "{k:?} stalled: {v} -> {}", after[k]);
    }
    assert!(
        !net.sfu_events.iter().any(|e| e.contains("PeerLeft")),
        "{:?}",
        net.sfu_events
    );
}

fn stun(username: &str) -> Vec<u8> {
    let mut attr = vec![0x00, 0x06];
    attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attr.extend_from_slice(username.as_bytes());
    while attr.len() % 4 != 0 {
        attr.push(0);
    }
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&(attr.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    m.extend_from_slice(&[3; 12]);
    m.extend_from_slice(&attr);
    m
}

#[test]
fn a_viewer_cannot_publish() {
    let mut net = Net::new();
    net.join("teacher", Role::Teacher, MIC_CAM);
    let v = net.join("viewer", Role::Viewer, MIC_CAM);
    let answer = net.clients[v].answer.clone().unwrap();
    assert_eq!(answer.rejected.len(), 2, "{:?}", answer.rejected);
    assert!(answer.rejected[0].reason.contains("may not publish"));
    assert!(answer.sdp.matches("a=inactive").count() >= 2);
    net.run_for(Duration::from_secs(4));

    // The teacher never hears of a track from the viewer, nor receives anything from it.
    let t = net.client("teacher");
    assert!(
        !t.events
            .iter()
            .any(|e| matches!(e, PeerEvent::TrackAdded(_)))
    );
    assert_eq!(net.frames_from("teacher", "viewer", TrackKind::Video), 0);
    assert_eq!(net.frames_from("teacher", "viewer", TrackKind::Audio), 0);
    // The viewer still receives the teacher.
    assert!(net.frames_from("viewer", "teacher", TrackKind::Video) > 50);
}

#[test]
fn classroom_screen_share_is_refused_but_camera_accepted() {
    let mut net = Net::new();
    net.join("teacher", Role::Teacher, MIC_CAM);
    let c = net.join(
        "c1",
        Role::Classroom,
        &[TrackSource::Mic, TrackSource::Camera, TrackSource::Screen],
    );
    let rejected = &net.clients[c].answer.as_ref().unwrap().rejected;
    assert_eq!(rejected.len(), 1);
    assert!(rejected[0].reason.contains("may not publish screen"));
    net.run_for(Duration::from_secs(3));
    let t = net.client("teacher");
    let added = t
        .events
        .iter()
        .filter(|e| matches!(e, PeerEvent::TrackAdded(_)))
        .count();
    assert_eq!(added, 2);
    assert!(net.frames_from("teacher", "c1", TrackKind::Video) > 30);
}

#[test]
fn viewers_receive_only_the_teacher_and_observers_everyone() {
    let mut net = Net::new();
    net.join("teacher", Role::Teacher, MIC_CAM);
    net.join("c1", Role::Classroom, MIC_CAM);
    net.join("viewer", Role::Viewer, &[]);
    net.join("observer", Role::Observer, &[]);
    net.run_for(Duration::from_secs(4));
    assert!(net.frames_from("viewer", "teacher", TrackKind::Audio) > 100);
    assert_eq!(net.frames_from("viewer", "c1", TrackKind::Video), 0);
    assert_eq!(net.client("viewer").mid_tracks.len(), 2);
    assert!(net.frames_from("observer", "c1", TrackKind::Video) > 50);
    assert!(net.frames_from("observer", "teacher", TrackKind::Video) > 50);
    // The teacher receives the classroom but nothing from the two watchers.
    assert_eq!(net.client("teacher").mid_tracks.len(), 2);
}

#[test]
fn whep_player_gets_the_teacher_and_follows_a_rejoin() {
    let mut net = Net::new();
    let w = net.join_mode("player", Role::Viewer, &[], PeerMode::Whep);
    assert!(net.clients[w].answer.as_ref().unwrap().rejected.is_empty());
    net.join("teacher", Role::Teacher, MIC_CAM);
    net.run_for(Duration::from_secs(3));
    let p = net.client("player");
    let video: u64 = p.rx.values().map(|r| r.frames).sum();
    assert!(video > 150, "player got {video} frames");
    assert_eq!(p.offers_answered, 0, "WHEP never renegotiates");

    // The teacher drops and comes back: the same m-lines carry the new tracks.
    net.leave("teacher");
    net.run_for(Duration::from_millis(500));
    let before: u64 = net.client("player").rx.values().map(|r| r.frames).sum();
    net.join("teacher2", Role::Teacher, MIC_CAM);
    net.run_for(Duration::from_secs(3));
    let after: u64 = net.client("player").rx.values().map(|r| r.frames).sum();
    assert!(after > before + 100, "{before} -> {after}");
}

/// A client offer with `n` sending audio m-lines, as any WebRTC stack can make.
fn offer_with_lines(net: &Net, n: usize) -> String {
    use str0m::media::{Direction, MediaKind};
    let mut rtc = str0m::Rtc::builder().build(net.now);
    let mut api = rtc.sdp_api();
    for _ in 0..n {
        api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    }
    let (offer, _) = api.apply().expect("an offer");
    offer.to_sdp_string()
}

#[test]
fn an_offer_with_more_m_lines_than_a_peer_may_have_is_refused() {
    let mut net = Net::new();
    net.join("teacher", Role::Teacher, MIC_CAM);
    let max = ketang_sfu::DEFAULT_MAX_TRACKS_PER_PEER;
    let join = |net: &mut Net, peer: u64, offer: String| {
        net.sfu.join(
            net.now,
            ketang_sfu::JoinRequest {
                peer: ketang_sfu::PeerId(peer),
                room: net.room.clone(),
                name: "greedy".into(),
                role: Role::Classroom,
                classroom: None,
                joined_at_ms: 0,
                mode: PeerMode::Signaling,
                offer,
                sources: Vec::new(),
                lesson_mode: net.mode,
                caps: net.caps,
            },
        )
    };
    let hundred = offer_with_lines(&net, 100);
    match join(&mut net, 900, hundred) {
        Err(ketang_sfu::SfuError::TooManyTracks { offered, max: m }) => {
            assert_eq!((offered, m), (100, max));
        }
        Ok(_) => panic!("a 100-m-line offer was accepted"),
        Err(e) => panic!("a 100-m-line offer was refused for another reason: {e}"),
    }
    assert_eq!(net.sfu.peer_count(), 1, "nothing of the refused peer stays");
    // As many as allowed still join.
    let enough = offer_with_lines(&net, max);
    assert!(join(&mut net, 901, enough).is_ok());
    assert_eq!(net.sfu.peer_count(), 2);
}

#[test]
fn a_direction_with_trailing_space_is_screened_as_str0m_reads_it() {
    use str0m::media::{Direction, MediaKind};
    let mut net = Net::new();
    net.join("teacher", Role::Teacher, MIC_CAM);
    // A viewer's offer whose sending m-line says `a=inactive ` (trailing space).
    let mut rtc = str0m::Rtc::builder().build(net.now);
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, _) = api.apply().expect("an offer");
    let sdp = offer
        .to_sdp_string()
        .replace("a=sendonly\r\n", "a=inactive \r\n");
    assert!(sdp.contains("a=inactive \r\n"));
    let answer = net
        .sfu
        .join(
            net.now,
            ketang_sfu::JoinRequest {
                peer: ketang_sfu::PeerId(900),
                room: net.room.clone(),
                name: "viewer".into(),
                role: Role::Viewer,
                classroom: None,
                joined_at_ms: 0,
                mode: PeerMode::Signaling,
                offer: sdp,
                sources: Vec::new(),
                lesson_mode: net.mode,
                caps: net.caps,
            },
        )
        .expect("joins");
    // The m-line is inactive for str0m too: its answer takes nothing from the viewer.
    let audio = answer
        .sdp
        .split("m=")
        .find(|s| s.starts_with("audio"))
        .expect("the audio m-line is answered");
    assert!(audio.contains("a=inactive"), "answered as: {audio}");
    assert!(!audio.contains("a=recvonly") && !audio.contains("a=sendrecv"));
}
