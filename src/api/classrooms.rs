//! Classrooms: a school's rooms with a camera, each with a downlink and uplink (kbit/s) that
//! default to the school's.

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
use super::validate::{MAX_KBPS, MIN_KBPS, kbps, text};
use crate::db::assembled;
use crate::db::ids::{ClassroomId, SchoolId};
use crate::schedule::time::format_utc;
use crate::state::AppState;

/// A classroom as written by a client.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClassroomInput {
    #[schema(example = "sch_01jd8x3k5q2w9r7t6y4u1i0o8p")]
    pub school_id: String,
    /// 1–64 characters.
    #[schema(min_length = 1, max_length = 64, example = "三(2)班")]
    pub name: String,
    /// kbit/s; null or absent: the school's value.
    #[serde(default)]
    #[schema(minimum = 100, maximum = 1000000)]
    pub downlink_kbps: Option<i64>,
    /// kbit/s; null or absent: the school's value.
    #[serde(default)]
    #[schema(minimum = 100, maximum = 1000000)]
    pub uplink_kbps: Option<i64>,
}

/// A stored classroom.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Classroom {
    #[schema(value_type = String, example = "cls_01jd8x3k5q2w9r7t6y4u1i0o8p")]
    pub id: ClassroomId,
    #[schema(value_type = String)]
    pub school_id: SchoolId,
    pub name: String,
    /// The classroom's own value, or null for the school's.
    pub downlink_kbps: Option<i32>,
    pub uplink_kbps: Option<i32>,
    /// What applies.
    pub effective_downlink_kbps: i32,
    pub effective_uplink_kbps: i32,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

#[derive(Debug, sqlx::FromRow)]
struct ClassroomRow {
    id: String,
    school_id: String,
    name: String,
    downlink_kbps: Option<i32>,
    uplink_kbps: Option<i32>,
    school_kind: String,
    school_downlink_kbps: Option<i32>,
    school_uplink_kbps: Option<i32>,
    created_at: i64,
    updated_at: i64,
}

impl ClassroomRow {
    fn into_api(self) -> Classroom {
        let kind: crate::schedule::model::SchoolKind = self
            .school_kind
            .parse()
            .unwrap_or(crate::schedule::model::SchoolKind::Rural);
        let school_down = self
            .school_downlink_kbps
            .unwrap_or_else(|| kind.default_downlink_kbps());
        let school_up = self
            .school_uplink_kbps
            .unwrap_or_else(|| kind.default_uplink_kbps());
        Classroom {
            id: ClassroomId::from_db(self.id),
            school_id: SchoolId::from_db(self.school_id),
            name: self.name,
            downlink_kbps: self.downlink_kbps,
            uplink_kbps: self.uplink_kbps,
            effective_downlink_kbps: self.downlink_kbps.unwrap_or(school_down),
            effective_uplink_kbps: self.uplink_kbps.unwrap_or(school_up),
            created_at: format_utc(self.created_at),
            updated_at: format_utc(self.updated_at),
        }
    }
}

const SELECT: &str = "SELECT c.id, c.school_id, c.name, c.downlink_kbps, c.uplink_kbps, \
     s.kind AS school_kind, s.downlink_kbps AS school_downlink_kbps, \
     s.uplink_kbps AS school_uplink_kbps, c.created_at, c.updated_at \
     FROM classrooms c JOIN schools s ON s.id = c.school_id";

async fn load(
    conn: &mut sqlx::AnyConnection,
    id: &str,
) -> Result<Option<ClassroomRow>, sqlx::Error> {
    sqlx::query_as(assembled(format!("{SELECT} WHERE c.id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

struct Checked {
    school: SchoolId,
    name: String,
    downlink: Option<i32>,
    uplink: Option<i32>,
}

/// Checks the input, including that the school exists.
async fn check(conn: &mut sqlx::AnyConnection, input: ClassroomInput) -> ApiResult<Checked> {
    let mut e = Errors::default();
    let school = SchoolId::parse(&input.school_id);
    if school.is_none() {
        e.add("schoolId", "must be a school id (sch_...)");
    }
    let name = e.check("name", text(&input.name, 1, 64));
    let downlink = e.check(
        "downlinkKbps",
        kbps(input.downlink_kbps, MIN_KBPS, MAX_KBPS),
    );
    let uplink = e.check("uplinkKbps", kbps(input.uplink_kbps, MIN_KBPS, MAX_KBPS));
    let (Some(school), Some(name), Some(downlink), Some(uplink)) = (school, name, downlink, uplink)
    else {
        return Err(Problem::invalid(e.0));
    };
    if schools::load(conn, school.as_str()).await?.is_none() {
        return Err(Problem::field(
            "schoolId",
            format!("there is no school {school}"),
        ));
    }
    Ok(Checked {
        school,
        name,
        downlink,
        uplink,
    })
}

fn parse_id(id: &str) -> ApiResult<ClassroomId> {
    ClassroomId::parse(id).ok_or_else(|| Problem::not_found("classroom", id))
}

/// `GET /api/v1/classrooms` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct ClassroomQuery {
    /// Only this school's classrooms.
    pub school_id: Option<String>,
}

/// List classrooms, by school and name.
#[utoipa::path(get, path = "/api/v1/classrooms", tag = "classrooms", params(ClassroomQuery),
    responses((status = 200, description = "OK", body = Vec<Classroom>), QueryErrors))]
pub async fn list_classrooms(
    State(state): State<AppState>,
    _key: AdminKey,
    Params(q): Params<ClassroomQuery>,
) -> ApiResult<Json<Vec<Classroom>>> {
    let school = match q.school_id.as_deref() {
        None => None,
        Some(s) => Some(
            SchoolId::parse(s)
                .ok_or_else(|| Problem::field("schoolId", "must be a school id (sch_...)"))?,
        ),
    };
    let rows: Vec<ClassroomRow> = sqlx::query_as(assembled(format!(
        "{SELECT} WHERE ($1 IS NULL OR c.school_id = $1) ORDER BY s.name, c.name, c.id"
    )))
    .bind(school.map(|s| s.to_string()))
    .fetch_all(&state.db.pool)
    .await?;
    Ok(Json(rows.into_iter().map(ClassroomRow::into_api).collect()))
}

/// Create a classroom.
#[utoipa::path(post, path = "/api/v1/classrooms", tag = "classrooms", request_body = ClassroomInput,
    responses((status = 201, description = "Created", body = Classroom, headers(("Location" = String))), WriteErrors))]
pub async fn create_classroom(
    State(state): State<AppState>,
    AdminKey(key): AdminKey,
    Body(input): Body<ClassroomInput>,
) -> ApiResult<Response> {
    let mut tx = state.db.write().await?;
    let c = check(&mut tx, input).await?;
    let now = state.clock.now_ms();
    let id = ClassroomId::generate(now as u64);
    sqlx::query(
        "INSERT INTO classrooms (id, school_id, name, downlink_kbps, uplink_kbps, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(id.as_str())
    .bind(c.school.as_str())
    .bind(&c.name)
    .bind(c.downlink)
    .bind(c.uplink)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &key,
        Audit::new("classroom.create", id.as_str())
            .detail(serde_json::json!({"name": c.name, "schoolId": c.school})),
    )
    .await?;
    let row = load(&mut tx, id.as_str())
        .await?
        .ok_or_else(Problem::internal)?;
    tx.commit().await?;
    Ok(created(&format!("/api/v1/classrooms/{id}"), row.into_api()))
}

/// Get a classroom.
#[utoipa::path(get, path = "/api/v1/classrooms/{id}", tag = "classrooms",
    params(("id" = String, Path, description = "Classroom id")),
    responses((status = 200, description = "OK", body = Classroom), ItemErrors))]
pub async fn get_classroom(
    State(state): State<AppState>,
    _key: AdminKey,
    Path(id): Path<String>,
) -> ApiResult<Json<Classroom>> {
    let id = parse_id(&id)?;
    let mut conn = state.db.pool.acquire().await?;
    let row = load(&mut conn, id.as_str())
        .await?
        .ok_or_else(|| Problem::not_found("classroom", id.as_str()))?;
    Ok(Json(row.into_api()))
}

/// Replace a classroom's fields.
#[utoipa::path(put, path = "/api/v1/classrooms/{id}", tag = "classrooms", request_body = ClassroomInput,
    params(("id" = String, Path, description = "Classroom id")),
    responses((status = 200, description = "OK", body = Classroom), WriteErrors))]
pub async fn update_classroom(
    State(state): State<AppState>,
    AdminKey(key): AdminKey,
    Path(id): Path<String>,
    Body(input): Body<ClassroomInput>,
) -> ApiResult<Json<Classroom>> {
    let id = parse_id(&id)?;
    let mut tx = state.db.write().await?;
    if load(&mut tx, id.as_str()).await?.is_none() {
        return Err(Problem::not_found("classroom", id.as_str()));
    }
    let c = check(&mut tx, input).await?;
    sqlx::query(
        "UPDATE classrooms SET school_id = $1, name = $2, downlink_kbps = $3, uplink_kbps = $4, \
         updated_at = $5 WHERE id = $6",
    )
    .bind(c.school.as_str())
    .bind(&c.name)
    .bind(c.downlink)
    .bind(c.uplink)
    .bind(state.clock.now_ms())
    .bind(id.as_str())
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &key,
        Audit::new("classroom.update", id.as_str())
            .detail(serde_json::json!({"name": c.name, "schoolId": c.school})),
    )
    .await?;
    let row = load(&mut tx, id.as_str())
        .await?
        .ok_or_else(Problem::internal)?;
    tx.commit().await?;
    Ok(Json(row.into_api()))
}

/// Delete a classroom that no lesson uses.
#[utoipa::path(delete, path = "/api/v1/classrooms/{id}", tag = "classrooms",
    params(("id" = String, Path, description = "Classroom id")),
    responses((status = 204, description = "Deleted"), WriteErrors))]
pub async fn delete_classroom(
    State(state): State<AppState>,
    AdminKey(key): AdminKey,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id)?;
    let mut tx = state.db.write().await?;
    if load(&mut tx, id.as_str()).await?.is_none() {
        return Err(Problem::not_found("classroom", id.as_str()));
    }
    let used = sqlx::query(
        "SELECT l.id FROM lessons l WHERE l.master_classroom_id = $1 \
         UNION SELECT lc.lesson_id FROM lesson_classrooms lc WHERE lc.classroom_id = $1 LIMIT 1",
    )
    .bind(id.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    if used.is_some() {
        return Err(Problem::in_use(
            "lessons use the classroom: delete those lessons or take the classroom out of them first",
        ));
    }
    sqlx::query("DELETE FROM classrooms WHERE id = $1")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    audit::record(&mut tx, &key, Audit::new("classroom.delete", id.as_str())).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
