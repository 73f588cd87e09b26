//! Starts a real Ketang server in-process on loopback with ephemeral ports and a temporary data
//! directory, and mints room tokens for it.
#![allow(dead_code)]

pub mod ws;

use std::time::{Duration, SystemTime};

use ketang::auth::MintRequest;
use ketang::config::Config;
use ketang::server::{RunningServer, start};
use ketang_sfu::{Role, RoomId};

pub struct TestServer {
    pub server: RunningServer,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_in(tempfile::tempdir().unwrap()).await
    }

    /// Stops the server and starts a new one on the same data directory (same secret and
    /// database), as after a restart.
    pub async fn restart(self) -> TestServer {
        let TestServer { server, _dir, .. } = self;
        server.shutdown().await.expect("server stops");
        Self::start_in(_dir).await
    }

    /// Starts with a config adjusted by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_tweaked(tempfile::tempdir().unwrap(), tweak).await
    }

    async fn start_in(dir: tempfile::TempDir) -> TestServer {
        Self::start_tweaked(dir, |_| {}).await
    }

    async fn start_tweaked(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config::default();
        config.http.listen = "127.0.0.1:0".parse().unwrap();
        config.media.listen = "127.0.0.1:0".parse().unwrap();
        config.media.shards = 2;
        config.storage.data_dir = dir.path().to_path_buf();
        tweak(&mut config);
        let server = start(config).await.expect("server starts");
        let base = format!("http://{}", server.http_addr);
        TestServer {
            server,
            base,
            _dir: dir,
        }
    }

    /// A token valid now for `room` with `role`.
    pub fn token(&self, room: &str, role: Role, name: &str) -> String {
        self.token_at(
            room,
            role,
            name,
            SystemTime::now(),
            Duration::from_secs(7200),
        )
    }

    pub fn token_at(
        &self,
        room: &str,
        role: Role,
        name: &str,
        not_before: SystemTime,
        ttl: Duration,
    ) -> String {
        let req = MintRequest {
            room: RoomId::new(room).unwrap(),
            role,
            name: name.into(),
            classroom: None,
            mode: None,
            not_before: Some(not_before),
            ttl,
        };
        self.server
            .state
            .tokens
            .mint(&req, not_before)
            .expect("token minted")
    }

    /// A token that expired an hour ago.
    pub fn expired_token(&self, room: &str, role: Role) -> String {
        let past = SystemTime::now() - Duration::from_secs(3 * 3600);
        self.token_at(room, role, "late", past, Duration::from_secs(3600))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn ws_url(&self, token: &str) -> String {
        format!("ws://{}/ws?t={}", self.server.http_addr, token)
    }
}
