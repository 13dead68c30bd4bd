//! Projections of a shard's journal: campaign figures and merchants' settlement.
//! Each shard keeps its own part, updated after every durable batch (never on the
//! request path); readers add the parts of all shards.

use super::events::ShardEvent;
use super::registry::Registry;
use super::state::{Coupon, RedemptionRec, ShardState};
use crate::api::{Settlement, TierStats};
use crate::domain::window::local_date;
use crate::domain::Category;
use chrono::NaiveDate;
use std::collections::HashMap;

/// Counters of one (round, tier), or of a category or region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Coupons claimed.
    pub claimed: u64,
    /// Redemptions standing.
    pub redeemed: u64,
    /// Discounts of standing redemptions, fen.
    pub discount_fen: u64,
    /// Orders of standing redemptions, fen.
    pub spend_fen: u64,
}

/// One campaign's part in one shard.
#[derive(Debug, Clone, Default)]
pub struct CampaignPart {
    /// By (round, tier).
    pub tiers: HashMap<(u32, u32), Counters>,
    /// By merchant category.
    pub categories: HashMap<Category, Counters>,
    /// By merchant region.
    pub regions: HashMap<String, Counters>,
}

/// A shard's projections.
#[derive(Debug, Clone, Default)]
pub struct ShardReport {
    /// By campaign id.
    pub campaigns: HashMap<String, CampaignPart>,
    /// By (merchant, local date).
    pub settlements: HashMap<(String, NaiveDate), Settlement>,
}

impl ShardReport {
    /// Rebuilds from a recovered state.
    pub fn rebuild(state: &ShardState, registry: &Registry) -> ShardReport {
        let mut r = ShardReport::default();
        for p in state.persons.values() {
            for c in &p.coupons {
                r.claimed(c);
                for rec in &c.redemptions {
                    r.redemption(registry, c, rec, true);
                    if let Some((at, _)) = rec.reversed {
                        r.reversal(registry, c, rec, at);
                    }
                }
            }
        }
        r
    }

    /// Folds in a durable event; `state` already reflects it.
    pub fn on_event(&mut self, ev: &ShardEvent, state: &ShardState, registry: &Registry) {
        match ev {
            ShardEvent::Registered { .. } => {}
            ShardEvent::Granted { route, serial, .. } => {
                if let Some(c) = state.coupon(*route, *serial) {
                    self.claimed(c);
                }
            }
            ShardEvent::Redeemed {
                route, serial, n, ..
            }
            | ShardEvent::Reversed {
                route, serial, n, ..
            } => {
                let Some(c) = state.coupon(*route, *serial) else {
                    return;
                };
                let Some(rec) = c.redemptions.get(*n as usize - 1) else {
                    return;
                };
                match ev {
                    ShardEvent::Reversed { at_ms, .. } => self.reversal(registry, c, rec, *at_ms),
                    _ => self.redemption(registry, c, rec, true),
                }
            }
        }
    }

    fn part(&mut self, campaign: &str) -> &mut CampaignPart {
        // Look up before inserting: the hot path must not allocate a key per event.
        if !self.campaigns.contains_key(campaign) {
            self.campaigns
                .insert(campaign.to_owned(), CampaignPart::default());
        }
        self.campaigns.get_mut(campaign).expect("inserted above")
    }

    fn claimed(&mut self, c: &Coupon) {
        self.part(&c.campaign)
            .tiers
            .entry((c.round, c.tier))
            .or_default()
            .claimed += 1;
    }

    fn date(registry: &Registry, c: &Coupon, at_ms: i64) -> NaiveDate {
        let tz = registry
            .campaigns
            .get(&c.campaign)
            .map(|e| e.campaign.timezone)
            .unwrap_or(chrono_tz::Asia::Shanghai);
        local_date(tz, at_ms)
    }

    /// Adds (`add`) or removes a standing redemption.
    fn redemption(&mut self, registry: &Registry, c: &Coupon, rec: &RedemptionRec, add: bool) {
        let bump = |k: &mut Counters| {
            if add {
                k.redeemed += 1;
                k.discount_fen += rec.discount_fen;
                k.spend_fen += rec.order_fen;
            } else {
                k.redeemed -= 1;
                k.discount_fen -= rec.discount_fen;
                k.spend_fen -= rec.order_fen;
            }
        };
        let part = self.part(&c.campaign);
        bump(part.tiers.entry((c.round, c.tier)).or_default());
        bump(part.categories.entry(rec.category).or_default());
        bump(part.regions.entry(rec.region.clone()).or_default());
        let date = Self::date(registry, c, rec.at_ms);
        let s = self
            .settlements
            .entry((rec.merchant.clone(), date))
            .or_default();
        if add {
            s.redemptions += 1;
            s.discount_fen += rec.discount_fen;
            s.spend_fen += rec.order_fen;
        } else {
            s.redemptions -= 1;
            s.discount_fen -= rec.discount_fen;
            s.spend_fen -= rec.order_fen;
        }
    }

    fn reversal(&mut self, registry: &Registry, c: &Coupon, rec: &RedemptionRec, at_ms: i64) {
        self.redemption(registry, c, rec, false);
        let date = Self::date(registry, c, at_ms);
        self.settlements
            .entry((rec.merchant.clone(), date))
            .or_default()
            .reversals += 1;
    }
}

/// Adds `b` into `a`.
pub fn add(a: &mut Counters, b: &Counters) {
    a.claimed += b.claimed;
    a.redeemed += b.redeemed;
    a.discount_fen += b.discount_fen;
    a.spend_fen += b.spend_fen;
}

/// Figures of one tier of one round from summed counters.
pub fn tier_stats(round: u32, tier: u32, stock: u64, k: &Counters) -> TierStats {
    TierStats {
        round,
        tier,
        stock,
        claimed: k.claimed,
        remaining: stock.saturating_sub(k.claimed),
        redeemed: k.redeemed,
        discount_fen: k.discount_fen,
        spend_fen: k.spend_fen,
    }
}
