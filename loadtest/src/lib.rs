//! WebRTC test clients and the load generator for Ketang, built on webrtc-rs — an
//! implementation independent of the server's str0m, so interop bugs cannot cancel out.
//!
//! Used by the server's integration tests and by the `ketang-loadtest` binary:
//!
//! * [`WhipPublisher`] (`whip`): publishes synthetic Opus + VP8 to `POST /whip/{room}` like
//!   a teacher's or classroom's browser, and counts what it sent.
//! * [`WhepViewer`] (`whep`): plays `POST /whep/{room}` like a student's browser and counts
//!   what arrived: packets, sequence gaps, keyframes, frames, one-way latency.
//! * [`media`]: the synthetic media. No codec library is needed; every frame is a
//!   syntactically valid Opus packet or VP8 frame carrying a frame counter and a send
//!   timestamp after its codec header (layout documented there), which is what makes
//!   end-to-end loss and latency measurable.
//! * [`stats`]: the exact receive-side accounting of the WHEP viewer (functional tests).
//! * [`send`]: synthetic media onto a peer connection (one layer or simulcast q/h/f), shared
//!   by the WHIP publisher and the signaling client.
//! * [`ws`]: [`ws::WsClient`], a WebSocket signaling client (docs/protocol.md §4): joins a
//!   room like the browser app, publishes, and receives tracks identified by the server
//!   offers' mid → {peerId, trackId, kind, source} map; the polite side of glare.
//! * [`load`]: the load generator (`ketang-loadtest run`): scenarios `broadcast`, `dedicated`
//!   and `master`, ramp, measurement window, constant-memory receive statistics
//!   (`hdrhistogram` latency, loss before/after retransmission, time to first frame, W3C
//!   freezes), server and generator CPU from `/proc`, a table and a JSON report.
//! * [`live`]: the run-wide packet and byte counters behind rates and the progress bar.
//! * [`data_peer`]: [`data_peer::DataPeer`], a data-channel-only connection for a caller that
//!   speaks the signaling protocol itself.
//!
//! The WHIP and WHEP clients follow `docs/protocol.md` §6: non-trickle (the offer is sent after ICE
//! gathering completes), `Content-Type: application/sdp`, `Authorization: Bearer TOKEN`,
//! `201 Created` with the answer and a `Location` (relative or absolute) that `close()`
//! DELETEs. HTTP failures surface as [`ClientError::Http`] with status and body.
//!
//! The clients bind one explicit UDP address, `127.0.0.1:0` by default
//! ([`ClientOptions::bind_addr`]): webrtc-rs expands a wildcard address to every
//! non-loopback interface, which is not what a loopback test wants.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ketang_loadtest::ClientError> {
//! use ketang_loadtest::{WhepOptions, WhepViewer, WhipOptions, WhipPublisher};
//! use std::time::Duration;
//!
//! let mut teacher =
//!     WhipPublisher::connect("http://127.0.0.1:8080/whip/room1", "TEACHER", WhipOptions::default())
//!         .await?;
//! let viewer =
//!     WhepViewer::connect("http://127.0.0.1:8080/whep/room1", "VIEWER", WhepOptions::default())
//!         .await?;
//! let sent = teacher.run_for(Duration::from_secs(3)).await;
//! let got = viewer.stats();
//! println!("sent {} video frames, received {}", sent.video.frames, got.video.frames);
//! viewer.close().await?;
//! teacher.close().await?;
//! # Ok(())
//! # }
//! ```

mod clip;
pub mod data_peer;
pub mod error;
pub mod live;
pub mod load;
mod loss;
pub mod media;
pub mod send;
mod signaling;
pub mod stats;
pub mod whep;
pub mod whip;
pub mod ws;

pub use error::ClientError;
pub use media::MediaKind;
pub use signaling::{ClientOptions, VideoCodecs, ice_servers_from_links};
pub use stats::{LatencySummary, ReceiveStats};
pub use whep::{WhepOptions, WhepStats, WhepViewer};
pub use whip::{KindSendStats, SendReport, WhipOptions, WhipPublisher};
