//! Refusals of the admin API, on SQLite and on PostgreSQL: 401 without a valid key, 404 for
//! unknown things and routes, 422 naming each invalid field by its path, 400/415 for bodies
//! that are not JSON; and refused input never reaches the database.

mod api_common;

use api_common::{Api, Engine};
use serde_json::{Value, json};

fn lesson(teacher: &str, master: &str, remote: &[&str]) -> Value {
    json!({
        "title": "数学", "subject": "数学", "grade": "三年级", "mode": "dedicated",
        "teacherId": teacher, "masterClassroomId": master, "remoteClassroomIds": remote,
        "start": "2030-03-04T08:00", "end": "2030-03-04T08:45",
    })
}

/// Rows in the schedule tables and the audit log.
async fn rows(api: &Api) -> Vec<i64> {
    let mut out = Vec::new();
    for table in [
        "schools",
        "classrooms",
        "teachers",
        "lessons",
        "lesson_classrooms",
        "occurrences",
        "audit",
    ] {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&api.server.state.db.pool)
                .await
                .expect("count");
        out.push(n);
    }
    out
}

on_both_engines! {
    async fn every_endpoint_needs_a_valid_key(api: Api) {
        let school = api.school("东山小学", "rural").await;
        let paths = [
            ("GET", "/api/v1/schools".to_owned()),
            ("POST", "/api/v1/schools".to_owned()),
            ("GET", format!("/api/v1/schools/{school}")),
            ("DELETE", format!("/api/v1/schools/{school}")),
            ("GET", "/api/v1/lessons".to_owned()),
            ("GET", "/api/v1/rooms".to_owned()),
            ("GET", "/api/v1/audit".to_owned()),
            ("GET", "/api/v1/keys".to_owned()),
        ];
        let revoked = api.post("/api/v1/keys", json!({"name": "old"})).await.expect(201);
        let revoked_key = revoked.body["key"].as_str().unwrap().to_owned();
        api.delete(&format!("/api/v1/keys/{}", revoked.id())).await.expect(204);
        for (method, path) in &paths {
            for key in [None, Some("kt_wrong"), Some("not even a key"), Some(revoked_key.as_str())] {
                let r = api.send(method, path, Some(json!({})), key).await.expect(401);
                assert_eq!(r.body["type"], "urn:ketang:problem:unauthorized");
                let challenge = r.headers.get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("");
                assert!(challenge.starts_with("Bearer"), "{method} {path}: {challenge:?}");
            }
        }
        // A Basic header is not a bearer key.
        let r = api
            .client
            .get(api.url("/api/v1/schools"))
            .header("authorization", format!("Basic {}", api.key))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        // The school is still there: nothing unauthenticated was done.
        api.get(&format!("/api/v1/schools/{school}")).await.expect(200);
        // The document and its page are public.
        assert_eq!(api.send("GET", "/api/v1/openapi.json", None, None).await.status, 200);
        assert_eq!(api.send("GET", "/api/v1/docs", None, None).await.status, 200);
    }

    async fn unknown_things_and_routes_are_404(api: Api) {
        for path in [
            "/api/v1/schools/sch_00000000000000000000000000",
            "/api/v1/schools/not-an-id",
            "/api/v1/classrooms/cls_00000000000000000000000000",
            "/api/v1/teachers/sch_00000000000000000000000000",
            "/api/v1/lessons/les_00000000000000000000000000",
            "/api/v1/lessons/les_00000000000000000000000000/links",
            "/api/v1/lessons/les_00000000000000000000000000/occurrences",
            "/api/v1/occurrences/occ_00000000000000000000000000",
        ] {
            let r = api.get(path).await.expect(404);
            assert_eq!(r.body["type"], "urn:ketang:problem:not-found", "{path}");
        }
        api.delete("/api/v1/rooms/nowhere/participants/7").await.expect(404);
        api.delete("/api/v1/rooms/nowhere/participants/seven").await.expect(404);
        let r = api.get("/api/v1/nothing/here").await.expect(404);
        assert_eq!(r.body["type"], "urn:ketang:problem:no-route");
        let r = api.send("PATCH", "/api/v1/schools", None, Some(&api.key)).await.expect(405);
        assert_eq!(r.body["type"], "urn:ketang:problem:method-not-allowed");
        let r = api.put("/api/v1/schools/sch_00000000000000000000000000", json!({"name": "x", "district": "y", "kind": "rural"})).await.expect(404);
        assert!(r.body["detail"].as_str().unwrap().contains("sch_00000000000000000000000000"));
    }

    async fn invalid_input_is_422_naming_each_field(api: Api) {
        let before = rows(api).await;
        let r = api
            .post("/api/v1/schools", json!({"name": "x".repeat(65), "district": " ", "kind": "rural", "downlinkKbps": 50, "budgetKbps": 100000001}))
            .await
            .expect(422);
        assert_eq!(r.fields(), ["name", "district", "downlinkKbps", "budgetKbps"]);
        assert_eq!(r.body["type"], "urn:ketang:problem:validation");
        let r = api.post("/api/v1/schools", json!({"name": "x", "district": "y", "kind": "castle"})).await.expect(422);
        assert_eq!(r.fields(), ["kind"]);
        assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("rural"), "lists the kinds: {:#}", r.body);
        let r = api.post("/api/v1/schools", json!({"name": "x", "district": "y"})).await.expect(422);
        assert_eq!(r.fields(), ["kind"]);
        let r = api.post("/api/v1/schools", json!({"name": "x", "district": "y", "kind": "rural", "colour": "red"})).await.expect(422);
        assert_eq!(r.fields(), ["colour"]);
        let r = api.post("/api/v1/schools", json!({"name": "a\u{0}b", "district": "y", "kind": "rural"})).await.expect(422);
        assert_eq!(r.fields(), ["name"]);
        let r = api.post("/api/v1/classrooms", json!({"schoolId": "sch_00000000000000000000000000", "name": "x"})).await.expect(422);
        assert_eq!(r.fields(), ["schoolId"]);
        let r = api.post("/api/v1/teachers", json!({"schoolId": 7, "name": "x"})).await.expect(422);
        assert_eq!(r.fields(), ["schoolId"]);

        let (teacher, rooms) = api.cast(2).await;
        let before_lessons = rows(api).await;
        let cases: Vec<(Value, Vec<&str>)> = vec![
            ({ let mut l = lesson(&teacher, &rooms[0], &[&rooms[1]]); l["end"] = json!("2030-03-04T07:00"); l }, vec!["end"]),
            ({ let mut l = lesson(&teacher, &rooms[0], &[&rooms[1]]); l["end"] = json!("2030-03-04T23:00"); l }, vec!["end"]),
            ({ let mut l = lesson(&teacher, &rooms[0], &[&rooms[1]]); l["start"] = json!("next monday"); l }, vec!["start"]),
            ({ let mut l = lesson(&teacher, &rooms[0], &[&rooms[1]]); l["timezone"] = json!("Asia/Beijing"); l }, vec!["timezone"]),
            ({ let mut l = lesson(&teacher, &rooms[0], &[&rooms[1]]); l["recurrence"] = json!({"weekdays": ["mon", "funday"], "until": "2030-04-01"}); l }, vec!["recurrence.weekdays[1]"]),
            ({ let mut l = lesson(&teacher, &rooms[0], &[&rooms[1]]); l["recurrence"] = json!({"weekdays": ["mon"], "until": "2030-02-30"}); l }, vec!["recurrence.until"]),
            ({ let mut l = lesson(&teacher, &rooms[0], &[&rooms[1]]); l["recurrence"] = json!({"weekdays": ["mon"], "until": "2030-03-01"}); l }, vec!["recurrence.until"]),
            ({ let mut l = lesson(&teacher, &rooms[0], &[&rooms[1]]); l["recurrence"] = json!({"weekdays": [], "until": "2030-04-01"}); l }, vec!["recurrence.weekdays"]),
            ({ let mut l = lesson(&teacher, &rooms[0], &[&rooms[1]]); l["recurrence"] = json!({"weekdays": ["mon"]}); l }, vec!["recurrence.until"]),
            (lesson(&teacher, &rooms[0], &[]), vec!["remoteClassroomIds"]),
            (lesson(&teacher, &rooms[0], &[&rooms[1], &rooms[1]]), vec!["remoteClassroomIds[1]"]),
            (lesson(&teacher, &rooms[0], &[&rooms[1], &rooms[0]]), vec!["remoteClassroomIds[1]"]),
            (lesson(&teacher, &rooms[0], &[&rooms[1], "cls_00000000000000000000000000"]), vec!["remoteClassroomIds[1]"]),
            (lesson("tch_00000000000000000000000000", &rooms[0], &[&rooms[1]]), vec!["teacherId"]),
            (lesson(&rooms[0], &teacher, &[&rooms[1]]), vec!["teacherId", "masterClassroomId"]),
            ({ let mut l = lesson(&teacher, &rooms[0], &[&rooms[1]]); l["mode"] = json!("broadcast"); l }, vec!["remoteClassroomIds"]),
            ({ let mut l = lesson(&teacher, &rooms[0], &[&rooms[1]]); l["title"] = json!(""); l["grade"] = json!("x".repeat(33)); l }, vec!["title", "grade"]),
            ({ let mut l = lesson(&teacher, &rooms[0], &[&rooms[1]]); l["start"] = json!("2020-03-04T08:00"); l["end"] = json!("2020-03-04T08:45"); l }, vec!["end"]),
            ({ let mut l = lesson(&teacher, &rooms[0], &[&rooms[1]]); l["record"] = json!("yes"); l }, vec!["record"]),
        ];
        for (body, fields) in cases {
            let r = api.post("/api/v1/lessons", body.clone()).await.expect(422);
            assert_eq!(r.fields(), fields, "{body:#} gave {:#}", r.body);
        }
        assert_eq!(rows(api).await, before_lessons, "refused lessons left no rows");
        let r = api.put("/api/v1/occurrences/occ_00000000000000000000000000", json!({"start": "x"})).await;
        assert_eq!(r.status, 422, "the body is checked before the lookup: {:#}", r.body);
        assert!(before.iter().zip(rows(api).await).all(|(a, b)| *a <= b));
    }

    async fn bodies_that_are_not_json_are_400_or_415(api: Api) {
        let before = rows(api).await;
        let r = api.raw("POST", "/api/v1/schools", "application/json", "{\"name\": ").await.expect(400);
        assert_eq!(r.body["type"], "urn:ketang:problem:bad-json");
        api.raw("POST", "/api/v1/schools", "application/json", "{} trailing").await.expect(400);
        let r = api.raw("POST", "/api/v1/schools", "text/plain", "{}").await.expect(415);
        assert_eq!(r.body["type"], "urn:ketang:problem:unsupported-media-type");
        api.raw("POST", "/api/v1/schools", "application/json", &"x".repeat(100 * 1024)).await.expect(413);
        let r = api.raw("POST", "/api/v1/schools", "application/json", "[1, 2]").await.expect(422);
        assert_eq!(r.fields(), [""]);
        assert_eq!(rows(api).await, before);
    }
}
