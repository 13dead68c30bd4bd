// A test fails by panicking; unwrap's panic names the line.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::admission::AdmissionConfig;
use axum::body::Body;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::StatusCode;
use axum::routing::get;
use futures::FutureExt;
use std::sync::Arc;
use tokio::sync::Notify;
use tower::ServiceExt;

/// `/hold` never answers (it says when it started), `/fast` answers at once.
fn routes(entered: &Arc<Notify>) -> Router {
    let entered = Arc::clone(entered);
    Router::new()
        .route(
            "/hold",
            get(move || async move {
                entered.notify_one();
                std::future::pending::<&'static str>().await
            }),
        )
        .route("/fast", get(|| async { "ok" }))
}

fn adaptive(max: usize, target: Duration) -> AdaptiveLimit {
    AdaptiveLimit::new(AdmissionConfig {
        in_flight_min: 1,
        in_flight_max: max,
        latency_p90_target: target,
        window_requests: 1,
    })
}

/// The API's layers as `router` stacks them, next to a route outside them.
fn api(entered: &Arc<Notify>, admission: AdaptiveLimit, cap: usize, timeout: Duration) -> Router {
    admit(
        limit(
            routes(entered),
            GlobalConcurrencyLimitLayer::new(cap),
            timeout,
        ),
        admission,
    )
    .merge(Router::new().route("/healthz", get(|| async { "ok" })))
}

async fn get_path(app: &Router, path: &str) -> (StatusCode, String, String, Vec<u8>) {
    let req = Request::get(path).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(req).await.unwrap();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &axum::http::HeaderValue| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (content_type, retry_after) = (header(CONTENT_TYPE), header(RETRY_AFTER));
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    (status, content_type, retry_after, body)
}

/// Starts a `/hold` request and returns once its handler runs.
async fn hold(app: &Router, entered: &Notify) -> tokio::task::JoinHandle<()> {
    let app = app.clone();
    let task = tokio::spawn(async move {
        let req = Request::get("/hold").body(Body::empty()).unwrap();
        let _ = app.oneshot(req).await;
    });
    entered.notified().await;
    task
}

#[tokio::test]
async fn a_request_over_the_adaptive_limit_is_shed_like_one_over_the_cap() {
    let entered = Arc::new(Notify::new());
    // Shed by the fixed cap: the adaptive limit is above it.
    let by_cap = api(
        &entered,
        adaptive(8, Duration::ZERO),
        1,
        Duration::from_secs(60),
    );
    let held = hold(&by_cap, &entered).await;
    let cap_shed = get_path(&by_cap, "/fast").await;
    held.abort();
    let _ = held.await;
    assert_eq!(cap_shed.0, StatusCode::SERVICE_UNAVAILABLE);

    // Shed by the adaptive limit, with the cap far above it.
    let admission = adaptive(1, Duration::ZERO);
    let app = api(&entered, admission.clone(), 100, Duration::from_secs(60));
    let held = hold(&app, &entered).await;
    assert_eq!(admission.in_flight(), 1);
    let shed = get_path(&app, "/fast").await;
    assert_eq!(
        shed, cap_shed,
        "503 overloaded problem+json with Retry-After"
    );
    assert_eq!(shed.1, "application/problem+json");
    assert_eq!(shed.2, "1");
    // Routes outside the API's layers still answer.
    assert_eq!(get_path(&app, "/healthz").await.0, StatusCode::OK);
    // A request that goes away (its future dropped) gives its place back.
    held.abort();
    let _ = held.await;
    assert_eq!(admission.in_flight(), 0);
    assert_eq!(get_path(&app, "/fast").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_request_dropped_before_its_answer_frees_its_place() {
    let entered = Arc::new(Notify::new());
    let admission = adaptive(1, Duration::from_millis(10));
    let app = api(&entered, admission.clone(), 100, Duration::from_secs(60));
    let req = Request::get("/hold").body(Body::empty()).unwrap();
    assert!(app.clone().oneshot(req).now_or_never().is_none());
    assert_eq!(admission.in_flight(), 0);
    assert_eq!(admission.limit(), 1);
}

#[tokio::test]
async fn a_timed_out_request_counts_as_a_slow_answer() {
    // The timeout runs inside the admission layer, so the 504's wait is measured: it is
    // at least the timeout, far above the target, and closes a window that shrinks the limit.
    let entered = Arc::new(Notify::new());
    let admission = adaptive(2, Duration::from_millis(1));
    let app = api(&entered, admission.clone(), 100, Duration::from_millis(20));
    let (status, ..) = get_path(&app, "/hold").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(admission.limit(), 1, "the 504 counted as slow");
    assert_eq!(admission.in_flight(), 0);
}

#[tokio::test]
async fn a_request_shed_by_the_cap_is_not_counted_as_an_answer() {
    // Every counted answer is slower than a 1 ns target and would cut the limit; the
    // cap's instant 503 was never served, so it must not count (fast or slow).
    let entered = Arc::new(Notify::new());
    let admission = adaptive(4, Duration::from_nanos(1));
    let app = api(&entered, admission.clone(), 1, Duration::from_secs(60));
    let held = hold(&app, &entered).await;
    let (status, ..) = get_path(&app, "/fast").await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "shed by the cap of 1"
    );
    assert_eq!(admission.limit(), 4, "the cap's 503 was counted");
    held.abort();
    let _ = held.await;
    assert_eq!(admission.in_flight(), 0);
    // A served answer is counted: slower than 1 ns, with 1 in flight (the floor), it cuts.
    assert_eq!(get_path(&app, "/fast").await.0, StatusCode::OK);
    assert_eq!(admission.limit(), 1);
}
