//! Schools, classrooms, teachers, API keys and the audit log over the admin API, on SQLite and
//! on PostgreSQL.

mod api_common;

use api_common::{Api, Engine};
use serde_json::json;

on_both_engines! {
    async fn schools_crud_with_bandwidth_defaults(api: Api) {
        let created = api
            .post("/api/v1/schools", json!({"name": " 东山小学 ", "district": "城关区", "kind": "rural"}))
            .await
            .expect(201);
        let id = created.id();
        assert!(id.starts_with("sch_"), "{id}");
        assert_eq!(
            created.headers.get("location").and_then(|v| v.to_str().ok()),
            Some(format!("/api/v1/schools/{id}").as_str())
        );
        let b = &created.body;
        assert_eq!(b["name"], "东山小学", "trimmed");
        assert_eq!((b["kind"].as_str(), b["downlinkKbps"].is_null()), (Some("rural"), true));
        assert_eq!(b["effectiveDownlinkKbps"], 5000);
        assert_eq!(b["effectiveUplinkKbps"], 2500);
        assert!(b["budgetKbps"].is_null());

        // The kinds of the city plan.
        for (kind, kbps) in [("central", 10000), ("high", 15000), ("kindergarten", 5000), ("vocational", 10000), ("special", 10000)] {
            let s = api
                .post("/api/v1/schools", json!({"name": kind, "district": "d", "kind": kind}))
                .await
                .expect(201);
            assert_eq!(s.body["effectiveDownlinkKbps"], kbps, "{kind}");
        }

        let got = api.get(&format!("/api/v1/schools/{id}")).await.expect(200);
        assert_eq!(got.body, created.body);

        let updated = api
            .put(
                &format!("/api/v1/schools/{id}"),
                json!({"name": "东山中心小学", "district": "城关区", "kind": "central",
                       "downlinkKbps": 8000, "budgetKbps": 40000}),
            )
            .await
            .expect(200);
        assert_eq!(updated.body["effectiveDownlinkKbps"], 8000);
        assert_eq!(updated.body["downlinkKbps"], 8000);
        assert_eq!(updated.body["effectiveUplinkKbps"], 5000, "the new kind's default");
        assert_eq!(updated.body["budgetKbps"], 40000);
        assert_eq!(updated.body["createdAt"], created.body["createdAt"]);

        let list = api.get("/api/v1/schools").await.expect(200);
        let names: Vec<&str> = list.body.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(names.len(), 6);
        assert!(names.contains(&"东山中心小学"));

        api.delete(&format!("/api/v1/schools/{id}")).await.expect(204);
        api.get(&format!("/api/v1/schools/{id}")).await.expect(404);
        api.delete(&format!("/api/v1/schools/{id}")).await.expect(404);
    }

    async fn classrooms_take_the_schools_bandwidth_unless_set(api: Api) {
        let school = api.school("西岭小学", "rural").await;
        let c = api
            .post("/api/v1/classrooms", json!({"schoolId": school, "name": "三(1)班"}))
            .await
            .expect(201);
        let id = c.id();
        assert!(id.starts_with("cls_"));
        assert_eq!(c.body["effectiveDownlinkKbps"], 5000);
        assert_eq!(c.body["effectiveUplinkKbps"], 2500);
        assert!(c.body["downlinkKbps"].is_null());

        // The school's override flows through to classrooms without their own value.
        api.put(
            &format!("/api/v1/schools/{school}"),
            json!({"name": "西岭小学", "district": "d", "kind": "rural", "downlinkKbps": 6000, "uplinkKbps": 3000}),
        )
        .await
        .expect(200);
        let c = api.get(&format!("/api/v1/classrooms/{id}")).await.expect(200);
        assert_eq!((c.body["effectiveDownlinkKbps"].as_i64(), c.body["effectiveUplinkKbps"].as_i64()), (Some(6000), Some(3000)));

        let c = api
            .put(
                &format!("/api/v1/classrooms/{id}"),
                json!({"schoolId": school, "name": "三(1)班 录播", "downlinkKbps": 4000, "uplinkKbps": 2000}),
            )
            .await
            .expect(200);
        assert_eq!(c.body["name"], "三(1)班 录播");
        assert_eq!((c.body["effectiveDownlinkKbps"].as_i64(), c.body["downlinkKbps"].as_i64()), (Some(4000), Some(4000)));

        let other = api.school("东山小学", "high").await;
        api.classroom(&other, "高一(1)班").await;
        let all = api.get("/api/v1/classrooms").await.expect(200);
        assert_eq!(all.body.as_array().unwrap().len(), 2);
        let mine = api.get(&format!("/api/v1/classrooms?schoolId={school}")).await.expect(200);
        assert_eq!(mine.body.as_array().unwrap().len(), 1);
        assert_eq!(mine.body[0]["id"], id.as_str());

        // A school with classrooms cannot go; the classroom can.
        let busy = api.delete(&format!("/api/v1/schools/{school}")).await.expect(409);
        assert_eq!(busy.body["type"], "urn:ketang:problem:in-use");
        api.delete(&format!("/api/v1/classrooms/{id}")).await.expect(204);
        api.get(&format!("/api/v1/classrooms/{id}")).await.expect(404);
        api.delete(&format!("/api/v1/schools/{school}")).await.expect(204);
    }

    async fn teachers_crud(api: Api) {
        let school = api.school("实验小学", "central").await;
        let t = api
            .post("/api/v1/teachers", json!({"schoolId": school, "name": "李老师"}))
            .await
            .expect(201);
        let id = t.id();
        assert!(id.starts_with("tch_"));
        assert_eq!(t.body["schoolId"], school.as_str());
        let t = api
            .put(&format!("/api/v1/teachers/{id}"), json!({"schoolId": school, "name": "李明 老师"}))
            .await
            .expect(200);
        assert_eq!(t.body["name"], "李明 老师");
        assert_eq!(api.get(&format!("/api/v1/teachers/{id}")).await.expect(200).body, t.body);
        let list = api.get(&format!("/api/v1/teachers?schoolId={school}")).await.expect(200);
        assert_eq!(list.body.as_array().unwrap().len(), 1);
        api.delete(&format!("/api/v1/teachers/{id}")).await.expect(204);
        api.get(&format!("/api/v1/teachers/{id}")).await.expect(404);
        assert_eq!(api.get("/api/v1/teachers").await.expect(200).body, json!([]));
    }

    async fn keys_are_shown_once_and_revocation_is_immediate(api: Api) {
        let made = api.post("/api/v1/keys", json!({"name": "教育局 王"})).await.expect(201);
        let key = made.body["key"].as_str().unwrap().to_owned();
        assert!(key.starts_with("kt_"), "{key}");
        let id = made.id();
        // The new key works; listing never shows a key.
        let r = api.send("GET", "/api/v1/schools", None, Some(&key)).await.expect(200);
        assert_eq!(r.body, json!([]));
        let list = api.get("/api/v1/keys").await.expect(200);
        assert!(!list.body.to_string().contains(&key));
        assert_eq!(list.body.as_array().unwrap().len(), 3, "bootstrap, tests, 教育局 王: {:#}", list.body);
        // Names are unique.
        let dup = api.post("/api/v1/keys", json!({"name": "教育局 王"})).await.expect(422);
        assert_eq!(dup.fields(), ["name"]);
        api.delete(&format!("/api/v1/keys/{id}")).await.expect(204);
        api.send("GET", "/api/v1/schools", None, Some(&key)).await.expect(401);
        let list = api.get("/api/v1/keys").await.expect(200);
        let revoked = list.body.as_array().unwrap().iter().find(|k| k["id"] == id.as_str()).unwrap().clone();
        assert!(revoked["revokedAt"].is_string(), "{revoked}");
        api.delete("/api/v1/keys/key_00000000000000000000000000").await.expect(404);
    }

    async fn every_write_is_audited_with_its_key_and_paged(api: Api) {
        let school = api.school("东山小学", "rural").await;
        let classroom = api.classroom(&school, "三(2)班").await;
        api.delete(&format!("/api/v1/classrooms/{classroom}")).await.expect(204);
        // A refused write leaves no entry.
        api.post("/api/v1/schools", json!({"name": "", "district": "d", "kind": "rural"})).await.expect(422);

        let page = api.get("/api/v1/audit?limit=2").await.expect(200);
        let items = page.body["items"].as_array().unwrap();
        let actions: Vec<&str> = items.iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["classroom.delete", "classroom.create"], "newest first");
        assert_eq!(items[0]["target"], classroom.as_str());
        assert_eq!(items[0]["keyName"], "tests");
        assert!(items[0]["at"].as_str().unwrap().ends_with('Z'));
        let next = page.body["next"].as_str().unwrap().to_owned();
        let rest = api.get(&format!("/api/v1/audit?limit=2&before={next}")).await.expect(200);
        let actions: Vec<&str> = rest.body["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["school.create"]);
        assert!(rest.body["next"].is_null());
        assert_eq!(rest.body["items"][0]["detail"]["name"], "东山小学");

        let about = api.get(&format!("/api/v1/audit?target={school}")).await.expect(200);
        assert_eq!(about.body["items"].as_array().unwrap().len(), 1);
        assert_eq!(api.get("/api/v1/audit?limit=0").await.expect(422).fields(), ["limit"]);
        assert_eq!(api.get("/api/v1/audit?before=nope").await.expect(422).fields(), ["before"]);
    }
}
