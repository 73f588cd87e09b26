//! The bootstrap admin key (issue 13 item 8): written to a private file rather than the log,
//! its uses audited, and it expires once a personal key exists or after 24 hours.

mod common;

use common::TestServer;
use serde_json::{Value, json};

async fn get(s: &TestServer, key: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(s.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn bootstrap_key(s: &TestServer) -> String {
    let path = s
        .server
        .state
        .config
        .storage
        .data_dir
        .join("bootstrap-admin-key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .expect("the key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    std::fs::read_to_string(&path).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_key_is_private_audited_and_gives_way_to_a_personal_key() {
    let s = TestServer::start().await;
    let key = bootstrap_key(&s);
    assert!(key.starts_with("kt_"), "{key}");
    assert_eq!(get(&s, &key, "/api/v1/schools").await.0, 200);
    let (status, audit) = get(&s, &key, "/api/v1/audit").await;
    assert_eq!(status, 200);
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "key.bootstrapUse"),
        "{audit:#}"
    );
    // The first personal key retires it.
    let made = reqwest::Client::new()
        .post(s.url("/api/v1/keys"))
        .bearer_auth(&key)
        .json(&json!({"name": "王老师"}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status().as_u16(), 201);
    let personal: Value = made.json().await.unwrap();
    let personal = personal["key"].as_str().expect("the new key").to_owned();
    assert_eq!(get(&s, &key, "/api/v1/schools").await.0, 401);
    assert_eq!(get(&s, &personal, "/api/v1/schools").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_key_expires_after_a_day() {
    let s = TestServer::start().await;
    let key = bootstrap_key(&s);
    assert_eq!(get(&s, &key, "/api/v1/schools").await.0, 200);
    sqlx::query("UPDATE api_keys SET created_at = created_at - $1 WHERE name = 'bootstrap'")
        .bind(25 * 3600 * 1000_i64)
        .execute(&s.server.state.db.pool)
        .await
        .unwrap();
    assert_eq!(get(&s, &key, "/api/v1/schools").await.0, 401);
}
