//! Step-by-step tests of `Downlink::plan`: demands and observations in, plans out.

use super::*;
use crate::bandwidth::allocator::Priority;
use crate::ids::TrackId;

const K: u64 = 1000;

fn audio() -> Demand {
    Demand {
        track: TrackId(1),
        kind: TrackKind::Audio,
        priority: Priority::High,
        layer_bps: vec![40 * K],
    }
}

fn camera() -> Demand {
    Demand {
        track: TrackId(2),
        kind: TrackKind::Video,
        priority: Priority::High,
        layer_bps: vec![150 * K, 500 * K, 1500 * K],
    }
}

fn seen(sent: u64, queued_ms: u64) -> Observed {
    Observed {
        ratio: WireRatio::new(0, 0),
        sent,
        queued: Duration::from_millis(queued_ms),
        flowing: sent,
    }
}

fn layer(plan: &RoundPlan, id: u64) -> Option<usize> {
    plan.decision
        .layers
        .iter()
        .find(|(t, _)| *t == TrackId(id))
        .and_then(|(_, l)| *l)
}

#[test]
fn a_new_subscriber_starts_at_the_top_whatever_the_first_guess() {
    let t = Instant::now();
    let mut d = Downlink::new(PeerId(1), Feedback::Twcc, t);
    // str0m's first guess is 1 Mbit/s; the camera's top layer costs 1.5.
    let plan = d.plan(t, &[audio(), camera()], seen(0, 0), 1000 * K);
    assert_eq!(layer(&plan, 2), Some(2));
    // The guess is no evidence: while the start is optimistic, only loss is.
    d.estimate.sample(t + Duration::from_millis(400), 1000 * K);
    let plan = d.plan(
        t + Duration::from_millis(500),
        &[audio(), camera()],
        seen(1540 * K, 300),
        1000 * K,
    );
    assert!(!d.strained());
    assert_eq!(layer(&plan, 2), Some(2));
    d.on_twcc_loss(0.2, t + Duration::from_millis(900));
    let plan = d.plan(
        t + Duration::from_millis(1000),
        &[audio(), camera()],
        seen(1540 * K, 300),
        1000 * K,
    );
    assert!(d.strained());
    // Loss: the estimate leads at once (1 Mbit/s: the middle layer).
    assert_eq!(layer(&plan, 2), Some(1), "{plan:?}");
}

#[test]
fn within_its_caps_even_when_starting_optimistic() {
    let t = Instant::now();
    let mut d = Downlink::new(PeerId(1), Feedback::Twcc, t);
    d.caps.down_bps = Some(800 * K);
    let plan = d.plan(t, &[audio(), camera()], seen(0, 0), 1000 * K);
    assert_eq!(layer(&plan, 2), Some(1));
}

#[test]
fn once_video_has_flowed_the_estimate_leads() {
    let t = Instant::now();
    let at = |ms: u64| t + Duration::from_millis(ms);
    let mut d = Downlink::new(PeerId(1), Feedback::Twcc, t);
    d.plan(at(0), &[audio(), camera()], seen(0, 0), 1000 * K);
    // The estimator saw the link: 600 kbit/s, and the camera's top layer does not arrive well.
    d.estimate.sample(at(1000), 600 * K);
    d.average_bps = Some(600 * K);
    d.on_report(Mid::from("1"), Some(0.08), None, at(1900));
    let plan = d.plan(at(2100), &[audio(), camera()], seen(1540 * K, 0), 1000 * K);
    assert_eq!(layer(&plan, 2), Some(1), "{plan:?}");
}

#[test]
fn a_long_pacer_queue_is_congestion_only_on_a_strained_link() {
    let t = Instant::now();
    let at = |ms: u64| t + Duration::from_millis(ms);
    let mut d = Downlink::new(PeerId(1), Feedback::Twcc, t);
    d.plan(at(0), &[audio(), camera()], seen(0, 0), 1000 * K);
    // A keyframe waits 300 ms behind the pacing rate; the estimate covers what is sent.
    d.estimate.sample(at(2500), 2000 * K);
    let plan = d.plan(
        at(3000),
        &[audio(), camera()],
        seen(1540 * K, 300),
        1000 * K,
    );
    assert!(!d.strained());
    assert!(!d.note_queue(), "a burst on a clean link");
    assert_eq!(layer(&plan, 2), Some(2));
    assert_eq!(d.congestion.get(), None);
    // The estimate falls below what is sent (delay growth): the same queue is congestion.
    d.estimate.sample(at(3200), 900 * K);
    d.estimate.sample(at(4300), 900 * K);
    d.plan(
        at(4300),
        &[audio(), camera()],
        seen(1540 * K, 300),
        1000 * K,
    );
    assert!(d.strained());
    assert!(
        d.congestion.get().is_some(),
        "the ceiling halves the allocation"
    );
}

#[test]
fn a_receiver_without_twcc_has_no_pacer_to_steer_and_its_reports_set_the_budget() {
    let t = Instant::now();
    let at = |ms: u64| t + Duration::from_millis(ms);
    let mut d = Downlink::new(PeerId(1), Feedback::Reports, t);
    let plan = d.plan(at(0), &[audio(), camera()], seen(0, 0), 1000 * K);
    assert_eq!(layer(&plan, 2), Some(2), "no limit reported: the top layer");
    assert_eq!(plan.bwe_target, None);
    // It reports REMB of 700 kbit/s: after the optimistic start, the middle layer.
    d.reports.on_remb(at(2000), 700 * K);
    let plan = d.plan(at(2500), &[audio(), camera()], seen(1540 * K, 0), 1000 * K);
    assert_eq!(layer(&plan, 2), Some(1));
    // A long queue means nothing without a pacer (there is none).
    let plan = d.plan(at(3000), &[audio(), camera()], seen(540 * K, 500), 1000 * K);
    assert_eq!(layer(&plan, 2), Some(1));
    assert_eq!(d.congestion.get(), None);
}
