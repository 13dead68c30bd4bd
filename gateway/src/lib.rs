//! yunquan's HTTP API (see `docs/http-api.md`, the contract): axum routes over the
//! [`Engine`], bearer tokens, `application/problem+json` errors and Prometheus metrics.
//!
//! The gateway holds no business state. It authenticates, validates what it can
//! without the engine (ids, coupon-code MACs, body shapes), sheds load before it
//! reaches the shards, and maps every engine answer to the status the contract names.

pub mod admission;
pub mod auth;
pub mod error;
pub mod metrics;
pub mod openapi;
mod overload;
pub mod route_table;
mod routes;
mod validate;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod bad_input_tests;
#[cfg(test)]
mod cap_tests;

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::Router;
use std::future::{Future, IntoFuture};
use std::time::Duration;
use tower::limit::GlobalConcurrencyLimitLayer;
use yunquan_actors::Engine;

pub use auth::{mint, verify, AnyRole, AuthError, Manager, Resident, Role, Terminal, TokenClaims};
pub use error::{AppError, AppJson, AppPath, AppQuery};
pub use route_table::{find_route, route_table, Access, Endpoint, RouteClass, RouteRule, Verb};

/// How the HTTP front end protects itself; defaults suit one server in front of a
/// flash round.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Requests handled at once across every limited route (imports included); the
    /// next one is answered 503 `overloaded` at once rather than queued, because a
    /// queue in front of a flash round only turns overload into timeouts.
    /// Probes and `/metrics` are not counted, so they still answer under overload.
    pub requests_in_flight_max: usize,
    /// Floor of the adaptive limit on API requests in flight (see [`admission`]): enough
    /// requests for the shards' group commits to fill their batches.
    pub requests_in_flight_min: usize,
    /// Latency the API requests' p90 should stay under, in milliseconds: past it, with at
    /// least `requests_in_flight_min` of them in flight, fewer API requests are admitted
    /// (down to `requests_in_flight_min`) so that admitted ones keep their latency. It must
    /// sit well above an unloaded server's latency, or any load holds the limit at its
    /// floor. 0 keeps the limit at `requests_in_flight_max`.
    pub request_latency_ms_p90_target: u64,
    /// Longest a request may run before it is answered 504 `timeout`.
    pub request_timeout_ms: u64,
    /// Longest an NDJSON import may run before it is answered 504 `timeout` (a bulk
    /// load of millions of residents takes minutes, not seconds).
    pub import_timeout_ms: u64,
    /// Largest JSON request body, in bytes; larger ones get 413 `payload_too_large`.
    pub body_bytes_max: usize,
    /// Largest body of `POST /v1/tokens`, in bytes: 10,000 subjects of up to 64
    /// bytes each do not fit in `body_bytes_max`.
    pub tokens_body_bytes_max: usize,
    /// Largest NDJSON import body, in bytes (streamed, never held in memory).
    pub import_bytes_max: u64,
    /// Longest NDJSON import line, in bytes; a longer line is rejected on its own.
    pub import_line_bytes_max: usize,
    /// Records handed to the engine per call during an import: big enough to amortise
    /// the shards' group commit, small enough to bound memory per import.
    pub import_chunk_records: usize,
    /// After shutdown is requested, how long in-flight requests may finish before
    /// the server stops anyway.
    pub shutdown_drain_ms: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            requests_in_flight_max: 4_096,
            requests_in_flight_min: 32,
            request_latency_ms_p90_target: 10,
            request_timeout_ms: 10_000,
            import_timeout_ms: 30 * 60 * 1_000,
            body_bytes_max: 64 * 1024,
            tokens_body_bytes_max: 1024 * 1024,
            import_bytes_max: 256 * 1024 * 1024,
            import_line_bytes_max: 4 * 1024,
            import_chunk_records: 2_000,
            shutdown_drain_ms: 30_000,
        }
    }
}

/// What every handler can reach.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    /// The shards.
    pub(crate) engine: Engine,
    /// Limits of NDJSON imports.
    pub(crate) import: routes::import::ImportLimits,
}

impl FromRef<AppState> for Engine {
    fn from_ref(state: &AppState) -> Engine {
        state.engine.clone()
    }
}

/// The whole API as a router, metrics recorder installed (once per process).
pub fn router(engine: Engine, config: &GatewayConfig) -> Router {
    metrics::handle();
    let state = AppState {
        engine,
        import: routes::import::ImportLimits::from(config),
    };
    // One semaphore for every limited route: per-route limits would multiply the cap.
    let in_flight = GlobalConcurrencyLimitLayer::new(config.requests_in_flight_max.max(1));
    let request_timeout = Duration::from_millis(config.request_timeout_ms.max(1));
    let import_timeout = Duration::from_millis(config.import_timeout_ms.max(1));

    let admission = admission::AdaptiveLimit::new(admission::AdmissionConfig {
        in_flight_min: config.requests_in_flight_min,
        in_flight_max: config.requests_in_flight_max,
        latency_p90_target: Duration::from_millis(config.request_latency_ms_p90_target),
        window_requests: admission::AdmissionConfig::WINDOW_REQUESTS_DEFAULT,
    });
    metrics::record_in_flight_limit(admission.limit());
    // Only the API: imports and token minting are slow by nature, and few.
    let api = overload::limit(
        routes::build(&state, RouteClass::Api).layer(DefaultBodyLimit::max(config.body_bytes_max)),
        in_flight.clone(),
        request_timeout,
    );
    // Without a latency target the adaptive limit stays at the fixed cap, which the layer
    // above already holds: its per-request bookkeeping would buy nothing.
    let api = if config.request_latency_ms_p90_target == 0 {
        api
    } else {
        overload::admit(api, admission)
    };
    let tokens = overload::limit(
        routes::build(&state, RouteClass::Tokens)
            .layer(DefaultBodyLimit::max(config.tokens_body_bytes_max)),
        in_flight.clone(),
        request_timeout,
    );
    let import_body_max = usize::try_from(config.import_bytes_max).unwrap_or(usize::MAX);
    let imports = overload::limit(
        routes::build(&state, RouteClass::Import).layer(DefaultBodyLimit::max(import_body_max)),
        in_flight,
        import_timeout,
    );

    Router::new()
        .merge(api)
        .merge(tokens)
        .merge(imports)
        .merge(routes::build(&state, RouteClass::Ops))
        .method_not_allowed_fallback(routes::ops::method_not_allowed)
        .fallback(routes::ops::not_found)
        .layer(axum::middleware::from_fn(metrics::track_http))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then lets in-flight
/// requests finish for at most `config.shutdown_drain_ms`.
///
/// The engine is not shut down here: the caller owns it and may still need it.
pub async fn serve(
    listener: tokio::net::TcpListener,
    engine: Engine,
    config: GatewayConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(engine, &config);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let graceful = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutdown requested; draining in-flight requests");
        let _ = stop_tx.send(());
    });
    let drain = Duration::from_millis(config.shutdown_drain_ms);
    tokio::select! {
        result = graceful.into_future() => result,
        () = async move {
            // A dropped sender means the server ended by itself; the other branch answers.
            if stop_rx.await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(drain).await;
        } => {
            tracing::warn!(drain_ms = config.shutdown_drain_ms, "requests still in flight after the drain period; stopping anyway");
            Ok(())
        }
    }
}
