//! The admin API under test: a real server in-process (loopback, ephemeral ports) on a fresh
//! database of either engine, an admin key, and small request helpers.
//!
//! SQLite: a file in a temporary directory. PostgreSQL: a fresh schema on the server named by
//! `KETANG_TEST_DATABASE_URL` (`./scripts/test.sh` starts one and sets it), so that tests run
//! in parallel without seeing each other's rows. Without the variable the PostgreSQL tests
//! fail, saying how to run them: they never pass silently.
#![allow(dead_code)]

pub mod signaling;

use std::time::Duration;

use ketang::config::Config;
use ketang::db::Db;
use ketang::server::{RunningServer, start};
use serde_json::{Value, json};

pub const DB_ENV: &str = "KETANG_TEST_DATABASE_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// One test's server and database.
pub struct Api {
    pub server: RunningServer,
    pub base: String,
    pub key: String,
    pub client: reqwest::Client,
    schema: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

/// A response: status, `content-type`, JSON body (or Null).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    /// The body's `id`.
    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {}", self.body))
            .to_owned()
    }

    /// Asserts the status, showing the body otherwise.
    #[track_caller]
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {:#}",
            self.body
        );
        if status >= 400 {
            assert_eq!(
                self.content_type, "application/problem+json",
                "{:#}",
                self.body
            );
            assert_eq!(self.body["status"], status, "{:#}", self.body);
        }
        self
    }

    /// The `field` values of a 422's `errors`.
    pub fn fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["field"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The admin URL of the PostgreSQL test server, or a failure that says how to get one.
pub fn postgres_url() -> String {
    match std::env::var(DB_ENV) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{DB_ENV} is not set: the PostgreSQL variants of the API tests need a server. \
             Run ./scripts/test.sh (it installs and starts PostgreSQL and sets {DB_ENV}), or \
             eval \"$(./scripts/postgres.sh)\" before cargo test."
        ),
    }
}

fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

impl Api {
    pub async fn start(engine: Engine) -> Api {
        Self::start_with(engine, |_| {}).await
    }

    /// Starts with a config adjusted by `tweak`.
    pub async fn start_with(engine: Engine, tweak: impl FnOnce(&mut Config)) -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        config.http.listen = "127.0.0.1:0".parse().expect("addr");
        config.media.listen = "127.0.0.1:0".parse().expect("addr");
        config.media.shards = 1;
        config.storage.data_dir = dir.path().to_path_buf();
        config.schedule.tick = Duration::from_millis(100);
        let schema = match engine {
            Engine::Sqlite => None,
            Engine::Postgres => {
                let admin = postgres_url();
                let schema = format!("t_{:016x}", rand::random::<u64>());
                let db = Db::connect(&admin)
                    .await
                    .expect("connect to the test PostgreSQL");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&db.pool)
                    .await
                    .expect("create schema");
                db.close().await;
                config.database.url = with_search_path(&admin, &schema);
                Some((admin, schema))
            }
        };
        tweak(&mut config);
        let server = start(config).await.expect("server starts");
        let base = format!("http://{}", server.http_addr);
        let key = {
            let mut conn = server.state.db.pool.acquire().await.expect("conn");
            ketang::api::keys::create(&mut conn, "tests", server.state.clock.now_ms())
                .await
                .expect("admin key")
                .1
        };
        Api {
            server,
            base,
            key,
            client: reqwest::Client::new(),
            schema,
            _dir: dir,
        }
    }

    /// Stops the server and drops the PostgreSQL schema.
    pub async fn finish(self) {
        let _ = self.server.shutdown().await;
        if let Some((admin, schema)) = self.schema {
            let db = Db::connect(&admin).await.expect("connect");
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&db.pool)
                .await
                .expect("drop schema");
            db.close().await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, self.url(path));
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        reply(resp).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None, Some(&self.key)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send("POST", path, Some(body), Some(&self.key)).await
    }

    pub async fn post_empty(&self, path: &str) -> Reply {
        self.send("POST", path, None, Some(&self.key)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send("PUT", path, Some(body), Some(&self.key)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send("DELETE", path, None, Some(&self.key)).await
    }

    /// A raw request with any body bytes and content type.
    pub async fn raw(&self, method: &str, path: &str, content_type: &str, body: &str) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let resp = self
            .client
            .request(method, self.url(path))
            .header("authorization", format!("Bearer {}", self.key))
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .expect("request");
        reply(resp).await
    }

    /// Moves the server's lesson clock.
    pub fn shift_clock(&self, by: Duration, forward: bool) {
        let ms = i64::try_from(by.as_millis()).expect("ms");
        self.server
            .state
            .clock
            .shift(if forward { ms } else { -ms });
    }

    // --- fixtures ---

    pub async fn school(&self, name: &str, kind: &str) -> String {
        self.post(
            "/api/v1/schools",
            json!({"name": name, "district": "城关区", "kind": kind}),
        )
        .await
        .expect(201)
        .id()
    }

    pub async fn classroom(&self, school: &str, name: &str) -> String {
        self.post(
            "/api/v1/classrooms",
            json!({"schoolId": school, "name": name}),
        )
        .await
        .expect(201)
        .id()
    }

    pub async fn teacher(&self, school: &str, name: &str) -> String {
        self.post(
            "/api/v1/teachers",
            json!({"schoolId": school, "name": name}),
        )
        .await
        .expect(201)
        .id()
    }

    /// A school with a teacher and `n` classrooms: (teacher, classrooms).
    pub async fn cast(&self, n: usize) -> (String, Vec<String>) {
        let school = self.school("实验小学", "central").await;
        let teacher = self.teacher(&school, "李老师").await;
        let mut rooms = Vec::new();
        for i in 0..n {
            rooms.push(self.classroom(&school, &format!("三({})班", i + 1)).await);
        }
        (teacher, rooms)
    }
}

async fn reply(resp: reqwest::Response) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        content_type,
        body,
        headers,
    }
}

/// RFC 3339 in UTC, `secs` from now.
pub fn from_now(secs: i64) -> String {
    let t = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .expect("time");
    // Whole seconds: the API keeps times to the second.
    jiff::Timestamp::from_second(t.as_second())
        .expect("time")
        .to_string()
}

/// Generates, for each `async fn NAME(api: Api) { ... }`, a module `NAME` with the tests
/// `sqlite` and `postgres` running the body against each engine.
#[macro_export]
macro_rules! on_both_engines {
    ($(async fn $name:ident($api:ident: Api) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn run($api: &Api) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let api = Api::start(Engine::Sqlite).await;
                    run(&api).await;
                    api.finish().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let api = Api::start(Engine::Postgres).await;
                    run(&api).await;
                    api.finish().await;
                }
            }
        )*
    };
}
