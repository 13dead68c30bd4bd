//! The shared driver: `clients` concurrent clients, each with one request in flight,
//! take the workload's claims in order. Closed loop (as fast as the target answers)
//! for peak throughput, or paced to an offered rate for the latency curve.
//!
//! Paced latency is measured from the instant a claim was *meant* to leave whenever
//! its client was still busy with an earlier claim at that instant (coordinated
//! omission corrected: a stalled target cannot hide its stall by slowing the
//! clients). A client that was idle and had to wait for the instant measures from
//! when it actually woke, so the timer's granularity is not charged to the target.

use super::target::{ClaimTarget, Outcome};
use super::workload::Sequence;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Slowest latency the histograms hold, in microseconds; slower ones are clamped.
const LATENCY_US_MAX: u64 = 60_000_000;
/// Significant digits of the histograms.
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
/// Error texts kept per run, at most.
const ERRORS_KEPT_MAX: usize = 5;

/// How to drive one run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RunSpec {
    /// Concurrent clients (one connection and one request in flight each).
    pub clients: usize,
    /// Offered load in claims per second; `None`: closed loop, as fast as answered.
    pub rate_per_s: Option<f64>,
    /// Claims of the sequence to send (a prefix of it).
    pub requests: usize,
    /// No new claim is started after this long, in seconds.
    pub duration_s_max: f64,
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencyMs {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest.
    pub max: f64,
}

/// What the clients saw in one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DriveResult {
    /// Claims sent (all answered, one way or another).
    pub sent: u64,
    /// `Granted` answers.
    pub granted: u64,
    /// `SoldOut` answers.
    pub sold_out: u64,
    /// `Limited` answers.
    pub limited: u64,
    /// `Error` answers.
    pub errors: u64,
    /// First few error texts.
    pub error_examples: Vec<String>,
    /// From the first claim to the last answer, in seconds.
    pub wall_s: f64,
    /// Answers per second (`sent / wall_s`).
    pub claims_per_s: f64,
    /// Latency percentiles.
    pub latency_ms: LatencyMs,
    /// Persons acknowledged more than once (must be 0).
    pub persons_granted_twice: u64,
    /// Distinct persons among the claims sent: the demand on the stock.
    pub demand: u64,
    /// Whether the time limit stopped the run before the whole prefix was sent.
    pub cut_short: bool,
}

/// One client's tally, merged at the end so clients never contend on a lock.
struct ClientTally {
    /// Latency in microseconds.
    hist: Option<Histogram<u64>>,
    /// Answers by kind.
    counts: [u64; 4],
    /// Persons granted, in order.
    granted: Vec<u32>,
    /// First few error texts.
    errors: Vec<String>,
}

/// Runs the clients against `target` in `round`; returns what they saw.
pub async fn drive<T: ClaimTarget>(
    target: Arc<T>,
    round: Arc<T::Round>,
    seq: Arc<Sequence>,
    spec: RunSpec,
) -> DriveResult {
    let requests = spec.requests.min(seq.len());
    let cursor = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(spec.duration_s_max.max(0.0));
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..spec.clients.max(1) {
        let (target, round, seq, cursor) = (
            Arc::clone(&target),
            Arc::clone(&round),
            Arc::clone(&seq),
            Arc::clone(&cursor),
        );
        tasks.spawn(async move {
            let mut t = ClientTally {
                hist: Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_DIGITS)
                    .ok(),
                counts: [0; 4],
                granted: Vec::new(),
                errors: Vec::new(),
            };
            loop {
                // The deadline is checked before taking an index, so the claims sent
                // are exactly the first `cursor` ones.
                if Instant::now() >= deadline {
                    break;
                }
                let i = cursor.fetch_add(1, Relaxed);
                let Some(person) = seq.person(i).filter(|_| i < requests) else {
                    break;
                };
                let start = match spec.rate_per_s {
                    Some(rate) if rate > 0.0 => {
                        let intended = t0 + Duration::from_secs_f64(i as f64 / rate);
                        if intended > Instant::now() {
                            tokio::time::sleep_until(intended.into()).await;
                            Instant::now()
                        } else {
                            intended
                        }
                    }
                    _ => Instant::now(),
                };
                let outcome = target.claim(&round, client, person).await;
                let us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                if let Some(h) = t.hist.as_mut() {
                    h.saturating_record(us.clamp(1, LATENCY_US_MAX));
                }
                match outcome {
                    Outcome::Granted => {
                        t.counts[0] += 1;
                        t.granted.push(person as u32);
                    }
                    Outcome::SoldOut => t.counts[1] += 1,
                    Outcome::Limited => t.counts[2] += 1,
                    Outcome::Error(e) => {
                        t.counts[3] += 1;
                        if t.errors.len() < ERRORS_KEPT_MAX {
                            t.errors.push(e);
                        }
                    }
                }
            }
            t
        });
    }
    let mut tallies = Vec::new();
    while let Some(t) = tasks.join_next().await {
        if let Ok(t) = t {
            tallies.push(t);
        }
    }
    let wall_s = t0.elapsed().as_secs_f64();
    let sent_prefix = cursor.load(Relaxed).min(requests);
    merge(tallies, wall_s, &seq, sent_prefix, sent_prefix < requests)
}

fn merge(
    tallies: Vec<ClientTally>,
    wall_s: f64,
    seq: &Sequence,
    sent_prefix: usize,
    cut_short: bool,
) -> DriveResult {
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_DIGITS).ok();
    let mut counts = [0u64; 4];
    let mut times_granted = vec![0u8; seq.persons_total() as usize];
    let mut twice = 0u64;
    let mut error_examples = Vec::new();
    for t in tallies {
        if let (Some(all), Some(h)) = (hist.as_mut(), t.hist.as_ref()) {
            let _ = all.add(h);
        }
        for (a, b) in counts.iter_mut().zip(t.counts) {
            *a += b;
        }
        for p in t.granted {
            if let Some(n) = times_granted.get_mut(p as usize) {
                *n = n.saturating_add(1);
                if *n == 2 {
                    twice += 1;
                }
            }
        }
        for e in t.errors {
            if error_examples.len() < ERRORS_KEPT_MAX {
                error_examples.push(e);
            }
        }
    }
    let sent: u64 = counts.iter().sum();
    let ms = |q: f64| {
        hist.as_ref()
            .filter(|h| !h.is_empty())
            .map_or(0.0, |h| h.value_at_quantile(q) as f64 / 1_000.0)
    };
    DriveResult {
        sent,
        granted: counts[0],
        sold_out: counts[1],
        limited: counts[2],
        errors: counts[3],
        error_examples,
        wall_s,
        claims_per_s: if wall_s > 0.0 {
            sent as f64 / wall_s
        } else {
            0.0
        },
        latency_ms: LatencyMs {
            p50: ms(0.5),
            p99: ms(0.99),
            p999: ms(0.999),
            max: hist.as_ref().map_or(0.0, |h| h.max() as f64 / 1_000.0),
        },
        persons_granted_twice: twice,
        demand: seq.distinct_in_prefix(sent_prefix),
        cut_short,
    }
}
