//! The scheduler task: every `schedule.tick`, look up this node's live lesson rooms in the
//! database and carry out the [`Scheduler`]'s decisions (warn, close).
//!
//! Only rooms whose id is an occurrence id are considered; rooms opened with hand-made links
//! (`ketang token`) are left alone.

use std::time::Duration;

use ketang_sfu::{LeaveReason, RoomId};

use super::model::OccurrenceStatus;
use super::scheduler::{Action, RoomState, RoomWindow, Scheduler};
use super::store;
use crate::db::ids::OccurrenceId;
use crate::room_signal::Notice;
use crate::state::AppState;

/// How long after issuing a close the scheduler closes a still-live room again.
const CLOSE_RETRY: Duration = Duration::from_secs(15);

/// Starts the task; it runs until aborted.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let cfg = &state.config.schedule;
        let mut scheduler = Scheduler::new(millis(cfg.warn_before), millis(CLOSE_RETRY));
        let mut interval = tokio::time::interval(cfg.tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if state.is_shutting_down() {
                break;
            }
            if let Err(e) = step(&state, &mut scheduler).await {
                tracing::warn!(error = %e, "scheduler: cannot read the schedule; will retry");
            }
        }
    })
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// One look at the live rooms.
pub async fn step(state: &AppState, scheduler: &mut Scheduler) -> Result<(), sqlx::Error> {
    let rooms: Vec<RoomId> = state
        .media
        .rooms()
        .into_iter()
        .filter(|r| OccurrenceId::parse(r.as_str()).is_some())
        .collect();
    let now_ms = state.clock.now_ms();
    if rooms.is_empty() {
        scheduler.tick(now_ms, &[]);
        return Ok(());
    }
    let ids: Vec<String> = rooms.iter().map(|r| r.as_str().to_owned()).collect();
    let rows = {
        let mut conn = state.db.pool.acquire().await?;
        store::occurrences_by_id(&mut conn, &ids).await?
    };
    let grace = millis(state.config.schedule.link_grace);
    let windows: Vec<RoomWindow> = rooms
        .into_iter()
        .map(|room| {
            let state = match rows.iter().find(|o| o.id == room.as_str()) {
                None => RoomState::Unknown,
                Some(o) => match o.status() {
                    OccurrenceStatus::Scheduled => RoomState::Open {
                        closes_at_ms: o.ends_at + grace,
                    },
                    OccurrenceStatus::Cancelled => RoomState::Cancelled,
                    OccurrenceStatus::Ended => RoomState::Ended,
                },
            };
            RoomWindow { room, state }
        })
        .collect();
    for action in scheduler.tick(now_ms, &windows) {
        match action {
            Action::Warn { room, ends_at } => {
                tracing::info!(%room, ends_at, "lesson ends soon: warning the room");
                state
                    .media
                    .notify_room(&room, Notice::LessonEnding { ends_at });
            }
            Action::Close { room, why } => {
                tracing::info!(%room, ?why, "lesson window over: closing the room");
                state.media.close_room(&room, LeaveReason::RoomClosed);
            }
        }
    }
    Ok(())
}
