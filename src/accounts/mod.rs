//! Admin accounts (等级保护 level 3): named people, each with one of the three separated roles
//! (system, security, audit), an argon2id password, a TOTP second factor, and lockout after
//! repeated failures. `session` holds their sign-in sessions; `api::session` the HTTP side.

pub mod password;
pub mod seed;
pub mod session;
pub mod totp;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use crate::api::validate::text;
use crate::db::Db;
use crate::db::ids::UserId;

/// An administrator's role (三权分立). API keys may also be `all`: keys made before roles
/// existed keep doing everything they did; people never get it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AdminRole {
    /// Schools, classrooms, teachers, lessons, links, rooms and the library.
    System,
    /// Accounts, API keys (and webhooks and retention, when they exist).
    Security,
    /// Reads the audit log, nothing else.
    Audit,
    /// Everything (API keys only; for compatibility).
    All,
}

impl AdminRole {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminRole::System => "system",
            AdminRole::Security => "security",
            AdminRole::Audit => "audit",
            AdminRole::All => "all",
        }
    }

    /// Reads a stored role; an unknown one (a hand-edited row) gets no rights at all.
    pub fn from_db(s: &str) -> Option<AdminRole> {
        s.parse().ok()
    }
}

impl fmt::Display for AdminRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AdminRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "system" => Ok(AdminRole::System),
            "security" => Ok(AdminRole::Security),
            "audit" => Ok(AdminRole::Audit),
            "all" => Ok(AdminRole::All),
            other => Err(format!(
                "unknown role {other:?}: use system, security or audit"
            )),
        }
    }
}

/// Why an account could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("name: {0}")]
    Name(String),
    #[error("an account named {0:?} already exists")]
    Exists(String),
    #[error("role: people are system, security or audit admins (not all)")]
    Role,
    #[error("{0}")]
    Hash(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Inserts an account; returns its id and one-time password (shown only now). The person
/// signs in with it once, enrols TOTP and chooses a password.
pub async fn create_user(
    conn: &mut sqlx::AnyConnection,
    name: &str,
    role: AdminRole,
    now_ms: i64,
) -> Result<(UserId, String), CreateUserError> {
    if role == AdminRole::All {
        return Err(CreateUserError::Role);
    }
    let name = text(name, 1, 64).map_err(CreateUserError::Name)?;
    let exists = sqlx::query("SELECT id FROM admin_users WHERE name = $1")
        .bind(&name)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_some() {
        return Err(CreateUserError::Exists(name));
    }
    let otp = password::one_time();
    let phc = {
        let otp = otp.clone();
        tokio::task::spawn_blocking(move || password::hash(&otp))
            .await
            .map_err(|e| CreateUserError::Hash(e.to_string()))?
            .map_err(CreateUserError::Hash)?
    };
    let id = UserId::generate(u64::try_from(now_ms).unwrap_or(0));
    sqlx::query(
        "INSERT INTO admin_users (id, name, role, password_hash, must_change, totp_secret, \
         totp_pending, totp_last_step, failures, locked_until, created_at, disabled_at) \
         VALUES ($1, $2, $3, $4, 1, NULL, NULL, 0, 0, 0, $5, NULL)",
    )
    .bind(id.as_str())
    .bind(&name)
    .bind(role.as_str())
    .bind(phc)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok((id, otp))
}

/// A stored account.
#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub role: Option<AdminRole>,
    pub password_hash: String,
    pub must_change: bool,
    pub totp_secret: Option<String>,
    pub totp_pending: Option<String>,
    pub totp_last_step: i64,
    pub failures: i64,
    pub locked_until: i64,
    pub created_at: i64,
    pub disabled: bool,
}

const USER_COLUMNS: &str = "id, name, role, password_hash, must_change, totp_secret, \
    totp_pending, totp_last_step, failures, locked_until, created_at, disabled_at";

fn user_from_row(r: &sqlx::any::AnyRow) -> User {
    User {
        id: UserId::from_db(r.get("id")),
        name: r.get("name"),
        role: AdminRole::from_db(r.get::<String, _>("role").as_str()),
        password_hash: r.get("password_hash"),
        must_change: r.get::<i16, _>("must_change") != 0,
        totp_secret: r.get("totp_secret"),
        totp_pending: r.get("totp_pending"),
        totp_last_step: r.get("totp_last_step"),
        failures: r.get::<i32, _>("failures").into(),
        locked_until: r.get("locked_until"),
        created_at: r.get("created_at"),
        disabled: r.get::<Option<i64>, _>("disabled_at").is_some(),
    }
}

/// The account named `name`.
pub async fn by_name(db: &Db, name: &str) -> Result<Option<User>, sqlx::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM admin_users WHERE name = $1");
    let row = sqlx::query(crate::db::assembled(sql))
        .bind(name)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.as_ref().map(user_from_row))
}

/// The account with id `id`.
pub async fn by_id(db: &Db, id: &str) -> Result<Option<User>, sqlx::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM admin_users WHERE id = $1");
    let row = sqlx::query(crate::db::assembled(sql))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.as_ref().map(user_from_row))
}

/// Every account, oldest first.
pub async fn list(db: &Db) -> Result<Vec<User>, sqlx::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM admin_users ORDER BY created_at, id");
    let rows = sqlx::query(crate::db::assembled(sql))
        .fetch_all(&db.pool)
        .await?;
    Ok(rows.iter().map(user_from_row).collect())
}

/// What `ketang admin create-user` prints.
#[derive(Debug)]
pub struct CreatedUser {
    /// The one-time password, on stdout.
    pub password: String,
    /// What was done, on stderr.
    pub summary: String,
}

/// Why `ketang admin create-user` failed.
#[derive(Debug, thiserror::Error)]
pub enum UserCommandError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    Create(#[from] CreateUserError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl UserCommandError {
    /// 2 for a bad name or role, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            UserCommandError::Create(
                CreateUserError::Name(_) | CreateUserError::Exists(_) | CreateUserError::Role,
            ) => 2,
            _ => 1,
        }
    }
}

/// `ketang admin create-user NAME --role ROLE`: opens (and migrates) the configured database
/// and adds an account with a one-time password.
pub fn create_user_command(
    name: &str,
    role: AdminRole,
    config: Option<&std::path::Path>,
) -> Result<CreatedUser, UserCommandError> {
    let config = crate::config::Config::load(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(UserCommandError::Runtime)?;
    runtime.block_on(async {
        let db = Db::open(&config).await?;
        let now = crate::time::Clock::default().now_ms();
        let made = async {
            let mut tx = db.write().await?;
            let made = create_user(&mut tx, name, role, now).await?;
            let actor = crate::api::keys::KeyInfo {
                id: crate::db::ids::ApiKeyId::from_db("cli".to_owned()),
                name: "ketang admin create-user".to_owned(),
                at_ms: now,
            };
            crate::api::audit::record(
                &mut tx,
                &actor,
                crate::api::audit::Audit::new("account.create", made.0.as_str())
                    .detail(serde_json::json!({"name": name.trim(), "role": role.as_str()})),
            )
            .await?;
            tx.commit().await?;
            Ok::<_, CreateUserError>(made)
        }
        .await;
        db.close().await;
        let (id, password) = made?;
        Ok(CreatedUser {
            password,
            summary: format!(
                "created {role} admin {id} ({:?}) in {}; the password above works once: sign in \
                 at /admin, enrol an authenticator app and choose a new password",
                name.trim(),
                crate::db::redact_url(&crate::db::effective_url(&config))
            ),
        })
    })
}
