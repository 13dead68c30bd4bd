//! Runs every target in turn, the repetitions interleaved (target A, B, C, then A, B,
//! C again) so a slow minute on a shared machine hurts every target alike; then paces
//! yunquan at fractions of its peak for the latency curve.

use super::check::check;
use super::driver::{drive, RunSpec};
use super::http::{HttpTarget, JournalCounters, SLOW_MS};
use super::inprocess::InProcessTarget;
use super::postgres::PostgresTarget;
use super::redis::RedisTarget;
use super::report::{self, CompareReport, JournalFigures, Machine, RunRecord, Spread, SweepPoint};
use super::target::{ClaimTarget, TargetInfo};
use super::workload::{Sequence, WorkloadSpec};
use std::path::PathBuf;
use std::sync::Arc;

/// Where and how to reach each target; absent ones are skipped.
#[derive(Clone, Default)]
pub struct Targets {
    /// `yunquan serve` base URL and a manager token for it.
    pub yunquan_http: Option<(String, String)>,
    /// Run the engine in this process: data directory (None: temporary) and shards.
    pub yunquan_inprocess: Option<(Option<PathBuf>, u32)>,
    /// Redis URLs, one target each (labelled from the server's persistence settings).
    pub redis: Vec<String>,
    /// PostgreSQL URL.
    pub postgres: Option<String>,
}

impl std::fmt::Debug for Targets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The manager token is a credential: never in logs.
        f.debug_struct("Targets")
            .field("yunquan_http", &self.yunquan_http.as_ref().map(|(u, _)| u))
            .field("yunquan_inprocess", &self.yunquan_inprocess)
            .field("redis", &self.redis)
            .field("postgres", &self.postgres)
            .finish()
    }
}

/// A comparison.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    /// The workload.
    pub workload: WorkloadSpec,
    /// Concurrent clients per target.
    pub clients: usize,
    /// Peak repetitions per target.
    pub reps: usize,
    /// A peak run starts no claim after this long, in seconds (it is then flagged).
    pub run_duration_s_max: f64,
    /// Offered loads of the curve, as fractions of yunquan's median peak.
    pub sweep_fractions: Vec<f64>,
    /// Length of each paced run, in seconds.
    pub sweep_duration_s: f64,
    /// The targets.
    pub targets: Targets,
}

/// A started target of any kind.
enum AnyTarget {
    /// yunquan over HTTP.
    Http(Arc<HttpTarget>),
    /// yunquan in this process.
    InProcess(Arc<InProcessTarget>),
    /// Redis with the Lua script.
    Redis(Arc<RedisTarget>),
    /// PostgreSQL with the row design.
    Postgres(Arc<PostgresTarget>),
}

/// One run's result.
type Measured = (super::driver::DriveResult, super::check::Correctness);

async fn measure<T: ClaimTarget>(
    t: &Arc<T>,
    seq: &Arc<Sequence>,
    stock: u64,
    spec: RunSpec,
) -> anyhow::Result<Measured> {
    let round = Arc::new(t.open_round(stock).await?);
    let seen = drive(Arc::clone(t), Arc::clone(&round), Arc::clone(seq), spec).await;
    let store = t.verify(&round).await?;
    let verdict = check(stock, &seen, &store);
    Ok((seen, verdict))
}

impl AnyTarget {
    fn info(&self) -> TargetInfo {
        match self {
            AnyTarget::Http(t) => t.info(),
            AnyTarget::InProcess(t) => t.info(),
            AnyTarget::Redis(t) => t.info(),
            AnyTarget::Postgres(t) => t.info(),
        }
    }

    /// Lets the target go: stops an in-process engine (its threads) and closes the
    /// connections of the others (a PostgreSQL backend per client exits with its own).
    async fn release(self) {
        if let AnyTarget::InProcess(t) = &self {
            t.shutdown().await;
        }
    }

    /// Group-commit and latency counters, where the target has them.
    async fn journal(&self) -> Option<JournalCounters> {
        match self {
            AnyTarget::Http(t) => t.journal_counters().await,
            _ => None,
        }
    }

    /// One run, with the group-commit figures around it where there are any.
    async fn measure(
        &self,
        seq: &Arc<Sequence>,
        stock: u64,
        spec: RunSpec,
    ) -> anyhow::Result<(Measured, Option<JournalFigures>)> {
        let before = self.journal().await;
        let measured = self.measure_only(seq, stock, spec).await?;
        let after = self.journal().await;
        let journal = before
            .zip(after)
            .and_then(|(b, a)| JournalFigures::between(b, a));
        Ok((measured, journal))
    }

    async fn measure_only(
        &self,
        seq: &Arc<Sequence>,
        stock: u64,
        spec: RunSpec,
    ) -> anyhow::Result<Measured> {
        match self {
            AnyTarget::Http(t) => measure(t, seq, stock, spec).await,
            AnyTarget::InProcess(t) => measure(t, seq, stock, spec).await,
            AnyTarget::Redis(t) => measure(t, seq, stock, spec).await,
            AnyTarget::Postgres(t) => measure(t, seq, stock, spec).await,
        }
    }
}

fn machine(load_start: String) -> Machine {
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib: (mem_kib / 1_048_576.0 * 10.0).round() / 10.0,
        load_average_start: load_start,
        load_average_end: load_average(),
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn say(record: &RunRecord) {
    let s = &record.seen;
    eprintln!(
        "  {} {} {}{}: {:.0} claims/s, {} sent ({} granted, {} sold out, {} limited, {} errors), p50 {:.2} ms, p99 {:.2} ms, {}",
        record.phase,
        record.rep,
        record.target,
        record
            .offered_per_s
            .map_or(String::new(), |r| format!(" at {r:.0}/s")),
        s.claims_per_s,
        s.sent,
        s.granted,
        s.sold_out,
        s.limited,
        s.errors,
        s.latency_ms.p50,
        s.latency_ms.p99,
        if record.correctness.ok {
            "correct".to_owned()
        } else {
            format!("INCORRECT: {}", record.correctness.problems.join("; "))
        }
    );
    if let Some(j) = record.journal {
        eprintln!(
            "    group commit: {} durable writes, {:.1} events each, {:.2} ms each, {} over {SLOW_MS} ms",
            j.writes, j.events_per_write, j.sync_ms_mean, j.writes_slow
        );
        eprintln!(
            "    server's clock: {} of {} claim requests over {SLOW_MS} ms in the handler, {} in the engine",
            j.requests_slow, j.requests, j.claims_slow
        );
    }
}

/// Starts the targets, runs everything, and returns the report.
pub async fn run(config: CompareConfig) -> anyhow::Result<CompareReport> {
    let load_start = load_average();
    let seq = Arc::new(Sequence::build(&config.workload)?);
    let persons = config.workload.persons;
    let clients = config.clients.max(1);
    let mut targets = Vec::new();
    let t = &config.targets;
    if let Some((url, token)) = &t.yunquan_http {
        eprintln!("setting up yunquan-http at {url}: {persons} residents and their tokens");
        targets.push(AnyTarget::Http(Arc::new(
            HttpTarget::connect(url, token, persons, clients).await?,
        )));
    }
    if let Some((data, shards)) = &t.yunquan_inprocess {
        eprintln!("setting up yunquan-inprocess: {shards} shards, {persons} residents");
        targets.push(AnyTarget::InProcess(Arc::new(
            InProcessTarget::start(data.clone(), *shards, persons).await?,
        )));
    }
    for url in &t.redis {
        targets.push(AnyTarget::Redis(Arc::new(
            RedisTarget::connect(url, clients).await?,
        )));
    }
    if let Some(url) = &t.postgres {
        targets.push(AnyTarget::Postgres(Arc::new(
            PostgresTarget::connect(url, clients).await?,
        )));
    }
    anyhow::ensure!(!targets.is_empty(), "no target given");
    let infos: Vec<TargetInfo> = targets.iter().map(AnyTarget::info).collect();
    for i in &infos {
        eprintln!("target {}: {}", i.name, i.description);
    }

    let mut runs = Vec::new();
    let peak = RunSpec {
        clients,
        rate_per_s: None,
        requests: seq.len(),
        duration_s_max: config.run_duration_s_max,
    };
    for rep in 1..=config.reps.max(1) {
        for (target, info) in targets.iter().zip(&infos) {
            let ((seen, correctness), journal) =
                target.measure(&seq, config.workload.stock, peak).await?;
            let record = RunRecord {
                target: info.name.clone(),
                phase: "peak".into(),
                rep,
                offered_per_s: None,
                seen,
                correctness,
                journal,
            };
            say(&record);
            runs.push(record);
        }
    }

    // The curve needs only the reference and its baseline. The others are let go first:
    // their idle threads and processes (64 PostgreSQL backends) are not part of what the
    // curve measures, and on a small machine every process costs the system's own
    // periodic work something, which lands on the curve's tail as stalls.
    let mut curve = Vec::new();
    for (target, info) in targets.into_iter().zip(&infos) {
        if [report::REFERENCE_TARGET, report::SWEEP_BASELINE_TARGET].contains(&info.name.as_str()) {
            curve.push((target, info));
        } else {
            target.release().await;
        }
    }
    let mut sweep = Vec::new();
    let find = |name: &str| {
        curve
            .iter()
            .find(|(_, i)| i.name == name)
            .map(|(t, i)| (t, *i))
    };
    if let Some((reference, reference_info)) = find(report::REFERENCE_TARGET) {
        let peaks: Vec<f64> = runs
            .iter()
            .filter(|r| r.target == reference_info.name)
            .map(|r| r.seen.claims_per_s)
            .collect();
        let peak_median = Spread::of(&peaks).median;
        // The baseline runs at the reference's rates, so that a tail both show at a
        // given rate is the machine's and the load generator's, not the server's.
        let baseline = find(report::SWEEP_BASELINE_TARGET);
        for &fraction in &config.sweep_fractions {
            let rate = peak_median * fraction;
            if !(rate.is_finite() && rate > 0.0) {
                continue;
            }
            let requests = ((rate * config.sweep_duration_s).ceil() as usize).min(seq.len());
            let spec = RunSpec {
                clients,
                rate_per_s: Some(rate),
                requests,
                duration_s_max: config.sweep_duration_s * 2.0 + 5.0,
            };
            for (target, info) in std::iter::once((reference, reference_info)).chain(baseline) {
                let ((seen, correctness), journal) =
                    target.measure(&seq, config.workload.stock, spec).await?;
                let record = RunRecord {
                    target: info.name.clone(),
                    phase: "sweep".into(),
                    rep: 1,
                    offered_per_s: Some(rate),
                    seen,
                    correctness,
                    journal,
                };
                say(&record);
                sweep.push(SweepPoint {
                    target: info.name.clone(),
                    fraction_of_peak: fraction,
                    offered_per_s: rate,
                    achieved_per_s: record.seen.claims_per_s,
                    latency_ms: record.seen.latency_ms,
                    correct: record.correctness.ok,
                });
                runs.push(record);
            }
        }
    }
    for (t, _) in curve {
        t.release().await;
    }

    let rows = report::rows(&infos, &runs);
    let goals = report::goals(&rows, &sweep);
    Ok(CompareReport {
        machine: machine(load_start),
        workload: config.workload.clone(),
        claims: seq.len(),
        clients,
        reps: config.reps.max(1),
        rows,
        sweep,
        goals,
        runs,
    })
}
