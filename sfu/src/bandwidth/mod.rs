//! How much each subscriber gets: one `Downlink` per peer owns what its link shows (str0m's
//! TWCC estimate, or the receiver's own reports), its caps and its allocation rounds.
//!
//! ```text
//! estimate / REMB / receiver reports ─► EstimateFilter | ReceiverEstimate
//!   ─► budget (caps, school share) ─► CongestionCap ─► BandwidthAllocator (pure)
//!   ─► allocation: layer targets, str0m's bitrate, dynacast to publishers
//! ```
//!
//! `CarriedRate`, `UpgradeBackoff` and `LastResort` are the evidence rules the allocator
//! weighs; `RateMeter` measures what each layer costs.

pub(crate) mod allocation;
pub(crate) mod allocator;
pub(crate) mod carried;
pub(crate) mod congestion;
pub(crate) mod downlink;
pub(crate) mod estimate;
pub(crate) mod last_resort;
pub(crate) mod policy;
pub(crate) mod rate;
pub(crate) mod receiver_estimate;
pub(crate) mod upgrade_backoff;
