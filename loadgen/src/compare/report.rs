//! The comparison's results: every run, one row per target (medians over the
//! repetitions, ratio to yunquan over HTTP), the latency-vs-load curve, the goals,
//! and the table printed for people.

use super::check::Correctness;
use super::driver::{DriveResult, LatencyMs};
use super::http::JournalCounters;
use super::target::TargetInfo;
use super::workload::WorkloadSpec;
use serde::Serialize;
use std::fmt::Write as _;

/// The target every other is compared with.
pub const REFERENCE_TARGET: &str = "yunquan-http";
/// The target paced at the reference's rates beside it, when it is measured: the
/// fastest rival, whose latency at the same offered load shows what the machine and
/// the load generator add by themselves.
pub const SWEEP_BASELINE_TARGET: &str = "redis-lua-none";
/// Goal: yunquan over HTTP takes at least this many times PostgreSQL's claims/s.
pub const POSTGRES_FACTOR_GOAL: f64 = 20.0;
/// Goal: p99 at half of yunquan's peak, in milliseconds, at most.
pub const P99_AT_HALF_PEAK_GOAL_MS: f64 = 5.0;

/// How yunquan's group commit went during one run, and how many of its claims were slow
/// by the server's own clocks (from the server's metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct JournalFigures {
    /// Durable (fsynced) journal writes.
    pub writes: u64,
    /// Claims and other events per write, on average.
    pub events_per_write: f64,
    /// Time of one write, on average, in milliseconds.
    pub sync_ms_mean: f64,
    /// Journal writes that took longer than [`SLOW_MS`](super::http::SLOW_MS) ms.
    pub writes_slow: u64,
    /// Claim requests the server's HTTP layer timed.
    pub requests: u64,
    /// Of those, requests that took the server longer than [`SLOW_MS`](super::http::SLOW_MS) ms from routing to
    /// response (a slow claim the clients saw but this did not was slow outside the
    /// handler: in the kernel, the scheduler, or the client).
    pub requests_slow: u64,
    /// Claims whose engine call (mailbox, batch, durable write, reply) took longer than
    /// [`SLOW_MS`](super::http::SLOW_MS) ms.
    pub claims_slow: u64,
}

impl JournalFigures {
    /// From counters read before and after a run.
    pub fn between(before: JournalCounters, after: JournalCounters) -> Option<JournalFigures> {
        let d = after.since(before);
        (d.writes > 0.0).then(|| JournalFigures {
            writes: d.writes as u64,
            events_per_write: d.events / d.writes,
            sync_ms_mean: d.sync_s * 1_000.0 / d.writes,
            writes_slow: (d.writes - d.writes_fast) as u64,
            requests: d.requests as u64,
            requests_slow: (d.requests - d.requests_fast) as u64,
            claims_slow: (d.claims - d.claims_fast) as u64,
        })
    }
}

/// One measured run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    /// Target name.
    pub target: String,
    /// `peak` (closed loop) or `sweep` (paced).
    pub phase: String,
    /// Repetition, from 1.
    pub rep: usize,
    /// Offered load of a paced run, claims/s.
    pub offered_per_s: Option<f64>,
    /// What the clients saw.
    pub seen: DriveResult,
    /// The correctness verdict from the target's store.
    pub correctness: Correctness,
    /// Group-commit figures, where the target exports them.
    pub journal: Option<JournalFigures>,
}

/// Median, min and max.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spread {
    /// Median (mean of the middle two for an even count).
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// Of `values` (all zero when empty).
    pub fn of(values: &[f64]) -> Spread {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Spread::default();
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Spread {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }
}

/// One target's line of the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Name, description, durability.
    pub target: TargetInfo,
    /// Peak runs.
    pub runs: usize,
    /// Claims answered per second (every outcome counts), closed loop.
    pub claims_per_s: Spread,
    /// Medians over the runs of each percentile, closed loop.
    pub latency_ms: LatencyMs,
    /// Every run's correctness check passed.
    pub correct: bool,
    /// Problems found, with the run they were found in.
    pub problems: Vec<String>,
    /// Median claims/s over yunquan-http's median (None without that target).
    pub ratio_to_reference: Option<f64>,
    /// Runs the time limit stopped before every claim was sent.
    pub cut_short_runs: usize,
    /// Medians of the group-commit figures, where the target exports them.
    pub journal: Option<JournalFigures>,
}

/// One point of the latency-vs-offered-load curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepPoint {
    /// Target name.
    pub target: String,
    /// Offered load as a fraction of the reference target's median peak.
    pub fraction_of_peak: f64,
    /// Offered load, claims/s.
    pub offered_per_s: f64,
    /// Claims answered per second.
    pub achieved_per_s: f64,
    /// Latency from intended send time (coordinated-omission corrected).
    pub latency_ms: LatencyMs,
    /// The run's correctness check passed.
    pub correct: bool,
}

/// One goal and whether it was met.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Goal {
    /// What is asked.
    pub goal: String,
    /// What was measured, in words.
    pub measured: String,
    /// `None` when a target it needs did not run.
    pub met: Option<bool>,
}

/// The machine the numbers come from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    /// Logical cores.
    pub cores: usize,
    /// Memory, GiB.
    pub memory_gib: f64,
    /// /proc/loadavg at the start.
    pub load_average_start: String,
    /// /proc/loadavg at the end.
    pub load_average_end: String,
}

/// Everything one comparison produced; written as JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareReport {
    /// Machine facts.
    pub machine: Machine,
    /// The workload every target got.
    pub workload: WorkloadSpec,
    /// Claims in the sequence.
    pub claims: usize,
    /// Concurrent clients per target.
    pub clients: usize,
    /// Peak repetitions per target.
    pub reps: usize,
    /// One row per target, in the order they ran.
    pub rows: Vec<Row>,
    /// The latency curve.
    pub sweep: Vec<SweepPoint>,
    /// The goals.
    pub goals: Vec<Goal>,
    /// Every run.
    pub runs: Vec<RunRecord>,
}

/// One row per target from the peak runs.
pub fn rows(targets: &[TargetInfo], runs: &[RunRecord]) -> Vec<Row> {
    let mut rows: Vec<Row> = targets
        .iter()
        .map(|t| {
            let mine: Vec<&RunRecord> = runs
                .iter()
                .filter(|r| r.target == t.name && r.phase == "peak")
                .collect();
            let med = |f: fn(&RunRecord) -> f64| {
                Spread::of(&mine.iter().map(|r| f(r)).collect::<Vec<_>>()).median
            };
            Row {
                target: t.clone(),
                runs: mine.len(),
                claims_per_s: Spread::of(
                    &mine.iter().map(|r| r.seen.claims_per_s).collect::<Vec<_>>(),
                ),
                latency_ms: LatencyMs {
                    p50: med(|r| r.seen.latency_ms.p50),
                    p99: med(|r| r.seen.latency_ms.p99),
                    p999: med(|r| r.seen.latency_ms.p999),
                    max: med(|r| r.seen.latency_ms.max),
                },
                correct: !mine.is_empty() && mine.iter().all(|r| r.correctness.ok),
                problems: mine
                    .iter()
                    .flat_map(|r| {
                        r.correctness
                            .problems
                            .iter()
                            .map(move |p| format!("run {}: {p}", r.rep))
                    })
                    .collect(),
                ratio_to_reference: None,
                cut_short_runs: mine.iter().filter(|r| r.seen.cut_short).count(),
                journal: {
                    let j: Vec<JournalFigures> = mine.iter().filter_map(|r| r.journal).collect();
                    // Every figure is the median of the runs', each taken on its own.
                    let median = |f: fn(&JournalFigures) -> f64| {
                        Spread::of(&j.iter().map(f).collect::<Vec<_>>()).median
                    };
                    (!j.is_empty()).then(|| JournalFigures {
                        writes: median(|x| x.writes as f64) as u64,
                        events_per_write: median(|x| x.events_per_write),
                        sync_ms_mean: median(|x| x.sync_ms_mean),
                        writes_slow: median(|x| x.writes_slow as f64) as u64,
                        requests: median(|x| x.requests as f64) as u64,
                        requests_slow: median(|x| x.requests_slow as f64) as u64,
                        claims_slow: median(|x| x.claims_slow as f64) as u64,
                    })
                },
            }
        })
        .collect();
    let reference = rows
        .iter()
        .find(|r| r.target.name == REFERENCE_TARGET)
        .map(|r| r.claims_per_s.median)
        .filter(|m| *m > 0.0);
    for r in &mut rows {
        r.ratio_to_reference = reference.map(|m| r.claims_per_s.median / m);
    }
    rows
}

/// The goals, judged from the rows and the curve.
pub fn goals(rows: &[Row], sweep: &[SweepPoint]) -> Vec<Goal> {
    let find = |name: &str| rows.iter().find(|r| r.target.name == name);
    let yq = find(REFERENCE_TARGET);
    let mut out = Vec::new();
    let redis = find("redis-lua-none");
    out.push(Goal {
        goal: "yunquan-http durable claims/s >= Redis Lua with no persistence".into(),
        measured: match (yq, redis) {
            (Some(y), Some(r)) => format!(
                "{:.0} vs {:.0} claims/s ({:.2}x)",
                y.claims_per_s.median,
                r.claims_per_s.median,
                y.claims_per_s.median / r.claims_per_s.median.max(f64::MIN_POSITIVE)
            ),
            _ => "not measured".into(),
        },
        met: yq
            .zip(redis)
            .map(|(y, r)| y.claims_per_s.median >= r.claims_per_s.median),
    });
    let pg = find("postgres-row");
    out.push(Goal {
        goal: format!("yunquan-http claims/s >= {POSTGRES_FACTOR_GOAL}x PostgreSQL's"),
        measured: match (yq, pg) {
            (Some(y), Some(p)) => format!(
                "{:.0} vs {:.0} claims/s ({:.1}x)",
                y.claims_per_s.median,
                p.claims_per_s.median,
                y.claims_per_s.median / p.claims_per_s.median.max(f64::MIN_POSITIVE)
            ),
            _ => "not measured".into(),
        },
        met: yq
            .zip(pg)
            .map(|(y, p)| y.claims_per_s.median >= POSTGRES_FACTOR_GOAL * p.claims_per_s.median),
    });
    let half = sweep
        .iter()
        .filter(|p| p.target == REFERENCE_TARGET)
        .min_by(|a, b| {
            (a.fraction_of_peak - 0.5)
                .abs()
                .total_cmp(&(b.fraction_of_peak - 0.5).abs())
        })
        .filter(|p| (p.fraction_of_peak - 0.5).abs() < 0.05);
    out.push(Goal {
        goal: format!("yunquan-http p99 at half of its peak <= {P99_AT_HALF_PEAK_GOAL_MS} ms"),
        measured: half.map_or("not measured".into(), |p| {
            format!(
                "p99 {:.2} ms at {:.0} claims/s offered",
                p.latency_ms.p99, p.offered_per_s
            )
        }),
        met: half.map(|p| p.latency_ms.p99 <= P99_AT_HALF_PEAK_GOAL_MS),
    });
    out
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The table for people, goals and curve included.
pub fn table(r: &CompareReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} persons, stock {}, {} claims ({:.0}% repeat grabs), {} clients, no pipelining, closed loop, {} runs per target",
        r.workload.persons,
        r.workload.stock,
        r.claims,
        r.workload.repeat_fraction * 100.0,
        r.clients,
        r.reps
    );
    let header = [
        "target",
        "durable",
        "claims/s median (min..max)",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "correct",
        "vs yunquan-http",
    ];
    let lines: Vec<[String; 8]> = r
        .rows
        .iter()
        .map(|row| {
            [
                row.target.name.clone(),
                if row.target.durable { "yes" } else { "no" }.to_owned(),
                format!(
                    "{:.0} ({:.0}..{:.0})",
                    row.claims_per_s.median, row.claims_per_s.min, row.claims_per_s.max
                ),
                ms(row.latency_ms.p50),
                ms(row.latency_ms.p99),
                ms(row.latency_ms.p999),
                if row.correct { "yes" } else { "NO" }.to_owned(),
                row.ratio_to_reference
                    .map_or("-".to_owned(), |x| format!("{x:.2}x")),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for l in &lines {
        for (w, c) in widths.iter_mut().zip(l) {
            *w = (*w).max(c.len());
        }
    }
    let mut put = |cells: &[String]| {
        let line: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    };
    put(&header.map(str::to_owned));
    for l in &lines {
        put(l);
    }
    for row in &r.rows {
        if row.cut_short_runs > 0 {
            let _ = writeln!(
                out,
                "  {}: {} of {} runs hit the time limit before every claim was sent (checked against the claims that were)",
                row.target.name, row.cut_short_runs, row.runs
            );
        }
        if let Some(j) = row.journal {
            let _ = writeln!(
                out,
                "  {}: {:.1} events per durable journal write, {:.2} ms per write (medians)",
                row.target.name, j.events_per_write, j.sync_ms_mean
            );
        }
    }
    for row in r.rows.iter().filter(|row| !row.correct) {
        for p in &row.problems {
            let _ = writeln!(out, "  {}: {p}", row.target.name);
        }
    }
    if !r.sweep.is_empty() {
        let _ = writeln!(
            out,
            "\nlatency vs offered load (paced, from intended send time; % of {REFERENCE_TARGET}'s peak):"
        );
        for p in &r.sweep {
            let _ = writeln!(
                out,
                "  {:<14} {:>3.0}% of peak: offered {:>7.0}/s, achieved {:>7.0}/s, p50 {} ms, p99 {} ms, p999 {} ms{}",
                p.target,
                p.fraction_of_peak * 100.0,
                p.offered_per_s,
                p.achieved_per_s,
                ms(p.latency_ms.p50),
                ms(p.latency_ms.p99),
                ms(p.latency_ms.p999),
                if p.correct { "" } else { ", INCORRECT" }
            );
        }
    }
    let _ = writeln!(out, "\ngoals:");
    for g in &r.goals {
        let verdict = match g.met {
            Some(true) => "met",
            Some(false) => "NOT MET",
            None => "not measured",
        };
        let _ = writeln!(out, "  [{verdict}] {}: {}", g.goal, g.measured);
    }
    out
}
