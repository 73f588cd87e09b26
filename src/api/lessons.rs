//! Lessons: create, read, edit and delete a lesson and the occurrences it expands into.
//!
//! Writes take the schedule lock, check that the teacher and classrooms exist and are not
//! booked elsewhere at the same time (409 naming the other lesson), then write the lesson,
//! its occurrences and the audit entry in one transaction.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::audit::{self, Audit};
use super::extract::{AdminKey, Body};
use super::lesson_plan::{self, Plan};
use super::occurrences::{Occurrence, occurrence_api};
use super::problem::{ApiResult, AuthErrors, ItemErrors, Problem, WriteErrors};
use super::schools::created;
use crate::db::ids::{ClassroomId, LessonId, OccurrenceId, TeacherId};
use crate::schedule::model::{LessonMode, OccurrenceStatus, Weekday};
use crate::schedule::reconcile::{self, Changes};
use crate::schedule::store::{self, LessonRow};
use crate::schedule::time::{format_in, format_utc, zone};
use crate::state::AppState;

/// Weekly repetition of a lesson.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recurrence {
    /// The weekdays the lesson meets on.
    #[schema(min_items = 1, max_items = 7)]
    pub weekdays: Vec<Weekday>,
    /// The last date (in the lesson's time zone) an occurrence may fall on, `YYYY-MM-DD`.
    #[schema(example = "2030-04-30")]
    pub until: String,
}

/// A lesson as written by a client.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LessonInput {
    /// 1–120 characters.
    #[schema(min_length = 1, max_length = 120, example = "三年级数学：认识分数")]
    pub title: String,
    /// 1–32 characters.
    #[schema(min_length = 1, max_length = 32, example = "数学")]
    pub subject: String,
    /// 1–32 characters.
    #[schema(min_length = 1, max_length = 32, example = "三年级")]
    pub grade: String,
    pub mode: LessonMode,
    pub teacher_id: String,
    /// The classroom the teacher teaches from.
    pub master_classroom_id: String,
    /// Remote classrooms: at least one for `dedicated`, any number for `master`, none for
    /// `broadcast`; at most 50, none twice, not the master classroom.
    #[serde(default)]
    #[schema(max_items = 50)]
    pub remote_classroom_ids: Vec<String>,
    /// The (first) start: RFC 3339 with an offset, or a local date and time
    /// (`2026-03-02T08:00`) in `timezone`.
    #[schema(example = "2030-03-04T08:00:00+08:00")]
    pub start: String,
    /// The (first) end, as `start`; 1 minute to 12 hours after it.
    #[schema(example = "2030-03-04T08:45:00+08:00")]
    pub end: String,
    /// A tz database name; default `schedule.timezone` (Asia/Shanghai).
    #[serde(default)]
    #[schema(example = "Asia/Shanghai")]
    pub timezone: Option<String>,
    /// Record the lesson.
    #[serde(default)]
    pub record: bool,
    /// Repeat weekly; null or absent for a single lesson.
    #[serde(default)]
    pub recurrence: Option<Recurrence>,
}

/// `scheduled` or `cancelled` (the whole series).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LessonStatus {
    Scheduled,
    Cancelled,
}

/// A stored lesson.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lesson {
    #[schema(value_type = String, example = "les_01jd8x3k5q2w9r7t6y4u1i0o8p")]
    pub id: LessonId,
    pub title: String,
    pub subject: String,
    pub grade: String,
    pub mode: LessonMode,
    #[schema(value_type = String)]
    pub teacher_id: TeacherId,
    #[schema(value_type = String)]
    pub master_classroom_id: ClassroomId,
    #[schema(value_type = Vec<String>)]
    pub remote_classroom_ids: Vec<ClassroomId>,
    /// The first start, RFC 3339 in the lesson's time zone.
    #[schema(format = DateTime)]
    pub start: String,
    #[schema(format = DateTime)]
    pub end: String,
    pub timezone: String,
    pub record: bool,
    pub recurrence: Option<Recurrence>,
    pub status: LessonStatus,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// The API view of a stored lesson.
pub(super) fn lesson_api(row: LessonRow, remote: Vec<String>) -> Lesson {
    let tz = zone(&row.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    let recurrence = match (&row.recur_weekdays, &row.recur_until) {
        (Some(days), Some(until)) => Some(Recurrence {
            weekdays: days.split(',').filter_map(|d| d.parse().ok()).collect(),
            until: until.clone(),
        }),
        _ => None,
    };
    Lesson {
        mode: row.mode(),
        id: LessonId::from_db(row.id),
        title: row.title,
        subject: row.subject,
        grade: row.grade,
        teacher_id: TeacherId::from_db(row.teacher_id),
        master_classroom_id: ClassroomId::from_db(row.master_classroom_id),
        remote_classroom_ids: remote.into_iter().map(ClassroomId::from_db).collect(),
        start: format_in(row.starts_at, &tz),
        end: format_in(row.ends_at, &tz),
        timezone: row.timezone,
        record: row.record != 0,
        recurrence,
        status: if row.cancelled_at.is_some() {
            LessonStatus::Cancelled
        } else {
            LessonStatus::Scheduled
        },
        created_at: format_utc(row.created_at),
        updated_at: format_utc(row.updated_at),
    }
}

pub(super) fn parse_id(id: &str) -> ApiResult<LessonId> {
    LessonId::parse(id).ok_or_else(|| Problem::not_found("lesson", id))
}

/// Loads a lesson with its remote classrooms, or 404.
pub(super) async fn load(
    conn: &mut sqlx::AnyConnection,
    id: &LessonId,
) -> ApiResult<(LessonRow, Vec<String>)> {
    let row = store::load_lesson(conn, id.as_str())
        .await?
        .ok_or_else(|| Problem::not_found("lesson", id.as_str()))?;
    let remote = store::remote_classrooms(conn, id.as_str()).await?;
    Ok((row, remote))
}

/// List lessons, by first start.
#[utoipa::path(get, path = "/api/v1/lessons", tag = "lessons",
    responses((status = 200, description = "OK", body = Vec<Lesson>), AuthErrors))]
pub async fn list_lessons(
    State(state): State<AppState>,
    _key: AdminKey,
) -> ApiResult<Json<Vec<Lesson>>> {
    let mut conn = state.db.pool.acquire().await?;
    let rows: Vec<LessonRow> = sqlx::query_as(crate::db::assembled(format!(
        "SELECT {} FROM lessons ORDER BY starts_at, id",
        store::LESSON_COLUMNS
    )))
    .fetch_all(&mut *conn)
    .await?;
    let links = sqlx::query(
        "SELECT lesson_id, classroom_id FROM lesson_classrooms ORDER BY lesson_id, position",
    )
    .fetch_all(&mut *conn)
    .await?;
    use sqlx::Row;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let remote = links
            .iter()
            .filter(|l| l.get::<String, _>("lesson_id") == row.id)
            .map(|l| l.get("classroom_id"))
            .collect();
        out.push(lesson_api(row, remote));
    }
    Ok(Json(out))
}

/// A lesson and the occurrences it expanded into.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LessonWithOccurrences {
    pub lesson: Lesson,
    pub occurrences: Vec<Occurrence>,
}

/// Create a lesson; a weekly one expands into its occurrences.
#[utoipa::path(post, path = "/api/v1/lessons", tag = "lessons", request_body = LessonInput,
    responses((status = 201, description = "Created", body = LessonWithOccurrences, headers(("Location" = String))), WriteErrors))]
pub async fn create_lesson(
    State(state): State<AppState>,
    AdminKey(key): AdminKey,
    Body(input): Body<LessonInput>,
) -> ApiResult<Response> {
    let plan = lesson_plan::check(input, &state.config.schedule.timezone)?;
    let now = state.clock.now_ms();
    let id = LessonId::generate(now as u64);
    let changes = reconcile::reconcile(&[], &plan.occurrences, now, lead_ms(&state), false);
    if changes.insert.is_empty() {
        return Err(Problem::field(
            "end",
            "the lesson is over: every occurrence ends in the past",
        ));
    }
    let mut tx = state.db.write().await?;
    store::lock_schedule(&mut tx).await?;
    lesson_plan::check_references(&mut tx, &plan).await?;
    lesson_plan::check_conflicts(&mut tx, &plan, id.as_str(), &changes, &[]).await?;
    lesson_plan::insert_lesson(&mut tx, &id, &plan, now).await?;
    apply(&mut tx, &id, &changes, now).await?;
    audit::record(
        &mut tx,
        &key,
        Audit::new("lesson.create", id.as_str()).detail(plan.summary()),
    )
    .await?;
    let body = with_occurrences(&mut tx, &id, &plan.tz).await?;
    tx.commit().await?;
    Ok(created(&format!("/api/v1/lessons/{id}"), body))
}

fn lead_ms(state: &AppState) -> i64 {
    i64::try_from(state.config.schedule.link_lead.as_millis()).unwrap_or(0)
}

/// Writes the occurrence changes of a lesson.
async fn apply(
    conn: &mut sqlx::AnyConnection,
    lesson: &LessonId,
    changes: &Changes,
    now: i64,
) -> Result<(), sqlx::Error> {
    for id in &changes.delete {
        sqlx::query("DELETE FROM occurrences WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    for u in &changes.update {
        sqlx::query(
            "UPDATE occurrences SET starts_at = $1, ends_at = $2, \
             link_version = link_version + $3, updated_at = $4 WHERE id = $5",
        )
        .bind(u.start_ms)
        .bind(u.end_ms)
        .bind(i32::from(u.bump))
        .bind(now)
        .bind(&u.id)
        .execute(&mut *conn)
        .await?;
    }
    for p in &changes.insert {
        sqlx::query(
            "INSERT INTO occurrences (id, lesson_id, series_date, starts_at, ends_at, status, moved, \
             link_version, ended_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'scheduled', 0, 1, NULL, $6, $6)",
        )
        .bind(OccurrenceId::generate(now as u64).as_str())
        .bind(lesson.as_str())
        .bind(p.series_date.to_string())
        .bind(p.start_ms)
        .bind(p.end_ms)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn with_occurrences(
    conn: &mut sqlx::AnyConnection,
    id: &LessonId,
    tz: &jiff::tz::TimeZone,
) -> ApiResult<LessonWithOccurrences> {
    let (row, remote) = load(conn, id).await?;
    let occurrences = store::occurrences_of(conn, id.as_str()).await?;
    let tz_name = row.timezone.clone();
    Ok(LessonWithOccurrences {
        lesson: lesson_api(row, remote),
        occurrences: occurrences
            .into_iter()
            .map(|o| occurrence_api(o, tz, &tz_name))
            .collect(),
    })
}

/// Get a lesson and its occurrences.
#[utoipa::path(get, path = "/api/v1/lessons/{id}", tag = "lessons",
    params(("id" = String, Path, description = "Lesson id")),
    responses((status = 200, description = "OK", body = LessonWithOccurrences), ItemErrors))]
pub async fn get_lesson(
    State(state): State<AppState>,
    _key: AdminKey,
    Path(id): Path<String>,
) -> ApiResult<Json<LessonWithOccurrences>> {
    let id = parse_id(&id)?;
    let mut conn = state.db.pool.acquire().await?;
    let (row, _) = load(&mut conn, &id).await?;
    let tz = zone(&row.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    Ok(Json(with_occurrences(&mut conn, &id, &tz).await?))
}

/// Replace a lesson. Occurrences whose links are already valid, and ended ones, stay as they
/// were; occurrences moved or cancelled on their own keep that; the others follow the new
/// plan. Changed times and casts revoke the affected occurrences' links.
#[utoipa::path(put, path = "/api/v1/lessons/{id}", tag = "lessons", request_body = LessonInput,
    params(("id" = String, Path, description = "Lesson id")),
    responses((status = 200, description = "OK", body = LessonWithOccurrences), WriteErrors))]
pub async fn update_lesson(
    State(state): State<AppState>,
    AdminKey(key): AdminKey,
    Path(id): Path<String>,
    Body(input): Body<LessonInput>,
) -> ApiResult<Json<LessonWithOccurrences>> {
    let id = parse_id(&id)?;
    let plan: Plan = lesson_plan::check(input, &state.config.schedule.timezone)?;
    let now = state.clock.now_ms();
    let mut tx = state.db.write().await?;
    store::lock_schedule(&mut tx).await?;
    let (old, old_remote) = load(&mut tx, &id).await?;
    if old.cancelled_at.is_some() {
        return Err(Problem::state(
            "the lesson was cancelled; create a new one instead",
        ));
    }
    lesson_plan::check_references(&mut tx, &plan).await?;
    let cast_changed = old.teacher_id != plan.teacher.as_str()
        || old.master_classroom_id != plan.master.as_str()
        || old_remote != plan.remote_strings()
        || old.mode() != plan.mode;
    let existing = store::occurrences_of(&mut tx, id.as_str()).await?;
    let changes = reconcile::reconcile(
        &existing,
        &plan.occurrences,
        now,
        lead_ms(&state),
        cast_changed,
    );
    // Kept occurrences count too when the teacher or classrooms change.
    let kept: Vec<_> = existing
        .iter()
        .filter(|o| {
            cast_changed
                && o.status() == OccurrenceStatus::Scheduled
                && !reconcile::frozen(o, now, lead_ms(&state))
                && !changes.delete.contains(&o.id)
                && !changes.update.iter().any(|u| u.id == o.id)
        })
        .map(|o| (o.starts_at, o.ends_at))
        .collect();
    lesson_plan::check_conflicts(&mut tx, &plan, id.as_str(), &changes, &kept).await?;
    lesson_plan::update_lesson(&mut tx, &id, &plan, now).await?;
    apply(&mut tx, &id, &changes, now).await?;
    audit::record(
        &mut tx,
        &key,
        Audit::new("lesson.update", id.as_str()).detail(plan.summary()),
    )
    .await?;
    let body = with_occurrences(&mut tx, &id, &plan.tz).await?;
    tx.commit().await?;
    Ok(Json(body))
}

/// Delete a lesson with all its occurrences; its live rooms close.
#[utoipa::path(delete, path = "/api/v1/lessons/{id}", tag = "lessons",
    params(("id" = String, Path, description = "Lesson id")),
    responses((status = 204, description = "Deleted"), WriteErrors))]
pub async fn delete_lesson(
    State(state): State<AppState>,
    AdminKey(key): AdminKey,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id)?;
    let mut tx = state.db.write().await?;
    store::lock_schedule(&mut tx).await?;
    let (row, _) = load(&mut tx, &id).await?;
    let occurrences = store::occurrences_of(&mut tx, id.as_str()).await?;
    sqlx::query("DELETE FROM occurrences WHERE lesson_id = $1")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM lesson_classrooms WHERE lesson_id = $1")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM lessons WHERE id = $1")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        &key,
        Audit::new("lesson.delete", id.as_str()).detail(serde_json::json!({"title": row.title})),
    )
    .await?;
    tx.commit().await?;
    // This node closes at once; other nodes' schedulers find the occurrence gone.
    for o in occurrences {
        super::lesson_ops::close_live(&state, &o.id);
    }
    Ok(StatusCode::NO_CONTENT)
}
