//! The audit log is tamper-evident (issue 18 item 4): each row is chained to the previous by
//! HMAC-SHA256 with a key derived from the server secret; editing or deleting one row directly
//! in the database makes `GET /api/v1/audit/verify` name it; rows younger than 180 days are
//! never purged.

mod api_common;

use std::time::Duration;

use api_common::{Api, Engine};
use ketang::api::audit::{Audit, record};
use ketang::api::audit_chain::{ChainKey, purge, seal, verify};
use ketang::api::keys::KeyInfo;
use ketang::db::ids::ApiKeyId;
use serde_json::json;

const DAY_MS: i64 = 24 * 3600 * 1000;

on_both_engines! {
    async fn editing_or_deleting_a_row_is_named_by_verify(api: Api) {
        for i in 0..6 {
            api.school(&format!("第{i}中学"), "central").await;
        }
        let v = api.get("/api/v1/audit/verify").await.expect(200);
        assert_eq!(v.body["intact"], true, "{}", v.body);
        assert_eq!(v.body["checked"], 6);
        let items = api.get("/api/v1/audit").await.expect(200).body["items"].clone();
        // Newest first: the third school's row, in the middle of the chain.
        let victim = items[3]["id"].as_str().unwrap().to_owned();
        let pool = &api.server.state.db.pool;
        sqlx::query("UPDATE audit SET key_name = 'someone else' WHERE id = $1")
            .bind(&victim)
            .execute(pool)
            .await
            .unwrap();
        let v = api.get("/api/v1/audit/verify").await.expect(200);
        assert_eq!(v.body["intact"], false);
        assert_eq!(v.body["firstBroken"]["id"], victim.as_str(), "{}", v.body);
        assert_eq!(v.body["firstBroken"]["reason"], "altered");
        // Forging the mac does not help without the server's key.
        sqlx::query("UPDATE audit SET mac = $1 WHERE id = $2")
            .bind("0".repeat(64))
            .bind(&victim)
            .execute(pool)
            .await
            .unwrap();
        let v = api.get("/api/v1/audit/verify").await.expect(200);
        assert_eq!(v.body["firstBroken"]["id"], victim.as_str());

        // Deleting a row: the next one is named.
        let deleted = items[1]["id"].as_str().unwrap().to_owned();
        let next = items[0]["id"].as_str().unwrap().to_owned();
        sqlx::query("DELETE FROM audit WHERE id = $1 OR id = $2")
            .bind(&deleted)
            .bind(&victim)
            .execute(pool)
            .await
            .unwrap();
        let v = api.get("/api/v1/audit/verify").await.expect(200);
        assert_eq!(v.body["firstBroken"]["id"], items[2]["id"], "{}", v.body);
        assert_eq!(v.body["firstBroken"]["reason"], "missingBefore");
        // Deleting the newest rows is seen too.
        sqlx::query("DELETE FROM audit WHERE seq >= (SELECT seq FROM audit WHERE id = $1)")
            .bind(items[2]["id"].as_str().unwrap())
            .execute(pool)
            .await
            .unwrap();
        let _ = next;
        let v = api.get("/api/v1/audit/verify").await.expect(200);
        assert_eq!(v.body["firstBroken"]["reason"], "missingAtEnd", "{}", v.body);
    }

    async fn purging_keeps_six_months_and_the_chain(api: Api) {
        let state = &api.server.state;
        let now = state.clock.now_ms();
        let who = |at_ms| KeyInfo { id: ApiKeyId::from_db("key_test".into()), name: "t".into(), at_ms };
        let mut conn = state.db.pool.acquire().await.unwrap();
        for (age_days, n) in [(400, 2), (181, 1), (179, 2), (0, 2)] {
            for i in 0..n {
                let entry = Audit::new("test.row", format!("{age_days}-{i}")).detail(json!({"i": i}));
                record(&mut conn, &who(now - age_days * DAY_MS - 1000 + i), entry).await.unwrap();
            }
        }
        drop(conn);
        let key = state.audit_key.get().unwrap();
        seal(&state.db, key).await.unwrap();
        // A retention below the floor is raised to 180 days.
        let purged = purge(&state.db, Duration::from_secs(10 * 86400), now).await.unwrap();
        assert_eq!(purged, 3);
        let left: Vec<String> = sqlx::query_scalar("SELECT target FROM audit ORDER BY seq")
            .fetch_all(&state.db.pool)
            .await
            .unwrap();
        assert_eq!(left, ["179-0", "179-1", "0-0", "0-1"]);
        let v = verify(&state.db, key).await.unwrap();
        assert!(v.intact, "{v:?}");
        assert_eq!(v.checked, 4);
        // Another server's key does not verify this chain.
        let other = verify(&state.db, &ChainKey::derive(b"another server's secret, 32 bytes")).await.unwrap();
        assert!(!other.intact);
    }
}
