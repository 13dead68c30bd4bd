//! Bearer tokens and the role extractors.
//!
//! A token is `base64url(payload_json) "." base64url(hmac_sha256(key, payload_part))`
//! without padding; the MAC covers the payload's base64 text exactly as sent, so the
//! server never re-serialises before checking. Tokens are stateless: a resident or
//! terminal token is re-checked against the registry on every request, so removing
//! the account or unbinding the terminal takes effect at once.

use crate::error::AppError;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use data_encoding::BASE64URL_NOPAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use yunquan_actors::domain::{valid_id, FieldError};
use yunquan_actors::Engine;

/// Longest token accepted, in bytes: the largest legitimate one (two 64-byte ids) is
/// well under 400, and the cap keeps a hostile header from costing a large decode.
pub const TOKEN_BYTES_MAX: usize = 1_024;

/// Who a token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Campaign and registry operator.
    Manager,
    /// A resident's app account.
    Resident,
    /// A merchant's point-of-sale terminal.
    Terminal,
}

impl Role {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Resident => "resident",
            Role::Terminal => "terminal",
        }
    }
}

/// The signed payload of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenClaims {
    /// Who the bearer acts as.
    pub role: Role,
    /// The manager's name, the resident's account or the terminal's id.
    pub sub: String,
    /// The terminal's merchant (terminal tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mer: Option<String>,
    /// Expiry, Unix seconds: the token is refused from this instant on.
    pub exp: i64,
}

impl TokenClaims {
    /// What is wrong with these claims (empty when none): ids must be ids, and only
    /// terminal tokens carry, and must carry, a merchant.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let e = |field: &str, reason: &str| FieldError {
            field: field.to_owned(),
            reason: reason.to_owned(),
        };
        if !valid_id(&self.sub) {
            errors.push(e(
                "sub",
                "must be 1-64 printable ASCII characters without spaces or '/'",
            ));
        }
        match (&self.mer, self.role) {
            (None, Role::Terminal) => errors.push(e("mer", "a terminal token names its merchant")),
            (Some(m), Role::Terminal) if !valid_id(m) => errors.push(e(
                "mer",
                "must be 1-64 printable ASCII characters without spaces or '/'",
            )),
            (Some(_), Role::Manager | Role::Resident) => {
                errors.push(e("mer", "only terminal tokens name a merchant"))
            }
            _ => {}
        }
        errors
    }
}

/// Why a token is refused; every kind is a 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token: send Authorization: Bearer <token>")]
    Missing,
    /// Not two base64url parts, or a payload that is not valid claims.
    #[error("malformed bearer token")]
    Malformed,
    /// The signature does not match: forged, altered, or signed with another key.
    #[error("bearer token signature does not verify")]
    Forged,
    /// Past its `exp`.
    #[error("bearer token has expired")]
    Expired,
}

impl From<AuthError> for AppError {
    fn from(e: AuthError) -> Self {
        AppError::unauthorized(e.to_string())
    }
}

fn signer(key: &[u8]) -> Option<Hmac<Sha256>> {
    // HMAC takes keys of any length, so this never fails; callers still fail closed.
    Hmac::<Sha256>::new_from_slice(key).ok()
}

/// Signs `claims` with `key`.
pub fn mint(key: &[u8], claims: &TokenClaims) -> String {
    let payload = BASE64URL_NOPAD.encode(&serde_json::to_vec(claims).unwrap_or_default());
    // An empty signature never verifies, so the impossible failure fails closed.
    let signature = signer(key)
        .map(|mut mac| {
            mac.update(payload.as_bytes());
            mac.finalize().into_bytes().to_vec()
        })
        .unwrap_or_default();
    format!("{payload}.{}", BASE64URL_NOPAD.encode(&signature))
}

/// Checks a token's signature (in constant time), shape and expiry at `now_ms`.
pub fn verify(key: &[u8], token: &str, now_ms: i64) -> Result<TokenClaims, AuthError> {
    if token.len() > TOKEN_BYTES_MAX {
        return Err(AuthError::Malformed);
    }
    let (payload, signature) = token.split_once('.').ok_or(AuthError::Malformed)?;
    let signature = BASE64URL_NOPAD
        .decode(signature.as_bytes())
        .map_err(|_| AuthError::Malformed)?;
    let mut mac = signer(key).ok_or(AuthError::Forged)?;
    mac.update(payload.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| AuthError::Forged)?;
    let json = BASE64URL_NOPAD
        .decode(payload.as_bytes())
        .map_err(|_| AuthError::Malformed)?;
    let claims: TokenClaims = serde_json::from_slice(&json).map_err(|_| AuthError::Malformed)?;
    if !claims.problems().is_empty() {
        return Err(AuthError::Malformed);
    }
    if now_ms >= claims.exp.saturating_mul(1_000) {
        return Err(AuthError::Expired);
    }
    Ok(claims)
}

/// The token of a request's `Authorization: Bearer` header.
pub fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let value = headers.get(AUTHORIZATION).ok_or(AuthError::Missing)?;
    let value = value.to_str().map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Missing);
    }
    Ok(token.trim())
}

/// A verified caller of any role, checked against the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyRole {
    /// A manager (name is informational).
    Manager(String),
    /// A registered resident account.
    Resident(String),
    /// A terminal bound to its merchant.
    Terminal(Terminal),
}

impl AnyRole {
    /// Turns verified claims into a caller, refusing residents that are not registered
    /// and terminals that are not bound to the token's merchant.
    pub fn from_claims(
        claims: TokenClaims,
        resident_exists: impl FnOnce(&str) -> bool,
        terminal_belongs: impl FnOnce(&str, &str) -> bool,
    ) -> Result<AnyRole, AppError> {
        match (claims.role, claims.mer) {
            (Role::Manager, _) => Ok(AnyRole::Manager(claims.sub)),
            (Role::Resident, _) if resident_exists(&claims.sub) => {
                Ok(AnyRole::Resident(claims.sub))
            }
            (Role::Resident, _) => Err(AppError::forbidden(
                "the token's resident account is not registered",
            )),
            (Role::Terminal, Some(merchant)) if terminal_belongs(&merchant, &claims.sub) => {
                Ok(AnyRole::Terminal(Terminal {
                    merchant,
                    terminal: claims.sub,
                }))
            }
            (Role::Terminal, _) => Err(AppError::forbidden(
                "the token's terminal is not registered to its merchant",
            )),
        }
    }

    /// The caller's role.
    pub fn role(&self) -> Role {
        match self {
            AnyRole::Manager(_) => Role::Manager,
            AnyRole::Resident(_) => Role::Resident,
            AnyRole::Terminal(_) => Role::Terminal,
        }
    }

    /// Verifies the request's bearer token against `engine`'s key and clock, and
    /// the caller against its registry.
    pub fn authenticate(headers: &HeaderMap, engine: &Engine) -> Result<AnyRole, AppError> {
        let token = bearer(headers)?;
        let claims = verify(&engine.keys().token, token, engine.now_ms())?;
        AnyRole::from_claims(
            claims,
            |a| engine.resident_exists(a),
            |m, t| engine.terminal_belongs(m, t),
        )
    }

    /// Managers, and terminals of `merchant`, may act for that merchant.
    pub fn may_act_for_merchant(&self, merchant: &str) -> Result<(), AppError> {
        match self {
            AnyRole::Manager(_) => Ok(()),
            AnyRole::Terminal(t) if t.merchant == merchant => Ok(()),
            _ => Err(AppError::forbidden(
                "only a manager or a terminal of this merchant may do this",
            )),
        }
    }
}

impl<S> FromRequestParts<S> for AnyRole
where
    Engine: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // The route's access guard already verified the token: one HMAC per request.
        if let Some(caller) = parts.extensions.get::<AnyRole>() {
            return Ok(caller.clone());
        }
        AnyRole::authenticate(&parts.headers, &Engine::from_ref(state))
    }
}

/// A manager caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manager(pub String);

/// A registered resident caller: the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resident(pub String);

/// A terminal caller, bound to its merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    /// The merchant the terminal is registered to.
    pub merchant: String,
    /// The terminal id.
    pub terminal: String,
}

impl TryFrom<AnyRole> for Manager {
    type Error = AppError;
    fn try_from(role: AnyRole) -> Result<Self, AppError> {
        match role {
            AnyRole::Manager(name) => Ok(Manager(name)),
            _ => Err(AppError::forbidden("this needs a manager token")),
        }
    }
}

impl TryFrom<AnyRole> for Resident {
    type Error = AppError;
    fn try_from(role: AnyRole) -> Result<Self, AppError> {
        match role {
            AnyRole::Resident(account) => Ok(Resident(account)),
            _ => Err(AppError::forbidden("this needs a resident token")),
        }
    }
}

impl TryFrom<AnyRole> for Terminal {
    type Error = AppError;
    fn try_from(role: AnyRole) -> Result<Self, AppError> {
        match role {
            AnyRole::Terminal(t) => Ok(t),
            _ => Err(AppError::forbidden("this needs a terminal token")),
        }
    }
}

macro_rules! role_extractor {
    ($ty:ty) => {
        impl<S> FromRequestParts<S> for $ty
        where
            Engine: FromRef<S>,
            S: Send + Sync,
        {
            type Rejection = AppError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &S,
            ) -> Result<Self, Self::Rejection> {
                AnyRole::from_request_parts(parts, state).await?.try_into()
            }
        }
    };
}

role_extractor!(Manager);
role_extractor!(Resident);
role_extractor!(Terminal);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "auth_tests.rs"]
mod tests;
