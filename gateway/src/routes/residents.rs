//! Resident registration, one at a time or as an NDJSON import.

use super::import;
use crate::auth::Manager;
use crate::error::{AppError, AppJson};
use crate::validate::{id_field, identity_field, region_field};
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Serialize;
use yunquan_actors::api::{ImportOutcome, ResidentInput};
use yunquan_actors::domain::FieldError;

/// Reply to a single registration.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Registered {
    /// The account now registered.
    account: String,
}

fn problems(r: &ResidentInput) -> Vec<FieldError> {
    let mut errors = Vec::new();
    id_field(&mut errors, "account", &r.account);
    identity_field(&mut errors, "identity_number", &r.identity_number);
    region_field(&mut errors, "region", &r.region);
    errors
}

pub(crate) async fn register(
    State(state): State<AppState>,
    _manager: Manager,
    AppJson(input): AppJson<ResidentInput>,
) -> Result<(StatusCode, Json<Registered>), AppError> {
    let errors = problems(&input);
    if !errors.is_empty() {
        return Err(AppError::invalid(errors));
    }
    let account = input.account.clone();
    let outcomes = state.engine.register_residents(vec![input]).await?;
    import::single_outcome(outcomes)?;
    Ok((StatusCode::CREATED, Json(Registered { account })))
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
        |batch: Vec<ResidentInput>| {
            let engine = engine.clone();
            async move { engine.register_residents(batch).await }
        },
    )
    .await
}
