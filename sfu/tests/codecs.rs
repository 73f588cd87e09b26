//! No black tiles (issue 15 item 4): a subscriber that cannot decode a publisher's codec (an
//! H.264 camera, a client that offered only VP8) is told so with `CodecMismatch` instead of
//! getting an empty video, and the publisher is told who cannot see her camera; a subscriber
//! that has the codec gets the pictures.

mod common;

use std::time::Duration;

use common::Net;
use ketang_sfu::{PeerEvent, Role, TrackKind, TrackSource};
use str0m::format::Codec;

fn mismatches(events: &[PeerEvent]) -> Vec<(ketang_sfu::PeerId, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            PeerEvent::CodecMismatch { peer, codec, .. } => Some((*peer, codec.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_vp8_only_subscriber_of_an_h264_camera_is_told_within_two_seconds() {
    let mut net = Net::new();
    net.video_codec = Some(Codec::H264);
    net.join(
        "teacher",
        Role::Teacher,
        &[TrackSource::Mic, TrackSource::Camera],
    );
    net.video_codec = Some(Codec::Vp8);
    net.join("vp8-room", Role::Classroom, &[]);
    net.video_codec = None;
    net.join("h264-room", Role::Classroom, &[]);
    net.run_for(Duration::from_secs(2));

    let teacher = net.client("teacher").peer;
    let vp8 = net.client("vp8-room");
    assert_eq!(
        mismatches(&vp8.events),
        [(teacher, "H264".to_owned())],
        "the VP8-only classroom is told, once"
    );
    assert_eq!(net.frames_from("vp8-room", "teacher", TrackKind::Video), 0);
    assert!(
        net.frames_from("vp8-room", "teacher", TrackKind::Audio) > 50,
        "its sound still comes"
    );
    let told: Vec<_> = net
        .client("teacher")
        .events
        .iter()
        .filter_map(|e| match e {
            PeerEvent::ViewerCodecMismatch { viewer, codec, .. } => Some((*viewer, codec.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        told,
        [(vp8.peer, "H264".to_owned())],
        "the teacher knows who"
    );

    // A classroom that decodes H.264 sees the camera and is told nothing.
    assert!(mismatches(&net.client("h264-room").events).is_empty());
    let frames = net.frames_from("h264-room", "teacher", TrackKind::Video);
    assert!(frames > 30, "{frames} H.264 frames");
}
