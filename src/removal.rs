//! Removing a participant for good (issue 13): the removal binds the participant's room link
//! (its `jti`) for the link's lifetime, on every entry point (`/ws`, WHIP, WHEP), ends every
//! live session of the link, and is kept in the database (migrations/0004_removed_links.sql)
//! so that neither the room emptying nor a restart lets the link back in. Only the teacher's
//! re-admission or the link's expiry lifts it.

use ketang_sfu::{LeaveReason, PeerId, RoomId};
use sqlx::Row;

use crate::media::{Identity, Removed};
use crate::state::AppState;

const UPSERT: &str = "INSERT INTO removed_links \
     (room, link, peer_id, name, removed_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (room, link) DO UPDATE SET peer_id = excluded.peer_id, \
     removed_at = excluded.removed_at";

impl AppState {
    /// Bars `identity`'s link from its room and ends all its sessions there. `peer` is the
    /// peer that was removed (the one the teacher's page names for re-admission).
    pub async fn remove_link(&self, peer: PeerId, identity: Identity) {
        let room = identity.room.clone();
        let link = identity.link.clone();
        let now_ms = self.clock.now_ms_u64();
        let removed = Removed { peer, identity };
        if self.media.people.bar(removed.clone(), now_ms / 1000)
            && let Err(e) = self.save_removal(&removed, now_ms).await
        {
            // The bar holds in memory; only a restart would forget it.
            tracing::warn!(error = %e, %room, "cannot store a removal; it lasts until restart");
        }
        for p in self.media.people.peers_of_link(&room, &link) {
            self.media.remove_peer(&room, p, LeaveReason::Removed);
        }
    }

    /// Ends the sessions in `room` of links older than `version` (after a reissue).
    pub fn end_revoked(&self, room: &RoomId, version: u32) -> usize {
        let peers = self.media.people.revoked_in(room, version);
        for p in &peers {
            let told = self.media.registry.get(p).is_some_and(|tx| {
                tx.send(crate::media::PeerSignal::Close(
                    crate::signaling::protocol::ByeReason::LinkRevoked,
                ))
            });
            // A peer without a session (its socket dropped) is taken out directly.
            if !told {
                self.media.remove_peer(room, *p, LeaveReason::Removed);
            }
        }
        peers.len()
    }

    /// Lets a removed link in again; false if `peer` was not removed from `room`.
    pub async fn readmit_link(&self, room: &RoomId, peer: PeerId) -> bool {
        let Some(link) = self.media.people.readmit(room, peer) else {
            return false;
        };
        let deleted = sqlx::query("DELETE FROM removed_links WHERE room = $1 AND link = $2")
            .bind(room.as_str())
            .bind(&link)
            .execute(&self.db.pool)
            .await;
        if let Err(e) = deleted {
            tracing::warn!(error = %e, %room, "cannot delete a stored removal");
        }
        true
    }

    async fn save_removal(&self, r: &Removed, now_ms: u64) -> Result<(), sqlx::Error> {
        let expires_ms = r.identity.expires.saturating_mul(1000);
        sqlx::query(UPSERT)
            .bind(r.identity.room.as_str())
            .bind(&r.identity.link)
            .bind(i64::try_from(r.peer.0).unwrap_or(i64::MAX))
            .bind(&r.identity.name)
            .bind(i64::try_from(now_ms).unwrap_or(i64::MAX))
            .bind(i64::try_from(expires_ms).unwrap_or(i64::MAX))
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// At start: the stored removals whose links are still valid bar them again; the others
    /// are deleted. Returns how many were restored.
    pub async fn restore_removals(&self) -> Result<usize, sqlx::Error> {
        let now_ms = self.clock.now_ms();
        sqlx::query("DELETE FROM removed_links WHERE expires_at < $1")
            .bind(now_ms)
            .execute(&self.db.pool)
            .await?;
        let rows = sqlx::query("SELECT room, link, peer_id, name, expires_at FROM removed_links")
            .fetch_all(&self.db.pool)
            .await?;
        let mut restored = 0;
        let mut highest = 0;
        for row in rows {
            let room: String = row.try_get("room")?;
            // A row this server could not have written is skipped, not fatal.
            let Ok(room) = RoomId::new(&room) else {
                continue;
            };
            let peer: i64 = row.try_get("peer_id")?;
            let expires: i64 = row.try_get("expires_at")?;
            let identity = Identity {
                link: row.try_get("link")?,
                room,
                name: row.try_get("name")?,
                expires: u64::try_from(expires / 1000).unwrap_or(0),
                version: None,
            };
            let peer = u64::try_from(peer).unwrap_or(0);
            highest = highest.max(peer);
            let removed = Removed {
                peer: PeerId(peer),
                identity,
            };
            if self
                .media
                .people
                .bar(removed, self.clock.now_ms_u64() / 1000)
            {
                restored += 1;
            }
        }
        // Re-admission names the removed peer by id: new peers must not reuse those ids.
        self.peer_ids_above(highest);
        Ok(restored)
    }
}
