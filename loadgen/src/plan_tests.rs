#![allow(clippy::unwrap_used)]

use super::*;
use crate::campaign;
use crate::population::{normalise_identity, Person};
use crate::redeem_plan::{plan_redemptions, Granted};
use crate::scenario::Scenario;
use chrono::NaiveDate;
use std::collections::{HashMap, HashSet};

const GUIZHOU: &str = include_str!("../../scenarios/guizhou-flash-round.toml");

fn plan(scale: f64, seed: u64) -> Plan {
    let s = Scenario::parse(GUIZHOU).unwrap();
    Plan::build(
        &s,
        &PlanOptions {
            scale,
            seed,
            round_window_s: ROUND_WINDOW_DEFAULT_S,
        },
    )
    .unwrap()
}

#[test]
fn scale_shrinks_everything_alike() {
    let p = plan(0.01, 1);
    assert_eq!(p.contenders, 20_000);
    assert_eq!(p.tiers[0].stock, 4_000);
    assert_eq!(p.tiers[5].stock, 30);
    assert_eq!(p.tiers[0].min_spend_fen, 5_000);
    assert_eq!(p.tiers[0].discount_fen, 1_000);
    assert_eq!(p.merchants_of(Category::Catering).len(), 1_900);
    assert_eq!(p.merchants_of(Category::Retail).len(), 4_800);
    assert_eq!(p.merchants_of(Category::AutoOnline).len(), 6);
    assert_eq!(p.merchants_of(Category::Utility).len(), 1);
    // 14.6M registered at scale 0.01, bots included.
    assert_eq!(p.population.len(), 146_000);
    assert_eq!(
        p.population.humans + p.population.bot_accounts(),
        p.population.len()
    );
}

#[test]
fn tiny_scale_keeps_at_least_one_of_everything() {
    let p = plan(1e-7, 1);
    assert!(p.tiers.iter().all(|t| t.stock >= 1));
    for c in Category::ALL {
        assert!(!p.merchants_of(c).is_empty(), "{c:?}");
    }
    assert!(p.contenders >= 1);
    assert!(p.population.humans >= p.contenders);
}

#[test]
fn bad_scale_is_refused() {
    let s = Scenario::parse(GUIZHOU).unwrap();
    for scale in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(Plan::build(
            &s,
            &PlanOptions {
                scale,
                seed: 1,
                round_window_s: 20.0
            }
        )
        .is_err());
    }
}

#[test]
fn budget_covers_stock_times_face_value() {
    for scale in [0.001, 0.01, 1.0] {
        let p = plan(scale, 1);
        let exposure: u64 = p.tiers.iter().map(|t| t.stock * t.discount_fen).sum();
        let scaled_budget = (24_300_000.0 * 100.0 * scale).round() as u64;
        assert_eq!(p.budget_fen, scaled_budget.max(exposure));
        assert!(p.budget_fen >= exposure);
    }
}

#[test]
fn region_weights_sum_to_one_and_shape_residents() {
    let p = plan(0.01, 3);
    assert_eq!(p.population.region_cdf.len(), 9);
    assert!((p.population.region_cdf[8] - 1.0).abs() < 1e-9);
    assert!(p.population.region_cdf.windows(2).all(|w| w[0] <= w[1]));
    let mut counts: HashMap<String, u64> = HashMap::new();
    let n = 20_000;
    for i in 0..n {
        *counts.entry(p.population.resident(i).region).or_insert(0) += 1;
    }
    let guiyang = counts["guiyang"] as f64 / n as f64;
    assert!((guiyang - 0.21).abs() < 0.02, "guiyang share {guiyang}");
    let m = p.merchants_of(Category::Retail);
    let g = m
        .iter()
        .filter(|x| p.region_codes[x.region] == "guiyang")
        .count() as f64
        / m.len() as f64;
    assert!((g - 0.258).abs() < 0.03, "guiyang merchant share {g}");
}

#[test]
fn schedule_is_ordered_and_front_loaded() {
    let p = plan(0.01, 5);
    assert!(p.schedule.windows(2).all(|w| w[0].at_us <= w[1].at_us));
    // First tap of each human contender.
    let mut first: HashMap<u32, u64> = HashMap::new();
    for c in p.schedule.iter().filter(|c| !c.bot) {
        let e = first.entry(c.slot).or_insert(u64::MAX);
        *e = (*e).min(c.at_us);
    }
    assert_eq!(first.len() as u64, p.contenders);
    let early = first.values().filter(|&&t| t < 5_000_000).count() as f64 / first.len() as f64;
    assert!(
        (early - 0.60).abs() < 0.01,
        "share in the first 5 s: {early}"
    );
    let last_first = first.values().max().copied().unwrap();
    assert!(last_first < 20_000_000);
    assert!(p
        .schedule
        .iter()
        .all(|c| c.at_us < 20_000_000 + 4 * 1_500_000));
}

#[test]
fn contenders_try_distinct_tiers_of_one_category() {
    let p = plan(0.01, 7);
    let mut by_slot: HashMap<u32, Vec<u32>> = HashMap::new();
    for c in p.schedule.iter().filter(|c| !c.bot) {
        by_slot.entry(c.slot).or_default().push(c.tier);
    }
    let mut full = 0;
    for tiers in by_slot.values() {
        let set: HashSet<&u32> = tiers.iter().collect();
        assert_eq!(set.len(), tiers.len());
        assert!(tiers.len() <= p.limits.per_round as usize);
        let cats: HashSet<Category> = tiers
            .iter()
            .map(|t| p.tiers[*t as usize].category)
            .collect();
        assert_eq!(cats.len(), 1);
        if tiers.len() == p.limits.per_round as usize {
            full += 1;
        }
    }
    let share = full as f64 / by_slot.len() as f64;
    assert!((share - FULL_GRAB_SHARE).abs() < 0.02);
    // Weighted toward the plentiful cheap tier.
    let cheap = p.schedule.iter().filter(|c| !c.bot && c.tier == 0).count();
    let dear = p.schedule.iter().filter(|c| !c.bot && c.tier == 5).count();
    assert!(cheap > 20 * dear);
}

#[test]
fn bots_are_about_their_share_and_share_one_person() {
    let p = plan(0.01, 11);
    let bots = p.schedule.iter().filter(|c| c.bot).count() as f64;
    let share = bots / p.schedule.len() as f64;
    assert!((share - 0.02).abs() < 0.002, "bot share {share}");
    assert!(!p.population.clusters.is_empty());
    for (n, c) in p.population.clusters.iter().enumerate() {
        assert!(c.first_account >= p.population.humans);
        assert!(c.tiers.len() as u32 == p.limits.per_round + 1);
        let ids: HashSet<String> = (c.first_account..c.first_account + c.accounts)
            .map(|i| {
                assert_eq!(p.population.person(i), Person::Cluster(n));
                normalise_identity(&p.population.resident(i).identity_number)
            })
            .collect();
        assert_eq!(ids.len(), 1);
    }
    // Bot slots point at bot accounts.
    for c in p.schedule.iter().filter(|c| c.bot) {
        let account = p.participants[c.slot as usize];
        assert!(matches!(p.population.person(account), Person::Cluster(_)));
    }
}

#[test]
fn participants_are_distinct_registered_accounts() {
    let p = plan(0.01, 13);
    let set: HashSet<u64> = p.participants.iter().copied().collect();
    assert_eq!(set.len(), p.participants.len());
    assert!(p.participants.iter().all(|&a| a < p.population.len()));
    assert!(p.participants[..p.contenders as usize]
        .iter()
        .all(|&a| a < p.population.humans));
    assert_eq!(
        p.participants.len() as u64,
        p.contenders + p.population.bot_accounts()
    );
}

#[test]
fn same_seed_same_plan_other_seed_other_plan() {
    let a = plan(0.005, 21);
    let b = plan(0.005, 21);
    let c = plan(0.005, 22);
    assert_eq!(a.schedule, b.schedule);
    assert_eq!(a.participants, b.participants);
    assert_eq!(
        a.population.resident(5).identity_number,
        b.population.resident(5).identity_number
    );
    assert_ne!(a.schedule, c.schedule);
    assert_ne!(a.population.account(0), c.population.account(0));
}

#[test]
fn the_campaign_spec_passes_the_servers_validation() {
    let p = plan(0.01, 1);
    let start = NaiveDate::from_ymd_opt(2025, 6, 1)
        .unwrap()
        .and_hms_opt(20, 0, 3)
        .unwrap();
    let spec = campaign::spec(
        &p,
        start,
        120,
        campaign::validity("same_day", start).unwrap(),
    );
    let c = spec.validate("c1".into()).unwrap();
    assert_eq!(c.tiers.len(), 10);
    assert_eq!(c.tiers[0].stock, 4_000);
    assert_eq!(c.tiers[0].categories, vec![Category::Catering]);
    assert_eq!(c.limits.per_round, Some(2));
    assert_eq!(c.rounds[0].end_ms - c.rounds[0].start_ms, 120_000);
    // Names fit the contract's limits too.
    assert!(spec.name.len() <= 200);
}

#[test]
fn redemption_jobs_follow_the_model() {
    let p = plan(0.01, 17);
    // Pretend every human contender got their first tier.
    let mut granted = Vec::new();
    let mut seen = HashSet::new();
    for c in p.schedule.iter().filter(|c| !c.bot) {
        if seen.insert(c.slot) {
            granted.push(Granted {
                code: format!("CODE{}", c.slot),
                slot: c.slot,
                tier: c.tier,
            });
        }
    }
    let jobs = plan_redemptions(&p, &granted);
    assert_eq!(jobs, plan_redemptions(&p, &granted), "deterministic");
    let expected: f64 = granted
        .iter()
        .map(|g| p.tiers[g.tier as usize].redeem_rate)
        .sum();
    let got = jobs.len() as f64;
    assert!(
        (got / expected - 1.0).abs() < 0.03,
        "{got} jobs, expected about {expected}"
    );
    let mut per_merchant: HashMap<usize, u64> = HashMap::new();
    let mut requests = HashSet::new();
    for j in &jobs {
        let g = &granted[j.coupon];
        let t = &p.tiers[g.tier as usize];
        assert_eq!(p.merchants[j.merchant].category, t.category);
        assert!(j.order_fen >= t.min_spend_fen);
        assert!(j.order_fen <= t.min_spend_fen * 6 + 1);
        assert!(requests.insert(j.request_no.clone()));
        assert!(yunquan_actors::domain::valid_id(&j.request_no));
        if let Some(u) = j.utility_probe {
            assert_eq!(p.merchants[u].category, Category::Utility);
        }
        *per_merchant.entry(j.merchant).or_insert(0) += 1;
    }
    // 20% of catering merchants take about 70% of catering sales.
    let catering = &p
        .merchants_by_category
        .iter()
        .find(|(c, _)| *c == Category::Catering)
        .unwrap()
        .1;
    let hot_end = catering.start + (catering.len() as f64 * 0.2).ceil() as usize;
    let total: u64 = per_merchant
        .iter()
        .filter(|(m, _)| catering.contains(m))
        .map(|(_, n)| n)
        .sum();
    let hot: u64 = per_merchant
        .iter()
        .filter(|(m, _)| (catering.start..hot_end).contains(m))
        .map(|(_, n)| n)
        .sum();
    let share = hot as f64 / total as f64;
    assert!((share - 0.7).abs() < 0.03, "hot share {share}");
    let refunds = jobs.iter().filter(|j| j.refund).count() as f64 / jobs.len() as f64;
    assert!((refunds - 0.015).abs() < 0.01);
}
