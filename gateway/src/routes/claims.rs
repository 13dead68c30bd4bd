//! Flash claims and residents' coupons: the hot path of a round.

use crate::auth::{AnyRole, Resident};
use crate::error::{AppError, AppJson, AppPath};
use crate::metrics::record_claim;
use crate::validate::{coupon_code, idempotency_key, path_id};
use crate::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use std::time::Instant;
use yunquan_actors::api::CouponView;

/// Body of a claim.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClaimRequest {
    /// Tier index in the campaign.
    tier: u32,
}

/// `POST /v1/campaigns/{id}/claims`: 201 with the new coupon, 200 when an
/// `Idempotency-Key` replays an earlier claim.
pub(crate) async fn claim(
    State(state): State<AppState>,
    Resident(account): Resident,
    AppPath(campaign): AppPath<String>,
    headers: HeaderMap,
    AppJson(req): AppJson<ClaimRequest>,
) -> Result<(StatusCode, Json<CouponView>), AppError> {
    path_id("campaign", &campaign)?;
    let key = idempotency_key(&headers)?;
    let started = Instant::now();
    match state.engine.claim(&account, &campaign, req.tier, key).await {
        Ok((coupon, replay)) => {
            record_claim(
                if replay { "replayed" } else { "granted" },
                started.elapsed(),
            );
            let status = if replay {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok((status, Json(coupon)))
        }
        Err(e) => {
            let e = AppError::from(e);
            record_claim(e.reason(), started.elapsed());
            Err(e)
        }
    }
}

/// `GET /v1/me/coupons`.
pub(crate) async fn my_coupons(
    State(state): State<AppState>,
    Resident(account): Resident,
) -> Result<Json<Vec<CouponView>>, AppError> {
    Ok(Json(state.engine.coupons(&account).await?))
}

/// `GET /v1/coupons/{code}`: managers see any coupon, residents only their own.
pub(crate) async fn coupon(
    State(state): State<AppState>,
    caller: AnyRole,
    AppPath(text): AppPath<String>,
) -> Result<Json<CouponView>, AppError> {
    let code = coupon_code(&state.engine.keys().code, &text)?;
    match caller {
        AnyRole::Manager(_) => Ok(Json(state.engine.coupon(&code).await?)),
        AnyRole::Resident(account) => {
            // CouponView does not name its owner; a wallet is a handful of coupons.
            let mine = state.engine.coupons(&account).await?;
            if let Some(c) = mine.into_iter().find(|c| c.code == code) {
                return Ok(Json(c));
            }
            match state.engine.coupon(&code).await {
                Ok(_) => Err(AppError::forbidden(
                    "this coupon belongs to another resident",
                )),
                Err(e) => Err(e.into()),
            }
        }
        AnyRole::Terminal(_) => Err(AppError::forbidden(
            "only a manager or the owning resident may look up a coupon",
        )),
    }
}
