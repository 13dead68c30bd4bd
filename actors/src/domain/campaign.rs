//! Campaign definitions: what a manager submits ([`CampaignSpec`]) and the validated
//! form the engine runs ([`Campaign`]). Every refusal names the field to fix.

use super::merchant::{valid_id, valid_region, Category};
use super::money::{percent_of_half_up, Fen};
use super::window::{local_to_ms, Validity, ValiditySpec};
use chrono::NaiveDateTime;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Most tiers one campaign may have.
pub const TIERS_MAX: usize = 64;
/// Most rounds one campaign may have (one a day for a year, and then some).
pub const ROUNDS_MAX: usize = 400;
/// Most units of stock per tier per round (the real program's largest tier is 400,000).
pub const STOCK_PER_TIER_MAX: u64 = 1_000_000_000;
/// Longest campaign, tier or funder name, in characters.
pub const NAME_CHARS_MAX: usize = 200;
/// Most entries in a merchant allowlist.
pub const ALLOWLIST_MERCHANTS_MAX: usize = 10_000;

/// One field-level problem with a submitted definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// JSON path of the offending field, e.g. `tiers[2].percent`.
    pub field: String,
    /// What is wrong and what would be accepted.
    pub reason: String,
}

fn err(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A campaign as submitted by a manager.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CampaignSpec {
    /// Display name.
    pub name: String,
    /// Who pays the discounts (a government bureau, a bank, ...).
    pub funder: String,
    /// IANA time zone in which rounds and validity dates are read.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Most the funder will pay in discounts over the whole campaign, in fen.
    pub budget_fen: u64,
    /// Claim windows, in local time.
    pub rounds: Vec<RoundSpec>,
    /// What can be claimed in each round.
    pub tiers: Vec<TierSpec>,
    /// Per-person limits.
    #[serde(default)]
    pub limits: Limits,
    /// Where coupons may be redeemed.
    pub eligibility: Eligibility,
    /// How long a claimed coupon stays redeemable.
    pub validity: ValiditySpec,
    /// What a refund does to the coupon.
    #[serde(default)]
    pub refund_policy: RefundPolicy,
}

fn default_timezone() -> String {
    "Asia/Shanghai".to_owned()
}

/// A claim window in the campaign's local time, both ends inclusive.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RoundSpec {
    /// First local instant at which claims are accepted, e.g. `2025-06-01T10:00:00`.
    // Local wall-clock time without an offset: not an RFC 3339 `date-time`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?$", example = "2025-06-01T20:00:00"))]
    pub start: NaiveDateTime,
    /// Last local instant at which claims are accepted.
    // Local wall-clock time without an offset: not an RFC 3339 `date-time`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?$", example = "2025-06-01T20:00:00"))]
    pub end: NaiveDateTime,
}

/// A tier as submitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TierSpec {
    /// Display name, e.g. "20 off 100".
    #[serde(default)]
    pub name: String,
    /// `fixed` (amount off at or above a threshold), `percent` (share off, capped),
    /// or `cash` (fixed amount off, no threshold).
    pub kind: TierKind,
    /// Amount off, for `fixed` and `cash`.
    #[serde(default)]
    pub discount_fen: Option<u64>,
    /// Share off in percent (at most two decimals), for `percent`.
    #[serde(default)]
    pub percent: Option<f64>,
    /// Largest discount of a `percent` tier, in fen (required: it bounds the budget).
    #[serde(default)]
    pub cap_fen: Option<u64>,
    /// Smallest eligible order, inclusive; 0 means no threshold.
    #[serde(default)]
    pub min_spend_fen: u64,
    /// Units per round.
    pub stock: u64,
    /// Narrows the campaign's categories for this tier (empty: the campaign's).
    #[serde(default)]
    pub categories: Vec<Category>,
}

/// The shape of a tier's discount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TierKind {
    /// Amount off from a threshold.
    Fixed,
    /// Percentage off, capped.
    Percent,
    /// Amount off with no threshold.
    Cash,
}

/// Per-person limits; a person is a natural person, across all their accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Coupons of one tier per round.
    pub per_tier_per_round: u32,
    /// Coupons of any tier per round (None: only the per-tier limit applies).
    pub per_round: Option<u32>,
    /// Coupons of this campaign per local day (None: no daily limit).
    pub per_day: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_tier_per_round: 1,
            per_round: None,
            per_day: None,
        }
    }
}

/// Where coupons may be redeemed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Eligibility {
    /// Merchant categories (never `utility`).
    pub categories: Vec<Category>,
    /// Region codes; empty means every region.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Merchant ids; empty means every merchant of the categories and regions.
    #[serde(default)]
    pub merchants: Vec<String>,
}

/// What a refund does to the coupon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RefundPolicy {
    /// The coupon comes back if it is still inside its validity window.
    #[default]
    ReturnIfValid,
    /// The coupon stays used.
    Forfeit,
}

/// A validated discount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Discount {
    /// `off` from orders of at least `min_spend` (0: no threshold).
    Fixed {
        /// Amount off.
        off: Fen,
        /// Inclusive threshold.
        min_spend: Fen,
    },
    /// `basis_points`/10,000 of the order, rounded half-up, at most `cap`.
    Percent {
        /// 1..=9,999.
        basis_points: u32,
        /// Largest discount.
        cap: Fen,
        /// Inclusive threshold.
        min_spend: Fen,
    },
}

/// Result of applying a discount to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Priced {
    /// Discount paid by the funder.
    pub discount: Fen,
    /// What the resident pays: order - discount, never negative.
    pub payable: Fen,
}

impl Discount {
    /// The most one coupon can cost the funder.
    pub fn face_value(&self) -> Fen {
        match *self {
            Discount::Fixed { off, .. } => off,
            Discount::Percent { cap, .. } => cap,
        }
    }

    /// Inclusive threshold.
    pub fn min_spend(&self) -> Fen {
        match *self {
            Discount::Fixed { min_spend, .. } | Discount::Percent { min_spend, .. } => min_spend,
        }
    }

    /// Prices an order; `None` when the order is below the threshold.
    /// Policy (case F10): a fixed discount larger than the order is cut to the order,
    /// so payable is 0, never negative.
    pub fn apply(&self, order: Fen) -> Option<Priced> {
        if order < self.min_spend() {
            return None;
        }
        let discount = match *self {
            Discount::Fixed { off, .. } => off.min(order),
            Discount::Percent {
                basis_points, cap, ..
            } => percent_of_half_up(order, basis_points).min(cap),
        };
        assert!(discount <= order, "a discount never exceeds the order");
        Some(Priced {
            discount,
            payable: order.saturating_sub(discount),
        })
    }
}

/// A validated tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    /// Display name.
    pub name: String,
    /// What it takes off.
    pub discount: Discount,
    /// Units per round.
    pub stock: u64,
    /// Categories where it applies (already narrowed from the campaign's).
    pub categories: Vec<Category>,
}

/// A validated round, as UTC milliseconds, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    /// First instant claims are accepted.
    pub start_ms: i64,
    /// Last instant claims are accepted.
    pub end_ms: i64,
}

/// A campaign the engine runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    /// Opaque id assigned at creation.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Who pays.
    pub funder: String,
    /// Time zone for rounds and validity.
    pub timezone: Tz,
    /// Most the funder pays in discounts.
    pub budget: Fen,
    /// Claim windows.
    pub rounds: Vec<Round>,
    /// What can be claimed.
    pub tiers: Vec<Tier>,
    /// Per-person limits.
    pub limits: Limits,
    /// Regions and merchants where coupons apply (categories are per tier).
    pub regions: Vec<String>,
    /// Merchant allowlist; empty: all.
    pub merchants: Vec<String>,
    /// Validity of claimed coupons.
    pub validity: Validity,
    /// Refund behaviour.
    pub refund_policy: RefundPolicy,
    /// The definition as submitted, returned to managers verbatim.
    pub spec: CampaignSpecJson,
}

/// The submitted definition kept as JSON text (stored once; never re-interpreted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignSpecJson(pub String);

fn check_name(field: &str, s: &str, required: bool, errors: &mut Vec<FieldError>) {
    if required && s.trim().is_empty() {
        errors.push(err(field, "must not be empty"));
    }
    if s.chars().count() > NAME_CHARS_MAX {
        errors.push(err(field, format!("at most {NAME_CHARS_MAX} characters")));
    }
    if s.chars().any(char::is_control) {
        errors.push(err(field, "must not contain control characters"));
    }
}

fn tier_discount(i: usize, t: &TierSpec, errors: &mut Vec<FieldError>) -> Option<Discount> {
    let f = |name: &str| format!("tiers[{i}].{name}");
    let min_spend = match Fen::new(t.min_spend_fen) {
        Ok(v) => v,
        Err(e) => {
            errors.push(err(f("min_spend_fen"), e.to_string()));
            return None;
        }
    };
    match t.kind {
        TierKind::Fixed | TierKind::Cash => {
            if t.percent.is_some() || t.cap_fen.is_some() {
                errors.push(err(
                    f("kind"),
                    "percent and cap_fen belong to kind \"percent\"",
                ));
            }
            if t.kind == TierKind::Cash && t.min_spend_fen != 0 {
                errors.push(err(
                    f("min_spend_fen"),
                    "a cash tier has no threshold; use kind \"fixed\"",
                ));
            }
            let Some(off) = t.discount_fen else {
                errors.push(err(f("discount_fen"), "required for fixed and cash tiers"));
                return None;
            };
            if off == 0 {
                errors.push(err(f("discount_fen"), "must be at least 1 fen"));
                return None;
            }
            let off = match Fen::new(off) {
                Ok(v) => v,
                Err(e) => {
                    errors.push(err(f("discount_fen"), e.to_string()));
                    return None;
                }
            };
            if min_spend > Fen::ZERO && off > min_spend {
                errors.push(err(
                    f("discount_fen"),
                    "must not exceed min_spend_fen (the tier's own threshold)",
                ));
                return None;
            }
            Some(Discount::Fixed { off, min_spend })
        }
        TierKind::Percent => {
            if t.discount_fen.is_some() {
                errors.push(err(
                    f("discount_fen"),
                    "a percent tier takes percent and cap_fen",
                ));
            }
            let Some(p) = t.percent else {
                errors.push(err(f("percent"), "required for percent tiers"));
                return None;
            };
            let bp_f = p * 100.0;
            let bp = bp_f.round();
            if !p.is_finite() || (bp_f - bp).abs() > 1e-6 {
                errors.push(err(f("percent"), "at most two decimals, e.g. 15 or 12.5"));
                return None;
            }
            if !(1.0..=9_999.0).contains(&bp) {
                errors.push(err(f("percent"), "must be above 0 and below 100"));
                return None;
            }
            let Some(cap) = t.cap_fen else {
                errors.push(err(
                    f("cap_fen"),
                    "required for percent tiers: it bounds the budget",
                ));
                return None;
            };
            let cap = match Fen::new(cap) {
                Ok(c) if c > Fen::ZERO => c,
                Ok(_) => {
                    errors.push(err(f("cap_fen"), "must be at least 1 fen"));
                    return None;
                }
                Err(e) => {
                    errors.push(err(f("cap_fen"), e.to_string()));
                    return None;
                }
            };
            // bp is an integer in 1..=9999 here, so the cast is exact.
            Some(Discount::Percent {
                basis_points: bp as u32,
                cap,
                min_spend,
            })
        }
    }
}

impl CampaignSpec {
    /// Validates a definition. All problems are reported at once.
    pub fn validate(&self, id: String) -> Result<Campaign, Vec<FieldError>> {
        let mut errors = Vec::new();
        check_name("name", &self.name, true, &mut errors);
        check_name("funder", &self.funder, true, &mut errors);
        let timezone: Option<Tz> = match self.timezone.parse() {
            Ok(tz) => Some(tz),
            Err(_) => {
                errors.push(err(
                    "timezone",
                    "not an IANA time zone name, e.g. Asia/Shanghai",
                ));
                None
            }
        };
        let budget = match Fen::new(self.budget_fen) {
            Ok(b) => b,
            Err(e) => {
                errors.push(err("budget_fen", e.to_string()));
                Fen::ZERO
            }
        };
        if self.rounds.is_empty() || self.rounds.len() > ROUNDS_MAX {
            errors.push(err("rounds", format!("between 1 and {ROUNDS_MAX} rounds")));
        }
        if self.tiers.is_empty() || self.tiers.len() > TIERS_MAX {
            errors.push(err("tiers", format!("between 1 and {TIERS_MAX} tiers")));
        }
        let elig = &self.eligibility;
        if elig.categories.is_empty() {
            errors.push(err(
                "eligibility.categories",
                "name at least one merchant category",
            ));
        }
        if elig.categories.contains(&Category::Utility) {
            errors.push(err(
                "eligibility.categories",
                "coupons never apply to utility bills, taxes or fees",
            ));
        }
        for (i, r) in elig.regions.iter().enumerate() {
            if !valid_region(r) {
                errors.push(err(
                    format!("eligibility.regions[{i}]"),
                    "1-32 of a-z, 0-9, _",
                ));
            }
        }
        if elig.merchants.len() > ALLOWLIST_MERCHANTS_MAX {
            errors.push(err(
                "eligibility.merchants",
                format!("at most {ALLOWLIST_MERCHANTS_MAX}"),
            ));
        }
        for (i, m) in elig.merchants.iter().enumerate() {
            if !valid_id(m) {
                errors.push(err(
                    format!("eligibility.merchants[{i}]"),
                    "not a merchant id",
                ));
            }
        }
        let mut rounds = Vec::with_capacity(self.rounds.len());
        if let Some(tz) = timezone {
            for (i, r) in self.rounds.iter().enumerate() {
                match (local_to_ms(tz, r.start), local_to_ms(tz, r.end)) {
                    (Some(s), Some(e)) if s < e => rounds.push(Round {
                        start_ms: s,
                        end_ms: e,
                    }),
                    (Some(_), Some(_)) => {
                        errors.push(err(format!("rounds[{i}].end"), "must be after start"))
                    }
                    _ => errors.push(err(
                        format!("rounds[{i}]"),
                        "local time does not exist in the time zone",
                    )),
                }
            }
            for (i, w) in rounds.windows(2).enumerate() {
                if w[1].start_ms <= w[0].end_ms {
                    errors.push(err(
                        format!("rounds[{}]", i + 1),
                        "rounds must be in order and not overlap",
                    ));
                }
            }
        }
        let mut tiers = Vec::with_capacity(self.tiers.len());
        for (i, t) in self.tiers.iter().enumerate() {
            check_name(&format!("tiers[{i}].name"), &t.name, false, &mut errors);
            if t.stock == 0 || t.stock > STOCK_PER_TIER_MAX {
                errors.push(err(
                    format!("tiers[{i}].stock"),
                    format!("between 1 and {STOCK_PER_TIER_MAX}"),
                ));
            }
            for c in &t.categories {
                if !elig.categories.contains(c) {
                    errors.push(err(
                        format!("tiers[{i}].categories"),
                        format!("{} is not in eligibility.categories", c.as_str()),
                    ));
                }
            }
            if let Some(discount) = tier_discount(i, t, &mut errors) {
                let categories = if t.categories.is_empty() {
                    elig.categories.clone()
                } else {
                    t.categories.clone()
                };
                tiers.push(Tier {
                    name: t.name.clone(),
                    discount,
                    stock: t.stock,
                    categories,
                });
            }
        }
        if errors.is_empty() {
            // Worst case the funder pays every unit of every round at face value.
            let exposure: u128 = tiers
                .iter()
                .map(|t| u128::from(t.stock) * u128::from(t.discount.face_value().get()))
                .sum::<u128>()
                * rounds.len() as u128;
            if exposure > u128::from(budget.get()) {
                errors.push(err(
                    "budget_fen",
                    format!("cannot cover stock x face value of every round: needs {exposure} fen"),
                ));
            }
        }
        let validity = match self.validity.validate() {
            Ok(v) => Some(v),
            Err(e) => {
                errors.push(e);
                None
            }
        };
        match (errors.is_empty(), timezone, validity) {
            (true, Some(timezone), Some(validity)) => Ok(Campaign {
                id,
                name: self.name.clone(),
                funder: self.funder.clone(),
                timezone,
                budget,
                rounds,
                tiers,
                limits: self.limits,
                regions: elig.regions.clone(),
                merchants: elig.merchants.clone(),
                validity,
                refund_policy: self.refund_policy,
                spec: CampaignSpecJson(serde_json::to_string(self).unwrap_or_default()),
            }),
            _ => Err(errors),
        }
    }
}

/// Where `now_ms` falls among a campaign's rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundState {
    /// Before the first round.
    NotStarted,
    /// Inside round `n` (0-based).
    Live(usize),
    /// Between two rounds: the next is `n`.
    Between(usize),
    /// After the last round.
    Ended,
}

impl Campaign {
    /// Finds the round at an instant. Both ends of a round are inclusive.
    pub fn round_at(&self, now_ms: i64) -> RoundState {
        for (i, r) in self.rounds.iter().enumerate() {
            if now_ms < r.start_ms {
                return if i == 0 {
                    RoundState::NotStarted
                } else {
                    RoundState::Between(i)
                };
            }
            if now_ms <= r.end_ms {
                return RoundState::Live(i);
            }
        }
        RoundState::Ended
    }

    /// Whether a merchant of this category/region/id may accept a coupon of `tier`.
    pub fn applies_at(
        &self,
        tier: usize,
        category: Category,
        region: &str,
        merchant: &str,
    ) -> bool {
        category != Category::Utility
            && self
                .tiers
                .get(tier)
                .is_some_and(|t| t.categories.contains(&category))
            && (self.regions.is_empty() || self.regions.iter().any(|r| r == region))
            && (self.merchants.is_empty() || self.merchants.iter().any(|m| m == merchant))
    }
}

#[cfg(test)]
#[path = "campaign_tests.rs"]
mod tests;
