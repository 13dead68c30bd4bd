//! What callers of the engine send and get back: plain data, serde-ready, shared by
//! the gateway, the load generator and the offline auditor.

use crate::domain::{Category, FieldError};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A business refusal: the request was understood and executed, and the answer is no.
/// Stable: each variant's `code()` is part of the HTTP contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The round's stock of this tier is gone.
    #[error("sold out")]
    SoldOut,
    /// A per-person limit (per tier per round, per round, per day) is reached.
    #[error("per-person limit reached: {0}")]
    LimitReached(String),
    /// No round has started yet, or the next round has not.
    #[error("the round has not started")]
    NotStarted,
    /// The last round is over or the campaign was ended.
    #[error("the campaign has ended")]
    Ended,
    /// A manager paused the campaign.
    #[error("the campaign is paused")]
    Paused,
    /// The campaign is still a draft.
    #[error("the campaign is not published")]
    NotPublished,
    /// No such campaign.
    #[error("unknown campaign")]
    UnknownCampaign,
    /// No such tier in the campaign.
    #[error("unknown tier")]
    UnknownTier,
    /// The resident account is not registered.
    #[error("unknown resident account")]
    UnknownAccount,
    /// The merchant is not registered.
    #[error("unknown merchant")]
    UnknownMerchant,
    /// No such coupon.
    #[error("coupon not found")]
    CouponNotFound,
    /// No such redemption.
    #[error("redemption not found")]
    RedemptionNotFound,
    /// The order is below the coupon's threshold.
    #[error("order below the coupon's threshold of {min_spend_fen} fen")]
    BelowThreshold {
        /// Inclusive threshold.
        min_spend_fen: u64,
    },
    /// Past the coupon's validity window.
    #[error("the coupon has expired")]
    Expired,
    /// Before the coupon's validity window.
    #[error("the coupon is not valid yet")]
    NotYetValid,
    /// Wrong category, region or merchant for this coupon, or a bill payment.
    #[error("the coupon does not apply here: {0}")]
    NotApplicable(String),
    /// The coupon is already used.
    #[error("the coupon is already redeemed")]
    AlreadyRedeemed,
    /// The redemption was already reversed.
    #[error("the redemption is already reversed")]
    AlreadyReversed,
    /// The same request number or idempotency key was used with other parameters.
    #[error("request number or idempotency key reused with different parameters")]
    IdempotencyConflict,
    /// The campaign's budget cannot pay this discount.
    #[error("the campaign budget is exhausted")]
    BudgetExhausted,
    /// The account or merchant id is taken.
    #[error("already registered")]
    AlreadyRegistered,
    /// The coupon or redemption code is not well-formed (mistyped or truncated).
    #[error("not a valid coupon code")]
    InvalidCode,
    /// The code is well-formed but fails its integrity check (forged or altered).
    #[error("the coupon code failed its integrity check")]
    ForgedCode,
    /// The action does not fit the campaign's status (e.g. resume a campaign that is not paused).
    #[error("not allowed in the campaign's current status: {0}")]
    WrongStatus(String),
}

impl Refusal {
    /// The stable machine-readable reason (problem+json `type` suffix).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::SoldOut => "sold_out",
            Refusal::LimitReached(_) => "limit_reached",
            Refusal::NotStarted => "not_started",
            Refusal::Ended => "ended",
            Refusal::Paused => "paused",
            Refusal::NotPublished => "not_published",
            Refusal::UnknownCampaign => "unknown_campaign",
            Refusal::UnknownTier => "unknown_tier",
            Refusal::UnknownAccount => "unknown_account",
            Refusal::UnknownMerchant => "unknown_merchant",
            Refusal::CouponNotFound => "coupon_not_found",
            Refusal::RedemptionNotFound => "redemption_not_found",
            Refusal::BelowThreshold { .. } => "below_threshold",
            Refusal::Expired => "expired",
            Refusal::NotYetValid => "not_yet_valid",
            Refusal::NotApplicable(_) => "not_applicable",
            Refusal::AlreadyRedeemed => "already_redeemed",
            Refusal::AlreadyReversed => "already_reversed",
            Refusal::IdempotencyConflict => "idempotency_conflict",
            Refusal::BudgetExhausted => "budget_exhausted",
            Refusal::AlreadyRegistered => "already_registered",
            Refusal::WrongStatus(_) => "wrong_status",
            Refusal::InvalidCode => "invalid_code",
            Refusal::ForgedCode => "forged_code",
        }
    }
}

/// Why the engine did not answer a request with a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Executed; the answer is no.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The input is malformed; nothing was executed.
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// A shard's mailbox is full; nothing was executed, retry after the delay.
    #[error("overloaded, retry after {retry_after_ms} ms")]
    Overloaded {
        /// Suggested wait before retrying.
        retry_after_ms: u64,
    },
    /// The store failed a durable write or the engine is stopping; nothing was
    /// acknowledged. The operator-facing cause is in `0` (never shown to clients).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Status of a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    /// Created, not yet open to claims.
    Draft,
    /// Claims accepted inside rounds.
    Published,
    /// Claims refused until resumed; redemptions continue.
    Paused,
    /// No more claims, ever; existing coupons stay redeemable until they expire.
    Ended,
}

/// A lifecycle action on a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignAction {
    /// Draft -> Published.
    Publish,
    /// Published -> Paused.
    Pause,
    /// Paused -> Published.
    Resume,
    /// Any -> Ended.
    End,
}

/// A campaign as shown to managers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignView {
    /// Opaque id.
    pub id: String,
    /// Lifecycle status.
    pub status: CampaignStatus,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The definition as submitted.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::domain::CampaignSpec))]
    pub spec: serde_json::Value,
}

/// Claimed/redeemed figures of one tier of one round.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TierStats {
    /// Round index (0-based).
    pub round: u32,
    /// Tier index (0-based).
    pub tier: u32,
    /// Units available in this round.
    pub stock: u64,
    /// Units claimed (never above stock).
    pub claimed: u64,
    /// stock - claimed.
    pub remaining: u64,
    /// Coupons currently redeemed (reversed ones excluded).
    pub redeemed: u64,
    /// Discounts currently owed to merchants, in fen.
    pub discount_fen: u64,
    /// Order amounts of current redemptions, in fen (spend driven).
    pub spend_fen: u64,
}

/// Live statistics of a campaign.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignStats {
    /// Campaign id.
    pub campaign: String,
    /// Lifecycle status.
    pub status: CampaignStatus,
    /// Budget in fen.
    pub budget_fen: u64,
    /// Discounts currently committed, in fen (never above budget).
    pub discount_fen: u64,
    /// Per round and tier.
    pub tiers: Vec<TierStats>,
    /// Redemptions by merchant category: (category, redeemed, discount_fen, spend_fen).
    pub by_category: Vec<(Category, u64, u64, u64)>,
    /// Redemptions by merchant region: (region, redeemed, discount_fen, spend_fen).
    pub by_region: Vec<(String, u64, u64, u64)>,
}

/// State of a coupon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CouponStatus {
    /// Can be redeemed (inside its window).
    Available,
    /// Used by a redemption that stands.
    Redeemed,
    /// Used, reversed, and kept used per the refund policy or because it had expired.
    Forfeited,
    /// Past its validity and never redeemed.
    Expired,
}

/// A coupon as shown to its owner, a till or a manager.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CouponView {
    /// Self-routing, tamper-evident code (what the till scans).
    pub code: String,
    /// Campaign id.
    pub campaign: String,
    /// Round index.
    pub round: u32,
    /// Tier index.
    pub tier: u32,
    /// Status now.
    pub status: CouponStatus,
    /// When it was claimed.
    pub claimed_at: DateTime<Utc>,
    /// First redeemable instant.
    pub valid_from: DateTime<Utc>,
    /// Last redeemable instant (inclusive).
    pub valid_until: DateTime<Utc>,
    /// Most it takes off, in fen.
    pub face_value_fen: u64,
    /// Inclusive threshold, in fen.
    pub min_spend_fen: u64,
    /// The standing redemption, if redeemed.
    pub redemption_id: Option<String>,
    /// How many redemptions of it stand (0 or 1; the audit checks it).
    pub times_redeemed: u32,
}

/// A resident to register.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResidentInput {
    /// The app account id (opaque; token subject).
    pub account: String,
    /// Identity number as typed; normalised and kept only as a keyed hash.
    pub identity_number: String,
    /// Home region code.
    pub region: String,
}

/// A merchant to register, with its terminals.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MerchantInput {
    /// Merchant id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What it sells.
    pub category: Category,
    /// Region code.
    pub region: String,
    /// Terminal ids bound to it (a terminal belongs to one merchant).
    #[serde(default)]
    pub terminals: Vec<String>,
}

/// A merchant as shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MerchantView {
    /// Merchant id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Category.
    pub category: Category,
    /// Region.
    pub region: String,
    /// Terminals.
    pub terminals: Vec<String>,
}

/// Outcome of one line of a bulk import.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportOutcome {
    /// Lines registered.
    pub accepted: u64,
    /// Lines refused: (1-based line number, reason code, detail).
    pub rejected: Vec<(u64, String, String)>,
}

/// Price a coupon against an order without committing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuoteRequest {
    /// The merchant (from the terminal's token).
    pub merchant: String,
    /// Coupon code as scanned.
    pub code: String,
    /// Order amount in fen.
    pub order_fen: u64,
}

/// Redeem a coupon inside a sale.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedeemRequest {
    /// The merchant (from the terminal's token).
    pub merchant: String,
    /// The terminal (from its token).
    pub terminal: String,
    /// Coupon code as scanned.
    pub code: String,
    /// The POS's request number: retries with it replay the first result.
    pub request_no: String,
    /// Order amount in fen.
    pub order_fen: u64,
}

/// A priced coupon (quote) or a committed redemption.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Redemption {
    /// Self-routing redemption id; empty for a quote.
    pub redemption_id: String,
    /// Coupon code (canonical).
    pub code: String,
    /// Merchant.
    pub merchant: String,
    /// Order in fen.
    pub order_fen: u64,
    /// Discount in fen (funder pays).
    pub discount_fen: u64,
    /// Payable in fen (resident pays).
    pub payable_fen: u64,
    /// When it was committed (or priced).
    pub at: DateTime<Utc>,
}

/// Reverse a redemption on refund.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReverseRequest {
    /// The merchant (from the terminal's token).
    pub merchant: String,
    /// Redemption id as returned by redeem.
    pub redemption_id: String,
}

/// Result of a reversal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reversal {
    /// The reversed redemption.
    pub redemption_id: String,
    /// Coupon status afterwards (available if it came back).
    pub coupon_status: CouponStatus,
    /// Discount no longer owed, in fen.
    pub discount_returned_fen: u64,
}

/// A merchant's settlement for one local day (campaign zone).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Settlement {
    /// Merchant.
    pub merchant: String,
    /// Local date.
    pub date: Option<NaiveDate>,
    /// Redemptions standing.
    pub redemptions: u64,
    /// Reversals that day.
    pub reversals: u64,
    /// Discounts the funders owe the merchant, in fen.
    pub discount_fen: u64,
    /// Order amounts of standing redemptions, in fen.
    pub spend_fen: u64,
}
