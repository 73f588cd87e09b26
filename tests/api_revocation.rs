//! Reissuing a lesson's links ends the sessions of the old links at once, WHIP and WHEP
//! included (issue 13 item 7).

mod api_common;

use std::time::Duration;

use api_common::signaling::{join, link_token, next_of};
use api_common::{Api, Engine, from_now};
use ketang_loadtest::{WhipOptions, WhipPublisher};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reissued_links_end_the_sessions_of_the_old_ones() {
    let api = Api::start(Engine::Sqlite).await;
    let (teacher, rooms) = api.cast(2).await;
    let body = json!({
        "title": "数学", "subject": "数学", "grade": "四年级", "mode": "dedicated",
        "teacherId": teacher, "masterClassroomId": rooms[0], "remoteClassroomIds": [rooms[1]],
        "start": from_now(-300), "end": from_now(1800),
    });
    let r = api.post("/api/v1/lessons", body).await.expect(201);
    let id = r.body["lesson"]["id"].as_str().unwrap().to_owned();
    let occ = r.body["occurrences"][0]["id"].as_str().unwrap().to_owned();
    let links = api
        .get(&format!("/api/v1/lessons/{id}/links"))
        .await
        .expect(200)
        .body;
    let encoder = WhipPublisher::connect(
        &api.url(&format!("/whip/{occ}")),
        &link_token(&links, "teacher", None),
        WhipOptions::default(),
    )
    .await
    .expect("WHIP teacher");
    let (mut classroom, _) = join(&api, &link_token(&links, "remoteClassroom", None)).await;

    api.post_empty(&format!("/api/v1/lessons/{id}/links/reissue"))
        .await
        .expect(200);
    let bye = next_of(&mut classroom, "bye").await;
    assert_eq!(bye["reason"], "linkRevoked");
    let mut gone = false;
    for _ in 0..100 {
        if api.server.state.http_sessions.is_empty() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the WHIP session of the revoked link lives on");
    let status = reqwest::Client::new()
        .delete(encoder.location().clone())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    api.finish().await;
}
