//! Every route of the API, with who may call it, in one table.
//!
//! The router is built from this table (see `routes::build`): a route exists only if
//! it has a row here, and each row names the roles the access guard lets through
//! before the handler runs. The handlers then check what needs the data (that a
//! terminal acts for the merchant in the path, that a coupon is the resident's own,
//! that a redemption was made by this terminal's merchant). `/openapi.json`, the
//! access-matrix test and `docs/http-api.md` are all checked against this table.

use crate::auth::Role;
use axum::http::Method;
use axum::routing::MethodFilter;

/// An HTTP method the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// `GET` (axum answers `HEAD` with the same handler).
    Get,
    /// `POST`.
    Post,
}

impl Verb {
    /// The method as `http` spells it.
    pub fn method(self) -> Method {
        match self {
            Verb::Get => Method::GET,
            Verb::Post => Method::POST,
        }
    }

    /// Upper-case name, e.g. `GET`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
        }
    }

    pub(crate) fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// No token needed (probes, metrics, the OpenAPI document).
    Public,
    /// Managers only.
    Manager,
    /// Any valid token of a registered caller (residents and terminals included).
    AnyRole,
    /// Residents, always acting for their own account (it comes from the token).
    Resident,
    /// Terminals, always acting for their own merchant (it comes from the token).
    Terminal,
    /// Managers, or terminals of the merchant named in the path (others: 403).
    ManagerOrMerchantTerminal,
    /// Managers, or the resident who owns the coupon named in the path (others: 403).
    ManagerOrCouponOwner,
    /// Terminals of the merchant that made the redemption named in the path; to any
    /// other terminal that redemption does not exist (404 `redemption_not_found`).
    RedeemingMerchantTerminal,
}

impl Access {
    /// Roles the access guard lets through; the handler may still refuse a caller of
    /// these roles who acts for someone else.
    pub fn roles(self) -> &'static [Role] {
        match self {
            Access::Public => &[],
            Access::Manager => &[Role::Manager],
            Access::AnyRole => &[Role::Manager, Role::Resident, Role::Terminal],
            Access::Resident => &[Role::Resident],
            Access::Terminal | Access::RedeemingMerchantTerminal => &[Role::Terminal],
            Access::ManagerOrMerchantTerminal => &[Role::Manager, Role::Terminal],
            Access::ManagerOrCouponOwner => &[Role::Manager, Role::Resident],
        }
    }

    /// The rule as `docs/http-api.md` states it in its role column.
    pub fn rule(self) -> &'static str {
        match self {
            Access::Public => "none",
            Access::Manager => "manager",
            Access::AnyRole => "any role",
            Access::Resident => "resident",
            Access::Terminal => "terminal",
            Access::ManagerOrMerchantTerminal => "manager, or a terminal of that merchant",
            Access::ManagerOrCouponOwner => "manager, or the owning resident",
            Access::RedeemingMerchantTerminal => "terminal of the redeeming merchant",
        }
    }

    /// Whether a token is needed at all.
    pub fn needs_token(self) -> bool {
        self != Access::Public
    }
}

/// Which limits a route runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// Probes, metrics and the OpenAPI document: outside the in-flight cap and the
    /// timeout, so they answer under overload.
    Ops,
    /// JSON routes: `body_bytes_max`, `request_timeout_ms`, the shared in-flight cap.
    Api,
    /// Token minting: like `Api` with the larger `tokens_body_bytes_max`.
    Tokens,
    /// NDJSON imports: streamed bodies up to `import_bytes_max`, `import_timeout_ms`.
    Import,
}

/// Names one route; the handler and the OpenAPI operation are chosen by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // Each variant is documented by its row in [`ROUTES`].
pub enum Endpoint {
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    MintTokens,
    CreateCampaign,
    ListCampaigns,
    GetCampaign,
    PublishCampaign,
    PauseCampaign,
    ResumeCampaign,
    EndCampaign,
    CampaignStats,
    CampaignCoupons,
    RegisterResident,
    ImportResidents,
    RegisterMerchant,
    ImportMerchants,
    GetMerchant,
    Settlement,
    Claim,
    MyCoupons,
    GetCoupon,
    Quote,
    Redeem,
    Reverse,
}

/// One row of the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRule {
    /// Which route this is.
    pub endpoint: Endpoint,
    /// Its method.
    pub method: Verb,
    /// Its path pattern in axum syntax, e.g. `/v1/campaigns/{id}`.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// The limits it runs under.
    pub class: RouteClass,
    /// One line on what it does (the OpenAPI summary).
    pub summary: &'static str,
}

const fn row(
    endpoint: Endpoint,
    method: Verb,
    path: &'static str,
    access: Access,
    class: RouteClass,
    summary: &'static str,
) -> RouteRule {
    RouteRule {
        endpoint,
        method,
        path,
        access,
        class,
        summary,
    }
}

use Access as A;
use Endpoint as E;
use RouteClass as C;
use Verb::{Get, Post};

/// The table, in the order of `docs/http-api.md`.
#[rustfmt::skip]
static ROUTES: [RouteRule; 26] = [
    row(E::Healthz, Get, "/healthz", A::Public, C::Ops, "The process is up"),
    row(E::Readyz, Get, "/readyz", A::Public, C::Ops, "Every shard accepts commands"),
    row(E::Metrics, Get, "/metrics", A::Public, C::Ops, "Prometheus metrics"),
    row(E::OpenApi, Get, "/openapi.json", A::Public, C::Ops, "This API as an OpenAPI 3.1 document"),
    row(E::MintTokens, Post, "/v1/tokens", A::Manager, C::Tokens, "Mint bearer tokens for residents, terminals or managers"),
    row(E::CreateCampaign, Post, "/v1/campaigns", A::Manager, C::Api, "Define a campaign (created as a draft)"),
    row(E::ListCampaigns, Get, "/v1/campaigns", A::Manager, C::Api, "Every campaign, newest first"),
    row(E::GetCampaign, Get, "/v1/campaigns/{id}", A::AnyRole, C::Api, "One campaign"),
    row(E::PublishCampaign, Post, "/v1/campaigns/{id}/publish", A::Manager, C::Api, "Open a draft campaign to claims"),
    row(E::PauseCampaign, Post, "/v1/campaigns/{id}/pause", A::Manager, C::Api, "Stop claims until resumed"),
    row(E::ResumeCampaign, Post, "/v1/campaigns/{id}/resume", A::Manager, C::Api, "Accept claims again after a pause"),
    row(E::EndCampaign, Post, "/v1/campaigns/{id}/end", A::Manager, C::Api, "End a campaign for good"),
    row(E::CampaignStats, Get, "/v1/campaigns/{id}/stats", A::Manager, C::Api, "Live figures of a campaign"),
    row(E::CampaignCoupons, Get, "/v1/campaigns/{id}/coupons", A::Manager, C::Api, "Every coupon of a campaign, as NDJSON"),
    row(E::RegisterResident, Post, "/v1/residents", A::Manager, C::Api, "Register one resident"),
    row(E::ImportResidents, Post, "/v1/residents/import", A::Manager, C::Import, "Register residents in bulk from NDJSON"),
    row(E::RegisterMerchant, Post, "/v1/merchants", A::Manager, C::Api, "Register one merchant with its terminals"),
    row(E::ImportMerchants, Post, "/v1/merchants/import", A::Manager, C::Import, "Register merchants in bulk from NDJSON"),
    row(E::GetMerchant, Get, "/v1/merchants/{id}", A::ManagerOrMerchantTerminal, C::Api, "One merchant"),
    row(E::Settlement, Get, "/v1/merchants/{id}/settlement", A::ManagerOrMerchantTerminal, C::Api, "A merchant's settlement for one local day"),
    row(E::Claim, Post, "/v1/campaigns/{id}/claims", A::Resident, C::Api, "Claim a coupon of a tier in the live round"),
    row(E::MyCoupons, Get, "/v1/me/coupons", A::Resident, C::Api, "The calling resident's coupons"),
    row(E::GetCoupon, Get, "/v1/coupons/{code}", A::ManagerOrCouponOwner, C::Api, "One coupon by code"),
    row(E::Quote, Post, "/v1/redemptions/quote", A::Terminal, C::Api, "Price a coupon against an order without redeeming it"),
    row(E::Redeem, Post, "/v1/redemptions", A::Terminal, C::Api, "Redeem a coupon in a sale"),
    row(E::Reverse, Post, "/v1/redemptions/{redemption_id}/reverse", A::RedeemingMerchantTerminal, C::Api, "Reverse a redemption on refund"),
];

impl RouteRule {
    /// The rule as `docs/http-api.md` states it in its role column.
    pub fn rule(&self) -> &'static str {
        self.access.rule()
    }
}

/// Every route of the API: the router serves exactly these.
pub fn route_table() -> &'static [RouteRule] {
    &ROUTES
}

/// The row of `method` + `path` (a pattern, as in the table), if any.
pub fn find_route(method: &Method, path: &str) -> Option<&'static RouteRule> {
    ROUTES
        .iter()
        .find(|r| r.path == path && r.method.method() == *method)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "route_table_tests.rs"]
mod tests;
