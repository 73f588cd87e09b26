//! Shared application state: what every HTTP handler and signaling session can reach.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use dashmap::DashMap;
use ketang_sfu::{PeerId, RoomId};

use crate::auth::{RoomClaims, TokenAuthority, TokenError};
use crate::config::Config;
use crate::media::MediaPlane;

/// A WHIP or WHEP session, addressed by its resource URL.
#[derive(Debug, Clone)]
pub struct HttpSession {
    pub peer: PeerId,
    pub room: RoomId,
    pub shard: usize,
}

pub struct AppInner {
    pub config: Config,
    pub tokens: TokenAuthority,
    pub media: MediaPlane,
    next_peer: AtomicU64,
    /// Live signaling sessions by token id, to replace a session when its link joins again.
    pub sessions: DashMap<String, PeerId>,
    /// WHIP and WHEP sessions by resource id.
    pub http_sessions: DashMap<String, HttpSession>,
    pub shutting_down: AtomicBool,
    pub started: Instant,
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
    pub fn new(config: Config, tokens: TokenAuthority, media: MediaPlane) -> Self {
        AppState(Arc::new(AppInner {
            config,
            tokens,
            media,
            next_peer: AtomicU64::new(1),
            sessions: DashMap::new(),
            http_sessions: DashMap::new(),
            shutting_down: AtomicBool::new(false),
            started: Instant::now(),
        }))
    }

    pub fn next_peer_id(&self) -> PeerId {
        PeerId(self.next_peer.fetch_add(1, Ordering::Relaxed))
    }

    /// Checks a room token now.
    pub fn verify(
        &self,
        token: Option<&str>,
        room: Option<&RoomId>,
    ) -> Result<RoomClaims, TokenError> {
        let token = token.filter(|t| !t.is_empty()).ok_or(TokenError::Missing)?;
        self.tokens.verify(token, room, SystemTime::now())
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
