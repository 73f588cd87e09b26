//! `ketang admin create-key` through the real binary: it creates (and migrates) the configured
//! SQLite database, prints a key once, and the server accepts that key; the first start on an
//! empty database makes the bootstrap key instead.

use std::process::Command;

use ketang::config::Config;

fn config_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("ketang.toml");
    let data = dir.join("data");
    std::fs::write(
        &path,
        format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n[media]\nlisten = \"127.0.0.1:0\"\nshards = 1\n\
             [storage]\ndata_dir = {:?}\n",
            data.display().to_string()
        ),
    )
    .expect("write config");
    path
}

fn ketang(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ketang"));
    cmd.args(args);
    // Config overrides from the environment would change what is tested.
    for (k, _) in std::env::vars() {
        if k.starts_with("KETANG_") {
            cmd.env_remove(k);
        }
    }
    cmd.output().expect("run ketang")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_key_prints_a_key_the_server_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_file(dir.path());
    let config_arg = config.to_str().expect("utf-8 path");

    let out = ketang(&[
        "admin",
        "create-key",
        "王老师 (教育局)",
        "--config",
        config_arg,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    assert!(key.starts_with("kt_") && key.len() == 67, "{key:?}");
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains("shown only this once"), "{summary}");
    assert!(dir.path().join("data/ketang.db").exists());

    // The same name again is refused (exit 2); a blank name too.
    let again = ketang(&[
        "admin",
        "create-key",
        "王老师 (教育局)",
        "--config",
        config_arg,
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert!(again.stdout.is_empty(), "no key printed");
    assert_eq!(
        ketang(&["admin", "create-key", " ", "--config", config_arg])
            .status
            .code(),
        Some(2)
    );

    // The server on that database: the key works, and no bootstrap key was made.
    let config = Config::load(Some(&config)).expect("config");
    let server = ketang::server::start(config).await.expect("server");
    let url = format!("http://{}/api/v1/keys", server.http_addr);
    let resp = reqwest::Client::new()
        .get(&url)
        .header("authorization", format!("Bearer {key}"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let keys: serde_json::Value = resp.json().await.expect("json");
    let names: Vec<&str> = keys
        .as_array()
        .expect("list")
        .iter()
        .map(|k| k["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["王老师 (教育局)"]);
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_on_an_empty_database_makes_one_bootstrap_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::load(Some(&config_file(dir.path()))).expect("config");
    for _ in 0..2 {
        let server = ketang::server::start(config.clone()).await.expect("server");
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM api_keys")
            .fetch_all(&server.state.db.pool)
            .await
            .expect("keys");
        assert_eq!(names, ["bootstrap"], "made once, not at every start");
        server.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_user_prints_a_one_time_password_that_signs_in_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_file(dir.path());
    let config_arg = config.to_str().expect("utf-8 path");
    let out = ketang(&[
        "admin",
        "create-user",
        "张安全",
        "--role",
        "security",
        "--config",
        config_arg,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let password = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    assert_eq!(password.len(), 20, "{password:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("created security admin usr_"));
    // A role is required, and only the three roles are accepted.
    let bad = ketang(&[
        "admin",
        "create-user",
        "x",
        "--role",
        "all",
        "--config",
        config_arg,
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let bad = ketang(&["admin", "create-user", "x", "--config", config_arg]);
    assert_eq!(bad.status.code(), Some(2));
    // A role-bound key.
    let key = ketang(&[
        "admin",
        "create-key",
        "ci",
        "--role",
        "audit",
        "--config",
        config_arg,
    ]);
    assert!(key.status.success());
    let key = String::from_utf8(key.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();

    let config = Config::load(Some(&config)).expect("config");
    let server = ketang::server::start(config).await.expect("server");
    let client = reqwest::Client::new();
    let base = format!("http://{}", server.http_addr);
    let resp = client
        .post(format!("{base}/api/v1/session"))
        .json(&serde_json::json!({"name": "张安全", "password": password}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["role"], "security");
    assert_eq!(body["totpEnrolled"], false);
    // The audit key reads the audit log (the account's creation is there) and nothing else.
    let audit = client
        .get(format!("{base}/api/v1/audit"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("request");
    assert_eq!(audit.status(), 200);
    let text = audit.text().await.expect("text");
    assert!(
        text.contains("account.create") && !text.contains(&password),
        "{text}"
    );
    let schools = client
        .get(format!("{base}/api/v1/schools"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("request");
    assert_eq!(schools.status(), 403);
    server.shutdown().await.expect("shutdown");
}
