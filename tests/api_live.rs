//! Live lesson rooms, on SQLite and on PostgreSQL: the admin API lists who is in a lesson's
//! room and removes a participant; the scheduler warns the room before its window closes and
//! closes it at the end (the lesson clock is moved rather than waited for); ending a lesson
//! closes its room at once.

mod api_common;

use std::time::Duration;

use api_common::signaling::{join, link_token, next_of};
use api_common::{Api, Engine, from_now};
use ketang_loadtest::{WhipOptions, WhipPublisher};
use serde_json::{Value, json};

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

on_both_engines! {
    async fn the_scheduler_warns_and_then_closes_a_lesson_room(api: Api) {
        let (_, occ, links) = running_lesson(api, 1200).await;
        let teacher = WhipPublisher::connect(
            &api.url(&format!("/whip/{occ}")),
            &link_token(&links, "teacher", None),
            WhipOptions::default(),
        )
        .await
        .expect("WHIP teacher");
        let (mut classroom, _) = join(api, &link_token(&links, "remoteClassroom", None)).await;

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
        let warning = next_of(&mut classroom, "lessonEnding").await;
        let ends_at = warning["endsAt"].as_i64().unwrap();
        assert!((ends_at - closes_at).abs() <= 2, "endsAt {ends_at}, window closes {closes_at}");

        // Past the window: everyone is sent away and the room is gone.
        api.shift_clock(Duration::from_secs(300), true);
        let bye = next_of(&mut classroom, "bye").await;
        assert_eq!(bye["reason"], "roomClosed");
        until(api, "the room to close", |r| r.as_array().is_some_and(|a| a.is_empty())).await;
        let _ = teacher.close().await;
    }

    async fn admins_remove_participants_and_end_lessons(api: Api) {
        let (id, occ, links) = running_lesson(api, 2400).await;
        let teacher = WhipPublisher::connect(
            &api.url(&format!("/whip/{occ}")),
            &link_token(&links, "teacher", None),
            WhipOptions::default(),
        )
        .await
        .expect("WHIP teacher");
        let (mut classroom, _) = join(api, &link_token(&links, "masterClassroom", None)).await;
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
        let bye = next_of(&mut classroom, "bye").await;
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
