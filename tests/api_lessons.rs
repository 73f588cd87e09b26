//! Lessons over the admin API, on SQLite and on PostgreSQL: create, read, edit, delete; weekly
//! recurrence (with and without daylight saving time); moving, cancelling and restoring
//! occurrences; double bookings refused with 409 naming the other lesson; the timetable.

mod api_common;

use api_common::{Api, Engine};
use serde_json::{Value, json};

fn lesson(teacher: &str, master: &str, remote: &[&str], start: &str, end: &str) -> Value {
    json!({
        "title": "三年级数学：认识分数", "subject": "数学", "grade": "三年级", "mode": "dedicated",
        "teacherId": teacher, "masterClassroomId": master, "remoteClassroomIds": remote,
        "start": start, "end": end,
    })
}

fn starts(occurrences: &Value) -> Vec<String> {
    occurrences
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["start"].as_str().unwrap().to_owned())
        .collect()
}

on_both_engines! {
    async fn a_single_lesson_is_created_read_listed_and_deleted(api: Api) {
        let (teacher, rooms) = api.cast(3).await;
        let body = lesson(&teacher, &rooms[0], &[&rooms[1], &rooms[2]], "2030-03-04T08:00", "2030-03-04T08:45");
        let created = api.post("/api/v1/lessons", body).await.expect(201);
        let l = &created.body["lesson"];
        let id = l["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("les_"));
        assert_eq!(l["timezone"], "Asia/Shanghai", "the configured default");
        assert_eq!(l["start"], "2030-03-04T08:00:00+08:00");
        assert_eq!(l["end"], "2030-03-04T08:45:00+08:00");
        assert_eq!(l["remoteClassroomIds"], json!([rooms[1], rooms[2]]));
        assert_eq!((l["status"].as_str(), l["record"].as_bool()), (Some("scheduled"), Some(false)));
        assert!(l["recurrence"].is_null());
        let occ = &created.body["occurrences"];
        assert_eq!(occ.as_array().unwrap().len(), 1);
        assert_eq!(occ[0]["room"], occ[0]["id"]);
        assert_eq!((occ[0]["status"].as_str(), occ[0]["linkVersion"].as_u64()), (Some("scheduled"), Some(1)));
        assert_eq!(occ[0]["seriesDate"], "2030-03-04");

        assert_eq!(api.get(&format!("/api/v1/lessons/{id}")).await.expect(200).body, created.body);
        let list = api.get("/api/v1/lessons").await.expect(200);
        assert_eq!(list.body.as_array().unwrap().len(), 1);
        assert_eq!(list.body[0], created.body["lesson"]);
        let occs = api.get(&format!("/api/v1/lessons/{id}/occurrences")).await.expect(200);
        assert_eq!(occs.body, created.body["occurrences"]);

        // Edit the title only: same occurrence, same links.
        let mut edited = lesson(&teacher, &rooms[0], &[&rooms[1], &rooms[2]], "2030-03-04T08:00", "2030-03-04T08:45");
        edited["title"] = json!("三年级数学：分数的大小");
        edited["record"] = json!(true);
        let after = api.put(&format!("/api/v1/lessons/{id}"), edited).await.expect(200);
        assert_eq!(after.body["lesson"]["title"], "三年级数学：分数的大小");
        assert_eq!(after.body["lesson"]["record"], true);
        assert_eq!(after.body["occurrences"][0]["id"], occ[0]["id"]);
        assert_eq!(after.body["occurrences"][0]["linkVersion"], 1);

        // Classrooms used by a lesson cannot be deleted, nor its teacher.
        api.delete(&format!("/api/v1/classrooms/{}", rooms[1])).await.expect(409);
        api.delete(&format!("/api/v1/teachers/{teacher}")).await.expect(409);

        api.delete(&format!("/api/v1/lessons/{id}")).await.expect(204);
        api.get(&format!("/api/v1/lessons/{id}")).await.expect(404);
        api.get(&format!("/api/v1/occurrences/{}", occ[0]["id"].as_str().unwrap())).await.expect(404);
        api.delete(&format!("/api/v1/classrooms/{}", rooms[1])).await.expect(204);
    }

    async fn weekly_lessons_expand_in_their_time_zone(api: Api) {
        let (teacher, rooms) = api.cast(2).await;
        // Shanghai: Mondays and Wednesdays for two weeks (2030-03-04 is a Monday).
        let mut body = lesson(&teacher, &rooms[0], &[&rooms[1]], "2030-03-04T08:00:00+08:00", "2030-03-04T08:45:00+08:00");
        body["recurrence"] = json!({"weekdays": ["wed", "mon"], "until": "2030-03-13"});
        let created = api.post("/api/v1/lessons", body).await.expect(201);
        assert_eq!(
            starts(&created.body["occurrences"]),
            ["2030-03-04T08:00:00+08:00", "2030-03-06T08:00:00+08:00", "2030-03-11T08:00:00+08:00", "2030-03-13T08:00:00+08:00"]
        );
        assert_eq!(created.body["lesson"]["recurrence"], json!({"weekdays": ["mon", "wed"], "until": "2030-03-13"}));
        let ids: std::collections::HashSet<&str> = created.body["occurrences"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 4, "one room per occurrence");

        // Berlin crosses into summer time on 2030-03-31: the local time stays 09:00.
        let (teacher, rooms) = api.cast(2).await;
        let mut body = lesson(&teacher, &rooms[0], &[&rooms[1]], "2030-03-25T09:00", "2030-03-25T09:45");
        body["timezone"] = json!("Europe/Berlin");
        body["recurrence"] = json!({"weekdays": ["mon"], "until": "2030-04-08"});
        let created = api.post("/api/v1/lessons", body).await.expect(201);
        let occ = &created.body["occurrences"];
        assert_eq!(starts(occ), ["2030-03-25T09:00:00+01:00", "2030-04-01T09:00:00+02:00", "2030-04-08T09:00:00+02:00"]);
        assert_eq!(occ[1]["end"], "2030-04-01T09:45:00+02:00");
        assert_eq!(occ[1]["timezone"], "Europe/Berlin");
    }

    async fn editing_a_series_moves_its_future_occurrences_but_not_those_changed_alone(api: Api) {
        let (teacher, rooms) = api.cast(2).await;
        let mut body = lesson(&teacher, &rooms[0], &[&rooms[1]], "2030-03-04T08:00", "2030-03-04T08:45");
        body["recurrence"] = json!({"weekdays": ["mon"], "until": "2030-03-25"});
        let created = api.post("/api/v1/lessons", body.clone()).await.expect(201);
        let id = created.body["lesson"]["id"].as_str().unwrap().to_owned();
        let occ: Vec<String> = created.body["occurrences"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(occ.len(), 4);

        // Move the second on its own, cancel the third.
        let moved = api
            .put(&format!("/api/v1/occurrences/{}", occ[1]), json!({"start": "2030-03-12T14:00", "end": "2030-03-12T14:45"}))
            .await
            .expect(200);
        assert_eq!((moved.body["moved"].as_bool(), moved.body["linkVersion"].as_u64()), (Some(true), Some(2)));
        assert_eq!(moved.body["seriesDate"], "2030-03-11");
        assert_eq!(moved.body["start"], "2030-03-12T14:00:00+08:00");
        let cancelled = api.post_empty(&format!("/api/v1/occurrences/{}/cancel", occ[2])).await.expect(200);
        assert_eq!(cancelled.body["status"], "cancelled");

        // The series moves to 10:00 and gains a Wednesday.
        body["start"] = json!("2030-03-04T10:00");
        body["end"] = json!("2030-03-04T10:45");
        body["recurrence"] = json!({"weekdays": ["mon", "wed"], "until": "2030-03-25"});
        let after = api.put(&format!("/api/v1/lessons/{id}"), body).await.expect(200);
        let list = after.body["occurrences"].as_array().unwrap();
        let by_id = |oid: &str| list.iter().find(|o| o["id"] == oid).unwrap().clone();
        assert_eq!(by_id(&occ[0])["start"], "2030-03-04T10:00:00+08:00");
        assert_eq!(by_id(&occ[0])["linkVersion"], 2, "its old links are revoked");
        assert_eq!(by_id(&occ[1])["start"], "2030-03-12T14:00:00+08:00", "moved alone: kept");
        assert_eq!(by_id(&occ[2])["status"], "cancelled", "cancelled alone: kept");
        assert_eq!(list.len(), 7, "four Mondays and three Wednesdays: {:#}", after.body);
        assert!(list.iter().any(|o| o["start"] == "2030-03-06T10:00:00+08:00"));

        // Restore the cancelled one; cancel the whole series; nothing is left to restore.
        let restored = api.post_empty(&format!("/api/v1/occurrences/{}/restore", occ[2])).await.expect(200);
        assert_eq!(restored.body["status"], "scheduled");
        api.post_empty(&format!("/api/v1/occurrences/{}/restore", occ[2])).await.expect(409);
        let all = api.post_empty(&format!("/api/v1/lessons/{id}/cancel")).await.expect(200);
        assert_eq!(all.body["lesson"]["status"], "cancelled");
        assert!(all.body["occurrences"].as_array().unwrap().iter().all(|o| o["status"] == "cancelled"));
        api.post_empty(&format!("/api/v1/occurrences/{}/restore", occ[2])).await.expect(409);
        let body = lesson(&teacher, &rooms[0], &[&rooms[1]], "2030-03-04T08:00", "2030-03-04T08:45");
        api.put(&format!("/api/v1/lessons/{id}"), body).await.expect(409);
    }

    async fn double_bookings_are_refused_naming_the_other_lesson(api: Api) {
        let school = api.school("实验小学", "central").await;
        let li = api.teacher(&school, "李老师").await;
        let wang = api.teacher(&school, "王老师").await;
        let a = api.classroom(&school, "三(1)班").await;
        let b = api.classroom(&school, "三(2)班").await;
        let c = api.classroom(&school, "三(3)班").await;
        let d = api.classroom(&school, "三(4)班").await;
        let e = api.classroom(&school, "三(5)班").await;
        let f = api.classroom(&school, "三(6)班").await;
        let first = api.post("/api/v1/lessons", lesson(&li, &a, &[&b], "2030-03-04T08:00", "2030-03-04T08:45")).await.expect(201);
        let first_id = first.body["lesson"]["id"].as_str().unwrap().to_owned();

        // The same teacher, overlapping, elsewhere.
        let r = api.post("/api/v1/lessons", lesson(&li, &c, &[&d], "2030-03-04T08:30", "2030-03-04T09:15")).await.expect(409);
        assert_eq!(r.body["type"], "urn:ketang:problem:schedule-conflict");
        assert!(r.body["detail"].as_str().unwrap().contains("三年级数学"), "{:#}", r.body);
        let conflict = &r.body["conflicts"][0];
        assert_eq!((conflict["resource"].as_str(), conflict["resourceId"].as_str()), (Some("teacher"), Some(li.as_str())));
        assert_eq!(conflict["lessonId"], first_id.as_str());
        assert_eq!(conflict["occurrenceStart"], "2030-03-04T08:00:00+08:00");

        // Another teacher in a remote classroom of the first lesson.
        let r = api.post("/api/v1/lessons", lesson(&wang, &c, &[&b], "2030-03-04T08:44", "2030-03-04T09:15")).await.expect(409);
        assert_eq!((r.body["conflicts"][0]["resource"].as_str(), r.body["conflicts"][0]["resourceId"].as_str()), (Some("classroom"), Some(b.as_str())));
        // Its master classroom as a remote classroom.
        api.post("/api/v1/lessons", lesson(&wang, &c, &[&a], "2030-03-04T07:30", "2030-03-04T08:01")).await.expect(409);
        // Back to back is fine, and so is another teacher in other classrooms at the same time.
        let next = api.post("/api/v1/lessons", lesson(&li, &a, &[&b], "2030-03-04T08:45", "2030-03-04T09:30")).await.expect(201);
        api.post("/api/v1/lessons", lesson(&wang, &e, &[&f], "2030-03-04T08:00", "2030-03-04T08:45")).await.expect(201);

        // A weekly series names the first clash.
        let mut weekly = lesson(&li, &c, &[&d], "2030-02-25T08:30", "2030-02-25T09:00");
        weekly["recurrence"] = json!({"weekdays": ["mon"], "until": "2030-03-18"});
        let r = api.post("/api/v1/lessons", weekly.clone()).await.expect(409);
        assert_eq!(r.body["conflicts"][0]["start"], "2030-03-04T08:30:00+08:00");

        // Cancelling the first lesson frees its time.
        let occ = first.body["occurrences"][0]["id"].as_str().unwrap().to_owned();
        api.post_empty(&format!("/api/v1/occurrences/{occ}/cancel")).await.expect(200);
        let r = api.post("/api/v1/lessons", weekly).await.expect(409);
        assert_eq!(r.body["conflicts"][0]["lessonId"], next.body["lesson"]["id"], "only the back-to-back lesson is left in the way");
        let fits = lesson(&li, &c, &[&d], "2030-03-04T08:00", "2030-03-04T08:45");
        let taken = api.post("/api/v1/lessons", fits).await.expect(201);
        // ...and the cancelled one cannot come back now, nor can another be moved onto it.
        let r = api.post_empty(&format!("/api/v1/occurrences/{occ}/restore")).await.expect(409);
        assert_eq!(r.body["conflicts"][0]["lessonId"], taken.body["lesson"]["id"]);
        let next_occ = next.body["occurrences"][0]["id"].as_str().unwrap();
        let r = api
            .put(&format!("/api/v1/occurrences/{next_occ}"), json!({"start": "2030-03-04T08:15", "end": "2030-03-04T09:00"}))
            .await
            .expect(409);
        assert_eq!(r.body["conflicts"][0]["resource"], "teacher");
    }

    async fn the_timetable_lists_occurrences_in_a_range(api: Api) {
        let (teacher, rooms) = api.cast(2).await;
        let mut body = lesson(&teacher, &rooms[0], &[&rooms[1]], "2030-03-04T08:00", "2030-03-04T08:45");
        body["recurrence"] = json!({"weekdays": ["mon", "fri"], "until": "2030-03-29"});
        api.post("/api/v1/lessons", body).await.expect(201);
        let week = api.get("/api/v1/occurrences?from=2030-03-11&to=2030-03-18").await.expect(200);
        let entries = week.body.as_array().unwrap();
        assert_eq!(entries.len(), 2, "{:#}", week.body);
        assert_eq!(entries[0]["occurrence"]["start"], "2030-03-11T08:00:00+08:00");
        assert_eq!(entries[1]["occurrence"]["start"], "2030-03-15T08:00:00+08:00");
        assert_eq!(entries[0]["lesson"]["title"], "三年级数学：认识分数");
        assert_eq!(entries[0]["lesson"]["remoteClassroomIds"], json!([rooms[1]]));
        let other = api.get(&format!("/api/v1/occurrences?from=2030-03-11&to=2030-03-18&classroomId={}", rooms[1])).await.expect(200);
        assert_eq!(other.body.as_array().unwrap().len(), 2);
        let (t2, _) = api.cast(0).await;
        let none = api.get(&format!("/api/v1/occurrences?from=2030-03-11&to=2030-03-18&teacherId={t2}")).await.expect(200);
        assert_eq!(none.body, json!([]));
        let bad = api.get("/api/v1/occurrences?from=2030-03-18&to=2030-03-11").await.expect(422);
        assert_eq!(bad.fields(), ["to"]);
        assert_eq!(api.get("/api/v1/occurrences?from=2030-01-01&to=2030-06-01").await.expect(422).fields(), ["to"]);
        assert_eq!(api.get("/api/v1/occurrences?to=2030-06-01").await.expect(422).fields(), ["from"]);
    }
}
