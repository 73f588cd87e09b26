//! Floor control: who is on stage, who raised a hand, who is muted, and so who receives whom.
//!
//! This is the lesson's policy as a small pure struct. The SFU asks [`Floor::forwards`] when
//! a subscription is created and again whenever the floor changes, and gates forwarding on the
//! answer, so an off-stage classroom's media does not reach the other classrooms even if a
//! client asks for it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ids::PeerId;
use crate::lesson::role::{Role, TrackSource};

/// The kind of lesson a room holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum LessonMode {
    /// No lesson rules: everyone receives everyone their role allows (ad-hoc rooms).
    #[default]
    Open,
    /// 专递课堂: the teacher and remote classrooms; classrooms reach each other on stage only.
    Dedicated,
    /// 名师课堂: a master lesson observed by many; invited observers may speak.
    Master,
    /// 名校网络课堂: a broadcast; viewers ask questions, no media upstream.
    Broadcast,
}

impl LessonMode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            LessonMode::Open => "open",
            LessonMode::Dedicated => "dedicated",
            LessonMode::Master => "master",
            LessonMode::Broadcast => "broadcast",
        }
    }
}

/// Why a floor action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FloorError {
    /// The target cannot be called on (a viewer, a teacher, or not present).
    #[error("{0} cannot be called on")]
    NotCallable(PeerId),
    /// Hands are for classrooms and observers.
    #[error("a {0} cannot raise a hand")]
    NoHand(Role),
}

/// The floor state of one room.
#[derive(Debug, Clone, Default)]
pub struct Floor {
    mode: LessonMode,
    /// On stage, in the order called.
    stage: Vec<PeerId>,
    /// Raised hands in raise order, with the raise time (Unix ms).
    hands: Vec<(PeerId, u64)>,
    teacher_muted_mic: BTreeSet<PeerId>,
    teacher_stopped_video: BTreeSet<PeerId>,
    self_muted_mic: BTreeSet<PeerId>,
    self_stopped_video: BTreeSet<PeerId>,
    /// Observers invited to speak (master lessons): they may publish microphone and camera.
    speakers: BTreeSet<PeerId>,
    /// Everyone ever called on, for attendance.
    called: BTreeSet<PeerId>,
}

/// How many may be on stage at once; calling on another beyond this replaces the first.
pub const MAX_STAGE: usize = 4;

impl Floor {
    /// An empty floor for a lesson of `mode`.
    pub fn new(mode: LessonMode) -> Self {
        Floor {
            mode,
            ..Default::default()
        }
    }

    /// The lesson mode.
    pub fn mode(&self) -> LessonMode {
        self.mode
    }

    /// On stage, in call order.
    pub fn stage(&self) -> &[PeerId] {
        &self.stage
    }

    /// Raised hands in raise order.
    pub fn hands(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.hands.iter().map(|(p, _)| *p)
    }

    /// When `peer` raised its hand (Unix ms), if it did.
    pub fn hand_raised_at(&self, peer: PeerId) -> Option<u64> {
        self.hands.iter().find(|(p, _)| *p == peer).map(|(_, t)| *t)
    }

    /// Whether `peer` is on stage.
    pub fn on_stage(&self, peer: PeerId) -> bool {
        self.stage.contains(&peer)
    }

    /// Whether `peer` was ever called on in this room.
    pub fn was_called(&self, peer: PeerId) -> bool {
        self.called.contains(&peer)
    }

    /// Microphone muted, by the teacher or by the peer itself.
    pub fn mic_muted(&self, peer: PeerId) -> bool {
        self.teacher_muted_mic.contains(&peer) || self.self_muted_mic.contains(&peer)
    }

    /// Camera stopped, by the teacher or by the peer itself.
    pub fn video_stopped(&self, peer: PeerId) -> bool {
        self.teacher_stopped_video.contains(&peer) || self.self_stopped_video.contains(&peer)
    }

    /// Muted by the teacher (the classroom cannot undo it itself).
    pub fn muted_by_teacher(&self, peer: PeerId) -> (bool, bool) {
        (
            self.teacher_muted_mic.contains(&peer),
            self.teacher_stopped_video.contains(&peer),
        )
    }

    /// Whether `peer` (of `role`) may publish a track of `source` now.
    pub fn may_publish(&self, role: Role, peer: PeerId, source: TrackSource) -> bool {
        if self.mode == LessonMode::Broadcast && role != Role::Teacher {
            // A broadcast has one source: the teaching classroom.
            return role == Role::Classroom && role.may_publish(source);
        }
        role.may_publish(source)
            || (role == Role::Observer
                && self.speakers.contains(&peer)
                && source != TrackSource::Screen)
    }

    /// Whether a track of `source` published by `publisher` (`pub_role`) reaches `sub`
    /// (`sub_role`).
    pub fn forwards(
        &self,
        sub_role: Role,
        sub: PeerId,
        pub_role: Role,
        publisher: PeerId,
        source: TrackSource,
    ) -> bool {
        sub != publisher && self.reaches(sub_role, pub_role, publisher, source)
    }

    /// Whether a track of `source` published by `publisher` (`pub_role`) reaches a receiver of
    /// `sub_role` other than its publisher: the audience as the recording hears it.
    pub fn reaches(
        &self,
        sub_role: Role,
        pub_role: Role,
        publisher: PeerId,
        source: TrackSource,
    ) -> bool {
        if !self.may_publish(pub_role, publisher, source) {
            return false;
        }
        match source {
            TrackSource::Mic if self.mic_muted(publisher) => return false,
            TrackSource::Camera if self.video_stopped(publisher) => return false,
            _ => {}
        }
        if pub_role == Role::Teacher {
            return true;
        }
        if self.mode == LessonMode::Open {
            return sub_role.receives_from(pub_role);
        }
        // Lesson rules: the teacher hears every class; everyone else hears the stage.
        sub_role == Role::Teacher || self.on_stage(publisher)
    }

    // ---- changes; each returns whether anything changed ----

    /// `peer` raises its hand at `at_ms`.
    pub fn raise_hand(&mut self, role: Role, peer: PeerId, at_ms: u64) -> Result<bool, FloorError> {
        if !matches!(role, Role::Classroom | Role::Observer) {
            return Err(FloorError::NoHand(role));
        }
        if self.hand_raised_at(peer).is_some() || self.on_stage(peer) {
            return Ok(false);
        }
        self.hands.push((peer, at_ms));
        Ok(true)
    }

    /// `peer` lowers its hand.
    pub fn lower_hand(&mut self, peer: PeerId) -> bool {
        let before = self.hands.len();
        self.hands.retain(|(p, _)| *p != peer);
        before != self.hands.len()
    }

    /// The teacher calls on `peer` (`role`): it goes on stage and its hand is lowered. With
    /// `replace`, whoever was on stage steps down. An observer called on may speak.
    pub fn call_on(&mut self, peer: PeerId, role: Role, replace: bool) -> Result<bool, FloorError> {
        if !matches!(role, Role::Classroom | Role::Observer) {
            return Err(FloorError::NotCallable(peer));
        }
        let mut changed = self.lower_hand(peer);
        if replace {
            let others: Vec<PeerId> = self.stage.iter().copied().filter(|p| *p != peer).collect();
            for p in others {
                changed |= self.done(p);
            }
        }
        if !self.on_stage(peer) {
            if self.stage.len() >= MAX_STAGE {
                let first = self.stage[0];
                self.done(first);
            }
            self.stage.push(peer);
            changed = true;
        }
        self.called.insert(peer);
        if role == Role::Observer {
            changed |= self.speakers.insert(peer);
        }
        Ok(changed)
    }

    /// `peer` leaves the stage (and loses speaking rights).
    pub fn done(&mut self, peer: PeerId) -> bool {
        let before = self.stage.len();
        self.stage.retain(|p| *p != peer);
        let spoke = self.speakers.remove(&peer);
        before != self.stage.len() || spoke
    }

    /// Sets the teacher's mute of a peer's microphone and/or camera.
    pub fn set_teacher_mute(
        &mut self,
        peer: PeerId,
        mic: Option<bool>,
        video: Option<bool>,
    ) -> bool {
        let mut changed = false;
        if let Some(m) = mic {
            changed |= set(&mut self.teacher_muted_mic, peer, m);
        }
        if let Some(v) = video {
            changed |= set(&mut self.teacher_stopped_video, peer, v);
        }
        changed
    }

    /// Sets a peer's own mute state (it stops sending anyway; the SFU stops forwarding too).
    pub fn set_self_mute(&mut self, peer: PeerId, mic: Option<bool>, video: Option<bool>) -> bool {
        let mut changed = false;
        if let Some(m) = mic {
            changed |= set(&mut self.self_muted_mic, peer, m);
        }
        if let Some(v) = video {
            changed |= set(&mut self.self_stopped_video, peer, v);
        }
        changed
    }

    /// Picks a present classroom at random (`random` from the caller: the SFU has no RNG).
    pub fn roll_call(&self, present_classrooms: &[PeerId], random: u64) -> Option<PeerId> {
        if present_classrooms.is_empty() {
            return None;
        }
        Some(present_classrooms[(random % present_classrooms.len() as u64) as usize])
    }

    /// Forgets a peer that left.
    pub fn remove_peer(&mut self, peer: PeerId) {
        self.stage.retain(|p| *p != peer);
        self.hands.retain(|(p, _)| *p != peer);
        for s in [
            &mut self.teacher_muted_mic,
            &mut self.teacher_stopped_video,
            &mut self.self_muted_mic,
            &mut self.self_stopped_video,
            &mut self.speakers,
        ] {
            s.remove(&peer);
        }
    }
}

fn set(s: &mut BTreeSet<PeerId>, peer: PeerId, on: bool) -> bool {
    if on { s.insert(peer) } else { s.remove(&peer) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::*;
    use TrackSource::*;

    const T: PeerId = PeerId(1);
    const C1: PeerId = PeerId(2);
    const C2: PeerId = PeerId(3);
    const OBS: PeerId = PeerId(4);
    const V: PeerId = PeerId(5);

    #[test]
    fn dedicated_classrooms_reach_each_other_only_on_stage() {
        let mut f = Floor::new(LessonMode::Dedicated);
        // Everyone hears the teacher; the teacher hears every class.
        assert!(f.forwards(Classroom, C1, Teacher, T, Camera));
        assert!(f.forwards(Teacher, T, Classroom, C1, Mic));
        // Off stage, C1 does not reach C2 (nor observers).
        assert!(!f.forwards(Classroom, C2, Classroom, C1, Camera));
        assert!(!f.forwards(Observer, OBS, Classroom, C1, Mic));
        // Called on: C1 reaches everyone, its hand is down.
        f.raise_hand(Classroom, C1, 10).unwrap();
        assert!(f.call_on(C1, Classroom, true).unwrap());
        assert_eq!(f.hands().count(), 0);
        assert!(f.forwards(Classroom, C2, Classroom, C1, Camera));
        assert!(f.forwards(Viewer, V, Classroom, C1, Mic));
        // Done: back to the teacher only.
        assert!(f.done(C1));
        assert!(!f.forwards(Classroom, C2, Classroom, C1, Camera));
        assert!(f.forwards(Teacher, T, Classroom, C1, Camera));
        assert!(f.was_called(C1));
    }

    #[test]
    fn a_teacher_mute_silences_a_classroom_for_everyone() {
        let mut f = Floor::new(LessonMode::Dedicated);
        f.call_on(C1, Classroom, true).unwrap();
        assert!(f.set_teacher_mute(C1, Some(true), None));
        assert!(!f.forwards(Teacher, T, Classroom, C1, Mic));
        assert!(!f.forwards(Classroom, C2, Classroom, C1, Mic));
        // The camera still flows.
        assert!(f.forwards(Classroom, C2, Classroom, C1, Camera));
        assert_eq!(f.muted_by_teacher(C1), (true, false));
        assert!(f.set_teacher_mute(C1, Some(false), Some(true)));
        assert!(f.forwards(Teacher, T, Classroom, C1, Mic));
        assert!(!f.forwards(Teacher, T, Classroom, C1, Camera));
    }

    #[test]
    fn hands_queue_in_raise_order_and_only_for_classrooms_and_observers() {
        let mut f = Floor::new(LessonMode::Master);
        assert!(f.raise_hand(Observer, OBS, 5).unwrap());
        assert!(f.raise_hand(Classroom, C2, 7).unwrap());
        assert!(!f.raise_hand(Classroom, C2, 9).unwrap(), "twice is once");
        assert_eq!(f.hands().collect::<Vec<_>>(), vec![OBS, C2]);
        assert_eq!(f.raise_hand(Viewer, V, 1), Err(FloorError::NoHand(Viewer)));
        assert_eq!(
            f.raise_hand(Teacher, T, 1),
            Err(FloorError::NoHand(Teacher))
        );
        assert!(f.lower_hand(OBS));
        assert_eq!(f.hands().collect::<Vec<_>>(), vec![C2]);
    }

    #[test]
    fn an_invited_observer_may_speak_until_done() {
        let mut f = Floor::new(LessonMode::Master);
        assert!(!f.may_publish(Observer, OBS, Mic));
        f.call_on(OBS, Observer, true).unwrap();
        assert!(f.may_publish(Observer, OBS, Mic) && f.may_publish(Observer, OBS, Camera));
        assert!(!f.may_publish(Observer, OBS, Screen));
        assert!(f.forwards(Classroom, C1, Observer, OBS, Mic));
        f.done(OBS);
        assert!(!f.may_publish(Observer, OBS, Mic));
        assert!(!f.forwards(Teacher, T, Observer, OBS, Mic));
    }

    #[test]
    fn broadcast_viewers_never_publish() {
        let f = Floor::new(LessonMode::Broadcast);
        assert!(!f.may_publish(Viewer, V, Mic));
        assert!(f.may_publish(Teacher, T, Screen));
        assert!(f.forwards(Viewer, V, Teacher, T, Camera));
    }

    #[test]
    fn calling_on_replaces_the_stage_unless_asked_not_to() {
        let mut f = Floor::new(LessonMode::Dedicated);
        f.call_on(C1, Classroom, true).unwrap();
        f.call_on(C2, Classroom, true).unwrap();
        assert_eq!(f.stage(), &[C2]);
        f.call_on(C1, Classroom, false).unwrap();
        assert_eq!(f.stage(), &[C2, C1]);
        assert_eq!(f.call_on(T, Teacher, true), Err(FloorError::NotCallable(T)));
        assert_eq!(f.call_on(V, Viewer, true), Err(FloorError::NotCallable(V)));
    }

    #[test]
    fn open_rooms_follow_the_role_table() {
        let f = Floor::new(LessonMode::Open);
        assert!(f.forwards(Classroom, C2, Classroom, C1, Camera));
        assert!(!f.forwards(Viewer, V, Classroom, C1, Camera));
    }

    #[test]
    fn roll_call_picks_a_present_classroom_and_leaving_clears_the_floor() {
        let mut f = Floor::new(LessonMode::Dedicated);
        assert_eq!(f.roll_call(&[], 7), None);
        assert_eq!(f.roll_call(&[C1, C2], 7), Some(C2));
        assert_eq!(f.roll_call(&[C1, C2], 8), Some(C1));
        f.call_on(C1, Classroom, true).unwrap();
        f.set_teacher_mute(C1, Some(true), None);
        f.remove_peer(C1);
        assert!(f.stage().is_empty() && !f.mic_muted(C1));
        // Attendance still knows it was called on.
        assert!(f.was_called(C1));
    }
}
