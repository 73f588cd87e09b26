//! Shard configuration, given by the application. The SFU reads no files and no environment.

use std::net::SocketAddr;
use std::time::Duration;

/// The default of [`SfuConfig::max_tracks_per_peer`].
pub const DEFAULT_MAX_TRACKS_PER_PEER: usize = 8;

/// Settings of one shard (one `Sfu`).
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// Host candidates announced in every SDP: the shard's UDP socket as clients reach it.
    pub candidates: Vec<SocketAddr>,
    /// Passive TCP host candidates (RFC 6544), announced after the UDP ones and with a lower
    /// priority, so that UDP wins wherever it flows. Empty: no ICE over TCP.
    pub tcp_candidates: Vec<SocketAddr>,
    /// Track ids handed out by this shard start here (shards use disjoint ranges so that ids
    /// are unique per process).
    pub track_id_base: u64,
    /// A peer that has not connected (ICE + DTLS) this long after joining is removed.
    pub connect_timeout: Duration,
    /// Minimum spacing of keyframe requests sent to a publisher, per track layer.
    pub keyframe_interval: Duration,
    /// Offer H.264 in answers (VP8 and Opus are always on).
    pub enable_h264: bool,
    /// Offer VP9 in answers.
    pub enable_vp9: bool,
    /// Initial send-side bandwidth estimate per subscriber (TWCC), bit/s: str0m paces at 1.1
    /// times its estimate, so this is what a new subscriber can receive before the estimator
    /// has learned its link (its initial probes take about a second). The city plan gives
    /// every class at least 5 Mbit/s; 2.5 carries a 720p teacher and two classrooms.
    pub initial_bitrate_bps: u64,
    /// Which subscribers get str0m's send-side estimation (the others adapt to their receiver
    /// reports, without a pacer).
    pub bwe_policy: crate::bandwidth::policy::BwePolicy,
    /// Watchers get a changed room state at most this often (the latest, coalesced), and the
    /// runners a changed question list: what one viewer can make the server send stays
    /// bounded however busy the room (issue 13).
    pub audience_state_every: Duration,
    /// Most audio and video m-lines a client's offer may bring (besides the ones the server
    /// sends on): every m-line is state str0m keeps for the peer, whatever it carries. A
    /// browser publishes at most four (microphone, camera, screen and its sound).
    pub max_tracks_per_peer: usize,
}

impl SfuConfig {
    /// Defaults for a shard announcing `candidates`.
    pub fn new(candidates: Vec<SocketAddr>) -> Self {
        SfuConfig {
            candidates,
            tcp_candidates: Vec::new(),
            track_id_base: 1,
            connect_timeout: Duration::from_secs(30),
            keyframe_interval: Duration::from_millis(300),
            enable_h264: true,
            enable_vp9: true,
            initial_bitrate_bps: 2_500_000,
            bwe_policy: Default::default(),
            audience_state_every: Duration::from_millis(1000),
            max_tracks_per_peer: DEFAULT_MAX_TRACKS_PER_PEER,
        }
    }
}
