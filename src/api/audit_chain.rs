//! The audit log, tamper-evident: rows are written by `audit::record` inside each write's
//! transaction, then sealed in order by the server, each one's `mac` being
//! HMAC-SHA256(audit key, previous mac ‖ the row), the key derived from the server secret
//! (never stored in the database). Editing, deleting or inserting a sealed row breaks the chain
//! there; `GET /api/v1/audit/verify` walks it and names the first broken row.
//!
//! Sealing after the fact (about a second later) keeps the hot write path free of a global
//! lock and needs no key where rows are written (the command line writes rows too); servers
//! sharing a database serialise sealing on the one `audit_chain` row.
//!
//! Purging keeps the chain verifiable: the mac of the last purged row is kept as the anchor the
//! first remaining row chains to; rows younger than 180 days are never purged.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;
use sqlx::Row;
use utoipa::ToSchema;

use super::extract::AdminKey;
use super::problem::{ApiResult, AuthErrors, Problem};
use crate::config::accounts::AUDIT_RETENTION_FLOOR;
use crate::db::Db;
use crate::state::AppState;

/// Rows sealed per transaction.
const BATCH: i64 = 500;

/// The key of the chain, derived from the server secret.
#[derive(Clone)]
pub struct ChainKey([u8; 32]);

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey(..)")
    }
}

impl ChainKey {
    /// HMAC-SHA256(secret, label): a key for this purpose only.
    pub fn derive(secret: &[u8]) -> Self {
        let mut mac = mac_with(secret);
        mac.update(b"ketang audit chain v1");
        Self(mac.finalize().into_bytes().into())
    }
}

impl ChainKey {
    /// Another key for `label`, derived from this one (the teacher portal's cookies).
    pub fn subkey(&self, label: &[u8]) -> [u8; 32] {
        let mut mac = mac_with(&self.0);
        mac.update(label);
        mac.finalize().into_bytes().into()
    }
}

fn mac_with(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// The fields of a row that the mac covers.
struct Sealed {
    id: String,
    at: i64,
    key_id: String,
    key_name: String,
    action: String,
    target: String,
    detail: Option<String>,
    source: Option<String>,
    seq: Option<i64>,
    mac: Option<String>,
}

const COLUMNS: &str = "id, at, key_id, key_name, action, target, detail, source, seq, mac";

fn sealed(r: &sqlx::any::AnyRow) -> Sealed {
    Sealed {
        id: r.get("id"),
        at: r.get("at"),
        key_id: r.get("key_id"),
        key_name: r.get("key_name"),
        action: r.get("action"),
        target: r.get("target"),
        detail: r.get("detail"),
        source: r.get("source"),
        seq: r.get("seq"),
        mac: r.get("mac"),
    }
}

/// The row's mac at position `seq` after `prev`. The fields are framed as a JSON array, so no
/// two different rows serialise alike.
fn row_mac(key: &ChainKey, prev: &str, seq: i64, row: &Sealed) -> String {
    let framed = serde_json::json!([
        seq,
        row.id,
        row.at,
        row.key_id,
        row.key_name,
        row.action,
        row.target,
        row.detail,
        row.source
    ]);
    let mut mac = mac_with(&key.0);
    mac.update(prev.as_bytes());
    mac.update(b"\n");
    mac.update(framed.to_string().as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Seals every unsealed row; returns how many.
pub async fn seal(db: &Db, key: &ChainKey) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let mut tx = db.write().await?;
        // Taking the chain row first serialises sealers (a row lock in PostgreSQL; SQLite's
        // write lock is already held).
        let head = sqlx::query("UPDATE audit_chain SET seq = seq WHERE id = 1 RETURNING seq, mac")
            .fetch_one(&mut *tx)
            .await?;
        let (mut seq, mut prev): (i64, String) = (head.get("seq"), head.get("mac"));
        let sql = format!("SELECT {COLUMNS} FROM audit WHERE seq IS NULL ORDER BY id LIMIT $1");
        let rows = sqlx::query(crate::db::assembled(sql))
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(total);
        }
        for r in &rows {
            let row = sealed(r);
            seq += 1;
            let mac = row_mac(key, &prev, seq, &row);
            sqlx::query("UPDATE audit SET seq = $1, mac = $2 WHERE id = $3")
                .bind(seq)
                .bind(&mac)
                .bind(&row.id)
                .execute(&mut *tx)
                .await?;
            prev = mac;
        }
        sqlx::query("UPDATE audit_chain SET seq = $1, mac = $2 WHERE id = 1")
            .bind(seq)
            .bind(&prev)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        total += rows.len() as u64;
        if (rows.len() as i64) < BATCH {
            return Ok(total);
        }
    }
}

/// The first row where the chain breaks.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BrokenRow {
    /// The audit entry id (`aud_...`); empty when rows at the end are missing.
    pub id: String,
    /// Its position in the chain.
    pub seq: i64,
    /// `altered` (its mac does not match its content), `missingBefore` (rows before it were
    /// removed or reordered) or `missingAtEnd` (the newest rows were removed).
    pub reason: String,
}

/// The result of a walk of the chain.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// True when every sealed row is intact.
    pub intact: bool,
    /// Rows checked.
    pub checked: u64,
    pub first_broken: Option<BrokenRow>,
}

/// Walks the sealed rows in order, recomputing each mac.
pub async fn verify(db: &Db, key: &ChainKey) -> Result<Verification, sqlx::Error> {
    let head = sqlx::query("SELECT seq, mac, purged_seq, purged_mac FROM audit_chain WHERE id = 1")
        .fetch_one(&db.pool)
        .await?;
    let head_seq: i64 = head.get("seq");
    let mut expected: i64 = head.get::<i64, _>("purged_seq") + 1;
    let mut prev: String = head.get("purged_mac");
    let mut checked = 0u64;
    let mut after = expected - 1;
    let broken = |row: &Sealed, reason: &str| BrokenRow {
        id: row.id.clone(),
        seq: row.seq.unwrap_or(0),
        reason: reason.to_owned(),
    };
    loop {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit WHERE seq IS NOT NULL AND seq > $1 ORDER BY seq LIMIT 1000"
        );
        let rows = sqlx::query(crate::db::assembled(sql))
            .bind(after)
            .fetch_all(&db.pool)
            .await?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            let row = sealed(r);
            let seq = row.seq.unwrap_or(0);
            after = seq;
            checked += 1;
            if seq != expected {
                return Ok(failed(checked, broken(&row, "missingBefore")));
            }
            if row.mac.as_deref() != Some(row_mac(key, &prev, seq, &row).as_str()) {
                return Ok(failed(checked, broken(&row, "altered")));
            }
            prev = row.mac.clone().unwrap_or_default();
            expected += 1;
        }
    }
    if expected - 1 != head_seq {
        let gone = BrokenRow {
            id: String::new(),
            seq: expected,
            reason: "missingAtEnd".to_owned(),
        };
        return Ok(failed(checked, gone));
    }
    Ok(Verification {
        intact: true,
        checked,
        first_broken: None,
    })
}

fn failed(checked: u64, row: BrokenRow) -> Verification {
    Verification {
        intact: false,
        checked,
        first_broken: Some(row),
    }
}

/// Deletes sealed rows older than `retention` (never younger than 180 days) from the start of
/// the chain, keeping the last one's mac as the anchor. Returns how many.
pub async fn purge(db: &Db, retention: Duration, now_ms: i64) -> Result<u64, sqlx::Error> {
    let keep = retention.max(AUDIT_RETENTION_FLOOR);
    let cutoff = now_ms.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
    let mut tx = db.write().await?;
    let head = sqlx::query("UPDATE audit_chain SET seq = seq WHERE id = 1 RETURNING purged_seq")
        .fetch_one(&mut *tx)
        .await?;
    let purged: i64 = head.get("purged_seq");
    // The chain is cut at its first row that is still young: rows after it stay even if old
    // (a row's `at` is its request's time, which need not grow with `seq`).
    let young = sqlx::query("SELECT MIN(seq) AS s FROM audit WHERE seq IS NOT NULL AND at >= $1")
        .bind(cutoff)
        .fetch_one(&mut *tx)
        .await?
        .get::<Option<i64>, _>("s");
    let last_sealed = sqlx::query("SELECT MAX(seq) AS s FROM audit WHERE seq IS NOT NULL")
        .fetch_one(&mut *tx)
        .await?
        .get::<Option<i64>, _>("s");
    let cut = match (young, last_sealed) {
        (Some(y), _) => y - 1,
        (None, Some(l)) => l,
        (None, None) => purged,
    };
    if cut <= purged {
        tx.commit().await?;
        return Ok(0);
    }
    let anchor = sqlx::query("SELECT mac FROM audit WHERE seq = $1")
        .bind(cut)
        .fetch_optional(&mut *tx)
        .await?
        .and_then(|r| r.get::<Option<String>, _>("mac"));
    let Some(anchor) = anchor else {
        // A gap where the cut falls: leave it for verify to report.
        tx.commit().await?;
        return Ok(0);
    };
    let done = sqlx::query("DELETE FROM audit WHERE seq IS NOT NULL AND seq <= $1 AND at < $2")
        .bind(cut)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE audit_chain SET purged_seq = $1, purged_mac = $2 WHERE id = 1")
        .bind(cut)
        .bind(anchor)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Seals new rows every second and purges old ones (and ended admin sessions) hourly, until
/// aborted.
pub fn spawn(
    db: Db,
    key: ChainKey,
    accounts: crate::config::accounts::AccountsConfig,
    clock: crate::time::Clock,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut turns = 0u64;
        loop {
            tick.tick().await;
            if let Err(e) = seal(&db, &key).await {
                tracing::warn!("cannot seal the audit log: {e}");
            }
            if turns.is_multiple_of(3600) {
                if let Err(e) = purge(&db, accounts.audit_retention, clock.now_ms()).await {
                    tracing::warn!("cannot purge the audit log: {e}");
                }
                if let Err(e) =
                    crate::accounts::session::sweep(&db, &accounts, clock.now_ms()).await
                {
                    tracing::warn!("cannot remove ended admin sessions: {e}");
                }
            }
            turns += 1;
        }
    })
}

/// Check the audit log's chain (seals pending rows first) and name the first broken row.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, description = "The result of the walk", body = Verification), AuthErrors))]
pub async fn verify_audit(
    State(state): State<AppState>,
    _key: AdminKey,
) -> ApiResult<Json<Verification>> {
    let key = state.audit_key.get().ok_or_else(Problem::internal)?;
    seal(&state.db, key).await?;
    Ok(Json(verify(&state.db, key).await?))
}
