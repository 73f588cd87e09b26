//! Teachers: a name and the school they belong to. A teacher's name is what their room link
//! shows to the classrooms.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::audit::{self, Audit};
use super::extract::{AdminKey, Body, Errors, Params};
use super::problem::{ApiResult, ItemErrors, Problem, QueryErrors, WriteErrors};
use super::schools::{self, created};
use super::validate::text;
use crate::db::assembled;
use crate::db::ids::{SchoolId, TeacherId};
use crate::schedule::time::format_utc;
use crate::state::AppState;

/// A teacher as written by a client.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TeacherInput {
    #[schema(example = "sch_01jd8x3k5q2w9r7t6y4u1i0o8p")]
    pub school_id: String,
    /// 1–64 characters; shown in the lesson room.
    #[schema(min_length = 1, max_length = 64, example = "李老师")]
    pub name: String,
}

/// A stored teacher.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Teacher {
    #[schema(value_type = String, example = "tch_01jd8x3k5q2w9r7t6y4u1i0o8p")]
    pub id: TeacherId,
    #[schema(value_type = String)]
    pub school_id: SchoolId,
    pub name: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

#[derive(Debug, sqlx::FromRow)]
pub(super) struct TeacherRow {
    pub id: String,
    pub school_id: String,
    pub name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TeacherRow {
    fn into_api(self) -> Teacher {
        Teacher {
            id: TeacherId::from_db(self.id),
            school_id: SchoolId::from_db(self.school_id),
            name: self.name,
            created_at: format_utc(self.created_at),
            updated_at: format_utc(self.updated_at),
        }
    }
}

const SELECT: &str = "SELECT id, school_id, name, created_at, updated_at FROM teachers";

/// Loads one teacher.
pub(super) async fn load(
    conn: &mut sqlx::AnyConnection,
    id: &str,
) -> Result<Option<TeacherRow>, sqlx::Error> {
    sqlx::query_as(assembled(format!("{SELECT} WHERE id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

async fn check(
    conn: &mut sqlx::AnyConnection,
    input: TeacherInput,
) -> ApiResult<(SchoolId, String)> {
    let mut e = Errors::default();
    let school = SchoolId::parse(&input.school_id);
    if school.is_none() {
        e.add("schoolId", "must be a school id (sch_...)");
    }
    let name = e.check("name", text(&input.name, 1, 64));
    let (Some(school), Some(name)) = (school, name) else {
        return Err(Problem::invalid(e.0));
    };
    if schools::load(conn, school.as_str()).await?.is_none() {
        return Err(Problem::field(
            "schoolId",
            format!("there is no school {school}"),
        ));
    }
    Ok((school, name))
}

fn parse_id(id: &str) -> ApiResult<TeacherId> {
    TeacherId::parse(id).ok_or_else(|| Problem::not_found("teacher", id))
}

/// `GET /api/v1/teachers` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct TeacherQuery {
    /// Only this school's teachers.
    pub school_id: Option<String>,
}

/// List teachers, by name.
#[utoipa::path(get, path = "/api/v1/teachers", tag = "teachers", params(TeacherQuery),
    responses((status = 200, description = "OK", body = Vec<Teacher>), QueryErrors))]
pub async fn list_teachers(
    State(state): State<AppState>,
    _key: AdminKey,
    Params(q): Params<TeacherQuery>,
) -> ApiResult<Json<Vec<Teacher>>> {
    let school = match q.school_id.as_deref() {
        None => None,
        Some(s) => Some(
            SchoolId::parse(s)
                .ok_or_else(|| Problem::field("schoolId", "must be a school id (sch_...)"))?,
        ),
    };
    let rows: Vec<TeacherRow> = sqlx::query_as(assembled(format!(
        "{SELECT} WHERE ($1 IS NULL OR school_id = $1) ORDER BY name, id"
    )))
    .bind(school.map(|s| s.to_string()))
    .fetch_all(&state.db.pool)
    .await?;
    Ok(Json(rows.into_iter().map(TeacherRow::into_api).collect()))
}

/// Create a teacher.
#[utoipa::path(post, path = "/api/v1/teachers", tag = "teachers", request_body = TeacherInput,
    responses((status = 201, description = "Created", body = Teacher, headers(("Location" = String))), WriteErrors))]
pub async fn create_teacher(
    State(state): State<AppState>,
    AdminKey(key): AdminKey,
    Body(input): Body<TeacherInput>,
) -> ApiResult<Response> {
    let mut tx = state.db.write().await?;
    let (school, name) = check(&mut tx, input).await?;
    let now = state.clock.now_ms();
    let id = TeacherId::generate(now as u64);
    sqlx::query(
        "INSERT INTO teachers (id, school_id, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(id.as_str())
    .bind(school.as_str())
    .bind(&name)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &key,
        Audit::new("teacher.create", id.as_str())
            .detail(serde_json::json!({"name": name, "schoolId": school})),
    )
    .await?;
    let row = load(&mut tx, id.as_str())
        .await?
        .ok_or_else(Problem::internal)?;
    tx.commit().await?;
    Ok(created(&format!("/api/v1/teachers/{id}"), row.into_api()))
}

/// Get a teacher.
#[utoipa::path(get, path = "/api/v1/teachers/{id}", tag = "teachers",
    params(("id" = String, Path, description = "Teacher id")),
    responses((status = 200, description = "OK", body = Teacher), ItemErrors))]
pub async fn get_teacher(
    State(state): State<AppState>,
    _key: AdminKey,
    Path(id): Path<String>,
) -> ApiResult<Json<Teacher>> {
    let id = parse_id(&id)?;
    let mut conn = state.db.pool.acquire().await?;
    let row = load(&mut conn, id.as_str())
        .await?
        .ok_or_else(|| Problem::not_found("teacher", id.as_str()))?;
    Ok(Json(row.into_api()))
}

/// Replace a teacher's fields.
#[utoipa::path(put, path = "/api/v1/teachers/{id}", tag = "teachers", request_body = TeacherInput,
    params(("id" = String, Path, description = "Teacher id")),
    responses((status = 200, description = "OK", body = Teacher), WriteErrors))]
pub async fn update_teacher(
    State(state): State<AppState>,
    AdminKey(key): AdminKey,
    Path(id): Path<String>,
    Body(input): Body<TeacherInput>,
) -> ApiResult<Json<Teacher>> {
    let id = parse_id(&id)?;
    let mut tx = state.db.write().await?;
    if load(&mut tx, id.as_str()).await?.is_none() {
        return Err(Problem::not_found("teacher", id.as_str()));
    }
    let (school, name) = check(&mut tx, input).await?;
    sqlx::query("UPDATE teachers SET school_id = $1, name = $2, updated_at = $3 WHERE id = $4")
        .bind(school.as_str())
        .bind(&name)
        .bind(state.clock.now_ms())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        &key,
        Audit::new("teacher.update", id.as_str())
            .detail(serde_json::json!({"name": name, "schoolId": school})),
    )
    .await?;
    let row = load(&mut tx, id.as_str())
        .await?
        .ok_or_else(Problem::internal)?;
    tx.commit().await?;
    Ok(Json(row.into_api()))
}

/// Delete a teacher who teaches no lesson.
#[utoipa::path(delete, path = "/api/v1/teachers/{id}", tag = "teachers",
    params(("id" = String, Path, description = "Teacher id")),
    responses((status = 204, description = "Deleted"), WriteErrors))]
pub async fn delete_teacher(
    State(state): State<AppState>,
    AdminKey(key): AdminKey,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id)?;
    let mut tx = state.db.write().await?;
    if load(&mut tx, id.as_str()).await?.is_none() {
        return Err(Problem::not_found("teacher", id.as_str()));
    }
    let used = sqlx::query("SELECT id FROM lessons WHERE teacher_id = $1 LIMIT 1")
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    if used.is_some() {
        return Err(Problem::in_use(
            "the teacher teaches lessons: delete them or give them another teacher first",
        ));
    }
    sqlx::query("DELETE FROM teachers WHERE id = $1")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    audit::record(&mut tx, &key, Audit::new("teacher.delete", id.as_str())).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
