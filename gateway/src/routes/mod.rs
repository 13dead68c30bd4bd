//! The routes of `docs/http-api.md`, one file per area, put together from the route
//! table ([`crate::route_table`]): each row's method and path get the handler its
//! endpoint names here and, unless the route is public, an access guard that lets
//! only the row's roles through. Routes are grouped by the limits they need
//! ([`RouteClass`]); the caller wraps each group in them.

pub(crate) mod campaigns;
pub(crate) mod claims;
pub(crate) mod import;
pub(crate) mod merchants;
pub(crate) mod ops;
pub(crate) mod redemptions;
pub(crate) mod residents;
pub(crate) mod tokens;

use crate::auth::AnyRole;
use crate::error::AppError;
use crate::route_table::{route_table, Endpoint, RouteClass, RouteRule};
use crate::AppState;
use axum::extract::{Request, State};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use yunquan_actors::Engine;

/// The routes of one class, each behind its access guard.
pub(crate) fn build(state: &AppState, class: RouteClass) -> Router<AppState> {
    let mut router = Router::new();
    for rule in route_table().iter().filter(|r| r.class == class) {
        let mut method_router = handler(rule.endpoint, rule.method.filter());
        if rule.access.needs_token() {
            let guard = Guard {
                engine: state.engine.clone(),
                rule,
            };
            method_router = method_router.route_layer(from_fn_with_state(guard, check_access));
        }
        // Two rows with one path (GET and POST /v1/campaigns) merge into one route.
        router = router.route(rule.path, method_router);
    }
    router
}

/// The handler of each endpoint. A new endpoint does not compile until it has one
/// here, and has no route until it has a row in the table.
fn handler(endpoint: Endpoint, method: MethodFilter) -> MethodRouter<AppState> {
    match endpoint {
        Endpoint::Healthz => on(method, ops::healthz),
        Endpoint::Readyz => on(method, ops::readyz),
        Endpoint::Metrics => on(method, ops::metrics),
        Endpoint::OpenApi => on(method, ops::openapi),
        Endpoint::MintTokens => on(method, tokens::mint_tokens),
        Endpoint::CreateCampaign => on(method, campaigns::create),
        Endpoint::ListCampaigns => on(method, campaigns::list),
        Endpoint::GetCampaign => on(method, campaigns::one),
        Endpoint::PublishCampaign => on(method, campaigns::publish),
        Endpoint::PauseCampaign => on(method, campaigns::pause),
        Endpoint::ResumeCampaign => on(method, campaigns::resume),
        Endpoint::EndCampaign => on(method, campaigns::end),
        Endpoint::CampaignStats => on(method, campaigns::stats),
        Endpoint::CampaignCoupons => on(method, campaigns::coupons),
        Endpoint::RegisterResident => on(method, residents::register),
        Endpoint::ImportResidents => on(method, residents::import),
        Endpoint::RegisterMerchant => on(method, merchants::register),
        Endpoint::ImportMerchants => on(method, merchants::import),
        Endpoint::GetMerchant => on(method, merchants::one),
        Endpoint::Settlement => on(method, merchants::settlement),
        Endpoint::Claim => on(method, claims::claim),
        Endpoint::MyCoupons => on(method, claims::my_coupons),
        Endpoint::GetCoupon => on(method, claims::coupon),
        Endpoint::Quote => on(method, redemptions::quote),
        Endpoint::Redeem => on(method, redemptions::redeem),
        Endpoint::Reverse => on(method, redemptions::reverse),
    }
}

/// What the access guard of one route needs.
#[derive(Debug, Clone)]
struct Guard {
    /// Holds the token key, the clock and the registry the caller is checked against.
    engine: Engine,
    /// The route's row.
    rule: &'static RouteRule,
}

/// Lets through only callers whose role the route's row allows, before any of the
/// request is read; the verified caller is handed to the handler's extractor.
async fn check_access(State(guard): State<Guard>, mut req: Request, next: Next) -> Response {
    let caller = match AnyRole::authenticate(req.headers(), &guard.engine) {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    if !guard.rule.access.roles().contains(&caller.role()) {
        let rule = guard.rule;
        return AppError::forbidden(format!(
            "{} {} is for: {}",
            rule.method.as_str(),
            rule.path,
            rule.rule()
        ))
        .into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}
