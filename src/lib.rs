//! # ketang: the server
//!
//! Live "three classrooms" lessons (专递课堂, 名师课堂, 名校网络课堂): a teacher's classroom and
//! remote classrooms exchange audio and video through a selective forwarding unit, watchers
//! join over WebSocket signaling or WHEP, encoders publish over WHIP.
//!
//! ## Layout and data flow
//!
//! ```text
//! HTTP (axum) ── http::router ──┬─ pages: /, /r/{room}, /admin, /static, /healthz
//!                               ├─ /api/v1 ── api (admin REST, OpenAPI) ── db (sqlx: SQLite | PostgreSQL)
//!                               ├─ /ws ── signaling::session (one actor per connection)
//!                               └─ /whip, /whep ── http::whip
//!                                       │ ShardCommand (join, offer, answer, leave)
//!                                       ▼
//!                               media::MediaPlane ── room → shard directory (DashMap)
//!                                       │
//!             shard thread i: UDP socket i ⇄ ketang_sfu::Sfu (sans-IO, owns its rooms)
//!                                       │ SfuEvent
//!                                       ▼
//!                               PeerRegistry (DashMap<PeerId, channel>) → sessions
//! ```
//!
//! Room tokens (`auth`) gate every entry point, checked against the lesson schedule
//! (`schedule`, `AppState::admit`); the scheduler task warns and closes lesson rooms as their
//! windows end. `config` is data with defaults, loaded from TOML and `KETANG_*` environment
//! variables.

pub mod accounts;
pub mod api;
pub mod attendance;
pub mod auth;
pub mod cert;
pub mod cli;
pub mod config;
pub mod db;
pub mod http;
pub mod ingest;
pub mod join;
pub mod library;
pub mod media;
pub mod metrics;
pub mod oidc;
pub mod private;
pub mod recording;
pub mod removal;
pub mod room_signal;
pub mod schedule;
pub mod server;
pub mod shutdown;
pub mod signaling;
pub mod state;
pub mod telemetry;
pub mod time;
pub mod turn;
