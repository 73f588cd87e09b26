//! Attendance in the database (migrations/0003_attendance.sql): the task's writes, heartbeats
//! and sweeps, and the reads behind `GET /api/v1/lessons/{id}/attendance`. The same `$n`
//! queries on SQLite and PostgreSQL.

use sqlx::{AnyConnection, Row};

use super::ledger::Changes;
use super::summary::{CallRow, IntervalRow};
use super::{EndReason, STALE_MS};
use crate::db::Db;

/// Upserts keyed by (occurrence, participant, start): the ledger sends the newest state of
/// each record. `WHERE EXISTS` skips rooms whose occurrence was deleted meanwhile (its
/// attendance went with it), so one such room cannot make every later write fail.
const UPSERT_INTERVAL: &str = "INSERT INTO attendance_intervals \
     (occurrence_id, participant, joined_at, role, name, classroom_id, left_at, end_reason, \
      reconnects, last_seen_at, transport) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 \
     WHERE EXISTS (SELECT 1 FROM occurrences WHERE id = $1) \
     ON CONFLICT (occurrence_id, participant, joined_at) DO UPDATE SET \
     left_at = excluded.left_at, end_reason = excluded.end_reason, \
     reconnects = excluded.reconnects, last_seen_at = excluded.last_seen_at";

const UPSERT_CALL: &str = "INSERT INTO attendance_calls \
     (occurrence_id, participant, called_at, roll_call, ended_at) \
     SELECT $1, $2, $3, $4, $5 \
     WHERE EXISTS (SELECT 1 FROM occurrences WHERE id = $1) \
     ON CONFLICT (occurrence_id, participant, called_at) DO UPDATE SET \
     ended_at = excluded.ended_at";

/// Open stays of a room from before it opened here belong to a server run that is gone (a
/// room lives on one server at a time): they ended at their last sign of presence.
const CLOSE_EARLIER: &str = "UPDATE attendance_intervals \
     SET left_at = last_seen_at, end_reason = 'lost' \
     WHERE occurrence_id = $1 AND left_at IS NULL AND joined_at < $2";

/// Writes the changes in one transaction; `now` is the last sign of presence of open stays.
pub async fn write(db: &Db, changes: &Changes, now: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.write().await?;
    for (room, opened_at) in &changes.opened {
        sqlx::query(CLOSE_EARLIER)
            .bind(room)
            .bind(*opened_at)
            .execute(&mut *tx)
            .await?;
    }
    for r in &changes.intervals {
        sqlx::query(UPSERT_INTERVAL)
            .bind(&r.room)
            .bind(&r.participant)
            .bind(r.joined_at)
            .bind(r.role.as_str())
            .bind(&r.name)
            .bind(r.classroom.as_deref())
            .bind(r.left_at)
            .bind(r.end_reason.map(EndReason::as_str))
            .bind(i64::from(r.reconnects))
            .bind(r.left_at.unwrap_or(now))
            .bind(r.transport)
            .execute(&mut *tx)
            .await?;
    }
    for c in &changes.calls {
        sqlx::query(UPSERT_CALL)
            .bind(&c.room)
            .bind(&c.participant)
            .bind(c.called_at)
            .bind(i16::from(c.roll_call))
            .bind(c.ended_at)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// Refreshes `last_seen_at` of the open stays of rooms live here.
pub async fn heartbeat(db: &Db, rooms: &[String], now: i64) -> Result<(), sqlx::Error> {
    for room in rooms {
        sqlx::query(
            "UPDATE attendance_intervals SET last_seen_at = $1 \
             WHERE occurrence_id = $2 AND left_at IS NULL",
        )
        .bind(now)
        .bind(room)
        .execute(&db.pool)
        .await?;
    }
    Ok(())
}

/// Ends open stays whose heartbeat stopped (their server crashed): at their last sign of
/// presence, reason `lost`. Returns how many.
pub async fn sweep_stale(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE attendance_intervals SET left_at = last_seen_at, end_reason = 'lost' \
         WHERE left_at IS NULL AND last_seen_at < $1",
    )
    .bind(now.saturating_sub(STALE_MS))
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected())
}

/// The stays of a lesson's occurrences (one occurrence's with `occurrence`).
pub async fn intervals(
    conn: &mut AnyConnection,
    lesson: &str,
    occurrence: Option<&str>,
) -> Result<Vec<IntervalRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT a.occurrence_id, a.participant, a.joined_at, a.role, a.name, a.classroom_id, \
         a.left_at, a.end_reason, a.reconnects, a.last_seen_at, a.transport \
         FROM attendance_intervals a JOIN occurrences o ON o.id = a.occurrence_id \
         WHERE o.lesson_id = $1 AND ($2 IS NULL OR a.occurrence_id = $2) \
         ORDER BY a.occurrence_id, a.joined_at, a.participant",
    )
    .bind(lesson)
    .bind(occurrence)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(IntervalRow {
                occurrence: r.try_get("occurrence_id")?,
                participant: r.try_get("participant")?,
                joined_at: r.try_get("joined_at")?,
                role: r.try_get("role")?,
                name: r.try_get("name")?,
                classroom: r.try_get("classroom_id")?,
                left_at: r.try_get("left_at")?,
                end_reason: r.try_get("end_reason")?,
                reconnects: i64::from(r.try_get::<i32, _>("reconnects")?),
                last_seen_at: r.try_get("last_seen_at")?,
                transport: r.try_get("transport")?,
            })
        })
        .collect()
}

/// The turns on stage of a lesson's occurrences (one occurrence's with `occurrence`).
pub async fn calls(
    conn: &mut AnyConnection,
    lesson: &str,
    occurrence: Option<&str>,
) -> Result<Vec<CallRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT a.occurrence_id, a.participant, a.called_at, a.roll_call, a.ended_at \
         FROM attendance_calls a JOIN occurrences o ON o.id = a.occurrence_id \
         WHERE o.lesson_id = $1 AND ($2 IS NULL OR a.occurrence_id = $2) \
         ORDER BY a.occurrence_id, a.called_at, a.participant",
    )
    .bind(lesson)
    .bind(occurrence)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(CallRow {
                occurrence: r.try_get("occurrence_id")?,
                participant: r.try_get("participant")?,
                called_at: r.try_get("called_at")?,
                roll_call: r.try_get::<i16, _>("roll_call")? != 0,
                ended_at: r.try_get("ended_at")?,
            })
        })
        .collect()
}
