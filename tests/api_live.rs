//! Live lesson rooms, on SQLite and on PostgreSQL: the admin API lists who is in a lesson's
//! room and removes a participant; the scheduler warns the room before its window closes and
//! closes it at the end (the lesson clock is moved rather than waited for); ending a lesson
//! closes its room at once.

mod api_common;

use std::time::Duration;

use api_common::{Api, Engine, from_now};
use futures_util::{SinkExt, StreamExt};
use ketang_loadtest::{WhipOptions, WhipPublisher};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A browser-like offer with only a data channel: enough to join a room (the peer never
/// connects its media, which the test does not need within its few seconds).
const DATA_ONLY_OFFER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0\r\na=msid-semantic: WMS\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
c=IN IP4 0.0.0.0\r\na=ice-ufrag:kT9x\r\na=ice-pwd:0123456789abcdefghijklmn\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 6B:8B:5D:EA:59:04:20:23:29:C8:87:1C:CC:87:32:BE:DD:8C:66:A5:8E:50:55:EA:8C:D3:B6:5C:09:5E:D6:BC\r\n\
a=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n";

async fn next_of(ws: &mut Ws, typ: &str, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {typ} message within {within:?}"))
            .expect("socket open")
            .expect("no socket error");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).expect("json");
            if v["type"] == typ {
                return v;
            }
        }
    }
}

async fn live_rooms(api: &Api) -> Value {
    api.get("/api/v1/rooms").await.expect(200).body
}

/// Waits until `f(rooms)` holds.
async fn until(api: &Api, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let rooms = live_rooms(api).await;
        if f(&rooms) {
            return rooms;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: rooms are {:#}", live_rooms(api).await);
}

/// A lesson from 5 minutes ago to `end_in` seconds from now, and its links.
async fn running_lesson(api: &Api, end_in: i64) -> (String, String, Value) {
    let (teacher, rooms) = api.cast(2).await;
    let body = json!({
        "title": "科学：水的三态", "subject": "科学", "grade": "四年级", "mode": "dedicated",
        "teacherId": teacher, "masterClassroomId": rooms[0], "remoteClassroomIds": [rooms[1]],
        "start": from_now(-300), "end": from_now(end_in),
    });
    let r = api.post("/api/v1/lessons", body).await.expect(201);
    let id = r.body["lesson"]["id"].as_str().unwrap().to_owned();
    let occ = r.body["occurrences"][0]["id"].as_str().unwrap().to_owned();
    let links = api
        .get(&format!("/api/v1/lessons/{id}/links"))
        .await
        .expect(200)
        .body;
    (id, occ, links)
}

fn token(links: &Value, kind: &str) -> String {
    links["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == kind)
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn join_ws(api: &Api, token: &str) -> Ws {
    let url = format!("ws://{}/ws?t={token}", api.server.http_addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket");
    next_of(&mut ws, "welcome", Duration::from_secs(5)).await;
    let offer = json!({"type": "offer", "sdp": DATA_ONLY_OFFER, "tracks": []});
    ws.send(Message::Text(offer.to_string().into()))
        .await
        .expect("send");
    next_of(&mut ws, "answer", Duration::from_secs(5)).await;
    ws
}

on_both_engines! {
    async fn the_scheduler_warns_and_then_closes_a_lesson_room(api: Api) {
        let (_, occ, links) = running_lesson(api, 1200).await;
        let teacher = WhipPublisher::connect(
            &api.url(&format!("/whip/{occ}")),
            &token(&links, "teacher"),
            WhipOptions::default(),
        )
        .await
        .expect("WHIP teacher");
        let mut classroom = join_ws(api, &token(&links, "remoteClassroom")).await;

        let rooms = until(api, "two participants", |r| r[0]["participants"].as_array().is_some_and(|p| p.len() == 2)).await;
        let room = &rooms[0];
        assert_eq!(room["room"], occ.as_str());
        assert_eq!(room["lesson"]["occurrenceId"], occ.as_str());
        assert_eq!(room["lesson"]["title"], "科学：水的三态");
        assert!(room["since"].is_string());
        let mut roles: Vec<&str> = room["participants"].as_array().unwrap().iter().map(|p| p["role"].as_str().unwrap()).collect();
        roles.sort();
        assert_eq!(roles, ["classroom", "teacher"]);

        // 4 minutes before the window closes (end + 15 min grace): the warning, once.
        let closes_at = jiff::Timestamp::now().as_second() + 1200 + 900;
        api.shift_clock(Duration::from_secs(1200 + 900 - 240), true);
        let warning = next_of(&mut classroom, "lessonEnding", Duration::from_secs(5)).await;
        let ends_at = warning["endsAt"].as_i64().unwrap();
        assert!((ends_at - closes_at).abs() <= 2, "endsAt {ends_at}, window closes {closes_at}");

        // Past the window: everyone is sent away and the room is gone.
        api.shift_clock(Duration::from_secs(300), true);
        let bye = next_of(&mut classroom, "bye", Duration::from_secs(5)).await;
        assert_eq!(bye["reason"], "roomClosed");
        until(api, "the room to close", |r| r.as_array().is_some_and(|a| a.is_empty())).await;
        let _ = teacher.close().await;
    }

    async fn admins_remove_participants_and_end_lessons(api: Api) {
        let (id, occ, links) = running_lesson(api, 2400).await;
        let teacher = WhipPublisher::connect(
            &api.url(&format!("/whip/{occ}")),
            &token(&links, "teacher"),
            WhipOptions::default(),
        )
        .await
        .expect("WHIP teacher");
        let mut classroom = join_ws(api, &token(&links, "masterClassroom")).await;
        let rooms = until(api, "two participants", |r| r[0]["participants"].as_array().is_some_and(|p| p.len() == 2)).await;
        let peer = rooms[0]["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["role"] == "classroom")
            .unwrap()["peerId"]
            .as_u64()
            .unwrap();

        api.delete(&format!("/api/v1/rooms/{occ}/participants/{peer}")).await.expect(204);
        let bye = next_of(&mut classroom, "bye", Duration::from_secs(5)).await;
        assert_eq!(bye["reason"], "removed");
        until(api, "one participant", |r| r[0]["participants"].as_array().is_some_and(|p| p.len() == 1)).await;
        api.delete(&format!("/api/v1/rooms/{occ}/participants/{peer}")).await.expect(404);
        let audit = api.get(&format!("/api/v1/audit?target={occ}")).await.expect(200);
        assert_eq!(audit.body["items"][0]["action"], "participant.remove");

        // Ending the lesson closes the room at once.
        api.post_empty(&format!("/api/v1/lessons/{id}/end")).await.expect(200);
        until(api, "the room to close", |r| r.as_array().is_some_and(|a| a.is_empty())).await;
        let _ = teacher.close().await;
    }
}
