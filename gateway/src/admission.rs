//! An in-flight limit that follows the server's own latency.
//!
//! A fixed cap sets the latency of overload rather than preventing it: by Little's law
//! an overloaded server that keeps `cap` requests in flight answers each in about
//! `cap / throughput`, so a cap sized for a big machine lets a small one queue for
//! hundreds of milliseconds, and one sized for a small machine wastes a big one. This
//! limit moves between a floor and the fixed cap instead (it backs off faster than it
//! grows, after TCP's congestion control, but both steps are proportional to the limit):
//!
//! - every `window_requests` answers make one decision;
//! - if more than a tenth of them took longer than the target (the window's p90 is
//!   above it) while at least the floor's worth of requests were in flight, the limit
//!   drops by a quarter, starting from twice the most that were in flight if that is
//!   lower: the latency comes from queueing, so fewer requests in flight fix it, and a
//!   limit far above the peak holds nothing back (a cap of 4,096 over 1,024 queueing
//!   clients comes down to them in three windows, without turning anyone away before it
//!   is below them);
//! - if the p90 is within the target and the limit turned requests away, it grows by
//!   an eighth: the server has room for more;
//! - otherwise it stays, so a slow request on an idle server (fewer in flight than the
//!   floor) changes nothing;
//! - only requests admitted since the limit last changed are counted: the ones admitted
//!   before waited behind the old limit, so their answers show nothing about the new one
//!   (counted, one overload would cut the limit once per window of its backlog).
//!
//! The target must sit well above the latency of an unloaded server: if requests are slow
//! by nature (a disk whose syncs take longer than the target), any sustained load holds the
//! limit at its floor.
//!
//! A request over the limit is answered 503 `overloaded` at once, like one over the
//! fixed cap. Counting is by answers, not by time, so the decisions are the same for
//! the same sequence of latencies on any machine (and testable without a clock).

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The limit's bounds and goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Lowest limit. Group commit needs requests in flight to fill a batch, so the floor
    /// keeps enough of them for the shards' writes to stay efficient.
    pub in_flight_min: usize,
    /// Highest limit, and the starting one (the fixed cap).
    pub in_flight_max: usize,
    /// Latency the window's p90 should stay under; zero keeps the limit at
    /// `in_flight_max` (a fixed cap).
    pub latency_p90_target: Duration,
    /// Answers per decision: enough for a p90 to mean something.
    pub window_requests: u32,
}

impl AdmissionConfig {
    /// Answers per decision unless configured otherwise: about 10 ms of a flash round on
    /// two cores, so the limit reacts within a fraction of a second.
    pub const WINDOW_REQUESTS_DEFAULT: u32 = 256;
}

/// The answers of the open window.
#[derive(Debug, Default)]
struct Window {
    /// Answers counted.
    answers: u32,
    /// Of those, answers slower than the target.
    slow: u32,
    /// Most requests in flight seen when an answer was counted.
    in_flight_peak: usize,
}

/// The shared limit; cheap to clone.
#[derive(Debug, Clone)]
pub struct AdaptiveLimit {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Bounds and goal, with `in_flight_min <= in_flight_max` and both at least 1.
    config: AdmissionConfig,
    /// Requests admitted and not yet answered (or dropped).
    in_flight: AtomicUsize,
    /// The current limit, within the configured bounds.
    limit: AtomicUsize,
    /// Changes of the limit so far; written (under the window's lock) after `limit`.
    epoch: AtomicU64,
    /// Requests turned away since the last decision.
    refused: AtomicU32,
    /// The open window.
    window: Mutex<Window>,
}

/// One admitted request. Dropping it without [`Admitted::answered`] (a client that went
/// away) frees its place without counting a latency.
#[derive(Debug)]
pub struct Admitted {
    inner: Arc<Inner>,
    /// The limit's epoch when this request was admitted.
    epoch: u64,
}

impl AdaptiveLimit {
    /// A limit starting at `config.in_flight_max`. Bounds are repaired rather than
    /// refused: both at least 1, and a floor above the cap is lowered to it.
    pub fn new(mut config: AdmissionConfig) -> AdaptiveLimit {
        config.in_flight_max = config.in_flight_max.max(1);
        config.in_flight_min = config.in_flight_min.clamp(1, config.in_flight_max);
        config.window_requests = config.window_requests.max(1);
        AdaptiveLimit {
            inner: Arc::new(Inner {
                config,
                in_flight: AtomicUsize::new(0),
                limit: AtomicUsize::new(config.in_flight_max),
                epoch: AtomicU64::new(0),
                refused: AtomicU32::new(0),
                window: Mutex::new(Window::default()),
            }),
        }
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.inner.limit.load(Ordering::Relaxed)
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Relaxed)
    }

    /// Admits a request, or `None` when the limit is reached.
    pub fn try_admit(&self) -> Option<Admitted> {
        // The epoch first: a request counted in an epoch was admitted under its limit.
        let epoch = self.inner.epoch.load(Ordering::Acquire);
        let limit = self.inner.limit.load(Ordering::Acquire);
        // Taking a place only when one is free keeps `in_flight` exact: a refused
        // request never shows in it, so it cannot refuse another one or raise a peak.
        let taken = self
            .inner
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            });
        if taken.is_err() {
            self.inner.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(Admitted {
            inner: Arc::clone(&self.inner),
            epoch,
        })
    }
}

impl Admitted {
    /// The request was answered after `latency`; counts it and frees its place.
    /// Returns the new limit if this answer closed a window that changed it.
    pub fn answered(self, latency: Duration) -> Option<usize> {
        self.inner.count(latency, self.epoch)
        // Drop frees the place.
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let before = self.inner.in_flight.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(before > 0, "an admitted request freed a place nobody held");
    }
}

impl Inner {
    fn count(&self, latency: Duration, epoch: u64) -> Option<usize> {
        let target = self.config.latency_p90_target;
        if target.is_zero() {
            return None;
        }
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        let mut w = self.window.lock();
        if epoch != self.epoch.load(Ordering::Relaxed) {
            // Admitted under an earlier limit.
            return None;
        }
        w.answers += 1;
        if latency > target {
            w.slow += 1;
        }
        w.in_flight_peak = w.in_flight_peak.max(in_flight);
        if w.answers < self.config.window_requests {
            return None;
        }
        let refused = self.refused.swap(0, Ordering::Relaxed);
        let limit = self.limit.load(Ordering::Relaxed);
        let (min, max) = (self.config.in_flight_min, self.config.in_flight_max);
        // More than a tenth slow: the p90 is above the target.
        let p90_over = u64::from(w.slow) * 10 > u64::from(w.answers);
        // Queueing needs requests in flight; a limit above twice the peak is far from
        // holding anything back, so the cut starts nearer to what was in flight.
        let queued = w.in_flight_peak >= min;
        let next = if p90_over && queued {
            let held = limit.min(w.in_flight_peak.saturating_mul(2));
            held.saturating_sub((held / 4).max(1)).max(min)
        } else if !p90_over && refused > 0 {
            limit.saturating_add((limit / 8).max(1)).min(max)
        } else {
            limit
        };
        assert!(
            (min..=max).contains(&next),
            "limit {next} left its bounds {min}..={max}"
        );
        *w = Window::default();
        if next == limit {
            return None;
        }
        self.limit.store(next, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::Release);
        Some(next)
    }
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
