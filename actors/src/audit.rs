//! Offline audit: replays a data directory's journals and checks every invariant the
//! platform promises, without trusting any counter kept at runtime.

use crate::domain::window::local_date;
use crate::domain::Fen;
use crate::engine::{recover_control, recover_shard, Registry, StartError};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use yunquan_storage::Store;

/// Violations listed in full; past this only the count grows.
const VIOLATIONS_LISTED_MAX: usize = 100;

/// What the audit found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditReport {
    /// True when no invariant is violated.
    pub ok: bool,
    /// Campaigns checked.
    pub campaigns: u64,
    /// Persons checked.
    pub persons: u64,
    /// Coupons checked.
    pub coupons: u64,
    /// Redemptions checked (standing and reversed).
    pub redemptions: u64,
    /// Units claimed above stock, summed over rounds and tiers.
    pub oversold: u64,
    /// Coupons with more than one standing redemption.
    pub double_redeemed: u64,
    /// Whether any campaign's standing discounts exceed its budget.
    pub over_budget: bool,
    /// Number of violations (all kinds).
    pub violation_count: u64,
    /// The first violations, human-readable.
    pub violations: Vec<String>,
}

impl AuditReport {
    fn violation(&mut self, v: String) {
        self.violation_count += 1;
        if self.violations.len() < VIOLATIONS_LISTED_MAX {
            self.violations.push(v);
        }
    }
}

/// Audits a store with `shards` shard journals.
pub fn audit_store(store: &dyn Store, shards: u32) -> Result<AuditReport, StartError> {
    let registry = Registry::default();
    recover_control(store, &registry)?;
    let mut r = AuditReport {
        campaigns: registry.campaigns.len() as u64,
        ..AuditReport::default()
    };
    let mut claimed: HashMap<(String, u32, u32), u64> = HashMap::new();
    let mut committed: HashMap<String, u64> = HashMap::new();
    let mut request_nos: HashSet<(String, String)> = HashSet::new();
    for shard in 0..shards {
        let (state, _) = recover_shard(store, shard, 1)?;
        for (route, p) in &state.persons {
            r.persons += 1;
            let mut per_tier: HashMap<(&str, u32, u32), u32> = HashMap::new();
            let mut per_round: HashMap<(&str, u32), u32> = HashMap::new();
            let mut per_day: HashMap<(&str, chrono::NaiveDate), u32> = HashMap::new();
            for (i, c) in p.coupons.iter().enumerate() {
                r.coupons += 1;
                let who = format!("coupon {route:016x}/{}", i + 1);
                *claimed
                    .entry((c.campaign.clone(), c.round, c.tier))
                    .or_default() += 1;
                let Some(entry) = registry.campaigns.get(&c.campaign) else {
                    r.violation(format!("{who}: unknown campaign {}", c.campaign));
                    continue;
                };
                let camp = &entry.campaign;
                match camp.rounds.get(c.round as usize) {
                    Some(rd) if rd.start_ms <= c.at_ms && c.at_ms <= rd.end_ms => {}
                    _ => r.violation(format!("{who}: claimed outside round {}", c.round)),
                }
                *per_tier.entry((&c.campaign, c.round, c.tier)).or_default() += 1;
                *per_round.entry((&c.campaign, c.round)).or_default() += 1;
                *per_day
                    .entry((&c.campaign, local_date(camp.timezone, c.at_ms)))
                    .or_default() += 1;
                let standing = c
                    .redemptions
                    .iter()
                    .filter(|x| x.reversed.is_none())
                    .count();
                if standing > 1 {
                    r.double_redeemed += 1;
                    r.violation(format!("{who}: {standing} standing redemptions"));
                }
                if standing == 1 && c.redemptions.last().is_some_and(|x| x.reversed.is_some()) {
                    r.violation(format!("{who}: a redemption stands that is not the latest"));
                }
                for x in &c.redemptions {
                    r.redemptions += 1;
                    if !request_nos.insert((x.merchant.clone(), x.request_no.clone())) {
                        r.violation(format!(
                            "{who}: request number {} of {} used twice",
                            x.request_no, x.merchant
                        ));
                    }
                    let tier = &camp.tiers[c.tier as usize];
                    let expected = Fen::new(x.order_fen)
                        .ok()
                        .and_then(|o| tier.discount.apply(o))
                        .map(|p| p.discount.get());
                    if expected != Some(x.discount_fen) {
                        r.violation(format!(
                            "{who}: discount {} on order {} (expected {expected:?})",
                            x.discount_fen, x.order_fen
                        ));
                    }
                    if x.at_ms < c.valid_from_ms || x.at_ms > c.valid_until_ms {
                        r.violation(format!("{who}: redeemed outside its validity window"));
                    }
                    if !camp.applies_at(c.tier as usize, x.category, &x.region, &x.merchant) {
                        r.violation(format!(
                            "{who}: redeemed at ineligible merchant {}",
                            x.merchant
                        ));
                    }
                    if x.reversed.is_none() {
                        *committed.entry(c.campaign.clone()).or_default() += x.discount_fen;
                    }
                }
            }
            for ((camp, round, tier), n) in per_tier {
                let l = registry.campaigns.get(camp).map(|e| e.campaign.limits);
                if l.is_some_and(|l| n > l.per_tier_per_round) {
                    r.violation(format!(
                        "person {route:016x}: {n} coupons of {camp} round {round} tier {tier}"
                    ));
                }
            }
            for ((camp, round), n) in per_round {
                let l = registry
                    .campaigns
                    .get(camp)
                    .and_then(|e| e.campaign.limits.per_round);
                if l.is_some_and(|l| n > l) {
                    r.violation(format!(
                        "person {route:016x}: {n} coupons of {camp} round {round}"
                    ));
                }
            }
            for ((camp, day), n) in per_day {
                let l = registry
                    .campaigns
                    .get(camp)
                    .and_then(|e| e.campaign.limits.per_day);
                if l.is_some_and(|l| n > l) {
                    r.violation(format!(
                        "person {route:016x}: {n} coupons of {camp} on {day}"
                    ));
                }
            }
        }
    }
    for ((camp, round, tier), n) in &claimed {
        let stock = registry
            .campaigns
            .get(camp)
            .and_then(|e| e.campaign.tiers.get(*tier as usize).map(|t| t.stock));
        if let Some(stock) = stock.filter(|s| n > s) {
            r.oversold += n - stock;
            r.violation(format!(
                "{camp} round {round} tier {tier}: {n} claimed of {stock}"
            ));
        }
    }
    for (camp, fen) in &committed {
        let budget = registry
            .campaigns
            .get(camp)
            .map_or(0, |e| e.campaign.budget.get());
        if *fen > budget {
            r.over_budget = true;
            r.violation(format!(
                "{camp}: discounts {fen} fen exceed budget {budget} fen"
            ));
        }
    }
    r.ok = r.violation_count == 0;
    Ok(r)
}
