//! The list: metadata, search, filters and pages.

use serde_json::{Value, json};

use super::api_common::Api;
use super::{LESSON_SECS, Recorded, day, ids};

pub async fn metadata_search_and_filters(api: &Api, rec: &Recorded, other: &str) {
    let page = api.get("/api/v1/library").await.expect(200);
    // Newest entry first: the fixture was entered after the recording.
    assert_eq!(ids(&page), [other, rec.id.as_str()]);
    let e = &page.body["items"][1];
    assert_eq!(e["title"], "三年级数学 分数的初步认识");
    assert_eq!(
        (e["subject"].as_str(), e["grade"].as_str()),
        (Some("数学"), Some("三年级"))
    );
    assert_eq!(
        (e["mode"].as_str(), e["state"].as_str()),
        (Some("master"), Some("ready"))
    );
    assert_eq!(e["teacherName"], "李老师");
    assert_eq!(e["teacherId"], rec.teacher.as_str());
    assert_eq!(e["schoolName"], "实验小学");
    assert_eq!(e["schoolId"], rec.school.as_str());
    assert_eq!(e["recovered"], false);
    assert_eq!(e["error"], Value::Null);
    let duration = e["durationMs"].as_i64().expect("duration");
    assert!(
        (2_500..=LESSON_SECS as i64 * 1000 + 4_000).contains(&duration),
        "duration {duration} ms for about {LESSON_SECS} s of lesson"
    );
    assert!(e["bytes"].as_i64().expect("bytes") > 2_000, "{e:#}");
    assert_eq!(e["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(e["mediaUrl"], format!("/api/v1/library/{}/media", rec.id));
    assert_eq!(
        e["downloadUrl"],
        format!("/api/v1/library/{}/download", rec.id)
    );
    let date = e["date"].as_str().expect("date").to_owned();
    assert!(
        e["startedAt"]
            .as_str()
            .is_some_and(|s| s.starts_with(&date)),
        "{e:#}"
    );

    let only = |q: &str| format!("/api/v1/library?{q}");
    let real = [rec.id.as_str()];
    let fixture = [other];
    let none: [&str; 0] = [];
    let q = |s: &str| s.replace('%', "%25");
    for (query, want) in [
        (q("q=分数"), &real[..]),
        (q("q=草船"), &fixture[..]),
        (q("q=李老师"), &real[..]),
        (q("q=西岭"), &fixture[..]),
        (q("q=100%"), &fixture[..]),
        (q("q=1_0"), &none[..]),
        (q("q=%"), &fixture[..]),
        (q("q=三_级"), &none[..]),
        ("subject=数学".into(), &real[..]),
        ("grade=五年级".into(), &fixture[..]),
        (format!("teacherId={}", rec.teacher), &real[..]),
        (format!("schoolId={}", rec.school), &real[..]),
        ("mode=master".into(), &real[..]),
        ("mode=broadcast".into(), &none[..]),
        ("state=failed".into(), &fixture[..]),
        ("recovered=true".into(), &none[..]),
        ("recovered=false&subject=数学".into(), &real[..]),
        (format!("from={date}&to={date}"), &real[..]),
        (format!("from={}", day(&date, 1)), &none[..]),
        (format!("to={}", day(&date, -1)), &fixture[..]),
        (
            format!("from={}&to={}", day(&date, -4), day(&date, -2)),
            &fixture[..],
        ),
    ] {
        let page = api.get(&only(&query)).await.expect(200);
        assert_eq!(ids(&page), want, "{query}");
    }
    // Pages of one.
    let first = api.get(&only("limit=1")).await.expect(200);
    assert_eq!(ids(&first), fixture);
    let next = first.body["next"].as_str().expect("next").to_owned();
    let second = api
        .get(&only(&format!("limit=1&before={next}")))
        .await
        .expect(200);
    assert_eq!(ids(&second), real);
    assert_eq!(second.body["next"], Value::Null);
    let bad = api
        .get(&only("mode=lecture&limit=0&from=yesterday&before=x"))
        .await
        .expect(422);
    let mut fields = bad.fields();
    fields.sort();
    assert_eq!(fields, ["before", "from", "limit", "mode"]);
    api.get(&only("colour=red")).await.expect(422);

    // A failed recording has nothing to play or download.
    for what in ["media", "download"] {
        api.get(&format!("/api/v1/library/{other}/{what}"))
            .await
            .expect(409);
    }
    // One entry.
    let one = api
        .get(&format!("/api/v1/library/{}", rec.id))
        .await
        .expect(200);
    assert_eq!(one.body["tracks"], json!([]));
    assert_eq!(one.body["sha256"], e["sha256"]);
    api.get("/api/v1/library/rec_01jd8x0000000000000000000")
        .await
        .expect(404);
    api.get("/api/v1/library/..%2F..%2Fetc").await.expect(404);
    // No key: the list is for admins only.
    api.send("GET", "/api/v1/library", None, None)
        .await
        .expect(401);
}
