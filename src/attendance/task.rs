//! The attendance task: one per server. It folds the shards' observations into the ledger and
//! writes what changed every [`FLUSH`], refreshes open stays every [`HEARTBEAT`], and ends
//! (after a last write) when every shard has dropped its sink, which is how a shutdown
//! reaches it: the shards stop, their rooms close, their sinks go.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::store;
use super::{AttendanceLedger, EndReason, HEARTBEAT, Stamped};
use crate::db::Db;
use crate::time::Clock;

/// How often changed records are written: a stay shows up within about this long.
pub const FLUSH: Duration = Duration::from_secs(1);

/// Observations folded per wake-up before the task yields to its timers.
const BATCH: usize = 1024;

/// Attempts at the last write when the server stops.
const FINAL_ATTEMPTS: usize = 3;

/// Starts the task; it ends once every sender of `rx` is gone and the last write is done.
pub fn spawn(db: Db, rx: mpsc::Receiver<Stamped>, clock: Clock) -> JoinHandle<()> {
    tokio::spawn(run(db, rx, clock))
}

async fn run(db: Db, mut rx: mpsc::Receiver<Stamped>, clock: Clock) {
    let now_ms = || clock.now_ms();
    // Stays a crashed server left open end now rather than when someone reads them.
    match store::sweep_stale(&db, now_ms()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            stays = n,
            "attendance: ended stays left open by a server that stopped"
        ),
        Err(e) => tracing::warn!(error = %e, "attendance: cannot sweep stale stays"),
    }
    let mut ledger = AttendanceLedger::default();
    let mut flush = tokio::time::interval(FLUSH);
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            got = rx.recv() => match got {
                Some(s) => {
                    ledger.apply(s);
                    for _ in 0..BATCH {
                        match rx.try_recv() {
                            Ok(s) => ledger.apply(s),
                            Err(_) => break,
                        }
                    }
                }
                None => break,
            },
            _ = flush.tick() => failing = write(&db, &mut ledger, failing, now_ms()).await,
            _ = heartbeat.tick() => {
                let rooms = ledger.occupied_rooms();
                if !rooms.is_empty()
                    && let Err(e) = store::heartbeat(&db, &rooms, now_ms()).await
                {
                    tracing::warn!(error = %e, "attendance: cannot refresh open stays");
                }
            }
        }
    }
    // Whatever is still open (observations the full queue dropped) ends with the server.
    ledger.close_all(now_ms(), EndReason::Shutdown);
    for _ in 0..FINAL_ATTEMPTS {
        if ledger.pending() == 0 {
            break;
        }
        write(&db, &mut ledger, true, now_ms()).await;
    }
    if ledger.pending() > 0 {
        tracing::warn!(
            records = ledger.pending(),
            "attendance: records not written at shutdown; open stays end at their last heartbeat"
        );
    }
}

/// Writes the ledger's changes; on failure puts them back for the next turn. Returns whether
/// the database is failing (logged once per failing spell, not every second).
async fn write(db: &Db, ledger: &mut AttendanceLedger, failing: bool, now_ms: i64) -> bool {
    let changes = ledger.take_changes();
    if changes.is_empty() {
        return failing;
    }
    match store::write(db, &changes, now_ms).await {
        Ok(()) => {
            if failing {
                tracing::info!("attendance: writing again");
            }
            false
        }
        Err(e) => {
            if !failing {
                tracing::warn!(error = %e, records = changes.len(), "attendance: cannot write; will retry");
            }
            ledger.restore(changes);
            true
        }
    }
}
