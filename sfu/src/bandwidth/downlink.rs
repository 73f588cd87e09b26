//! `Downlink`: one subscriber's link as the SFU sees it, and each allocation round's plan.
//!
//! A peer's downlink owns everything bandwidth allocation knows about it: how the receiver
//! reports back (`Feedback`), str0m's estimate (TWCC) or the receiver's own reports (REMB, loss,
//! round trip), configured caps, the `BandwidthAllocator`, the congestion ceiling, and what the
//! estimator was last asked for. `Downlink::plan` is one allocation round without side effects
//! on str0m: demands and observations in, a `RoundPlan` out, which `allocation.rs` applies.
//!
//! Rules (docs/bandwidth.md explains them with measurements):
//! - **Start optimistic.** Until video has flowed for `PROVEN_AFTER` without trouble, a new
//!   subscriber gets what it wants within its caps, and only loss counts as trouble: str0m's
//!   estimate is still its first guess (`SfuConfig::initial_bitrate_bps`, 2.5 Mbit/s, which
//!   its pacer sends at 1.1 times), and its initial probes find the link meanwhile.
//! - **Evidence, not guesses.** Video waiting in the pacer is congestion only when the link is
//!   *strained*: str0m's current estimate has fallen below what is sent (delay growth or loss
//!   seen by TWCC) or the receiver reports loss. A keyframe burst queued behind the pacing rate
//!   on a clean link is not congestion.
//! - **Receivers without TWCC** get unpaced media (str0m without BWE) and a budget from their
//!   reports (`ReceiverEstimate`): REMB when sent, else loss and round-trip growth.
//! - **A single layer is paused only as a last resort** (`LastResort`): a configured downlink
//!   that cannot hold it, or a link failing (loss or congestion that lasts).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use str0m::media::Mid;

use crate::bandwidth::allocator::{BandwidthAllocator, Decision, Demand, LinkSignals};
use crate::bandwidth::carried::CarriedRate;
use crate::bandwidth::congestion::CongestionCap;
use crate::bandwidth::estimate::EstimateFilter;
use crate::bandwidth::last_resort::PROBATION;
use crate::bandwidth::rate::WireRatio;
use crate::bandwidth::receiver_estimate::{LOSSY, ReceiverEstimate};
use crate::event::PeerCaps;
use crate::ids::PeerId;
use crate::lesson::role::TrackKind;
use crate::session::sdp::Feedback;

/// How often each subscriber's allocation runs without a new estimate.
pub(crate) const ALLOC_EVERY: Duration = Duration::from_millis(500);
/// How often a subscriber held below its wanted rate asks the estimator to probe again.
const PROBE_NUDGE_EVERY: Duration = Duration::from_millis(1500);
/// No probing nudges this long after the last sign of congestion.
const PROBE_QUIET_AFTER_CONGESTION: Duration = Duration::from_secs(5);
/// Part of the estimate the allocator hands out; the rest absorbs bursts (keyframes).
pub(crate) const ESTIMATE_SHARE: u64 = 95;
/// Part of a configured downlink padding may fill.
const PAD_SHARE: u64 = 85;
/// A receiver losing more than this fraction of packets gets more than its link carries
/// (random loss on a poor wireless link stays below it; an overflowing queue does not).
const OVERLOADED_LOSS: f32 = 0.05;
/// Loss above this (random loss on a wireless link stays below it) means the link did not
/// carry what was sent cleanly: no proof of capacity.
const CLEAN_LOSS: f32 = 0.02;
/// Loss reports older than this no longer describe the link (str0m reports every second).
const LOSS_REPORT_AGE: Duration = Duration::from_secs(3);
/// Video that flowed this long without trouble has shown what the link carries: from then on
/// the estimate, not optimism, sets the budget.
const PROVEN_AFTER: Duration = Duration::from_secs(2);
/// Congestion (with evidence) in every round for this long means the link fails.
const CONGESTED_FAILS_AFTER: Duration = Duration::from_secs(1);

/// Video waiting longer than this in the pacer means the subscriber's link is congested.
pub(crate) const CONGESTED: Duration = Duration::from_millis(150);

/// Below this the queue counts as drained: a stopped video may restart.
pub(crate) const DRAINED: Duration = Duration::from_millis(80);

/// What a round observed about the subscriber's streams.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observed {
    /// Wire against payload of what is forwarded now.
    pub ratio: WireRatio,
    /// Wire bit/s forwarded now.
    pub sent: u64,
    /// The longest wait of video in str0m's pacer.
    pub queued: Duration,
    /// Wire bit/s of the layers being forwarded now, at their planning rates.
    pub flowing: u64,
}

/// What one round found, for steering the estimator.
#[derive(Debug, Clone, Copy)]
struct Round {
    /// Everything at the top layers, wire bit/s.
    full: u64,
    /// The estimate, wire bit/s.
    estimate: u64,
    congested: bool,
    link: LinkSignals,
    ratio: WireRatio,
}

/// One round's plan, for `allocation.rs` to apply.
#[derive(Debug, Clone)]
pub(crate) struct RoundPlan {
    pub decision: Decision,
    /// New (minimum, desired) payload bit/s for str0m's estimator.
    pub bwe_target: Option<(u64, u64)>,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Downlink {
    /// Whose link (for the diagnostics).
    peer: PeerId,
    pub feedback: Feedback,
    /// str0m's latest 3 s average of the send-side estimate (TWCC), payload bit/s.
    pub average_bps: Option<u64>,
    /// str0m's current estimate, sampled with the statistics.
    pub estimate: EstimateFilter,
    /// What the receiver's own reports say (all peers; the budget of `Feedback::Reports`).
    pub reports: ReceiverEstimate,
    pub caps: PeerCaps,
    pub allocator: BandwidthAllocator,
    pub next_alloc: Instant,
    /// The last (minimum, desired) given to the estimator, to avoid repeating it.
    bwe_target: (u64, u64),
    /// Added to the desired rate to re-trigger probing.
    probe_nudge: u64,
    next_probe_nudge: Instant,
    /// The last allocation, for the stats API.
    pub last_decision: Option<Decision>,
    /// A budget ceiling learned from congestion, until the estimate follows.
    pub congestion: CongestionCap,
    /// The forwarder saw congestion since the last round.
    congestion_seen: bool,
    congested_since: Option<Instant>,
    /// The receiver's latest loss fraction per sending m-line (RTCP receiver reports).
    loss: HashMap<Mid, (f32, Instant)>,
    /// Wire bit/s sent at the last round (what loss reports are set against).
    sent: u64,
    /// When video was first allocated.
    video_since: Option<Instant>,
    /// The transport-wide loss str0m measures from TWCC feedback (over its last second).
    twcc_loss: Option<(f32, Instant)>,
    /// Evidence that the link carries less than what is sent.
    strained: bool,
    /// The limit the receiver's reports set at the last round (`Feedback::Reports`).
    reported: Option<u64>,
    /// What went out to the peer (media, retransmissions, padding), and what of it the link
    /// was seen to carry.
    carried: CarriedRate,
}

impl Downlink {
    pub fn new(peer: PeerId, feedback: Feedback, now: Instant) -> Self {
        Downlink {
            peer,
            feedback,
            average_bps: None,
            estimate: EstimateFilter::default(),
            reports: ReceiverEstimate::default(),
            caps: PeerCaps::default(),
            allocator: BandwidthAllocator::default(),
            next_alloc: now,
            bwe_target: (0, 0),
            probe_nudge: 0,
            next_probe_nudge: now,
            last_decision: None,
            congestion: CongestionCap::default(),
            congestion_seen: false,
            congested_since: None,
            loss: HashMap::new(),
            sent: 0,
            video_since: None,
            twcc_loss: None,
            strained: false,
            reported: None,
            carried: CarriedRate::default(),
        }
    }

    /// The estimate allocation works with: str0m's (TWCC), or the limit the receiver's own
    /// reports set (none while they report no trouble).
    pub fn estimate_bps(&self) -> Option<u64> {
        match self.feedback {
            Feedback::Twcc => self.estimate.round(self.average_bps),
            Feedback::Reports => self.reported,
        }
    }

    /// The forwarder saw video wait too long in the pacer. Counts only on a strained link;
    /// returns whether an allocation round should run at once (the first sign since the last).
    pub fn note_queue(&mut self) -> bool {
        if !self.strained || self.congestion_seen {
            return false;
        }
        self.congestion_seen = true;
        true
    }

    /// Whether a long pacer queue means congestion now.
    pub fn strained(&self) -> bool {
        self.strained
    }

    /// A receiver report for `mid`: loss fraction and round trip, at `at`.
    pub fn on_report(&mut self, mid: Mid, loss: Option<f32>, rtt: Option<Duration>, at: Instant) {
        if let Some(l) = loss {
            self.loss.insert(mid, (l, at));
            self.reports.on_loss(at, l, self.sent);
        }
        if let (Some(r), Feedback::Reports) = (rtt, self.feedback) {
            self.reports.on_rtt(at, r, self.sent);
        }
    }

    /// str0m's transport-wide loss (TWCC feedback over the last second), sampled with the
    /// statistics: the earliest sign of loss for a browser.
    pub fn on_twcc_loss(&mut self, loss: f32, at: Instant) {
        self.twcc_loss = Some((loss, at));
        self.reports.on_loss(at, loss, self.sent);
    }

    /// str0m's count of all bytes sent to the peer, sampled with the statistics.
    pub fn on_peer_tx(&mut self, bytes: u64, at: Instant) {
        self.carried.sent_total(at, bytes);
    }

    /// The worst fresh loss report.
    fn loss(&self, now: Instant) -> f32 {
        self.loss
            .values()
            .chain(self.twcc_loss.iter())
            .filter(|(_, at)| now.saturating_duration_since(*at) < LOSS_REPORT_AGE)
            .map(|(l, _)| *l)
            .fold(0.0f32, f32::max)
    }

    /// One allocation round (see the module documentation).
    pub fn plan(
        &mut self,
        now: Instant,
        demands: &[Demand],
        seen: Observed,
        initial_bps: u64,
    ) -> RoundPlan {
        self.next_alloc = now + ALLOC_EVERY;
        self.sent = seen.sent;
        if self.video_since.is_none() && demands.iter().any(|d| d.kind == TrackKind::Video) {
            self.video_since = Some(now);
        }
        // Everything at the top layers: all this subscriber could want.
        let full: u64 = demands
            .iter()
            .map(|d| d.layer_bps.last().copied().unwrap_or(0))
            .sum();
        let loss = self.loss(now);
        let estimate = self.round_estimate(now, &seen, full, initial_bps);
        self.strained = self.is_strained(now, &seen, loss);
        let budget = self.budget(now, estimate, full, loss);
        let congested = self.congestion_round(now, demands, &seen, budget);
        if congested || self.strained || loss > CLEAN_LOSS {
            self.carried.trouble(now);
        }
        let round = Round {
            full,
            estimate,
            congested,
            link: LinkSignals {
                // The link carries what is sent when nothing queues and the receiver reports
                // little loss; the allocator then never pauses a video that is playing.
                carried: !congested && loss <= OVERLOADED_LOSS,
                overloaded: congested || loss > OVERLOADED_LOSS,
                proven_bps: self.carried.proven(now),
                failing: self.reports.failing(now)
                    || self
                        .congested_since
                        .is_some_and(|t| now.saturating_duration_since(t) >= CONGESTED_FAILS_AFTER),
            },
            ratio: seen.ratio,
        };
        let budget = self.keep_what_flows(budget, &seen, &round);
        let budget = self.congestion.apply(budget);
        // The share kept for bursts is kept under a configured downlink whatever the estimate.
        self.allocator
            .set_hard_limit(self.caps.down_bps.map(|c| c * ESTIMATE_SHARE / 100));
        let decision = self.allocator.allocate_on(now, budget, round.link, demands);
        if decision.trial {
            self.reports.probation(now + PROBATION);
        }
        tracing::debug!(
            peer = %self.peer,
            feedback = ?self.feedback,
            estimate,
            budget,
            congested,
            strained = self.strained,
            failing = round.link.failing,
            loss,
            ceiling = ?self.congestion.get(),
            allocated = decision.allocated_bps,
            sent = seen.sent,
            tx = ?self.carried.rate(),
            "allocation round"
        );
        let bwe_target = match self.feedback {
            Feedback::Twcc => self.steer_estimator(now, &decision, &round),
            Feedback::Reports => None,
        };
        self.last_decision = Some(decision.clone());
        RoundPlan {
            decision,
            bwe_target,
        }
    }

    /// The estimate of this round, on the wire: str0m's (TWCC), or what the receiver's own
    /// reports allow (none reported: enough for everything, the caps still apply).
    fn round_estimate(
        &mut self,
        now: Instant,
        seen: &Observed,
        full: u64,
        initial_bps: u64,
    ) -> u64 {
        match self.feedback {
            Feedback::Twcc => seen
                .ratio
                .to_wire(self.estimate.round(self.average_bps).unwrap_or(initial_bps)),
            Feedback::Reports => {
                self.reported = self.reports.budget(now, full * 2);
                self.reported.unwrap_or(full * 2)
            }
        }
    }

    /// Whether the link shows strain: loss, or str0m's estimate below what is sent. The latter
    /// is its delay-based (or loss-based) detector speaking once it has seen the video for a
    /// while; before that it is still its first guess, and only loss counts.
    fn is_strained(&self, now: Instant, seen: &Observed, loss: f32) -> bool {
        let proven = self
            .video_since
            .is_some_and(|t| now.saturating_duration_since(t) >= PROVEN_AFTER);
        loss > LOSSY
            || (self.feedback == Feedback::Twcc
                && proven
                && self
                    .estimate
                    .get()
                    .is_some_and(|e| seen.ratio.to_wire(e) < seen.sent * 9 / 10))
    }

    /// What flows now, and evidently arrives, is not taken away on the estimate's word alone:
    /// str0m's estimate can sink below what the link delivers (probing on a lossy link), and
    /// following it would step down a picture that plays fine. A real overload shows as
    /// congestion or loss, and then this floor does not apply. (A receiver's own reports are
    /// evidence already: they are followed.)
    fn keep_what_flows(&self, budget: u64, seen: &Observed, round: &Round) -> u64 {
        if !round.link.carried || self.feedback != Feedback::Twcc {
            return budget;
        }
        let cap = self.caps.down_bps;
        budget.max(cap.map_or(seen.flowing, |c| seen.flowing.min(c * ESTIMATE_SHARE / 100)))
    }

    /// The round's budget before congestion: the estimate within the caps, less the share kept
    /// for bursts; what the subscriber wants while the start is optimistic.
    fn budget(&self, now: Instant, estimate: u64, full: u64, loss: f32) -> u64 {
        let cap = self.caps.down_bps;
        let budget = cap.map_or(estimate, |c| c.min(estimate)) * ESTIMATE_SHARE / 100;
        let proven = self
            .video_since
            .is_some_and(|t| now.saturating_duration_since(t) >= PROVEN_AFTER);
        if proven || self.strained || loss > OVERLOADED_LOSS {
            return budget;
        }
        budget.max(cap.map_or(full, |c| (c * ESTIMATE_SHARE / 100).min(full)))
    }

    /// Whether the link is congested this round, updating the congestion ceiling. The
    /// estimator needs seconds to see a collapsed link; video piling up in the pacer shows it
    /// sooner (congestion.rs), when the link is strained. The forwarder stops video as soon as
    /// the queue is too long, so what it saw since the last round counts too.
    fn congestion_round(
        &mut self,
        now: Instant,
        demands: &[Demand],
        seen: &Observed,
        budget: u64,
    ) -> bool {
        let congested =
            std::mem::take(&mut self.congestion_seen) || (self.strained && seen.queued > CONGESTED);
        if !congested {
            self.congestion.clear_round(now, budget);
            self.congested_since = None;
            return false;
        }
        if let Some(last) = &self.last_decision {
            let floor: u64 = demands
                .iter()
                .map(|d| d.layer_bps.first().copied().unwrap_or(0))
                .sum();
            self.congestion
                .congested(now, last.allocated_bps, floor, budget);
        }
        // Faster rounds while congested; `CongestionCap` bounds how often they halve.
        self.next_alloc = now + crate::bandwidth::congestion::CONGESTED_ROUND;
        self.congested_since.get_or_insert(now);
        true
    }

    /// Probing and padding: what str0m's estimator should look for. All rates here are wire
    /// bit/s until converted at the end.
    fn steer_estimator(
        &mut self,
        now: Instant,
        decision: &Decision,
        round: &Round,
    ) -> Option<(u64, u64)> {
        let Round {
            full,
            estimate,
            congested,
            link,
            ratio,
        } = *round;
        let cap = self.caps.down_bps;
        // The estimate only grows if the link is tried: desire everything at the top layer
        // (within the cap) so the estimator probes, and pad up to the next step once one is
        // pending so it is tested before it is taken. The allocator grants the top layers only
        // once the estimate covers them plus the share it keeps for bursts.
        let full = full * 100 / ESTIMATE_SHARE;
        let mut desired = cap.map_or(full, |c| full.min(c));
        // str0m probes when the desired rate rises above the estimate, not when it is
        // repeated. A subscriber held below what it wants (after a congestion collapse, say)
        // nudges it up now and then so that probing continues until the link is found.
        // Not while the link is congested: a probe burst then only makes it worse.
        if congested {
            self.next_probe_nudge = now + PROBE_QUIET_AFTER_CONGESTION;
        }
        // Held back: far below what it wants, or a step up waits for an estimate that covers
        // it (within the cap). On a lossy link str0m's estimate settles near what is sent and
        // only probes lift it, so without nudges the last step may never come.
        let step_needs = decision
            .probe_bps
            .map(|b| b * 100 / ESTIMATE_SHARE)
            .filter(|b| *b <= desired);
        let held_back = estimate < desired * 9 / 10 || step_needs.is_some_and(|b| estimate < b);
        if held_back && now >= self.next_probe_nudge {
            self.probe_nudge += 1_000;
            self.next_probe_nudge = now + PROBE_NUDGE_EVERY;
        } else if !held_back {
            self.probe_nudge = 0;
        }
        desired += self.probe_nudge;
        // Never probe or pad into the share of a configured downlink kept for bursts.
        if let Some(c) = cap {
            desired = desired.min(c * ESTIMATE_SHARE / 100);
        }
        // str0m pads up to `minimum`. While the link is congested, padding would fill it in
        // place of the video that was just stopped; pad only when the link is clear.
        // While held back on a link that carries what is sent, pad towards the next step even
        // before the estimate makes room for it: str0m's estimate grows to at most 1.5 times
        // what is acknowledged, and its probes stop after a lossy spell (they wait for a
        // delay-limited state), so without padding the estimate could stay where the
        // collapse left it however fast the link is again. str0m never pads past its estimate.
        let minimum = if congested || self.congestion.get().is_some() {
            0
        } else {
            decision
                .probe_bps
                .or(decision.next_bps.filter(|_| held_back && link.carried))
                .unwrap_or(decision.allocated_bps)
                .min(desired)
        };
        // Padding comes on top of media bursts and its own headers: under a configured
        // downlink it fills only to where steps up may go (allocator.rs), never to the limit.
        let minimum = cap.map_or(minimum, |c| minimum.min(c * PAD_SHARE / 100));
        let target = (
            ratio.to_payload(minimum),
            ratio.to_payload(desired.max(minimum)),
        );
        (target != self.bwe_target && target.1 > 0).then(|| {
            self.bwe_target = target;
            target
        })
    }
}

#[cfg(test)]
#[path = "downlink_tests.rs"]
mod tests;
