//! Teacher sign-in (issue 18): the OpenID Connect authorization-code flow with PKCE against a
//! tiny identity provider this test runs on loopback (discovery, JWKS, an authorize endpoint
//! that signs the configured person in at once, a token endpoint that checks the client secret
//! and the PKCE verifier and signs an ES256 ID token). The signed-in teacher sees only her
//! lessons and only her own (teacher) links; a forged state, a wrong nonce or an unknown
//! teacher are refused.

mod api_common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use api_common::{Api, Engine, Reply, from_now};
use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const CLIENT_ID: &str = "ketang";
const CLIENT_SECRET: &str = "idp-client-secret-for-tests";

/// What the provider does.
#[derive(Default)]
struct IdpState {
    /// The person who "signs in" at /authorize: their claims.
    person: Value,
    /// code → (PKCE challenge, nonce, redirect_uri)
    codes: HashMap<String, (String, String, String)>,
    /// Send this nonce instead of the one asked for (a replayed token).
    wrong_nonce: bool,
    issuer: String,
    der: Vec<u8>,
}

type Idp = Arc<Mutex<IdpState>>;

async fn discovery(State(idp): State<Idp>) -> Response {
    let iss = idp.lock().unwrap().issuer.clone();
    axum::Json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "jwks_uri": format!("{iss}/jwks"),
        "response_types_supported": ["code"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
    .into_response()
}

async fn authorize(State(idp): State<Idp>, Query(q): Query<HashMap<String, String>>) -> Response {
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["scope"].split(' ').any(|s| s == "openid"));
    let code = format!("code-{:x}", rand::random::<u64>());
    idp.lock().unwrap().codes.insert(
        code.clone(),
        (
            q["code_challenge"].clone(),
            q["nonce"].clone(),
            q["redirect_uri"].clone(),
        ),
    );
    let sep = if q["redirect_uri"].contains('?') {
        '&'
    } else {
        '?'
    };
    Redirect::to(&format!(
        "{}{sep}code={code}&state={}",
        q["redirect_uri"], q["state"]
    ))
    .into_response()
}

async fn token(State(idp): State<Idp>, Form(f): Form<HashMap<String, String>>) -> Response {
    let bad = |why: &str| {
        (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant", "error_description": why})),
        )
            .into_response()
    };
    let mut s = idp.lock().unwrap();
    if f.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return bad("grant_type");
    }
    if f.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || f.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return bad("client");
    }
    let Some((challenge, nonce, redirect)) = f.get("code").and_then(|c| s.codes.remove(c)) else {
        return bad("code");
    };
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != challenge {
        return bad("pkce");
    }
    if f.get("redirect_uri") != Some(&redirect) {
        return bad("redirect_uri");
    }
    let now = jiff::Timestamp::now().as_second();
    let mut claims = s.person.clone();
    claims["iss"] = json!(s.issuer);
    claims["aud"] = json!(CLIENT_ID);
    claims["iat"] = json!(now);
    claims["exp"] = json!(now + 300);
    claims["nonce"] = json!(if s.wrong_nonce {
        "someone else's".to_owned()
    } else {
        nonce
    });
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".to_owned());
    let key = EncodingKey::from_ec_der(&s.der);
    let id_token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    axum::Json(json!({"access_token": "opaque", "token_type": "Bearer", "expires_in": 300, "id_token": id_token})).into_response()
}

/// Starts the provider; returns its issuer URL and state.
async fn start_idp() -> (String, Idp) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = key.public_key_raw();
    assert_eq!(raw.len(), 65);
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&raw[1..33]), "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
    }]});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let idp: Idp = Arc::new(Mutex::new(IdpState {
        issuer: issuer.clone(),
        der: key.serialize_der(),
        ..Default::default()
    }));
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route(
            "/jwks",
            get(move || async move { axum::Json(jwks.clone()) }),
        )
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .with_state(idp.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (issuer, idp)
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (kv, _) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = kv.split_once('=')?;
            (k == name && !val.is_empty()).then(|| val.to_owned())
        })
}

/// Runs the flow in a "browser" without automatic redirects: returns the teacher cookie, or
/// the callback's status and text.
async fn sign_in(api: &Api, tamper_state: bool) -> Result<String, (u16, String)> {
    let c = no_redirects();
    let r = c.get(api.url("/teacher/login")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let flow = set_cookie(&r, "ketang_oidc").expect("flow cookie");
    let to_idp = r.headers()["location"].to_str().unwrap().to_owned();
    let r = c.get(&to_idp).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let mut back = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(back.starts_with(&api.url("/teacher/callback?")), "{back}");
    if tamper_state {
        back = back.replace("&state=", "&state=x");
    }
    let r = c
        .get(&back)
        .header("cookie", format!("ketang_oidc={flow}"))
        .send()
        .await
        .unwrap();
    if r.status() != 302 {
        let status = r.status().as_u16();
        return Err((status, r.text().await.unwrap()));
    }
    assert_eq!(r.headers()["location"], "/teacher");
    Ok(set_cookie(&r, "ketang_teacher").expect("teacher cookie"))
}

async fn me(api: &Api, cookie: &str) -> Reply {
    let r = no_redirects()
        .get(api.url("/teacher/api/me"))
        .header("cookie", format!("ketang_teacher={cookie}"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.json().await.unwrap_or(Value::Null);
    Reply {
        status,
        content_type: String::new(),
        body,
        headers,
    }
}

fn lesson(teacher: &str, master: &str, remote: &str, title: &str) -> Value {
    json!({
        "title": title, "subject": "英语", "grade": "五年级", "mode": "dedicated",
        "teacherId": teacher, "masterClassroomId": master, "remoteClassroomIds": [remote],
        "start": from_now(600), "end": from_now(3000),
    })
}

async fn sees_only_her_lessons_and_links(engine: Engine) {
    let (issuer, idp) = start_idp().await;
    let api = Api::start_with(engine, |c| {
        c.oidc.issuer = Some(issuer);
        c.oidc.client_id = CLIENT_ID.to_owned();
        c.oidc.client_secret = Some(CLIENT_SECRET.to_owned());
    })
    .await;
    scenario(&api, &idp).await;
    api.finish().await;
}

async fn scenario(api: &Api, idp: &Idp) {
    {
        let (teacher_li, rooms) = api.cast(4).await;
        let school = api
            .get(&format!("/api/v1/teachers/{teacher_li}"))
            .await
            .expect(200)
            .body["schoolId"]
            .as_str()
            .unwrap()
            .to_owned();
        let teacher_wang = api.teacher(&school, "王老师").await;
        let hers = api
            .post(
                "/api/v1/lessons",
                lesson(&teacher_li, &rooms[0], &rooms[1], "李老师的英语"),
            )
            .await
            .expect(201)
            .body["lesson"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        api.post(
            "/api/v1/lessons",
            lesson(&teacher_wang, &rooms[2], &rooms[3], "王老师的数学"),
        )
        .await
        .expect(201);

        idp.lock().unwrap().person =
            json!({"sub": "li@school", "ketang_teacher": teacher_li, "name": "李老师"});
        let cookie = sign_in(api, false).await.expect("signed in");
        let r = me(api, &cookie).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["teacherId"], teacher_li.as_str());
        assert_eq!(r.body["name"], "李老师");
        let lessons = r.body["lessons"].as_array().unwrap();
        assert_eq!(lessons.len(), 1, "{}", r.body);
        assert_eq!(lessons[0]["lessonId"], hers.as_str());
        assert_eq!(lessons[0]["title"], "李老师的英语");
        // Her own link only: a teacher token for her room.
        let url = lessons[0]["url"].as_str().unwrap();
        let token = url.split("t=").nth(1).unwrap();
        let claims = api
            .server
            .state
            .tokens
            .verify(token, None, api.server.state.clock.now())
            .unwrap();
        assert_eq!(claims.role, ketang_sfu::Role::Teacher);
        assert_eq!(
            claims.room.as_str(),
            lessons[0]["occurrenceId"].as_str().unwrap()
        );
        assert!(!r.body.to_string().contains("王老师"));
        // The portal page itself, and the cookie opens nothing of the admin API.
        let page = reqwest::get(api.url("/teacher")).await.unwrap();
        assert_eq!(page.status(), 200);
        let admin = no_redirects()
            .get(api.url("/api/v1/lessons"))
            .header("cookie", format!("ketang_teacher={cookie}"))
            .send()
            .await
            .unwrap();
        assert_eq!(admin.status(), 401);
        // A forged cookie is refused.
        let forged = format!("{}x", &cookie[..cookie.len() - 1]);
        assert_eq!(me(api, &forged).await.status, 401);

        // The sign-in is audited with its source.
        let log = api.get("/api/v1/audit?limit=200").await.expect(200);
        let login = log.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["action"] == "teacher.login")
            .cloned()
            .unwrap();
        assert_eq!(login["target"], teacher_li.as_str());
        assert_eq!(login["source"], "127.0.0.1");

        // A state that does not match the browser's flow, a token with another nonce, and a
        // person who is not a Ketang teacher are refused.
        let (status, _) = sign_in(api, true).await.unwrap_err();
        assert_eq!(status, 400);
        idp.lock().unwrap().wrong_nonce = true;
        let (status, text) = sign_in(api, false).await.unwrap_err();
        assert_eq!(status, 403);
        assert!(text.contains("nonce"), "{text}");
        idp.lock().unwrap().wrong_nonce = false;
        idp.lock().unwrap().person =
            json!({"sub": "x@school", "ketang_teacher": "tch_nobody", "name": "X"});
        let (status, _) = sign_in(api, false).await.unwrap_err();
        assert_eq!(status, 403);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teacher_signs_in_and_sees_only_her_lessons_and_links_sqlite() {
    sees_only_her_lessons_and_links(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teacher_signs_in_and_sees_only_her_lessons_and_links_postgres() {
    sees_only_her_lessons_and_links(Engine::Postgres).await;
}
