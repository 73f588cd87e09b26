//! A participant's bandwidth as the server shows it outside the shard: the admin API's
//! `/rooms/{room}/bandwidth` and the stats overlay of the browser client (over signaling) both
//! send this view of `ketang_sfu::PeerBandwidth`, so it lives here, below both.

use ketang_sfu::{Feedback, LayerReport, PeerBandwidth, PublishedTrack, TrackBandwidth};
use serde::Serialize;
use utoipa::ToSchema;

/// One participant's bandwidth.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantBandwidth {
    #[schema(minimum = 1)]
    pub peer_id: u64,
    /// Estimated capacity towards the participant, bit/s: the send-side (TWCC) estimate, or
    /// for a receiver without TWCC the limit its own reports set (REMB, loss, round trip);
    /// null before the first one, or while such a receiver reports no trouble.
    pub estimate_bps: Option<u64>,
    /// What the participant is adapted by: `twcc` (the send-side estimator on its
    /// transport-wide feedback, as browsers give) or `reports` (its receiver reports and perhaps
    /// REMB: players and hardware decoders without TWCC, and viewers of a large audience).
    pub feedback: String,
    /// How its media travels: `udp`, or `tcp` (ICE over TCP, where the school's network lets
    /// only TCP out); null until it connects.
    pub transport: Option<String>,
    /// Most the server sends it, bit/s (classroom downlink, school budget share); null: no limit.
    pub down_cap_bps: Option<u64>,
    /// Most it should publish, bit/s (classroom uplink, school budget share); null: no limit.
    pub up_cap_bps: Option<u64>,
    /// Bit/s the allocator gave its streams in the last round.
    pub allocated_bps: u64,
    /// Bit/s the estimator is probing for before the next step up; null: not probing.
    pub probe_bps: Option<u64>,
    /// The streams it receives.
    pub receiving: Vec<ReceivedStream>,
    /// The tracks it publishes.
    pub publishing: Vec<PublishedStream>,
}

/// A stream a participant receives.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceivedStream {
    #[schema(minimum = 1)]
    pub track_id: u64,
    /// Peer id of the publisher.
    pub publisher: u64,
    /// `camera`, `mic` or `screen`.
    pub source: String,
    /// Layer index the allocator chose (0 = lowest); null: paused.
    pub target_layer: Option<usize>,
    /// Layer index forwarded now (it follows the target at the next keyframe); null: none.
    pub current_layer: Option<usize>,
    /// How many layers the track has.
    pub layers: usize,
}

/// A track a participant publishes.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishedStream {
    #[schema(minimum = 1)]
    pub track_id: u64,
    /// `camera`, `mic` or `screen`.
    pub source: String,
    /// `audio` or `video`.
    pub kind: String,
    /// Lowest quality first.
    pub layers: Vec<PublishedLayer>,
}

/// One simulcast layer of a published track.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishedLayer {
    /// Simulcast rid (`q`, `h`, `f`); null for a single-layer track.
    pub rid: Option<String>,
    /// Last measured rate while it flowed, bit/s (0: not seen yet).
    pub bps: u64,
    pub packets: u64,
    /// Whether the publisher was asked to send it; null: never told (all layers on).
    pub requested: Option<bool>,
}

/// The API's view of one peer's report (also sent to the client's stats overlay).
pub fn view(p: PeerBandwidth) -> ParticipantBandwidth {
    ParticipantBandwidth {
        peer_id: p.peer_id.0,
        estimate_bps: p.estimate_bps,
        feedback: match p.feedback {
            Feedback::Twcc => "twcc",
            Feedback::Reports => "reports",
        }
        .to_owned(),
        transport: p.transport.map(|t| t.as_str().to_owned()),
        down_cap_bps: p.caps.down_bps,
        up_cap_bps: p.caps.up_bps,
        allocated_bps: p.allocated_bps,
        probe_bps: p.probe_bps,
        receiving: p.tracks.into_iter().map(received).collect(),
        publishing: p.published.into_iter().map(published).collect(),
    }
}

fn received(t: TrackBandwidth) -> ReceivedStream {
    ReceivedStream {
        track_id: t.track_id.0,
        publisher: t.publisher.0,
        source: t.source.as_str().to_owned(),
        target_layer: t.target,
        current_layer: t.current,
        layers: t.layers,
    }
}

fn published(t: PublishedTrack) -> PublishedStream {
    PublishedStream {
        track_id: t.track_id.0,
        source: t.source.as_str().to_owned(),
        kind: t.kind.as_str().to_owned(),
        layers: t.layers.into_iter().map(layer).collect(),
    }
}

fn layer(l: LayerReport) -> PublishedLayer {
    PublishedLayer {
        rid: l.rid,
        bps: l.bps,
        packets: l.packets,
        requested: l.requested,
    }
}
