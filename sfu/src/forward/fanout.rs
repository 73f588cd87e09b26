//! One published packet, fanned out: to every subscriber of its track, to the active speaker
//! detector, and to the recorder tap; keyframes requested once for all who wait for one.

use std::collections::BTreeSet;
use std::time::Instant;

use str0m::format::Codec;
use str0m::media::KeyframeRequestKind;

use crate::effects::Forward;
use crate::event::{PeerEvent, SfuOutput, TrackInfo};
use crate::event::{RecordEvent, VideoCodec};
use crate::forward::keyframe::{self, PayloadInfo};
use crate::forward::recorder::{RecorderTap, TapVideo};
use crate::forward::rewrite::SourceFields;
use crate::forward::write::ForwardResult;
use crate::ids::{PeerId, RoomId, TrackId};
use crate::lesson::role::{Role, TrackKind, TrackSource};
use crate::sfu::{Sfu, guard};

/// The recorder listens like an audience member who is never the publisher.
const RECORDER: PeerId = PeerId(0);

impl Sfu {
    /// Sends one published packet to every subscriber of its track.
    pub(crate) fn fan_out(&mut self, now: Instant, f: Forward) {
        let Sfu {
            peers,
            rooms,
            fx,
            config,
            timers,
            ..
        } = self;
        let Some(room_id) = peers.get(&f.publisher).map(|p| p.room.clone()) else {
            return;
        };
        let Some(room) = rooms.get_mut(&room_id) else {
            return;
        };
        let Some(track) = room.tracks.get_mut(&f.track) else {
            return;
        };
        let layer = track.layer_of(f.rid, config.keyframe_interval);
        let payload = f.packet.payload.len();
        let wire = wire_bytes(f.packet.header.header_len, payload);
        if track.on_packet(layer, now, payload, wire) {
            // Subscribers may want this layer: plan at once rather than at the next round.
            fx.allocate.extend(track.subscribers.iter().copied());
        }
        let best = track.best_layer();
        let lowest = track.layers.iter().position(|l| l.active);
        let kind = track.info.kind;
        let info = match kind {
            TrackKind::Video => keyframe::inspect(f.params.spec().codec, &f.packet.payload),
            TrackKind::Audio => PayloadInfo {
                keyframe_start: true,
                vp8: None,
            },
        };
        if kind == TrackKind::Audio
            && let Some(level) = f.packet.header.ext_vals.audio_level
            && !room.floor.mic_muted(f.publisher)
            && let Some(speaker) = room.speaker.observe(f.publisher, level, now)
        {
            for p in &room.peers {
                fx.send_to_peer(
                    *p,
                    PeerEvent::ActiveSpeaker {
                        peer: Some(speaker),
                    },
                );
            }
        }
        let mut need_keyframe: u32 = 0;
        for sid in &track.subscribers {
            let Some(sp) = peers.get_mut(sid) else {
                continue;
            };
            let r = guard(sp, fx, |p, fx| p.forward(&f, layer, lowest, &info, fx));
            match r {
                Some(ForwardResult::NeedKeyframe(l)) => need_keyframe |= 1 << l.min(31),
                // A write moves the subscriber's pacer deadline.
                Some(ForwardResult::Sent) => {
                    timers.push(sp.next_timeout, *sid);
                    fx.stats.on_forwarded(kind);
                }
                _ => {}
            }
        }

        let mut retarget = false;
        if let Some(tap) = room.recorder.as_mut() {
            match kind {
                TrackKind::Audio if tap.audio.contains(&f.track) => {
                    fx.out.push_back(SfuOutput::Record(RecordEvent::Audio {
                        room: room_id.clone(),
                        track: f.track,
                        peer: f.publisher,
                        seq: *f.packet.seq_no,
                        ts: f.packet.header.timestamp,
                        payload: f.packet.payload.clone(),
                        at: f.packet.timestamp,
                    }))
                }
                TrackKind::Video => {
                    // The recording follows the best layer as it comes and goes.
                    if tap.video_track() == Some(f.track)
                        && let Some(b) = best
                        && tap.set_video(Some((f.track, b)))
                    {
                        retarget = true;
                    }
                    let src = SourceFields {
                        seq: *f.packet.seq_no,
                        ts: f.packet.header.timestamp,
                        arrival: f.packet.timestamp,
                        picture_id: None,
                        tl0: None,
                    };
                    match tap.on_video(f.track, layer, info.keyframe_start, src) {
                        TapVideo::Record { seq, ts } => {
                            let codec = match f.params.spec().codec {
                                Codec::Vp9 => VideoCodec::Vp9,
                                Codec::H264 => VideoCodec::H264,
                                _ => VideoCodec::Vp8,
                            };
                            fx.out.push_back(SfuOutput::Record(RecordEvent::Video {
                                room: room_id.clone(),
                                track: f.track,
                                codec,
                                seq,
                                ts,
                                marker: f.packet.header.marker,
                                keyframe: info.keyframe_start,
                                payload: f.packet.payload.clone(),
                                at: f.packet.timestamp,
                            }))
                        }
                        TapVideo::NeedKeyframe => need_keyframe |= 1 << layer.min(31),
                        TapVideo::Drop => {}
                    }
                }
                _ => {}
            }
        }

        for l in 0..track.layers.len().min(32) {
            if need_keyframe & (1 << l) != 0 && track.allow_keyframe_request(l, now) {
                let (mid, rid) = (track.mid, track.rid_of(l));
                if let Some(p) = peers.get_mut(&f.publisher) {
                    guard(p, fx, |p, fx| {
                        p.request_keyframe(mid, rid, KeyframeRequestKind::Pli, fx)
                    });
                }
            }
        }
        self.schedule(f.publisher);
        if retarget {
            self.announce_recording_sources(&room_id);
        }
    }

    /// Starts or stops the recorder tap of a room.
    pub fn set_recording(&mut self, now: Instant, room_id: &RoomId, on: bool) -> bool {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return false;
        };
        match (on, room.recorder.is_some()) {
            (true, false) => {
                room.recorder = Some(RecorderTap::new());
                self.fx
                    .out
                    .push_back(SfuOutput::Record(RecordEvent::Started {
                        room: room_id.clone(),
                    }));
                self.refresh_recorder(room_id);
            }
            (false, true) => {
                room.recorder = None;
                self.fx
                    .out
                    .push_back(SfuOutput::Record(RecordEvent::Stopped {
                        room: room_id.clone(),
                    }));
            }
            _ => {}
        }
        self.process(now);
        true
    }

    /// Whether a room is being recorded.
    pub fn is_recording(&self, room: &RoomId) -> bool {
        self.rooms.get(room).is_some_and(|r| r.recorder.is_some())
    }

    /// Points the recorder at what the lesson shows now (after the floor or tracks changed).
    pub(crate) fn refresh_recorder(&mut self, room_id: &RoomId) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        if room.recorder.is_none() {
            return;
        }
        let role_of = |p: PeerId| self.peers.get(&p).map(|p| p.info.role);
        let heard = |t: &TrackInfo| {
            role_of(t.peer_id).is_some_and(|r| {
                room.floor
                    .forwards(Role::Observer, RECORDER, r, t.peer_id, t.source)
            })
        };
        let audio: BTreeSet<TrackId> = room
            .tracks
            .values()
            .filter(|t| t.info.source == TrackSource::Mic && heard(&t.info))
            .map(|t| t.info.track_id)
            .collect();
        let camera_of = |peer: PeerId| {
            room.tracks
                .values()
                .find(|t| t.info.peer_id == peer && t.info.source == TrackSource::Camera)
                .filter(|t| heard(&t.info))
        };
        let screen = room
            .tracks
            .values()
            .rev()
            .find(|t| t.info.source == TrackSource::Screen && heard(&t.info));
        let on_stage = room.floor.stage().iter().find_map(|p| camera_of(*p));
        let teacher = room
            .peers
            .iter()
            .filter(|p| role_of(**p) == Some(Role::Teacher))
            .find_map(|p| camera_of(*p));
        let video = screen.or(on_stage).or(teacher).map(|t| {
            (
                t.info.track_id,
                t.best_layer().unwrap_or(t.layers.len() - 1),
            )
        });
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let Some(tap) = room.recorder.as_mut() else {
            return;
        };
        let changed = tap.set_video(video) | (tap.audio != audio);
        tap.audio = audio;
        let track = tap.video_track();
        self.set_recorder_want(room_id, track);
        if changed {
            self.announce_recording_sources(room_id);
        }
    }

    fn announce_recording_sources(&mut self, room_id: &RoomId) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let Some(tap) = room.recorder.as_ref() else {
            return;
        };
        let info = |t: &TrackId| room.tracks.get(t).map(|t| t.info.clone());
        let video = tap.video_track().and_then(|t| info(&t));
        let audio = tap.audio.iter().filter_map(info).collect();
        self.fx
            .out
            .push_back(SfuOutput::Record(RecordEvent::Sources {
                room: room_id.clone(),
                video,
                audio,
            }));
    }
}

/// Bytes a forwarded packet adds to the path to a subscriber beyond its RTP header and
/// payload: the SRTP tag (16 with AEAD-AES-GCM, 10 with the HMAC suite), UDP (8) and IPv4 (20).
/// A configured downlink is a link's capacity, counted in IP packets, and on the 300 packets
/// per second of a 2 Mbit/s lesson these bytes are 100 kbit/s: the allocator must count them.
const WIRE_OVERHEAD: usize = 16 + 8 + 20;

/// What a packet with this RTP header and payload costs on the subscriber's link. The
/// publisher's header stands in for the one str0m writes, which carries similar extensions.
pub(crate) fn wire_bytes(header_len: usize, payload_len: usize) -> usize {
    header_len + payload_len + WIRE_OVERHEAD
}
