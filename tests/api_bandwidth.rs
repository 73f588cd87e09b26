//! Classroom links and school budgets reach the media plane, on SQLite and on PostgreSQL: a
//! classroom joins with its configured downlink and uplink, lowered to its share of its
//! school's budget; the share is re-split as classrooms of the school join (in any room),
//! are called on (the one on stage gets the larger share) and leave. Read back through
//! `GET /api/v1/rooms/{room}/bandwidth` and the client's `getStats`.

mod api_common;

use std::time::Duration;

use api_common::signaling::{self, Ws, link_token, next_of, send};
use api_common::{Api, Engine, from_now};
use serde_json::{Value, json};

const K: u64 = 1000;

/// Joins over signaling; returns the socket and the peer id.
async fn join(api: &Api, token: &str) -> (Ws, u64) {
    let (ws, welcome) = signaling::join(api, token).await;
    (ws, welcome["peerId"].as_u64().expect("peer id"))
}

/// A dedicated lesson running now; returns (occurrence id, links).
async fn lesson(api: &Api, teacher: &str, master: &str, remote: &[&str]) -> (String, Value) {
    let body = json!({
        "title": "数学：分数的意义", "subject": "数学", "grade": "五年级", "mode": "dedicated",
        "teacherId": teacher, "masterClassroomId": master, "remoteClassroomIds": remote,
        "start": from_now(-60), "end": from_now(2400),
    });
    let r = api.post("/api/v1/lessons", body).await.expect(201);
    let id = r.body["lesson"]["id"].as_str().expect("id").to_owned();
    let occ = r.body["occurrences"][0]["id"]
        .as_str()
        .expect("occ")
        .to_owned();
    let links = api
        .get(&format!("/api/v1/lessons/{id}/links"))
        .await
        .expect(200)
        .body;
    (occ, links)
}

/// (downCapBps, upCapBps) of each peer of a room, waiting until `want` holds.
async fn caps_until(api: &Api, room: &str, want: &[(u64, Option<u64>, Option<u64>)]) {
    let mut last = Value::Null;
    for _ in 0..50 {
        last = api
            .get(&format!("/api/v1/rooms/{room}/bandwidth"))
            .await
            .expect(200)
            .body;
        let ok = want.iter().all(|(peer, down, up)| {
            last.as_array().is_some_and(|a| {
                a.iter().any(|p| {
                    p["peerId"] == *peer
                        && p["downCapBps"].as_u64() == *down
                        && p["upCapBps"].as_u64() == *up
                })
            })
        });
        if ok {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("caps in {room} never became {want:?}: {last:#}");
}

on_both_engines! {
    async fn school_budgets_are_split_among_live_classrooms_and_favour_the_stage(api: Api) {
        // A strong school teaches; a rural school with a 3 Mbit/s budget has three classrooms,
        // one of them configured at 2 Mbit/s down and 1.2 Mbit/s up.
        let strong = api.school("实验小学", "central").await;
        let teacher = api.teacher(&strong, "李老师").await;
        let teacher2 = api.teacher(&strong, "王老师").await;
        let master = api.classroom(&strong, "三(1)班").await;
        let master2 = api.classroom(&strong, "三(2)班").await;
        let rural = api
            .post("/api/v1/schools", json!({"name": "山村小学", "district": "南山区", "kind": "rural", "budgetKbps": 3000}))
            .await
            .expect(201)
            .id();
        let c1 = api
            .post("/api/v1/classrooms", json!({"schoolId": rural, "name": "一年级", "downlinkKbps": 2000, "uplinkKbps": 1200}))
            .await
            .expect(201)
            .id();
        let c2 = api.classroom(&rural, "二年级").await;
        let c3 = api.classroom(&rural, "三年级").await;
        let (room, links) = lesson(api, &teacher, &master, &[&c1, &c2]).await;
        let (room2, links2) = lesson(api, &teacher2, &master2, &[&c3]).await;

        let (mut t, _) = join(api, &link_token(&links, "teacher", None)).await;
        let (_w1, p1) = join(api, &link_token(&links, "remoteClassroom", Some(&c1))).await;
        // Alone: its own link (2 Mbit/s) is below the budget; uplink 1.2 Mbit/s.
        caps_until(api, &room, &[(p1, Some(2000 * K), Some(1200 * K))]).await;

        let (mut w2, p2) = join(api, &link_token(&links, "remoteClassroom", Some(&c2))).await;
        // Two live: 1.5 Mbit/s each; the rural default uplink (2.5 Mbit/s) is lowered too.
        caps_until(api, &room, &[(p1, Some(1500 * K), Some(1200 * K)), (p2, Some(1500 * K), Some(1500 * K))]).await;

        // A third classroom of the school in another lesson's room takes its share.
        let (w3, p3) = join(api, &link_token(&links2, "remoteClassroom", Some(&c3))).await;
        caps_until(api, &room, &[(p1, Some(1000 * K), Some(1000 * K)), (p2, Some(1000 * K), Some(1000 * K))]).await;
        caps_until(api, &room2, &[(p3, Some(1000 * K), Some(1000 * K))]).await;

        // The teacher calls on classroom 2: two shares of four.
        send(&mut t, json!({"type": "callOn", "peerId": p2})).await;
        caps_until(api, &room, &[(p2, Some(1500 * K), Some(1500 * K)), (p1, Some(750 * K), Some(750 * K))]).await;
        caps_until(api, &room2, &[(p3, Some(750 * K), Some(750 * K))]).await;

        // The client's overlay sees the same numbers.
        send(&mut w2, json!({"type": "getStats"})).await;
        let stats = next_of(&mut w2, "stats").await;
        assert_eq!(stats["bandwidth"]["peerId"], p2);
        assert_eq!(stats["bandwidth"]["downCapBps"], 1500 * K);

        // Classroom 3 leaves: the rest re-split (stage weighted): 2 of 3 shares for classroom 2.
        drop(w3);
        let _ = api.delete(&format!("/api/v1/rooms/{room2}/participants/{p3}")).await;
        caps_until(api, &room, &[(p2, Some(2000 * K), Some(2000 * K)), (p1, Some(1000 * K), Some(1000 * K))]).await;

        // Done: equal shares again.
        send(&mut t, json!({"type": "done", "peerId": p2})).await;
        caps_until(api, &room, &[(p2, Some(1500 * K), Some(1500 * K)), (p1, Some(1500 * K), Some(1200 * K))]).await;

        // Unknown rooms are 404.
        api.get("/api/v1/rooms/occ_nope/bandwidth").await.expect(404);
    }
}
