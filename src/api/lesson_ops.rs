//! What admins do to a lesson beyond editing it: cancel the series, end the live meeting, get
//! its room links, reissue them (revoking the old ones).

use axum::Json;
use axum::extract::{Path, State};
use jiff::tz::TimeZone;
use ketang_sfu::{LeaveReason, RoomId};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};

use super::audit::{self, Audit};
use super::extract::{AdminKey, Params};
use super::lessons::{LessonWithOccurrences, parse_id};
use super::occurrences::{Occurrence, occurrence_api};
use super::problem::{ApiResult, Problem, WriteErrors};
use crate::db::ids::{ClassroomId, LessonId, OccurrenceId};
use crate::schedule::links::{self, Cast, LinkKind, LinkWindow, classroom_display_name};
use crate::schedule::model::OccurrenceStatus;
use crate::schedule::store::{self, LessonRow, OccurrenceRow};
use crate::schedule::time::{format_in, zone};
use crate::state::AppState;

/// Closes the occurrence's room if it is live on this node (other nodes' schedulers follow).
pub fn close_live(state: &AppState, occurrence: &str) {
    if let Ok(room) = RoomId::new(occurrence)
        && state.media.close_room(&room, LeaveReason::RoomClosed)
    {
        tracing::info!(%room, "closed the room of an occurrence that was cancelled, ended or deleted");
    }
}

/// Which occurrence: `?occurrence=ID`, or a default chosen by the operation.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OccurrenceQuery {
    /// An occurrence of the lesson; default: the current one, else the next.
    pub occurrence: Option<String>,
}

/// Cancel every occurrence of the lesson that is not over; live rooms close.
#[utoipa::path(post, path = "/api/v1/lessons/{id}/cancel", tag = "lessons",
    params(("id" = String, Path, description = "Lesson id")),
    responses((status = 200, description = "OK", body = LessonWithOccurrences), WriteErrors))]
pub async fn cancel_lesson(
    State(state): State<AppState>,
    AdminKey(key): AdminKey,
    Path(id): Path<String>,
) -> ApiResult<Json<LessonWithOccurrences>> {
    let id = parse_id(&id)?;
    let now = state.clock.now_ms();
    let mut tx = state.db.write().await?;
    store::lock_schedule(&mut tx).await?;
    let (row, _) = super::lessons::load(&mut tx, &id).await?;
    let occurrences = store::occurrences_of(&mut tx, id.as_str()).await?;
    let cancelled: Vec<&OccurrenceRow> = occurrences
        .iter()
        .filter(|o| o.status() == OccurrenceStatus::Scheduled && o.ends_at > now)
        .collect();
    if row.cancelled_at.is_none() {
        sqlx::query("UPDATE lessons SET cancelled_at = $1, updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE occurrences SET status = 'cancelled', updated_at = $1 \
             WHERE lesson_id = $2 AND status = 'scheduled' AND ends_at > $1",
        )
        .bind(now)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            &key,
            Audit::new("lesson.cancel", id.as_str())
                .detail(serde_json::json!({"occurrences": cancelled.len()})),
        )
        .await?;
    }
    let (row, remote) = super::lessons::load(&mut tx, &id).await?;
    let tz = zone(&row.timezone).unwrap_or(TimeZone::UTC);
    let tz_name = row.timezone.clone();
    let list = store::occurrences_of(&mut tx, id.as_str()).await?;
    tx.commit().await?;
    for o in cancelled {
        close_live(&state, &o.id);
    }
    Ok(Json(LessonWithOccurrences {
        lesson: super::lessons::lesson_api(row, remote),
        occurrences: list
            .into_iter()
            .map(|o| occurrence_api(o, &tz, &tz_name))
            .collect(),
    }))
}

fn lead_grace(state: &AppState) -> (std::time::Duration, std::time::Duration) {
    (
        state.config.schedule.link_lead,
        state.config.schedule.link_grace,
    )
}

fn window(state: &AppState, o: &OccurrenceRow) -> LinkWindow {
    let (lead, grace) = lead_grace(state);
    LinkWindow::of(o.starts_at, o.ends_at, lead, grace)
}

/// The occurrence named by `q`, which must belong to `lesson`; or `default`'s pick.
async fn pick(
    conn: &mut sqlx::AnyConnection,
    lesson: &LessonId,
    q: &OccurrenceQuery,
    default: impl Fn(&OccurrenceRow) -> bool,
) -> ApiResult<Option<OccurrenceRow>> {
    match &q.occurrence {
        Some(o) => {
            let id = OccurrenceId::parse(o).ok_or_else(|| {
                Problem::field("occurrence", "must be an occurrence id (occ_...)")
            })?;
            let row = store::load_occurrence(conn, id.as_str())
                .await?
                .filter(|r| r.lesson_id == lesson.as_str())
                .ok_or_else(|| Problem::not_found("occurrence of this lesson", id.as_str()))?;
            Ok(Some(row))
        }
        None => Ok(store::occurrences_of(conn, lesson.as_str())
            .await?
            .into_iter()
            .find(|o| default(o))),
    }
}

/// End the lesson's live occurrence now: its room closes and its links are refused
/// (`lessonEnded`).
#[utoipa::path(post, path = "/api/v1/lessons/{id}/end", tag = "lessons", params(("id" = String, Path, description = "Lesson id"), OccurrenceQuery),
    responses((status = 200, description = "OK", body = Occurrence), WriteErrors))]
pub async fn end_lesson(
    State(state): State<AppState>,
    AdminKey(key): AdminKey,
    Path(id): Path<String>,
    Params(q): Params<OccurrenceQuery>,
) -> ApiResult<Json<Occurrence>> {
    let id = parse_id(&id)?;
    let now = state.clock.now_ms();
    let mut tx = state.db.write().await?;
    let (row, _) = super::lessons::load(&mut tx, &id).await?;
    let current = |o: &OccurrenceRow| {
        o.status() == OccurrenceStatus::Scheduled && window(&state, o).contains(now)
    };
    let o = pick(&mut tx, &id, &q, current)
        .await?
        .ok_or_else(|| Problem::state("no occurrence of this lesson is in progress"))?;
    match o.status() {
        OccurrenceStatus::Scheduled if window(&state, &o).contains(now) => {}
        OccurrenceStatus::Scheduled => {
            return Err(Problem::state("the occurrence is not in progress"));
        }
        OccurrenceStatus::Cancelled => return Err(Problem::state("the occurrence is cancelled")),
        OccurrenceStatus::Ended => return Err(Problem::state("the occurrence has ended already")),
    }
    sqlx::query(
        "UPDATE occurrences SET status = 'ended', ended_at = $1, updated_at = $1 WHERE id = $2",
    )
    .bind(now)
    .bind(&o.id)
    .execute(&mut *tx)
    .await?;
    audit::record(&mut tx, &key, Audit::new("occurrence.end", o.id.clone())).await?;
    let ended = store::load_occurrence(&mut tx, &o.id)
        .await?
        .ok_or_else(Problem::internal)?;
    tx.commit().await?;
    close_live(&state, &o.id);
    let tz = zone(&row.timezone).unwrap_or(TimeZone::UTC);
    Ok(Json(occurrence_api(ended, &tz, &row.timezone)))
}

/// One room link.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    pub kind: LinkKind,
    /// `teacher`, `classroom`, `observer` or `viewer`.
    pub role: String,
    /// The name the link shows in the room.
    pub name: String,
    /// For classroom links.
    pub classroom_id: Option<String>,
    /// `{public_url}/r/{room}?t={token}`: open it in a browser.
    pub url: String,
    /// The bare token (for WHIP/WHEP `Authorization: Bearer`).
    pub token: String,
}

/// The room links of one occurrence.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Links {
    pub lesson_id: String,
    pub occurrence_id: String,
    pub room: String,
    pub link_version: u32,
    /// RFC 3339: the links work from here...
    #[schema(format = DateTime)]
    pub valid_from: String,
    /// ...to here.
    #[schema(format = DateTime)]
    pub valid_until: String,
    #[schema(format = DateTime)]
    pub start: String,
    #[schema(format = DateTime)]
    pub end: String,
    pub links: Vec<Link>,
}

/// The default occurrence for links: the earliest one whose links still work.
fn upcoming(state: &AppState, now: i64) -> impl Fn(&OccurrenceRow) -> bool + '_ {
    move |o| o.status() == OccurrenceStatus::Scheduled && window(state, o).until_ms > now
}

/// Who is in the lesson, with display names.
async fn lesson_cast(conn: &mut sqlx::AnyConnection, l: &LessonRow) -> ApiResult<Cast> {
    let teacher = sqlx::query("SELECT name FROM teachers WHERE id = $1")
        .bind(&l.teacher_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(Problem::internal)?;
    let mut ids = vec![l.master_classroom_id.clone()];
    ids.extend(store::remote_classrooms(conn, &l.id).await?);
    let mut named = Vec::with_capacity(ids.len());
    for id in ids {
        let r = sqlx::query(
            "SELECT c.name AS classroom, s.name AS school FROM classrooms c \
             JOIN schools s ON s.id = c.school_id WHERE c.id = $1",
        )
        .bind(&id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(Problem::internal)?;
        let name = classroom_display_name(
            &r.get::<String, _>("school"),
            &r.get::<String, _>("classroom"),
        );
        named.push((ClassroomId::from_db(id), name));
    }
    let master = named.remove(0);
    Ok(Cast {
        teacher_name: teacher.get("name"),
        master,
        remote: named,
    })
}

async fn mint_links(
    state: &AppState,
    conn: &mut sqlx::AnyConnection,
    l: &LessonRow,
    o: &OccurrenceRow,
) -> ApiResult<Links> {
    let now = state.clock.now_ms();
    match o.status() {
        OccurrenceStatus::Scheduled => {}
        OccurrenceStatus::Cancelled => return Err(Problem::state("the occurrence is cancelled")),
        OccurrenceStatus::Ended => return Err(Problem::state("the occurrence has ended")),
    }
    let w = window(state, o);
    if now >= w.until_ms {
        return Err(Problem::state("the occurrence is over"));
    }
    let cast = lesson_cast(conn, l).await?;
    let occurrence = OccurrenceId::from_db(o.id.clone());
    let minted = links::mint(
        &state.tokens,
        &state.config.public_base_url(),
        l.mode(),
        &occurrence,
        o.link_version(),
        w,
        links::plan(l.mode(), &cast),
        state.clock.now(),
    )
    .map_err(|e| {
        tracing::error!(error = %e, "cannot mint lesson links");
        Problem::internal()
    })?;
    let tz = zone(&l.timezone).unwrap_or(TimeZone::UTC);
    Ok(Links {
        lesson_id: l.id.clone(),
        occurrence_id: o.id.clone(),
        room: o.id.clone(),
        link_version: o.link_version(),
        valid_from: format_in(w.from_ms, &tz),
        valid_until: format_in(w.until_ms, &tz),
        start: format_in(o.starts_at, &tz),
        end: format_in(o.ends_at, &tz),
        links: minted
            .into_iter()
            .map(|m| Link {
                kind: m.spec.kind,
                role: m.spec.role.as_str().to_owned(),
                name: m.spec.name,
                classroom_id: m.spec.classroom.map(|c| c.to_string()),
                url: m.url,
                token: m.token,
            })
            .collect(),
    })
}

/// The room links of an occurrence: the teacher, the master classroom, each remote classroom,
/// an observer link (master mode), a viewer link (broadcast mode). Each call mints fresh
/// tokens; all links of the occurrence's current version work, from `link_lead` before the
/// start to `link_grace` after the end.
#[utoipa::path(get, path = "/api/v1/lessons/{id}/links", tag = "lessons", params(("id" = String, Path, description = "Lesson id"), OccurrenceQuery),
    responses((status = 200, description = "OK", body = Links), WriteErrors))]
pub async fn get_links(
    State(state): State<AppState>,
    _key: AdminKey,
    Path(id): Path<String>,
    Params(q): Params<OccurrenceQuery>,
) -> ApiResult<Json<Links>> {
    let id = parse_id(&id)?;
    let now = state.clock.now_ms();
    let mut conn = state.db.pool.acquire().await?;
    let (l, _) = super::lessons::load(&mut conn, &id).await?;
    let o = pick(&mut conn, &id, &q, upcoming(&state, now))
        .await?
        .ok_or_else(|| Problem::state("the lesson has no upcoming occurrence"))?;
    Ok(Json(mint_links(&state, &mut conn, &l, &o).await?))
}

/// Reissue an occurrence's links: every link handed out before stops working
/// (`tokenRevoked`); the new ones are returned.
#[utoipa::path(post, path = "/api/v1/lessons/{id}/links/reissue", tag = "lessons", params(("id" = String, Path, description = "Lesson id"), OccurrenceQuery),
    responses((status = 200, description = "OK", body = Links), WriteErrors))]
pub async fn reissue_links(
    State(state): State<AppState>,
    AdminKey(key): AdminKey,
    Path(id): Path<String>,
    Params(q): Params<OccurrenceQuery>,
) -> ApiResult<Json<Links>> {
    let id = parse_id(&id)?;
    let now = state.clock.now_ms();
    let mut tx = state.db.write().await?;
    let (l, _) = super::lessons::load(&mut tx, &id).await?;
    let o = pick(&mut tx, &id, &q, upcoming(&state, now))
        .await?
        .ok_or_else(|| Problem::state("the lesson has no upcoming occurrence"))?;
    // Checked before the version moves, so a refused reissue changes nothing.
    mint_links(&state, &mut tx, &l, &o).await?;
    sqlx::query(
        "UPDATE occurrences SET link_version = link_version + 1, updated_at = $1 WHERE id = $2",
    )
    .bind(now)
    .bind(&o.id)
    .execute(&mut *tx)
    .await?;
    let o = store::load_occurrence(&mut tx, &o.id)
        .await?
        .ok_or_else(Problem::internal)?;
    audit::record(
        &mut tx,
        &key,
        Audit::new("links.reissue", o.id.clone())
            .detail(serde_json::json!({"linkVersion": o.link_version()})),
    )
    .await?;
    let links = mint_links(&state, &mut tx, &l, &o).await?;
    tx.commit().await?;
    // The old links stop working now, also for those already in the room (WHIP/WHEP too).
    if let Ok(room) = RoomId::new(&o.id) {
        state.end_revoked(&room, o.link_version());
    }
    Ok(Json(links))
}

/// A teacher's own lessons with the next occurrence's teacher link, for the teacher portal
/// (`crate::oidc`): lessons of other teachers and other roles' links are never included.
pub(crate) async fn teacher_links(
    state: &AppState,
    teacher_id: &str,
) -> ApiResult<Vec<(String, Links)>> {
    let mut conn = state.db.pool.acquire().await?;
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM lessons WHERE teacher_id = $1 AND cancelled_at IS NULL ORDER BY starts_at, id",
    )
    .bind(teacher_id)
    .fetch_all(&mut *conn)
    .await?;
    let now = state.clock.now_ms();
    let mut out = Vec::new();
    for id in ids {
        let id = LessonId::from_db(id);
        let (l, _) = super::lessons::load(&mut conn, &id).await?;
        let q = OccurrenceQuery { occurrence: None };
        let Some(o) = pick(&mut conn, &id, &q, upcoming(state, now)).await? else {
            continue;
        };
        let mut links = mint_links(state, &mut conn, &l, &o).await?;
        links.links.retain(|k| k.role == "teacher");
        out.push((l.title.clone(), links));
    }
    Ok(out)
}
