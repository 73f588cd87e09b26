//! Lesson links, on SQLite and on PostgreSQL: who gets which link in each mode; links work
//! inside their window only (the server's lesson clock is moved instead of waiting); reissuing
//! revokes the older ones; cancelled, ended, moved and deleted occurrences refuse theirs, at
//! every entry point (room page, session, WebSocket, WHIP).

mod api_common;

use std::time::Duration;

use api_common::{Api, Engine, from_now};
use serde_json::{Value, json};

fn lesson(teacher: &str, master: &str, remote: &[&str], start: &str, end: &str) -> Value {
    json!({
        "title": "五年级英语", "subject": "英语", "grade": "五年级", "mode": "dedicated",
        "teacherId": teacher, "masterClassroomId": master, "remoteClassroomIds": remote,
        "start": start, "end": end,
    })
}

/// Creates a lesson from `start_in` to `end_in` seconds from now: (lesson id, occurrence id).
async fn lesson_at(api: &Api, start_in: i64, end_in: i64) -> (String, String) {
    let (teacher, rooms) = api.cast(3).await;
    let body = lesson(
        &teacher,
        &rooms[0],
        &[&rooms[1], &rooms[2]],
        &from_now(start_in),
        &from_now(end_in),
    );
    let r = api.post("/api/v1/lessons", body).await.expect(201);
    (
        r.body["lesson"]["id"].as_str().unwrap().to_owned(),
        r.body["occurrences"][0]["id"].as_str().unwrap().to_owned(),
    )
}

fn token_of(links: &Value, kind: &str) -> String {
    links["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} link in {links:#}"))["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `GET /r/{room}/session?t=TOKEN` (no admin key): the claims or the refusal.
async fn session(api: &Api, room: &str, token: &str) -> (u16, Value) {
    let r = api
        .send("GET", &format!("/r/{room}/session?t={token}"), None, None)
        .await;
    (r.status, r.body)
}

async fn refusal(api: &Api, room: &str, token: &str) -> String {
    let (status, body) = session(api, room, token).await;
    assert_eq!(status, 401, "{body:#}");
    body["error"].as_str().unwrap_or("").to_owned()
}

async fn ws_refusal(api: &Api, token: &str) -> u16 {
    let url = format!("ws://{}/ws?t={token}", api.server.http_addr);
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("websocket: {e}"),
    }
}

on_both_engines! {
    async fn links_work_from_the_lead_before_to_the_grace_after(api: Api) {
        let (id, occ) = lesson_at(api, 2 * 3600, 2 * 3600 + 45 * 60).await;
        let links = api.get(&format!("/api/v1/lessons/{id}/links")).await.expect(200);
        let b = &links.body;
        assert_eq!((b["occurrenceId"].as_str(), b["room"].as_str()), (Some(occ.as_str()), Some(occ.as_str())));
        assert_eq!(b["linkVersion"], 1);
        let kinds: Vec<&str> = b["links"].as_array().unwrap().iter().map(|l| l["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["teacher", "masterClassroom", "remoteClassroom", "remoteClassroom"]);
        let teacher_link = &b["links"][0];
        assert_eq!((teacher_link["role"].as_str(), teacher_link["name"].as_str()), (Some("teacher"), Some("李老师")));
        assert_eq!(b["links"][2]["name"], "实验小学 三(2)班");
        let url = b["links"][2]["url"].as_str().unwrap();
        assert!(url.starts_with(&format!("{}/r/{occ}?t=", api.base)), "public URL and room: {url}");
        let token = token_of(b, "remoteClassroom");
        // Handing out links is on record.
        let audit = api.get(&format!("/api/v1/audit?target={occ}")).await.expect(200);
        assert_eq!(audit.body["items"][0]["action"], "links.mint", "{:#}", audit.body);

        // Before the window: not yet valid, and the refusal says from when.
        let (status, body) = session(api, &occ, &token).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("tokenNotYetValid")), "{body:#}");
        let valid_from = body["validFrom"].as_u64().unwrap();
        let start = jiff::Timestamp::now().as_second() as u64 + 2 * 3600;
        assert!(valid_from.abs_diff(start - 15 * 60) <= 2, "15 minutes before the start: {valid_from} vs {start}");
        let page = api.send("GET", &format!("/r/{occ}?t={token}"), None, None).await;
        assert_eq!(page.status, 401);

        // Inside: 10 minutes before the start.
        api.shift_clock(Duration::from_secs(2 * 3600 - 600), true);
        let (status, claims) = session(api, &occ, &token).await;
        assert_eq!(status, 200, "{claims:#}");
        assert_eq!((claims["role"].as_str(), claims["room"].as_str()), (Some("classroom"), Some(occ.as_str())));
        assert_eq!(claims["classroom"], b["links"][2]["classroomId"]);
        assert_eq!(api.send("GET", &format!("/r/{occ}?t={token}"), None, None).await.status, 200);

        // After the end plus the grace (and the token's clock skew): expired; no new links.
        api.shift_clock(Duration::from_secs(600 + 45 * 60 + 15 * 60 + 60), true);
        assert_eq!(refusal(api, &occ, &token).await, "tokenExpired");
        let r = api.get(&format!("/api/v1/lessons/{id}/links?occurrence={occ}")).await.expect(409);
        assert!(r.body["detail"].as_str().unwrap().contains("over"), "{:#}", r.body);
        api.get(&format!("/api/v1/lessons/{id}/links")).await.expect(409);
    }

    async fn reissuing_revokes_the_older_links_everywhere(api: Api) {
        let (id, occ) = lesson_at(api, -300, 2400).await;
        let old = api.get(&format!("/api/v1/lessons/{id}/links")).await.expect(200);
        let old_teacher = token_of(&old.body, "teacher");
        assert_eq!(session(api, &occ, &old_teacher).await.0, 200);
        // Every call mints fresh tokens of the same version; both work.
        let again = api.get(&format!("/api/v1/lessons/{id}/links?occurrence={occ}")).await.expect(200);
        assert_ne!(token_of(&again.body, "teacher"), old_teacher);
        assert_eq!(session(api, &occ, &token_of(&again.body, "teacher")).await.0, 200);

        let new = api.post_empty(&format!("/api/v1/lessons/{id}/links/reissue?occurrence={occ}")).await.expect(200);
        assert_eq!(new.body["linkVersion"], 2);
        let new_teacher = token_of(&new.body, "teacher");
        assert_eq!(refusal(api, &occ, &old_teacher).await, "tokenRevoked");
        assert_eq!(refusal(api, &occ, &token_of(&again.body, "remoteClassroom")).await, "tokenRevoked");
        assert_eq!(session(api, &occ, &new_teacher).await.0, 200);
        let page = api.send("GET", &format!("/r/{occ}?t={old_teacher}"), None, None).await;
        assert_eq!(page.status, 401);
        assert_eq!(ws_refusal(api, &old_teacher).await, 401);
        let whip = api
            .client
            .post(api.url(&format!("/whip/{occ}")))
            .header("authorization", format!("Bearer {old_teacher}"))
            .header("content-type", "application/sdp")
            .body("v=0")
            .send()
            .await
            .unwrap();
        assert_eq!(whip.status(), 401);
        let body: Value = whip.json().await.unwrap();
        assert_eq!(body["error"], "tokenRevoked");

        let audit = api.get(&format!("/api/v1/audit?target={occ}")).await.expect(200);
        assert_eq!(audit.body["items"][0]["action"], "links.reissue");
    }

    async fn cancelled_ended_moved_and_deleted_occurrences_refuse_their_links(api: Api) {
        let (id, occ) = lesson_at(api, -300, 2400).await;
        let links = api.get(&format!("/api/v1/lessons/{id}/links")).await.expect(200);
        let token = token_of(&links.body, "masterClassroom");

        api.post_empty(&format!("/api/v1/occurrences/{occ}/cancel")).await.expect(200);
        assert_eq!(refusal(api, &occ, &token).await, "lessonCancelled");
        assert_eq!(ws_refusal(api, &token).await, 401);
        let r = api.get(&format!("/api/v1/lessons/{id}/links?occurrence={occ}")).await.expect(409);
        assert!(r.body["detail"].as_str().unwrap().contains("cancelled"));
        api.post_empty(&format!("/api/v1/occurrences/{occ}/restore")).await.expect(200);
        assert_eq!(session(api, &occ, &token).await.0, 200, "restored: the same links work again");

        let ended = api.post_empty(&format!("/api/v1/lessons/{id}/end")).await.expect(200);
        assert_eq!((ended.body["status"].as_str(), ended.body["id"].as_str()), (Some("ended"), Some(occ.as_str())));
        assert!(ended.body["endedAt"].is_string());
        assert_eq!(refusal(api, &occ, &token).await, "lessonEnded");
        api.post_empty(&format!("/api/v1/lessons/{id}/end")).await.expect(409);
        api.post_empty(&format!("/api/v1/occurrences/{occ}/cancel")).await.expect(409);

        // A future lesson cannot be ended; moving it revokes its links.
        let (future, focc) = lesson_at(api, 3 * 3600, 4 * 3600).await;
        api.post_empty(&format!("/api/v1/lessons/{future}/end")).await.expect(409);
        let links = api.get(&format!("/api/v1/lessons/{future}/links")).await.expect(200);
        let token = token_of(&links.body, "teacher");
        api.put(&format!("/api/v1/occurrences/{focc}"), json!({"start": from_now(5 * 3600), "end": from_now(6 * 3600)}))
            .await
            .expect(200);
        api.shift_clock(Duration::from_secs(3 * 3600), true);
        assert_eq!(refusal(api, &focc, &token).await, "tokenRevoked");
        let moved = api.get(&format!("/api/v1/lessons/{future}/links")).await.expect(200);
        assert_eq!(moved.body["linkVersion"], 2);

        // Deleted: the occurrence is gone, and so is every link to it.
        let fresh = token_of(&moved.body, "teacher");
        api.delete(&format!("/api/v1/lessons/{future}")).await.expect(204);
        api.shift_clock(Duration::from_secs(2 * 3600), true);
        assert_eq!(refusal(api, &focc, &fresh).await, "tokenRevoked");
    }

    async fn each_mode_gets_its_links(api: Api) {
        let (teacher, rooms) = api.cast(3).await;
        let mut master = lesson(&teacher, &rooms[0], &[&rooms[1]], &from_now(3600), &from_now(5400));
        master["mode"] = json!("master");
        let id = api.post("/api/v1/lessons", master).await.expect(201).body["lesson"]["id"].as_str().unwrap().to_owned();
        let links = api.get(&format!("/api/v1/lessons/{id}/links")).await.expect(200);
        let kinds: Vec<(&str, &str)> = links.body["links"].as_array().unwrap().iter().map(|l| (l["kind"].as_str().unwrap(), l["role"].as_str().unwrap())).collect();
        assert_eq!(kinds, [("teacher", "teacher"), ("masterClassroom", "classroom"), ("remoteClassroom", "classroom"), ("observer", "observer")]);

        let mut broadcast = lesson(&teacher, &rooms[2], &[], &from_now(7200), &from_now(9000));
        broadcast["mode"] = json!("broadcast");
        let id = api.post("/api/v1/lessons", broadcast).await.expect(201).body["lesson"]["id"].as_str().unwrap().to_owned();
        let links = api.get(&format!("/api/v1/lessons/{id}/links")).await.expect(200);
        let kinds: Vec<(&str, &str)> = links.body["links"].as_array().unwrap().iter().map(|l| (l["kind"].as_str().unwrap(), l["role"].as_str().unwrap())).collect();
        assert_eq!(kinds, [("teacher", "teacher"), ("masterClassroom", "classroom"), ("viewer", "viewer")]);
        // A link's token carries the lesson and its version.
        let token = token_of(&links.body, "viewer");
        let payload = token.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(&base64url(payload)).unwrap();
        assert_eq!(claims["lesson"], links.body["occurrenceId"]);
        assert_eq!((claims["lv"].as_u64(), claims["mode"].as_str()), (Some(1), Some("broadcast")));
    }
}

fn base64url(s: &str) -> Vec<u8> {
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0u32);
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            _ => 63,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
