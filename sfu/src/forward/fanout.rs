//! One published packet, fanned out: to every subscriber of its track, to the active speaker
//! detector, and to the recorder tap; keyframes requested once for all who wait for one.

use std::collections::BTreeSet;
use std::time::Instant;

use str0m::format::Codec;
use str0m::media::KeyframeRequestKind;

use crate::effects::{Effects, Forward};
use crate::event::{PeerEvent, SfuOutput, TrackInfo};
use crate::event::{RecordEvent, VideoCodec};
use crate::forward::keyframe::{self, PayloadInfo};
use crate::forward::packet::Packet;
use crate::forward::recorder::RecorderTap;
use crate::forward::rewrite::SourceFields;
use crate::forward::sink::SinkOffer;
use crate::forward::track::TrackIn;
use crate::forward::write::ForwardResult;
use crate::ids::{PeerId, RoomId, TrackId};
use crate::lesson::role::{Role, TrackKind, TrackSource};
use crate::session::peer::Peer;
use crate::sfu::{Sfu, guard};

/// What a packet is, worked out once before it is offered to anyone.
pub(crate) struct Arrival {
    /// Its simulcast layer.
    pub layer: usize,
    /// The track's best and lowest layers flowing now.
    pub best: Option<usize>,
    pub lowest: Option<usize>,
    pub kind: TrackKind,
    pub info: PayloadInfo,
}

/// Keyframes wanted of a track's layers, one bit per layer: requested once for all who wait.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct KeyframeWants(u32);

impl KeyframeWants {
    pub fn add(&mut self, layer: usize) {
        self.0 |= 1 << layer.min(31);
    }

    fn wants(self, layer: usize) -> bool {
        self.0 & (1 << layer.min(31)) != 0
    }
}

impl Sfu {
    /// Sends one published packet to every subscriber of its track and to the recorder: the
    /// track accounts it, the speaker detector hears it, each subscription forwards it, the
    /// recorder tap records it, and the publisher is asked once for the keyframes they wait for.
    pub(crate) fn fan_out(&mut self, now: Instant, f: Forward) {
        let Sfu {
            peers,
            rooms,
            fx,
            config,
            timers,
            ..
        } = self;
        let Some(room) = peers.get(&f.publisher).and_then(|p| rooms.get_mut(&p.room)) else {
            return;
        };
        let Some(track) = room.tracks.get_mut(&f.track) else {
            return;
        };
        let packet = Packet::of(&f);
        let arrival = account(track, &f, &packet, now, config.keyframe_interval, fx);
        if arrival.kind == TrackKind::Audio
            && let Some(level) = f.packet.header.ext_vals.audio_level
            && !room.floor.mic_muted(f.publisher)
            && let Some(speaker) = room.speaker.observe(f.publisher, level, now)
        {
            let event = PeerEvent::ActiveSpeaker {
                peer: Some(speaker),
            };
            for p in &room.peers {
                fx.send_to_peer(*p, event.clone());
            }
        }
        let mut wants = KeyframeWants::default();
        for sid in &track.subscribers {
            let Some(sp) = peers.get_mut(sid) else {
                continue;
            };
            let mut r = guard(sp, fx, |p, fx| {
                p.forward(&packet, arrival.layer, arrival.lowest, &arrival.info, fx)
            });
            if let Some(ForwardResult::NeedKeyframe(l)) = r {
                let window = track.replay_window(config.keyframe_interval);
                r = replay_recent(sp, track, l, &arrival, now, window, fx);
            }
            match r {
                Some(ForwardResult::NeedKeyframe(l)) => wants.add(l),
                // A write moves the subscriber's pacer deadline.
                Some(ForwardResult::Sent) => {
                    timers.push(sp.next_timeout, *sid);
                    fx.stats.on_forwarded(arrival.kind);
                }
                _ => {}
            }
        }
        let retarget = match room.recorder.as_mut() {
            Some(tap) => tap.offer(&room.id, &f, &arrival, &mut wants, fx),
            None => false,
        };
        let room_id = room.id.clone();
        for l in 0..track.layers.len().min(32) {
            if wants.wants(l) && track.allow_keyframe_request(l, now) {
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
            role_of(t.peer_id)
                .is_some_and(|r| room.floor.reaches(Role::Observer, r, t.peer_id, t.source))
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

/// A subscription waiting for its first picture of `layer` starts from the layer's recent
/// keyframe if there is one (`forward/recent.rs`): the copy is replayed to it in order. Returns
/// what the replay did, or `NeedKeyframe` again when there is nothing to replay.
///
/// Only a first picture: a subscription that already shows something (an upgrade, a resume
/// after congestion) waits for a fresh keyframe rather than take a burst.
fn replay_recent(
    sp: &mut Peer,
    track: &TrackIn,
    layer: usize,
    arrival: &Arrival,
    now: Instant,
    window: std::time::Duration,
    fx: &mut Effects,
) -> Option<ForwardResult> {
    let waiting = Some(ForwardResult::NeedKeyframe(layer));
    let first_picture = sp
        .subs
        .get(&track.info.track_id)
        .is_some_and(|s| !s.started());
    let kept = track
        .layers
        .get(layer)
        .and_then(|l| l.recent.replayable(now, window));
    let (true, Some(kept)) = (first_picture, kept) else {
        return waiting;
    };
    let mut result = waiting;
    for (p, info) in catch_up(kept, now) {
        let r = guard(sp, fx, |s, fx| {
            s.forward(&p, layer, arrival.lowest, &info, fx)
        });
        match r {
            Some(ForwardResult::Sent) => result = r,
            // The copy does not start where the subscription can: leave it to a request.
            Some(ForwardResult::NeedKeyframe(_)) | None => return waiting,
            Some(ForwardResult::Dropped) => {}
        }
    }
    result
}

/// The kept packets as a replay sends them: now (str0m's pacer and queue measure from here),
/// and with the frames before the latest one moved to just before it (one RTP tick apart), so
/// the player decodes them at once and shows the latest, live, without first playing up to a
/// window of the past and keeping that as added delay.
fn catch_up(kept: &[(Packet, PayloadInfo)], now: Instant) -> Vec<(Packet, PayloadInfo)> {
    let Some(latest) = kept.last().map(|(p, _)| p.ts) else {
        return Vec::new();
    };
    let mut out: Vec<(Packet, PayloadInfo)> = Vec::with_capacity(kept.len());
    let (mut frames_after, mut later_ts) = (0u32, latest);
    for (p, info) in kept.iter().rev() {
        if p.ts != later_ts {
            frames_after += 1;
            later_ts = p.ts;
        }
        let ts = latest.wrapping_sub(frames_after);
        out.push((
            Packet {
                ts,
                arrival: now,
                ..p.clone()
            },
            *info,
        ));
    }
    out.reverse();
    out
}

/// The track counts the packet (rates per layer; a layer that starts flowing makes its
/// subscribers' allocation due at once) and its payload is inspected once for everyone; video
/// layers keep their recent keyframe.
fn account(
    track: &mut TrackIn,
    f: &Forward,
    packet: &Packet,
    now: Instant,
    keyframe_interval: std::time::Duration,
    fx: &mut Effects,
) -> Arrival {
    let layer = track.layer_of(f.rid, keyframe_interval);
    let payload = f.packet.payload.len();
    let wire = wire_bytes(f.packet.header.header_len, payload);
    if track.on_packet(layer, now, payload, wire) {
        // Subscribers may want this layer: plan at once rather than at the next round.
        fx.allocate.extend(track.subscribers.iter().copied());
    }
    let kind = track.info.kind;
    let info = match kind {
        TrackKind::Video => keyframe::inspect(f.params.spec().codec, &f.packet.payload),
        TrackKind::Audio => PayloadInfo {
            keyframe_start: true,
            vp8: None,
        },
    };
    let window = track.replay_window(keyframe_interval);
    if kind == TrackKind::Video
        && let Some(l) = track.layers.get_mut(layer)
    {
        l.recent.on_packet(packet, &info, window);
    }
    Arrival {
        layer,
        best: track.best_layer(),
        lowest: track.layers.iter().position(|l| l.active),
        kind,
        info,
    }
}

impl RecorderTap {
    /// Offers a packet of the room to the recording: a microphone it mixes passes through; the
    /// video it follows is rewritten into one continuous stream (waiting for a keyframe of a
    /// new source, added to `wants`). True if the followed video moved to another layer.
    fn offer(
        &mut self,
        room: &RoomId,
        f: &Forward,
        arrival: &Arrival,
        wants: &mut KeyframeWants,
        fx: &mut Effects,
    ) -> bool {
        let event = match arrival.kind {
            TrackKind::Audio if self.audio.contains(&f.track) => RecordEvent::Audio {
                room: room.clone(),
                track: f.track,
                peer: f.publisher,
                seq: *f.packet.seq_no,
                ts: f.packet.header.timestamp,
                payload: f.packet.payload.clone(),
                at: f.packet.timestamp,
            },
            TrackKind::Audio => return false,
            TrackKind::Video => {
                // The recording follows the best layer as it comes and goes.
                let retarget = self.video_track() == Some(f.track)
                    && arrival
                        .best
                        .is_some_and(|b| self.set_video(Some((f.track, b))));
                let src = SourceFields {
                    seq: *f.packet.seq_no,
                    ts: f.packet.header.timestamp,
                    arrival: f.packet.timestamp,
                    picture_id: None,
                    tl0: None,
                };
                let keyframe = arrival.info.keyframe_start;
                match self.on_video(f.track, arrival.layer, keyframe, src) {
                    SinkOffer::Write { rw, .. } => {
                        fx.out.push_back(SfuOutput::Record(RecordEvent::Video {
                            room: room.clone(),
                            track: f.track,
                            codec: video_codec(f.params.spec().codec),
                            seq: rw.seq,
                            ts: rw.ts,
                            marker: f.packet.header.marker,
                            keyframe,
                            payload: f.packet.payload.clone(),
                            at: f.packet.timestamp,
                        }));
                    }
                    SinkOffer::NeedKeyframe => wants.add(arrival.layer),
                    SinkOffer::Drop => {}
                }
                return retarget;
            }
        };
        fx.out.push_back(SfuOutput::Record(event));
        false
    }
}

fn video_codec(codec: Codec) -> VideoCodec {
    match codec {
        Codec::Vp9 => VideoCodec::Vp9,
        Codec::H264 => VideoCodec::H264,
        _ => VideoCodec::Vp8,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use str0m::format::{CodecSpec, FormatParams, PayloadParams};
    use str0m::media::Frequency;

    fn packet(at: Instant, seq: u64, ts: u32) -> (Packet, PayloadInfo) {
        let spec = CodecSpec {
            codec: Codec::Vp8,
            clock_rate: Frequency::NINETY_KHZ,
            channels: None,
            format: FormatParams::default(),
        };
        let p = Packet {
            track: TrackId(1),
            params: PayloadParams::new(96.into(), None, spec),
            seq,
            ts,
            marker: false,
            payload: vec![0u8; 4].into(),
            audio_level: None,
            voice_activity: None,
            video_orientation: None,
            arrival: at,
        };
        let info = PayloadInfo {
            keyframe_start: seq == 10,
            vp8: None,
        };
        (p, info)
    }

    #[test]
    fn a_replay_moves_the_past_frames_just_before_the_latest_and_sends_them_now() {
        let t0 = Instant::now();
        // A keyframe in two packets, then two delta frames 33 ms apart.
        let kept = [
            packet(t0, 10, 1000),
            packet(t0, 11, 1000),
            packet(t0 + Duration::from_millis(33), 12, 3970),
            packet(t0 + Duration::from_millis(66), 13, 6940),
        ];
        let now = t0 + Duration::from_millis(70);
        let out = catch_up(&kept, now);
        let ts: Vec<u32> = out.iter().map(|(p, _)| p.ts).collect();
        // The latest frame keeps its timestamp (live packets follow it); each earlier frame is
        // one tick before the next; packets of one frame share theirs.
        assert_eq!(ts, [6938, 6938, 6939, 6940]);
        assert!(out.iter().all(|(p, _)| p.arrival == now));
        let seqs: Vec<u64> = out.iter().map(|(p, _)| p.seq).collect();
        assert_eq!(seqs, [10, 11, 12, 13]);
        assert!(out[0].1.keyframe_start);
        assert!(catch_up(&[], now).is_empty());
    }
}
