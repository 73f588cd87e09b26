//! The resource library API against a real recorded lesson, on SQLite and on PostgreSQL: a
//! master lesson scheduled with `record` is published over WHIP (webrtc-rs), an observer posts
//! a note over signaling while it runs, and when the room empties the file reaches the
//! library. Then: metadata, search and filters, `Range` (206 with exactly the bytes asked for,
//! suffix and open-ended ranges, 416 with `Content-Range`, HEAD, `If-Range`), the download and
//! its SHA-256, library links (accepted; refused when forged, expired or for another
//! recording), notes (master lessons only) and their JSON export, and the admin-only delete
//! that removes the file. One recording per engine; the checks are split by topic:
//! `search.rs`, `files.rs`, `access.rs`.

mod access;
#[path = "../api_common/mod.rs"]
mod api_common;
mod files;
mod search;

use std::time::{Duration, Instant, SystemTime};

use api_common::{Api, Engine, Reply, from_now};
use ketang::library::catalog::{self, Entry, LessonFacts};
use ketang::library::ids::RecordingId;
use ketang_loadtest::ws::{WsClient, WsOptions, ws_url};
use ketang_loadtest::{WhipOptions, WhipPublisher};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Seconds of lesson published.
pub const LESSON_SECS: u64 = 4;

/// What the recorded lesson is.
pub struct Recorded {
    pub id: String,
    pub teacher: String,
    pub school: String,
    pub observer_name: String,
}

pub fn token_of(links: &Value, kind: &str) -> (String, String) {
    let l = links["links"]
        .as_array()
        .expect("links")
        .iter()
        .find(|l| l["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} link in {links:#}"));
    (
        l["token"].as_str().expect("token").to_owned(),
        l["name"].as_str().unwrap_or("").to_owned(),
    )
}

/// Polls `path` (admin key) until `ok` holds, for at most `within`.
pub async fn wait_for(
    api: &Api,
    path: &str,
    within: Duration,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let r = api.get(path).await;
        if r.status == 200 && ok(&r.body) {
            return r.body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} not as expected within {within:?}: {} {:#}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Schedules a recorded master lesson, publishes into it over WHIP with an observer watching
/// (who posts a note), and waits until its file is in the library.
async fn record_lesson(api: &Api) -> Recorded {
    let school = api.school("实验小学", "central").await;
    let teacher = api.teacher(&school, "李老师").await;
    let master = api.classroom(&school, "三(1)班").await;
    let remote = api.classroom(&school, "三(2)班").await;
    let body = json!({
        "title": "三年级数学 分数的初步认识", "subject": "数学", "grade": "三年级",
        "mode": "master", "teacherId": teacher, "masterClassroomId": master,
        "remoteClassroomIds": [remote], "start": from_now(60), "end": from_now(3600),
        "record": true,
    });
    let r = api.post("/api/v1/lessons", body).await.expect(201);
    let lesson = r.body["lesson"]["id"]
        .as_str()
        .expect("lesson id")
        .to_owned();
    let occ = r.body["occurrences"][0]["id"]
        .as_str()
        .expect("occurrence")
        .to_owned();
    let links = api
        .get(&format!("/api/v1/lessons/{lesson}/links"))
        .await
        .expect(200);
    let (teacher_token, _) = token_of(&links.body, "teacher");
    let (observer_token, observer_name) = token_of(&links.body, "observer");

    // The lesson records: the teacher's join starts the recording, no command needed.
    let mut publisher = WhipPublisher::connect(
        &api.url(&format!("/whip/{occ}")),
        &teacher_token,
        WhipOptions::default(),
    )
    .await
    .expect("WHIP teacher");
    let running = wait_for(
        api,
        "/api/v1/library?state=recording",
        Duration::from_secs(15),
        |b| b["items"].as_array().is_some_and(|a| a.len() == 1),
    )
    .await;
    let id = running["items"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        running["items"][0]["mediaUrl"],
        Value::Null,
        "not playable yet"
    );
    let status = api.get("/api/v1/library/status").await.expect(200);
    assert_eq!(status.body["enabled"], true);
    assert_eq!(status.body["active"][0]["recordingId"], id.as_str());

    let observer = WsClient::connect(
        &ws_url(&api.base, &observer_token).expect("ws url"),
        WsOptions::default(),
        None,
    )
    .await
    .expect("observer joined");
    publisher
        .run_for(Duration::from_secs(LESSON_SECS / 2))
        .await;
    assert!(
        observer
            .send(json!({"type": "note", "text": "导入自然，用分蛋糕引出分数"}))
            .await
    );
    let sent = publisher
        .run_for(Duration::from_secs(LESSON_SECS / 2))
        .await;
    assert!(sent.video.packets > 50, "the teacher published");
    // Running recordings are not deleted.
    api.delete(&format!("/api/v1/library/{id}"))
        .await
        .expect(409);
    let stats = observer.leave(Duration::from_secs(5)).await;
    assert!(stats.errors.is_empty(), "the note was refused: {stats:?}");
    publisher.close().await.expect("WHIP session closed");

    // The room is empty: the recording stops, is finalized, hashed and imported.
    wait_for(
        api,
        &format!("/api/v1/library/{id}"),
        Duration::from_secs(30),
        |b| b["state"] == "ready",
    )
    .await;
    Recorded {
        id,
        teacher,
        school,
        observer_name,
    }
}

/// A second entry, written as the catalog keeps them: another subject, grade and mode, a
/// lesson of three days earlier, failed (so there is no file).
async fn fixture_entry(api: &Api) -> String {
    let id = RecordingId::generate(1);
    let started = i64::try_from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("ms")
        - 3 * 86_400_000;
    let facts = LessonFacts {
        title: "五年级语文 草船借箭 100%".into(),
        subject: "语文".into(),
        grade: "五年级".into(),
        mode: "dedicated".into(),
        teacher_name: "王老师".into(),
        school_name: "西岭小学".into(),
        timezone: "Asia/Shanghai".into(),
        ..LessonFacts::default()
    };
    let mut e = Entry::new(&id, "room-x", facts, started, started);
    e.state = catalog::FAILED.into();
    e.error = Some("No space left on device".into());
    catalog::insert(&api.server.state.db.pool, &e)
        .await
        .expect("fixture entry");
    id.to_string()
}

pub fn ids(page: &Reply) -> Vec<String> {
    page.body["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

pub fn hex_sha256(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// GET `path` with the admin key and extra headers, raw.
pub async fn fetch(
    api: &Api,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = api
        .client
        .request(method, api.url(path))
        .header("authorization", format!("Bearer {}", api.key));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("request")
}

/// A day before or after `date` (`YYYY-MM-DD`).
pub fn day(date: &str, delta: i64) -> String {
    let d: jiff::civil::Date = date.parse().expect("date");
    d.checked_add(jiff::Span::new().days(delta))
        .expect("date")
        .to_string()
}

on_both_engines! {
    async fn a_recorded_lesson_in_the_library(api: Api) {
        let rec = record_lesson(api).await;
        let other = fixture_entry(api).await;
        search::metadata_search_and_filters(api, &rec, &other).await;
        files::ranges_and_download(api, &rec).await;
        let token = access::library_links(api, &rec, &other).await;
        access::notes_and_export(api, &rec, &other, &token).await;
        files::delete_removes_everything(api, &rec, &token).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_library_link_posts_at_most_twenty_notes_a_minute() {
    let api = Api::start(Engine::Sqlite).await;
    let id = RecordingId::generate(7);
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("ms");
    let facts = LessonFacts {
        title: "四年级数学 分数".into(),
        mode: "master".into(),
        ..LessonFacts::default()
    };
    let mut e = Entry::new(&id, "room-n", facts, now - 120_000, now);
    e.state = catalog::READY.into();
    e.duration_ms = Some(60_000);
    catalog::insert(&api.server.state.db.pool, &e)
        .await
        .expect("entry");
    let (token, _) = api
        .server
        .state
        .library
        .links
        .mint(&id, "李老师", Duration::from_secs(3600), SystemTime::now())
        .expect("link");
    let by_link = format!("/api/v1/library/{id}/notes?t={token}");
    let note = |i: i64| Some(json!({"atMs": i * 100, "text": format!("note {i}")}));
    for i in 0..20 {
        api.send("POST", &by_link, note(i), None).await.expect(201);
    }
    let refused = api.send("POST", &by_link, note(20), None).await.expect(429);
    assert_eq!(
        refused.body["type"], "urn:ketang:problem:rate-limited",
        "{:?}",
        refused.body
    );
    // An admin is not held up by the link's flood.
    api.post(
        &format!("/api/v1/library/{id}/notes"),
        json!({"atMs": 0, "text": "admin"}),
    )
    .await
    .expect(201);
    // A minute later the link may post again.
    api.shift_clock(Duration::from_secs(61), true);
    api.send("POST", &by_link, note(21), None).await.expect(201);
    let listed = api
        .get(&format!("/api/v1/library/{id}/notes"))
        .await
        .expect(200);
    assert_eq!(listed.body.as_array().map(Vec::len), Some(22));
    api.finish().await;
}
