//! What the logs keep of a request: never a room token from the query (`?t=`), even with
//! `tower_http=debug`, and no WHIP/WHEP session id at INFO (its URL ends the session).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::TestServer;
use ketang_loadtest::{WhipOptions, WhipPublisher};
use ketang_sfu::Role;

/// Every log line, as text.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn text(&self) -> String {
        let b = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&b).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_keep_no_token_and_no_session_id_at_info() {
    let lines = Lines::default();
    let writer = lines.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let s = TestServer::start().await;
    let teacher = s.token("logs", Role::Teacher, "Ms Li");
    // The room page with its token in the query, as every link opens it.
    let page = reqwest::get(s.url(&format!("/r/logs?t={teacher}")))
        .await
        .expect("GET /r");
    assert_eq!(page.status(), 200);
    let p = WhipPublisher::connect(&s.url("/whip/logs"), &teacher, WhipOptions::default())
        .await
        .expect("WHIP session");
    let session = p
        .location()
        .path_segments()
        .and_then(|mut s| s.next_back())
        .expect("session id")
        .to_owned();
    let _ = p.close().await;

    let text = lines.text();
    assert!(
        text.contains("/r/logs"),
        "the request was logged at debug: {text}"
    );
    // The signature alone is enough to replay the token: none of it may be logged.
    let signature = teacher.rsplit('.').next().unwrap_or(&teacher);
    assert!(!text.contains(signature), "a room token in the logs");
    let info_with_session: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" INFO ") && l.contains(&session))
        .collect();
    assert!(info_with_session.is_empty(), "{info_with_session:#?}");
}
