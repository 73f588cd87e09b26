//! Admin API keys: 32 random bytes shown once as `kt_` + 64 hex digits, stored only as their
//! SHA-256 (a key has 256 bits of entropy, so a plain hash is as good as a slow one).
//!
//! `ketang admin create-key NAME` makes one; the first start with no key at all makes a
//! bootstrap key and logs it once; `POST /api/v1/keys` makes more, `DELETE` revokes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use utoipa::ToSchema;

use super::audit::{self, Audit};
use super::extract::{AdminKey, Body, Caller};
use super::problem::{ApiResult, AuthErrors, ItemErrors, Problem, WriteErrors};
use super::validate::text;
use crate::accounts::AdminRole;
use crate::db::Db;
use crate::db::ids::ApiKeyId;
use crate::schedule::time::format_utc;
use crate::state::AppState;

/// Prefix of every key, so that a leaked key is recognisable in logs and scanners.
pub const KEY_PREFIX: &str = "kt_";

/// Who is calling.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub id: ApiKeyId,
    pub name: String,
    /// When the request was authorised (Unix ms, the server's clock): its audit entries
    /// carry this time.
    pub at_ms: i64,
}

/// Makes a new random key.
pub fn generate() -> String {
    let bytes: [u8; 32] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{KEY_PREFIX}{hex}")
}

/// The stored form of a key.
pub fn hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The name of the key a first start makes.
pub const BOOTSTRAP_NAME: &str = "bootstrap";

/// The bootstrap key works this long after it was made (or until a personal key exists).
pub const BOOTSTRAP_LIFETIME_MS: i64 = 24 * 3600 * 1000;

/// File in `storage.data_dir` the bootstrap key is written to (mode 600).
pub const BOOTSTRAP_FILE: &str = "bootstrap-admin-key";

/// The key's owner, if the key is known and not revoked (nor, for the bootstrap key,
/// expired), for a request made at `now_ms`. Each use of the bootstrap key is audited.
pub async fn lookup(db: &Db, key: &str, now_ms: i64) -> Result<Option<KeyInfo>, sqlx::Error> {
    Ok(lookup_role(db, key, now_ms).await?.map(|(info, _)| info))
}

/// [`lookup`], with the key's role. A key whose stored role is unknown is refused.
pub async fn lookup_role(
    db: &Db,
    key: &str,
    now_ms: i64,
) -> Result<Option<(KeyInfo, AdminRole)>, sqlx::Error> {
    // Anything not shaped like a key cannot match; skip the query.
    if !key.starts_with(KEY_PREFIX) || key.len() != KEY_PREFIX.len() + 64 {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT id, name, created_at, role FROM api_keys WHERE hash = $1 AND revoked_at IS NULL",
    )
    .bind(hash(key))
    .fetch_optional(&db.pool)
    .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    let Some(role) = AdminRole::from_db(r.get::<String, _>("role").as_str()) else {
        return Ok(None);
    };
    let info = KeyInfo {
        id: ApiKeyId::from_db(r.get("id")),
        name: r.get("name"),
        at_ms: now_ms,
    };
    if info.name == BOOTSTRAP_NAME {
        let created_at: i64 = r.get("created_at");
        if !bootstrap_valid(db, created_at, now_ms).await? {
            return Ok(None);
        }
        let mut conn = db.pool.acquire().await?;
        audit::record(
            &mut conn,
            &info,
            Audit::new("key.bootstrapUse", info.id.as_str()),
        )
        .await?;
    }
    Ok(Some((info, role)))
}

/// The bootstrap key is for making the first personal key: it expires with that, or after a
/// day.
async fn bootstrap_valid(db: &Db, created_at: i64, now_ms: i64) -> Result<bool, sqlx::Error> {
    if now_ms > created_at.saturating_add(BOOTSTRAP_LIFETIME_MS) {
        return Ok(false);
    }
    let personal = sqlx::query("SELECT id FROM api_keys WHERE name <> $1 LIMIT 1")
        .bind(BOOTSTRAP_NAME)
        .fetch_optional(&db.pool)
        .await?;
    Ok(personal.is_none())
}

/// Why a key could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateKeyError {
    #[error("name: {0}")]
    Name(String),
    #[error("a key named {0:?} already exists")]
    Exists(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Inserts a new key named `name` with role `all`, made at `now` (Unix ms); returns its id and
/// the key itself (shown only now).
pub async fn create(
    conn: &mut sqlx::AnyConnection,
    name: &str,
    now: i64,
) -> Result<(ApiKeyId, String), CreateKeyError> {
    create_with_role(conn, name, AdminRole::All, now).await
}

/// [`create`] for a key bound to `role`.
pub async fn create_with_role(
    conn: &mut sqlx::AnyConnection,
    name: &str,
    role: AdminRole,
    now: i64,
) -> Result<(ApiKeyId, String), CreateKeyError> {
    let name = text(name, 1, 64).map_err(CreateKeyError::Name)?;
    let exists = sqlx::query("SELECT id FROM api_keys WHERE name = $1")
        .bind(&name)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_some() {
        return Err(CreateKeyError::Exists(name));
    }
    let id = ApiKeyId::generate(now as u64);
    let key = generate();
    sqlx::query(
        "INSERT INTO api_keys (id, name, hash, created_at, role) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.as_str())
    .bind(&name)
    .bind(hash(&key))
    .bind(now)
    .bind(role.as_str())
    .execute(&mut *conn)
    .await?;
    Ok((id, key))
}

/// On a database without any key, creates the `bootstrap` key and returns it. Several nodes
/// starting together on one empty database race on the unique name; one wins.
pub async fn bootstrap(db: &Db) -> Result<Option<String>, sqlx::Error> {
    let any = sqlx::query("SELECT id FROM api_keys LIMIT 1")
        .fetch_optional(&db.pool)
        .await?;
    if any.is_some() {
        return Ok(None);
    }
    let mut conn = db.pool.acquire().await?;
    // Before the server's state exists: the system clock, as the server's clock reads in
    // service.
    let now = crate::time::Clock::default().now_ms();
    match create(&mut conn, BOOTSTRAP_NAME, now).await {
        Ok((_, key)) => Ok(Some(key)),
        // Another node got there first (or the insert lost the race on the unique name).
        Err(CreateKeyError::Exists(_)) => Ok(None),
        Err(CreateKeyError::Db(e)) if is_unique_violation(&e) => Ok(None),
        Err(CreateKeyError::Db(e)) => Err(e),
        Err(CreateKeyError::Name(m)) => Err(sqlx::Error::Protocol(m)),
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// What `ketang admin create-key` prints.
#[derive(Debug)]
pub struct CreatedKey {
    /// The key itself, on stdout.
    pub key: String,
    /// What was done, on stderr.
    pub summary: String,
}

/// Why `ketang admin create-key` failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyCommandError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    Create(#[from] CreateKeyError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl KeyCommandError {
    /// 2 for a bad name, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            KeyCommandError::Create(CreateKeyError::Name(_) | CreateKeyError::Exists(_)) => 2,
            _ => 1,
        }
    }
}

/// `ketang admin create-key NAME`: opens (and migrates) the configured database, like the
/// server does, and adds a key.
pub fn create_key_command(
    name: &str,
    role: AdminRole,
    config: Option<&std::path::Path>,
) -> Result<CreatedKey, KeyCommandError> {
    let config = crate::config::Config::load(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(KeyCommandError::Runtime)?;
    runtime.block_on(async {
        let db = Db::open(&config).await?;
        let made = async {
            let mut conn = db.pool.acquire().await.map_err(CreateKeyError::Db)?;
            create_with_role(
                &mut conn,
                name,
                role,
                crate::time::Clock::default().now_ms(),
            )
            .await
        }
        .await;
        db.close().await;
        let (id, key) = made?;
        Ok(CreatedKey {
            key,
            summary: format!(
                "created {role} admin API key {id} ({:?}) in {}; it is shown only this once",
                name.trim(),
                crate::db::redact_url(&crate::db::effective_url(&config))
            ),
        })
    })
}

/// An API key as listed (never the key itself).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    #[schema(value_type = String, example = "key_01jd8x3k5q2w9r7t6y4u1i0o8p")]
    pub id: ApiKeyId,
    pub name: String,
    /// What the key may do (docs/admin-api.md, roles).
    pub role: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339, if revoked.
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
}

/// A new key: the only time the key itself is shown.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewApiKey {
    #[schema(value_type = String)]
    pub id: ApiKeyId,
    pub name: String,
    /// Send it as `Authorization: Bearer KEY`. It cannot be shown again.
    pub key: String,
}

/// `POST /api/v1/keys`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyInput {
    /// Unique, 1–64 characters.
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// system, security or audit; `all` only from an `all` key. Default: the caller's role
    /// when the caller is an `all` key (required otherwise).
    pub role: Option<AdminRole>,
}

/// List the admin API keys.
#[utoipa::path(get, path = "/api/v1/keys", tag = "keys",
    responses((status = 200, description = "OK", body = Vec<ApiKey>), AuthErrors))]
pub async fn list_keys(
    State(state): State<AppState>,
    _key: AdminKey,
) -> ApiResult<Json<Vec<ApiKey>>> {
    let rows = sqlx::query(
        "SELECT id, name, created_at, revoked_at, role FROM api_keys ORDER BY created_at, id",
    )
    .fetch_all(&state.db.pool)
    .await?;
    Ok(Json(
        rows.iter()
            .map(|r| ApiKey {
                id: ApiKeyId::from_db(r.get("id")),
                name: r.get("name"),
                role: r.get("role"),
                created_at: format_utc(r.get("created_at")),
                revoked_at: r.get::<Option<i64>, _>("revoked_at").map(format_utc),
            })
            .collect(),
    ))
}

/// Create an admin API key; the key is in the response and nowhere else.
#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", request_body = KeyInput,
    responses((status = 201, description = "Created", body = NewApiKey), WriteErrors))]
pub async fn create_key(
    State(state): State<AppState>,
    Caller {
        info: caller,
        role: caller_role,
    }: Caller,
    Body(input): Body<KeyInput>,
) -> ApiResult<(StatusCode, Json<NewApiKey>)> {
    let role = match (input.role, caller_role) {
        (Some(AdminRole::All), r) if r != AdminRole::All => {
            return Err(Problem::forbidden(
                "only an `all` key may make another `all` key: choose system, security or audit",
            ));
        }
        (Some(role), _) => role,
        (None, AdminRole::All) => AdminRole::All,
        (None, _) => return Err(Problem::field("role", "choose system, security or audit")),
    };
    let mut tx = state.db.write().await?;
    let (id, key) = match create_with_role(&mut tx, &input.name, role, caller.at_ms).await {
        Ok(made) => made,
        Err(CreateKeyError::Name(m)) => return Err(Problem::field("name", m)),
        Err(CreateKeyError::Exists(name)) => {
            return Err(Problem::field(
                "name",
                format!("a key named {name:?} already exists"),
            ));
        }
        Err(CreateKeyError::Db(e)) => return Err(e.into()),
    };
    let name = input.name.trim().to_owned();
    audit::record(
        &mut tx,
        &caller,
        Audit::new("key.create", id.as_str())
            .detail(serde_json::json!({"name": name, "role": role.as_str()})),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(NewApiKey { id, name, key })))
}

/// Revoke an admin API key (it stops working at once, on every server).
#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 204, description = "Revoked"), ItemErrors))]
pub async fn revoke_key(
    State(state): State<AppState>,
    AdminKey(caller): AdminKey,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = ApiKeyId::parse(&id).ok_or_else(|| Problem::not_found("API key", &id))?;
    let mut tx = state.db.write().await?;
    let done =
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(state.clock.now_ms())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
    if done.rows_affected() == 0 {
        let exists = sqlx::query("SELECT id FROM api_keys WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(Problem::not_found("API key", id.as_str()));
        }
        // Already revoked: nothing changes, nothing to audit.
        return Ok(StatusCode::NO_CONTENT);
    }
    audit::record(&mut tx, &caller, Audit::new("key.revoke", id.as_str())).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_hashed() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX) && a.len() == 67, "{a}");
        assert_eq!(hash(&a).len(), 64);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
