//! Signing in and sessions. A session is a random cookie (`HttpOnly; Secure;
//! SameSite=Strict`) whose SHA-256 is the row id; it ends when idle longer than
//! `accounts.session_idle`, after `accounts.session_max`, at sign-out, or when the account is
//! disabled. State-changing requests also carry the session's CSRF token in `X-CSRF-Token`,
//! which must equal the `ketang_csrf` cookie and the stored token (double submit).
//!
//! Failures count per account: `accounts.max_failures` in a row lock it for
//! `accounts.lockout`; while locked, no password is even checked.

use axum::http::{HeaderMap, HeaderValue, header};
use sqlx::Row;

use super::{User, by_id, by_name, password, totp};
use crate::config::Config;
use crate::config::accounts::AccountsConfig;
use crate::db::Db;

/// The session cookie (HttpOnly).
pub const SESSION_COOKIE: &str = "ketang_admin";
/// The CSRF cookie the page reads and echoes in [`CSRF_HEADER`].
pub const CSRF_COOKIE: &str = "ketang_csrf";
/// The header carrying the CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A successful sign-in.
#[derive(Debug)]
pub struct SignedIn {
    /// The session cookie's value (shown to the browser only).
    pub token: String,
    pub csrf: String,
    pub user: User,
    /// False until TOTP is enrolled: the session may then only enrol.
    pub full: bool,
}

/// Why a sign-in failed. Wrong name, password and code are one answer, so that the reply does
/// not tell which was wrong.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("wrong name, password or code")]
    Bad {
        /// The account, when the name exists (for the audit log).
        user: Option<User>,
        /// Why, for the audit log only.
        reason: &'static str,
    },
    #[error("the account is locked until {}", crate::auth::utc(u64::try_from(*until_ms / 1000).unwrap_or(0)))]
    Locked { user: User, until_ms: i64 },
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

async fn verify_blocking(password: String, phc: String) -> Result<bool, SignInError> {
    tokio::task::spawn_blocking(move || password::verify(&password, &phc))
        .await
        .map_err(|e| SignInError::Internal(e.to_string()))
}

/// Checks name, password and (once enrolled) the TOTP code at `now_ms`; opens a session.
pub async fn sign_in(
    db: &Db,
    cfg: &AccountsConfig,
    name: &str,
    password: &str,
    code: Option<&str>,
    seeds: &super::seed::SeedKey,
    now_ms: i64,
) -> Result<SignedIn, SignInError> {
    let user = match by_name(db, name.trim()).await? {
        Some(u) if !u.disabled && u.role.is_some() => u,
        other => {
            // As slow as a real check, so that names cannot be probed by timing.
            verify_blocking(password.to_owned(), password::decoy().to_owned()).await?;
            return Err(SignInError::Bad {
                user: other,
                reason: "unknown or disabled account",
            });
        }
    };
    if user.locked_until > now_ms {
        let until_ms = user.locked_until;
        return Err(SignInError::Locked { user, until_ms });
    }
    if !verify_blocking(password.to_owned(), user.password_hash.clone()).await? {
        return Err(fail(db, cfg, user, "wrong password", now_ms).await?);
    }
    let full = match &user.totp_secret {
        None => false,
        Some(sealed) => {
            // A seed that does not open (another server secret, an edited row) matches no code.
            let secret = seeds.open(user.id.as_str(), sealed).unwrap_or_default();
            let secret = secret.as_str();
            let now_secs = u64::try_from(now_ms / 1000).unwrap_or(0);
            let last = u64::try_from(user.totp_last_step).unwrap_or(0);
            match code.and_then(|c| totp::check(secret, c, now_secs, last)) {
                Some(step) => {
                    sqlx::query("UPDATE admin_users SET totp_last_step = $1 WHERE id = $2")
                        .bind(i64::try_from(step).unwrap_or(i64::MAX))
                        .bind(user.id.as_str())
                        .execute(&db.pool)
                        .await?;
                    true
                }
                None => {
                    let why = if code.is_none_or(|c| c.trim().is_empty()) {
                        "no TOTP code"
                    } else {
                        "wrong TOTP code"
                    };
                    return Err(fail(db, cfg, user, why, now_ms).await?);
                }
            }
        }
    };
    sqlx::query("UPDATE admin_users SET failures = 0 WHERE id = $1")
        .bind(user.id.as_str())
        .execute(&db.pool)
        .await?;
    let (token, csrf) = open(db, &user, full, now_ms).await?;
    Ok(SignedIn {
        token,
        csrf,
        user,
        full,
    })
}

/// Counts a failure; the one that reaches the limit locks the account.
async fn fail(
    db: &Db,
    cfg: &AccountsConfig,
    user: User,
    reason: &'static str,
    now_ms: i64,
) -> Result<SignInError, sqlx::Error> {
    let row = sqlx::query(
        "UPDATE admin_users SET failures = failures + 1 WHERE id = $1 RETURNING failures",
    )
    .bind(user.id.as_str())
    .fetch_one(&db.pool)
    .await?;
    let failures: i32 = row.get("failures");
    if i64::from(failures) >= i64::from(cfg.max_failures) {
        let until_ms = now_ms.saturating_add(i64::try_from(cfg.lockout.as_millis()).unwrap_or(0));
        sqlx::query("UPDATE admin_users SET failures = 0, locked_until = $1 WHERE id = $2")
            .bind(until_ms)
            .bind(user.id.as_str())
            .execute(&db.pool)
            .await?;
        return Ok(SignInError::Locked { user, until_ms });
    }
    Ok(SignInError::Bad {
        user: Some(user),
        reason,
    })
}

fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn open(
    db: &Db,
    user: &User,
    full: bool,
    now_ms: i64,
) -> Result<(String, String), sqlx::Error> {
    let (token, csrf) = (random_hex(), random_hex());
    sqlx::query(
        "INSERT INTO admin_sessions (id, user_id, csrf, full_access, created_at, last_seen) \
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(crate::api::keys::hash(&token))
    .bind(user.id.as_str())
    .bind(&csrf)
    .bind(i16::from(full))
    .bind(now_ms)
    .execute(&db.pool)
    .await?;
    Ok((token, csrf))
}

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The row id (hash of the cookie).
    pub id: String,
    pub user: User,
    pub csrf: String,
    pub full: bool,
}

/// The session of cookie value `token` at `now_ms`, if it is live; marks it used.
pub async fn lookup(
    db: &Db,
    cfg: &AccountsConfig,
    token: &str,
    now_ms: i64,
) -> Result<Option<Session>, sqlx::Error> {
    if token.len() != 64 {
        return Ok(None);
    }
    let id = crate::api::keys::hash(token);
    let Some(row) = sqlx::query(
        "SELECT user_id, csrf, full_access, created_at, last_seen FROM admin_sessions WHERE id = $1",
    )
    .bind(&id)
    .fetch_optional(&db.pool)
    .await?
    else {
        return Ok(None);
    };
    let idle = i64::try_from(cfg.session_idle.as_millis()).unwrap_or(i64::MAX);
    let max = i64::try_from(cfg.session_max.as_millis()).unwrap_or(i64::MAX);
    let (created, seen): (i64, i64) = (row.get("created_at"), row.get("last_seen"));
    let user = by_id(db, row.get::<String, _>("user_id").as_str()).await?;
    let live = now_ms <= seen.saturating_add(idle) && now_ms <= created.saturating_add(max);
    let Some(user) = user.filter(|u| live && !u.disabled && u.role.is_some()) else {
        end(db, &id).await?;
        return Ok(None);
    };
    sqlx::query("UPDATE admin_sessions SET last_seen = $1 WHERE id = $2")
        .bind(now_ms)
        .bind(&id)
        .execute(&db.pool)
        .await?;
    Ok(Some(Session {
        id,
        user,
        csrf: row.get("csrf"),
        full: row.get::<i16, _>("full_access") != 0,
    }))
}

/// Ends the session with row id `id`.
pub async fn end(db: &Db, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM admin_sessions WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Ends every session of an account (disabled, password reset).
pub async fn end_all(conn: &mut sqlx::AnyConnection, user_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM admin_sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether cookies get `Secure`: always, except on a plain-HTTP listener on a loopback address
/// (a browser would not send a `Secure` cookie back over `http://127.0.0.1`). Behind a reverse
/// proxy that terminates TLS the listener is not loopback-only in practice, or should set
/// `http.public_url` to https; either way `Secure` stays.
pub fn secure_cookies(config: &Config) -> bool {
    let https_url = config
        .http
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    config.http.tls() || https_url || !config.http.listen.ip().is_loopback()
}

/// The `Set-Cookie` values that start a session.
pub fn set_cookies(token: &str, csrf: &str, secure: bool) -> [HeaderValue; 2] {
    let s = if secure { "; Secure" } else { "" };
    [
        header_value(format!(
            "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{s}"
        )),
        header_value(format!("{CSRF_COOKIE}={csrf}; Path=/; SameSite=Strict{s}")),
    ]
}

/// The `Set-Cookie` values that end a session in the browser.
pub fn clear_cookies(secure: bool) -> [HeaderValue; 2] {
    let s = if secure { "; Secure" } else { "" };
    [
        header_value(format!(
            "{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{s}"
        )),
        header_value(format!(
            "{CSRF_COOKIE}=; Path=/; Max-Age=0; SameSite=Strict{s}"
        )),
    ]
}

fn header_value(s: String) -> HeaderValue {
    // Only hex and fixed text: always a valid header value.
    HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static(""))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Whether the request carries the session's CSRF token in both the header and the cookie.
pub fn csrf_ok(headers: &HeaderMap, session: &Session) -> bool {
    let header = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    let cookie = cookie(headers, CSRF_COOKIE);
    match (header, cookie) {
        (Some(h), Some(c)) => same(h, c) && same(h, &session.csrf),
        _ => false,
    }
}

/// Constant-time comparison.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Marks a session as fully signed in (TOTP enrolled).
pub async fn upgrade(conn: &mut sqlx::AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE admin_sessions SET full_access = 1 WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends sessions idle past `accounts.session_idle` (housekeeping; `lookup` refuses them anyway).
pub async fn sweep(db: &Db, cfg: &AccountsConfig, now_ms: i64) -> Result<u64, sqlx::Error> {
    let idle = i64::try_from(cfg.session_idle.as_millis()).unwrap_or(i64::MAX);
    let done = sqlx::query("DELETE FROM admin_sessions WHERE last_seen < $1")
        .bind(now_ms.saturating_sub(idle))
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected())
}
