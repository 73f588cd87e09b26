//! Attendance, on SQLite and on PostgreSQL, from real joins through the server: a teacher over
//! the signaling WebSocket with a data-channel connection (presence means media), classrooms
//! as WHIP encoders sending media. The teacher calls on one
//! classroom, loses its connection and takes it over again; the other classroom leaves and
//! comes back. `GET /api/v1/lessons/{id}/attendance` (JSON and CSV) then shows each stay, the
//! totals, the reconnection and the turn, and the absent master classroom. Stays that a
//! crashed server left open end when the room opens again.

mod api_common;

use std::time::{Duration, Instant};

use api_common::signaling::{connect, join_with_media, link_token, send};
use api_common::{Api, Engine, from_now};
use ketang_loadtest::{WhipOptions, WhipPublisher};
use serde_json::{Value, json};
use sqlx::Row;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A WHIP encoder sending media until stopped.
struct Encoder {
    stop: watch::Sender<bool>,
    task: JoinHandle<WhipPublisher>,
}

impl Encoder {
    async fn start(api: &Api, room: &str, token: &str) -> Encoder {
        let mut p = WhipPublisher::connect(
            &api.url(&format!("/whip/{room}")),
            token,
            WhipOptions::default(),
        )
        .await
        .expect("WHIP classroom");
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            p.run_until(rx, Duration::from_secs(120), None).await;
            p
        });
        Encoder { stop, task }
    }

    /// Stops sending and ends the session (`DELETE`).
    async fn leave(self) {
        let _ = self.stop.send(true);
        let p = self.task.await.expect("sender task");
        p.close().await.expect("WHIP DELETE");
    }
}

/// The participants of a room, waiting until there are `n`.
async fn participants(api: &Api, room: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rooms = api.get("/api/v1/rooms").await.expect(200).body;
        let list = rooms
            .as_array()
            .and_then(|a| a.iter().find(|r| r["room"] == room))
            .and_then(|r| r["participants"].as_array().cloned())
            .unwrap_or_default();
        if list.len() == n {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "{room} never had {n} participants: {rooms:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The attendance report, waiting until `done` holds (records are written every second).
async fn attendance_until(
    api: &Api,
    path: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = api.get(path).await.expect(200).body;
        if done(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "{what}: {r:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn person<'a>(occurrence: &'a Value, kind: &str, classroom: Option<&str>) -> &'a Value {
    occurrence["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .find(|p| p["kind"] == kind && classroom.is_none_or(|c| p["classroomId"] == c))
        .unwrap_or_else(|| panic!("no {kind} in {occurrence:#}"))
}

fn secs(v: &Value) -> u64 {
    v["totalSeconds"].as_u64().expect("totalSeconds")
}

on_both_engines! {
    async fn stays_turns_and_reconnections_of_a_lesson(api: Api) {
        let strong = api.school("实验小学", "central").await;
        let teacher = api.teacher(&strong, "李老师").await;
        let master = api.classroom(&strong, "三(1)班").await;
        let rural = api.school("山村小学", "rural").await;
        let c1 = api.classroom(&rural, "一年级").await;
        let c2 = api.classroom(&rural, "二年级").await;
        let body = json!({
            "title": "数学：分数的意义", "subject": "数学", "grade": "五年级", "mode": "dedicated",
            "teacherId": teacher, "masterClassroomId": master, "remoteClassroomIds": [c1, c2],
            "start": from_now(-60), "end": from_now(2400),
        });
        let r = api.post("/api/v1/lessons", body).await.expect(201);
        let lesson = r.body["lesson"]["id"].as_str().expect("id").to_owned();
        let occ = r.body["occurrences"][0]["id"].as_str().expect("occ").to_owned();
        let links = api.get(&format!("/api/v1/lessons/{lesson}/links")).await.expect(200).body;
        let path = format!("/api/v1/lessons/{lesson}/attendance");

        // Before anyone comes: everyone is listed, nobody attended.
        let report = api.get(&path).await.expect(200).body;
        assert_eq!(report["lessonId"], lesson.as_str());
        assert_eq!(report["occurrences"].as_array().map(Vec::len), Some(1));
        let kinds: Vec<&str> = report["occurrences"][0]["participants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["teacher", "masterClassroom", "remoteClassroom", "remoteClassroom"]);
        assert!(report["occurrences"][0]["participants"].as_array().unwrap().iter().all(|p| p["attended"] == false));

        let began = Instant::now();
        let teacher_token = link_token(&links, "teacher", None);
        let (mut t, _, _teacher_media) = join_with_media(api, &teacher_token).await;
        let e1 = Encoder::start(api, &occ, &link_token(&links, "remoteClassroom", Some(&c1))).await;
        let e2 = Encoder::start(api, &occ, &link_token(&links, "remoteClassroom", Some(&c2))).await;
        let list = participants(api, &occ, 3).await;
        let p1 = list
            .iter()
            .find(|p| p["classroom"] == c1.as_str())
            .and_then(|p| p["peerId"].as_u64())
            .expect("classroom 1's peer");

        // Classroom 1's turn: about a second on stage.
        send(&mut t, json!({"type": "callOn", "peerId": p1})).await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        send(&mut t, json!({"type": "done", "peerId": p1})).await;

        // The teacher's signaling drops and the same link takes the peer over again.
        drop(t);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (mut t, welcome) = connect(api, &teacher_token).await;
        assert_eq!(welcome["resumed"], true, "{welcome:#}");

        // Classroom 2 leaves and comes back: two stays, no reconnection (it meant to go).
        e2.leave().await;
        participants(api, &occ, 2).await;
        // Away long enough that whole seconds cannot hide the gap (stays and the elapsed time
        // are compared in whole seconds, each rounded).
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let e2 = Encoder::start(api, &occ, &link_token(&links, "remoteClassroom", Some(&c2))).await;
        participants(api, &occ, 3).await;

        // While the lesson runs: present, counted up to now.
        let live = attendance_until(api, &path, "classroom 2's second stay", |r| {
            person(&r["occurrences"][0], "remoteClassroom", Some(&c2))["intervals"]
                .as_array()
                .is_some_and(|i| i.len() == 2)
        })
        .await;
        let o = &live["occurrences"][0];
        assert_eq!(person(o, "teacher", None)["present"], true);
        assert_eq!(person(o, "remoteClassroom", Some(&c2))["present"], true);
        assert!(person(o, "remoteClassroom", Some(&c2))["lastLeftAt"].is_null());

        tokio::time::sleep(Duration::from_millis(1000)).await;
        send(&mut t, json!({"type": "leave"})).await;
        e1.leave().await;
        e2.leave().await;
        let elapsed = began.elapsed().as_secs();
        participants(api, &occ, 0).await;

        let report = attendance_until(api, &path, "everyone gone", |r| {
            r["occurrences"][0]["participants"]
                .as_array()
                .is_some_and(|a| a.iter().all(|p| p["present"] == false))
        })
        .await;
        let o = &report["occurrences"][0];
        assert_eq!(o["occurrenceId"], occ.as_str());

        let tch = person(o, "teacher", None);
        assert_eq!(tch["name"], "李老师");
        assert_eq!(tch["attended"], true);
        assert_eq!(tch["intervals"].as_array().map(Vec::len), Some(1), "one stay across the takeover: {tch:#}");
        assert_eq!(tch["reconnects"], 1, "{tch:#}");
        assert_eq!(tch["intervals"][0]["endReason"], "left");
        assert_eq!(tch["calledOn"], false);
        assert!(secs(tch) + 2 >= elapsed && secs(tch) <= elapsed + 1, "teacher {}s of {elapsed}s", secs(tch));

        let m = person(o, "masterClassroom", Some(&master));
        assert_eq!(m["name"], "实验小学 三(1)班");
        assert_eq!((m["attended"].clone(), secs(m)), (json!(false), 0));
        assert!(m["intervals"].as_array().is_some_and(Vec::is_empty));
        assert!(m["firstJoinedAt"].is_null());

        let one = person(o, "remoteClassroom", Some(&c1));
        assert_eq!(one["name"], "山村小学 一年级");
        assert_eq!(one["calledOn"], true);
        let calls = one["calls"].as_array().expect("calls");
        assert_eq!(calls.len(), 1, "{one:#}");
        assert_eq!(calls[0]["rollCall"], false);
        assert!(calls[0]["endedAt"].is_string(), "the turn ended with done");
        assert_eq!(one["reconnects"], 0);
        assert_eq!(one["intervals"].as_array().map(Vec::len), Some(1));
        assert!(secs(one) + 3 >= elapsed && secs(one) <= elapsed + 1, "classroom 1 {}s of {elapsed}s", secs(one));

        let two = person(o, "remoteClassroom", Some(&c2));
        assert_eq!(two["calledOn"], false);
        assert_eq!(two["reconnects"], 0, "leaving and coming back is no reconnection");
        let stays = two["intervals"].as_array().expect("intervals");
        assert_eq!(stays.len(), 2, "{two:#}");
        assert!(stays.iter().all(|s| s["endReason"] == "left"));
        // Each stay keeps how its media travelled: these clients have UDP only.
        assert!(stays.iter().all(|s| s["transport"] == "udp"), "{two:#}");
        // Whole seconds of each stay and of the sum: rounding apart, the same.
        let gaps: u64 = stays.iter().map(|s| s["seconds"].as_u64().unwrap()).sum();
        assert!(secs(two) >= gaps && secs(two) <= gaps + 1, "{two:#}");
        assert!(secs(two) + 1 < elapsed, "the gap is not counted: {}s of {elapsed}s", secs(two));
        assert_eq!(two["lastLeftAt"], stays[1]["leftAt"]);

        // The same as CSV: one row per participant, with the turn.
        let resp = api
            .client
            .get(api.url(&path))
            .header("authorization", format!("Bearer {}", api.key))
            .header("accept", "text/csv")
            .send()
            .await
            .expect("csv");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
        assert!(resp.headers()["content-disposition"].to_str().unwrap().contains(".csv"));
        let text = resp.text().await.expect("body");
        let lines: Vec<&str> = text.trim_start_matches('\u{feff}').lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[0].starts_with("occurrence_id,series_date,start,end,kind,name,"));
        let row = lines.iter().find(|l| l.contains("山村小学 一年级")).expect("classroom 1's row");
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells[4], "remoteClassroom");
        assert_eq!(cells[7], "yes", "attended: {row}");
        assert_eq!(cells[13], "yes", "called on: {row}");
        assert_eq!(cells[11], secs(one).to_string());
        let master_row = lines.iter().find(|l| l.contains("三(1)班")).expect("master row");
        assert!(master_row.contains(",no,no,,,0,0,no,0,"), "{master_row}");

        // One occurrence by id; errors as problems.
        let one_occ = api.get(&format!("{path}?occurrence={occ}")).await.expect(200).body;
        assert_eq!(one_occ["occurrences"].as_array().map(Vec::len), Some(1));
        let r = api.get(&format!("{path}?occurrence=nonsense")).await.expect(422);
        assert_eq!(r.fields(), ["occurrence"]);
        api.get(&format!("{path}?occurrence=occ_00000000000000000000000000")).await.expect(404);
        api.get("/api/v1/lessons/les_00000000000000000000000000/attendance").await.expect(404);
        api.send("GET", &path, None, None).await.expect(401);
    }

    async fn stays_a_crashed_server_left_open_end_when_read_or_reopened(api: Api) {
        let (teacher, rooms) = api.cast(2).await;
        // Weekly, every day for a week: only the occurrence that has begun is listed.
        let tz = jiff::tz::TimeZone::get("Asia/Shanghai").expect("tz");
        let until = jiff::Timestamp::now().to_zoned_datetime(tz).date().checked_add(jiff::Span::new().days(8)).expect("date");
        let body = json!({
            "title": "科学", "subject": "科学", "grade": "三年级", "mode": "dedicated",
            "teacherId": teacher, "masterClassroomId": rooms[0], "remoteClassroomIds": [rooms[1]],
            "start": from_now(-60), "end": from_now(1800),
            "recurrence": {"weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "until": until.to_string()},
        });
        let r = api.post("/api/v1/lessons", body).await.expect(201);
        let lesson = r.body["lesson"]["id"].as_str().expect("id").to_owned();
        assert!(r.body["occurrences"].as_array().is_some_and(|a| a.len() > 1));
        let occ = r.body["occurrences"][0]["id"].as_str().expect("occ").to_owned();
        let path = format!("/api/v1/lessons/{lesson}/attendance");

        // Another server's stays: one whose heartbeats stopped two minutes ago, one fresh.
        let now = jiff::Timestamp::now().as_millisecond();
        let pool = &api.server.state.db.pool;
        for (participant, role, classroom, joined, seen) in [
            ("teacher:李老师", "teacher", None, now - 600_000, now - 120_000),
            (&*format!("classroom:{}", rooms[1]), "classroom", Some(rooms[1].as_str()), now - 300_000, now - 5_000),
        ] {
            sqlx::query(
                "INSERT INTO attendance_intervals (occurrence_id, participant, joined_at, role, name, \
                 classroom_id, left_at, end_reason, reconnects, last_seen_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, 0, $7)",
            )
            .bind(&occ)
            .bind(participant)
            .bind(joined)
            .bind(role)
            .bind("在别的服务器")
            .bind(classroom)
            .bind(seen)
            .execute(pool)
            .await
            .expect("insert");
        }
        let report = api.get(&path).await.expect(200).body;
        assert_eq!(report["occurrences"].as_array().map(Vec::len), Some(1), "only the occurrence that began");
        let o = &report["occurrences"][0];
        let tch = person(o, "teacher", None);
        assert_eq!(tch["present"], false);
        assert_eq!(tch["intervals"][0]["endReason"], "lost");
        assert!(tch["intervals"][0]["transport"].is_null(), "a row from before it was kept");
        assert_eq!(secs(tch), 480, "ended at its last heartbeat");
        assert_eq!(person(o, "remoteClassroom", Some(&rooms[1]))["present"], true, "fresh: still there");

        // The room opens here: the stale-looking fresh stay belonged to a run that is gone.
        let links = api.get(&format!("/api/v1/lessons/{lesson}/links")).await.expect(200).body;
        let (_ws, _, _media) = join_with_media(api, &link_token(&links, "masterClassroom", None)).await;
        let report = attendance_until(api, &path, "the old stay closed", |r| {
            person(&r["occurrences"][0], "remoteClassroom", None)["present"] == false
        })
        .await;
        let o = &report["occurrences"][0];
        let old = person(o, "remoteClassroom", Some(&rooms[1]));
        assert_eq!(old["intervals"][0]["endReason"], "lost");
        assert_eq!(secs(old), 295);
        let m = person(o, "masterClassroom", Some(&rooms[0]));
        assert_eq!((m["attended"].clone(), m["present"].clone()), (json!(true), json!(true)));
        let row = sqlx::query("SELECT left_at, end_reason FROM attendance_intervals WHERE participant = $1")
            .bind(format!("classroom:{}", rooms[1]))
            .fetch_one(pool)
            .await
            .expect("row");
        assert_eq!(row.get::<Option<i64>, _>("left_at"), Some(now - 5_000));
        assert_eq!(row.get::<Option<String>, _>("end_reason").as_deref(), Some("lost"));
    }
}

/// A server that stops ends the stays in its rooms (`shutdown`) before it closes the
/// database. SQLite only: the stored rows are read after the server is gone, from its file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_ends_the_stays_in_its_rooms() {
    let api = Api::start(Engine::Sqlite).await;
    let (teacher, rooms) = api.cast(1).await;
    let body = json!({
        "title": "音乐", "subject": "音乐", "grade": "一年级", "mode": "master",
        "teacherId": teacher, "masterClassroomId": rooms[0], "remoteClassroomIds": [],
        "start": from_now(-60), "end": from_now(1800),
    });
    let r = api.post("/api/v1/lessons", body).await.expect(201);
    let lesson = r.body["lesson"]["id"].as_str().expect("id").to_owned();
    let links = api
        .get(&format!("/api/v1/lessons/{lesson}/links"))
        .await
        .expect(200)
        .body;
    let (_ws, _, _media) = join_with_media(&api, &link_token(&links, "teacher", None)).await;
    let room = r.body["occurrences"][0]["id"]
        .as_str()
        .expect("occ")
        .to_owned();
    let encoder = Encoder::start(&api, &room, &link_token(&links, "masterClassroom", None)).await;
    let path = format!("/api/v1/lessons/{lesson}/attendance");
    attendance_until(&api, &path, "both stays", |r| {
        let o = &r["occurrences"][0];
        person(o, "teacher", None)["present"] == true
            && person(o, "masterClassroom", None)["present"] == true
    })
    .await;

    let config = api.server.state.config.clone();
    api.server.shutdown().await.expect("orderly shutdown");
    let db = ketang::db::Db::connect(&ketang::db::effective_url(&config))
        .await
        .expect("the database file");
    let rows = sqlx::query(
        "SELECT participant, left_at, end_reason FROM attendance_intervals ORDER BY participant",
    )
    .fetch_all(&db.pool)
    .await
    .expect("rows");
    assert_eq!(rows.len(), 2);
    // Both were there until the server stopped: the task's last write says so.
    assert_eq!(
        rows[0].get::<String, _>("participant"),
        format!("classroom:{}", rooms[0])
    );
    assert!(rows[0].get::<Option<i64>, _>("left_at").is_some());
    assert_eq!(
        rows[0].get::<Option<String>, _>("end_reason").as_deref(),
        Some("shutdown")
    );
    let _ = encoder.stop.send(true);
    let rows = &rows[1..];
    assert_eq!(rows[0].get::<String, _>("participant"), "teacher:李老师");
    assert!(rows[0].get::<Option<i64>, _>("left_at").is_some());
    // Sent away with `bye: shutdown`: the session leaves for that reason.
    assert_eq!(
        rows[0].get::<Option<String>, _>("end_reason").as_deref(),
        Some("shutdown")
    );
    db.close().await;
}
