//! Schools: name, district and kind; the kind sets the default bandwidth of the school's
//! classrooms (overridable per school), and an optional budget caps what the school's live
//! classrooms use together.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::audit::{self, Audit};
use super::extract::{AdminKey, Body, Errors};
use super::problem::{ApiResult, AuthErrors, ItemErrors, Problem, WriteErrors};
use super::validate::{MAX_BUDGET_KBPS, MAX_KBPS, MIN_KBPS, kbps, text};
use crate::db::assembled;
use crate::db::ids::SchoolId;
use crate::schedule::model::SchoolKind;
use crate::schedule::time::format_utc;
use crate::state::AppState;

/// A school as written by a client.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SchoolInput {
    /// 1–64 characters.
    #[schema(min_length = 1, max_length = 64, example = "东山小学")]
    pub name: String,
    /// 1–64 characters.
    #[schema(min_length = 1, max_length = 64, example = "城关区")]
    pub district: String,
    pub kind: SchoolKind,
    /// Downlink per classroom, kbit/s; null or absent: the kind's default.
    #[serde(default)]
    #[schema(minimum = 100, maximum = 1000000)]
    pub downlink_kbps: Option<i64>,
    /// Uplink per classroom, kbit/s; null or absent: half the kind's default downlink.
    #[serde(default)]
    #[schema(minimum = 100, maximum = 1000000)]
    pub uplink_kbps: Option<i64>,
    /// Shared by the school's classrooms that are live at the same time; null: no cap.
    #[serde(default)]
    #[schema(minimum = 100, maximum = 100000000)]
    pub budget_kbps: Option<i64>,
}

/// A stored school.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct School {
    #[schema(value_type = String, example = "sch_01jd8x3k5q2w9r7t6y4u1i0o8p")]
    pub id: SchoolId,
    pub name: String,
    pub district: String,
    pub kind: SchoolKind,
    /// The override, or null for the kind's default.
    pub downlink_kbps: Option<i32>,
    /// The override, or null for the default.
    pub uplink_kbps: Option<i32>,
    pub budget_kbps: Option<i32>,
    /// What classrooms without their own value get.
    pub effective_downlink_kbps: i32,
    pub effective_uplink_kbps: i32,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

#[derive(Debug, sqlx::FromRow)]
pub(super) struct SchoolRow {
    pub id: String,
    pub name: String,
    pub district: String,
    pub kind: String,
    pub downlink_kbps: Option<i32>,
    pub uplink_kbps: Option<i32>,
    pub budget_kbps: Option<i32>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl SchoolRow {
    pub fn kind(&self) -> SchoolKind {
        // Only API-checked words are stored; a hand-edited row falls back to the smallest plan.
        self.kind.parse().unwrap_or(SchoolKind::Rural)
    }

    pub fn effective_downlink(&self) -> i32 {
        self.downlink_kbps
            .unwrap_or_else(|| self.kind().default_downlink_kbps())
    }

    pub fn effective_uplink(&self) -> i32 {
        self.uplink_kbps
            .unwrap_or_else(|| self.kind().default_uplink_kbps())
    }

    fn into_api(self) -> School {
        School {
            kind: self.kind(),
            effective_downlink_kbps: self.effective_downlink(),
            effective_uplink_kbps: self.effective_uplink(),
            id: SchoolId::from_db(self.id),
            name: self.name,
            district: self.district,
            downlink_kbps: self.downlink_kbps,
            uplink_kbps: self.uplink_kbps,
            budget_kbps: self.budget_kbps,
            created_at: format_utc(self.created_at),
            updated_at: format_utc(self.updated_at),
        }
    }
}

const COLUMNS: &str =
    "id, name, district, kind, downlink_kbps, uplink_kbps, budget_kbps, created_at, updated_at";

/// Loads one school.
pub(super) async fn load(
    conn: &mut sqlx::AnyConnection,
    id: &str,
) -> Result<Option<SchoolRow>, sqlx::Error> {
    sqlx::query_as(assembled(format!(
        "SELECT {COLUMNS} FROM schools WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

struct Checked {
    name: String,
    district: String,
    kind: SchoolKind,
    downlink: Option<i32>,
    uplink: Option<i32>,
    budget: Option<i32>,
}

fn check(input: SchoolInput) -> ApiResult<Checked> {
    let mut e = Errors::default();
    let name = e.check("name", text(&input.name, 1, 64));
    let district = e.check("district", text(&input.district, 1, 64));
    let downlink = e.check(
        "downlinkKbps",
        kbps(input.downlink_kbps, MIN_KBPS, MAX_KBPS),
    );
    let uplink = e.check("uplinkKbps", kbps(input.uplink_kbps, MIN_KBPS, MAX_KBPS));
    let budget = e.check(
        "budgetKbps",
        kbps(input.budget_kbps, MIN_KBPS, MAX_BUDGET_KBPS),
    );
    match (name, district, downlink, uplink, budget) {
        (Some(name), Some(district), Some(downlink), Some(uplink), Some(budget))
            if e.is_empty() =>
        {
            Ok(Checked {
                name,
                district,
                kind: input.kind,
                downlink,
                uplink,
                budget,
            })
        }
        _ => Err(Problem::invalid(e.0)),
    }
}

fn parse_id(id: &str) -> ApiResult<SchoolId> {
    SchoolId::parse(id).ok_or_else(|| Problem::not_found("school", id))
}

/// List schools, by name.
#[utoipa::path(get, path = "/api/v1/schools", tag = "schools",
    responses((status = 200, description = "OK", body = Vec<School>), AuthErrors))]
pub async fn list_schools(
    State(state): State<AppState>,
    _key: AdminKey,
) -> ApiResult<Json<Vec<School>>> {
    let rows: Vec<SchoolRow> = sqlx::query_as(assembled(format!(
        "SELECT {COLUMNS} FROM schools ORDER BY name, id"
    )))
    .fetch_all(&state.db.pool)
    .await?;
    Ok(Json(rows.into_iter().map(SchoolRow::into_api).collect()))
}

/// Create a school.
#[utoipa::path(post, path = "/api/v1/schools", tag = "schools", request_body = SchoolInput,
    responses((status = 201, description = "Created", body = School, headers(("Location" = String, description = "The school's URL"))), WriteErrors))]
pub async fn create_school(
    State(state): State<AppState>,
    AdminKey(key): AdminKey,
    Body(input): Body<SchoolInput>,
) -> ApiResult<Response> {
    let c = check(input)?;
    let now = state.clock.now_ms();
    let id = SchoolId::generate(now as u64);
    let mut tx = state.db.write().await?;
    sqlx::query(
        "INSERT INTO schools (id, name, district, kind, downlink_kbps, uplink_kbps, budget_kbps, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(id.as_str())
    .bind(&c.name)
    .bind(&c.district)
    .bind(c.kind.as_str())
    .bind(c.downlink)
    .bind(c.uplink)
    .bind(c.budget)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &key,
        Audit::new("school.create", id.as_str())
            .detail(serde_json::json!({"name": c.name, "kind": c.kind})),
    )
    .await?;
    let row = load(&mut tx, id.as_str())
        .await?
        .ok_or_else(Problem::internal)?;
    tx.commit().await?;
    Ok(created(&format!("/api/v1/schools/{id}"), row.into_api()))
}

/// `201 Created` with a Location header and the body.
pub(super) fn created<T: Serialize>(location: &str, body: T) -> Response {
    let mut resp = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = location.parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Get a school.
#[utoipa::path(get, path = "/api/v1/schools/{id}", tag = "schools",
    params(("id" = String, Path, description = "School id")),
    responses((status = 200, description = "OK", body = School), ItemErrors))]
pub async fn get_school(
    State(state): State<AppState>,
    _key: AdminKey,
    Path(id): Path<String>,
) -> ApiResult<Json<School>> {
    let id = parse_id(&id)?;
    let mut conn = state.db.pool.acquire().await?;
    let row = load(&mut conn, id.as_str())
        .await?
        .ok_or_else(|| Problem::not_found("school", id.as_str()))?;
    Ok(Json(row.into_api()))
}

/// Replace a school's fields.
#[utoipa::path(put, path = "/api/v1/schools/{id}", tag = "schools", request_body = SchoolInput,
    params(("id" = String, Path, description = "School id")),
    responses((status = 200, description = "OK", body = School), WriteErrors))]
pub async fn update_school(
    State(state): State<AppState>,
    AdminKey(key): AdminKey,
    Path(id): Path<String>,
    Body(input): Body<SchoolInput>,
) -> ApiResult<Json<School>> {
    let id = parse_id(&id)?;
    let c = check(input)?;
    let mut tx = state.db.write().await?;
    let done = sqlx::query(
        "UPDATE schools SET name = $1, district = $2, kind = $3, downlink_kbps = $4, uplink_kbps = $5, \
         budget_kbps = $6, updated_at = $7 WHERE id = $8",
    )
    .bind(&c.name)
    .bind(&c.district)
    .bind(c.kind.as_str())
    .bind(c.downlink)
    .bind(c.uplink)
    .bind(c.budget)
    .bind(state.clock.now_ms())
    .bind(id.as_str())
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Problem::not_found("school", id.as_str()));
    }
    audit::record(
        &mut tx,
        &key,
        Audit::new("school.update", id.as_str())
            .detail(serde_json::json!({"name": c.name, "kind": c.kind})),
    )
    .await?;
    let row = load(&mut tx, id.as_str())
        .await?
        .ok_or_else(Problem::internal)?;
    tx.commit().await?;
    Ok(Json(row.into_api()))
}

/// Delete a school that has no classrooms and no teachers left.
#[utoipa::path(delete, path = "/api/v1/schools/{id}", tag = "schools",
    params(("id" = String, Path, description = "School id")),
    responses((status = 204, description = "Deleted"), WriteErrors))]
pub async fn delete_school(
    State(state): State<AppState>,
    AdminKey(key): AdminKey,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id)?;
    let mut tx = state.db.write().await?;
    if load(&mut tx, id.as_str()).await?.is_none() {
        return Err(Problem::not_found("school", id.as_str()));
    }
    for (table, what) in [("classrooms", "classrooms"), ("teachers", "teachers")] {
        let used = sqlx::query(assembled(format!(
            "SELECT id FROM {table} WHERE school_id = $1 LIMIT 1"
        )))
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if used.is_some() {
            return Err(Problem::in_use(format!(
                "the school still has {what}: delete or move them first"
            )));
        }
    }
    sqlx::query("DELETE FROM schools WHERE id = $1")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    audit::record(&mut tx, &key, Audit::new("school.delete", id.as_str())).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
