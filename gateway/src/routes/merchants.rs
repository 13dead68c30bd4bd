//! Merchant registration (single or NDJSON import), lookup and daily settlement.

use super::import;
use crate::auth::{AnyRole, Manager};
use crate::error::{AppError, AppJson, AppPath, AppQuery};
use crate::validate::{id_field, name_field, path_id, region_field};
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::NaiveDate;
use serde::Deserialize;
use yunquan_actors::api::{ImportOutcome, MerchantInput, MerchantView, Refusal, Settlement};
use yunquan_actors::domain::FieldError;

fn problems(m: &MerchantInput) -> Vec<FieldError> {
    let mut errors = Vec::new();
    id_field(&mut errors, "id", &m.id);
    name_field(&mut errors, "name", &m.name);
    region_field(&mut errors, "region", &m.region);
    for (i, t) in m.terminals.iter().enumerate() {
        id_field(&mut errors, format!("terminals[{i}]"), t);
    }
    errors
}

fn view_of(m: MerchantInput) -> MerchantView {
    MerchantView {
        id: m.id,
        name: m.name,
        category: m.category,
        region: m.region,
        terminals: m.terminals,
    }
}

pub(crate) async fn register(
    State(state): State<AppState>,
    _manager: Manager,
    AppJson(input): AppJson<MerchantInput>,
) -> Result<(StatusCode, Json<MerchantView>), AppError> {
    let errors = problems(&input);
    if !errors.is_empty() {
        return Err(AppError::invalid(errors));
    }
    let outcomes = state.engine.register_merchants(vec![input.clone()]).await?;
    import::single_outcome(outcomes)?;
    // The registry's view if it has one (it may normalise), else what was registered.
    let view = state
        .engine
        .merchant(&input.id)
        .unwrap_or_else(|| view_of(input));
    Ok((StatusCode::CREATED, Json(view)))
}

pub(crate) async fn import(
    State(state): State<AppState>,
    _manager: Manager,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ImportOutcome>, AppError> {
    let engine = &state.engine;
    import::serve(
        &headers,
        body,
        state.import,
        problems,
        |batch: Vec<MerchantInput>| {
            let engine = engine.clone();
            async move { engine.register_merchants(batch).await }
        },
    )
    .await
}

pub(crate) async fn one(
    State(state): State<AppState>,
    caller: AnyRole,
    AppPath(id): AppPath<String>,
) -> Result<Json<MerchantView>, AppError> {
    path_id("merchant", &id)?;
    caller.may_act_for_merchant(&id)?;
    state
        .engine
        .merchant(&id)
        .map(Json)
        .ok_or_else(|| AppError::refused(&Refusal::UnknownMerchant))
}

/// Query of the settlement route.
#[derive(Debug, Deserialize)]
pub(crate) struct SettlementQuery {
    /// Local date (campaign zone), `YYYY-MM-DD`.
    date: NaiveDate,
}

pub(crate) async fn settlement(
    State(state): State<AppState>,
    caller: AnyRole,
    AppPath(id): AppPath<String>,
    AppQuery(query): AppQuery<SettlementQuery>,
) -> Result<Json<Settlement>, AppError> {
    path_id("merchant", &id)?;
    caller.may_act_for_merchant(&id)?;
    if state.engine.merchant(&id).is_none() {
        return Err(AppError::refused(&Refusal::UnknownMerchant));
    }
    Ok(Json(state.engine.settlement(&id, query.date)))
}
