//! The packet path: a published packet from its `TrackIn` to every subscriber and sink.
//!
//! ```text
//! Effects.media ─► fanout: TrackIn accounts it, keyframe detected once, speaker observed
//!   ─► for each subscription: forward (LayerSelector ─► its OutStream's Sink ─► StreamTx::write_rtp)
//!   ─► the recorder tap (a Sink: one continuous stream that follows the stage)
//!   ─► keyframe requests to the publisher, throttled once for all who wait
//! ```

pub(crate) mod fanout;
pub(crate) mod keyframe;
pub(crate) mod layer;
pub(crate) mod packet;
pub(crate) mod recent;
pub(crate) mod recorder;
pub(crate) mod rewrite;
pub(crate) mod sink;
pub(crate) mod track;
pub(crate) mod write;
