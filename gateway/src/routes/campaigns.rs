//! Campaign definition, lifecycle, statistics and the coupon export.

use crate::auth::{AnyRole, Manager};
use crate::error::{AppError, AppJson, AppPath};
use crate::validate::path_id;
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::convert::Infallible;
use yunquan_actors::api::{CampaignAction, CampaignStats, CampaignView, CouponView, Refusal};
use yunquan_actors::domain::CampaignSpec;

/// Coupons serialised per body chunk of the NDJSON export: big enough for few
/// writes, small enough that the export never holds a second copy of the campaign.
const EXPORT_CHUNK_COUPONS: usize = 1_024;

fn unknown_campaign() -> AppError {
    AppError::refused(&Refusal::UnknownCampaign)
}

pub(crate) async fn create(
    State(state): State<AppState>,
    _manager: Manager,
    AppJson(spec): AppJson<CampaignSpec>,
) -> Result<(StatusCode, Json<CampaignView>), AppError> {
    let view = state.engine.create_campaign(spec).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    _manager: Manager,
) -> Json<Vec<CampaignView>> {
    Json(state.engine.campaigns())
}

pub(crate) async fn one(
    State(state): State<AppState>,
    _caller: AnyRole,
    AppPath(id): AppPath<String>,
) -> Result<Json<CampaignView>, AppError> {
    path_id("campaign", &id)?;
    state
        .engine
        .campaign(&id)
        .map(Json)
        .ok_or_else(unknown_campaign)
}

async fn act(
    state: AppState,
    id: String,
    action: CampaignAction,
) -> Result<Json<CampaignView>, AppError> {
    path_id("campaign", &id)?;
    Ok(Json(state.engine.campaign_action(&id, action).await?))
}

pub(crate) async fn publish(
    State(state): State<AppState>,
    _manager: Manager,
    AppPath(id): AppPath<String>,
) -> Result<Json<CampaignView>, AppError> {
    act(state, id, CampaignAction::Publish).await
}

pub(crate) async fn pause(
    State(state): State<AppState>,
    _manager: Manager,
    AppPath(id): AppPath<String>,
) -> Result<Json<CampaignView>, AppError> {
    act(state, id, CampaignAction::Pause).await
}

pub(crate) async fn resume(
    State(state): State<AppState>,
    _manager: Manager,
    AppPath(id): AppPath<String>,
) -> Result<Json<CampaignView>, AppError> {
    act(state, id, CampaignAction::Resume).await
}

pub(crate) async fn end(
    State(state): State<AppState>,
    _manager: Manager,
    AppPath(id): AppPath<String>,
) -> Result<Json<CampaignView>, AppError> {
    act(state, id, CampaignAction::End).await
}

pub(crate) async fn stats(
    State(state): State<AppState>,
    _manager: Manager,
    AppPath(id): AppPath<String>,
) -> Result<Json<CampaignStats>, AppError> {
    path_id("campaign", &id)?;
    state
        .engine
        .campaign_stats(&id)
        .map(Json)
        .ok_or_else(unknown_campaign)
}

/// Every coupon of the campaign as NDJSON, serialised chunk by chunk as the body is sent.
pub(crate) async fn coupons(
    State(state): State<AppState>,
    _manager: Manager,
    AppPath(id): AppPath<String>,
) -> Result<Response, AppError> {
    path_id("campaign", &id)?;
    let coupons = state.engine.campaign_coupons(&id).await?;
    let body = Body::from_stream(futures::stream::iter(ndjson_chunks(coupons)));
    Ok(([(CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

fn ndjson_chunks(coupons: Vec<CouponView>) -> impl Iterator<Item = Result<Bytes, Infallible>> {
    let mut rest = coupons.into_iter();
    std::iter::from_fn(move || {
        let mut buf = Vec::new();
        for coupon in rest.by_ref().take(EXPORT_CHUNK_COUPONS) {
            // A plain data struct always serialises; skipping beats a torn stream.
            if serde_json::to_writer(&mut buf, &coupon).is_ok() {
                buf.push(b'\n');
            }
        }
        (!buf.is_empty()).then(|| Ok(Bytes::from(buf)))
    })
}
