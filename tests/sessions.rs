//! Bounds on sessions (issue 13, items 5–7): a client that stops reading is closed with
//! `slowConsumer` instead of queueing without limit; one link holds one WHIP session and a few
//! WHEP sessions; WHIP/WHEP sessions end with their token.

mod common;

use std::time::{Duration, SystemTime};

use common::TestServer;
use common::ws::{DATA_ONLY_OFFER, connect};
use futures_util::StreamExt;
use ketang::media::PeerSignal;
use ketang::signaling::protocol::Notice;
use ketang_loadtest::{WhepOptions, WhepViewer, WhipOptions, WhipPublisher};
use ketang_sfu::{PeerId, Role, RoomId};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_as_a_slow_consumer() {
    let s = TestServer::start().await;
    let token = s.token("slow", Role::Observer, "Reader");
    let (mut ws, welcome) = connect(&s, &token).await;
    let peer = PeerId(welcome["peerId"].as_u64().expect("peer id"));
    let tx = s
        .server
        .state
        .media
        .registry
        .get(&peer)
        .expect("registered")
        .clone();
    // Far more events than a client could take in at once, while it reads nothing.
    const FLOOD: usize = 20_000;
    for _ in 0..FLOOD {
        let _ = tx.send(PeerSignal::Notice(Notice::LessonEnding { ends_at: 1 }));
    }
    let mut received = 0;
    let bye = loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a bye before the events run out")
            .expect("socket open")
            .expect("no error");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "bye" {
                break v;
            }
            received += 1;
        }
    };
    assert_eq!(bye["reason"], "slowConsumer", "{bye}");
    assert!(
        received <= ketang::media::PEER_QUEUE + 1,
        "{received} of {FLOOD} events were queued"
    );
    let gone = async {
        for _ in 0..100 {
            if s.server.state.media.registry.get(&peer).is_none() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };
    assert!(gone.await, "the session lingers");
}

async fn post(s: &TestServer, path: &str, token: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(s.url(path))
        .bearer_auth(token)
        .header("content-type", "application/sdp")
        .body(DATA_ONLY_OFFER)
        .send()
        .await
        .expect("POST");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn deleted(url: &reqwest::Url) -> u16 {
    reqwest::Client::new()
        .delete(url.clone())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_holds_one_publisher_session_and_a_few_player_sessions() {
    let s = TestServer::start().await;
    let viewer = s.token("cap", Role::Viewer, "Parent");
    let cap = s.server.state.config.signaling.players_per_link;
    let mut players = Vec::new();
    for _ in 0..cap {
        let p = WhepViewer::connect(&s.url("/whep/cap"), &viewer, WhepOptions::default())
            .await
            .expect("WHEP session");
        players.push(p);
    }
    let (status, body) = post(&s, "/whep/cap", &viewer).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "tooManySessions");
    // Ending one frees its place.
    let first = players.remove(0);
    first.close().await.unwrap();
    let again = WhepViewer::connect(&s.url("/whep/cap"), &viewer, WhepOptions::default())
        .await
        .expect("a freed place");
    players.push(again);

    // A second WHIP session of a link replaces the first (a reconnecting encoder).
    let teacher = s.token("cap", Role::Teacher, "Ms Li");
    let old = WhipPublisher::connect(&s.url("/whip/cap"), &teacher, WhipOptions::default())
        .await
        .expect("WHIP session");
    let new = WhipPublisher::connect(&s.url("/whip/cap"), &teacher, WhipOptions::default())
        .await
        .expect("second WHIP session");
    assert_eq!(
        deleted(old.location()).await,
        404,
        "the old session lives on"
    );
    let room = RoomId::new("cap").unwrap();
    let snap = s.server.state.media.shard_of(&room).unwrap();
    let mut teachers = 0;
    for _ in 0..50 {
        let snapshot = snap.snapshot(room.clone()).await.unwrap().unwrap();
        teachers = snapshot
            .participants
            .iter()
            .filter(|p| p.role == Role::Teacher)
            .count();
        if teachers == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(teachers, 1);
    assert_eq!(deleted(new.location()).await, 200);
    for p in players {
        let _ = p.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_and_whep_sessions_end_with_their_token() {
    let s = TestServer::start().await;
    let short = Duration::from_secs(3);
    let viewer = s.token_at("exp", Role::Viewer, "Parent", SystemTime::now(), short);
    let teacher = s.token_at("exp", Role::Teacher, "Ms Li", SystemTime::now(), short);
    let player = WhepViewer::connect(&s.url("/whep/exp"), &viewer, WhepOptions::default())
        .await
        .expect("WHEP session");
    let encoder = WhipPublisher::connect(&s.url("/whip/exp"), &teacher, WhipOptions::default())
        .await
        .expect("WHIP session");
    tokio::time::sleep(short + Duration::from_secs(2)).await;
    assert!(
        s.server.state.http_sessions.is_empty(),
        "sessions outlived their tokens"
    );
    assert_eq!(deleted(player.location()).await, 404);
    assert_eq!(deleted(encoder.location()).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_never_joins_leaves_nothing_behind() {
    let s = TestServer::start().await;
    let token = s.token("idle", Role::Classroom, "Class 1");
    let jti = {
        let claims = s.server.state.verify(Some(&token), None).unwrap();
        claims.jti
    };
    for _ in 0..3 {
        let (mut ws, _) = connect(&s, &token).await;
        ws.close(None).await.unwrap();
    }
    let mut left = false;
    for _ in 0..100 {
        if s.server.state.media.people.peer_of(&jti).is_none() {
            left = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(left, "the link's identity outlived its sessions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_count_against_the_rate_limit() {
    use futures_util::SinkExt;
    let s = TestServer::start().await;
    let token = s.token("big", Role::Classroom, "Class 1");
    let (mut ws, _) = connect(&s, &token).await;
    let max = s.server.state.config.signaling.max_message_bytes;
    let big = format!("{{\"type\":\"ping\",\"pad\":\"{}\"}}", "x".repeat(max));
    const SENT: usize = 100;
    for _ in 0..SENT {
        ws.send(Message::Text(big.clone().into())).await.unwrap();
    }
    let (mut too_large, mut limited) = (0, 0);
    while too_large + limited < SENT {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a reply per frame")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            match v["code"].as_str() {
                Some("messageTooLarge") => too_large += 1,
                Some("rateLimited") => limited += 1,
                _ => {}
            }
        }
    }
    assert!(
        limited > 0,
        "{too_large} oversized frames were all read in full"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_and_whep_check_the_token_before_reading_the_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start().await;
    for path in ["/whip/early", "/whep/early"] {
        let mut tcp = tokio::net::TcpStream::connect(s.server.http_addr)
            .await
            .unwrap();
        // A promised body that never comes, with a token that is no token.
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer forged\r\n\
             Content-Type: application/sdp\r\nContent-Length: 100000\r\n\r\nv=0\r\n"
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf))
            .await
            .expect("an answer before the body arrives")
            .unwrap();
        let reply = String::from_utf8_lossy(&buf[..n]);
        assert!(reply.starts_with("HTTP/1.1 401"), "{path}: {reply}");
    }
}
