//! A removed participant stays out (issue 13, item 1): the removal binds the link on `/ws`,
//! WHIP and WHEP, ends the link's other sessions, and outlasts the room emptying and a restart
//! until the teacher re-admits the link.

mod common;

use std::time::Duration;

use common::TestServer;
use common::ws::{DATA_ONLY_OFFER, connect, join, next_of, send};
use ketang_loadtest::{WhepOptions, WhepViewer, WhipOptions, WhipPublisher};
use ketang_sfu::{PeerId, Role, RoomId};
use serde_json::{Value, json};

/// A WHIP or WHEP POST of a placeholder offer: the status and the error code.
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

async fn peers_named(s: &TestServer, room: &RoomId, name: &str) -> Vec<PeerId> {
    let Some(shard) = s.server.state.media.shard_of(room) else {
        return Vec::new();
    };
    let snap = shard.snapshot(room.clone()).await.unwrap();
    snap.map(|s| {
        s.participants
            .into_iter()
            .filter(|p| p.name == name)
            .map(|p| p.peer_id)
            .collect()
    })
    .unwrap_or_default()
}

async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_link_stays_out_on_every_entry_point_and_after_a_restart() {
    let s = TestServer::start().await;
    let room = RoomId::new("bar").unwrap();
    let teacher = s.token("bar", Role::Teacher, "Ms Li");
    let classroom = s.token("bar", Role::Classroom, "Class 2");
    let viewer = s.token("bar", Role::Viewer, "Parent");

    let mut t = join(&s, &teacher).await;
    // The classroom link is in twice: its page over /ws and an encoder over WHIP.
    let mut c = join(&s, &classroom).await;
    let encoder = WhipPublisher::connect(&s.url("/whip/bar"), &classroom, WhipOptions::default())
        .await
        .expect("WHIP session");
    let player = WhepViewer::connect(&s.url("/whep/bar"), &viewer, WhepOptions::default())
        .await
        .expect("WHEP session");
    until("three class peers and a parent", async || {
        peers_named(&s, &room, "Class 2").await.len() == 2
            && peers_named(&s, &room, "Parent").await.len() == 1
    })
    .await;

    // The teacher removes the classroom's page: its encoder goes with it.
    let class_peer = {
        let mut ps = peers_named(&s, &room, "Class 2").await;
        ps.sort();
        ps[0]
    };
    send(&mut t, json!({"type": "remove", "peerId": class_peer})).await;
    let bye = next_of(&mut c, "bye").await;
    assert_eq!(bye["reason"], "removed");
    until("the encoder to be removed", async || {
        peers_named(&s, &room, "Class 2").await.is_empty()
    })
    .await;
    let gone = reqwest::Client::new()
        .delete(encoder.location().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404, "the WHIP session outlived the removal");

    // The parent's player is removed too.
    let parent = peers_named(&s, &room, "Parent").await[0];
    send(&mut t, json!({"type": "remove", "peerId": parent})).await;
    until("the player to be removed", async || {
        peers_named(&s, &room, "Parent").await.is_empty()
    })
    .await;

    // Neither link gets back in, on any entry point.
    let refused = |(status, body): (u16, Value)| {
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"], "removed", "{body}");
    };
    refused(post(&s, "/whip/bar", &classroom).await);
    refused(post(&s, "/whep/bar", &viewer).await);
    let (_, bye) = connect(&s, &classroom).await;
    assert_eq!(bye["reason"], "removed", "{bye}");

    // The room empties and closes; the links stay out when it reopens.
    send(&mut t, json!({"type": "leave"})).await;
    next_of(&mut t, "bye").await;
    drop(c);
    let _ = player.close().await;
    drop(encoder);
    until("the room to close", async || {
        s.server.state.media.shard_of(&room).is_none()
    })
    .await;
    let t2 = join(&s, &teacher).await;
    refused(post(&s, "/whip/bar", &classroom).await);
    refused(post(&s, "/whep/bar", &viewer).await);
    let (_, bye) = connect(&s, &classroom).await;
    assert_eq!(bye["reason"], "removed", "{bye}");
    drop(t2);

    // And after a restart.
    let s = s.restart().await;
    refused(post(&s, "/whip/bar", &classroom).await);
    refused(post(&s, "/whep/bar", &viewer).await);
    let (_, bye) = connect(&s, &classroom).await;
    assert_eq!(bye["reason"], "removed", "{bye}");

    // The teacher re-admits the parent: only that link is let in again, also after a restart.
    let mut t = join(&s, &teacher).await;
    send(&mut t, json!({"type": "readmit", "peerId": parent})).await;
    until("the parent to be let in", async || {
        !s.server
            .state
            .media
            .people
            .is_removed(&room, &link_of(&viewer))
    })
    .await;
    drop(t);
    let s = s.restart().await;
    let player = WhepViewer::connect(&s.url("/whep/bar"), &viewer, WhepOptions::default())
        .await
        .expect("the re-admitted link plays again");
    let _ = player.close().await;
    refused(post(&s, "/whip/bar", &classroom).await);
}

/// The token id of a room token (its `jti` claim).
fn link_of(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    let v: Value = serde_json::from_slice(&bytes).expect("json");
    v["jti"].as_str().expect("jti").to_owned()
}

/// The actions taken in the room, as the audit log has them: (action, actor name, target).
async fn audited(s: &TestServer) -> Vec<(String, String, String)> {
    sqlx::query_as("SELECT action, key_name, target FROM audit ORDER BY id")
        .fetch_all(&s.server.state.db.pool)
        .await
        .expect("audit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teachers_actions_on_others_are_audited() {
    let s = TestServer::start().await;
    let room = RoomId::new("aud").unwrap();
    let teacher = s.token("aud", Role::Teacher, "Ms Li");
    let classroom = s.token("aud", Role::Classroom, "Class 2");
    let mut t = join(&s, &teacher).await;
    let mut c = join(&s, &classroom).await;
    until("the classroom to join", async || {
        peers_named(&s, &room, "Class 2").await.len() == 1
    })
    .await;
    let class_peer = peers_named(&s, &room, "Class 2").await[0];
    // The classroom's own hand is not the teacher's action on others: not audited.
    send(&mut c, json!({"type": "raiseHand"})).await;
    send(
        &mut t,
        json!({"type": "mute", "peerId": class_peer, "mic": true}),
    )
    .await;
    send(&mut t, json!({"type": "remove", "peerId": class_peer})).await;
    next_of(&mut c, "bye").await;
    send(&mut t, json!({"type": "readmit", "peerId": class_peer})).await;
    let want = [
        ("room.mute", "Ms Li", "aud"),
        ("room.remove", "Ms Li", "aud"),
        ("room.readmit", "Ms Li", "aud"),
    ];
    let mut got = Vec::new();
    for _ in 0..50 {
        got = audited(&s).await;
        if got.len() >= want.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got: Vec<(&str, &str, &str)> = got
        .iter()
        .map(|(a, n, t)| (a.as_str(), n.as_str(), t.as_str()))
        .collect();
    assert_eq!(got, want);
    let removed: String =
        sqlx::query_scalar("SELECT detail FROM audit WHERE action = 'room.remove'")
            .fetch_one(&s.server.state.db.pool)
            .await
            .expect("detail");
    assert!(removed.contains("Class 2"), "{removed}");
}
