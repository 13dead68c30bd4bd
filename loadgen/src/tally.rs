//! Counters and the latency histogram of one phase, shared by every request task
//! and read by the progress display.

use crate::client::Reply;
use crate::report::{Latency, PhaseReport};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Largest latency the histogram resolves, in microseconds (10 minutes); slower
/// replies are recorded at this value.
const LATENCY_US_MAX: u64 = 600_000_000;
/// Significant decimal digits of the histogram.
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

/// How one reply is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// 201: a new grant.
    Granted,
    /// 200: a replay of an earlier request.
    Replayed,
    /// 409 sold_out.
    SoldOut,
    /// Another 409.
    Limited,
    /// 503.
    Overloaded,
    /// Anything else; `true` if the outcome is unknown.
    Error(bool),
}

/// What the progress display shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Requests sent (or lines, while seeding).
    pub sent: u64,
    /// Successful replies (or lines accepted).
    pub ok: u64,
    /// Business refusals.
    pub refused: u64,
    /// Errors.
    pub errors: u64,
}

/// Counters of one phase.
#[derive(Debug)]
pub struct Tally {
    /// Requests sent.
    attempted: AtomicU64,
    /// 201s.
    granted: AtomicU64,
    /// 200s.
    replayed: AtomicU64,
    /// 409 sold_out.
    sold_out: AtomicU64,
    /// Other 409s.
    limited: AtomicU64,
    /// Non-2xx non-409, 503 included.
    errors: AtomicU64,
    /// 503s.
    overloaded: AtomicU64,
    /// Errors with unknown outcome.
    unknown_outcome: AtomicU64,
    /// Replies by reason.
    by_reason: Mutex<BTreeMap<String, u64>>,
    /// Latency from intended send time, in microseconds (`None` only if the
    /// histogram bounds above were edited into something hdrhistogram refuses).
    latency: Mutex<Option<Histogram<u64>>>,
    /// The same, of replies the server executed (every reply but 503s): under
    /// overload these must stay fast while the shed ones are turned away.
    latency_executed: Mutex<Option<Histogram<u64>>>,
    /// The same, of 503 replies: how fast excess load is turned away.
    latency_shed: Mutex<Option<Histogram<u64>>>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking request task cannot leave a counter half-updated in a way that
    // matters for a report, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Tally {
    /// Empty counters.
    pub fn new() -> Tally {
        let histogram =
            || Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_DIGITS).ok();
        Tally {
            attempted: AtomicU64::new(0),
            granted: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            sold_out: AtomicU64::new(0),
            limited: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            overloaded: AtomicU64::new(0),
            unknown_outcome: AtomicU64::new(0),
            by_reason: Mutex::new(BTreeMap::new()),
            latency: Mutex::new(histogram()),
            latency_executed: Mutex::new(histogram()),
            latency_shed: Mutex::new(histogram()),
        }
    }

    /// Counts lines sent and accepted while seeding (no latency, no refusals).
    pub fn lines(&self, sent: u64, accepted: u64) {
        self.attempted.fetch_add(sent, Relaxed);
        self.granted.fetch_add(accepted, Relaxed);
        self.limited
            .fetch_add(sent.saturating_sub(accepted), Relaxed);
    }

    /// Counts one reply that was meant to be sent at `intended`; returns how it counted.
    pub fn record<T>(&self, reply: &Reply<T>, intended: Instant) -> Counted {
        let elapsed_us = duration_us(Instant::now().saturating_duration_since(intended)).max(1);
        self.attempted.fetch_add(1, Relaxed);
        let split = if matches!(reply, Reply::Overloaded { .. }) {
            &self.latency_shed
        } else {
            &self.latency_executed
        };
        for histogram in [&self.latency, split] {
            if let Some(h) = lock(histogram).as_mut() {
                h.saturating_record(elapsed_us);
            }
        }
        let (counted, reason) = match reply {
            Reply::Done { status, .. } if *status == 201 => (Counted::Granted, "ok_201".to_owned()),
            Reply::Done { status, .. } => (Counted::Replayed, format!("ok_{status}")),
            Reply::Refused { reason } if reason == "sold_out" => (Counted::SoldOut, reason.clone()),
            Reply::Refused { reason } => (Counted::Limited, reason.clone()),
            Reply::Overloaded { reason, .. } => (Counted::Overloaded, format!("http_503_{reason}")),
            Reply::Failed {
                label,
                unknown_outcome,
                ..
            } => (Counted::Error(*unknown_outcome), label.clone()),
        };
        self.count(counted);
        *lock(&self.by_reason).entry(reason).or_insert(0) += 1;
        counted
    }

    /// Moves one 2xx reply between "granted" and "replayed": a 200 that is our first
    /// acknowledgement counts as a grant, a 201 repeating one we hold as a replay.
    pub fn regrade(&self, from: Counted, to: Counted) {
        let counter = |c: Counted| match c {
            Counted::Granted => Some(&self.granted),
            Counted::Replayed => Some(&self.replayed),
            _ => None,
        };
        if let (Some(f), Some(t)) = (counter(from), counter(to)) {
            f.fetch_sub(1, Relaxed);
            t.fetch_add(1, Relaxed);
        }
    }

    fn count(&self, c: Counted) {
        let counter = match c {
            Counted::Granted => &self.granted,
            Counted::Replayed => &self.replayed,
            Counted::SoldOut => &self.sold_out,
            Counted::Limited => &self.limited,
            Counted::Overloaded => {
                self.overloaded.fetch_add(1, Relaxed);
                &self.errors
            }
            Counted::Error(unknown) => {
                if unknown {
                    self.unknown_outcome.fetch_add(1, Relaxed);
                }
                &self.errors
            }
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Current figures for the progress display.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            sent: self.attempted.load(Relaxed),
            ok: self.granted.load(Relaxed) + self.replayed.load(Relaxed),
            refused: self.sold_out.load(Relaxed) + self.limited.load(Relaxed),
            errors: self.errors.load(Relaxed),
        }
    }

    /// The phase's report, given its wall time.
    pub fn report(&self, wall: Duration) -> PhaseReport {
        let percentiles = |histogram: &Mutex<Option<Histogram<u64>>>| {
            let ms = |us: u64| us as f64 / 1_000.0;
            match lock(histogram).as_ref().filter(|h| !h.is_empty()) {
                None => Latency::default(),
                Some(h) => Latency {
                    p50: ms(h.value_at_quantile(0.5)),
                    p99: ms(h.value_at_quantile(0.99)),
                    p999: ms(h.value_at_quantile(0.999)),
                    max: ms(h.max()),
                },
            }
        };
        let attempted = self.attempted.load(Relaxed);
        let wall_s = wall.as_secs_f64();
        PhaseReport {
            attempted,
            granted: self.granted.load(Relaxed),
            sold_out: self.sold_out.load(Relaxed),
            limited: self.limited.load(Relaxed),
            errors: self.errors.load(Relaxed),
            per_second: if wall_s > 0.0 {
                attempted as f64 / wall_s
            } else {
                0.0
            },
            latency_ms: percentiles(&self.latency),
            executed_latency_ms: percentiles(&self.latency_executed),
            shed_latency_ms: percentiles(&self.latency_shed),
            overloaded: self.overloaded.load(Relaxed),
            replayed: self.replayed.load(Relaxed),
            unknown_outcome: self.unknown_outcome.load(Relaxed),
            by_reason: lock(&self.by_reason).clone(),
            wall_s,
        }
    }
}

fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_percentiles() {
        let t = Tally::new();
        let now = Instant::now();
        t.record(
            &Reply::Done {
                status: 201,
                body: (),
            },
            now,
        );
        t.record(
            &Reply::Done {
                status: 200,
                body: (),
            },
            now,
        );
        t.record::<()>(
            &Reply::Refused {
                reason: "sold_out".into(),
            },
            now,
        );
        t.record::<()>(
            &Reply::Refused {
                reason: "limit_reached".into(),
            },
            now,
        );
        t.record::<()>(
            &Reply::Overloaded {
                reason: "overloaded".into(),
                retry_after: None,
            },
            now,
        );
        t.record::<()>(
            &Reply::Failed {
                label: "timeout".into(),
                detail: String::new(),
                unknown_outcome: true,
            },
            now,
        );
        let r = t.report(Duration::from_secs(2));
        assert_eq!(
            (r.attempted, r.granted, r.replayed, r.sold_out, r.limited),
            (6, 1, 1, 1, 1)
        );
        assert_eq!((r.errors, r.overloaded, r.unknown_outcome), (2, 1, 1));
        assert!((r.per_second - 3.0).abs() < 1e-9);
        assert_eq!(r.by_reason.get("sold_out"), Some(&1));
        assert!(r.latency_ms.max >= r.latency_ms.p50);
        assert!(
            r.shed_latency_ms.max > 0.0,
            "the 503 is in the shed histogram"
        );
        assert!(r.executed_latency_ms.max > 0.0);
    }

    #[test]
    fn shed_and_executed_latencies_are_kept_apart() {
        let t = Tally::new();
        let long_ago = Instant::now() - Duration::from_secs(5);
        let overloaded = Reply::<()>::Overloaded {
            reason: "overloaded".into(),
            retry_after: None,
        };
        t.record(&overloaded, long_ago);
        t.record(
            &Reply::Done {
                status: 201,
                body: (),
            },
            Instant::now(),
        );
        let r = t.report(Duration::from_secs(1));
        assert!(r.shed_latency_ms.p50 >= 5_000.0, "{:?}", r.shed_latency_ms);
        assert!(
            r.executed_latency_ms.max < 5_000.0,
            "{:?}",
            r.executed_latency_ms
        );
        assert!(r.latency_ms.max >= 5_000.0);
    }
}
