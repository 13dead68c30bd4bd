// A test fails by panicking; unwrap's panic names the line.
#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;

const TARGET: Duration = Duration::from_millis(10);
const FAST: Duration = Duration::from_millis(1);
const SLOW: Duration = Duration::from_millis(50);

fn limit(min: usize, max: usize, window: u32) -> AdaptiveLimit {
    AdaptiveLimit::new(AdmissionConfig {
        in_flight_min: min,
        in_flight_max: max,
        latency_p90_target: TARGET,
        window_requests: window,
    })
}

/// Admits `n` requests at once (the limit permitting), then answers them all with `latency`.
fn wave(l: &AdaptiveLimit, n: usize, latency: Duration) -> usize {
    let admitted: Vec<_> = (0..n).filter_map(|_| l.try_admit()).collect();
    let count = admitted.len();
    for a in admitted {
        let _ = a.answered(latency);
    }
    count
}

#[test]
fn the_limit_is_enforced_and_places_come_back() {
    let l = limit(1, 3, 100);
    let held: Vec<_> = (0..3).map(|_| l.try_admit().unwrap()).collect();
    assert!(
        l.try_admit().is_none(),
        "a fourth request got past a limit of 3"
    );
    assert_eq!(l.in_flight(), 3);
    drop(held);
    assert_eq!(l.in_flight(), 0);
    assert!(l.try_admit().is_some());
}

#[test]
fn a_dropped_request_frees_its_place_without_counting() {
    let l = limit(1, 8, 1);
    let a = l.try_admit().unwrap();
    drop(a);
    assert_eq!(l.in_flight(), 0);
    // Nothing was counted, so no decision was made.
    assert_eq!(l.limit(), 8);
}

#[test]
fn slow_answers_under_a_full_limit_shrink_it_to_the_floor_and_no_further() {
    let l = limit(4, 64, 16);
    let mut seen = vec![l.limit()];
    for _ in 0..40 {
        // Ask for twice the limit: the limit is the only thing holding requests back.
        wave(&l, 2 * l.limit(), SLOW);
        seen.push(l.limit());
    }
    assert_eq!(l.limit(), 4, "limits seen: {seen:?}");
    assert!(seen.windows(2).all(|w| w[1] <= w[0]), "{seen:?}");
    assert!(seen.iter().any(|&x| x < 64 && x > 4), "{seen:?}");
}

#[test]
fn fast_answers_with_refusals_grow_it_back_to_the_cap_and_no_further() {
    let l = limit(4, 64, 16);
    for _ in 0..40 {
        wave(&l, 2 * l.limit(), SLOW);
    }
    assert_eq!(l.limit(), 4);
    for _ in 0..200 {
        wave(&l, 2 * l.limit(), FAST);
    }
    assert_eq!(l.limit(), 64);
}

#[test]
fn fast_answers_without_refusals_leave_it_alone() {
    let l = limit(4, 64, 16);
    for _ in 0..40 {
        wave(&l, 2 * l.limit(), SLOW);
    }
    let low = l.limit();
    for _ in 0..100 {
        // Well under the limit: nobody is turned away, so there is no reason to grow.
        wave(&l, 2, FAST);
    }
    assert_eq!(l.limit(), low);
}

#[test]
fn slow_answers_on_an_idle_server_leave_it_alone() {
    // One request at a time, each slow by nature (not by queueing): shrinking the
    // limit would refuse others and fix nothing.
    let l = limit(4, 64, 16);
    for _ in 0..100 {
        wave(&l, 1, SLOW);
    }
    assert_eq!(l.limit(), 64);
}

#[test]
fn a_tenth_of_slow_answers_is_within_the_target() {
    let l = limit(4, 64, 20);
    // 2 slow of 20 (10%): the p90 is still within the target.
    let admitted: Vec<_> = (0..20).map(|_| l.try_admit().unwrap()).collect();
    for (i, a) in admitted.into_iter().enumerate() {
        assert_eq!(a.answered(if i < 2 { SLOW } else { FAST }), None);
    }
    assert_eq!(l.limit(), 64);
    // 3 slow of 20: above it, with at most 40 of the 64 allowed in flight.
    let admitted: Vec<_> = (0..40).map(|_| l.try_admit().unwrap()).collect();
    let mut it = admitted.into_iter();
    for (i, a) in it.by_ref().take(20).enumerate() {
        let changed = a.answered(if i < 3 { SLOW } else { FAST });
        assert_eq!(changed, (i == 19).then_some(48));
    }
    assert_eq!(l.limit(), 48, "a quarter off");
}

#[test]
fn a_cap_far_above_the_clients_is_cut_below_them() {
    // 1,024 clients queueing slowly behind a cap of 4,096: a limit they never reach
    // would hold nothing back, so the cut starts from twice the 1,024 in flight.
    let l = limit(32, 4_096, AdmissionConfig::WINDOW_REQUESTS_DEFAULT);
    let mut seen = vec![];
    for _ in 0..4 {
        let admitted = wave(&l, 1_024, SLOW);
        seen.push((admitted, l.limit()));
    }
    assert_eq!(
        seen,
        [(1_024, 1_536), (1_024, 1_152), (1_024, 864), (864, 648)],
        "nobody is turned away until the limit is below the clients"
    );
}

#[test]
fn fewer_in_flight_than_the_floor_never_cut_the_limit() {
    let l = limit(8, 64, 16);
    for _ in 0..100 {
        wave(&l, 7, SLOW);
    }
    assert_eq!(l.limit(), 64);
    wave(&l, 16, SLOW);
    assert_eq!(
        l.limit(),
        24,
        "16 in flight reach the floor of 8: a quarter below 32"
    );
}

#[test]
fn a_zero_target_keeps_a_fixed_cap() {
    let l = AdaptiveLimit::new(AdmissionConfig {
        in_flight_min: 1,
        in_flight_max: 16,
        latency_p90_target: Duration::ZERO,
        window_requests: 1,
    });
    for _ in 0..50 {
        wave(&l, 32, SLOW);
    }
    assert_eq!(l.limit(), 16);
}

#[test]
fn bounds_are_repaired() {
    let l = AdaptiveLimit::new(AdmissionConfig {
        in_flight_min: 100,
        in_flight_max: 0,
        latency_p90_target: TARGET,
        window_requests: 0,
    });
    assert_eq!(l.limit(), 1);
    let a = l.try_admit().unwrap();
    assert!(l.try_admit().is_none());
    assert_eq!(a.answered(SLOW), None);
    assert_eq!(l.limit(), 1);
}

proptest! {
    /// Any sequence of waves and latencies keeps the limit within its bounds, never
    /// admits more than the limit at once, and gives every place back.
    #[test]
    fn the_limit_stays_in_bounds(
        min in 1usize..20,
        extra in 0usize..100,
        window in 1u32..50,
        waves in proptest::collection::vec((0usize..200, 0u64..40), 1..60),
    ) {
        let l = limit(min, min + extra, window);
        for (n, ms) in waves {
            let before = l.limit();
            let admitted: Vec<_> = (0..n).filter_map(|_| l.try_admit()).collect();
            prop_assert!(admitted.len() <= before);
            prop_assert_eq!(admitted.len(), n.min(before));
            for a in admitted {
                let _ = a.answered(Duration::from_millis(ms));
                prop_assert!((min..=min + extra).contains(&l.limit()));
            }
            prop_assert_eq!(l.in_flight(), 0);
        }
    }
}

#[test]
fn requests_in_flight_never_exceed_the_limit_under_contention() {
    // Refused requests must not show in the count: a place they seem to hold for an
    // instant turns away a request that had one, and raises the window's peak.
    let l = limit(1, 1, 1_000_000);
    let done = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let (l, done) = (l.clone(), Arc::clone(&done));
            std::thread::spawn(move || {
                for _ in 0..500_000 {
                    drop(l.try_admit());
                }
                done.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();
    let mut seen_max = 0;
    while done.load(Ordering::Relaxed) < threads.len() {
        seen_max = seen_max.max(l.in_flight());
    }
    for t in threads {
        t.join().unwrap();
    }
    assert!(seen_max <= 1, "{seen_max} in flight under a limit of 1");
    assert_eq!(l.in_flight(), 0);
}

#[test]
fn one_backlog_of_slow_answers_cuts_the_limit_once() {
    // A full limit's worth of requests that queued behind each other: their answers all
    // come from the same overload, and a decrease cannot show in any of them.
    let l = limit(4, 64, 16);
    let held: Vec<_> = (0..64).map(|_| l.try_admit().unwrap()).collect();
    let changes: Vec<usize> = held.into_iter().filter_map(|a| a.answered(SLOW)).collect();
    assert_eq!(changes, [48], "one overload, one quarter off");
    // Requests admitted under the new limit are counted again.
    let held: Vec<_> = (0..48).map(|_| l.try_admit().unwrap()).collect();
    let changes: Vec<usize> = held.into_iter().filter_map(|a| a.answered(SLOW)).collect();
    assert_eq!(changes, [36]);
}

#[test]
fn a_full_default_limit_answering_slowly_does_not_fall_to_the_floor_at_once() {
    let l = limit(32, 4_096, AdmissionConfig::WINDOW_REQUESTS_DEFAULT);
    let held: Vec<_> = (0..4_096).map(|_| l.try_admit().unwrap()).collect();
    for a in held {
        let _ = a.answered(SLOW);
    }
    assert_eq!(l.limit(), 3_072);
}
