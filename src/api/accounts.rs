//! Admin accounts through the API (security admins): list, create (the response holds the
//! one-time password), disable, and reset (new one-time password, TOTP to enrol again,
//! unlocked).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::audit::{self, Audit};
use super::extract::{AdminKey, Body};
use super::problem::{ApiResult, AuthErrors, ItemErrors, Problem, WriteErrors};
use crate::accounts::{self, AdminRole, CreateUserError, password, session};
use crate::schedule::time::format_utc;
use crate::state::AppState;

/// An account as listed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub id: String,
    pub name: String,
    pub role: Option<AdminRole>,
    pub totp_enrolled: bool,
    /// RFC 3339, while locked after failed sign-ins.
    pub locked_until: Option<String>,
    pub disabled: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// `POST /api/v1/accounts`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountInput {
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// system, security or audit.
    pub role: AdminRole,
}

/// A new account or a reset one: the one-time password is shown only here.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OneTimePassword {
    pub id: String,
    pub name: String,
    pub one_time_password: String,
}

/// List the admin accounts.
#[utoipa::path(get, path = "/api/v1/accounts", tag = "accounts",
    responses((status = 200, description = "OK", body = Vec<Account>), AuthErrors))]
pub async fn list_accounts(
    State(state): State<AppState>,
    AdminKey(caller): AdminKey,
) -> ApiResult<Json<Vec<Account>>> {
    let users = accounts::list(&state.db).await?;
    Ok(Json(
        users
            .into_iter()
            .map(|u| Account {
                id: u.id.to_string(),
                name: u.name,
                role: u.role,
                totp_enrolled: u.totp_secret.is_some(),
                locked_until: (u.locked_until > caller.at_ms).then(|| format_utc(u.locked_until)),
                disabled: u.disabled,
                created_at: format_utc(u.created_at),
            })
            .collect(),
    ))
}

/// Create an admin account; the response holds its one-time password.
#[utoipa::path(post, path = "/api/v1/accounts", tag = "accounts", request_body = AccountInput,
    responses((status = 201, description = "Created", body = OneTimePassword), WriteErrors))]
pub async fn create_account(
    State(state): State<AppState>,
    AdminKey(caller): AdminKey,
    Body(input): Body<AccountInput>,
) -> ApiResult<(StatusCode, Json<OneTimePassword>)> {
    let mut tx = state.db.write().await?;
    let (id, otp) = match accounts::create_user(&mut tx, &input.name, input.role, caller.at_ms)
        .await
    {
        Ok(made) => made,
        Err(CreateUserError::Name(m)) => return Err(Problem::field("name", m)),
        Err(e @ CreateUserError::Exists(_)) => return Err(Problem::field("name", e.to_string())),
        Err(e @ CreateUserError::Role) => return Err(Problem::field("role", e.to_string())),
        Err(CreateUserError::Hash(e)) => {
            tracing::error!("{e}");
            return Err(Problem::internal());
        }
        Err(CreateUserError::Db(e)) => return Err(e.into()),
    };
    let name = input.name.trim().to_owned();
    audit::record(
        &mut tx,
        &caller,
        Audit::new("account.create", id.as_str())
            .detail(serde_json::json!({"name": name, "role": input.role.as_str()})),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(OneTimePassword {
            id: id.to_string(),
            name,
            one_time_password: otp,
        }),
    ))
}

/// Disable an account: its sessions end and it cannot sign in again.
#[utoipa::path(delete, path = "/api/v1/accounts/{id}", tag = "accounts",
    params(("id" = String, Path, description = "Account id")),
    responses((status = 204, description = "Disabled"), ItemErrors))]
pub async fn disable_account(
    State(state): State<AppState>,
    AdminKey(caller): AdminKey,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.write().await?;
    let done = sqlx::query(
        "UPDATE admin_users SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL",
    )
    .bind(caller.at_ms)
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        if accounts::by_id(&state.db, &id).await?.is_none() {
            return Err(Problem::not_found("account", &id));
        }
        return Ok(StatusCode::NO_CONTENT);
    }
    session::end_all(&mut tx, &id).await?;
    audit::record(&mut tx, &caller, Audit::new("account.disable", id.as_str())).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reset an account: a new one-time password, TOTP to enrol again, unlocked, sessions ended.
#[utoipa::path(post, path = "/api/v1/accounts/{id}/reset", tag = "accounts",
    params(("id" = String, Path, description = "Account id")),
    responses((status = 200, description = "Reset", body = OneTimePassword), WriteErrors))]
pub async fn reset_account(
    State(state): State<AppState>,
    AdminKey(caller): AdminKey,
    Path(id): Path<String>,
) -> ApiResult<Json<OneTimePassword>> {
    let user = accounts::by_id(&state.db, &id)
        .await?
        .ok_or_else(|| Problem::not_found("account", &id))?;
    let otp = password::one_time();
    let phc = {
        let otp = otp.clone();
        tokio::task::spawn_blocking(move || password::hash(&otp))
            .await
            .map_err(|_| Problem::internal())?
            .map_err(|_| Problem::internal())?
    };
    let mut tx = state.db.write().await?;
    sqlx::query(
        "UPDATE admin_users SET password_hash = $1, must_change = 1, totp_secret = NULL, \
         totp_pending = NULL, failures = 0, locked_until = 0, disabled_at = NULL WHERE id = $2",
    )
    .bind(phc)
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    session::end_all(&mut tx, &id).await?;
    audit::record(&mut tx, &caller, Audit::new("account.reset", id.as_str())).await?;
    tx.commit().await?;
    Ok(Json(OneTimePassword {
        id,
        name: user.name,
        one_time_password: otp,
    }))
}
