//! A classroom's network as the schedule configures it: its downlink and uplink (its own
//! values, else its school's, else the default of the school's kind) and its school's shared
//! budget. The media plane turns these into per-peer caps (`media::Budgets`).

use sqlx::AnyConnection;

use super::model::SchoolKind;
use crate::media::ClassroomLink;

#[derive(Debug, sqlx::FromRow)]
struct Row {
    school_id: String,
    kind: String,
    classroom_down: Option<i32>,
    classroom_up: Option<i32>,
    school_down: Option<i32>,
    school_up: Option<i32>,
    budget_kbps: Option<i32>,
}

/// The link of a classroom; `None` if the schedule does not know the classroom (a room link
/// minted by hand may name any classroom id).
pub async fn classroom_link(
    conn: &mut AnyConnection,
    classroom: &str,
) -> Result<Option<ClassroomLink>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT s.id AS school_id, s.kind AS kind, c.downlink_kbps AS classroom_down, \
         c.uplink_kbps AS classroom_up, s.downlink_kbps AS school_down, \
         s.uplink_kbps AS school_up, s.budget_kbps AS budget_kbps \
         FROM classrooms c JOIN schools s ON s.id = c.school_id WHERE c.id = $1",
    )
    .bind(classroom)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| {
        // Only API-checked words are stored.
        let kind: SchoolKind = r.kind.parse().unwrap_or(SchoolKind::Rural);
        let down = r
            .classroom_down
            .or(r.school_down)
            .unwrap_or_else(|| kind.default_downlink_kbps());
        let up = r
            .classroom_up
            .or(r.school_up)
            .unwrap_or_else(|| kind.default_uplink_kbps());
        ClassroomLink {
            school: r.school_id,
            down_bps: Some(kbps(down)),
            up_bps: Some(kbps(up)),
            school_budget_bps: r.budget_kbps.map(kbps),
        }
    }))
}

fn kbps(k: i32) -> u64 {
    u64::try_from(k).unwrap_or(0) * 1000
}
