//! Floor control enforced in the SFU, counted in packets: the stage, mutes, hands, invited
//! speakers, roll call, chat, questions and the active speaker.

mod common;

use std::time::Duration;

use common::Net;
use ketang_sfu::{
    FloorCommand, FloorOutcome, LessonMode, PeerEvent, QuestionStatus, Role, SfuError, TrackKind,
    TrackSource,
};

const MIC_CAM: &[TrackSource] = &[TrackSource::Mic, TrackSource::Camera];

fn dedicated() -> Net {
    let mut net = Net::new();
    net.mode = LessonMode::Dedicated;
    net.join("teacher", Role::Teacher, MIC_CAM);
    net.join("c1", Role::Classroom, MIC_CAM);
    net.join("c2", Role::Classroom, MIC_CAM);
    net.run_for(Duration::from_secs(3));
    net
}

/// Frames `to` gets from `from` of `kind` during `d`.
fn during(net: &mut Net, d: Duration, to: &str, from: &str, kind: TrackKind) -> u64 {
    let before = net.frames_from(to, from, kind);
    net.run_for(d);
    net.frames_from(to, from, kind) - before
}

#[test]
fn an_off_stage_classroom_reaches_the_teacher_only_and_on_stage_everyone() {
    let mut net = dedicated();
    let two = Duration::from_secs(2);
    // Off stage: c1 → teacher yes, c1 → c2 no, in both kinds.
    assert!(during(&mut net, two, "teacher", "c1", TrackKind::Video) > 40);
    assert_eq!(during(&mut net, two, "c2", "c1", TrackKind::Video), 0);
    assert_eq!(during(&mut net, two, "c2", "c1", TrackKind::Audio), 0);
    // Everyone keeps the teacher.
    assert!(during(&mut net, two, "c2", "teacher", TrackKind::Audio) > 80);

    // c1 raises its hand; the teacher calls on it.
    let c1 = net.client("c1").peer;
    net.floor("c1", FloorCommand::RaiseHand).unwrap();
    assert_eq!(net.state_of("teacher").unwrap().hands[0].peer_id, c1);
    let out = net
        .floor(
            "teacher",
            FloorCommand::CallOn {
                peer: c1,
                replace: true,
            },
        )
        .unwrap();
    assert_eq!(out, FloorOutcome::CalledOn(c1));
    let st = net.state_of("c2").unwrap();
    assert_eq!(st.stage, vec![c1]);
    assert!(st.hands.is_empty(), "calling on lowers the hand");
    // On stage: c2 hears and sees c1 (video after a keyframe, requested at once).
    assert!(during(&mut net, two, "c2", "c1", TrackKind::Video) > 40);
    assert!(during(&mut net, two, "c2", "c1", TrackKind::Audio) > 80);

    // Done: off stage again.
    net.floor("teacher", FloorCommand::Done { peer: c1 })
        .unwrap();
    net.run_for(Duration::from_millis(200));
    assert_eq!(during(&mut net, two, "c2", "c1", TrackKind::Video), 0);
    assert!(during(&mut net, two, "teacher", "c1", TrackKind::Video) > 40);
}

#[test]
fn a_muted_classroom_reaches_no_one_and_sees_it_was_muted() {
    let mut net = dedicated();
    let c1 = net.client("c1").peer;
    net.floor(
        "teacher",
        FloorCommand::CallOn {
            peer: c1,
            replace: true,
        },
    )
    .unwrap();
    net.floor(
        "teacher",
        FloorCommand::Mute {
            peer: c1,
            mic: Some(true),
            video: None,
        },
    )
    .unwrap();
    net.run_for(Duration::from_millis(100));
    let two = Duration::from_secs(2);
    assert_eq!(during(&mut net, two, "teacher", "c1", TrackKind::Audio), 0);
    assert_eq!(during(&mut net, two, "c2", "c1", TrackKind::Audio), 0);
    // Its video still flows.
    assert!(during(&mut net, two, "c2", "c1", TrackKind::Video) > 40);
    let me = net.state_of("c1").unwrap();
    let p = me
        .participants
        .iter()
        .find(|p| p.info.peer_id == c1)
        .unwrap();
    assert!(p.mic_muted && p.muted_by_teacher);
    // It cannot unmute itself out of a teacher's mute.
    net.floor(
        "c1",
        FloorCommand::SelfMute {
            mic: Some(false),
            video: None,
        },
    )
    .unwrap();
    assert_eq!(during(&mut net, two, "teacher", "c1", TrackKind::Audio), 0);
    // Mute all, then the teacher unmutes c1.
    net.floor("teacher", FloorCommand::MuteAllClassrooms)
        .unwrap();
    net.floor(
        "teacher",
        FloorCommand::Mute {
            peer: c1,
            mic: Some(false),
            video: None,
        },
    )
    .unwrap();
    assert!(during(&mut net, two, "teacher", "c1", TrackKind::Audio) > 80);
    assert_eq!(during(&mut net, two, "teacher", "c2", TrackKind::Audio), 0);
}

#[test]
fn only_the_teacher_runs_the_floor() {
    let mut net = dedicated();
    let c2 = net.client("c2").peer;
    for cmd in [
        FloorCommand::CallOn {
            peer: c2,
            replace: true,
        },
        FloorCommand::RollCall,
        FloorCommand::MuteAllClassrooms,
        FloorCommand::Remove { peer: c2 },
        FloorCommand::Mute {
            peer: c2,
            mic: Some(true),
            video: None,
        },
    ] {
        let r = net.floor("c1", cmd.clone());
        assert!(matches!(r, Err(SfuError::Forbidden(_))), "{cmd:?}: {r:?}");
    }
    assert!(net.state_of("c1").unwrap().stage.is_empty());
}

#[test]
fn roll_call_picks_a_present_classroom_and_tells_everyone() {
    let mut net = dedicated();
    let out = net.floor("teacher", FloorCommand::RollCall).unwrap();
    let FloorOutcome::CalledOn(picked) = out else {
        panic!("{out:?}");
    };
    let classrooms = [net.client("c1").peer, net.client("c2").peer];
    assert!(classrooms.contains(&picked));
    for name in ["teacher", "c1", "c2"] {
        assert!(
            net.client(name)
                .events
                .iter()
                .any(|e| matches!(e, PeerEvent::RollCall { peer } if *peer == picked))
        );
        assert_eq!(net.state_of(name).unwrap().stage, vec![picked]);
    }
}

#[test]
fn an_invited_observer_may_speak_in_a_master_lesson() {
    let mut net = Net::new();
    net.mode = LessonMode::Master;
    net.join("teacher", Role::Teacher, MIC_CAM);
    net.join("c1", Role::Classroom, MIC_CAM);
    net.join("obs", Role::Observer, &[]);
    net.run_for(Duration::from_secs(2));
    // Not invited: publishing is refused.
    let r = net.add_source("obs", TrackSource::Mic).unwrap();
    assert_eq!(r.rejected.len(), 1, "{r:?}");
    // Hand, invitation, then the offer is accepted and everyone hears it.
    let obs = net.client("obs").peer;
    net.floor("obs", FloorCommand::RaiseHand).unwrap();
    net.floor(
        "teacher",
        FloorCommand::CallOn {
            peer: obs,
            replace: true,
        },
    )
    .unwrap();
    let r = net.add_source("obs", TrackSource::Camera).unwrap();
    assert!(r.rejected.is_empty(), "{r:?}");
    net.run_for(Duration::from_secs(2));
    assert!(net.frames_from("c1", "obs", TrackKind::Video) > 30);
    assert!(net.frames_from("teacher", "obs", TrackKind::Video) > 30);
    // Done: its tracks stop reaching anyone.
    net.floor("teacher", FloorCommand::Done { peer: obs })
        .unwrap();
    net.run_for(Duration::from_millis(200));
    let t = during(
        &mut net,
        Duration::from_secs(2),
        "teacher",
        "obs",
        TrackKind::Video,
    );
    assert_eq!(t, 0);
}

#[test]
fn chat_reaches_everyone_and_questions_wait_for_the_teacher() {
    let mut net = Net::new();
    net.mode = LessonMode::Broadcast;
    net.join("teacher", Role::Teacher, MIC_CAM);
    net.join("v1", Role::Viewer, &[]);
    net.join("v2", Role::Viewer, &[]);
    net.run_for(Duration::from_secs(1));
    net.floor(
        "v1",
        FloorCommand::Chat {
            text: "<b>你好</b>".into(),
        },
    )
    .unwrap();
    for name in ["teacher", "v1", "v2"] {
        let got =
            net.client(name).events.iter().any(
                |e| matches!(e, PeerEvent::Chat(m) if m.text == "<b>你好</b>" && m.name == "v1"),
            );
        assert!(got, "{name} missed the chat");
    }
    net.floor(
        "v2",
        FloorCommand::Ask {
            text: "Why is the sky blue?".into(),
        },
    )
    .unwrap();
    let q = net.state_of("teacher").unwrap().questions;
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].status, QuestionStatus::Open);
    let r = net.floor("teacher", FloorCommand::Ask { text: "x".into() });
    assert!(r.is_err(), "the teacher does not ask");
    net.floor(
        "teacher",
        FloorCommand::SettleQuestion {
            id: q[0].id,
            answered: true,
        },
    )
    .unwrap();
    let q = net.state_of("v2").unwrap().questions;
    assert_eq!(q[0].status, QuestionStatus::Answered);
    // Viewers are counted, not listed, in the state.
    let st = net.state_of("teacher").unwrap();
    assert_eq!(st.audience, 2);
    assert_eq!(st.participants.len(), 1);
}

#[test]
fn the_active_speaker_follows_audio_levels() {
    let mut net = dedicated();
    let c1 = net.client("c1").peer;
    let i = net.idx("c1");
    net.clients[i].audio_level = -20;
    net.run_for(Duration::from_secs(2));
    let speaker = |net: &Net| {
        net.client("teacher")
            .events
            .iter()
            .rev()
            .find_map(|e| match e {
                PeerEvent::ActiveSpeaker { peer } => Some(*peer),
                _ => None,
            })
    };
    assert_eq!(speaker(&net), Some(Some(c1)));
    // The teacher starts talking, c1 goes quiet.
    net.clients[i].audio_level = -110;
    let t = net.idx("teacher");
    net.clients[t].audio_level = -25;
    net.run_for(Duration::from_secs(2));
    assert_eq!(speaker(&net), Some(Some(net.client("teacher").peer)));
}

#[test]
fn a_removed_classroom_is_gone_for_everyone() {
    let mut net = dedicated();
    let c2 = net.client("c2").peer;
    let out = net
        .floor("teacher", FloorCommand::Remove { peer: c2 })
        .unwrap();
    assert_eq!(out, FloorOutcome::Removed(c2));
    assert_eq!(net.sfu.peer_count(), 2);
    let removed = net.client("c1").events.iter().any(|e| {
        matches!(e, PeerEvent::ParticipantLeft { peer, reason: ketang_sfu::LeaveReason::Removed } if *peer == c2)
    });
    assert!(removed);
    let r = net.floor(
        "teacher",
        FloorCommand::Remove {
            peer: net.client("teacher").peer,
        },
    );
    assert!(r.is_err());
}
