//! Shutting a shard down: every peer leaves with `shutdown`, and a player without signaling
//! (here any client; WHEP in the server) learns it from the DTLS close alert at once.

mod common;

use std::time::Duration;

use common::Net;
use ketang_sfu::{LeaveReason, Role, SfuEvent, SfuOutput, TrackKind, TrackSource};
use str0m::net::{Protocol, Receive};
use str0m::{Event, Input, Output};

#[test]
fn shutdown_says_goodbye_to_every_peer() {
    let mut net = Net::new();
    net.join(
        "teacher",
        Role::Teacher,
        &[TrackSource::Mic, TrackSource::Camera],
    );
    net.join("viewer", Role::Viewer, &[]);
    net.run_for(Duration::from_secs(2));
    assert!(net.frames_from("viewer", "teacher", TrackKind::Video) > 0);

    let now = net.now;
    net.sfu.shutdown(now, LeaveReason::Shutdown);
    let viewer = net.idx("viewer");
    let viewer_addr = net.clients[viewer].addr;
    let mut to_viewer = Vec::new();
    let mut left = Vec::new();
    let mut closed_rooms = 0;
    for _ in 0..10_000 {
        match net.sfu.poll_output() {
            SfuOutput::Timeout(_) => break,
            SfuOutput::Transmit(t) if t.destination == viewer_addr => to_viewer.push(t.contents),
            SfuOutput::Event(SfuEvent::PeerLeft { peer, reason, .. }) => left.push((peer, reason)),
            SfuOutput::Event(SfuEvent::RoomClosed { .. }) => closed_rooms += 1,
            _ => {}
        }
    }
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|(_, r)| *r == LeaveReason::Shutdown));
    assert_eq!(closed_rooms, 1);
    assert_eq!(net.sfu.peer_count(), 0);

    // The viewer's own stack reads the goodbye datagrams and reports the connection closed.
    let c = &mut net.clients[viewer];
    assert!(!to_viewer.is_empty(), "goodbye datagrams for the viewer");
    let mut closed = false;
    for data in &to_viewer {
        let Ok(contents) = data.as_slice().try_into() else {
            continue;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: net.sfu_addr,
                destination: viewer_addr,
                contents,
            },
        );
        // After the close alert the client may refuse what follows; that is fine here.
        let _ = c.rtc.handle_input(input);
        for _ in 0..1000 {
            match c.rtc.poll_output() {
                Ok(Output::Event(Event::Closed)) => closed = true,
                Ok(Output::Timeout(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    assert!(
        closed || !c.rtc.is_alive(),
        "the viewer saw the connection close"
    );
}
