//! `/metrics` stays small and private (issue 13 item 4): made-up HTTP methods do not make new
//! series, and the page needs `metrics.token` when one is set or the listener is not loopback.

mod common;

use common::TestServer;

async fn metrics(s: &TestServer, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(s.url("/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("GET /metrics");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_share_one_series() {
    let s = TestServer::start().await;
    let client = reqwest::Client::new();
    let (_, before) = metrics(&s, None).await;
    for i in 0..300 {
        let m = reqwest::Method::from_bytes(format!("M{i:04}X").as_bytes()).unwrap();
        let _ = client.request(m, s.url("/healthz")).send().await;
    }
    let (status, after) = metrics(&s, None).await;
    assert_eq!(status, 200);
    assert!(
        !after.contains("M0001X"),
        "a made-up method has its own series"
    );
    assert!(after.contains("method=\"other\""));
    assert!(
        after.len() < before.len() + 8 * 1024,
        "the page grew from {} to {} bytes",
        before.len(),
        after.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_token_is_required_when_set() {
    let s = TestServer::start_with(|c| c.metrics.token = Some("s3cret-metrics".into())).await;
    assert_eq!(metrics(&s, None).await.0, 401);
    assert_eq!(metrics(&s, Some("wrong")).await.0, 401);
    let (status, body) = metrics(&s, Some("s3cret-metrics")).await;
    assert_eq!(status, 200);
    assert!(body.contains("ketang_build_info"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_refused_off_loopback_without_a_token() {
    let s = TestServer::start_with(|c| c.http.listen = "0.0.0.0:0".parse().unwrap()).await;
    assert_eq!(metrics(&s, None).await.0, 403);
}
