//! Lessons and occurrences in the database: the queries shared by the API, admission of room
//! links and the scheduler.

use sqlx::{AnyConnection, Row};

use super::conflict::Booking;
use super::model::{LessonMode, OccurrenceStatus};
use crate::db::ids::{ClassroomId, LessonId, OccurrenceId, TeacherId};
use crate::db::{assembled, placeholders};

/// A lesson as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LessonRow {
    pub id: String,
    pub title: String,
    pub subject: String,
    pub grade: String,
    pub mode: String,
    pub teacher_id: String,
    pub master_classroom_id: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub timezone: String,
    pub record: i16,
    pub recur_weekdays: Option<String>,
    pub recur_until: Option<String>,
    pub cancelled_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl LessonRow {
    pub fn mode(&self) -> LessonMode {
        // Only API-checked words are stored.
        self.mode.parse().unwrap_or(LessonMode::Dedicated)
    }
}

/// An occurrence as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OccurrenceRow {
    pub id: String,
    pub lesson_id: String,
    pub series_date: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub status: String,
    pub moved: i16,
    pub link_version: i32,
    pub ended_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl OccurrenceRow {
    pub fn status(&self) -> OccurrenceStatus {
        self.status.parse().unwrap_or(OccurrenceStatus::Cancelled)
    }

    pub fn link_version(&self) -> u32 {
        u32::try_from(self.link_version).unwrap_or(0)
    }
}

pub const LESSON_COLUMNS: &str = "id, title, subject, grade, mode, teacher_id, master_classroom_id, \
     starts_at, ends_at, timezone, record, recur_weekdays, recur_until, cancelled_at, created_at, updated_at";

pub const OCCURRENCE_COLUMNS: &str = "id, lesson_id, series_date, starts_at, ends_at, status, moved, \
     link_version, ended_at, created_at, updated_at";

pub async fn load_lesson(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<LessonRow>, sqlx::Error> {
    sqlx::query_as(assembled(format!(
        "SELECT {LESSON_COLUMNS} FROM lessons WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The remote classrooms of a lesson, in the order given.
pub async fn remote_classrooms(
    conn: &mut AnyConnection,
    lesson: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT classroom_id FROM lesson_classrooms WHERE lesson_id = $1 ORDER BY position",
    )
    .bind(lesson)
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().map(|r| r.get("classroom_id")).collect())
}

pub async fn occurrences_of(
    conn: &mut AnyConnection,
    lesson: &str,
) -> Result<Vec<OccurrenceRow>, sqlx::Error> {
    sqlx::query_as(assembled(format!(
        "SELECT {OCCURRENCE_COLUMNS} FROM occurrences WHERE lesson_id = $1 ORDER BY starts_at, id"
    )))
    .bind(lesson)
    .fetch_all(conn)
    .await
}

pub async fn load_occurrence(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<OccurrenceRow>, sqlx::Error> {
    sqlx::query_as(assembled(format!(
        "SELECT {OCCURRENCE_COLUMNS} FROM occurrences WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Occurrences by id (those that exist).
pub async fn occurrences_by_id(
    conn: &mut AnyConnection,
    ids: &[String],
) -> Result<Vec<OccurrenceRow>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {OCCURRENCE_COLUMNS} FROM occurrences WHERE id IN ({})",
        placeholders(1, ids.len())
    );
    let mut q = sqlx::query_as(assembled(sql));
    for id in ids {
        q = q.bind(id.clone());
    }
    q.fetch_all(conn).await
}

/// Takes the schedule write lock until the transaction ends (see the migration): conflict
/// checks and the writes they allow happen one admin request at a time.
pub async fn lock_schedule(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE schedule_lock SET version = version + 1 WHERE id = 1")
        .execute(conn)
        .await?;
    Ok(())
}

/// What a conflict check leaves out: the lesson being rewritten, or the occurrence being moved.
#[derive(Debug, Clone, Copy)]
pub enum Exclude<'a> {
    Lesson(&'a str),
    Occurrence(&'a str),
}

/// The non-cancelled occurrences overlapping `[from_ms, to_ms)` that involve `teacher` or one
/// of `classrooms`, except `exclude`.
pub async fn bookings(
    conn: &mut AnyConnection,
    from_ms: i64,
    to_ms: i64,
    exclude: Exclude<'_>,
    teacher: &str,
    classrooms: &[String],
) -> Result<Vec<Booking>, sqlx::Error> {
    let n = classrooms.len();
    let classroom_filter = if n == 0 {
        String::new()
    } else {
        let list = placeholders(6, n);
        let list2 = placeholders(6 + n, n);
        format!(
            " OR l.master_classroom_id IN ({list}) OR EXISTS (SELECT 1 FROM lesson_classrooms lc \
             WHERE lc.lesson_id = l.id AND lc.classroom_id IN ({list2}))"
        )
    };
    let sql = format!(
        "SELECT o.id, o.lesson_id, o.starts_at, o.ends_at, o.status, o.ended_at, l.title, \
         l.teacher_id, l.master_classroom_id FROM occurrences o JOIN lessons l ON l.id = o.lesson_id \
         WHERE o.status <> 'cancelled' AND o.starts_at < $1 AND o.ends_at > $2 AND o.lesson_id <> $3 \
         AND o.id <> $4 AND (l.teacher_id = $5{classroom_filter}) ORDER BY o.starts_at"
    );
    let mut q = sqlx::query(assembled(sql))
        .bind(to_ms)
        .bind(from_ms)
        .bind(match exclude {
            Exclude::Lesson(l) => l.to_owned(),
            Exclude::Occurrence(_) => String::new(),
        })
        .bind(match exclude {
            Exclude::Occurrence(o) => o.to_owned(),
            Exclude::Lesson(_) => String::new(),
        })
        .bind(teacher.to_owned());
    for _ in 0..2 {
        for c in classrooms {
            q = q.bind(c.clone());
        }
    }
    let rows = q.fetch_all(&mut *conn).await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut remote_cache: Vec<(String, Vec<String>)> = Vec::new();
    for r in rows {
        let lesson: String = r.get("lesson_id");
        let remote = match remote_cache.iter().find(|(l, _)| *l == lesson) {
            Some((_, v)) => v.clone(),
            None => {
                let v = remote_classrooms(conn, &lesson).await?;
                remote_cache.push((lesson.clone(), v.clone()));
                v
            }
        };
        let mut all = vec![ClassroomId::from_db(r.get("master_classroom_id"))];
        all.extend(remote.into_iter().map(ClassroomId::from_db));
        let starts_at: i64 = r.get("starts_at");
        let ends_at: i64 = r.get("ends_at");
        // An occurrence ended early frees its resources from then on.
        let end = match r.get::<Option<i64>, _>("ended_at") {
            Some(ended) if r.get::<String, _>("status") == "ended" => ended.min(ends_at),
            _ => ends_at,
        };
        if end <= from_ms {
            continue;
        }
        out.push(Booking {
            occurrence: OccurrenceId::from_db(r.get("id")),
            lesson: LessonId::from_db(lesson),
            lesson_title: r.get("title"),
            start_ms: starts_at,
            end_ms: end.max(starts_at),
            teacher: TeacherId::from_db(r.get("teacher_id")),
            classrooms: all,
        });
    }
    Ok(out)
}

/// The state of an occurrence for admitting one of its links: status and link version.
pub async fn admission_state(
    pool: &sqlx::AnyPool,
    id: &str,
) -> Result<Option<(OccurrenceStatus, u32)>, sqlx::Error> {
    let row = sqlx::query("SELECT status, link_version FROM occurrences WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|r| {
        let status: String = r.get("status");
        let lv: i32 = r.get("link_version");
        (
            status.parse().unwrap_or(OccurrenceStatus::Cancelled),
            u32::try_from(lv).unwrap_or(0),
        )
    }))
}
