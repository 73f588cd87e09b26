//! `AttendanceLedger`: folds the SFU's observations of lesson rooms into attendance records, as a
//! pure struct (times come with the observations), so each rule is tested step by step.
//!
//! Records are what gets stored, keyed so that a write never overwrites another stay:
//!
//! - an [`IntervalRecord`] per stay of a participant, keyed by (room, participant, joined at):
//!   open while any of the participant's peers is in the room, closed when the last one goes;
//!   it counts the connection losses recovered from during the stay;
//! - a [`CallRecord`] per turn on stage, keyed by (room, participant, called at).
//!
//! A stay starts when a peer's media first connects (`Joined`: presence means media). A
//! **connection loss** starts when a peer's media goes silent (`Reconnecting`) or its
//! signaling drops (`Detached`), and is recovered from when neither holds any more (`Resumed`
//! once media arrives again, also on a fresh connection; `Attached`): one loss however many of
//! these it takes. A fresh connection (`Rejoined`) alone is no recovery: the signaling may be
//! back while the media path is still blocked. A loss the peer does not come back from ends
//! its stay at the moment its media went silent, not at the end of the grace period. Coming
//! back as a new peer after such a loss is counted when the attendance is read (a new stay
//! after an involuntary end, `summary.rs`).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use ketang_sfu::{Activity, PeerId, Role};

use super::{EndReason, Observed, Stamped};

/// One stay of a participant in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntervalRecord {
    /// The room, an occurrence id.
    pub room: String,
    /// The identity ([`identity`]).
    pub participant: String,
    /// Unix ms.
    pub joined_at: i64,
    pub role: Role,
    pub name: String,
    pub classroom: Option<String>,
    /// `None` while it stays.
    pub left_at: Option<i64>,
    pub end_reason: Option<EndReason>,
    /// Connection losses it recovered from during the stay.
    pub reconnects: u32,
    /// How its media travelled when the stay began (`udp`, `tcp`).
    pub transport: &'static str,
}

/// One turn on stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub room: String,
    pub participant: String,
    /// Unix ms.
    pub called_at: i64,
    /// Picked by the roll call rather than called on.
    pub roll_call: bool,
    /// `None` while on stage.
    pub ended_at: Option<i64>,
}

/// What to write, the newest state of each changed record.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Rooms that opened here, with when: open intervals of theirs stored before that moment
    /// belong to a server run that is gone.
    pub opened: Vec<(String, i64)>,
    pub intervals: Vec<IntervalRecord>,
    pub calls: Vec<CallRecord>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.opened.is_empty() && self.intervals.is_empty() && self.calls.is_empty()
    }

    /// How many things there are to write.
    pub fn len(&self) -> usize {
        self.opened.len() + self.intervals.len() + self.calls.len()
    }
}

/// The identity a participant is recorded under, or `None` for watchers (not recorded).
pub fn identity(role: Role, classroom: Option<&str>, name: &str) -> Option<String> {
    match (role, classroom) {
        (Role::Teacher, _) => Some(format!("teacher:{name}")),
        (Role::Classroom, Some(id)) => Some(format!("classroom:{id}")),
        // A classroom link without a classroom id (made by hand): its name is all there is.
        (Role::Classroom, None) => Some(format!("classroom-name:{name}")),
        (Role::Observer | Role::Viewer, _) => None,
    }
}

/// One connection of a participant.
#[derive(Debug)]
struct Presence {
    key: String,
    /// Its media went silent then (Unix ms): it was not in the room since.
    silent_since: Option<i64>,
    /// Its signaling dropped then.
    detached_since: Option<i64>,
}

impl Presence {
    fn losing(&self) -> bool {
        self.silent_since.is_some() || self.detached_since.is_some()
    }
}

/// A participant of a room and its current stay and turn.
#[derive(Debug)]
struct Person {
    stay: Option<IntervalRecord>,
    /// The turn on stage, with the peer that has it.
    turn: Option<(PeerId, CallRecord)>,
    /// The latest record keys used: two records of one person never share a key, even within
    /// one millisecond.
    last_joined: Option<i64>,
    last_called: Option<i64>,
}

#[derive(Debug, Default)]
struct RoomLedger {
    peers: HashMap<PeerId, Presence>,
    people: BTreeMap<String, Person>,
}

type Key = (String, String, i64);

/// Who joined, as the stay records it.
struct Who {
    role: Role,
    classroom: Option<String>,
    name: String,
    transport: &'static str,
}

/// The attendance of the lesson rooms of one server, folded from observations.
#[derive(Debug, Default)]
pub struct AttendanceLedger {
    rooms: HashMap<String, RoomLedger>,
    opened: Vec<(String, i64)>,
    intervals: BTreeMap<Key, IntervalRecord>,
    calls: BTreeMap<Key, CallRecord>,
}

fn after(t: i64, last: Option<i64>) -> i64 {
    match last {
        Some(l) if t <= l => l.saturating_add(1),
        _ => t,
    }
}

fn mark_interval(dirty: &mut BTreeMap<Key, IntervalRecord>, r: &IntervalRecord) {
    let key = (r.room.clone(), r.participant.clone(), r.joined_at);
    dirty.insert(key, r.clone());
}

fn mark_call(dirty: &mut BTreeMap<Key, CallRecord>, r: &CallRecord) {
    let key = (r.room.clone(), r.participant.clone(), r.called_at);
    dirty.insert(key, r.clone());
}

impl AttendanceLedger {
    /// Folds one observation in.
    pub fn apply(&mut self, s: Stamped) {
        let Stamped {
            at_ms: at,
            room,
            event,
        } = s;
        match event {
            Observed::Activity {
                peer,
                activity:
                    Activity::Joined {
                        role,
                        classroom,
                        name,
                        transport,
                    },
            } => {
                let classroom = classroom.map(|c| c.as_str().to_owned());
                let who = Who {
                    role,
                    classroom,
                    name,
                    transport: transport.as_str(),
                };
                self.join(at, room, peer, who);
            }
            Observed::Activity { peer, activity } => self.activity(at, &room, peer, activity),
            Observed::Left { peer, reason } => self.leave(at, &room, peer, reason.into()),
            Observed::RoomClosed => self.close_room(at, &room, EndReason::RoomClosed),
        }
    }

    fn join(&mut self, at: i64, room: String, peer: PeerId, who: Who) {
        let Who {
            role,
            classroom,
            name,
            transport,
        } = who;
        let Some(key) = identity(role, classroom.as_deref(), &name) else {
            return;
        };
        let r = match self.rooms.entry(room.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                self.opened.push((room.clone(), at));
                e.insert(RoomLedger::default())
            }
        };
        if r.peers.contains_key(&peer) {
            return;
        }
        let presence = Presence {
            key: key.clone(),
            silent_since: None,
            detached_since: None,
        };
        r.peers.insert(peer, presence);
        let person = r.people.entry(key.clone()).or_insert(Person {
            stay: None,
            turn: None,
            last_joined: None,
            last_called: None,
        });
        if person.stay.is_some() {
            // Another link or device of the same classroom: the stay goes on.
            return;
        }
        let joined_at = after(at, person.last_joined);
        person.last_joined = Some(joined_at);
        let stay = IntervalRecord {
            room,
            participant: key,
            joined_at,
            role,
            name,
            classroom,
            left_at: None,
            end_reason: None,
            reconnects: 0,
            transport,
        };
        mark_interval(&mut self.intervals, &stay);
        person.stay = Some(stay);
    }

    fn activity(&mut self, at: i64, room: &str, peer: PeerId, activity: Activity) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let Some(p) = r.peers.get_mut(&peer) else {
            return;
        };
        let Some(person) = r.people.get_mut(&p.key) else {
            return;
        };
        let was_losing = p.losing();
        match activity {
            Activity::Reconnecting { silent_ms } => {
                let silent = i64::try_from(silent_ms).unwrap_or(i64::MAX);
                p.silent_since.get_or_insert(at.saturating_sub(silent));
            }
            Activity::Resumed => p.silent_since = None,
            Activity::Detached => {
                p.detached_since.get_or_insert(at);
            }
            Activity::Attached => p.detached_since = None,
            Activity::CalledOn { roll_call } => {
                if person.turn.is_some() {
                    return;
                }
                let called_at = after(at, person.last_called);
                person.last_called = Some(called_at);
                let call = CallRecord {
                    room: room.to_owned(),
                    participant: p.key.clone(),
                    called_at,
                    roll_call,
                    ended_at: None,
                };
                mark_call(&mut self.calls, &call);
                person.turn = Some((peer, call));
                return;
            }
            Activity::OffStage => {
                if let Some((owner, mut call)) = person.turn.take() {
                    if owner != peer {
                        person.turn = Some((owner, call));
                        return;
                    }
                    call.ended_at = Some(at.max(call.called_at));
                    mark_call(&mut self.calls, &call);
                }
                return;
            }
            // Joined is handled by `join`; anything newer is not attendance's business.
            _ => return,
        }
        if was_losing
            && !p.losing()
            && let Some(stay) = &mut person.stay
        {
            stay.reconnects += 1;
            mark_interval(&mut self.intervals, stay);
        }
    }

    fn leave(&mut self, at: i64, room: &str, peer: PeerId, reason: EndReason) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let Some(p) = r.peers.remove(&peer) else {
            return;
        };
        // Silent media means it was gone since then, whatever the reason said later.
        let end = p.silent_since.map_or(at, |s| s.min(at));
        let others_stay = r.peers.values().any(|o| o.key == p.key);
        let Some(person) = r.people.get_mut(&p.key) else {
            return;
        };
        if let Some((owner, mut call)) = person.turn.take() {
            if owner == peer {
                call.ended_at = Some(end.max(call.called_at));
                mark_call(&mut self.calls, &call);
            } else {
                person.turn = Some((owner, call));
            }
        }
        if !others_stay && let Some(mut stay) = person.stay.take() {
            stay.left_at = Some(end.max(stay.joined_at));
            stay.end_reason = Some(reason);
            mark_interval(&mut self.intervals, &stay);
        }
    }

    fn close_room(&mut self, at: i64, room: &str, reason: EndReason) {
        let peers: Vec<PeerId> = match self.rooms.get(room) {
            Some(r) => r.peers.keys().copied().collect(),
            None => return,
        };
        for peer in peers {
            self.leave(at, room, peer, reason);
        }
        self.rooms.remove(room);
    }

    /// Ends every stay and turn still open (the server stops; nothing more will be observed).
    pub fn close_all(&mut self, at_ms: i64, reason: EndReason) {
        let rooms: Vec<String> = self.rooms.keys().cloned().collect();
        for room in rooms {
            self.close_room(at_ms, &room, reason);
        }
    }

    /// The records changed since the last call, to write.
    pub fn take_changes(&mut self) -> Changes {
        Changes {
            opened: std::mem::take(&mut self.opened),
            intervals: std::mem::take(&mut self.intervals).into_values().collect(),
            calls: std::mem::take(&mut self.calls).into_values().collect(),
        }
    }

    /// Puts back changes whose write failed, unless a newer state of a record is waiting.
    pub fn restore(&mut self, changes: Changes) {
        let mut opened = changes.opened;
        opened.append(&mut self.opened);
        self.opened = opened;
        for r in changes.intervals {
            let key = (r.room.clone(), r.participant.clone(), r.joined_at);
            self.intervals.entry(key).or_insert(r);
        }
        for r in changes.calls {
            let key = (r.room.clone(), r.participant.clone(), r.called_at);
            self.calls.entry(key).or_insert(r);
        }
    }

    /// Records waiting to be written.
    pub fn pending(&self) -> usize {
        self.opened.len() + self.intervals.len() + self.calls.len()
    }

    /// Rooms where someone stays now (their open intervals need heartbeats).
    pub fn occupied_rooms(&self) -> Vec<String> {
        let mut rooms: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.people.values().any(|p| p.stay.is_some()))
            .map(|(id, _)| id.clone())
            .collect();
        rooms.sort();
        rooms
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
