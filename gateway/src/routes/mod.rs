//! The routes of `docs/http-api.md`, one file per area. Routes are grouped by the
//! limits they need: ordinary JSON routes, token minting (larger bodies) and NDJSON
//! imports (huge streamed bodies, long timeouts); the probes and metrics stand
//! outside every limit.

pub(crate) mod campaigns;
pub(crate) mod claims;
pub(crate) mod import;
pub(crate) mod merchants;
pub(crate) mod ops;
pub(crate) mod redemptions;
pub(crate) mod residents;
pub(crate) mod tokens;

use crate::AppState;
use axum::routing::{get, post};
use axum::Router;

/// The JSON routes under the ordinary body limit and timeout.
pub(crate) fn api() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/campaigns",
            post(campaigns::create).get(campaigns::list),
        )
        .route("/v1/campaigns/{id}", get(campaigns::one))
        .route("/v1/campaigns/{id}/publish", post(campaigns::publish))
        .route("/v1/campaigns/{id}/pause", post(campaigns::pause))
        .route("/v1/campaigns/{id}/resume", post(campaigns::resume))
        .route("/v1/campaigns/{id}/end", post(campaigns::end))
        .route("/v1/campaigns/{id}/stats", get(campaigns::stats))
        .route("/v1/campaigns/{id}/coupons", get(campaigns::coupons))
        .route("/v1/campaigns/{id}/claims", post(claims::claim))
        .route("/v1/me/coupons", get(claims::my_coupons))
        .route("/v1/coupons/{code}", get(claims::coupon))
        .route("/v1/residents", post(residents::register))
        .route("/v1/merchants", post(merchants::register))
        .route("/v1/merchants/{id}", get(merchants::one))
        .route("/v1/merchants/{id}/settlement", get(merchants::settlement))
        .route("/v1/redemptions/quote", post(redemptions::quote))
        .route("/v1/redemptions", post(redemptions::redeem))
        .route(
            "/v1/redemptions/{redemption_id}/reverse",
            post(redemptions::reverse),
        )
}

/// The NDJSON bulk imports.
pub(crate) fn imports() -> Router<AppState> {
    Router::new()
        .route("/v1/residents/import", post(residents::import))
        .route("/v1/merchants/import", post(merchants::import))
}
