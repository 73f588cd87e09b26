//! Step-by-step tests of `BandwidthAllocator`: budgets and link signals in, decisions out.

use super::*;

const CARRIED: LinkSignals = LinkSignals {
    carried: true,
    failing: false,
    overloaded: false,
    proven_bps: 0,
};
const UNSURE: LinkSignals = LinkSignals {
    carried: false,
    failing: false,
    overloaded: false,
    proven_bps: 0,
};
const OVERLOADED: LinkSignals = LinkSignals {
    carried: false,
    failing: false,
    overloaded: true,
    proven_bps: 0,
};

const K: u64 = 1000;

fn video(id: u64, priority: Priority) -> Demand {
    Demand {
        track: TrackId(id),
        kind: TrackKind::Video,
        priority,
        layer_bps: vec![150 * K, 500 * K, 1500 * K],
    }
}

fn audio(id: u64) -> Demand {
    Demand {
        track: TrackId(id),
        kind: TrackKind::Audio,
        priority: Priority::High,
        layer_bps: vec![40 * K],
    }
}

fn layer(d: &Decision, id: u64) -> Option<usize> {
    d.layers.iter().find(|(t, _)| *t == TrackId(id)).unwrap().1
}

#[test]
fn ideal_serves_audio_first_then_lowest_layers_then_the_stage() {
    let ds = [
        audio(1),
        video(2, Priority::Normal),
        video(3, Priority::High),
        audio(4),
    ];
    // Plenty: everything at the top.
    let i = ideal(4000 * K, &ds);
    assert_eq!((i[&TrackId(3)], i[&TrackId(2)]), (Some(2), Some(2)));
    // Two stage videos share a growing budget in turns: neither loses a layer.
    let two = [video(5, Priority::High), video(6, Priority::High)];
    let mut last = (Some(0), Some(0));
    for b in (300..=3000).step_by(50) {
        let i = ideal(b * K, &two);
        let now = (i[&TrackId(5)], i[&TrackId(6)]);
        assert!(
            now.0 >= last.0 && now.1 >= last.1,
            "{b}k: {last:?} -> {now:?}"
        );
        last = now;
    }
    // 1 Mbit/s: audio 80k, both lowest (300k), the stage climbs to h (+350k), 270k left.
    let i = ideal(1000 * K, &ds);
    assert_eq!((i[&TrackId(3)], i[&TrackId(2)]), (Some(1), Some(0)));
    // 250 kbit/s: audio (80k), and one lowest layer (150k): the stage's.
    let i = ideal(250 * K, &ds);
    assert_eq!((i[&TrackId(3)], i[&TrackId(2)]), (Some(0), None));
    // Even audio does not fit: audio stays, video pauses.
    let i = ideal(50 * K, &ds);
    assert_eq!((i[&TrackId(1)], i[&TrackId(3)]), (Some(0), None));
}

#[test]
fn steps_down_at_once_and_up_only_after_stable_headroom() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let ds = [audio(1), video(2, Priority::High)];
    let mut a = BandwidthAllocator::new(AllocatorConfig::default());
    // A new track starts at what fits.
    let d = a.allocate(at(0), 3000 * K, &ds);
    assert_eq!(layer(&d, 2), Some(2));
    // The link collapses: down in the same round, no probe.
    let d = a.allocate(at(100), 600 * K, &ds);
    assert_eq!(layer(&d, 2), Some(1));
    let d = a.allocate(at(200), 300 * K, &ds);
    assert_eq!(layer(&d, 2), Some(0));
    assert_eq!(d.probe_bps, None);
    // Too little even for the lowest layer: kept for `pause_after`, then paused.
    let d = a.allocate(at(250), 100 * K, &ds);
    assert_eq!(layer(&d, 2), Some(0));
    let d = a.allocate(at(2300), 100 * K, &ds);
    assert_eq!(layer(&d, 2), None);
    assert_eq!(layer(&d, 1), Some(0), "audio stays");
    // Capacity is back: nothing for up_hold (2 s after the last step down), but the
    // estimator is asked to probe for the next step.
    let d = a.allocate(at(2400), 3000 * K, &ds);
    assert_eq!(layer(&d, 2), None);
    assert_eq!(d.probe_bps, Some((40 + 150) * K));
    let d = a.allocate(at(3500), 3000 * K, &ds);
    assert_eq!(layer(&d, 2), None, "still inside the hold");
    // Held and stable: one step (resume at the lowest layer).
    let d = a.allocate(at(4400), 3000 * K, &ds);
    assert_eq!(layer(&d, 2), Some(0));
    // The next step needs its own second of headroom.
    let d = a.allocate(at(4900), 3000 * K, &ds);
    assert_eq!(layer(&d, 2), Some(0));
    assert_eq!(d.probe_bps, Some((40 + 500) * K));
    let d = a.allocate(at(6000), 3000 * K, &ds);
    assert_eq!(layer(&d, 2), Some(1));
    let d = a.allocate(at(6500), 3000 * K, &ds);
    assert_eq!(layer(&d, 2), Some(1));
    let d = a.allocate(at(7600), 3000 * K, &ds);
    assert_eq!(layer(&d, 2), Some(2));
    assert_eq!(d.allocated_bps, 1540 * K);
}

#[test]
fn a_flapping_estimate_does_not_flap_the_layer() {
    let t0 = Instant::now();
    let ds = [video(2, Priority::High)];
    let mut a = BandwidthAllocator::new(AllocatorConfig::default());
    a.allocate(t0, 600 * K, &ds);
    let mut changes = 0;
    let mut last = Some(1);
    // The estimate jumps between 600 k and 2 M every 300 ms for 10 s.
    for i in 1..33 {
        let budget = if i % 2 == 0 { 600 * K } else { 2000 * K };
        let d = a.allocate(t0 + Duration::from_millis(300 * i), budget, &ds);
        if layer(&d, 2) != last {
            changes += 1;
            last = layer(&d, 2);
        }
    }
    assert_eq!(changes, 0, "no upgrade survives a 300 ms oscillation");
}

#[test]
fn what_is_sent_is_kept_while_it_fits() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let ds = [video(5, Priority::High), video(6, Priority::High)];
    let mut a = BandwidthAllocator::new(AllocatorConfig::default());
    let d = a.allocate(at(0), 700 * K, &ds);
    assert_eq!((layer(&d, 5), layer(&d, 6)), (Some(1), Some(0)));
    // Climbing one layer at a time: the first stage video goes to the top.
    a.allocate(at(100), 3000 * K, &ds);
    let d = a.allocate(at(1100), 3000 * K, &ds);
    assert_eq!((layer(&d, 5), layer(&d, 6)), (Some(2), Some(0)));
    // The estimate dips: the ideal split of 1.5 Mbit/s is (h, h), but the 1.65 Mbit/s sent
    // are within the tolerance: nothing changes, and the other video does not climb on top.
    for ms in [1200, 1700, 2200, 2700, 3200, 5000] {
        let d = a.allocate(at(ms), 1500 * K, &ds);
        assert_eq!((layer(&d, 5), layer(&d, 6)), (Some(2), Some(0)), "{ms}");
    }
    // It no longer fits: down to the ideal split at once.
    let d = a.allocate(at(5500), 1000 * K, &ds);
    assert_eq!((layer(&d, 5), layer(&d, 6)), (Some(1), Some(0)));
}

#[test]
fn a_lowest_layer_the_link_carries_is_not_paused() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let ds = [audio(1), video(2, Priority::High)];
    let mut a = BandwidthAllocator::new(AllocatorConfig::default());
    a.allocate_on(at(0), 3000 * K, CARRIED, &ds);
    // The estimate undershoots below the lowest layer, but the link carries it: down to the
    // lowest layer at once, and kept there however long the estimate stays low.
    let d = a.allocate_on(at(500), 150 * K, CARRIED, &ds);
    assert_eq!(layer(&d, 2), Some(0));
    let d = a.allocate_on(at(5000), 150 * K, CARRIED, &ds);
    assert_eq!(layer(&d, 2), Some(0));
    // Evidence of an overloaded link: the usual `pause_after` from then on.
    let d = a.allocate_on(at(5500), 150 * K, UNSURE, &ds);
    assert_eq!(layer(&d, 2), Some(0));
    let d = a.allocate_on(at(7400), 150 * K, UNSURE, &ds);
    assert_eq!(layer(&d, 2), Some(0));
    let d = a.allocate_on(at(7500), 150 * K, UNSURE, &ds);
    assert_eq!(layer(&d, 2), None);
    assert_eq!(layer(&d, 1), Some(0), "audio stays");
}

#[test]
fn a_short_unfit_spell_does_not_count_towards_a_later_pause() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let ds = [video(2, Priority::High)];
    let mut a = BandwidthAllocator::new(AllocatorConfig::default());
    a.allocate(at(0), 600 * K, &ds);
    // 1.5 s without room for the lowest layer, then it fits again.
    a.allocate(at(500), 100 * K, &ds);
    let d = a.allocate(at(2000), 100 * K, &ds);
    assert_eq!(layer(&d, 2), Some(0));
    a.allocate(at(2500), 600 * K, &ds);
    // A new spell starts its own count.
    let d = a.allocate(at(10_000), 100 * K, &ds);
    assert_eq!(layer(&d, 2), Some(0));
    let d = a.allocate(at(11_900), 100 * K, &ds);
    assert_eq!(layer(&d, 2), Some(0));
    let d = a.allocate(at(12_000), 100 * K, &ds);
    assert_eq!(layer(&d, 2), None);
}

#[test]
fn a_paused_video_resumes_when_it_fits() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let ds = [audio(1), video(2, Priority::Normal)];
    let mut a = BandwidthAllocator::new(AllocatorConfig::default());
    let d = a.allocate(at(0), 100 * K, &ds);
    assert_eq!((layer(&d, 1), layer(&d, 2)), (Some(0), None));
    a.allocate(at(2000), 400 * K, &ds);
    let d = a.allocate(at(3100), 400 * K, &ds);
    assert_eq!(layer(&d, 2), Some(0));
}

#[test]
fn a_hard_limit_caps_the_tolerance() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let ds = [video(5, Priority::High)];
    let mut a = BandwidthAllocator::new(AllocatorConfig::default());
    let d = a.allocate(at(0), 1600 * K, &ds);
    assert_eq!(layer(&d, 5), Some(2));
    // 1.45 Mbit/s: the 1.5 Mbit/s top layer is within the tolerance and kept.
    let d = a.allocate(at(500), 1450 * K, &ds);
    assert_eq!(layer(&d, 5), Some(2));
    // The same budget under a configured 1.45 Mbit/s downlink: down at once.
    a.set_hard_limit(Some(1450 * K));
    let d = a.allocate(at(1000), 1450 * K, &ds);
    assert_eq!(layer(&d, 5), Some(1));
    // A larger budget does not lift it to the limit: steps up leave the tolerance free.
    let d = a.allocate(at(5000), 3000 * K, &ds);
    assert_eq!(layer(&d, 5), Some(1));
    assert_eq!(d.probe_bps, None);
    // A limit with room for the tolerance on top of the layer: up, and kept.
    a.set_hard_limit(Some(1700 * K));
    a.allocate(at(6000), 3000 * K, &ds);
    let d = a.allocate(at(7100), 3000 * K, &ds);
    assert_eq!(layer(&d, 5), Some(2));
    let d = a.allocate(at(9000), 1550 * K, &ds);
    assert_eq!(layer(&d, 5), Some(2));
}

#[test]
fn the_next_step_is_named_even_when_the_budget_has_no_room() {
    let ds = [
        audio(1),
        video(2, Priority::Normal),
        video(3, Priority::High),
    ];
    let mut a = BandwidthAllocator::new(AllocatorConfig::default());
    // Audio and both lowest layers; the stage's next layer would add 350k.
    let d = a.allocate(Instant::now(), 400 * K, &ds);
    assert_eq!((layer(&d, 2), layer(&d, 3)), (Some(0), Some(0)));
    assert_eq!(d.probe_bps, None);
    assert_eq!(d.next_bps, Some(d.allocated_bps + 350 * K));
    // Everything at the top: nothing left to climb.
    let mut a = BandwidthAllocator::new(AllocatorConfig::default());
    let d = a.allocate(Instant::now(), 10_000 * K, &ds);
    assert_eq!(d.next_bps, None);
}

fn single(id: u64, bps: u64) -> Demand {
    Demand {
        track: TrackId(id),
        kind: TrackKind::Video,
        priority: Priority::High,
        layer_bps: vec![bps],
    }
}

const FAILING: LinkSignals = LinkSignals {
    carried: false,
    failing: true,
    overloaded: true,
    proven_bps: 0,
};

#[test]
fn a_single_layer_starts_and_stays_whatever_the_estimate_says() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let ds = [audio(1), single(2, 2500 * K), video(3, Priority::Normal)];
    let mut a = BandwidthAllocator::new(AllocatorConfig::default());
    // A 1 Mbit/s estimate, no sign of trouble: the 2.5 Mbit/s encoder starts at once, and the
    // other camera gets what is left (nothing: it waits at its lowest layer's pause).
    let d = a.allocate_on(at(0), 1000 * K, UNSURE, &ds);
    assert_eq!(layer(&d, 2), Some(0));
    assert_eq!(layer(&d, 3), None, "the budget went to the single layer");
    // The estimate stays low for a minute: the single layer plays on.
    for ms in (500..60_000).step_by(500) {
        let d = a.allocate_on(at(ms), 300 * K, UNSURE, &ds);
        assert_eq!(layer(&d, 2), Some(0), "{ms}");
        assert!(!d.trial);
    }
}

#[test]
fn a_single_layer_is_paused_by_a_failing_link_and_tried_again() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let ds = [audio(1), single(2, 1500 * K)];
    let mut a = BandwidthAllocator::new(AllocatorConfig::default());
    a.allocate_on(at(0), 1000 * K, UNSURE, &ds);
    let d = a.allocate_on(at(2000), 1000 * K, FAILING, &ds);
    assert_eq!((layer(&d, 1), layer(&d, 2)), (Some(0), None), "audio stays");
    let d = a.allocate_on(at(2500), 1000 * K, UNSURE, &ds);
    assert_eq!(layer(&d, 2), None, "waits 1 s");
    let d = a.allocate_on(at(3000), 1000 * K, UNSURE, &ds);
    assert_eq!(layer(&d, 2), Some(0));
    assert!(d.trial, "resumed on trial");
    // The trial fails; the next one comes 2 s later.
    let d = a.allocate_on(at(3500), 1000 * K, FAILING, &ds);
    assert_eq!(layer(&d, 2), None);
    let d = a.allocate_on(at(5000), 1000 * K, UNSURE, &ds);
    assert_eq!(layer(&d, 2), None);
    let d = a.allocate_on(at(5500), 1000 * K, UNSURE, &ds);
    assert_eq!(layer(&d, 2), Some(0));
}

#[test]
fn a_configured_downlink_that_cannot_hold_a_single_layer_pauses_it() {
    let t0 = Instant::now();
    let ds = [audio(1), single(2, 2500 * K)];
    let mut a = BandwidthAllocator::new(AllocatorConfig::default());
    a.set_hard_limit(Some(2000 * K));
    let d = a.allocate_on(t0, 10_000 * K, CARRIED, &ds);
    assert_eq!((layer(&d, 1), layer(&d, 2)), (Some(0), None));
    a.set_hard_limit(Some(3000 * K));
    let d = a.allocate_on(t0 + Duration::from_millis(500), 10_000 * K, CARRIED, &ds);
    assert_eq!(layer(&d, 2), Some(0));
    assert_eq!(d.allocated_bps, 2540 * K);
}

#[test]
fn a_layer_left_on_evidence_is_not_tried_again_at_once() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let ds = [audio(1), video(2, Priority::High)];
    let mut a = BandwidthAllocator::new(AllocatorConfig::default());
    assert_eq!(
        layer(&a.allocate_on(at(0), 3000 * K, CARRIED, &ds), 2),
        Some(2)
    );
    // The link congests under the top layer: down, and the top layer is blocked for 5 s, then
    // taken only on headroom that lasts 2 s, while the estimate reads high now and then
    // (probe bursts through a shaper) but never for long.
    let d = a.allocate_on(at(500), 800 * K, OVERLOADED, &ds);
    assert_eq!(layer(&d, 2), Some(1));
    for ms in (1000..21_500).step_by(500) {
        let budget = if (ms / 1500) % 2 == 1 {
            3000 * K
        } else {
            800 * K
        };
        let d = a.allocate_on(at(ms), budget, CARRIED, &ds);
        assert_eq!(layer(&d, 2), Some(1), "{ms}");
    }
    // The link is back for good.
    for ms in (21_500..23_500).step_by(500) {
        let d = a.allocate_on(at(ms), 3000 * K, CARRIED, &ds);
        assert_eq!(layer(&d, 2), Some(1), "{ms}");
    }
    let d = a.allocate_on(at(23_500), 3000 * K, CARRIED, &ds);
    assert_eq!(layer(&d, 2), Some(2), "2 s of headroom");
    // A shrinking budget alone (no congestion, no loss) blocks nothing.
    let mut a = BandwidthAllocator::new(AllocatorConfig::default());
    a.allocate_on(at(0), 3000 * K, CARRIED, &ds);
    let d = a.allocate_on(at(500), 800 * K, UNSURE, &ds);
    assert_eq!(layer(&d, 2), Some(1));
    a.allocate_on(at(2500), 3000 * K, CARRIED, &ds);
    let d = a.allocate_on(at(3600), 3000 * K, CARRIED, &ds);
    assert_eq!(layer(&d, 2), Some(2));
}

#[test]
fn a_backed_off_layer_is_tried_once_its_headroom_has_lasted_two_seconds() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let ds = [audio(1), video(2, Priority::High)];
    let mut a = BandwidthAllocator::new(AllocatorConfig::default());
    a.allocate_on(at(0), 3000 * K, CARRIED, &ds);
    a.allocate_on(at(500), 800 * K, OVERLOADED, &ds);
    // The link is back for good at 5.5 s, when the block ends: the headroom lasts.
    for ms in (5500..7500).step_by(500) {
        let d = a.allocate_on(at(ms), 3000 * K, CARRIED, &ds);
        assert_eq!(layer(&d, 2), Some(1), "{ms}");
    }
    let d = a.allocate_on(at(7500), 3000 * K, CARRIED, &ds);
    assert_eq!(layer(&d, 2), Some(2));
}

#[test]
fn a_backed_off_layer_is_tried_again_once_the_link_has_carried_it() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let ds = [audio(1), video(2, Priority::High)];
    let mut a = BandwidthAllocator::new(AllocatorConfig::default());
    a.allocate_on(at(0), 3000 * K, CARRIED, &ds);
    a.allocate_on(at(500), 800 * K, OVERLOADED, &ds);
    // The link is back; padding towards the top layer went through for two seconds.
    let proven = LinkSignals {
        proven_bps: 1600 * K,
        ..CARRIED
    };
    a.allocate_on(at(3000), 3000 * K, proven, &ds);
    let d = a.allocate_on(at(4100), 3000 * K, proven, &ds);
    assert_eq!(layer(&d, 2), Some(2));
    // Proof of less than the step does not lift the block.
    let mut a = BandwidthAllocator::new(AllocatorConfig::default());
    a.allocate_on(at(0), 3000 * K, CARRIED, &ds);
    a.allocate_on(at(500), 800 * K, OVERLOADED, &ds);
    let short = LinkSignals {
        proven_bps: 900 * K,
        ..CARRIED
    };
    a.allocate_on(at(3000), 3000 * K, short, &ds);
    let d = a.allocate_on(at(4100), 3000 * K, short, &ds);
    assert_eq!(layer(&d, 2), Some(1));
}
