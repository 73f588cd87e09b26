//! Occurrences: the timetable (every meeting in a date range) and changes to one meeting:
//! move it, cancel it, restore it.

use axum::Json;
use axum::extract::{Path, State};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};

use super::audit::{self, Audit};
use super::extract::{AdminKey, Body, Errors, Params};
use super::lesson_plan::check_windows;
use super::lessons::parse_id as parse_lesson_id;
use super::problem::{ApiResult, ItemErrors, Problem, QueryErrors, WriteErrors};
use crate::db::ids::{ClassroomId, LessonId, OccurrenceId, TeacherId};
use crate::schedule::conflict::Window;
use crate::schedule::model::{LessonMode, OccurrenceStatus};
use crate::schedule::store::{self, Exclude, OccurrenceRow};
use crate::schedule::time::{format_in, format_utc, parse_instant, zone};
use crate::state::AppState;

/// One meeting of a lesson.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Occurrence {
    #[schema(value_type = String, example = "occ_01jd8x3k5q2w9r7t6y4u1i0o8p")]
    pub id: OccurrenceId,
    #[schema(value_type = String)]
    pub lesson_id: LessonId,
    /// The room it meets in (the same as the id).
    pub room: String,
    /// The series date it stands for (local), `YYYY-MM-DD`; kept when it is moved.
    pub series_date: String,
    /// RFC 3339 in the lesson's time zone.
    #[schema(format = DateTime)]
    pub start: String,
    #[schema(format = DateTime)]
    pub end: String,
    pub timezone: String,
    pub status: OccurrenceStatus,
    /// Moved on its own: edits of the series leave its time alone.
    pub moved: bool,
    /// In every link; reissuing links increments it.
    pub link_version: u32,
    /// When an admin ended it (RFC 3339).
    #[schema(format = DateTime)]
    pub ended_at: Option<String>,
}

/// The API view of a stored occurrence.
pub fn occurrence_api(o: OccurrenceRow, tz: &TimeZone, tz_name: &str) -> Occurrence {
    Occurrence {
        status: o.status(),
        link_version: o.link_version(),
        room: o.id.clone(),
        id: OccurrenceId::from_db(o.id),
        lesson_id: LessonId::from_db(o.lesson_id),
        series_date: o.series_date,
        start: format_in(o.starts_at, tz),
        end: format_in(o.ends_at, tz),
        timezone: tz_name.to_owned(),
        moved: o.moved != 0,
        ended_at: o.ended_at.map(format_utc),
    }
}

/// The lesson of a timetable entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LessonSummary {
    pub id: String,
    pub title: String,
    pub subject: String,
    pub grade: String,
    pub mode: LessonMode,
    pub teacher_id: String,
    pub master_classroom_id: String,
    pub remote_classroom_ids: Vec<String>,
}

/// A timetable entry: an occurrence and its lesson.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimetableEntry {
    pub occurrence: Occurrence,
    pub lesson: LessonSummary,
}

/// `GET /api/v1/occurrences` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct TimetableQuery {
    /// Start of the range: RFC 3339, or a local date-time / date (`2026-03-02`) in
    /// `schedule.timezone`.
    pub from: String,
    /// End of the range (exclusive), as `from`; at most 62 days after it.
    pub to: String,
    /// Only this teacher's lessons.
    pub teacher_id: Option<String>,
    /// Only lessons in this classroom (master or remote).
    pub classroom_id: Option<String>,
}

/// Longest timetable range.
const MAX_RANGE_MS: i64 = 62 * 86_400_000;

fn range_bound(s: &str, tz: &TimeZone) -> Result<i64, String> {
    // A bare date is the start of that day.
    let s = s.trim();
    if s.len() == 10 {
        return parse_instant(&format!("{s}T00:00"), tz);
    }
    parse_instant(s, tz)
}

/// The occurrences that overlap a time range, with their lessons (a timetable).
#[utoipa::path(get, path = "/api/v1/occurrences", tag = "occurrences", params(TimetableQuery),
    responses((status = 200, description = "OK", body = Vec<TimetableEntry>), QueryErrors))]
pub async fn timetable(
    State(state): State<AppState>,
    _key: AdminKey,
    Params(q): Params<TimetableQuery>,
) -> ApiResult<Json<Vec<TimetableEntry>>> {
    let tz = zone(&state.config.schedule.timezone).unwrap_or(TimeZone::UTC);
    let mut e = Errors::default();
    let from = e.check("from", range_bound(&q.from, &tz));
    let to = e.check("to", range_bound(&q.to, &tz));
    let teacher = q.teacher_id.as_deref().map(TeacherId::parse);
    if matches!(teacher, Some(None)) {
        e.add("teacherId", "must be a teacher id (tch_...)");
    }
    let classroom = q.classroom_id.as_deref().map(ClassroomId::parse);
    if matches!(classroom, Some(None)) {
        e.add("classroomId", "must be a classroom id (cls_...)");
    }
    if let (Some(f), Some(t)) = (from, to) {
        if t <= f {
            e.add("to", "must be after from");
        } else if t - f > MAX_RANGE_MS {
            e.add("to", "the range may span at most 62 days");
        }
    }
    let (Some(from), Some(to)) = (from, to) else {
        return Err(Problem::invalid(e.0));
    };
    e.finish()?;
    let teacher = teacher.flatten().map(|t| t.to_string());
    let classroom = classroom.flatten().map(|c| c.to_string());
    let mut conn = state.db.pool.acquire().await?;
    let rows = sqlx::query(
        "SELECT o.id AS occurrence_id, l.id AS lesson_id FROM occurrences o JOIN lessons l ON l.id = o.lesson_id \
         WHERE o.starts_at < $1 AND o.ends_at > $2 AND ($3 IS NULL OR l.teacher_id = $3) \
         AND ($4 IS NULL OR l.master_classroom_id = $4 OR EXISTS (SELECT 1 FROM lesson_classrooms lc \
         WHERE lc.lesson_id = l.id AND lc.classroom_id = $4)) ORDER BY o.starts_at, o.id LIMIT 2000",
    )
    .bind(to)
    .bind(from)
    .bind(teacher)
    .bind(classroom)
    .fetch_all(&mut *conn)
    .await?;
    let occurrence_ids: Vec<String> = rows.iter().map(|r| r.get("occurrence_id")).collect();
    let mut lesson_ids: Vec<String> = rows.iter().map(|r| r.get("lesson_id")).collect();
    lesson_ids.sort();
    lesson_ids.dedup();
    let occurrences = store::occurrences_by_id(&mut conn, &occurrence_ids).await?;
    let mut lessons = Vec::new();
    for id in &lesson_ids {
        if let Some(l) = store::load_lesson(&mut conn, id).await? {
            let remote = store::remote_classrooms(&mut conn, id).await?;
            lessons.push((l, remote));
        }
    }
    let mut out = Vec::with_capacity(occurrence_ids.len());
    for id in occurrence_ids {
        let Some(o) = occurrences.iter().find(|o| o.id == id) else {
            continue;
        };
        let Some((l, remote)) = lessons.iter().find(|(l, _)| l.id == o.lesson_id) else {
            continue;
        };
        let ltz = zone(&l.timezone).unwrap_or(TimeZone::UTC);
        out.push(TimetableEntry {
            occurrence: occurrence_api(o.clone(), &ltz, &l.timezone),
            lesson: LessonSummary {
                id: l.id.clone(),
                title: l.title.clone(),
                subject: l.subject.clone(),
                grade: l.grade.clone(),
                mode: l.mode(),
                teacher_id: l.teacher_id.clone(),
                master_classroom_id: l.master_classroom_id.clone(),
                remote_classroom_ids: remote.clone(),
            },
        });
    }
    Ok(Json(out))
}

fn parse_id(id: &str) -> ApiResult<OccurrenceId> {
    OccurrenceId::parse(id).ok_or_else(|| Problem::not_found("occurrence", id))
}

/// Loads an occurrence with its lesson's time zone.
async fn load(
    conn: &mut sqlx::AnyConnection,
    id: &OccurrenceId,
) -> ApiResult<(OccurrenceRow, store::LessonRow)> {
    let o = store::load_occurrence(conn, id.as_str())
        .await?
        .ok_or_else(|| Problem::not_found("occurrence", id.as_str()))?;
    let l = store::load_lesson(conn, &o.lesson_id)
        .await?
        .ok_or_else(Problem::internal)?;
    Ok((o, l))
}

async fn reload(conn: &mut sqlx::AnyConnection, id: &OccurrenceId) -> ApiResult<Occurrence> {
    let (o, l) = load(conn, id).await?;
    let tz = zone(&l.timezone).unwrap_or(TimeZone::UTC);
    Ok(occurrence_api(o, &tz, &l.timezone))
}

/// Get an occurrence.
#[utoipa::path(get, path = "/api/v1/occurrences/{id}", tag = "occurrences",
    params(("id" = String, Path, description = "Occurrence id")),
    responses((status = 200, description = "OK", body = Occurrence), ItemErrors))]
pub async fn get_occurrence(
    State(state): State<AppState>,
    _key: AdminKey,
    Path(id): Path<String>,
) -> ApiResult<Json<Occurrence>> {
    let id = parse_id(&id)?;
    let mut conn = state.db.pool.acquire().await?;
    Ok(Json(reload(&mut conn, &id).await?))
}

/// A new time for one occurrence.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OccurrenceInput {
    /// RFC 3339, or a local date and time in the lesson's time zone.
    #[schema(example = "2030-03-05T10:00:00+08:00")]
    pub start: String,
    #[schema(example = "2030-03-05T10:45:00+08:00")]
    pub end: String,
}

/// The teacher and classrooms of a stored lesson.
async fn cast(
    conn: &mut sqlx::AnyConnection,
    l: &store::LessonRow,
) -> ApiResult<(TeacherId, Vec<ClassroomId>)> {
    let mut classrooms = vec![ClassroomId::from_db(l.master_classroom_id.clone())];
    classrooms.extend(
        store::remote_classrooms(conn, &l.id)
            .await?
            .into_iter()
            .map(ClassroomId::from_db),
    );
    Ok((TeacherId::from_db(l.teacher_id.clone()), classrooms))
}

/// Move one occurrence (the series keeps its time). Its links are revoked: fetch new ones.
#[utoipa::path(put, path = "/api/v1/occurrences/{id}", tag = "occurrences", request_body = OccurrenceInput,
    params(("id" = String, Path, description = "Occurrence id")),
    responses((status = 200, description = "OK", body = Occurrence), WriteErrors))]
pub async fn move_occurrence(
    State(state): State<AppState>,
    AdminKey(key): AdminKey,
    Path(id): Path<String>,
    Body(input): Body<OccurrenceInput>,
) -> ApiResult<Json<Occurrence>> {
    let id = parse_id(&id)?;
    let now = state.clock.now_ms();
    let mut tx = state.db.write().await?;
    store::lock_schedule(&mut tx).await?;
    let (o, l) = load(&mut tx, &id).await?;
    let tz = zone(&l.timezone).unwrap_or(TimeZone::UTC);
    let mut e = Errors::default();
    let start = e.check("start", parse_instant(&input.start, &tz));
    let end = e.check("end", parse_instant(&input.end, &tz));
    if let (Some(s), Some(t)) = (start, end) {
        if t <= s {
            e.add("end", "must be after start");
        } else if t - s > 12 * 3_600_000 || t - s < 60_000 {
            e.add("end", "a lesson lasts from a minute to 12 hours");
        } else if t <= now {
            e.add("end", "must be in the future");
        }
    }
    let (Some(start), Some(end)) = (start, end) else {
        return Err(Problem::invalid(e.0));
    };
    e.finish()?;
    match o.status() {
        OccurrenceStatus::Scheduled => {}
        OccurrenceStatus::Cancelled => {
            return Err(Problem::state(
                "the occurrence is cancelled; restore it first",
            ));
        }
        OccurrenceStatus::Ended => return Err(Problem::state("the occurrence has ended")),
    }
    let (teacher, classrooms) = cast(&mut tx, &l).await?;
    let window = Window {
        start_ms: start,
        end_ms: end,
    };
    check_windows(
        &mut tx,
        &[window],
        &teacher,
        &classrooms,
        Exclude::Occurrence(id.as_str()),
        &tz,
    )
    .await?;
    sqlx::query(
        "UPDATE occurrences SET starts_at = $1, ends_at = $2, moved = 1, \
         link_version = link_version + 1, updated_at = $3 WHERE id = $4",
    )
    .bind(start)
    .bind(end)
    .bind(now)
    .bind(id.as_str())
    .execute(&mut *tx)
    .await?;
    let detail = serde_json::json!({
        "from": [format_in(o.starts_at, &tz), format_in(o.ends_at, &tz)],
        "to": [format_in(start, &tz), format_in(end, &tz)],
    });
    audit::record(
        &mut tx,
        &key,
        Audit::new("occurrence.move", id.as_str()).detail(detail),
    )
    .await?;
    let body = reload(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(body))
}

/// Cancel one occurrence: its links are refused (`lessonCancelled`) and a live room closes.
#[utoipa::path(post, path = "/api/v1/occurrences/{id}/cancel", tag = "occurrences",
    params(("id" = String, Path, description = "Occurrence id")),
    responses((status = 200, description = "OK", body = Occurrence), WriteErrors))]
pub async fn cancel_occurrence(
    State(state): State<AppState>,
    AdminKey(key): AdminKey,
    Path(id): Path<String>,
) -> ApiResult<Json<Occurrence>> {
    let id = parse_id(&id)?;
    let now = state.clock.now_ms();
    let mut tx = state.db.write().await?;
    let (o, _) = load(&mut tx, &id).await?;
    match o.status() {
        OccurrenceStatus::Ended => return Err(Problem::state("the occurrence has ended")),
        OccurrenceStatus::Cancelled => {}
        OccurrenceStatus::Scheduled => {
            sqlx::query(
                "UPDATE occurrences SET status = 'cancelled', updated_at = $1 WHERE id = $2",
            )
            .bind(now)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
            audit::record(&mut tx, &key, Audit::new("occurrence.cancel", id.as_str())).await?;
        }
    }
    let body = reload(&mut tx, &id).await?;
    tx.commit().await?;
    super::lesson_ops::close_live(&state, id.as_str());
    Ok(Json(body))
}

/// Restore a cancelled occurrence that is not over yet (checked for conflicts again).
#[utoipa::path(post, path = "/api/v1/occurrences/{id}/restore", tag = "occurrences",
    params(("id" = String, Path, description = "Occurrence id")),
    responses((status = 200, description = "OK", body = Occurrence), WriteErrors))]
pub async fn restore_occurrence(
    State(state): State<AppState>,
    AdminKey(key): AdminKey,
    Path(id): Path<String>,
) -> ApiResult<Json<Occurrence>> {
    let id = parse_id(&id)?;
    let now = state.clock.now_ms();
    let mut tx = state.db.write().await?;
    store::lock_schedule(&mut tx).await?;
    let (o, l) = load(&mut tx, &id).await?;
    if o.status() != OccurrenceStatus::Cancelled {
        return Err(Problem::state(
            "only a cancelled occurrence can be restored",
        ));
    }
    if l.cancelled_at.is_some() {
        return Err(Problem::state("the whole lesson was cancelled"));
    }
    if o.ends_at <= now {
        return Err(Problem::state("the occurrence is over"));
    }
    let tz = zone(&l.timezone).unwrap_or(TimeZone::UTC);
    let (teacher, classrooms) = cast(&mut tx, &l).await?;
    let window = Window {
        start_ms: o.starts_at,
        end_ms: o.ends_at,
    };
    check_windows(
        &mut tx,
        &[window],
        &teacher,
        &classrooms,
        Exclude::Occurrence(id.as_str()),
        &tz,
    )
    .await?;
    sqlx::query("UPDATE occurrences SET status = 'scheduled', updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    audit::record(&mut tx, &key, Audit::new("occurrence.restore", id.as_str())).await?;
    let body = reload(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(body))
}

/// The occurrences of a lesson, in time order.
#[utoipa::path(get, path = "/api/v1/lessons/{id}/occurrences", tag = "lessons",
    params(("id" = String, Path, description = "Lesson id")),
    responses((status = 200, description = "OK", body = Vec<Occurrence>), ItemErrors))]
pub async fn lesson_occurrences(
    State(state): State<AppState>,
    _key: AdminKey,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Occurrence>>> {
    let id = parse_lesson_id(&id)?;
    let mut conn = state.db.pool.acquire().await?;
    let l = store::load_lesson(&mut conn, id.as_str())
        .await?
        .ok_or_else(|| Problem::not_found("lesson", id.as_str()))?;
    let tz = zone(&l.timezone).unwrap_or(TimeZone::UTC);
    let rows = store::occurrences_of(&mut conn, id.as_str()).await?;
    Ok(Json(
        rows.into_iter()
            .map(|o| occurrence_api(o, &tz, &l.timezone))
            .collect(),
    ))
}
