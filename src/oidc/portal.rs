//! The teacher portal: sign-in through the provider and a page with the signed-in teacher's
//! own lessons and her own room links. Nothing here is under `/api/v1`: the portal is not an
//! admin surface and its session cookie opens nothing else.
//!
//! Both cookies are signed with a key derived from the server secret. They are
//! `SameSite=Lax` because the callback is a top-level navigation from the provider's site
//! (a `Strict` cookie would not come with it); the portal only reads, so Lax is enough.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;

use super::{Client, Pending};
use crate::accounts::session::{cookie, secure_cookies};
use crate::api::audit::{self, Audit};
use crate::api::keys::KeyInfo;
use crate::db::ids::ApiKeyId;
use crate::state::AppState;

const FLOW_COOKIE: &str = "ketang_oidc";
const SESSION_COOKIE: &str = "ketang_teacher";
/// A sign-in must come back from the provider within this time.
const FLOW_SECS: i64 = 600;

type Oidc = Arc<Option<Client>>;

/// The portal's routes.
pub fn router(state: &AppState) -> Router<AppState> {
    let client: Oidc = Arc::new(match Client::new(&state.config.oidc) {
        Ok(c) => Some(c),
        Err(super::OidcError::Off) => None,
        Err(e) => {
            tracing::warn!("teacher sign-in is off: {e}");
            None
        }
    });
    Router::new()
        .route("/teacher", get(page))
        .route("/teacher/login", get(login))
        .route("/teacher/callback", get(callback))
        .route("/teacher/logout", post(logout))
        .route("/teacher/api/me", get(me))
        .layer(Extension(client))
        .layer(axum::middleware::from_fn(audit::with_source))
}

fn key(state: &AppState) -> Option<[u8; 32]> {
    state
        .audit_key
        .get()
        .map(|k| k.subkey(b"ketang teacher portal v1"))
}

fn mac(key: &[u8; 32]) -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

fn seal<T: Serialize>(key: &[u8; 32], value: &T) -> String {
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default());
    let mut m = mac(key);
    m.update(body.as_bytes());
    format!(
        "{body}.{}",
        URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
    )
}

fn unseal<T: for<'de> Deserialize<'de>>(key: &[u8; 32], sealed: &str) -> Option<T> {
    let (body, tag) = sealed.split_once('.')?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    let mut m = mac(key);
    m.update(body.as_bytes());
    m.verify_slice(&tag).ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
}

#[derive(Serialize, Deserialize)]
struct Flow {
    p: Pending,
    exp: i64,
}

#[derive(Serialize, Deserialize)]
struct TeacherSession {
    t: String,
    n: String,
    exp: i64,
}

fn set_cookie(
    resp: &mut Response,
    name: &str,
    value: &str,
    max_age: i64,
    path: &str,
    secure: bool,
) {
    let s = if secure { "; Secure" } else { "" };
    let v = format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{s}");
    if let Ok(v) = HeaderValue::from_str(&v) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn text(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.to_owned(),
    )
        .into_response()
}

fn redirect_uri(state: &AppState) -> String {
    format!(
        "{}/teacher/callback",
        state.config.public_base_url().trim_end_matches('/')
    )
}

async fn page() -> Response {
    crate::http::embedded_page("teacher.html")
}

async fn login(State(state): State<AppState>, Extension(client): Extension<Oidc>) -> Response {
    let (Some(client), Some(key)) = (client.as_ref(), key(&state)) else {
        return text(
            StatusCode::NOT_FOUND,
            "teacher sign-in is not configured on this server",
        );
    };
    let pending = Pending::new();
    let url = match client.authorize_url(&pending, &redirect_uri(&state)).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!("teacher sign-in: {e}");
            return text(StatusCode::BAD_GATEWAY, &e.to_string());
        }
    };
    let flow = Flow {
        p: pending,
        exp: state.clock.now_ms() + FLOW_SECS * 1000,
    };
    let mut resp = (StatusCode::FOUND, [(header::LOCATION, url)]).into_response();
    set_cookie(
        &mut resp,
        FLOW_COOKIE,
        &seal(&key, &flow),
        FLOW_SECS,
        "/teacher",
        secure_cookies(&state.config),
    );
    resp
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn audit_login(
    state: &AppState,
    teacher: &str,
    name: &str,
    action: &'static str,
    detail: serde_json::Value,
) {
    let who = KeyInfo {
        id: ApiKeyId::from_db(teacher.chars().take(64).collect()),
        name: name.chars().take(64).collect(),
        at_ms: state.clock.now_ms(),
    };
    let written = async {
        let mut conn = state.db.pool.acquire().await?;
        audit::record(
            &mut conn,
            &who,
            Audit::new(action, teacher.chars().take(64).collect::<String>()).detail(detail),
        )
        .await
    }
    .await;
    if let Err(e) = written {
        tracing::error!("cannot audit a teacher sign-in: {e}");
    }
}

async fn callback(
    State(state): State<AppState>,
    Extension(client): Extension<Oidc>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let (Some(client), Some(key)) = (client.as_ref(), key(&state)) else {
        return text(
            StatusCode::NOT_FOUND,
            "teacher sign-in is not configured on this server",
        );
    };
    if let Some(e) = q.error {
        return text(
            StatusCode::FORBIDDEN,
            &format!(
                "the identity provider refused the sign-in: {}",
                e.chars().take(100).collect::<String>()
            ),
        );
    }
    let flow: Option<Flow> = cookie(&headers, FLOW_COOKIE).and_then(|c| unseal(&key, c));
    let Some(flow) = flow.filter(|f| f.exp > state.clock.now_ms()) else {
        return text(
            StatusCode::BAD_REQUEST,
            "the sign-in took too long or was started elsewhere: start again at /teacher/login",
        );
    };
    let (Some(code), Some(st)) = (q.code, q.state) else {
        return text(
            StatusCode::BAD_REQUEST,
            "the identity provider sent no code",
        );
    };
    if st != flow.p.state {
        return text(
            StatusCode::BAD_REQUEST,
            "the sign-in does not match the one this browser started: start again at /teacher/login",
        );
    }
    let who = match client.finish(&code, &flow.p, &redirect_uri(&state)).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("teacher sign-in refused: {e}");
            audit_login(
                &state,
                "-",
                "-",
                "teacher.loginFail",
                json!({"reason": e.to_string()}),
            )
            .await;
            return text(StatusCode::FORBIDDEN, &e.to_string());
        }
    };
    let known = sqlx::query_scalar::<_, String>("SELECT id FROM teachers WHERE id = $1")
        .bind(&who.teacher)
        .fetch_optional(&state.db.pool)
        .await;
    match known {
        Ok(Some(_)) => {}
        Ok(None) => {
            audit_login(
                &state,
                &who.teacher,
                &who.name,
                "teacher.loginFail",
                json!({"reason": "no such teacher"}),
            )
            .await;
            return text(
                StatusCode::FORBIDDEN,
                "your account is not linked to a Ketang teacher: ask the school's admin",
            );
        }
        Err(e) => {
            tracing::error!("teacher sign-in: {e}");
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable; try again",
            );
        }
    }
    audit_login(&state, &who.teacher, &who.name, "teacher.login", json!({})).await;
    let max_age = i64::try_from(state.config.oidc.session.as_secs()).unwrap_or(3600);
    let session = TeacherSession {
        t: who.teacher,
        n: who.name,
        exp: state.clock.now_ms() + max_age * 1000,
    };
    let secure = secure_cookies(&state.config);
    let mut resp = (StatusCode::FOUND, [(header::LOCATION, "/teacher")]).into_response();
    set_cookie(
        &mut resp,
        SESSION_COOKIE,
        &seal(&key, &session),
        max_age,
        "/",
        secure,
    );
    set_cookie(&mut resp, FLOW_COOKIE, "", 0, "/teacher", secure);
    resp
}

async fn logout(State(state): State<AppState>) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    set_cookie(
        &mut resp,
        SESSION_COOKIE,
        "",
        0,
        "/",
        secure_cookies(&state.config),
    );
    resp
}

/// The signed-in teacher, her lessons and her own links (JSON).
async fn me(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(key) = key(&state) else {
        return text(
            StatusCode::NOT_FOUND,
            "teacher sign-in is not configured on this server",
        );
    };
    let session: Option<TeacherSession> =
        cookie(&headers, SESSION_COOKIE).and_then(|c| unseal(&key, c));
    let Some(s) = session.filter(|s| s.exp > state.clock.now_ms()) else {
        let login = state
            .config
            .oidc
            .issuer
            .is_some()
            .then_some("/teacher/login");
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"signIn": login})),
        )
            .into_response();
    };
    match crate::api::lesson_ops::teacher_links(&state, &s.t).await {
        Ok(lessons) => {
            let lessons: Vec<_> = lessons
                .into_iter()
                .map(|(title, l)| {
                    json!({
                        "lessonId": l.lesson_id, "occurrenceId": l.occurrence_id, "title": title,
                        "start": l.start, "end": l.end, "validFrom": l.valid_from,
                        "validUntil": l.valid_until,
                        "url": l.links.first().map(|k| k.url.clone()),
                    })
                })
                .collect();
            let mut resp = axum::Json(json!({"teacherId": s.t, "name": s.n, "lessons": lessons}))
                .into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(p) => p.into_response(),
    }
}
