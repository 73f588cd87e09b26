//! Overload is refused, not suffered: beyond `media.max_peers_per_shard` a join gets `503`
//! with `Retry-After` (WHIP/WHEP) or `bye` `serverFull` (signaling) at once, `/readyz` says the
//! node is full, the peers already in keep their media, and a place that frees up is taken.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use futures_util::{SinkExt, StreamExt};
use ketang_loadtest::{WhepOptions, WhepViewer, WhipOptions, WhipPublisher};
use ketang_sfu::Role;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_of(ws: &mut Ws, typ: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    for _ in 0..50 {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a message within 5 s")
            .expect("socket open")
            .expect("no socket error");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == typ {
                return v;
            }
        }
    }
    panic!("no {typ} message");
}

/// A WHEP request whose offer the server would read only after admitting the join.
async fn whep_post(s: &TestServer, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(s.url("/whep/busy"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_beyond_the_shard_limit_are_refused_and_the_room_keeps_its_media() {
    let s = TestServer::start_with(|c| {
        c.media.shards = 1;
        c.media.max_peers_per_shard = 2;
    })
    .await;
    let teacher = s.token("busy", Role::Teacher, "Ms Li");
    let viewer = s.token("busy", Role::Viewer, "viewer");
    let mut publisher =
        WhipPublisher::connect(&s.url("/whip/busy"), &teacher, WhipOptions::default())
            .await
            .expect("WHIP session");
    let sending = tokio::spawn(async move {
        publisher.run_for(Duration::from_secs(8)).await;
        publisher
    });
    let watching = WhepViewer::connect(&s.url("/whep/busy"), &viewer, WhepOptions::default())
        .await
        .expect("the second peer fits");

    // The third peer does not: refused at once, with a time to come back.
    let asked = Instant::now();
    let r = whep_post(&s, &viewer).await;
    let took = asked.elapsed();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "serverFull", "{body}");
    assert!(took < Duration::from_millis(500), "refused after {took:?}");

    let ready = reqwest::get(s.url("/readyz")).await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert!(
        ready["reasons"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["code"] == "full")),
        "{ready}"
    );

    // A browser page's join is refused the same way, with a bye it retries on.
    let classroom = s.token("busy", Role::Classroom, "Rural 3-2");
    let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url(&classroom))
        .await
        .unwrap();
    next_of(&mut ws, "welcome").await;
    ws.send(Message::text(r#"{"type":"offer","sdp":"v=0\r\n"}"#))
        .await
        .unwrap();
    let bye = next_of(&mut ws, "bye").await;
    assert_eq!(bye["reason"], "serverFull", "{bye}");

    // The admitted viewer kept its media throughout.
    let (got, _) = watching
        .wait_for(Duration::from_secs(5), |st| st.video.keyframes > 0)
        .await;
    assert!(got.video.unique_packets > 0, "{got:?}");
    let publisher = sending.await.expect("publisher task");

    // A place that frees up is taken again.
    watching.close().await.expect("viewer leaves");
    let deadline = Instant::now() + Duration::from_secs(10);
    let again = loop {
        let r = whep_post(&s, &viewer).await;
        // Admitted now: the offer itself is read and refused as the garbage it is.
        if r.status().as_u16() != 503 || Instant::now() > deadline {
            break r.status().as_u16();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(again, 400, "a join after a peer left");
    let ready = reqwest::get(s.url("/readyz")).await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    drop(publisher);
}
