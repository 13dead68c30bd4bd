//! Load shedding, the in-flight cap and timeouts, after axum's key-value-store
//! example: a request beyond the cap is refused at once with 503 `overloaded` (a
//! client retrying after a second does better than one waiting in a queue), and
//! one that runs too long is answered 504 `timeout`. In front of the API routes an
//! [`AdaptiveLimit`] keeps fewer requests in flight than the cap when the cap's worth
//! of them would queue past the latency target.

use crate::admission::AdaptiveLimit;
use crate::error::AppError;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{Request, State};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::time::{Duration, Instant};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{BoxError, ServiceBuilder};

/// Seconds a shed client is told to wait: enough for a flash round's burst to
/// drain, short enough that a resident does not give up.
const SHED_RETRY_AFTER_S: u64 = 1;

/// Wraps every route of `router` in shed -> shared in-flight cap -> timeout.
pub(crate) fn limit<S>(
    router: Router<S>,
    in_flight: GlobalConcurrencyLimitLayer,
    timeout: Duration,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(handle_error))
            .load_shed()
            .layer(in_flight)
            .timeout(timeout),
    )
}

/// Puts `router` behind `admission`: a request over its limit is answered 503
/// `overloaded` at once; an admitted one is timed until its answer is ready.
pub(crate) fn admit<S>(router: Router<S>, admission: AdaptiveLimit) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.layer(from_fn_with_state(admission, admit_one))
}

/// Marks a response of the fixed cap's load shedding: such a request was never served,
/// and its instant answer would pull the adaptive limit's p90 down.
#[derive(Debug, Clone, Copy)]
struct ShedByCap;

async fn admit_one(State(admission): State<AdaptiveLimit>, req: Request, next: Next) -> Response {
    let Some(admitted) = admission.try_admit() else {
        return AppError::overloaded(SHED_RETRY_AFTER_S).into_response();
    };
    let started = Instant::now();
    let response = next.run(req).await;
    if response.extensions().get::<ShedByCap>().is_some() {
        // Frees the place without counting an answer.
        drop(admitted);
    } else if let Some(limit) = admitted.answered(started.elapsed()) {
        crate::metrics::record_in_flight_limit(limit);
    }
    response
}

async fn handle_error(error: BoxError) -> Response {
    if error.is::<tower::load_shed::error::Overloaded>() {
        let mut response = AppError::overloaded(SHED_RETRY_AFTER_S).into_response();
        response.extensions_mut().insert(ShedByCap);
        return response;
    }
    if error.is::<tower::timeout::error::Elapsed>() {
        return AppError::timeout().into_response();
    }
    // No other layer here fails; if one ever does, say so in the log, not to the client.
    tracing::error!(%error, "unexpected middleware error");
    AppError::unavailable().into_response()
}

#[cfg(test)]
#[path = "overload_tests.rs"]
mod tests;
