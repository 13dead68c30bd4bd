//! Till operations: quote, redeem, reverse. The merchant and terminal come from the
//! terminal's token, never from the body, so a till can only act for its merchant.

use crate::auth::Terminal;
use crate::error::{AppError, AppJson, AppPath};
use crate::metrics::record_redemption;
use crate::validate::{coupon_code, field_error, id_field, redemption_id};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use std::time::Instant;
use yunquan_actors::api::{QuoteRequest, RedeemRequest, Redemption, Reversal, ReverseRequest};
use yunquan_actors::domain::money::AMOUNT_FEN_MAX;
use yunquan_actors::domain::FieldError;

/// Body of a quote.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuoteBody {
    /// Coupon code as scanned.
    code: String,
    /// Order amount in fen.
    order_fen: u64,
}

/// Body of a redemption.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedeemBody {
    /// Coupon code as scanned.
    code: String,
    /// The POS's request number; a retry with it replays the first answer.
    request_no: String,
    /// Order amount in fen.
    order_fen: u64,
}

fn order_field(errors: &mut Vec<FieldError>, order_fen: u64) {
    if order_fen > AMOUNT_FEN_MAX {
        errors.push(field_error(
            "order_fen",
            format!("at most {AMOUNT_FEN_MAX} fen"),
        ));
    }
}

pub(crate) async fn quote(
    State(state): State<AppState>,
    till: Terminal,
    AppJson(body): AppJson<QuoteBody>,
) -> Result<Json<Redemption>, AppError> {
    let code = coupon_code(&state.engine.keys().code, &body.code)?;
    let mut errors = Vec::new();
    order_field(&mut errors, body.order_fen);
    if !errors.is_empty() {
        return Err(AppError::invalid(errors));
    }
    let req = QuoteRequest {
        merchant: till.merchant,
        code,
        order_fen: body.order_fen,
    };
    Ok(Json(state.engine.quote(req).await?))
}

/// `POST /v1/redemptions`: 201 for a new redemption, 200 for a replay of `request_no`.
pub(crate) async fn redeem(
    State(state): State<AppState>,
    till: Terminal,
    AppJson(body): AppJson<RedeemBody>,
) -> Result<(StatusCode, Json<Redemption>), AppError> {
    let started = Instant::now();
    let result = redeem_checked(&state, till, body).await;
    let outcome = match &result {
        Ok((StatusCode::OK, _)) => "replayed",
        Ok(_) => "redeemed",
        Err(e) => e.reason(),
    };
    record_redemption(outcome, started.elapsed());
    result
}

async fn redeem_checked(
    state: &AppState,
    till: Terminal,
    body: RedeemBody,
) -> Result<(StatusCode, Json<Redemption>), AppError> {
    let code = coupon_code(&state.engine.keys().code, &body.code)?;
    let mut errors = Vec::new();
    id_field(&mut errors, "request_no", &body.request_no);
    order_field(&mut errors, body.order_fen);
    if !errors.is_empty() {
        return Err(AppError::invalid(errors));
    }
    let req = RedeemRequest {
        merchant: till.merchant,
        terminal: till.terminal,
        code,
        request_no: body.request_no,
        order_fen: body.order_fen,
    };
    let (redemption, replay) = state.engine.redeem(req).await?;
    let status = if replay {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(redemption)))
}

/// `POST /v1/redemptions/{redemption_id}/reverse`: only the redeeming merchant's
/// terminals may reverse (the engine checks the merchant against the redemption).
pub(crate) async fn reverse(
    State(state): State<AppState>,
    till: Terminal,
    AppPath(id): AppPath<String>,
) -> Result<Json<Reversal>, AppError> {
    redemption_id(&id)?;
    let req = ReverseRequest {
        merchant: till.merchant,
        redemption_id: id,
    };
    Ok(Json(state.engine.reverse(req).await?))
}
