//! The scenario file: a TOML description of one flash round at full scale
//! (see `scenarios/guizhou-flash-round.toml`). Only the fields the load generator
//! uses are typed; everything else in the file is documentation and is ignored.

use serde::Deserialize;
use std::path::Path;
use yunquan_actors::domain::Category;

/// Tolerance when checking that shares add up, as an absolute difference.
const SHARE_SUM_TOLERANCE: f64 = 0.02;

/// Why a scenario cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {cause}")]
    Read {
        /// The file.
        path: String,
        /// The OS error (named so it is shown once, not again as a chained source).
        cause: std::io::Error,
    },
    /// The file is not valid TOML or a field has the wrong type.
    #[error("scenario is not valid: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value is out of range; the message names the field.
    #[error("scenario field {field}: {reason}")]
    Invalid {
        /// Dotted path of the field.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// A finite number above zero (NaN is not).
fn positive(v: f64) -> bool {
    v.is_finite() && v > 0.0
}

/// A finite number at or above zero (NaN is not).
fn non_negative(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A whole scenario at full scale.
#[derive(Debug, Clone, Deserialize)]
pub struct Scenario {
    /// Short name, copied into the report.
    pub name: String,
    /// IANA zone of the campaign clock.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Who registers and who contends.
    pub population: Population,
    /// Where residents and merchants are.
    pub regions: Vec<Region>,
    /// Merchant counts and redemption concentration.
    pub merchants: Merchants,
    /// How a round is contended.
    pub round: RoundShape,
    /// What can be claimed.
    pub tiers: Vec<TierShape>,
    /// How long coupons stay valid.
    #[serde(default)]
    pub validity: ValidityShape,
    /// How coupons are spent.
    pub redemption: RedemptionShape,
}

fn default_timezone() -> String {
    "Asia/Shanghai".to_owned()
}

/// Residents.
#[derive(Debug, Clone, Deserialize)]
pub struct Population {
    /// Registered accounts at full scale.
    pub registered_users: u64,
    /// Residents who try to grab in one round, at full scale.
    pub contenders_per_round: u64,
    /// Share (0..1) of claim requests that come from scripted multi-account clusters.
    #[serde(default)]
    pub bot_request_share: f64,
    /// Smallest and largest number of accounts in one bot cluster.
    #[serde(default = "default_cluster_accounts")]
    pub bot_cluster_accounts: [u64; 2],
}

fn default_cluster_accounts() -> [u64; 2] {
    [50, 500]
}

/// One region (prefecture).
#[derive(Debug, Clone, Deserialize)]
pub struct Region {
    /// Region code as the server stores it (`a-z 0-9 _`).
    pub code: String,
    /// Share of registered app users living here.
    pub user_share: f64,
    /// Share of merchants located here.
    pub merchant_share: f64,
}

/// Merchant counts per category at full scale.
#[derive(Debug, Clone, Deserialize)]
pub struct Merchants {
    /// Restaurants.
    pub catering: u64,
    /// Shops.
    pub retail: u64,
    /// Online car retailers.
    #[serde(default)]
    pub auto_online: u64,
    /// Cultural and tourism firms.
    #[serde(default)]
    pub culture_tourism: u64,
    /// Farm-product sellers.
    #[serde(default)]
    pub agri_products: u64,
    /// Home-service providers.
    #[serde(default)]
    pub housekeeping: u64,
    /// Utility, tax and fee billers (coupons never apply there).
    #[serde(default)]
    pub utility_billers: u64,
    /// `[merchant share, redemption share]`: e.g. 20% of merchants take 70% of redemptions.
    #[serde(default = "default_concentration")]
    pub redemption_concentration: [f64; 2],
}

fn default_concentration() -> [f64; 2] {
    [0.2, 0.7]
}

impl Merchants {
    /// Full-scale count for every category, in [`Category::ALL`] order.
    pub fn counts(&self) -> [(Category, u64); 7] {
        [
            (Category::Catering, self.catering),
            (Category::Retail, self.retail),
            (Category::AutoOnline, self.auto_online),
            (Category::CultureTourism, self.culture_tourism),
            (Category::AgriProducts, self.agri_products),
            (Category::Housekeeping, self.housekeeping),
            (Category::Utility, self.utility_billers),
        ]
    }
}

/// How residents contend in a round.
#[derive(Debug, Clone, Deserialize)]
pub struct RoundShape {
    /// The first burst lasts this long, in seconds.
    pub claim_first_seconds: f64,
    /// Share of contenders that fire inside the first burst.
    pub claim_first_share: f64,
    /// A losing client waits uniformly between these, in seconds, before retrying.
    pub retry_interval_s: [f64; 2],
    /// Retries per tier per client at most.
    pub retries_max: u32,
    /// Coupons of one tier one person may hold per round.
    pub per_user_per_tier: u32,
    /// Coupons of any tier one person may hold per round.
    pub per_user_per_round: u32,
    /// Subsidy of one round at full scale, in yuan.
    pub budget_yuan: f64,
}

/// One tier at full scale; amounts in yuan.
#[derive(Debug, Clone, Deserialize)]
pub struct TierShape {
    /// The only merchant category where it applies.
    pub category: Category,
    /// Threshold, in yuan.
    pub min_spend: f64,
    /// Amount off, in yuan.
    pub discount: f64,
    /// Units per round at full scale.
    pub stock: u64,
    /// Share of claimed coupons that get redeemed.
    pub redeem_rate: f64,
}

/// Validity of claimed coupons.
#[derive(Debug, Clone, Deserialize)]
pub struct ValidityShape {
    /// `same_day` or `days_after_claim:N`.
    #[serde(default = "default_variant")]
    pub variant: String,
}

fn default_variant() -> String {
    "same_day".to_owned()
}

impl Default for ValidityShape {
    fn default() -> Self {
        ValidityShape {
            variant: default_variant(),
        }
    }
}

/// How claimed coupons are spent.
#[derive(Debug, Clone, Deserialize)]
pub struct RedemptionShape {
    /// Median of X in basket = min_spend x (1 + X).
    pub basket_x_median: f64,
    /// Log-normal sigma of X.
    pub basket_x_sigma: f64,
    /// Largest X.
    pub basket_x_cap: f64,
    /// Share of baskets within +5% of the threshold.
    pub bunching_share: f64,
    /// Share of redemptions refunded in full (reversed).
    #[serde(default)]
    pub refund_full_share: f64,
    /// Share of redemptions the POS resends with the same request number.
    #[serde(default)]
    pub retry_same_key_share: f64,
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ScenarioError::Read {
            path: path.display().to_string(),
            cause,
        })?;
        Scenario::parse(&text)
    }

    /// Parses and checks scenario text.
    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(&split_semicolons(text))?;
        s.check()?;
        Ok(s)
    }

    fn check(&self) -> Result<(), ScenarioError> {
        let share = |field: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(invalid(field, format!("must be between 0 and 1, got {v}")))
            }
        };
        share(
            "population.bot_request_share",
            self.population.bot_request_share,
        )?;
        if self.population.bot_request_share >= 1.0 {
            return Err(invalid("population.bot_request_share", "must be below 1"));
        }
        let [lo, hi] = self.population.bot_cluster_accounts;
        if lo == 0 || lo > hi {
            return Err(invalid(
                "population.bot_cluster_accounts",
                "[smallest, largest] with 1 <= smallest <= largest",
            ));
        }
        if self.population.contenders_per_round == 0 {
            return Err(invalid(
                "population.contenders_per_round",
                "must be at least 1",
            ));
        }
        if self.regions.is_empty() {
            return Err(invalid("regions", "name at least one region"));
        }
        for (i, r) in self.regions.iter().enumerate() {
            share(&format!("regions[{i}].user_share"), r.user_share)?;
            share(&format!("regions[{i}].merchant_share"), r.merchant_share)?;
        }
        for (name, sum) in [
            (
                "regions.user_share",
                self.regions.iter().map(|r| r.user_share).sum::<f64>(),
            ),
            (
                "regions.merchant_share",
                self.regions.iter().map(|r| r.merchant_share).sum::<f64>(),
            ),
        ] {
            if (sum - 1.0).abs() > SHARE_SUM_TOLERANCE {
                return Err(invalid(
                    name,
                    format!("shares must add up to 1, got {sum:.3}"),
                ));
            }
        }
        let [m_share, r_share] = self.merchants.redemption_concentration;
        share("merchants.redemption_concentration[0]", m_share)?;
        share("merchants.redemption_concentration[1]", r_share)?;
        let r = &self.round;
        share("round.claim_first_share", r.claim_first_share)?;
        if !positive(r.claim_first_seconds) {
            return Err(invalid("round.claim_first_seconds", "must be above 0"));
        }
        let [a, b] = r.retry_interval_s;
        if !non_negative(a) || !non_negative(b - a) {
            return Err(invalid(
                "round.retry_interval_s",
                "[shortest, longest] with 0 <= shortest <= longest",
            ));
        }
        if r.per_user_per_tier == 0 || r.per_user_per_round == 0 {
            return Err(invalid(
                "round.per_user_per_tier",
                "limits must be at least 1",
            ));
        }
        if !non_negative(r.budget_yuan) {
            return Err(invalid("round.budget_yuan", "must not be negative"));
        }
        if self.tiers.is_empty() {
            return Err(invalid("tiers", "name at least one tier"));
        }
        for (i, t) in self.tiers.iter().enumerate() {
            if t.category == Category::Utility {
                return Err(invalid(
                    format!("tiers[{i}].category"),
                    "coupons never apply to utility",
                ));
            }
            if !positive(t.discount) || !non_negative(t.min_spend - t.discount) {
                return Err(invalid(
                    format!("tiers[{i}]"),
                    "need 0 < discount <= min_spend",
                ));
            }
            if t.stock == 0 {
                return Err(invalid(format!("tiers[{i}].stock"), "must be at least 1"));
            }
            share(&format!("tiers[{i}].redeem_rate"), t.redeem_rate)?;
        }
        let d = &self.redemption;
        if !positive(d.basket_x_median)
            || !non_negative(d.basket_x_sigma)
            || !non_negative(d.basket_x_cap)
        {
            return Err(invalid(
                "redemption.basket_x_*",
                "median > 0, sigma >= 0, cap >= 0",
            ));
        }
        share("redemption.bunching_share", d.bunching_share)?;
        share("redemption.refund_full_share", d.refund_full_share)?;
        share("redemption.retry_same_key_share", d.retry_same_key_share)?;
        Ok(())
    }
}

/// The scenario files write several `key = value` pairs on one line separated by
/// `;` (e.g. `code = "guiyang"; user_share = 0.21`), which TOML itself does not
/// allow. A `;` outside strings and comments is never valid TOML, so turning each
/// into a line break accepts those files without changing the meaning of a valid
/// one (multi-line strings aside: the scan is per line, and scenarios have none).
pub fn split_semicolons(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut quote: Option<char> = None;
        let mut escaped = false;
        let mut comment = false;
        for c in line.chars() {
            match (comment, quote, c) {
                (true, _, _) => {}
                (false, Some('"'), '\\') if !escaped => {
                    escaped = true;
                    out.push(c);
                    continue;
                }
                (false, Some(q), _) if c == q && !escaped => quote = None,
                (false, None, '"' | '\'') => quote = Some(c),
                (false, None, '#') => comment = true,
                (false, None, ';') => {
                    out.push('\n');
                    escaped = false;
                    continue;
                }
                _ => {}
            }
            escaped = false;
            out.push(c);
        }
        out.push('\n');
    }
    out
}

/// Yuan to integer fen, rounded to the nearest fen.
pub fn yuan_to_fen(yuan: f64) -> u64 {
    // Scenario amounts are small positive numbers; the cast saturates on anything odd.
    (yuan * 100.0).round().max(0.0) as u64
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The reference scenario, as shipped.
    pub const GUIZHOU: &str = include_str!("../../scenarios/guizhou-flash-round.toml");

    #[test]
    fn parses_the_reference_scenario() {
        let s = Scenario::parse(GUIZHOU).unwrap();
        assert_eq!(s.name, "guizhou-flash-round");
        assert_eq!(s.regions.len(), 9);
        assert_eq!(s.tiers.len(), 10);
        assert_eq!(s.tiers[0].category, Category::Catering);
        assert_eq!(yuan_to_fen(s.tiers[0].min_spend), 5_000);
        assert_eq!(s.round.retry_interval_s, [1.0, 3.0]);
        assert_eq!(s.merchants.utility_billers, 50);
    }

    #[test]
    fn semicolons_split_pairs_outside_strings_and_comments() {
        let t = "a = 1; b = \"x;y\"   # c; d\ne = 'p;q'; f = \"\\\";\"";
        let v: toml::Value = toml::from_str(&split_semicolons(t)).unwrap();
        assert_eq!(v["a"].as_integer(), Some(1));
        assert_eq!(v["b"].as_str(), Some("x;y"));
        assert_eq!(v["e"].as_str(), Some("p;q"));
        assert_eq!(v["f"].as_str(), Some("\";"));
        assert!(v.get("d").is_none());
    }

    #[test]
    fn refuses_out_of_range_shares() {
        let bad = GUIZHOU.replace("bot_request_share = 0.02", "bot_request_share = 1.5");
        assert!(matches!(
            Scenario::parse(&bad),
            Err(ScenarioError::Invalid { .. })
        ));
    }
}
