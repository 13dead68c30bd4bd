//! Rows, ratios, goals, the table and the picture, from made-up runs.
// A test fails by panicking; unwrap's panic names the line.
#![allow(clippy::unwrap_used)]

use super::check::check;
use super::driver::{DriveResult, LatencyMs};
use super::http::JournalCounters;
use super::report::*;
use super::svg;
use super::target::{StoreCounts, TargetInfo};
use super::workload::WorkloadSpec;

fn info(name: &str, durable: bool) -> TargetInfo {
    TargetInfo {
        name: name.into(),
        description: format!("{name} <test> & co"),
        durable,
    }
}

fn run(target: &str, rep: usize, per_s: f64, p99: f64, store: StoreCounts) -> RunRecord {
    let seen = DriveResult {
        sent: 110,
        granted: 80,
        sold_out: 20,
        limited: 10,
        claims_per_s: per_s,
        latency_ms: LatencyMs {
            p50: p99 / 4.0,
            p99,
            p999: p99 * 2.0,
            max: p99 * 3.0,
        },
        demand: 100,
        ..DriveResult::default()
    };
    let correctness = check(80, &seen, &store);
    RunRecord {
        target: target.into(),
        phase: "peak".into(),
        rep,
        offered_per_s: None,
        seen,
        correctness,
        journal: None,
    }
}

const GOOD: StoreCounts = StoreCounts {
    granted: 80,
    distinct_persons: 80,
    stock_left: 0,
};

fn report() -> CompareReport {
    let infos = vec![
        info("yunquan-http", true),
        info("redis-lua-none", false),
        info("postgres-row", true),
    ];
    let mut runs = Vec::new();
    for (rep, f) in [(1, 1.0), (2, 0.8), (3, 1.2)] {
        runs.push(run("yunquan-http", rep, 50_000.0 * f, 2.0, GOOD));
        runs.push(run("redis-lua-none", rep, 60_000.0 * f, 1.0, GOOD));
        // The second PostgreSQL run let a person hold two coupons.
        let pg = if rep == 2 {
            StoreCounts {
                distinct_persons: 79,
                ..GOOD
            }
        } else {
            GOOD
        };
        runs.push(run("postgres-row", rep, 2_000.0 * f, 40.0, pg));
    }
    let sweep = vec![
        SweepPoint {
            target: "yunquan-http".into(),
            fraction_of_peak: 0.25,
            offered_per_s: 12_500.0,
            achieved_per_s: 12_400.0,
            latency_ms: LatencyMs {
                p50: 0.4,
                p99: 1.5,
                p999: 3.0,
                max: 9.0,
            },
            correct: true,
        },
        SweepPoint {
            target: "yunquan-http".into(),
            fraction_of_peak: 0.5,
            offered_per_s: 25_000.0,
            achieved_per_s: 24_900.0,
            latency_ms: LatencyMs {
                p50: 0.6,
                p99: 6.5,
                p999: 12.0,
                max: 30.0,
            },
            correct: true,
        },
    ];
    let rows = rows(&infos, &runs);
    let goals = goals(&rows, &sweep);
    CompareReport {
        machine: Machine {
            cores: 2,
            memory_gib: 24.0,
            load_average_start: "1.0 1.0 1.0".into(),
            load_average_end: "2.0 1.5 1.0".into(),
        },
        workload: WorkloadSpec {
            persons: 100,
            stock: 80,
            repeat_fraction: 0.1,
            seed: 1,
        },
        claims: 110,
        clients: 64,
        reps: 3,
        rows,
        sweep,
        goals,
        runs,
    }
}

#[test]
fn spread_is_median_min_max() {
    let s = Spread::of(&[3.0, 1.0, 2.0]);
    assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
    assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
    assert_eq!(Spread::of(&[]), Spread::default());
    assert_eq!(Spread::of(&[f64::NAN, 5.0]).median, 5.0);
}

#[test]
fn rows_take_medians_and_ratios_to_yunquan_http() {
    let r = report();
    let yq = &r.rows[0];
    assert_eq!(yq.runs, 3);
    assert_eq!(yq.claims_per_s.median, 50_000.0);
    assert_eq!(yq.claims_per_s.min, 40_000.0);
    assert_eq!(yq.claims_per_s.max, 60_000.0);
    assert_eq!(yq.ratio_to_reference, Some(1.0));
    assert!((r.rows[1].ratio_to_reference.unwrap() - 1.2).abs() < 1e-9);
    assert!((r.rows[2].ratio_to_reference.unwrap() - 0.04).abs() < 1e-9);
    assert_eq!(yq.latency_ms.p99, 2.0);
}

#[test]
fn an_incorrect_run_marks_its_target_and_says_where() {
    let r = report();
    assert!(r.rows[0].correct && r.rows[1].correct);
    let pg = &r.rows[2];
    assert!(!pg.correct);
    assert_eq!(pg.problems.len(), 1);
    assert!(pg.problems[0].starts_with("run 2: "), "{:?}", pg.problems);
    let text = table(&r);
    assert!(text.contains("postgres-row: run 2:"), "{text}");
    assert!(text
        .lines()
        .any(|l| l.starts_with("postgres-row") && l.contains("NO")));
}

#[test]
fn goals_are_judged_from_the_numbers() {
    let r = report();
    assert_eq!(r.goals.len(), 3);
    // 50k < Redis's 60k: not met; 50k >= 20 x 2k: met; p99 6.5 ms at half: not met.
    assert_eq!(r.goals[0].met, Some(false));
    assert_eq!(r.goals[1].met, Some(true));
    assert_eq!(r.goals[2].met, Some(false));
    assert!(r.goals[2].measured.contains("6.50 ms"));
    let none = goals(&[], &[]);
    assert!(none.iter().all(|g| g.met.is_none()));
}

#[test]
fn the_table_lists_every_target_with_its_ratio() {
    let text = table(&report());
    for name in ["yunquan-http", "redis-lua-none", "postgres-row"] {
        assert!(text.contains(name), "{text}");
    }
    assert!(text.contains("50000 (40000..60000)"), "{text}");
    assert!(text.contains("1.20x") && text.contains("0.04x"), "{text}");
    assert!(
        text.contains("[NOT MET]") && text.contains("[met]"),
        "{text}"
    );
    assert!(text.contains(" 50% of peak"), "{text}");
}

#[test]
fn the_baseline_sweep_is_listed_and_drawn_but_never_judged() {
    let mut r = report();
    let mut base = r.sweep[1].clone();
    base.target = SWEEP_BASELINE_TARGET.into();
    base.latency_ms.p99 = 0.9;
    r.sweep.push(base.clone());
    let text = table(&r);
    assert!(
        text.contains(&format!("{SWEEP_BASELINE_TARGET}  50% of peak")),
        "{text}"
    );
    let s = svg::render(&r);
    assert!(
        s.contains(&format!("{SWEEP_BASELINE_TARGET} p99")),
        "legend missing"
    );
    assert!(
        s.contains("stroke-dasharray=\"4,3\""),
        "baseline curve missing"
    );
    // The half-load goal reads the reference's point, whatever the baseline measured.
    base.latency_ms.p99 = 100.0;
    r.sweep.push(base);
    let g = goals(&r.rows, &r.sweep);
    let half = g.iter().find(|g| g.goal.contains("half")).unwrap();
    assert!(half.measured.contains("6.50"), "{}", half.measured);
}

#[test]
fn the_svg_is_well_formed_and_escapes_names() {
    let mut r = report();
    r.rows[1].target.name = "redis<&>".into();
    let s = svg::render(&r);
    assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
    for name in [
        "yunquan-http",
        "redis&lt;&amp;&gt;",
        "postgres-row (INCORRECT)",
    ] {
        assert!(s.contains(name), "{name} missing");
    }
    assert!(s.contains("p99 goal 5 ms"));
    assert!(!s.contains("redis<&>"), "text must be escaped");
    // Every opened element is closed or self-closing.
    let opened = s.matches("<text").count();
    assert_eq!(opened, s.matches("</text>").count());
    assert!(
        s.matches("<circle").count() >= 6,
        "three series of two points"
    );
}

#[test]
fn journal_figures_are_differences_per_write() {
    let counters = |writes, events, sync_s, fast| JournalCounters {
        writes,
        events,
        sync_s,
        writes_fast: fast,
        claims: events,
        claims_fast: events - 2.0 * (writes - fast),
        requests: events + 1.0,
        requests_fast: fast,
    };
    let before = counters(10.0, 100.0, 0.01, 9.0);
    let j = JournalFigures::between(before, counters(110.0, 1_300.0, 0.11, 106.0)).unwrap();
    assert_eq!(j.writes, 100);
    assert!((j.events_per_write - 12.0).abs() < 1e-9);
    assert!((j.sync_ms_mean - 1.0).abs() < 1e-9);
    // 4 - 1 slow writes; claims slow 8 - 2; requests 1,200 of which 1,200 - 97 slow.
    assert_eq!(j.writes_slow, 3);
    assert_eq!(j.claims_slow, 6);
    assert_eq!((j.requests, j.requests_slow), (1_200, 1_103));
    assert!(JournalFigures::between(before, before).is_none());
}

#[test]
fn nice_axis_maxima() {
    assert_eq!(svg::nice_max(0.0), 1.0);
    assert_eq!(svg::nice_max(73_000.0), 100_000.0);
    assert_eq!(svg::nice_max(1_900.0), 2_000.0);
    assert_eq!(svg::nice_max(4.2), 5.0);
    assert_eq!(svg::nice_max(10.0), 10.0);
}

#[test]
fn a_rows_journal_figures_are_the_medians_of_its_runs() {
    let infos = vec![info("yunquan-http", true)];
    let runs: Vec<RunRecord> = [
        (100, 5, 1_000, 40, 30),
        (300, 1, 3_000, 10, 9),
        (200, 9, 2_000, 70, 60),
    ]
    .into_iter()
    .enumerate()
    .map(
        |(i, (writes, writes_slow, requests, requests_slow, claims_slow))| {
            let mut r = run("yunquan-http", i + 1, 50_000.0, 2.0, GOOD);
            r.journal = Some(JournalFigures {
                writes,
                events_per_write: writes as f64 / 100.0,
                sync_ms_mean: 0.2,
                writes_slow,
                requests,
                requests_slow,
                claims_slow,
            });
            r
        },
    )
    .collect();
    let j = rows(&infos, &runs)[0].journal.unwrap();
    assert_eq!((j.writes, j.writes_slow), (200, 5));
    assert_eq!(
        (j.requests, j.requests_slow, j.claims_slow),
        (2_000, 40, 30)
    );
    assert!((j.events_per_write - 2.0).abs() < 1e-9);
}
