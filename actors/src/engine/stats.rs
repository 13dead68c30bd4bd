//! Report queries: add up the shards' projections.

use super::registry::CampaignEntry;
use super::report::{add, tier_stats, Counters, ShardReport};
use crate::api::{CampaignStats, Settlement};
use crate::domain::Category;
use chrono::NaiveDate;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A campaign's figures across all shards.
pub fn campaign_stats(entry: &CampaignEntry, reports: &[Arc<Mutex<ShardReport>>]) -> CampaignStats {
    let c = &entry.campaign;
    let mut tiers: BTreeMap<(u32, u32), Counters> = BTreeMap::new();
    let mut cats: BTreeMap<Category, Counters> = BTreeMap::new();
    let mut regions: BTreeMap<String, Counters> = BTreeMap::new();
    for r in reports {
        let r = r.lock();
        let Some(part) = r.campaigns.get(&c.id) else {
            continue;
        };
        for (k, v) in &part.tiers {
            add(tiers.entry(*k).or_default(), v);
        }
        for (k, v) in &part.categories {
            add(cats.entry(*k).or_default(), v);
        }
        for (k, v) in &part.regions {
            add(regions.entry(k.clone()).or_default(), v);
        }
    }
    let mut out = Vec::with_capacity(c.rounds.len() * c.tiers.len());
    let mut discount_fen = 0;
    for round in 0..c.rounds.len() as u32 {
        for (t, tier) in c.tiers.iter().enumerate() {
            let k = tiers.get(&(round, t as u32)).copied().unwrap_or_default();
            discount_fen += k.discount_fen;
            out.push(tier_stats(round, t as u32, tier.stock, &k));
        }
    }
    CampaignStats {
        campaign: c.id.clone(),
        status: *entry.status.read(),
        budget_fen: c.budget.get(),
        discount_fen,
        tiers: out,
        by_category: cats
            .into_iter()
            .map(|(k, v)| (k, v.redeemed, v.discount_fen, v.spend_fen))
            .collect(),
        by_region: regions
            .into_iter()
            .map(|(k, v)| (k, v.redeemed, v.discount_fen, v.spend_fen))
            .collect(),
    }
}

/// A merchant's settlement for a date across all shards.
pub fn settlement(
    reports: &[Arc<Mutex<ShardReport>>],
    merchant: &str,
    date: NaiveDate,
) -> Settlement {
    let mut s = Settlement {
        merchant: merchant.to_owned(),
        date: Some(date),
        ..Settlement::default()
    };
    let key = (merchant.to_owned(), date);
    for r in reports {
        if let Some(p) = r.lock().settlements.get(&key) {
            s.redemptions += p.redemptions;
            s.reversals += p.reversals;
            s.discount_fen += p.discount_fen;
            s.spend_fen += p.spend_fen;
        }
    }
    s
}
