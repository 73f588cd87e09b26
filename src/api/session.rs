//! Signing in to the admin page: `POST /api/v1/session` (name, password, TOTP code) sets the
//! session and CSRF cookies; `GET` says who is signed in; `DELETE` signs out. A new account's
//! first session may only enrol TOTP (`/session/totp`, then `/session/totp/confirm` with a
//! code and a new password). Every sign-in, failure and lockout is audited with its source.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::audit::{self, Audit};
use super::extract::Body;
use super::keys::KeyInfo;
use super::problem::{ApiResult, AuthErrors, Problem, WriteErrors, types};
use crate::accounts::seed::SeedKey;
use crate::accounts::session::{self, Session, SignInError};
use crate::accounts::{AdminRole, User, password, totp};
use crate::db::ids::ApiKeyId;
use crate::state::AppState;

/// `POST /api/v1/session`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInInput {
    pub name: String,
    pub password: String,
    /// The authenticator app's 6-digit code (not needed before TOTP is enrolled).
    pub code: Option<String>,
}

/// Who is signed in.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub name: String,
    pub role: AdminRole,
    /// False until TOTP is enrolled: the session may then only enrol.
    pub totp_enrolled: bool,
    /// Echo it in `X-CSRF-Token` on every state-changing request (it is also the
    /// `ketang_csrf` cookie).
    pub csrf: String,
}

fn info(user: &User, full: bool, csrf: &str) -> SessionInfo {
    SessionInfo {
        name: user.name.clone(),
        role: user.role.unwrap_or(AdminRole::Audit),
        totp_enrolled: full,
        csrf: csrf.to_owned(),
    }
}

/// The audit actor for sign-in events: the account (or the name tried).
fn actor(user: Option<&User>, name: &str, at_ms: i64) -> KeyInfo {
    KeyInfo {
        id: ApiKeyId::from_db(user.map_or_else(|| "-".to_owned(), |u| u.id.to_string())),
        name: name.chars().take(64).collect(),
        at_ms,
    }
}

async fn audit_event(state: &AppState, who: &KeyInfo, entry: Audit) -> Result<(), Problem> {
    let mut conn = state.db.pool.acquire().await?;
    audit::record(&mut conn, who, entry).await?;
    Ok(())
}

/// The key TOTP seeds are sealed with (derived from the server secret).
fn seed_key(state: &AppState) -> Result<SeedKey, Problem> {
    state
        .audit_key
        .get()
        .map(|k| SeedKey::new(k.subkey(b"ketang totp seeds v1")))
        .ok_or_else(Problem::internal)
}

/// Sign in with name, password and TOTP code; sets the session cookies.
#[utoipa::path(post, path = "/api/v1/session", tag = "session", security(()),
    request_body = SignInInput,
    responses((status = 200, description = "Signed in", body = SessionInfo),
        (status = 429, description = "Locked after too many failures", body = super::problem::ProblemDoc,
            content_type = "application/problem+json"),
        WriteErrors))]
pub async fn sign_in(
    State(state): State<AppState>,
    Body(input): Body<SignInInput>,
) -> ApiResult<Response> {
    let now = state.clock.now_ms();
    let cfg = &state.config.accounts;
    let seeds = seed_key(&state)?;
    let result = session::sign_in(
        &state.db,
        cfg,
        &input.name,
        &input.password,
        input.code.as_deref(),
        &seeds,
        now,
    )
    .await;
    match result {
        Ok(signed) => {
            let who = actor(Some(&signed.user), &signed.user.name, now);
            let stage = if signed.full { "full" } else { "enrolment" };
            audit_event(
                &state,
                &who,
                Audit::new("login.ok", signed.user.id.as_str())
                    .detail(serde_json::json!({"stage": stage})),
            )
            .await?;
            let secure = session::secure_cookies(&state.config);
            let mut resp = Json(info(&signed.user, signed.full, &signed.csrf)).into_response();
            for c in session::set_cookies(&signed.token, &signed.csrf, secure) {
                resp.headers_mut().append(header::SET_COOKIE, c);
            }
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
            Ok(resp)
        }
        Err(SignInError::Bad { user, reason }) => {
            // A name that is no account is not recorded: it is often a password typed into
            // the wrong field.
            let tried = if user.is_some() {
                input.name.as_str()
            } else {
                "(unknown account)"
            };
            let who = actor(user.as_ref(), tried, now);
            let target = user.as_ref().map_or("-", |u| u.id.as_str()).to_owned();
            audit_event(
                &state,
                &who,
                Audit::new("login.fail", target).detail(serde_json::json!({"reason": reason})),
            )
            .await?;
            Err(Problem::unauthorized("wrong name, password or code"))
        }
        Err(e @ SignInError::Locked { .. }) => {
            let SignInError::Locked { user, until_ms } = &e else {
                return Err(Problem::internal());
            };
            let who = actor(Some(user), &user.name, now);
            audit_event(
                &state,
                &who,
                Audit::new("login.locked", user.id.as_str()).detail(
                    serde_json::json!({"until": crate::schedule::time::format_utc(*until_ms)}),
                ),
            )
            .await?;
            let mut p = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                types::LOCKED,
                "Locked",
                format!("{e}: too many failed sign-ins"),
            )
            .into_response();
            let secs = (until_ms - now).max(0) / 1000 + 1;
            if let Ok(v) = secs.to_string().parse() {
                p.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Ok(p)
        }
        Err(SignInError::Internal(e)) => {
            tracing::error!("sign-in failed: {e}");
            Err(Problem::internal())
        }
        Err(SignInError::Db(e)) => Err(e.into()),
    }
}

/// A session cookie at any stage (enrolment included), CSRF-checked on writes.
pub struct AnySession(pub Session);

impl FromRequestParts<AppState> for AnySession {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let token = session::cookie(&parts.headers, session::SESSION_COOKIE)
            .ok_or_else(|| Problem::unauthorized("not signed in"))?;
        let s = session::lookup(
            &state.db,
            &state.config.accounts,
            token,
            state.clock.now_ms(),
        )
        .await?
        .ok_or_else(|| {
            Problem::unauthorized("the session has ended (signed out or idle too long)")
        })?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD);
        if !safe && !session::csrf_ok(&parts.headers, &s) {
            return Err(Problem::forbidden(
                "the request lacks the session's CSRF token (X-CSRF-Token)",
            ));
        }
        Ok(AnySession(s))
    }
}

/// Who is signed in.
#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    responses((status = 200, description = "OK", body = SessionInfo), AuthErrors))]
pub async fn current(AnySession(s): AnySession) -> Json<SessionInfo> {
    Json(info(&s.user, s.full, &s.csrf))
}

/// Sign out: the session ends on the server and its cookies are cleared.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    responses((status = 204, description = "Signed out"), AuthErrors))]
pub async fn sign_out(
    State(state): State<AppState>,
    AnySession(s): AnySession,
) -> ApiResult<Response> {
    session::end(&state.db, &s.id).await?;
    let who = actor(Some(&s.user), &s.user.name, state.clock.now_ms());
    audit_event(&state, &who, Audit::new("logout", s.user.id.as_str())).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    for c in session::clear_cookies(session::secure_cookies(&state.config)) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}

/// A TOTP secret to enrol.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TotpEnrolment {
    /// Base32, for typing into an app by hand.
    pub secret: String,
    /// `otpauth://totp/...`
    pub uri: String,
    /// The URI as a QR code (SVG).
    pub qr_svg: String,
}

/// Start TOTP enrolment: a new secret, as text and as a QR code. Only before enrolment.
#[utoipa::path(post, path = "/api/v1/session/totp", tag = "session",
    responses((status = 200, description = "Scan it, then confirm with a code", body = TotpEnrolment), WriteErrors))]
pub async fn start_totp(
    State(state): State<AppState>,
    AnySession(s): AnySession,
) -> ApiResult<Response> {
    if s.user.totp_secret.is_some() {
        return Err(Problem::state(
            "TOTP is already enrolled; a security admin can reset the account",
        ));
    }
    let secret = totp::generate_secret();
    let sealed = seed_key(&state)?
        .seal(s.user.id.as_str(), &secret)
        .ok_or_else(Problem::internal)?;
    sqlx::query("UPDATE admin_users SET totp_pending = $1 WHERE id = $2")
        .bind(&sealed)
        .bind(s.user.id.as_str())
        .execute(&state.db.pool)
        .await?;
    let uri = totp::uri("Ketang", &s.user.name, &secret);
    let qr_svg = totp::qr_svg(&uri).ok_or_else(Problem::internal)?;
    let mut resp = Json(TotpEnrolment {
        secret,
        uri,
        qr_svg,
    })
    .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
    Ok(resp)
}

/// `POST /api/v1/session/totp/confirm`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfirmTotp {
    /// A current code from the app.
    pub code: String,
    /// The password to use from now on (replaces the one-time password): at least 12
    /// characters mixing three of lower case, upper case, digits, other.
    pub new_password: String,
}

/// Finish enrolment with a code from the app and a new password; the session becomes full.
#[utoipa::path(post, path = "/api/v1/session/totp/confirm", tag = "session",
    request_body = ConfirmTotp,
    responses((status = 200, description = "Enrolled", body = SessionInfo), WriteErrors))]
pub async fn confirm_totp(
    State(state): State<AppState>,
    AnySession(s): AnySession,
    Body(input): Body<ConfirmTotp>,
) -> ApiResult<Json<SessionInfo>> {
    let pending = s
        .user
        .totp_pending
        .as_deref()
        .and_then(|p| seed_key(&state).ok()?.open(s.user.id.as_str(), p));
    let Some(pending) = pending else {
        return Err(Problem::state(
            "start enrolment first (POST /api/v1/session/totp)",
        ));
    };
    if s.user.totp_secret.is_some() {
        return Err(Problem::state("TOTP is already enrolled"));
    }
    password::check_strength(&input.new_password).map_err(|m| Problem::field("newPassword", m))?;
    let now = state.clock.now_ms();
    let step = totp::check(
        &pending,
        &input.code,
        u64::try_from(now / 1000).unwrap_or(0),
        0,
    )
    .ok_or_else(|| Problem::field("code", "the code is not right: check the app and the clock"))?;
    let phc = {
        let pw = input.new_password.clone();
        tokio::task::spawn_blocking(move || password::hash(&pw))
            .await
            .map_err(|_| Problem::internal())?
            .map_err(|_| Problem::internal())?
    };
    let mut tx = state.db.write().await?;
    sqlx::query(
        "UPDATE admin_users SET totp_secret = totp_pending, totp_pending = NULL, \
         totp_last_step = $1, password_hash = $2, must_change = 0 WHERE id = $3",
    )
    .bind(i64::try_from(step).unwrap_or(i64::MAX))
    .bind(phc)
    .bind(s.user.id.as_str())
    .execute(&mut *tx)
    .await?;
    session::upgrade(&mut tx, &s.id).await?;
    let who = actor(Some(&s.user), &s.user.name, now);
    audit::record(
        &mut tx,
        &who,
        Audit::new("account.enrol", s.user.id.as_str()),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(info(&s.user, true, &s.csrf)))
}
