//! Shared application state: what every HTTP handler and signaling session can reach.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use dashmap::DashMap;
use ketang_sfu::{PeerId, RoomId};

use crate::auth::{RoomClaims, TokenAuthority, TokenError};
use crate::config::Config;
use crate::db::Db;
use crate::db::ids::OccurrenceId;
use crate::media::MediaPlane;
use crate::schedule::model::OccurrenceStatus;
pub use crate::time::Clock;

/// A WHIP or WHEP session, addressed by its resource URL.
#[derive(Debug, Clone)]
pub struct HttpSession {
    pub peer: PeerId,
    pub room: RoomId,
    pub shard: usize,
    /// The room link (token id) it was opened with, and whether it publishes (WHIP).
    pub link: String,
    pub publishes: bool,
}

pub struct AppInner {
    pub config: Config,
    pub tokens: TokenAuthority,
    pub media: MediaPlane,
    /// The schedule database.
    pub db: Db,
    /// The clock of lesson windows (token checks, links, the scheduler).
    pub clock: Clock,
    next_peer: AtomicU64,
    /// Live signaling sessions by token id, to replace a session when its link joins again.
    pub sessions: DashMap<String, PeerId>,
    /// WHIP and WHEP sessions by resource id.
    pub http_sessions: DashMap<String, HttpSession>,
    pub shutting_down: AtomicBool,
    /// The audit chain's key (`api::audit_chain`), set at start from the server secret.
    pub audit_key: std::sync::OnceLock<crate::api::audit_chain::ChainKey>,
    pub started: Instant,
    /// The resource library and this server's live recordings.
    pub library: crate::library::Library,
    /// What `/metrics` reports besides the shards' own counters.
    pub metrics: crate::metrics::Metrics,
    /// The embedded TURN server, once started (not at all when off or its port is taken).
    pub turn: std::sync::OnceLock<crate::turn::TurnServer>,
}

/// Cheap to clone; handed to every handler.
#[derive(Clone)]
pub struct AppState(pub Arc<AppInner>);

impl std::ops::Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl AppState {
    pub fn new(config: Config, tokens: TokenAuthority, media: MediaPlane, db: Db) -> Self {
        let library = crate::library::Library::detached(&rand::random::<[u8; 32]>());
        Self::with_library(config, tokens, media, db, library, Clock::default())
    }

    /// A state with the server's library (`new` gets one with nothing behind it).
    pub fn with_library(
        config: Config,
        tokens: TokenAuthority,
        media: MediaPlane,
        db: Db,
        library: crate::library::Library,
        clock: Clock,
    ) -> Self {
        AppState(Arc::new(AppInner {
            config,
            tokens,
            media,
            db,
            clock,
            next_peer: AtomicU64::new(1),
            sessions: DashMap::new(),
            http_sessions: DashMap::new(),
            shutting_down: AtomicBool::new(false),
            audit_key: std::sync::OnceLock::new(),
            started: Instant::now(),
            library,
            metrics: crate::metrics::Metrics::default(),
            turn: std::sync::OnceLock::new(),
        }))
    }

    /// The ICE servers (the embedded TURN server) for a participant; none when it is off.
    pub fn ice_servers(&self, peer: &str) -> Vec<crate::turn::IceServer> {
        self.turn
            .get()
            .map(|t| t.ice_servers(peer))
            .unwrap_or_default()
    }

    pub fn next_peer_id(&self) -> PeerId {
        PeerId(self.next_peer.fetch_add(1, Ordering::Relaxed))
    }

    /// New peer ids start above `id` (ids of a previous run still in use).
    pub fn peer_ids_above(&self, id: u64) {
        self.next_peer
            .fetch_max(id.saturating_add(1), Ordering::Relaxed);
    }

    /// Checks a room token now.
    pub fn verify(
        &self,
        token: Option<&str>,
        room: Option<&RoomId>,
    ) -> Result<RoomClaims, TokenError> {
        let token = token.filter(|t| !t.is_empty()).ok_or(TokenError::Missing)?;
        self.tokens.verify(token, room, self.clock.now())
    }

    /// Checks a room token now and, for a lesson link (one with the `lesson` claim), that its
    /// occurrence still exists, is neither cancelled nor ended, and that the link is of the
    /// occurrence's current version. Every entry point that takes a room token uses this.
    pub async fn admit(
        &self,
        token: Option<&str>,
        room: Option<&RoomId>,
    ) -> Result<RoomClaims, TokenError> {
        let claims = self.verify(token, room)?;
        let Some(occurrence) = &claims.lesson else {
            return Ok(claims);
        };
        // A lesson claim that is not an occurrence id cannot name a stored occurrence.
        if OccurrenceId::parse(occurrence).is_none() {
            return Err(TokenError::Revoked);
        }
        let state = crate::schedule::store::admission_state(&self.db.pool, occurrence)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "cannot check a lesson link against the schedule");
                TokenError::Unavailable
            })?;
        match state {
            None => Err(TokenError::Revoked),
            Some((OccurrenceStatus::Cancelled, _)) => Err(TokenError::LessonCancelled),
            Some((OccurrenceStatus::Ended, _)) => Err(TokenError::LessonEnded),
            Some((OccurrenceStatus::Scheduled, version)) if claims.lv == Some(version) => {
                Ok(claims)
            }
            Some((OccurrenceStatus::Scheduled, _)) => Err(TokenError::Revoked),
        }
    }

    /// The limits a peer joins with: for a classroom the schedule knows, its configured
    /// downlink and uplink and its share of the school budget (registered with the media
    /// plane's budgets, which re-split them as classrooms come, go or are called on). Without
    /// a known classroom, or if the schedule cannot be read, none: the estimate alone decides.
    pub async fn peer_caps(&self, peer: PeerId, claims: &RoomClaims) -> ketang_sfu::PeerCaps {
        let Some(classroom) = claims.classroom.as_ref() else {
            return Default::default();
        };
        if claims.role != ketang_sfu::Role::Classroom {
            return Default::default();
        }
        let link = match self.db.pool.acquire().await {
            Ok(mut conn) => {
                crate::schedule::network::classroom_link(&mut conn, classroom.as_str()).await
            }
            Err(e) => Err(e),
        };
        match link {
            Ok(Some(link)) => self.media.budgets.admit(peer, claims.room.clone(), link),
            Ok(None) => Default::default(),
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cannot read the classroom's link; no caps");
                Default::default()
            }
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}
