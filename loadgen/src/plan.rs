//! The pure half of a run: scenario + scale + seed -> who registers, which merchants
//! exist, what the campaign offers and who claims what when. Nothing here does I/O or
//! reads a clock, so every decision is unit-tested and reproducible from the seed.

use crate::population::{seed_tag, BotCluster, Population};
use crate::rng::{cdf, hash3, pick, rng_for, unit, Stream};
use crate::scenario::{yuan_to_fen, Scenario};
use rand::Rng;
use std::ops::Range;
use yunquan_actors::domain::Category;

/// Contenders who grab as many tiers as the per-round limit allows; the rest grab one [E].
pub const FULL_GRAB_SHARE: f64 = 0.75;
/// A contender's next tier follows their previous tap after this long, in seconds [E].
pub const NEXT_TAP_DELAY_S: [f64; 2] = [0.3, 1.5];
/// Bot scripts fire every account inside this long after the round opens, in seconds [E].
pub const BOT_BURST_S: f64 = 1.0;
/// Default spread of first attempts, in seconds.
pub const ROUND_WINDOW_DEFAULT_S: f64 = 20.0;
/// Microseconds per second, for schedule offsets.
const US_PER_S: f64 = 1_000_000.0;

/// Knobs of one plan that do not come from the scenario.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    /// Shrinks population, contenders, merchant counts and stock alike (1.0: real size).
    pub scale: f64,
    /// Seed of every random decision.
    pub seed: u64,
    /// First attempts spread over this long, in seconds (the first burst included).
    pub round_window_s: f64,
}

/// Why a plan cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Scale must be a positive finite number.
    #[error("scale must be a positive number, got {0}")]
    Scale(f64),
    /// The redemption basket parameters are unusable.
    #[error("basket model parameters are unusable (median must be > 0, sigma >= 0)")]
    Basket,
}

/// A tier as offered in the campaign, amounts in fen, stock scaled.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTier {
    /// Display name.
    pub name: String,
    /// Where it applies.
    pub category: Category,
    /// Threshold, in fen.
    pub min_spend_fen: u64,
    /// Amount off, in fen.
    pub discount_fen: u64,
    /// Units in the round (scaled, at least 1).
    pub stock: u64,
    /// Share of claimed coupons that get redeemed.
    pub redeem_rate: f64,
}

/// A merchant with its single terminal.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedMerchant {
    /// Merchant id.
    pub id: String,
    /// Its terminal id.
    pub terminal: String,
    /// What it sells.
    pub category: Category,
    /// Index into the scenario's regions.
    pub region: usize,
}

/// One claim chain's first attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Claim {
    /// Intended send time after the round opens, in microseconds.
    pub at_us: u64,
    /// Participant slot (index into [`Plan::participants`] and the token list).
    pub slot: u32,
    /// Tier index.
    pub tier: u32,
    /// Sent by a bot script (no retries).
    pub bot: bool,
}

/// Per-person limits as configured in the campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    /// Coupons of one tier per person per round.
    pub per_tier_per_round: u32,
    /// Coupons of any tier per person per round.
    pub per_round: u32,
}

/// Everything a run does, decided up front.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Scenario name.
    pub scenario: String,
    /// Scale factor applied.
    pub scale: f64,
    /// Seed of the run.
    pub seed: u64,
    /// Short tag in every generated id.
    pub tag: String,
    /// IANA zone of the campaign.
    pub timezone: String,
    /// Validity variant from the scenario (`same_day`, `days_after_claim:N`).
    pub validity_variant: String,
    /// Registered residents.
    pub population: Population,
    /// Merchants, grouped by category in [`Category::ALL`] order.
    pub merchants: Vec<PlannedMerchant>,
    /// Where each category's merchants sit in `merchants`.
    pub merchants_by_category: Vec<(Category, Range<usize>)>,
    /// Region codes (merchant regions index these).
    pub region_codes: Vec<String>,
    /// Tiers on offer.
    pub tiers: Vec<PlannedTier>,
    /// Per-person limits.
    pub limits: PlanLimits,
    /// Campaign budget in fen: the scaled subsidy, raised to cover stock x face value.
    pub budget_fen: u64,
    /// Global account index of each participant slot: contenders first, then bot accounts.
    pub participants: Vec<u64>,
    /// Human contenders (the first slots of `participants`).
    pub contenders: u64,
    /// Every first attempt, sorted by intended time.
    pub schedule: Vec<Claim>,
    /// Retry wait range of a losing client, in seconds.
    pub retry_interval_s: [f64; 2],
    /// Retries per chain at most.
    pub retries_max: u32,
    /// `[merchant share, redemption share]` of the busy merchants.
    pub concentration: [f64; 2],
    /// How coupons are spent.
    pub redemption: crate::scenario::RedemptionShape,
}

/// `n` x scale, rounded, at least 1.
pub fn scaled(n: u64, scale: f64) -> u64 {
    ((n as f64 * scale).round() as u64).max(1)
}

/// Weighted choice of `k` distinct items (by index) without replacement.
fn pick_distinct<R: Rng>(weights: &[f64], k: usize, rng: &mut R) -> Vec<usize> {
    let mut w = weights.to_vec();
    let mut out = Vec::with_capacity(k);
    for _ in 0..k.min(w.len()) {
        if w.iter().all(|x| *x <= 0.0) {
            break;
        }
        let i = pick(&cdf(&w), rng.random::<f64>());
        out.push(i);
        w[i] = 0.0;
    }
    out
}

/// A human contender's intent before accounts are assigned.
struct Intent {
    /// First tap after the round opens, in microseconds.
    at_us: u64,
    /// Tiers in tapping order, each with its delay after the first tap in microseconds.
    tiers: Vec<(u32, u64)>,
}

impl Plan {
    /// Builds the plan.
    pub fn build(s: &Scenario, o: &PlanOptions) -> Result<Plan, PlanError> {
        if !(o.scale.is_finite() && o.scale > 0.0) {
            return Err(PlanError::Scale(o.scale));
        }
        crate::basket::BasketModel::new(&s.redemption).ok_or(PlanError::Basket)?;
        let tiers: Vec<PlannedTier> = s
            .tiers
            .iter()
            .map(|t| PlannedTier {
                name: format!(
                    "{} off {} ({})",
                    t.discount,
                    t.min_spend,
                    t.category.as_str()
                ),
                category: t.category,
                min_spend_fen: yuan_to_fen(t.min_spend),
                discount_fen: yuan_to_fen(t.discount),
                stock: scaled(t.stock, o.scale),
                redeem_rate: t.redeem_rate,
            })
            .collect();
        let limits = PlanLimits {
            per_tier_per_round: s.round.per_user_per_tier,
            per_round: s.round.per_user_per_round,
        };
        let exposure: u64 = tiers
            .iter()
            .map(|t| t.stock.saturating_mul(t.discount_fen))
            .sum();
        let budget_fen = yuan_to_fen(s.round.budget_yuan * o.scale).max(exposure);

        let contenders = scaled(s.population.contenders_per_round, o.scale);
        let intents = human_intents(s, o, &tiers, limits, contenders);
        let human_requests: u64 = intents.iter().map(|i| i.tiers.len() as u64).sum();
        let clusters = bot_clusters(s, o, &tiers, limits, human_requests, contenders);
        let bot_accounts: u64 = clusters.iter().map(|c| c.accounts).sum();
        let registered = scaled(s.population.registered_users, o.scale);
        let humans = registered.saturating_sub(bot_accounts).max(contenders);

        // Which residents contend: a seeded sample without replacement.
        let mut rng = rng_for(o.seed, Stream::Schedule, u64::MAX);
        let chosen = rand::seq::index::sample(&mut rng, humans as usize, contenders as usize);
        let mut participants: Vec<u64> = chosen.iter().map(|i| i as u64).collect();
        participants.extend(humans..humans + bot_accounts);

        let mut schedule = Vec::with_capacity(human_requests as usize);
        for (slot, intent) in intents.iter().enumerate() {
            for &(tier, delay_us) in &intent.tiers {
                schedule.push(Claim {
                    at_us: intent.at_us + delay_us,
                    slot: slot as u32,
                    tier,
                    bot: false,
                });
            }
        }
        for (n, c) in clusters.iter().enumerate() {
            let mut rng = rng_for(o.seed, Stream::Bots, 1_000_000 + n as u64);
            for j in 0..c.accounts {
                // first_account is still relative to the first bot account here.
                let slot = (contenders + c.first_account + j) as u32;
                for &tier in &c.tiers {
                    let at_us = (rng.random::<f64>() * BOT_BURST_S * US_PER_S) as u64;
                    schedule.push(Claim {
                        at_us,
                        slot,
                        tier,
                        bot: true,
                    });
                }
            }
        }
        schedule.sort_by_key(|c| (c.at_us, c.slot, c.tier));
        // Bot clusters were numbered from the first bot account; shift them behind the humans.
        let clusters = clusters
            .into_iter()
            .map(|c| BotCluster {
                first_account: humans + c.first_account,
                ..c
            })
            .collect::<Vec<_>>();

        let region_codes: Vec<String> = s.regions.iter().map(|r| r.code.clone()).collect();
        let user_cdf = cdf(&s.regions.iter().map(|r| r.user_share).collect::<Vec<_>>());
        let population = Population::new(o.seed, humans, clusters, region_codes.clone(), user_cdf);
        let (merchants, merchants_by_category) = merchants(s, o);
        Ok(Plan {
            scenario: s.name.clone(),
            scale: o.scale,
            seed: o.seed,
            tag: seed_tag(o.seed),
            timezone: s.timezone.clone(),
            validity_variant: s.validity.variant.clone(),
            population,
            merchants,
            merchants_by_category,
            region_codes,
            tiers,
            limits,
            budget_fen,
            participants,
            contenders,
            schedule,
            retry_interval_s: s.round.retry_interval_s,
            retries_max: s.round.retries_max,
            concentration: s.merchants.redemption_concentration,
            redemption: s.redemption.clone(),
        })
    }

    /// Units of stock over all tiers.
    pub fn total_stock(&self) -> u64 {
        self.tiers.iter().map(|t| t.stock).sum()
    }

    /// The merchants of one category.
    pub fn merchants_of(&self, category: Category) -> &[PlannedMerchant] {
        self.merchants_by_category
            .iter()
            .find(|(c, _)| *c == category)
            .and_then(|(_, r)| self.merchants.get(r.clone()))
            .unwrap_or(&[])
    }
}

/// When each human contender taps and which tiers they go for.
fn human_intents(
    s: &Scenario,
    o: &PlanOptions,
    tiers: &[PlannedTier],
    limits: PlanLimits,
    n: u64,
) -> Vec<Intent> {
    let first_s = s.round.claim_first_seconds;
    let window_s = o.round_window_s.max(first_s);
    let first_n = (n as f64 * s.round.claim_first_share).round() as u64;
    // Categories weighted by their total stock; tiers inside one weighted by stock,
    // which favours the cheap, plentiful tiers the way real demand does.
    let categories: Vec<Category> = {
        let mut c: Vec<Category> = tiers.iter().map(|t| t.category).collect();
        c.sort();
        c.dedup();
        c
    };
    let category_cdf = cdf(&categories
        .iter()
        .map(|c| {
            tiers
                .iter()
                .filter(|t| t.category == *c)
                .map(|t| t.stock as f64)
                .sum()
        })
        .collect::<Vec<f64>>());
    (0..n)
        .map(|i| {
            let mut rng = rng_for(o.seed, Stream::Schedule, i);
            let at_s = if i < first_n {
                rng.random::<f64>() * first_s
            } else {
                first_s + rng.random::<f64>() * (window_s - first_s)
            };
            let category = categories.get(pick(&category_cdf, rng.random())).copied();
            let weights: Vec<f64> = tiers
                .iter()
                .map(|t| {
                    if Some(t.category) == category {
                        t.stock as f64
                    } else {
                        0.0
                    }
                })
                .collect();
            let k = if rng.random::<f64>() < FULL_GRAB_SHARE {
                limits.per_round as usize
            } else {
                1
            };
            let mut delay_s = 0.0;
            let chosen = pick_distinct(&weights, k, &mut rng)
                .into_iter()
                .enumerate()
                .map(|(n, t)| {
                    if n > 0 {
                        delay_s += rng.random_range(NEXT_TAP_DELAY_S[0]..=NEXT_TAP_DELAY_S[1]);
                    }
                    (t as u32, (delay_s * US_PER_S) as u64)
                })
                .collect();
            Intent {
                at_us: (at_s * US_PER_S) as u64,
                tiers: chosen,
            }
        })
        .collect()
}

/// Bot clusters sized so their claims are about `bot_request_share` of all claims.
/// `first_account` is relative to the first bot account until [`Plan::build`] shifts it.
fn bot_clusters(
    s: &Scenario,
    o: &PlanOptions,
    tiers: &[PlannedTier],
    limits: PlanLimits,
    human_requests: u64,
    contenders: u64,
) -> Vec<BotCluster> {
    let share = s.population.bot_request_share;
    if share <= 0.0 {
        return Vec::new();
    }
    let target = (human_requests as f64 * share / (1.0 - share)).round() as u64;
    // Scripts go for value and try one tier more than the per-round limit allows.
    let value: Vec<f64> = tiers
        .iter()
        .map(|t| (t.stock * t.discount_fen) as f64)
        .collect();
    let k = (limits.per_round as usize + 1).min(tiers.len());
    let [lo, hi] = s.population.bot_cluster_accounts;
    let region_cdf = cdf(&s.regions.iter().map(|r| r.user_share).collect::<Vec<_>>());
    let mut out = Vec::new();
    let mut requests = 0u64;
    let mut next = 0u64;
    while requests < target {
        let n = out.len() as u64;
        let mut rng = rng_for(o.seed, Stream::Bots, n);
        let tiers: Vec<u32> = pick_distinct(&value, k, &mut rng)
            .into_iter()
            .map(|t| t as u32)
            .collect();
        let per_account = tiers.len().max(1) as u64;
        let needed = (target - requests).div_ceil(per_account);
        let accounts = rng.random_range(lo..=hi).min(needed).max(1);
        let region = pick(
            &region_cdf,
            unit(hash3(o.seed, Stream::Bots, n ^ contenders)),
        );
        out.push(BotCluster {
            first_account: next,
            accounts,
            tiers,
            region,
        });
        requests += accounts * per_account;
        next += accounts;
    }
    out
}

/// Merchants of every category, scaled, with regions by merchant share.
fn merchants(
    s: &Scenario,
    o: &PlanOptions,
) -> (Vec<PlannedMerchant>, Vec<(Category, Range<usize>)>) {
    let tag = seed_tag(o.seed);
    let region_cdf = cdf(&s
        .regions
        .iter()
        .map(|r| r.merchant_share)
        .collect::<Vec<_>>());
    let mut out = Vec::new();
    let mut ranges = Vec::new();
    let mut k = 0u64;
    for (category, count) in s.merchants.counts() {
        let n = scaled(count, o.scale);
        let start = out.len();
        for i in 0..n {
            let region = pick(&region_cdf, unit(hash3(o.seed, Stream::MerchantRegion, k)));
            k += 1;
            out.push(PlannedMerchant {
                id: format!("m{tag}-{}-{i}", category.as_str()),
                terminal: format!("t{tag}-{}-{i}", category.as_str()),
                category,
                region,
            });
        }
        ranges.push((category, start..out.len()));
    }
    (out, ranges)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
