//! What the room state costs (issue 13): questions from viewers must not make the server send
//! every viewer the whole question list, and a peer that joins gets the state at once
//! (protocol §4.1).

mod common;

use std::time::Duration;

use common::Net;
use ketang_sfu::{FloorCommand, LessonMode, PeerEvent, QuestionStatus, Role, SfuError};

/// Bytes of `roomState` messages `name` received from event `from` on, as JSON.
fn state_bytes(net: &Net, name: &str, from: usize) -> usize {
    net.client(name).events[from..]
        .iter()
        .map(|e| match e {
            PeerEvent::RoomState(s) => serde_json::to_string(s).unwrap().len(),
            _ => 0,
        })
        .sum()
}

#[test]
fn a_question_costs_the_viewers_a_bounded_number_of_bytes() {
    const VIEWERS: usize = 20;
    const ROUNDS: usize = 3;
    let mut net = Net::new();
    net.mode = LessonMode::Broadcast;
    net.join("teacher", Role::Teacher, &[]);
    let names: Vec<String> = (0..VIEWERS).map(|i| format!("v{i}")).collect();
    for n in &names {
        net.join(n, Role::Viewer, &[]);
    }
    net.run_for(Duration::from_secs(1));
    let marks: Vec<usize> = names.iter().map(|n| net.client(n).events.len()).collect();
    let text = "问".repeat(500);
    for _ in 0..ROUNDS {
        for n in &names {
            net.floor(n, FloorCommand::Ask { text: text.clone() })
                .expect("question accepted");
        }
        // Past the per-viewer spacing of questions.
        net.run_for(Duration::from_secs(6));
    }
    let questions = VIEWERS * ROUNDS;
    let bytes: usize = names
        .iter()
        .zip(&marks)
        .map(|(n, m)| state_bytes(&net, n, *m))
        .sum();
    let per_question = bytes / questions;
    eprintln!(
        "{questions} questions: {bytes} bytes of roomState to {VIEWERS} viewers, {per_question} per question"
    );
    // The asker's own state (its own questions, each up to 1.5 KB of UTF-8) and nothing to the
    // others. Before: every viewer got every question (about 60 KB per question here).
    assert!(
        per_question <= 6 * 1024,
        "{per_question} bytes to viewers per question"
    );
    // Each viewer sees its own questions; the teacher sees them all, coalesced.
    for n in &names {
        let st = net.state_of(n).unwrap();
        let peer = net.client(n).peer;
        assert_eq!(st.questions.len(), ROUNDS, "{n}");
        assert!(st.questions.iter().all(|q| q.peer_id == peer));
    }
    let all = net.state_of("teacher").unwrap().questions;
    assert_eq!(all.len(), questions);
    assert!(all.iter().all(|q| q.status == QuestionStatus::Open));
}

#[test]
fn questions_are_rate_limited_per_viewer() {
    let mut net = Net::new();
    net.mode = LessonMode::Broadcast;
    net.join("teacher", Role::Teacher, &[]);
    net.join("v", Role::Viewer, &[]);
    net.run_for(Duration::from_millis(500));
    let ask = |net: &mut Net| {
        net.floor(
            "v",
            FloorCommand::Ask {
                text: "why?".into(),
            },
        )
    };
    ask(&mut net).unwrap();
    assert!(matches!(ask(&mut net), Err(SfuError::RateLimited(_))));
    // Spaced out, up to three may wait open; then the teacher must settle one first.
    for _ in 0..2 {
        net.run_for(Duration::from_secs(6));
        ask(&mut net).unwrap();
    }
    net.run_for(Duration::from_secs(6));
    assert!(matches!(ask(&mut net), Err(SfuError::RateLimited(_))));
    let q = net.state_of("teacher").unwrap().questions;
    assert_eq!(q.len(), 3);
    net.floor(
        "teacher",
        FloorCommand::SettleQuestion {
            id: q[0].id,
            answered: true,
        },
    )
    .unwrap();
    // The teacher's own action shows at once, to the teacher and the asker.
    assert_eq!(
        net.state_of("teacher").unwrap().questions[0].status,
        QuestionStatus::Answered
    );
    assert_eq!(
        net.state_of("v").unwrap().questions[0].status,
        QuestionStatus::Answered
    );
    ask(&mut net).unwrap();
}

#[test]
fn floor_changes_reach_watchers_coalesced() {
    let mut net = Net::new();
    net.mode = LessonMode::Dedicated;
    net.join("teacher", Role::Teacher, &[]);
    net.join("c1", Role::Classroom, &[]);
    net.join("o", Role::Observer, &[]);
    net.run_for(Duration::from_secs(2));
    let c1 = net.client("c1").peer;
    let (mark_o, mark_c) = (net.client("o").events.len(), net.client("c1").events.len());
    // A burst of 20 floor changes: the runners see each, watchers at most one state a second,
    // ending with the current one.
    for i in 0..20 {
        let mic = Some(i % 2 == 0);
        net.floor(
            "teacher",
            FloorCommand::Mute {
                peer: c1,
                mic,
                video: None,
            },
        )
        .unwrap();
    }
    net.run_for(Duration::from_millis(1500));
    let count = |name: &str, mark: usize| {
        net.client(name).events[mark..]
            .iter()
            .filter(|e| matches!(e, PeerEvent::RoomState(_)))
            .count()
    };
    assert_eq!(count("c1", mark_c), 20);
    let states = count("o", mark_o);
    assert!((1..=2).contains(&states), "{states} states in 1.5 s");
    let last = net.state_of("o").unwrap();
    let p = last
        .participants
        .iter()
        .find(|p| p.info.peer_id == c1)
        .unwrap();
    assert!(!p.mic_muted, "the last state is the current one");
}

#[test]
fn a_watcher_joining_late_gets_the_room_state_at_once() {
    let mut net = Net::new();
    net.mode = LessonMode::Dedicated;
    net.join("teacher", Role::Teacher, &[]);
    net.join("c1", Role::Classroom, &[]);
    net.run_for(Duration::from_secs(1));
    let c1 = net.client("c1").peer;
    net.floor(
        "teacher",
        FloorCommand::CallOn {
            peer: c1,
            replace: true,
        },
    )
    .unwrap();
    net.run_for(Duration::from_secs(2));
    net.join("o", Role::Observer, &[]);
    let st = net.state_of("o").expect("a roomState right after joining");
    assert_eq!(st.stage, vec![c1]);
}
