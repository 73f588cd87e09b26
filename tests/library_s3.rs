//! The resource library on an S3-compatible store: a real S3 API (moto's server, which
//! enforces S3's rules: 5 MiB minimum parts, ranges, signatures present) at
//! `KETANG_TEST_S3_URL` (`./scripts/s3.sh` starts one and prints it; `./scripts/test.sh` sets
//! it). Without the variable the tests fail, saying how to run them: they never pass
//! silently.
//!
//! Two tests: the store alone with a file of several multipart parts (put, HEAD, range read,
//! delete), and a server whose library is in a bucket: a short recorded lesson becomes a
//! ready entry whose object is in the bucket, `Range` and the download are served from it,
//! and the delete removes the object.

mod api_common;

use std::time::{Duration, Instant};

use api_common::{Api, Engine, from_now};
use futures_util::StreamExt;
use ketang::config::recording::{LibraryStore, RecordingConfig, Secret};
use ketang::library::ids::RecordingId;
use ketang::library::store::{Store, StoreError, lesson_key};
use ketang_loadtest::{WhipOptions, WhipPublisher};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const S3_ENV: &str = "KETANG_TEST_S3_URL";

/// The S3 test server's URL, or a failure that says how to get one.
fn s3_url() -> String {
    match std::env::var(S3_ENV) {
        Ok(url) if !url.is_empty() => url.trim_end_matches('/').to_owned(),
        _ => panic!(
            "{S3_ENV} is not set: the library's S3 tests need an S3-compatible server. Run \
             ./scripts/test.sh (it installs and starts moto and sets {S3_ENV}), or \
             eval \"$(./scripts/s3.sh)\" before cargo test."
        ),
    }
}

/// A new, empty bucket for one test (moto takes an unsigned PUT), and the recording section
/// that points at it.
async fn bucket(client: &reqwest::Client) -> (String, RecordingConfig) {
    let url = s3_url();
    let name = format!("ketang-test-{:016x}", rand::random::<u64>());
    let r = client
        .put(format!("{url}/{name}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("S3 server at {url} ({S3_ENV}): {e}"));
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    let rc = RecordingConfig {
        library_store: LibraryStore::S3,
        s3_endpoint: url,
        s3_bucket: name.clone(),
        s3_access_key_id: "testing".into(),
        s3_secret_access_key: Secret("testing".into()),
        s3_allow_http: true,
        ..RecordingConfig::default()
    };
    rc.validate(std::path::Path::new("/data"))
        .expect("a valid S3 section");
    (name, rc)
}

fn hex_sha256(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The object `key` of `bucket` straight from the S3 server: status and bytes.
async fn object(client: &reqwest::Client, bucket: &str, key: &str) -> (u16, Vec<u8>) {
    let r = client
        .get(format!("{}/{bucket}/{key}", s3_url()))
        .send()
        .await
        .expect("GET object");
    let status = r.status().as_u16();
    (status, r.bytes().await.expect("body").to_vec())
}

#[tokio::test]
async fn the_store_puts_reads_and_deletes_multipart_files() {
    let client = reqwest::Client::new();
    let (name, rc) = bucket(&client).await;
    let store = Store::s3(&rc).expect("S3 store");
    assert_eq!(
        store.describe,
        format!("s3://{name}@{}", s3_url()),
        "no secret in it"
    );
    // Three parts of 8 MiB, 8 MiB and a bit: S3 refuses parts under 5 MiB but the last.
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("in.webm");
    let data: Vec<u8> = (0..(16 << 20) + 1234).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &data).expect("write");
    let id = RecordingId::generate(3);
    let key = lesson_key(&id, "webm");
    let s = store.put_file(&src, &key).await.expect("upload");
    assert_eq!(s.bytes, data.len() as u64);
    assert_eq!(s.sha256, hex_sha256(&data));
    assert_eq!(store.size(&key).await.expect("HEAD"), data.len() as u64);
    let (status, stored) = object(&client, &name, &key).await;
    assert_eq!(status, 200);
    assert!(stored == data, "the object is the file");

    let start = (8 << 20) - 10;
    let mut got = Vec::new();
    let mut st = store.read(&key, start, start + 19).await.expect("range");
    while let Some(b) = st.next().await {
        got.extend_from_slice(&b.expect("bytes"));
    }
    assert_eq!(
        got,
        &data[start as usize..start as usize + 20],
        "across a part"
    );

    store.delete(&key).await.expect("delete");
    store.delete(&key).await.expect("a repeated delete");
    assert!(matches!(store.size(&key).await, Err(StoreError::NotFound)));
    assert_eq!(object(&client, &name, &key).await.0, 404);
}

/// Polls `path` until `ok` holds, for at most `within`.
async fn wait_for(api: &Api, path: &str, within: Duration, ok: impl Fn(&Value) -> bool) -> Value {
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

/// Schedules a recorded lesson, publishes 3 s into it over WHIP and waits until its file is
/// in the library; the entry's id.
async fn record_lesson(api: &Api) -> String {
    let school = api.school("实验小学", "central").await;
    let teacher = api.teacher(&school, "李老师").await;
    let master = api.classroom(&school, "三(1)班").await;
    let body = json!({
        "title": "三年级数学", "subject": "数学", "grade": "三年级", "mode": "master",
        "teacherId": teacher, "masterClassroomId": master, "start": from_now(60),
        "end": from_now(3600), "record": true,
    });
    let r = api.post("/api/v1/lessons", body).await.expect(201);
    let lesson = r.body["lesson"]["id"].as_str().expect("lesson").to_owned();
    let occ = r.body["occurrences"][0]["id"]
        .as_str()
        .expect("occurrence")
        .to_owned();
    let links = api
        .get(&format!("/api/v1/lessons/{lesson}/links"))
        .await
        .expect(200);
    let token = links.body["links"]
        .as_array()
        .expect("links")
        .iter()
        .find(|l| l["kind"] == "teacher")
        .and_then(|l| l["token"].as_str())
        .expect("teacher link")
        .to_owned();
    let mut publisher = WhipPublisher::connect(
        &api.url(&format!("/whip/{occ}")),
        &token,
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
    let sent = publisher.run_for(Duration::from_secs(3)).await;
    assert!(sent.video.packets > 50, "the teacher published");
    publisher.close().await.expect("WHIP session closed");
    wait_for(
        api,
        &format!("/api/v1/library/{id}"),
        Duration::from_secs(30),
        |b| b["state"] == "ready",
    )
    .await;
    id
}

async fn fetch(api: &Api, path: &str, range: Option<&str>) -> reqwest::Response {
    let mut req = api
        .client
        .get(api.url(path))
        .header("authorization", format!("Bearer {}", api.key));
    if let Some(r) = range {
        req = req.header("range", r);
    }
    req.send().await.expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_lesson_lives_in_the_bucket() {
    let client = reqwest::Client::new();
    let (name, rc) = bucket(&client).await;
    let api = Api::start_with(Engine::Sqlite, |c| c.recording = rc).await;
    let status = api.get("/api/v1/library/status").await.expect(200);
    assert_eq!(status.body["store"], format!("s3://{name}@{}", s3_url()));

    let id = record_lesson(&api).await;
    let entry = api.get(&format!("/api/v1/library/{id}")).await.expect(200);
    let sha = entry.body["sha256"].as_str().expect("sha").to_owned();
    let key = format!("{id}/lesson.webm");
    let (st, stored) = object(&client, &name, &key).await;
    assert_eq!(st, 200, "{key} in bucket {name}");
    assert_eq!(hex_sha256(&stored), sha, "the object is the catalog's file");
    assert_eq!(Some(stored.len() as i64), entry.body["bytes"].as_i64());
    assert!(stored.len() > 2000, "{} bytes recorded", stored.len());
    let data = api.server.state.config.storage.data_dir.join("library");
    assert!(!data.join(&id).exists(), "nothing in the local library");

    let media = format!("/api/v1/library/{id}/media");
    let part = fetch(&api, &media, Some("bytes=1000-1999")).await;
    assert_eq!(part.status(), 206);
    let len = stored.len();
    let range = part
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert_eq!(range, format!("bytes 1000-1999/{len}"));
    assert_eq!(
        part.bytes().await.expect("body").as_ref(),
        &stored[1000..2000]
    );
    let dl = fetch(&api, &format!("/api/v1/library/{id}/download"), None).await;
    assert_eq!(dl.status(), 200);
    assert_eq!(hex_sha256(&dl.bytes().await.expect("body")), sha);

    api.delete(&format!("/api/v1/library/{id}"))
        .await
        .expect(204);
    assert_eq!(object(&client, &name, &key).await.0, 404, "object deleted");
    api.get(&format!("/api/v1/library/{id}")).await.expect(404);
    api.finish().await;
}
