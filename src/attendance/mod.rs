//! Attendance of scheduled lessons: for the teacher and each classroom of an occurrence, when
//! they were in the room (join/leave intervals), how often they lost their connection and came
//! back, and when they were called on.
//!
//! ```text
//! ketang_sfu (sans-IO) ── SfuEvent::Activity / PeerLeft / RoomClosed
//!      │ shard thread: route() stamps the wall clock, try_send (never blocks; drops counted)
//!      ▼
//! AttendanceSink ══ bounded channel ══▶ task (one per server)
//!                                         │ AttendanceLedger: pure fold into interval and call
//!                                         │ records (ledger.rs, tested step by step)
//!                                         ▼ every second: changed records, batched upserts
//!                                       attendance_intervals, attendance_calls (SQLite | PostgreSQL)
//!                                         ▲ every 15 s: last_seen_at of open intervals
//! GET …/attendance ── summary.rs: totals, reconnects, calls, open intervals resolved
//!                     report.rs (JSON), csv.rs (`Accept: text/csv`)
//! ```
//!
//! **The SFU is the source of truth**: it sees every join, media loss, signaling loss, stage
//! change and leave, whichever entry point (WebSocket, WHIP) the participant used.
//!
//! **Identity.** A classroom is its `classroom` claim (several links or reconnections of one
//! classroom merge into one presence), the teacher is the teacher role and name. Observers and
//! viewers are not recorded: lesson links give all of them one shared name, so a record per
//! name would say nothing about any one person.
//!
//! **Only lesson rooms.** A room is recorded when its id is an occurrence id (`occ_…`, what
//! lesson links open) of a stored occurrence; rooms of `ketang token` links are not.
//!
//! **Open intervals.** Leaving, a room closing and a server shutdown close intervals with their
//! reason (those a stopping server sends away leave as `shutdown`: sessions leave for the reason
//! of their `bye`); the task's last write happens after the shards stopped, so
//! the stays they ended are in it. A crashed server cannot, so the task refreshes `last_seen_at` of open intervals every
//! [`HEARTBEAT`]; an open interval not refreshed for [`STALE_MS`] is over, at its `last_seen_at`,
//! with the reason `lost`: readers treat it so at once, the next start of any server writes it
//! so (`store::sweep_stale`), and so does the next opening of the same room (its earlier open
//! intervals belong to a run that is gone, since a room lives on one server).

pub mod csv;
pub mod ledger;
pub mod report;
pub mod store;
pub mod summary;
mod task;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ketang_sfu::{Activity, LeaveReason, PeerId, RoomId};
use tokio::sync::mpsc;

pub use ledger::AttendanceLedger;

use crate::db::ids::OccurrenceId;

/// How often the task refreshes `last_seen_at` of the open intervals of its live rooms.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// An open interval not refreshed for this long belongs to a server that is gone.
pub const STALE_MS: i64 = 60_000;

/// Events waiting for the task; joins and leaves are rare next to packets, so this only fills
/// if the database stalls for long.
pub const QUEUE: usize = 4096;

/// Starts the attendance task on `rx`, the receiving end of an `AttendanceSink` channel; it
/// ends once every clone of that sink (the shards') is gone and its last write is done.
pub fn spawn(
    db: crate::db::Db,
    rx: mpsc::Receiver<Stamped>,
    clock: crate::time::Clock,
) -> AttendanceTask {
    AttendanceTask {
        task: task::spawn(db, rx, clock),
    }
}

/// What the task learns from a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A participant's activity.
    Activity { peer: PeerId, activity: Activity },
    /// A participant left the room.
    Left { peer: PeerId, reason: LeaveReason },
    /// The room's last participant left.
    RoomClosed,
}

/// An observation with its room and wall-clock time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    /// Unix ms.
    pub at_ms: i64,
    /// The room (an occurrence id).
    pub room: String,
    pub event: Observed,
}

/// Why an interval ended, as stored and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum EndReason {
    /// It left.
    Left,
    /// Its connection was lost for longer than the grace period.
    Disconnected,
    /// It was removed by the teacher or an admin.
    Removed,
    /// The room closed (the lesson ended or was cancelled).
    RoomClosed,
    /// The server shut down.
    Shutdown,
    /// A server fault removed it.
    Internal,
    /// The server stopped without saying (a crash): ended at the last sign of presence.
    Lost,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Left => "left",
            EndReason::Disconnected => "disconnected",
            EndReason::Removed => "removed",
            EndReason::RoomClosed => "roomClosed",
            EndReason::Shutdown => "shutdown",
            EndReason::Internal => "internal",
            EndReason::Lost => "lost",
        }
    }

    /// The stored word; an unknown one (a newer server's) reads as `lost`.
    pub fn parse(s: &str) -> EndReason {
        [
            EndReason::Left,
            EndReason::Disconnected,
            EndReason::Removed,
            EndReason::RoomClosed,
            EndReason::Shutdown,
            EndReason::Internal,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .unwrap_or(EndReason::Lost)
    }

    /// The participant did not mean to go: coming back afterwards is a reconnection.
    pub fn involuntary(self) -> bool {
        matches!(
            self,
            EndReason::Disconnected | EndReason::Internal | EndReason::Lost
        )
    }
}

impl From<LeaveReason> for EndReason {
    fn from(r: LeaveReason) -> Self {
        match r {
            LeaveReason::Left => EndReason::Left,
            LeaveReason::Disconnected => EndReason::Disconnected,
            LeaveReason::Removed => EndReason::Removed,
            LeaveReason::RoomClosed => EndReason::RoomClosed,
            LeaveReason::Shutdown => EndReason::Shutdown,
            LeaveReason::Internal => EndReason::Internal,
        }
    }
}

/// Where shards deliver observations: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct AttendanceSink {
    tx: mpsc::Sender<Stamped>,
    clock: crate::time::Clock,
    dropped: Arc<AtomicU64>,
}

impl AttendanceSink {
    /// A sink and the receiving end for [`spawn`].
    pub fn channel(
        capacity: usize,
        clock: crate::time::Clock,
    ) -> (AttendanceSink, mpsc::Receiver<Stamped>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let sink = AttendanceSink {
            tx,
            clock,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        (sink, rx)
    }

    /// Queues an observation of a lesson room, stamped now; other rooms are not recorded. A
    /// full queue drops it (counted): the shard thread must never wait for the database.
    pub fn offer(&self, room: &RoomId, event: Observed) {
        if OccurrenceId::parse(room.as_str()).is_none() {
            return;
        }
        let stamped = Stamped {
            at_ms: self.clock.now_ms(),
            room: room.as_str().to_owned(),
            event,
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(stamped) {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n,
                    "attendance queue full: observations dropped (is the database slow?)"
                );
            }
        }
    }

    /// Observations dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The drop counter itself, for `/metrics`.
    pub fn dropped_counter(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }
}

/// The running attendance task, as the server holds it.
#[derive(Debug)]
pub struct AttendanceTask {
    task: tokio::task::JoinHandle<()>,
}

impl AttendanceTask {
    /// Waits up to `within` for the last write, once the shards (the senders) are gone.
    /// Returns whether it finished.
    pub async fn finish(self, within: Duration) -> bool {
        tokio::time::timeout(within, self.task).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_occurrence_rooms_are_queued_and_a_full_queue_drops_and_counts() {
        let (sink, mut rx) = AttendanceSink::channel(1, crate::time::Clock::default());
        let open = RoomId::new("math-101").unwrap();
        let lesson = RoomId::new(OccurrenceId::generate(1_800_000_000_000).as_str()).unwrap();
        sink.offer(&open, Observed::RoomClosed);
        assert!(rx.try_recv().is_err(), "an open room is not recorded");
        sink.offer(&lesson, Observed::RoomClosed);
        sink.offer(&lesson, Observed::RoomClosed);
        assert_eq!(sink.dropped(), 1);
        let got = rx.try_recv().unwrap();
        assert_eq!(got.room, lesson.as_str());
        assert!(got.at_ms > 1_700_000_000_000);
    }

    #[test]
    fn end_reasons_round_trip_and_unknown_words_read_as_lost() {
        for r in [
            EndReason::Left,
            EndReason::Disconnected,
            EndReason::Removed,
            EndReason::RoomClosed,
            EndReason::Shutdown,
            EndReason::Internal,
            EndReason::Lost,
        ] {
            assert_eq!(EndReason::parse(r.as_str()), r);
        }
        assert_eq!(EndReason::parse("vanished"), EndReason::Lost);
        assert!(EndReason::Disconnected.involuntary() && !EndReason::Left.involuntary());
    }
}
