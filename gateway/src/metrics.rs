//! Prometheus metrics: one recorder per process, rendered at `GET /metrics` (no
//! separate listener), a middleware for per-route HTTP figures, and the business
//! counters of claims and redemptions.
//!
//! Every name the gateway exports is a constant here and listed in [`METRIC_NAMES`],
//! so dashboards can be checked against it.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// HTTP requests answered, by `method`, `path` (the route pattern) and `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "yunquan_http_requests_total";
/// HTTP request latency in seconds, by `method` and `path`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "yunquan_http_request_duration_seconds";
/// Claim attempts by `outcome`: `granted`, `replayed`, or the refusal/error reason.
pub const CLAIMS_TOTAL: &str = "yunquan_claims_total";
/// Claim latency in seconds, gateway to engine and back.
pub const CLAIM_DURATION_SECONDS: &str = "yunquan_claim_duration_seconds";
/// Redemption attempts by `outcome`: `redeemed`, `replayed`, or the refusal/error reason.
pub const REDEMPTIONS_TOTAL: &str = "yunquan_redemptions_total";
/// Redemption latency in seconds, gateway to engine and back.
pub const REDEMPTION_DURATION_SECONDS: &str = "yunquan_redemption_duration_seconds";

/// The adaptive limit on API requests in flight (see `admission`), as last set.
pub const HTTP_IN_FLIGHT_LIMIT: &str = "yunquan_http_in_flight_limit";

/// Every metric name the gateway exports. Histograms are exported as
/// `<name>_bucket`, `<name>_sum` and `<name>_count`.
pub const METRIC_NAMES: &[&str] = &[
    HTTP_REQUESTS_TOTAL,
    HTTP_REQUEST_DURATION_SECONDS,
    CLAIMS_TOTAL,
    CLAIM_DURATION_SECONDS,
    REDEMPTIONS_TOTAL,
    REDEMPTION_DURATION_SECONDS,
    HTTP_IN_FLIGHT_LIMIT,
];

/// Histogram bucket bounds in seconds: from half a millisecond (a claim served from
/// memory plus a group commit) to 5 s (past any client's patience).
pub const DURATION_BUCKETS_SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// How often histogram samples are folded into buckets when nobody scrapes, so
/// they do not pile up in memory.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The `path` label of requests that matched no route: raw paths would let any
/// client create unbounded label values.
const UNMATCHED_PATH: &str = "unmatched";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus handle, installing the global recorder on first use.
/// Several servers in one process (tests) share it.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(install)
}

fn install() -> PrometheusHandle {
    let builder = PrometheusBuilder::new();
    // Only an empty bucket list is refused, and ours is not; fall back to summaries anyway.
    let builder = match builder.set_buckets(DURATION_BUCKETS_SECONDS) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "histogram buckets refused; exporting summaries");
            PrometheusBuilder::new()
        }
    };
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if let Err(e) = metrics::set_global_recorder(recorder) {
        tracing::warn!(error = %e, "another metrics recorder is installed; /metrics will be empty");
    }
    describe();
    let upkeep = handle.clone();
    // A plain thread, not a task: the recorder outlives any one runtime (tests run several).
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            upkeep.run_upkeep();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no metrics upkeep thread; histograms drain only when scraped");
    }
    handle
}

fn describe() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests answered, by method, route and status"
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "HTTP request latency by method and route"
    );
    metrics::describe_gauge!(
        HTTP_IN_FLIGHT_LIMIT,
        "Adaptive limit on API requests in flight (between --requests-in-flight-min and --requests-in-flight-max)"
    );
    describe_counter!(CLAIMS_TOTAL, "Claim attempts by outcome");
    describe_histogram!(CLAIM_DURATION_SECONDS, Unit::Seconds, "Claim latency");
    describe_counter!(REDEMPTIONS_TOTAL, "Redemption attempts by outcome");
    describe_histogram!(
        REDEMPTION_DURATION_SECONDS,
        Unit::Seconds,
        "Redemption latency"
    );
    // Exported by the engine's shards; described here, where the registry is rendered.
    describe_histogram!(
        "yunquan_shard_queue_wait_seconds",
        Unit::Seconds,
        "Time a command waited in its shard's mailbox"
    );
    describe_histogram!(
        "yunquan_shard_reply_seconds",
        Unit::Seconds,
        "Time from a command's send to its shard's reply (mailbox wait, execution, durable write)"
    );
    describe_counter!(
        "yunquan_shard_shed_total",
        "Commands answered 503 unexecuted after waiting longer than --queue-wait-ms-max"
    );
    // Exported from the start, so that a dashboard shows 0 rather than no data.
    metrics::counter!("yunquan_shard_shed_total").increment(0);
}

/// Middleware: counts and times every request by its route pattern.
pub(crate) async fn track_http(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let path = match req.extensions().get::<MatchedPath>() {
        Some(p) => p.as_str().to_owned(),
        None => UNMATCHED_PATH.to_owned(),
    };
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    let seconds = start.elapsed().as_secs_f64();
    let status = response.status().as_u16().to_string();
    metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, "method" => method.clone(), "path" => path.clone())
        .record(seconds);
    metrics::counter!(HTTP_REQUESTS_TOTAL, "method" => method, "path" => path, "status" => status)
        .increment(1);
    response
}

/// Publishes the adaptive in-flight limit.
pub(crate) fn record_in_flight_limit(limit: usize) {
    // A limit is far below 2^52, so the float is exact.
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!(HTTP_IN_FLIGHT_LIMIT).set(limit as f64);
}

/// Records one claim attempt.
pub(crate) fn record_claim(outcome: &'static str, elapsed: Duration) {
    metrics::counter!(CLAIMS_TOTAL, "outcome" => outcome).increment(1);
    metrics::histogram!(CLAIM_DURATION_SECONDS).record(elapsed.as_secs_f64());
}

/// Records one redemption attempt.
pub(crate) fn record_redemption(outcome: &'static str, elapsed: Duration) {
    metrics::counter!(REDEMPTIONS_TOTAL, "outcome" => outcome).increment(1);
    metrics::histogram!(REDEMPTION_DURATION_SECONDS).record(elapsed.as_secs_f64());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prefixed() {
        let mut names = METRIC_NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRIC_NAMES.len());
        assert!(METRIC_NAMES.iter().all(|n| n.starts_with("yunquan_")));
    }

    #[test]
    fn histograms_render_as_buckets() {
        let handle = handle();
        record_claim("granted", Duration::from_millis(3));
        record_redemption("sold_out", Duration::from_millis(1));
        let text = handle.render();
        assert!(
            text.contains("yunquan_claim_duration_seconds_bucket"),
            "{text}"
        );
        assert!(
            text.contains("yunquan_claims_total{outcome=\"granted\"}"),
            "{text}"
        );
        assert!(
            text.contains("yunquan_redemptions_total{outcome=\"sold_out\"}"),
            "{text}"
        );
    }
}
