//! Lesson control: the floor actions of participants (hands, calling on, mutes, roll call,
//! chat, questions, removal), and keeping forwarding and everyone's view in step with them.

use std::time::Instant;

use crate::error::SfuError;
use crate::event::{Activity, ChatMessage, LeaveReason, PeerEvent, Question, QuestionStatus};
use crate::ids::{PeerId, RoomId};
use crate::lesson::role::Role;
use crate::lesson::role::is_audience;
use crate::lesson::state_push::StateScope;
use crate::sfu::Sfu;

/// Longest chat message or question, in characters.
pub const MAX_TEXT_CHARS: usize = 500;

/// A floor action by a participant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FloorCommand {
    /// A classroom or observer asks to speak.
    RaiseHand,
    /// It no longer does.
    LowerHand,
    /// Teacher: put `peer` on stage (with `replace`, whoever was there steps down).
    CallOn {
        /// Who.
        peer: PeerId,
        /// Replace the stage.
        replace: bool,
    },
    /// Teacher: take `peer` off stage.
    Done {
        /// Who.
        peer: PeerId,
    },
    /// Teacher: call on a present classroom picked at random.
    RollCall,
    /// Teacher: mute or unmute a participant's microphone and/or camera.
    Mute {
        /// Who.
        peer: PeerId,
        /// Microphone muted (None: unchanged).
        mic: Option<bool>,
        /// Camera stopped (None: unchanged).
        video: Option<bool>,
    },
    /// Teacher: mute every classroom's microphone.
    MuteAllClassrooms,
    /// A participant mutes or unmutes itself (a teacher's mute cannot be undone this way).
    SelfMute {
        /// Microphone muted (None: unchanged).
        mic: Option<bool>,
        /// Camera stopped (None: unchanged).
        video: Option<bool>,
    },
    /// A chat message to the room.
    Chat {
        /// Plain text, validated by the caller (length, control characters).
        text: String,
    },
    /// A viewer's question (broadcast lessons; any watcher may ask).
    Ask {
        /// Plain text.
        text: String,
    },
    /// Teacher: mark a question answered (`true`) or dismissed (`false`).
    SettleQuestion {
        /// The question.
        id: u64,
        /// Answered or dismissed.
        answered: bool,
    },
    /// Teacher: remove a participant from the lesson.
    Remove {
        /// Who.
        peer: PeerId,
    },
}

/// Wall-clock time and randomness for a floor action (the SFU reads neither itself).
#[derive(Debug, Clone, Copy)]
pub struct FloorContext {
    /// Unix milliseconds now.
    pub now_ms: u64,
    /// A random number (for the roll call).
    pub random: u64,
}

/// What a floor action did, for the application's records (attendance, bans).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FloorOutcome {
    /// Applied.
    Done,
    /// `peer` was called on (directly or by roll call).
    CalledOn(PeerId),
    /// `peer` was removed from the lesson.
    Removed(PeerId),
}

fn teacher_only(role: Role, what: &'static str) -> Result<(), SfuError> {
    if role == Role::Teacher {
        Ok(())
    } else {
        Err(SfuError::Forbidden(format!("only the teacher may {what}")))
    }
}

/// Who acts on the floor.
struct Actor {
    peer: PeerId,
    role: Role,
    name: String,
    room: RoomId,
}

/// What a floor action did: whether forwarding and the room state must follow, who must see
/// the new state, and what the caller is told.
struct Applied {
    changed: bool,
    scope: StateScope,
    outcome: FloorOutcome,
}

impl Applied {
    fn changed(changed: bool) -> Applied {
        Applied {
            changed,
            scope: StateScope::Everyone,
            outcome: FloorOutcome::Done,
        }
    }

    fn with(mut self, outcome: FloorOutcome) -> Applied {
        self.outcome = outcome;
        self
    }

    fn seen_by(mut self, scope: StateScope) -> Applied {
        self.scope = scope;
        self
    }
}

fn refused(e: impl std::fmt::Display) -> SfuError {
    SfuError::Forbidden(e.to_string())
}

impl Sfu {
    /// Applies a floor action of `actor`.
    pub fn floor(
        &mut self,
        now: Instant,
        actor: PeerId,
        cmd: FloorCommand,
        ctx: FloorContext,
    ) -> Result<FloorOutcome, SfuError> {
        self.last_now = self.last_now.max(now);
        let a = self.peers.get(&actor).ok_or(SfuError::UnknownPeer(actor))?;
        let actor = Actor {
            peer: actor,
            role: a.info.role,
            name: a.info.name.clone(),
            room: a.room.clone(),
        };
        let stage_before = self.stage_of(&actor.room);
        let roll_call = cmd == FloorCommand::RollCall;
        let applied = self.apply_floor(now, &actor, cmd, ctx)?;
        if applied.changed {
            self.refresh_forwarding(&actor.room);
            self.push_state_to(&actor.room, applied.scope);
        }
        self.report_stage(&actor.room, &stage_before, roll_call);
        self.process(now);
        Ok(applied.outcome)
    }

    fn apply_floor(
        &mut self,
        now: Instant,
        a: &Actor,
        cmd: FloorCommand,
        ctx: FloorContext,
    ) -> Result<Applied, SfuError> {
        let (role, room) = (a.role, &a.room);
        Ok(match cmd {
            FloorCommand::RaiseHand => Applied::changed(
                self.room_mut(room)?
                    .floor
                    .raise_hand(role, a.peer, ctx.now_ms)
                    .map_err(refused)?,
            ),
            FloorCommand::LowerHand => {
                Applied::changed(self.room_mut(room)?.floor.lower_hand(a.peer))
            }
            FloorCommand::CallOn { peer, replace } => {
                teacher_only(role, "call on a classroom")?;
                let r = self.target_role(room, peer)?;
                let floor = &mut self.room_mut(room)?.floor;
                Applied::changed(floor.call_on(peer, r, replace).map_err(refused)?)
                    .with(FloorOutcome::CalledOn(peer))
            }
            FloorCommand::Done { peer } => {
                teacher_only(role, "end a turn")?;
                Applied::changed(self.room_mut(room)?.floor.done(peer))
            }
            FloorCommand::RollCall => {
                teacher_only(role, "hold a roll call")?;
                self.roll_call(room, ctx)?
            }
            FloorCommand::Mute { peer, mic, video } => {
                teacher_only(role, "mute others")?;
                self.target_role(room, peer)?;
                let floor = &mut self.room_mut(room)?.floor;
                Applied::changed(floor.set_teacher_mute(peer, mic, video))
            }
            FloorCommand::MuteAllClassrooms => {
                teacher_only(role, "mute all classrooms")?;
                let classrooms = self.classrooms_in(room);
                let floor = &mut self.room_mut(room)?.floor;
                let mut changed = false;
                for c in classrooms {
                    changed |= floor.set_teacher_mute(c, Some(true), None);
                }
                Applied::changed(changed)
            }
            FloorCommand::SelfMute { mic, video } => {
                Applied::changed(self.room_mut(room)?.floor.set_self_mute(a.peer, mic, video))
            }
            FloorCommand::Chat { text } => self.chat(a, text, ctx)?,
            FloorCommand::Ask { text } => self.ask(a, text, ctx)?,
            FloorCommand::SettleQuestion { id, answered } => {
                teacher_only(role, "settle questions")?;
                self.settle_question(room, id, answered)?
            }
            FloorCommand::Remove { peer } => {
                teacher_only(role, "remove participants")?;
                if self.target_role(room, peer)? == Role::Teacher {
                    return Err(refused("a teacher cannot be removed"));
                }
                self.remove_peer(now, peer, LeaveReason::Removed);
                Applied::changed(false).with(FloorOutcome::Removed(peer))
            }
        })
    }

    /// The role of `peer`, which a floor action may target only in its own room.
    fn target_role(&self, room: &RoomId, peer: PeerId) -> Result<Role, SfuError> {
        self.peers
            .get(&peer)
            .filter(|p| &p.room == room)
            .map(|p| p.info.role)
            .ok_or(SfuError::UnknownPeer(peer))
    }

    /// The classrooms present in a room, in joining order.
    fn classrooms_in(&self, room: &RoomId) -> Vec<PeerId> {
        self.rooms
            .get(room)
            .map(|r| {
                r.peers
                    .iter()
                    .copied()
                    .filter(|p| {
                        self.peers
                            .get(p)
                            .is_some_and(|p| p.info.role == Role::Classroom)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The teacher calls on a classroom picked at random; everyone is told which.
    fn roll_call(&mut self, room_id: &RoomId, ctx: FloorContext) -> Result<Applied, SfuError> {
        let present = self.classrooms_in(room_id);
        let room = self.room_mut(room_id)?;
        let Some(picked) = room.floor.roll_call(&present, ctx.random) else {
            return Err(refused("no classroom is present"));
        };
        let changed = room
            .floor
            .call_on(picked, Role::Classroom, true)
            .map_err(refused)?;
        let peers = room.peers.clone();
        for p in peers {
            self.fx
                .send_to_peer(p, PeerEvent::RollCall { peer: picked });
        }
        Ok(Applied::changed(changed).with(FloorOutcome::CalledOn(picked)))
    }

    fn chat(&mut self, a: &Actor, text: String, ctx: FloorContext) -> Result<Applied, SfuError> {
        let room = self.room_mut(&a.room)?;
        let msg = ChatMessage {
            id: room.next_id(),
            peer_id: a.peer,
            name: a.name.clone(),
            role: a.role,
            text: clip(text),
            at: ctx.now_ms,
        };
        let peers = room.peers.clone();
        for p in peers {
            self.fx.send_to_peer(p, PeerEvent::Chat(msg.clone()));
        }
        Ok(Applied::changed(false))
    }

    /// A viewer or observer asks the teacher a question (rate-limited per link).
    fn ask(&mut self, a: &Actor, text: String, ctx: FloorContext) -> Result<Applied, SfuError> {
        if !is_audience(a.role) {
            return Err(refused(
                "questions are for viewers and observers; use the chat",
            ));
        }
        let room = self.room_mut(&a.room)?;
        if let Some(why) = room.ask_refused(a.peer, ctx.now_ms) {
            return Err(SfuError::RateLimited(why));
        }
        let q = Question {
            id: room.next_id(),
            peer_id: a.peer,
            name: a.name.clone(),
            text: clip(text),
            at: ctx.now_ms,
            status: QuestionStatus::Open,
        };
        room.add_question(q);
        Ok(Applied::changed(true).seen_by(StateScope::Asked(a.peer)))
    }

    fn settle_question(
        &mut self,
        room_id: &RoomId,
        id: u64,
        answered: bool,
    ) -> Result<Applied, SfuError> {
        let room = self.room_mut(room_id)?;
        let q = room
            .questions
            .iter_mut()
            .find(|q| q.id == id)
            .ok_or_else(|| refused(format!("no question {id}")))?;
        q.status = if answered {
            QuestionStatus::Answered
        } else {
            QuestionStatus::Dismissed
        };
        Ok(Applied::changed(true).seen_by(StateScope::Settled(q.peer_id)))
    }

    fn stage_of(&self, room: &RoomId) -> Vec<PeerId> {
        self.rooms
            .get(room)
            .map(|r| r.floor.stage().to_vec())
            .unwrap_or_default()
    }

    /// Tells attendance who went on and off stage with a floor action. Comparing the stage
    /// before and after covers every way on (call, roll call) and off (done, replaced, the
    /// stage full); a peer that left the room is reported by its `PeerLeft` instead.
    fn report_stage(&mut self, room: &RoomId, before: &[PeerId], roll_call: bool) {
        let after = self.stage_of(room);
        for p in after.iter().filter(|p| !before.contains(p)) {
            self.fx.activity(room, *p, Activity::CalledOn { roll_call });
        }
        for p in before.iter().filter(|p| !after.contains(p)) {
            if self.peers.contains_key(p) {
                self.fx.activity(room, *p, Activity::OffStage);
            }
        }
    }

    fn room_mut(&mut self, room: &RoomId) -> Result<&mut crate::lesson::room::Room, SfuError> {
        self.rooms
            .get_mut(room)
            .ok_or_else(|| SfuError::UnknownRoom(room.clone()))
    }

    /// Re-decides, for every subscription in the room, whether the floor lets it through.
    pub(crate) fn refresh_forwarding(&mut self, room_id: &RoomId) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let roles: Vec<(PeerId, Role)> = room
            .peers
            .iter()
            .filter_map(|p| self.peers.get(p).map(|x| (*p, x.info.role)))
            .collect();
        let role_of = |p: PeerId| roles.iter().find(|(id, _)| *id == p).map(|(_, r)| *r);
        for (pid, sub_role) in &roles {
            let Some(peer) = self.peers.get_mut(pid) else {
                continue;
            };
            for sub in peer.subs.values_mut() {
                let Some(pub_role) = role_of(sub.info.peer_id) else {
                    continue;
                };
                let active = room.floor.forwards(
                    *sub_role,
                    *pid,
                    pub_role,
                    sub.info.peer_id,
                    sub.info.source,
                );
                if active != sub.active {
                    sub.set_active(active);
                }
            }
        }
        self.refresh_recorder(room_id);
    }

    /// Whether `peer` was ever called on in its room (for attendance).
    pub fn was_called(&self, peer: PeerId) -> bool {
        self.peers
            .get(&peer)
            .and_then(|p| self.rooms.get(&p.room))
            .is_some_and(|r| r.floor.was_called(peer))
    }
}

/// Caps a text at `MAX_TEXT_CHARS` characters (callers validate; this is the last guard).
fn clip(text: String) -> String {
    if text.chars().count() <= MAX_TEXT_CHARS {
        text
    } else {
        text.chars().take(MAX_TEXT_CHARS).collect()
    }
}
