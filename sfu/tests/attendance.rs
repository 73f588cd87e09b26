//! What the SFU reports for attendance (`SfuEvent::Activity`): joining (when media connects),
//! going on and off stage, media loss and return, signaling loss and return, a fresh
//! connection, and that a fresh connection without media neither returns nor extends the
//! grace. The application
//! stamps these with the wall clock and folds them into each participant's record.

mod common;

use std::time::Duration;

use common::Net;
use ketang_sfu::{Activity, FloorCommand, LeaveReason, LessonMode, PeerId, Role, TrackSource};
use str0m::Rtc;
use str0m::media::{Direction, MediaKind};

const MIC_CAM: &[TrackSource] = &[TrackSource::Mic, TrackSource::Camera];

fn dedicated() -> Net {
    let mut net = Net::new();
    net.mode = LessonMode::Dedicated;
    net.join("teacher", Role::Teacher, MIC_CAM);
    net.join("c1", Role::Classroom, MIC_CAM);
    net.join("c2", Role::Classroom, MIC_CAM);
    net.run_for(Duration::from_secs(2));
    net
}

/// The activities reported since index `from`, without their times.
fn since(net: &Net, from: usize) -> Vec<(PeerId, Activity)> {
    net.activities[from..]
        .iter()
        .map(|(_, p, a)| (*p, a.clone()))
        .collect()
}

fn call_on(net: &mut Net, peer: PeerId) {
    let cmd = FloorCommand::CallOn {
        peer,
        replace: true,
    };
    net.floor("teacher", cmd).expect("the teacher may call on");
}

#[test]
fn each_join_is_reported_once_with_role_and_name() {
    let net = dedicated();
    let joined: Vec<(PeerId, Activity)> = since(&net, 0)
        .into_iter()
        .filter(|(_, a)| matches!(a, Activity::Joined { .. }))
        .collect();
    let expect = |name: &str, role| {
        (
            net.client(name).peer,
            Activity::Joined {
                role,
                classroom: None,
                name: name.into(),
                // The virtual network carries UDP.
                transport: ketang_sfu::Transport::Udp,
            },
        )
    };
    assert_eq!(
        joined,
        vec![
            expect("teacher", Role::Teacher),
            expect("c1", Role::Classroom),
            expect("c2", Role::Classroom),
        ]
    );
    // Nothing else happened in two quiet seconds: no stage change, no reconnection.
    assert_eq!(net.activities.len(), 3, "{:?}", net.activities);
}

#[test]
fn going_on_and_off_stage_is_reported_for_every_way_there_and_back() {
    let mut net = dedicated();
    let (c1, c2) = (net.client("c1").peer, net.client("c2").peer);
    let mark = net.activities.len();

    // Raising a hand is not a turn; being called on is.
    net.floor("c1", FloorCommand::RaiseHand).unwrap();
    call_on(&mut net, c1);
    assert_eq!(
        since(&net, mark),
        vec![(c1, Activity::CalledOn { roll_call: false })]
    );

    // Calling on c2 (replacing) puts c1 off stage.
    let mark = net.activities.len();
    call_on(&mut net, c2);
    assert_eq!(
        since(&net, mark),
        vec![
            (c2, Activity::CalledOn { roll_call: false }),
            (c1, Activity::OffStage)
        ]
    );

    // Calling on the one already on stage is no new turn.
    let mark = net.activities.len();
    call_on(&mut net, c2);
    assert_eq!(since(&net, mark), vec![]);

    // Done ends the turn.
    net.floor("teacher", FloorCommand::Done { peer: c2 })
        .unwrap();
    assert_eq!(since(&net, mark), vec![(c2, Activity::OffStage)]);

    // The roll call (the harness's random number is 7: the second of two classrooms).
    let mark = net.activities.len();
    net.floor("teacher", FloorCommand::RollCall).unwrap();
    assert_eq!(
        since(&net, mark),
        vec![(c2, Activity::CalledOn { roll_call: true })]
    );

    // A classroom's attempt to call on is refused and reports nothing.
    let mark = net.activities.len();
    let refused = net.floor(
        "c1",
        FloorCommand::CallOn {
            peer: c1,
            replace: true,
        },
    );
    assert!(refused.is_err());
    assert_eq!(since(&net, mark), vec![]);

    // Removed while on stage: the leave says it all (PeerLeft), no separate OffStage.
    net.floor("teacher", FloorCommand::Remove { peer: c2 })
        .unwrap();
    assert_eq!(since(&net, mark), vec![]);
    assert!(
        net.sfu_events
            .iter()
            .any(|e| e.contains("PeerLeft") && e.contains(&format!("{c2:?}")))
    );
}

#[test]
fn a_network_cut_is_reported_with_its_silence_and_the_return() {
    let mut net = dedicated();
    let c1 = net.client("c1").peer;
    let i = net.idx("c1");
    let mark = net.activities.len();
    let cut_at = net.now.duration_since(net.start);
    net.clients[i].cut = true;
    net.run_for(Duration::from_secs(10));
    let got: Vec<_> = net.activities[mark..].to_vec();
    assert_eq!(got.len(), 1, "{got:?}");
    let (at, peer, activity) = &got[0];
    assert_eq!(*peer, c1);
    let Activity::Reconnecting { silent_ms } = activity else {
        panic!("expected Reconnecting, got {activity:?}");
    };
    // Reported after 4 s of silence, which started at the cut (give or take a packet).
    assert!((4000..4200).contains(silent_ms), "{silent_ms}");
    let began = at.saturating_sub(Duration::from_millis(*silent_ms));
    assert!(
        began.abs_diff(cut_at) < Duration::from_millis(200),
        "{began:?} vs {cut_at:?}"
    );

    net.clients[i].cut = false;
    net.run_for(Duration::from_secs(3));
    assert_eq!(since(&net, mark + 1), vec![(c1, Activity::Resumed)]);
}

#[test]
fn a_vanished_peer_is_reconnecting_then_leaves_disconnected() {
    let mut net = dedicated();
    let c2 = net.client("c2").peer;
    let mark = net.activities.len();
    net.vanish("c2");
    net.run_for(Duration::from_secs(40));
    let got = since(&net, mark);
    assert!(
        matches!(got.as_slice(), [(p, Activity::Reconnecting { .. })] if *p == c2),
        "{got:?}"
    );
    let left = format!("PeerLeft {{ peer: {c2:?}");
    let left = net
        .sfu_events
        .iter()
        .find(|e| e.starts_with(&left))
        .expect("c2 left");
    assert!(left.contains(&format!("{:?}", LeaveReason::Disconnected)));
}

#[test]
fn signaling_loss_and_return_are_reported_once_each() {
    let mut net = dedicated();
    let c1 = net.client("c1").peer;
    let mark = net.activities.len();
    let now = net.now;
    // A takeover by a second tab (attach without a loss) is no return.
    net.sfu.attach(now, c1).unwrap();
    net.sfu.detach(now, c1);
    // Detached twice (the second session also dropped): one loss.
    net.sfu.detach(now + Duration::from_secs(1), c1);
    net.sfu.attach(now + Duration::from_secs(2), c1).unwrap();
    net.drain_sfu();
    assert_eq!(
        since(&net, mark),
        vec![(c1, Activity::Detached), (c1, Activity::Attached)]
    );
}

#[test]
fn a_fresh_connection_is_reported_as_rejoined_not_joined() {
    let mut net = dedicated();
    let c1 = net.client("c1").peer;
    let mark = net.activities.len();
    // The client's page lost its peer connection and offers a new one under the same peer.
    let mut rtc = Rtc::builder().build(net.now);
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, _pending) = api.apply().expect("offer");
    let sources = [("0".to_owned(), TrackSource::Mic)];
    // The harness's client still holds the old connection: it must not answer the new one.
    net.hold_offers(true);
    net.sfu
        .rejoin(net.now, c1, &offer.to_sdp_string(), &sources)
        .expect("rejoin accepted");
    net.drain_sfu();
    assert_eq!(since(&net, mark), vec![(c1, Activity::Rejoined)]);
}

#[test]
fn a_peer_whose_media_never_connects_is_never_reported_joined() {
    let mut net = dedicated();
    let mark = net.activities.len();
    net.join("c3", Role::Classroom, MIC_CAM);
    // Its network is gone before the first check gets through.
    net.vanish("c3");
    net.run_for(Duration::from_secs(35));
    assert_eq!(since(&net, mark), vec![], "no presence without media");
    let c3 = net.client("c3").peer;
    assert!(
        net.sfu_events
            .iter()
            .any(|e| e.starts_with(&format!("PeerLeft {{ peer: {c3:?}"))
                && e.contains("Disconnected")),
        "removed after the connect timeout"
    );
}

#[test]
fn fresh_connections_without_media_leave_disconnected_at_the_end_of_the_first_grace() {
    let mut net = dedicated();
    let c1 = net.client("c1").peer;
    let i = net.idx("c1");
    let mark = net.activities.len();
    net.clients[i].cut = true;
    let cut_at = net.now;
    net.run_for(Duration::from_secs(8));
    // The page's signaling is back, its media path still blocked: it replaces its connection
    // again and again (every 8 s here), none of which gets through.
    for _ in 0..4 {
        net.rebuild("c1");
        assert_eq!(
            net.state_of("teacher")
                .and_then(|s| s.participants.into_iter().find(|p| p.info.peer_id == c1))
                .map(|p| p.reconnecting),
            Some(true),
            "shown reconnecting, not present"
        );
        net.run_for(Duration::from_secs(8));
        if net.sfu.peer_count() < 3 {
            break;
        }
    }
    let left = net
        .sfu_events
        .iter()
        .find(|e| e.starts_with(&format!("PeerLeft {{ peer: {c1:?}")))
        .expect("c1 left");
    assert!(left.contains("Disconnected"), "{left}");
    let gone = net.sfu.peer_count();
    assert_eq!(gone, 2);
    // Within the grace of its last datagram, not a grace per new connection.
    let elapsed = net.now.duration_since(cut_at);
    assert!(
        elapsed <= Duration::from_secs(33),
        "left {elapsed:?} after the cut"
    );
    let got = since(&net, mark);
    assert!(
        got.iter().all(|(_, a)| !matches!(a, Activity::Resumed)),
        "no return without media: {got:?}"
    );
    assert_eq!(
        got.iter()
            .filter(|(_, a)| matches!(a, Activity::Rejoined))
            .count(),
        got.len() - 1,
        "one Reconnecting, then only Rejoined: {got:?}"
    );
}

#[test]
fn a_fresh_connection_that_carries_media_is_the_return() {
    let mut net = dedicated();
    let c1 = net.client("c1").peer;
    let i = net.idx("c1");
    net.clients[i].cut = true;
    net.run_for(Duration::from_secs(10));
    let mark = net.activities.len();
    net.clients[i].cut = false;
    net.rebuild("c1");
    net.run_for(Duration::from_secs(4));
    assert_eq!(
        since(&net, mark),
        vec![(c1, Activity::Rejoined), (c1, Activity::Resumed)]
    );
    assert!(net.frames_from("teacher", "c1", ketang_sfu::TrackKind::Video) > 0);
}
