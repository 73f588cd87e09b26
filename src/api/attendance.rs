//! `GET /api/v1/lessons/{id}/attendance`: who of the lesson's teacher and classrooms was in
//! the room of each occurrence, when, for how long, how often they reconnected and whether
//! they were called on (src/attendance). JSON, or CSV with `Accept: text/csv`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use jiff::tz::TimeZone;
use serde::Deserialize;
use sqlx::Row;
use utoipa::IntoParams;

use super::extract::{AdminKey, Params};
use super::lessons::parse_id;
use super::problem::{ApiResult, Problem};
use crate::attendance::report::{self, AttendanceReport, OccurrenceAttendance};
use crate::attendance::summary::{self, Expected, ParticipantKind};
use crate::attendance::{csv, ledger, store as attendance_store};
use crate::db::ids::OccurrenceId;
use crate::schedule::links::classroom_display_name;
use crate::schedule::store::{self, LessonRow, OccurrenceRow};
use crate::schedule::time::{format_in, zone};
use crate::state::AppState;

/// Which occurrences.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AttendanceQuery {
    /// One occurrence of the lesson; default: every occurrence whose links have opened
    /// (`schedule.link_lead` before its start) or that has records, by start.
    pub occurrence: Option<String>,
}

/// 401, 404 and 422 (a bad `occurrence`).
#[derive(utoipa::IntoResponses)]
pub enum AttendanceErrors {
    /// No API key, or an unknown or revoked one.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(super::problem::ProblemDoc),
    /// No such lesson, or no such occurrence of it.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(super::problem::ProblemDoc),
    /// `occurrence` is not an occurrence id.
    #[response(status = 422, content_type = "application/problem+json")]
    Invalid(super::problem::ProblemDoc),
}

/// Whether the client prefers CSV to JSON (`Accept`, with q-values; JSON by default).
fn wants_csv(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let (mut csv, mut json) = (0.0f32, 0.0f32);
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let mime = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match mime.as_str() {
            "text/csv" => csv = csv.max(q),
            "application/json" | "application/*" | "*/*" => json = json.max(q),
            _ => {}
        }
    }
    csv > 0.0 && csv > json
}

/// The teacher and classrooms the lesson plans for, with their names.
async fn planned(conn: &mut sqlx::AnyConnection, l: &LessonRow) -> ApiResult<Vec<Expected>> {
    let teacher: Option<String> = sqlx::query("SELECT name FROM teachers WHERE id = $1")
        .bind(&l.teacher_id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.get("name"));
    let mut out = Vec::new();
    if let Some(name) = teacher
        && let Some(participant) = ledger::identity(ketang_sfu::Role::Teacher, None, &name)
    {
        out.push(Expected {
            participant,
            kind: ParticipantKind::Teacher,
            name,
            classroom: None,
        });
    }
    let mut classrooms = vec![(
        l.master_classroom_id.clone(),
        ParticipantKind::MasterClassroom,
    )];
    for id in store::remote_classrooms(conn, &l.id).await? {
        classrooms.push((id, ParticipantKind::RemoteClassroom));
    }
    for (id, kind) in classrooms {
        let named = sqlx::query(
            "SELECT c.name AS classroom, s.name AS school FROM classrooms c \
             JOIN schools s ON s.id = c.school_id WHERE c.id = $1",
        )
        .bind(&id)
        .fetch_optional(&mut *conn)
        .await?;
        let name = named.map_or_else(
            || id.clone(),
            |r| {
                classroom_display_name(
                    &r.get::<String, _>("school"),
                    &r.get::<String, _>("classroom"),
                )
            },
        );
        out.push(Expected {
            participant: format!("classroom:{id}"),
            kind,
            name,
            classroom: Some(id),
        });
    }
    Ok(out)
}

/// The attendance of a lesson: for its teacher and each classroom, per occurrence, the stays
/// in the room (join and leave times, why each ended), the total time, reconnections and
/// turns on stage. JSON, or CSV (one row per participant and occurrence) with
/// `Accept: text/csv`. Absent participants are listed with no stays.
#[utoipa::path(get, path = "/api/v1/lessons/{id}/attendance", tag = "lessons",
    params(("id" = String, Path, description = "Lesson id"), AttendanceQuery),
    responses(
        (status = 200, description = "OK", content(
            (AttendanceReport = "application/json"),
            (String = "text/csv"),
        )),
        AttendanceErrors,
    ))]
pub async fn lesson_attendance(
    State(state): State<AppState>,
    _key: AdminKey,
    Path(id): Path<String>,
    Params(q): Params<AttendanceQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let only =
        match &q.occurrence {
            Some(o) => Some(OccurrenceId::parse(o).ok_or_else(|| {
                Problem::field("occurrence", "must be an occurrence id (occ_...)")
            })?),
            None => None,
        };
    let mut conn = state.db.pool.acquire().await?;
    let (lesson, _) = super::lessons::load(&mut conn, &id).await?;
    let occurrences = store::occurrences_of(&mut conn, id.as_str()).await?;
    let only = only.map(|o| o.as_str().to_owned());
    if let Some(o) = &only
        && !occurrences.iter().any(|r| &r.id == o)
    {
        return Err(Problem::not_found("occurrence of this lesson", o));
    }
    let intervals = attendance_store::intervals(&mut conn, id.as_str(), only.as_deref()).await?;
    let calls = attendance_store::calls(&mut conn, id.as_str(), only.as_deref()).await?;
    let plan = planned(&mut conn, &lesson).await?;
    drop(conn);

    // Stays are stamped by the server's one clock (`attendance::AttendanceSink`), as is now.
    let now = state.clock.now_ms();
    let lead = i64::try_from(state.config.schedule.link_lead.as_millis()).unwrap_or(0);
    let opened = now.saturating_add(lead);
    let tz = zone(&lesson.timezone).unwrap_or(TimeZone::UTC);
    let shown = |o: &OccurrenceRow| match &only {
        Some(id) => &o.id == id,
        None => o.starts_at <= opened || intervals.iter().any(|r| r.occurrence == o.id),
    };
    let report = AttendanceReport {
        lesson_id: lesson.id.clone(),
        title: lesson.title.clone(),
        timezone: lesson.timezone.clone(),
        occurrences: occurrences
            .iter()
            .filter(|o| shown(o))
            .map(|o| occurrence_attendance(o, &intervals, &calls, &plan, now, &tz))
            .collect(),
    };
    if !wants_csv(&headers) {
        return Ok(Json(report).into_response());
    }
    let filename = format!("attendance-{}.csv", only.as_deref().unwrap_or(&lesson.id));
    Ok(csv_attachment(&report, &filename))
}

/// Who was in one occurrence, from its stays and turns.
fn occurrence_attendance(
    o: &OccurrenceRow,
    intervals: &[summary::IntervalRow],
    calls: &[summary::CallRow],
    plan: &[Expected],
    now: i64,
    tz: &TimeZone,
) -> OccurrenceAttendance {
    let rows: Vec<_> = intervals
        .iter()
        .filter(|r| r.occurrence == o.id)
        .cloned()
        .collect();
    let turns: Vec<_> = calls
        .iter()
        .filter(|c| c.occurrence == o.id)
        .cloned()
        .collect();
    let people = summary::summarize(now, plan, &rows, &turns);
    OccurrenceAttendance {
        occurrence_id: o.id.clone(),
        series_date: o.series_date.clone(),
        start: format_in(o.starts_at, tz),
        end: format_in(o.ends_at, tz),
        status: o.status(),
        participants: people
            .iter()
            .map(|a| report::participant(now, a, tz))
            .collect(),
    }
}

/// The report as a CSV download.
fn csv_attachment(report: &AttendanceReport, filename: &str) -> Response {
    let mut resp = csv::render(report).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(csv::CONTENT_TYPE),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn csv_only_when_preferred() {
        assert!(!wants_csv(&HeaderMap::new()));
        assert!(!wants_csv(&accept("*/*")));
        assert!(!wants_csv(&accept("application/json")));
        assert!(wants_csv(&accept("text/csv")));
        assert!(wants_csv(&accept("text/csv, */*;q=0.8")));
        assert!(wants_csv(&accept("Text/CSV;charset=utf-8")));
        assert!(!wants_csv(&accept("text/csv;q=0.5, application/json")));
        assert!(!wants_csv(&accept("text/csv;q=0")));
    }
}
