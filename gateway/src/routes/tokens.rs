//! `POST /v1/tokens`: a manager mints tokens in bulk (the load generator mints one
//! per simulated resident and terminal).

use crate::auth::{mint, Manager, Role, TokenClaims};
use crate::error::{AppError, AppJson};
use crate::validate::{field_error, id_field};
use crate::AppState;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use yunquan_actors::domain::FieldError;

/// Most subjects per request.
pub const SUBJECTS_MAX: usize = 10_000;
/// Longest token lifetime, in seconds (30 days).
pub const TTL_S_MAX: u64 = 30 * 24 * 3_600;
/// Lifetime when the request names none, in seconds.
pub const TTL_S_DEFAULT: u64 = 3_600;
/// Field errors reported at most, so 10,000 bad subjects do not make a huge answer.
const FIELD_ERRORS_MAX: usize = 100;

/// The request body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MintRequest {
    /// Role of every token.
    role: Role,
    /// One token per subject, in order.
    subjects: Vec<String>,
    /// The terminals' merchant (terminal tokens only).
    #[serde(default)]
    merchant: Option<String>,
    /// Lifetime in seconds.
    #[serde(default = "ttl_default")]
    ttl_s: u64,
}

fn ttl_default() -> u64 {
    TTL_S_DEFAULT
}

/// The reply.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct MintReply {
    /// One per subject, in request order.
    tokens: Vec<String>,
}

fn problems(req: &MintRequest) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if req.subjects.is_empty() || req.subjects.len() > SUBJECTS_MAX {
        errors.push(field_error(
            "subjects",
            format!("1 to {SUBJECTS_MAX} subjects"),
        ));
    }
    for (i, s) in req.subjects.iter().enumerate() {
        id_field(&mut errors, format!("subjects[{i}]"), s);
        if errors.len() >= FIELD_ERRORS_MAX {
            break;
        }
    }
    match (&req.merchant, req.role) {
        (None, Role::Terminal) => {
            errors.push(field_error("merchant", "required for terminal tokens"))
        }
        (Some(m), Role::Terminal) => id_field(&mut errors, "merchant", m),
        (Some(_), _) => errors.push(field_error(
            "merchant",
            "only terminal tokens name a merchant",
        )),
        (None, _) => {}
    }
    if req.ttl_s == 0 || req.ttl_s > TTL_S_MAX {
        errors.push(field_error(
            "ttl_s",
            format!("1 to {TTL_S_MAX} seconds (30 days)"),
        ));
    }
    errors
}

pub(crate) async fn mint_tokens(
    State(state): State<AppState>,
    _manager: Manager,
    AppJson(req): AppJson<MintRequest>,
) -> Result<Json<MintReply>, AppError> {
    let errors = problems(&req);
    if !errors.is_empty() {
        return Err(AppError::invalid(errors));
    }
    let ttl_s = i64::try_from(req.ttl_s).unwrap_or(i64::MAX);
    let exp = state
        .engine
        .now_ms()
        .div_euclid(1_000)
        .saturating_add(ttl_s);
    let key = &state.engine.keys().token;
    let tokens = req
        .subjects
        .into_iter()
        .map(|sub| {
            mint(
                key,
                &TokenClaims {
                    role: req.role,
                    sub,
                    mer: req.merchant.clone(),
                    exp,
                },
            )
        })
        .collect();
    Ok(Json(MintReply { tokens }))
}
