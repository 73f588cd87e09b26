//! The library catalog in the database (migrations/0002_library.sql): entries, their per-track
//! files and observation notes, and the lesson facts copied into an entry when it starts.

use sqlx::{AnyPool, Row};

use super::ids::{NoteId, RecordingId};

use crate::db::assembled;

/// Running: the recorder writes it; ready: in the store; failed: nothing playable was kept.
pub const RECORDING: &str = "recording";
pub const READY: &str = "ready";
pub const FAILED: &str = "failed";

/// The lesson a room records, as the entry keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LessonFacts {
    pub occurrence_id: Option<String>,
    pub lesson_id: Option<String>,
    pub title: String,
    pub subject: String,
    pub grade: String,
    pub mode: String,
    pub teacher_id: Option<String>,
    pub teacher_name: String,
    pub school_id: Option<String>,
    pub school_name: String,
    pub timezone: String,
    pub record: bool,
}

impl LessonFacts {
    /// An ad-hoc room (a link from `ketang token`): only its name is known.
    pub fn ad_hoc(room: &str, timezone: &str) -> Self {
        LessonFacts {
            title: room.to_owned(),
            mode: "open".into(),
            timezone: timezone.to_owned(),
            ..LessonFacts::default()
        }
    }
}

/// The lesson of an occurrence room: title, subject, grade, mode, teacher and the teacher's
/// school; `None` if `room` is no stored occurrence.
pub async fn lesson_facts(pool: &AnyPool, room: &str) -> Result<Option<LessonFacts>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT o.id AS occurrence_id, l.id AS lesson_id, l.title, l.subject, l.grade, l.mode, \
         l.timezone, l.record, t.id AS teacher_id, t.name AS teacher_name, \
         s.id AS school_id, s.name AS school_name \
         FROM occurrences o JOIN lessons l ON l.id = o.lesson_id \
         JOIN teachers t ON t.id = l.teacher_id JOIN schools s ON s.id = t.school_id \
         WHERE o.id = $1",
    )
    .bind(room)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| LessonFacts {
        occurrence_id: Some(r.get("occurrence_id")),
        lesson_id: Some(r.get("lesson_id")),
        title: r.get("title"),
        subject: r.get("subject"),
        grade: r.get("grade"),
        mode: r.get("mode"),
        teacher_id: Some(r.get("teacher_id")),
        teacher_name: r.get("teacher_name"),
        school_id: Some(r.get("school_id")),
        school_name: r.get("school_name"),
        timezone: r.get("timezone"),
        record: r.get::<i16, _>("record") != 0,
    }))
}

/// A per-track file of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackFile {
    pub source: String,
    pub object_key: String,
    pub duration_ms: i64,
    pub bytes: i64,
    pub sha256: String,
}

/// One library entry.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Entry {
    pub id: String,
    pub room: String,
    pub occurrence_id: Option<String>,
    pub lesson_id: Option<String>,
    pub title: String,
    pub subject: String,
    pub grade: String,
    pub mode: String,
    pub teacher_id: Option<String>,
    pub teacher_name: String,
    pub school_id: Option<String>,
    pub school_name: String,
    pub timezone: String,
    pub started_at: i64,
    pub state: String,
    pub error: Option<String>,
    pub recovered: i16,
    pub duration_ms: Option<i64>,
    pub bytes: Option<i64>,
    pub sha256: Option<String>,
    pub object_key: Option<String>,
    pub local_path: Option<String>,
    pub node: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Codecs of the lesson file, comma-separated (`h264,opus`); `None` before it is ready
    /// (and for entries older than migration 0006).
    pub codecs: Option<String>,
}

const COLUMNS: &str = "id, room, occurrence_id, lesson_id, title, subject, grade, mode, teacher_id, \
    teacher_name, school_id, school_name, timezone, started_at, state, error, recovered, \
    duration_ms, bytes, sha256, object_key, local_path, node, created_at, updated_at, codecs";

impl Entry {
    /// A new entry for a recording of `room` that started at `started_at` (Unix ms).
    pub fn new(
        id: &RecordingId,
        room: &str,
        facts: LessonFacts,
        started_at: i64,
        now: i64,
    ) -> Self {
        Entry {
            id: id.to_string(),
            room: room.to_owned(),
            occurrence_id: facts.occurrence_id,
            lesson_id: facts.lesson_id,
            title: facts.title,
            subject: facts.subject,
            grade: facts.grade,
            mode: facts.mode,
            teacher_id: facts.teacher_id,
            teacher_name: facts.teacher_name,
            school_id: facts.school_id,
            school_name: facts.school_name,
            timezone: facts.timezone,
            started_at,
            state: RECORDING.into(),
            error: None,
            recovered: 0,
            duration_ms: None,
            bytes: None,
            sha256: None,
            object_key: None,
            local_path: None,
            node: None,
            created_at: now,
            updated_at: now,
            codecs: None,
        }
    }
}

pub async fn insert(pool: &AnyPool, e: &Entry) -> Result<(), sqlx::Error> {
    sqlx::query(assembled(format!(
        "INSERT INTO recordings ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
         $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)"
    )))
    .bind(&e.id)
    .bind(&e.room)
    .bind(&e.occurrence_id)
    .bind(&e.lesson_id)
    .bind(&e.title)
    .bind(&e.subject)
    .bind(&e.grade)
    .bind(&e.mode)
    .bind(&e.teacher_id)
    .bind(&e.teacher_name)
    .bind(&e.school_id)
    .bind(&e.school_name)
    .bind(&e.timezone)
    .bind(e.started_at)
    .bind(&e.state)
    .bind(&e.error)
    .bind(e.recovered)
    .bind(e.duration_ms)
    .bind(e.bytes)
    .bind(&e.sha256)
    .bind(&e.object_key)
    .bind(&e.local_path)
    .bind(&e.node)
    .bind(e.created_at)
    .bind(e.updated_at)
    .bind(&e.codecs)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn get(pool: &AnyPool, id: &str) -> Result<Option<Entry>, sqlx::Error> {
    sqlx::query_as(assembled(format!(
        "SELECT {COLUMNS} FROM recordings WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The entry whose running file is (or was) `path`.
pub async fn by_local_path(pool: &AnyPool, path: &str) -> Result<Option<Entry>, sqlx::Error> {
    sqlx::query_as(assembled(format!(
        "SELECT {COLUMNS} FROM recordings WHERE local_path = $1 ORDER BY id DESC LIMIT 1"
    )))
    .bind(path)
    .fetch_optional(pool)
    .await
}

/// A ready entry with this content (an import done before a crash cut the cleanup short).
pub async fn by_sha256(pool: &AnyPool, sha: &str) -> Result<Option<Entry>, sqlx::Error> {
    sqlx::query_as(assembled(format!(
        "SELECT {COLUMNS} FROM recordings WHERE sha256 = $1 AND state = 'ready' LIMIT 1"
    )))
    .bind(sha)
    .fetch_optional(pool)
    .await
}

/// Entries of `node` still marked running (at start: left by a crash of that server).
pub async fn running(pool: &AnyPool, node: &str) -> Result<Vec<Entry>, sqlx::Error> {
    sqlx::query_as(assembled(format!(
        "SELECT {COLUMNS} FROM recordings WHERE state = 'recording' AND node = $1 ORDER BY id"
    )))
    .bind(node)
    .fetch_all(pool)
    .await
}

/// The file is in the store: the entry is ready.
pub async fn set_ready(
    pool: &AnyPool,
    id: &str,
    file: &TrackFile,
    recovered: bool,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE recordings SET state = 'ready', duration_ms = $2, bytes = $3, sha256 = $4, \
         object_key = $5, recovered = $6, updated_at = $7 WHERE id = $1",
    )
    .bind(id)
    .bind(file.duration_ms)
    .bind(file.bytes)
    .bind(&file.sha256)
    .bind(&file.object_key)
    .bind(i16::from(recovered))
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// The codecs of the entry's lesson file (`h264,opus`).
pub async fn set_codecs(pool: &AnyPool, id: &str, codecs: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE recordings SET codecs = $2 WHERE id = $1")
        .bind(id)
        .bind(codecs)
        .execute(pool)
        .await?;
    Ok(())
}

/// Records why the recording stopped; `failed` also marks it as having nothing playable (for
/// now: a kept partial file may still make it ready).
pub async fn set_error(
    pool: &AnyPool,
    id: &str,
    error: &str,
    failed: bool,
    now: i64,
) -> Result<(), sqlx::Error> {
    let sql = if failed {
        "UPDATE recordings SET error = $2, state = 'failed', updated_at = $3 WHERE id = $1 \
         AND state <> 'ready'"
    } else {
        "UPDATE recordings SET error = $2, updated_at = $3 WHERE id = $1"
    };
    sqlx::query(sql)
        .bind(id)
        .bind(error)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn set_local_path(pool: &AnyPool, id: &str, path: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE recordings SET local_path = $2 WHERE id = $1")
        .bind(id)
        .bind(path)
        .execute(pool)
        .await?;
    Ok(())
}

/// Adds (or replaces, on a repeated import) a per-track file.
pub async fn put_track(pool: &AnyPool, id: &str, t: &TrackFile) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM recording_tracks WHERE recording_id = $1 AND source = $2")
        .bind(id)
        .bind(&t.source)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO recording_tracks (recording_id, source, object_key, duration_ms, bytes, \
         sha256) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(&t.source)
    .bind(&t.object_key)
    .bind(t.duration_ms)
    .bind(t.bytes)
    .bind(&t.sha256)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

pub async fn tracks(pool: &AnyPool, id: &str) -> Result<Vec<TrackFile>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT source, object_key, duration_ms, bytes, sha256 FROM recording_tracks \
         WHERE recording_id = $1 ORDER BY source",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| TrackFile {
            source: r.get("source"),
            object_key: r.get("object_key"),
            duration_ms: r.get("duration_ms"),
            bytes: r.get("bytes"),
            sha256: r.get("sha256"),
        })
        .collect())
}

/// Removes an entry with its tracks and notes, within the caller's transaction.
pub async fn delete(conn: &mut sqlx::AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    for sql in [
        "DELETE FROM recording_notes WHERE recording_id = $1",
        "DELETE FROM recording_tracks WHERE recording_id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *conn).await?;
    }
    let gone = sqlx::query("DELETE FROM recordings WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(gone > 0)
}

/// Search and filters of the list (all optional; `text` matches title, subject, grade,
/// teacher and school, case-insensitively).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub text: Option<String>,
    pub subject: Option<String>,
    pub grade: Option<String>,
    pub teacher_id: Option<String>,
    pub school_id: Option<String>,
    pub mode: Option<String>,
    pub state: Option<String>,
    pub recovered: Option<bool>,
    /// Started at or after (Unix ms).
    pub from_ms: Option<i64>,
    /// Started before (Unix ms).
    pub to_ms: Option<i64>,
    /// Only entries with ids below this one (the next page).
    pub before: Option<String>,
    pub limit: u32,
}

/// `%` and `_` match themselves: the search text is not a pattern.
fn like_pattern(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// One page of entries, newest first, and whether more follow.
pub async fn list(pool: &AnyPool, f: &Filter) -> Result<(Vec<Entry>, bool), sqlx::Error> {
    // Every condition is present with its `$n IS NULL` escape hatch, so one SQL text serves
    // all filter combinations on both engines.
    let text_cond = "(LOWER(title) LIKE $1 ESCAPE '\\' OR LOWER(subject) LIKE $1 ESCAPE '\\' \
        OR LOWER(grade) LIKE $1 ESCAPE '\\' OR LOWER(teacher_name) LIKE $1 ESCAPE '\\' \
        OR LOWER(school_name) LIKE $1 ESCAPE '\\')";
    let sql = format!(
        "SELECT {COLUMNS} FROM recordings WHERE ($1 IS NULL OR {text_cond}) \
         AND ($2 IS NULL OR subject = $2) AND ($3 IS NULL OR grade = $3) \
         AND ($4 IS NULL OR teacher_id = $4) AND ($5 IS NULL OR school_id = $5) \
         AND ($6 IS NULL OR mode = $6) AND ($7 IS NULL OR state = $7) \
         AND ($8 IS NULL OR recovered = $8) AND ($9 IS NULL OR started_at >= $9) \
         AND ($10 IS NULL OR started_at < $10) AND ($11 IS NULL OR id < $11) \
         ORDER BY id DESC LIMIT $12"
    );
    let rows: Vec<Entry> = sqlx::query_as(assembled(sql))
        .bind(f.text.as_deref().map(like_pattern))
        .bind(f.subject.clone())
        .bind(f.grade.clone())
        .bind(f.teacher_id.clone())
        .bind(f.school_id.clone())
        .bind(f.mode.clone())
        .bind(f.state.clone())
        .bind(f.recovered.map(i16::from))
        .bind(f.from_ms)
        .bind(f.to_ms)
        .bind(f.before.clone())
        .bind(i64::from(f.limit) + 1)
        .fetch_all(pool)
        .await?;
    let mut rows = rows;
    let more = rows.len() > f.limit as usize;
    rows.truncate(f.limit as usize);
    Ok((rows, more))
}

/// An observation note.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Note {
    pub id: String,
    pub recording_id: String,
    pub at_ms: i64,
    pub author: String,
    pub role: String,
    pub text: String,
    pub via: String,
    pub created_at: i64,
}

impl Note {
    pub fn new(
        recording: &str,
        at_ms: i64,
        author: &str,
        role: &str,
        text: &str,
        via: &str,
        now: i64,
    ) -> Note {
        Note {
            id: NoteId::generate(u64::try_from(now).unwrap_or(0)).to_string(),
            recording_id: recording.to_owned(),
            at_ms,
            author: author.to_owned(),
            role: role.to_owned(),
            text: text.to_owned(),
            via: via.to_owned(),
            created_at: now,
        }
    }
}

pub async fn add_note(conn: &mut sqlx::AnyConnection, n: &Note) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO recording_notes (id, recording_id, at_ms, author, role, text, via, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&n.id)
    .bind(&n.recording_id)
    .bind(n.at_ms)
    .bind(&n.author)
    .bind(&n.role)
    .bind(&n.text)
    .bind(&n.via)
    .bind(n.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Notes of an entry in timeline order.
pub async fn notes(pool: &AnyPool, recording: &str) -> Result<Vec<Note>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, recording_id, at_ms, author, role, text, via, created_at \
         FROM recording_notes WHERE recording_id = $1 ORDER BY at_ms, id",
    )
    .bind(recording)
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_is_literal() {
        assert_eq!(like_pattern("Math 100%"), "%math 100\\%%");
        assert_eq!(like_pattern("a_b"), "%a\\_b%");
        assert_eq!(like_pattern("数学"), "%数学%");
    }
}
