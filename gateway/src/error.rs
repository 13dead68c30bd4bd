//! Every error the API returns, as `application/problem+json` (RFC 9457) shaped by
//! `docs/http-api.md`: `type` is `/problems/<reason>`, `reason` is the stable
//! machine-readable code, and `errors` lists field problems on 422 only.
//!
//! Extractor wrappers ([`AppJson`], [`AppPath`], [`AppQuery`]) turn axum's plain-text
//! rejections into the same shape, after the pattern of axum's error-handling example.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use yunquan_actors::api::{EngineError, Refusal};
use yunquan_actors::domain::FieldError;

/// The media type of every error body.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// An error response: status, stable reason, human detail, and the headers the
/// contract asks for (`Retry-After` on overload, a bearer challenge on 401).
#[derive(Debug, Clone)]
pub struct AppError {
    /// HTTP status.
    status: StatusCode,
    /// Stable code, e.g. `sold_out`; part of the contract.
    reason: &'static str,
    /// Human-readable explanation of this occurrence; never internal causes.
    detail: String,
    /// Field-level problems (422 only).
    errors: Vec<FieldError>,
    /// Seconds the client should wait before retrying (503 `overloaded`).
    retry_after_s: Option<u64>,
    /// Whether to send `WWW-Authenticate: Bearer` (401).
    challenge: bool,
}

impl AppError {
    /// A problem with any status and reason.
    pub fn new(status: StatusCode, reason: &'static str, detail: impl Into<String>) -> Self {
        AppError {
            status,
            reason,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after_s: None,
            challenge: false,
        }
    }

    /// 400 `bad_request`: malformed JSON, wrong types, missing fields, bad ids.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    /// 401 `unauthorized`: missing, expired or forged token.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        AppError {
            challenge: true,
            ..Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
        }
    }

    /// 403 `forbidden`: valid token, wrong role or acting for someone else.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404 `not_found`: no such route.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", detail)
    }

    /// 415 `unsupported_media_type`.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            detail,
        )
    }

    /// 422 `invalid` with the fields to fix.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail = match errors.len() {
            1 => "1 field is invalid".to_owned(),
            n => format!("{n} fields are invalid"),
        };
        AppError {
            errors,
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail)
        }
    }

    /// 422 with another reason (`invalid_code`, `forged_code`) and its fields.
    pub fn unprocessable(
        reason: &'static str,
        detail: impl Into<String>,
        errors: Vec<FieldError>,
    ) -> Self {
        AppError {
            errors,
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, reason, detail)
        }
    }

    /// 503 `overloaded`: nothing was executed; retry after `retry_after_s` (at least 1).
    pub fn overloaded(retry_after_s: u64) -> Self {
        let retry_after_s = retry_after_s.max(1);
        AppError {
            retry_after_s: Some(retry_after_s),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                format!("the server is at capacity; nothing was executed, retry after {retry_after_s} s"),
            )
        }
    }

    /// 503 `unavailable`: the store failed; nothing was acknowledged. The cause is
    /// for operators (log it where it is known), never for clients.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service cannot commit requests right now; nothing was acknowledged",
        )
    }

    /// 504 `timeout`: the request ran out of time; it may or may not have taken effect.
    pub fn timeout() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "the request did not finish in time; it may or may not have taken effect, retry with the same key",
        )
    }

    /// A business refusal: 404 for the unknown-thing reasons, 422 for bad coupon
    /// codes, 409 for the others.
    pub fn refused(refusal: &Refusal) -> Self {
        Self::new(refusal_status(refusal), refusal.code(), refusal.to_string())
    }

    /// Replaces the human detail, e.g. to say how far a bulk import got.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Stable reason code (also the `outcome` label of the business counters).
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// Human detail.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// Field problems (422 only).
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }
}

/// The status of a business refusal per the contract.
pub fn refusal_status(refusal: &Refusal) -> StatusCode {
    match refusal {
        Refusal::UnknownCampaign
        | Refusal::UnknownTier
        | Refusal::UnknownAccount
        | Refusal::UnknownMerchant
        | Refusal::CouponNotFound
        | Refusal::RedemptionNotFound => StatusCode::NOT_FOUND,
        Refusal::InvalidCode | Refusal::ForgedCode => StatusCode::UNPROCESSABLE_ENTITY,
        // Every other refusal, including ones added later, is "executed, answer is no".
        _ => StatusCode::CONFLICT,
    }
}

impl From<EngineError> for AppError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Refused(r) => AppError::refused(&r),
            EngineError::Invalid(errors) => AppError::invalid(errors),
            EngineError::Overloaded { retry_after_ms } => {
                AppError::overloaded(retry_after_ms.div_ceil(1_000))
            }
            EngineError::Unavailable(cause) => {
                // The only place the cause is seen: logged once, kept from the client.
                tracing::error!(%cause, "engine unavailable");
                AppError::unavailable()
            }
            other => {
                tracing::error!(error = %other, "unexpected engine error");
                AppError::unavailable()
            }
        }
    }
}

/// A short, fixed summary of a problem type (RFC 9457 `title`).
fn title(reason: &str) -> &'static str {
    match reason {
        "bad_request" => "Bad request",
        "payload_too_large" => "Payload too large",
        "unsupported_media_type" => "Unsupported media type",
        "unauthorized" => "Unauthorized",
        "forbidden" => "Forbidden",
        "not_found" => "Not found",
        "method_not_allowed" => "Method not allowed",
        "invalid" => "Invalid input",
        "invalid_code" => "Invalid coupon code",
        "forged_code" => "Forged coupon code",
        "sold_out" => "Sold out",
        "limit_reached" => "Limit reached",
        "not_started" => "Round not started",
        "ended" => "Campaign ended",
        "paused" => "Campaign paused",
        "not_published" => "Campaign not published",
        "below_threshold" => "Order below threshold",
        "expired" => "Coupon expired",
        "not_yet_valid" => "Coupon not yet valid",
        "not_applicable" => "Coupon not applicable",
        "already_redeemed" => "Coupon already redeemed",
        "already_reversed" => "Redemption already reversed",
        "idempotency_conflict" => "Idempotency conflict",
        "budget_exhausted" => "Budget exhausted",
        "already_registered" => "Already registered",
        "wrong_status" => "Wrong campaign status",
        "unknown_campaign" => "Unknown campaign",
        "unknown_tier" => "Unknown tier",
        "unknown_account" => "Unknown account",
        "unknown_merchant" => "Unknown merchant",
        "coupon_not_found" => "Coupon not found",
        "redemption_not_found" => "Redemption not found",
        "overloaded" => "Overloaded",
        "unavailable" => "Unavailable",
        "timeout" => "Timeout",
        _ => "Error",
    }
}

/// The wire form of every error: an RFC 9457 problem with the contract's `reason`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `/problems/<reason>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short, fixed summary of the reason.
    pub title: &'static str,
    /// The HTTP status, repeated.
    pub status: u16,
    /// Stable machine-readable code, e.g. `sold_out` (see `docs/http-api.md`).
    pub reason: &'static str,
    /// What went wrong this time, for people.
    pub detail: String,
    /// The fields to fix (422 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let is_unprocessable = self.status == StatusCode::UNPROCESSABLE_ENTITY;
        let body = Problem {
            kind: format!("/problems/{}", self.reason),
            title: title(self.reason),
            status: self.status.as_u16(),
            reason: self.reason,
            detail: self.detail,
            errors: is_unprocessable.then_some(self.errors),
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (self.status, bytes).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
        if let Some(s) = self.retry_after_s {
            headers.insert(RETRY_AFTER, HeaderValue::from(s));
        }
        if self.challenge {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        // axum says 422 for well-formed JSON of the wrong shape; the contract says 400.
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => AppError::payload_too_large(rejection.body_text()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                AppError::unsupported_media_type("expected Content-Type: application/json")
            }
            _ => AppError::bad_request(rejection.body_text()),
        }
    }
}

impl From<PathRejection> for AppError {
    fn from(rejection: PathRejection) -> Self {
        AppError::bad_request(rejection.body_text())
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        AppError::bad_request(rejection.body_text())
    }
}

/// `axum::Json` whose rejections are problems (400/413/415) instead of plain text.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(AppJson(value))
    }
}

/// `axum::extract::Path` whose rejections are 400 problems.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppPath<T>(pub T);

impl<T, S> FromRequestParts<S> for AppPath<T>
where
    axum::extract::Path<T>: FromRequestParts<S, Rejection = PathRejection>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(AppPath(value))
    }
}

/// `axum::extract::Query` whose rejections are 400 problems.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for AppQuery<T>
where
    axum::extract::Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(AppQuery(value))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "error_tests.rs"]
mod tests;
