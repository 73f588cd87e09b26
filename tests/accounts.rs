//! Admin accounts (issue 18): one-time password, TOTP enrolment, sign-in with a code,
//! lockout after five failures, idle expiry, cookie flags, CSRF, sign-out; every sign-in event
//! audited with its source address.

mod api_common;

use std::time::Duration;

use api_common::{Api, Engine, Reply};
use ketang::accounts::{AdminRole, create_user, totp};
use serde_json::{Value, json};

/// A browser's cookie jar for one session, kept by hand (the flags are under test).
#[derive(Default, Clone)]
struct Jar {
    session: Option<String>,
    csrf: Option<String>,
}

impl Jar {
    fn take(&mut self, reply: &Reply) {
        for v in reply.headers.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (kv, _) = v.split_once(';').unwrap();
            let (k, val) = kv.split_once('=').unwrap();
            let val = (!val.is_empty()).then(|| val.to_owned());
            match k {
                "ketang_admin" => self.session = val,
                "ketang_csrf" => self.csrf = val,
                other => panic!("unexpected cookie {other}"),
            }
        }
    }
}

async fn call(
    api: &Api,
    jar: &Jar,
    method: &str,
    path: &str,
    body: Option<Value>,
    csrf: bool,
) -> Reply {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = api.client.request(m, api.url(path));
    let mut cookies = Vec::new();
    if let Some(s) = &jar.session {
        cookies.push(format!("ketang_admin={s}"));
    }
    if let Some(c) = &jar.csrf {
        cookies.push(format!("ketang_csrf={c}"));
        if csrf {
            req = req.header("x-csrf-token", c);
        }
    }
    if !cookies.is_empty() {
        req = req.header("cookie", cookies.join("; "));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null);
    Reply {
        status,
        content_type,
        body,
        headers,
    }
}

fn code(api: &Api, secret: &str) -> String {
    let now = u64::try_from(api.server.state.clock.now_ms() / 1000).unwrap();
    let key = data_encoding_decode(secret);
    format!("{:06}", totp::code_at(&key, now / totp::STEP_SECS))
}

fn data_encoding_decode(s: &str) -> Vec<u8> {
    // RFC 4648 base32 without padding, decoded by hand to keep the test independent.
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut acc, mut bits, mut out) = (0u64, 0u32, Vec::new());
    for c in s.bytes() {
        let v = A.iter().position(|x| *x == c).expect("base32") as u64;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

const PASSWORD: &str = "Correct horse 42 staple";

async fn sign_in(api: &Api, name: &str, password: &str, code: Option<&str>) -> (Reply, Jar) {
    let mut jar = Jar::default();
    let mut body = json!({"name": name, "password": password});
    if let Some(c) = code {
        body["code"] = json!(c);
    }
    let r = call(api, &jar, "POST", "/api/v1/session", Some(body), false).await;
    jar.take(&r);
    (r, jar)
}

/// Creates an account and enrols it: returns its TOTP secret.
async fn enrolled(api: &Api, name: &str, role: AdminRole) -> String {
    let otp = {
        let mut conn = api.server.state.db.pool.acquire().await.unwrap();
        create_user(&mut conn, name, role, api.server.state.clock.now_ms())
            .await
            .unwrap()
            .1
    };
    let (r, jar) = sign_in(api, name, &otp, None).await;
    let r = r.expect(200);
    assert_eq!(r.body["totpEnrolled"], false);
    let cookies: Vec<String> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cookies[0].starts_with("ketang_admin=")
            && cookies[0].contains("; HttpOnly; SameSite=Strict"),
        "{cookies:?}"
    );
    assert!(
        !cookies[1].contains("HttpOnly") && cookies[1].contains("SameSite=Strict"),
        "{cookies:?}"
    );
    // Plain HTTP on loopback: Secure would stop the browser sending the cookie back.
    assert!(!cookies[0].contains("Secure"), "{cookies:?}");
    // Before enrolment, nothing but enrolment.
    call(api, &jar, "GET", "/api/v1/schools", None, true)
        .await
        .expect(401);
    call(api, &jar, "POST", "/api/v1/session/totp", None, false)
        .await
        .expect(403);
    let e = call(api, &jar, "POST", "/api/v1/session/totp", None, true)
        .await
        .expect(200);
    let secret = e.body["secret"].as_str().unwrap().to_owned();
    // The seed is stored sealed, never as the base32 the app gets.
    let stored: Option<String> =
        sqlx::query_scalar("SELECT totp_pending FROM admin_users WHERE name = $1")
            .bind(name)
            .fetch_one(&api.server.state.db.pool)
            .await
            .unwrap();
    let stored = stored.unwrap();
    assert!(
        stored.starts_with("v1.") && !stored.contains(&secret),
        "{stored}"
    );
    assert!(
        e.body["uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Ketang:")
    );
    assert!(e.body["qrSvg"].as_str().unwrap().contains("<svg"));
    let weak = json!({"code": code(api, &secret), "newPassword": "short"});
    let r = call(
        api,
        &jar,
        "POST",
        "/api/v1/session/totp/confirm",
        Some(weak),
        true,
    )
    .await
    .expect(422);
    assert_eq!(r.fields(), ["newPassword"]);
    let wrong = json!({"code": "000000", "newPassword": PASSWORD});
    if code(api, &secret) != "000000" {
        call(
            api,
            &jar,
            "POST",
            "/api/v1/session/totp/confirm",
            Some(wrong),
            true,
        )
        .await
        .expect(422);
    }
    let ok = json!({"code": code(api, &secret), "newPassword": PASSWORD});
    let r = call(
        api,
        &jar,
        "POST",
        "/api/v1/session/totp/confirm",
        Some(ok),
        true,
    )
    .await
    .expect(200);
    assert_eq!(r.body["totpEnrolled"], true);
    // The enrolment session is now a full one.
    call(api, &jar, "GET", "/api/v1/session", None, false)
        .await
        .expect(200);
    // The one-time password no longer works.
    api.shift_clock(Duration::from_secs(31), true);
    let (r, _) = sign_in(api, name, &otp, Some(&code(api, &secret))).await;
    r.expect(401);
    // A success resets the failure count.
    api.shift_clock(Duration::from_secs(31), true);
    let (r, _) = sign_in(api, name, PASSWORD, Some(&code(api, &secret))).await;
    r.expect(200);
    secret
}

on_both_engines! {
    async fn sign_in_needs_password_and_code_and_ends(api: Api) {
        let secret = enrolled(api, "王系统", AdminRole::System).await;
        api.shift_clock(Duration::from_secs(31), true);
        let (r, _) = sign_in(api, "王系统", PASSWORD, None).await;
        r.expect(401);
        let once = code(api, &secret);
        let (r, jar) = sign_in(api, "王系统", PASSWORD, Some(&once)).await;
        let r = r.expect(200);
        assert_eq!(r.body["role"], "system");
        assert_eq!(r.body["csrf"].as_str(), jar.csrf.as_deref());
        // A code is good once (the same code: a new 30 s step may have begun meanwhile).
        let (r, _) = sign_in(api, "王系统", PASSWORD, Some(&once)).await;
        r.expect(401);

        // CSRF: a write without the header is refused; with it, done.
        let school = json!({"name": "一中", "district": "城关区", "kind": "central"});
        call(api, &jar, "POST", "/api/v1/schools", Some(school.clone()), false).await.expect(403);
        let mut forged = jar.clone();
        forged.csrf = Some("0".repeat(64));
        call(api, &forged, "POST", "/api/v1/schools", Some(school.clone()), true).await.expect(403);
        call(api, &jar, "POST", "/api/v1/schools", Some(school), true).await.expect(201);
        // Reads need no CSRF token.
        call(api, &jar, "GET", "/api/v1/schools", None, false).await.expect(200);

        // Idle expiry (30 minutes by default).
        api.shift_clock(Duration::from_secs(29 * 60), true);
        call(api, &jar, "GET", "/api/v1/schools", None, false).await.expect(200);
        api.shift_clock(Duration::from_secs(31 * 60), true);
        call(api, &jar, "GET", "/api/v1/schools", None, false).await.expect(401);

        // Sign-out ends the session on the server, not only in the browser.
        let (_, jar) = sign_in(api, "王系统", PASSWORD, Some(&code(api, &secret))).await;
        call(api, &jar, "GET", "/api/v1/schools", None, false).await.expect(200);
        let mut out = jar.clone();
        let r = call(api, &jar, "DELETE", "/api/v1/session", None, true).await.expect(204);
        out.take(&r);
        assert!(out.session.is_none());
        call(api, &jar, "GET", "/api/v1/schools", None, false).await.expect(401);

        // The audit log has the sign-ins, the failures and the sign-out, with the source.
        let log = api.get("/api/v1/audit?limit=200").await.expect(200);
        let items = log.body["items"].as_array().unwrap();
        let actions: Vec<&str> = items.iter().map(|i| i["action"].as_str().unwrap()).collect();
        for a in ["login.ok", "login.fail", "logout", "account.enrol", "school.create"] {
            assert!(actions.contains(&a), "{a} missing in {actions:?}");
        }
        let fail = items.iter().find(|i| i["action"] == "login.fail").unwrap();
        assert_eq!(fail["source"], "127.0.0.1", "{fail}");
        assert_eq!(fail["keyName"], "王系统");
        // No secret in the log.
        let text = log.body.to_string();
        assert!(!text.contains(PASSWORD) && !text.contains(&secret));
    }

    async fn five_failures_lock_for_ten_minutes(api: Api) {
        let secret = enrolled(api, "security-li", AdminRole::Security).await;
        for i in 1..=5 {
            api.shift_clock(Duration::from_secs(31), true);
            let (r, _) = sign_in(api, "security-li", "wrong password 1A", Some(&code(api, &secret))).await;
            if i < 5 {
                assert_eq!(r.status, 401, "failure {i}: {}", r.body);
            } else {
                let r = r.expect(429);
                assert!(r.headers.get("retry-after").is_some());
            }
        }
        // Locked: even the right password and code are refused.
        api.shift_clock(Duration::from_secs(31), true);
        let (r, _) = sign_in(api, "security-li", PASSWORD, Some(&code(api, &secret))).await;
        r.expect(429);
        api.shift_clock(Duration::from_secs(9 * 60), true);
        let (r, _) = sign_in(api, "security-li", PASSWORD, Some(&code(api, &secret))).await;
        r.expect(429);
        api.shift_clock(Duration::from_secs(60), true);
        let (r, _) = sign_in(api, "security-li", PASSWORD, Some(&code(api, &secret))).await;
        assert_eq!(r.expect(200).body["role"], "security");
        // A wrong TOTP code counts as a failure too, and an unknown name is the same answer.
        api.shift_clock(Duration::from_secs(31), true);
        let (r, _) = sign_in(api, "security-li", PASSWORD, Some("000001")).await;
        assert_eq!(r.expect(401).body["detail"], "wrong name, password or code");
        let (r, _) = sign_in(api, "nobody", PASSWORD, Some("000001")).await;
        assert_eq!(r.expect(401).body["detail"], "wrong name, password or code");
        let log = api.get("/api/v1/audit?limit=200").await.expect(200);
        // A name that is no account is not recorded (it is often a mistyped password).
        assert!(!log.body.to_string().contains("nobody"), "{}", log.body);
        assert!(log.body["items"].as_array().unwrap().iter().any(|i| i["action"] == "login.locked"));
    }

    async fn security_admins_manage_accounts(api: Api) {
        let r = api.post("/api/v1/accounts", json!({"name": "审计员", "role": "audit"})).await.expect(201);
        let otp = r.body["oneTimePassword"].as_str().unwrap().to_owned();
        let id = r.id();
        let (r, _) = sign_in(api, "审计员", &otp, None).await;
        assert_eq!(r.expect(200).body["role"], "audit");
        let list = api.get("/api/v1/accounts").await.expect(200);
        assert_eq!(list.body[0]["totpEnrolled"], false);
        api.post("/api/v1/accounts", json!({"name": "x", "role": "all"})).await.expect(422);
        api.delete(&format!("/api/v1/accounts/{id}")).await.expect(204);
        let (r, _) = sign_in(api, "审计员", &otp, None).await;
        r.expect(401);
        let r = api.post_empty(&format!("/api/v1/accounts/{id}/reset")).await.expect(200);
        let again = r.body["oneTimePassword"].as_str().unwrap().to_owned();
        assert_ne!(again, otp);
        let (r, _) = sign_in(api, "审计员", &again, None).await;
        r.expect(200);
        // A refused API key is audited with its source, without the key.
        let bogus = format!("kt_{}", "ab".repeat(32));
        api.send("GET", "/api/v1/schools", None, Some(&bogus)).await.expect(401);
        let log = api.get("/api/v1/audit?limit=200").await.expect(200);
        let refused = log.body["items"].as_array().unwrap().iter().find(|i| i["action"] == "key.refused").cloned().unwrap();
        assert_eq!(refused["source"], "127.0.0.1");
        assert!(!log.body.to_string().contains(&bogus));
    }
}

#[test]
fn cookies_are_secure_off_loopback() {
    let mut config = ketang::config::Config::default();
    assert!(!ketang::accounts::session::secure_cookies(&config));
    config.http.listen = "0.0.0.0:8080".parse().unwrap();
    assert!(ketang::accounts::session::secure_cookies(&config));
    config.http.listen = "127.0.0.1:8080".parse().unwrap();
    config.http.public_url = Some("https://ketang.example.edu.cn".into());
    assert!(ketang::accounts::session::secure_cookies(&config));
    let [s, c] = ketang::accounts::session::set_cookies("ab", "cd", true);
    assert_eq!(
        s,
        "ketang_admin=ab; Path=/; HttpOnly; SameSite=Strict; Secure"
    );
    assert_eq!(c, "ketang_csrf=cd; Path=/; SameSite=Strict; Secure");
}
