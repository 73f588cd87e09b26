//! Library links (and their refusals), notes and the export.

use std::time::{Duration, SystemTime};

use ketang::library::ids::RecordingId;
use serde_json::json;

use super::Recorded;
use super::api_common::Api;

pub async fn library_links(api: &Api, rec: &Recorded, other: &str) -> String {
    let made = api
        .post(&format!("/api/v1/library/{}/links", rec.id), json!({}))
        .await
        .expect(201);
    assert_eq!(
        made.body["name"], "李老师",
        "for the lesson's teacher by default"
    );
    let token = made.body["token"].as_str().expect("token").to_owned();
    assert!(
        made.body["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/library?t={token}")))
    );
    let with = |path: &str, t: &str| format!("{path}?t={t}");
    let entry = format!("/api/v1/library/{}", rec.id);

    // The link opens its recording: read, stream (query or bearer), notes, export.
    let r = api
        .send("GET", &with(&entry, &token), None, None)
        .await
        .expect(200);
    assert_eq!(r.body["id"], rec.id.as_str());
    let r = api
        .client
        .get(api.url(&format!("{entry}/media")))
        .header("authorization", format!("Bearer {token}"))
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 206);
    api.send("GET", &with(&format!("{entry}/notes"), &token), None, None)
        .await
        .expect(200);
    // Not the list, nor a delete, nor new links.
    api.send("GET", &with("/api/v1/library", &token), None, None)
        .await
        .expect(401);
    api.send("DELETE", &entry, None, Some(&token))
        .await
        .expect(401);

    // Forged: another secret, or a changed signature.
    let forger = ketang::library::link::LinkSigner::new(
        b"not the server's secret, 32 bytes",
        Duration::ZERO,
    );
    let id = RecordingId::parse(&rec.id).expect("id");
    let (forged, _) = forger
        .mint(&id, "x", Duration::from_secs(600), SystemTime::now())
        .expect("mint");
    let mut altered = token.clone();
    let last = altered.pop().expect("char");
    altered.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [forged.as_str(), altered.as_str(), "garbage"] {
        let r = api
            .send("GET", &with(&entry, bad), None, None)
            .await
            .expect(401);
        assert!(
            r.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("library link")),
            "{:#}",
            r.body
        );
    }
    // Expired (beyond the clock skew).
    let links = &api.server.state.library.links;
    let hours_ago = SystemTime::now() - Duration::from_secs(3 * 3600);
    let (old, _) = links
        .mint(&id, "李老师", Duration::from_secs(3600), hours_ago)
        .expect("mint");
    let r = api
        .send("GET", &with(&entry, &old), None, None)
        .await
        .expect(401);
    assert!(
        r.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("expired")),
        "{:#}",
        r.body
    );
    // A valid link for another recording.
    let theirs = api
        .post(
            &format!("/api/v1/library/{other}/links"),
            json!({"name": "王老师", "ttlSeconds": 600}),
        )
        .await
        .expect(201);
    let theirs = theirs.body["token"].as_str().expect("token");
    api.send("GET", &with(&entry, theirs), None, None)
        .await
        .expect(403);
    api.send("GET", &with(&format!("{entry}/media"), theirs), None, None)
        .await
        .expect(403);
    let bad = api
        .post(
            &format!("/api/v1/library/{}/links", rec.id),
            json!({"ttlSeconds": 5, "name": ""}),
        )
        .await
        .expect(422);
    let mut fields = bad.fields();
    fields.sort();
    assert_eq!(fields, ["name", "ttlSeconds"]);
    token
}

pub async fn notes_and_export(api: &Api, rec: &Recorded, other: &str, token: &str) {
    let entry = api
        .get(&format!("/api/v1/library/{}", rec.id))
        .await
        .expect(200);
    let duration = entry.body["durationMs"].as_i64().expect("duration");
    let notes = format!("/api/v1/library/{}/notes", rec.id);

    // The observer's note from the live lesson is there, timed within the recording.
    let live = api.get(&notes).await.expect(200);
    let live = live.body.as_array().expect("notes").clone();
    assert_eq!(live.len(), 1, "{live:#?}");
    assert_eq!(live[0]["via"], "live");
    assert_eq!(live[0]["role"], "observer");
    assert_eq!(live[0]["author"], rec.observer_name.as_str());
    assert_eq!(live[0]["text"], "导入自然，用分蛋糕引出分数");
    let at = live[0]["atMs"].as_i64().expect("atMs");
    assert!(
        (500..=duration).contains(&at),
        "live note at {at} ms of {duration}"
    );

    // While replaying: an admin (with an author) and the link's holder (its own name).
    let admin = api
        .post(
            &notes,
            json!({"atMs": 300, "text": "板书清晰", "author": "教研员 张老师"}),
        )
        .await
        .expect(201);
    assert_eq!(
        (admin.body["role"].as_str(), admin.body["via"].as_str()),
        (Some("admin"), Some("replay"))
    );
    assert_eq!(admin.body["author"], "教研员 张老师");
    let by_link = api
        .send(
            "POST",
            &format!("{notes}?t={token}"),
            Some(json!({"atMs": duration, "text": "结尾总结到位"})),
            None,
        )
        .await
        .expect(201);
    assert_eq!(
        (
            by_link.body["role"].as_str(),
            by_link.body["author"].as_str()
        ),
        (Some("link"), Some("李老师"))
    );
    let bad = api
        .send(
            "POST",
            &format!("{notes}?t={token}"),
            Some(json!({"atMs": duration + 1, "text": "", "author": "x"})),
            None,
        )
        .await
        .expect(422);
    let mut fields = bad.fields();
    fields.sort();
    assert_eq!(fields, ["atMs", "author", "text"]);
    // 听课评课 is for master lessons only.
    api.post(
        &format!("/api/v1/library/{other}/notes"),
        json!({"atMs": 0, "text": "x"}),
    )
    .await
    .expect(409);

    let listed = api.get(&notes).await.expect(200);
    let at: Vec<i64> = listed
        .body
        .as_array()
        .expect("notes")
        .iter()
        .filter_map(|n| n["atMs"].as_i64())
        .collect();
    assert_eq!(at.len(), 3);
    assert!(
        at.windows(2).all(|w| w[0] <= w[1]),
        "timeline order: {at:?}"
    );

    // The export: the recording and its notes, as a JSON file.
    let export = api
        .send(
            "GET",
            &format!("/api/v1/library/{}/export?t={token}", rec.id),
            None,
            None,
        )
        .await
        .expect(200);
    let disposition = export
        .headers
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(
        disposition,
        format!("attachment; filename=\"{}-notes.json\"", rec.id)
    );
    assert_eq!(export.body["recording"]["id"], rec.id.as_str());
    assert_eq!(
        export.body["recording"]["title"],
        "三年级数学 分数的初步认识"
    );
    assert_eq!(export.body["notes"], listed.body);
    assert!(export.body["exportedAt"].is_string());
}
