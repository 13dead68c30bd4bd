//! Probes, metrics and the fallbacks. None needs a token: orchestrators and
//! Prometheus call them, and a bad route should be a problem, not plain text.

use crate::error::AppError;
use crate::AppState;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// Content type of the Prometheus text exposition format.
const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process is up (says nothing about the shards: that is `/readyz`).
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// Every shard accepts commands.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    if state.engine.ready() {
        "ready".into_response()
    } else {
        AppError::unavailable()
            .with_detail("not every shard is up yet")
            .into_response()
    }
}

pub(crate) async fn metrics() -> Response {
    (
        [(CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)],
        crate::metrics::handle().render(),
    )
        .into_response()
}

/// The OpenAPI document, built once from the route table and the API types.
pub(crate) async fn openapi() -> Response {
    (
        [(CONTENT_TYPE, "application/json")],
        crate::openapi::document_json(),
    )
        .into_response()
}

/// No such route.
pub(crate) async fn not_found(method: Method, uri: Uri) -> AppError {
    AppError::not_found(format!("no route for {method} {}", uri.path()))
}

/// The route exists, the method does not.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> AppError {
    AppError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}", uri.path()),
    )
}
