//! `Room`: the peers of one lesson, the tracks they publish, and the lesson's floor. All of a
//! room lives on one shard, so routing a packet never leaves the thread.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::event::{
    HandInfo, ParticipantInfo, ParticipantState, Question, RoomSnapshot, RoomState, TrackInfo,
};
use crate::forward::track::TrackIn;
use crate::ids::{PeerId, RoomId, TrackId};
use crate::lesson::floor::{Floor, LessonMode};
use crate::lesson::role::{TrackSource, is_audience};
use crate::lesson::speaker::SpeakerDetector;

/// Questions kept per room; older answered ones are dropped first.
const MAX_QUESTIONS: usize = 200;

/// Open questions one watcher may have waiting at a time.
pub const MAX_OPEN_QUESTIONS: usize = 3;

/// Least time between two questions of one watcher, ms.
pub const ASK_EVERY_MS: u64 = 5_000;

#[derive(Debug)]
pub(crate) struct Room {
    pub id: RoomId,
    /// In joining order.
    pub peers: Vec<PeerId>,
    /// Ordered so that snapshots and offers list tracks deterministically.
    pub tracks: BTreeMap<TrackId, TrackIn>,
    pub floor: Floor,
    pub speaker: SpeakerDetector,
    pub questions: Vec<Question>,
    pub state_seq: u64,
    pub next_message_id: u64,
    /// The virtual subscriber that feeds the lesson recording, while recording.
    pub recorder: Option<crate::forward::recorder::RecorderTap>,
    /// Coalescing of room states (`state_push`).
    pub throttles: crate::lesson::state_push::StateThrottles,
}

impl Room {
    pub fn new(id: RoomId, mode: LessonMode) -> Self {
        Room {
            id,
            peers: Vec::new(),
            tracks: BTreeMap::new(),
            floor: Floor::new(mode),
            speaker: SpeakerDetector::new(Duration::from_millis(300)),
            questions: Vec::new(),
            state_seq: 0,
            next_message_id: 1,
            recorder: None,
            throttles: Default::default(),
        }
    }

    pub fn track_infos(&self) -> Vec<TrackInfo> {
        self.tracks.values().map(|t| t.info.clone()).collect()
    }

    pub fn snapshot(&self, participants: Vec<ParticipantInfo>) -> RoomSnapshot {
        RoomSnapshot {
            room: self.id.clone(),
            participants,
            tracks: self.track_infos(),
            transports: Vec::new(),
        }
    }

    /// The latest screen share in the room.
    pub fn screen(&self) -> Option<TrackInfo> {
        self.tracks
            .values()
            .rev()
            .find(|t| t.info.source == TrackSource::Screen)
            .map(|t| t.info.clone())
    }

    /// The room state, given each peer's info and whether it is reconnecting.
    pub fn state(&mut self, people: &[(ParticipantInfo, bool)]) -> RoomState {
        self.state_seq += 1;
        let f = &self.floor;
        let hands: Vec<HandInfo> = f
            .hands()
            .filter_map(|p| {
                f.hand_raised_at(p).map(|raised_at| HandInfo {
                    peer_id: p,
                    raised_at,
                })
            })
            .collect();
        let mut audience = 0;
        let mut participants = Vec::new();
        for (info, reconnecting) in people {
            let p = info.peer_id;
            let listed = !is_audience(info.role) || f.on_stage(p) || f.hand_raised_at(p).is_some();
            if is_audience(info.role) {
                audience += 1;
            }
            if !listed {
                continue;
            }
            let (muted_by_teacher, video_stopped_by_teacher) = f.muted_by_teacher(p);
            participants.push(ParticipantState {
                info: info.clone(),
                on_stage: f.on_stage(p),
                mic_muted: f.mic_muted(p),
                video_stopped: f.video_stopped(p),
                muted_by_teacher,
                video_stopped_by_teacher,
                reconnecting: *reconnecting,
            });
        }
        RoomState {
            seq: self.state_seq,
            mode: f.mode(),
            stage: f.stage().to_vec(),
            hands,
            participants,
            audience,
            screen: self.screen(),
            questions: self.questions.clone(),
        }
    }

    /// Why `asker` may not ask now, if it may not: too many open questions, or too soon
    /// after its last one.
    pub fn ask_refused(&self, asker: PeerId, now_ms: u64) -> Option<String> {
        let mine = || self.questions.iter().filter(|q| q.peer_id == asker);
        let open = mine()
            .filter(|q| q.status == crate::event::QuestionStatus::Open)
            .count();
        if open >= MAX_OPEN_QUESTIONS {
            return Some(format!(
                "{MAX_OPEN_QUESTIONS} of your questions are still open; wait for the teacher"
            ));
        }
        let last = mine().map(|q| q.at).max()?;
        (now_ms < last.saturating_add(ASK_EVERY_MS)).then(|| {
            format!(
                "one question every {} seconds; question dropped",
                ASK_EVERY_MS / 1000
            )
        })
    }

    pub fn add_question(&mut self, q: Question) {
        if self.questions.len() >= MAX_QUESTIONS {
            let drop = self
                .questions
                .iter()
                .position(|q| q.status != crate::event::QuestionStatus::Open)
                .unwrap_or(0);
            self.questions.remove(drop);
        }
        self.questions.push(q);
    }

    pub fn next_id(&mut self) -> u64 {
        let id = self.next_message_id;
        self.next_message_id += 1;
        id
    }
}
