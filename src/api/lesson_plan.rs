//! A lesson as checked input: every field validated, the recurrence expanded; then the
//! checks against the database (referenced teacher and classrooms, double bookings) and the
//! writes of the lesson row.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::extract::Errors;
use super::lessons::LessonInput;
use super::problem::{ApiResult, ConflictDetail, Problem, types};
use super::validate::text;
use crate::db::ids::{ClassroomId, LessonId, TeacherId};
use crate::schedule::conflict::{self, Resource, Window};
use crate::schedule::model::{LessonMode, Weekday};
use crate::schedule::reconcile::Changes;
use crate::schedule::recurrence::{self, Planned, Series, Weekly};
use crate::schedule::store;
use crate::schedule::time::{format_in, parse_date, parse_instant, zone};

/// Longest lesson.
const MAX_DURATION_MS: i64 = 12 * 3_600_000;
/// Shortest lesson.
const MIN_DURATION_MS: i64 = 60_000;
/// Most remote classrooms in one lesson.
pub const MAX_REMOTE: usize = 50;
/// How many clashes a 409 lists.
const MAX_CONFLICTS_SHOWN: usize = 10;

/// A checked lesson.
#[derive(Debug)]
pub struct Plan {
    pub title: String,
    pub subject: String,
    pub grade: String,
    pub mode: LessonMode,
    pub teacher: TeacherId,
    pub master: ClassroomId,
    pub remote: Vec<ClassroomId>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub tz: TimeZone,
    pub tz_name: String,
    pub record: bool,
    pub weekly: Option<(BTreeSet<Weekday>, String)>,
    pub occurrences: Vec<Planned>,
}

impl Plan {
    pub fn remote_strings(&self) -> Vec<String> {
        self.remote.iter().map(|c| c.to_string()).collect()
    }

    /// For the audit log.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "title": self.title,
            "mode": self.mode,
            "teacherId": self.teacher,
            "masterClassroomId": self.master,
            "remoteClassroomIds": self.remote,
            "start": format_in(self.start_ms, &self.tz),
            "end": format_in(self.end_ms, &self.tz),
            "timezone": self.tz_name,
            "occurrences": self.occurrences.len(),
        })
    }

    pub fn classrooms(&self) -> Vec<ClassroomId> {
        let mut all = vec![self.master.clone()];
        all.extend(self.remote.iter().cloned());
        all
    }
}

/// Checks every field of `input`; 422 lists all that are wrong.
pub fn check(input: LessonInput, default_tz: &str) -> ApiResult<Plan> {
    let mut e = Errors::default();
    let title = e.check("title", text(&input.title, 1, 120));
    let subject = e.check("subject", text(&input.subject, 1, 32));
    let grade = e.check("grade", text(&input.grade, 1, 32));
    let teacher = TeacherId::parse(&input.teacher_id);
    if teacher.is_none() {
        e.add("teacherId", "must be a teacher id (tch_...)");
    }
    let (master, remote) = check_classrooms(&input, &mut e);
    let tz_name = input
        .timezone
        .clone()
        .unwrap_or_else(|| default_tz.to_owned());
    let tz = e.check("timezone", zone(&tz_name));
    let (start, end) = check_times(&input, tz.as_ref(), &mut e);
    let weekly = check_recurrence(&input, &mut e);
    if !e.is_empty() {
        return Err(Problem::invalid(e.0));
    }
    let (
        Some(title),
        Some(subject),
        Some(grade),
        Some(teacher),
        Some(master),
        Some(tz),
        Some(start),
        Some(end),
    ) = (title, subject, grade, teacher, master, tz, start, end)
    else {
        return Err(Problem::internal());
    };
    let series = Series {
        start_ms: start,
        end_ms: end,
        tz: tz.clone(),
        weekly: weekly.as_ref().map(|(days, until)| Weekly {
            weekdays: days.clone(),
            until: *until,
        }),
    };
    let occurrences =
        recurrence::expand(&series).map_err(|err| Problem::field(err.field(), err.message()))?;
    Ok(Plan {
        title,
        subject,
        grade,
        mode: input.mode,
        teacher,
        master,
        remote,
        start_ms: start,
        end_ms: end,
        tz,
        tz_name,
        record: input.record,
        weekly: weekly.map(|(days, until)| (days, until.to_string())),
        occurrences,
    })
}

/// The master classroom and the remote ones: ids, no repeats, as many as the mode wants.
fn check_classrooms(
    input: &LessonInput,
    e: &mut Errors,
) -> (Option<ClassroomId>, Vec<ClassroomId>) {
    let master = ClassroomId::parse(&input.master_classroom_id);
    if master.is_none() {
        e.add("masterClassroomId", "must be a classroom id (cls_...)");
    }
    let mut remote = Vec::new();
    for (i, id) in input.remote_classroom_ids.iter().enumerate() {
        let field = format!("remoteClassroomIds[{i}]");
        match ClassroomId::parse(id) {
            None => e.add(field, "must be a classroom id (cls_...)"),
            Some(c) if remote.contains(&c) => e.add(field, "is listed twice"),
            Some(c) if Some(&c) == master.as_ref() => {
                e.add(field, "is the master classroom already")
            }
            Some(c) => remote.push(c),
        }
    }
    let n = input.remote_classroom_ids.len();
    match input.mode {
        LessonMode::Dedicated if n == 0 => e.add(
            "remoteClassroomIds",
            "a dedicated (专递课堂) lesson needs at least one remote classroom",
        ),
        LessonMode::Broadcast if n > 0 => e.add(
            "remoteClassroomIds",
            "a broadcast (名校网络课堂) lesson has no remote classrooms: viewers watch it",
        ),
        _ if n > MAX_REMOTE => e.add(
            "remoteClassroomIds",
            format!("at most {MAX_REMOTE} remote classrooms"),
        ),
        _ => {}
    }
    (master, remote)
}

/// Start and end in the lesson's zone, in order, a minute to 12 hours apart.
fn check_times(
    input: &LessonInput,
    tz: Option<&TimeZone>,
    e: &mut Errors,
) -> (Option<i64>, Option<i64>) {
    let (start, end) = match tz {
        Some(tz) => (
            e.check("start", parse_instant(&input.start, tz)),
            e.check("end", parse_instant(&input.end, tz)),
        ),
        None => (None, None),
    };
    if let (Some(s), Some(t)) = (start, end) {
        if t <= s {
            e.add("end", "must be after start");
        } else if t - s < MIN_DURATION_MS {
            e.add("end", "a lesson lasts at least a minute");
        } else if t - s > MAX_DURATION_MS {
            e.add("end", "a lesson lasts at most 12 hours");
        }
    }
    (start, end)
}

/// A weekly recurrence: some weekdays, each once, until a date.
fn check_recurrence(input: &LessonInput, e: &mut Errors) -> Option<(BTreeSet<Weekday>, Date)> {
    let r = input.recurrence.as_ref()?;
    let days: BTreeSet<Weekday> = r.weekdays.iter().copied().collect();
    if days.is_empty() {
        e.add("recurrence.weekdays", "must list at least one weekday");
    }
    if days.len() != r.weekdays.len() {
        e.add("recurrence.weekdays", "lists a weekday twice");
    }
    e.check("recurrence.until", parse_date(&r.until))
        .map(|until| (days, until))
}

/// 422 unless the teacher and every classroom exist.
pub async fn check_references(conn: &mut sqlx::AnyConnection, plan: &Plan) -> ApiResult<()> {
    let mut e = Errors::default();
    let teacher = sqlx::query("SELECT id FROM teachers WHERE id = $1")
        .bind(plan.teacher.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    if teacher.is_none() {
        e.add("teacherId", format!("there is no teacher {}", plan.teacher));
    }
    let fields = std::iter::once(("masterClassroomId".to_owned(), &plan.master)).chain(
        plan.remote
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("remoteClassroomIds[{i}]"), c)),
    );
    for (field, id) in fields {
        let found = sqlx::query("SELECT id FROM classrooms WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        if found.is_none() {
            e.add(field, format!("there is no classroom {id}"));
        }
    }
    e.finish()
}

/// 409 naming the other lessons if the new or changed windows (and `kept` ones) book the
/// teacher or a classroom twice.
pub async fn check_conflicts(
    conn: &mut sqlx::AnyConnection,
    plan: &Plan,
    lesson: &str,
    changes: &Changes,
    kept: &[(i64, i64)],
) -> ApiResult<()> {
    let windows: Vec<Window> = changes
        .insert
        .iter()
        .map(|p| (p.start_ms, p.end_ms))
        .chain(changes.update.iter().map(|u| (u.start_ms, u.end_ms)))
        .chain(kept.iter().copied())
        .map(|(start_ms, end_ms)| Window { start_ms, end_ms })
        .collect();
    check_windows(
        conn,
        &windows,
        &plan.teacher,
        &plan.classrooms(),
        store::Exclude::Lesson(lesson),
        &plan.tz,
    )
    .await
}

/// 409 if `windows` book `teacher` or one of `classrooms` twice (ignoring `exclude`).
pub async fn check_windows(
    conn: &mut sqlx::AnyConnection,
    windows: &[Window],
    teacher: &TeacherId,
    classrooms: &[ClassroomId],
    exclude: store::Exclude<'_>,
    tz: &TimeZone,
) -> ApiResult<()> {
    let (Some(from), Some(to)) = (
        windows.iter().map(|w| w.start_ms).min(),
        windows.iter().map(|w| w.end_ms).max(),
    ) else {
        return Ok(());
    };
    let ids: Vec<String> = classrooms.iter().map(|c| c.to_string()).collect();
    let existing = store::bookings(conn, from, to, exclude, teacher.as_str(), &ids).await?;
    let found = conflict::find(windows, teacher, classrooms, &existing, MAX_CONFLICTS_SHOWN);
    let Some(first) = found.first() else {
        return Ok(());
    };
    let what = match &first.resource {
        Resource::Teacher(_) => "the teacher",
        Resource::Classroom(_) => "a classroom",
    };
    let detail = format!(
        "{what} is already booked at that time in lesson {:?} ({}), from {}",
        first.other_title,
        first.other_lesson,
        format_in(first.other_start_ms, tz)
    );
    let mut problem = Problem::new(
        StatusCode::CONFLICT,
        types::SCHEDULE_CONFLICT,
        "Schedule conflict",
        detail,
    );
    problem.conflicts = found
        .iter()
        .map(|c| {
            let (resource, resource_id) = match &c.resource {
                Resource::Teacher(t) => ("teacher", t.to_string()),
                Resource::Classroom(r) => ("classroom", r.to_string()),
            };
            ConflictDetail {
                resource: resource.to_owned(),
                resource_id,
                start: format_in(c.window.start_ms, tz),
                end: format_in(c.window.end_ms, tz),
                lesson_id: c.other_lesson.to_string(),
                lesson_title: c.other_title.clone(),
                occurrence_id: c.other_occurrence.to_string(),
                occurrence_start: format_in(c.other_start_ms, tz),
                occurrence_end: format_in(c.other_end_ms, tz),
            }
        })
        .collect();
    Err(problem)
}

fn weekly_columns(plan: &Plan) -> (Option<String>, Option<String>) {
    match &plan.weekly {
        Some((days, until)) => (
            Some(
                days.iter()
                    .map(|d| d.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            Some(until.clone()),
        ),
        None => (None, None),
    }
}

async fn write_remote(
    conn: &mut sqlx::AnyConnection,
    id: &LessonId,
    plan: &Plan,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM lesson_classrooms WHERE lesson_id = $1")
        .bind(id.as_str())
        .execute(&mut *conn)
        .await?;
    for (i, c) in plan.remote.iter().enumerate() {
        sqlx::query(
            "INSERT INTO lesson_classrooms (lesson_id, classroom_id, position) VALUES ($1, $2, $3)",
        )
        .bind(id.as_str())
        .bind(c.as_str())
        .bind(i32::try_from(i).unwrap_or(i32::MAX))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn insert_lesson(
    conn: &mut sqlx::AnyConnection,
    id: &LessonId,
    plan: &Plan,
    now: i64,
) -> Result<(), sqlx::Error> {
    let (days, until) = weekly_columns(plan);
    sqlx::query(
        "INSERT INTO lessons (id, title, subject, grade, mode, teacher_id, master_classroom_id, starts_at, \
         ends_at, timezone, record, recur_weekdays, recur_until, cancelled_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, $14, $14)",
    )
    .bind(id.as_str())
    .bind(&plan.title)
    .bind(&plan.subject)
    .bind(&plan.grade)
    .bind(plan.mode.as_str())
    .bind(plan.teacher.as_str())
    .bind(plan.master.as_str())
    .bind(plan.start_ms)
    .bind(plan.end_ms)
    .bind(&plan.tz_name)
    .bind(i16::from(plan.record))
    .bind(days)
    .bind(until)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    write_remote(conn, id, plan).await
}

pub async fn update_lesson(
    conn: &mut sqlx::AnyConnection,
    id: &LessonId,
    plan: &Plan,
    now: i64,
) -> Result<(), sqlx::Error> {
    let (days, until) = weekly_columns(plan);
    sqlx::query(
        "UPDATE lessons SET title = $1, subject = $2, grade = $3, mode = $4, teacher_id = $5, \
         master_classroom_id = $6, starts_at = $7, ends_at = $8, timezone = $9, record = $10, \
         recur_weekdays = $11, recur_until = $12, updated_at = $13 WHERE id = $14",
    )
    .bind(&plan.title)
    .bind(&plan.subject)
    .bind(&plan.grade)
    .bind(plan.mode.as_str())
    .bind(plan.teacher.as_str())
    .bind(plan.master.as_str())
    .bind(plan.start_ms)
    .bind(plan.end_ms)
    .bind(&plan.tz_name)
    .bind(i16::from(plan.record))
    .bind(days)
    .bind(until)
    .bind(now)
    .bind(id.as_str())
    .execute(&mut *conn)
    .await?;
    write_remote(conn, id, plan).await
}
