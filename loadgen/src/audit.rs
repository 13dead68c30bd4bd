//! The audit: what the server says (stats and the coupon export) against what it
//! told us (every acknowledgement) and what the campaign allows (stock, budget,
//! per-person limits). Fetching is async; the checks are a pure function.

use crate::client::{Api, BULK_TIMEOUT_S};
use crate::plan::Plan;
use crate::population::Person;
use crate::redeem::RedemptionAcks;
use crate::redeem_plan::Granted;
use crate::report::AuditReport;
use anyhow::Context;
use data_encoding::BASE32_NOPAD;
use reqwest::Method;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};
use yunquan_actors::api::{CampaignStats, CouponStatus, CouponView};

/// Examples quoted in one violation, at most.
const EXAMPLES_MAX: usize = 3;
/// Contract violations seen in replies listed one by one, at most (the rest are counted).
const ANOMALIES_LISTED_MAX: usize = 20;
/// Longest wait for the stats to stop changing after the last request, in seconds.
const STATS_SETTLE_S_MAX: u64 = 15;
/// Pause between two stats reads while waiting for them to settle, in milliseconds.
const STATS_POLL_MS: u64 = 500;
/// Characters of a coupon code's person route (8 bytes of base32).
const ROUTE_CHARS: usize = 13;

/// A coupon as the audit needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// Tier index.
    pub tier: u32,
    /// Round index.
    pub round: u32,
    /// Status.
    pub status: CouponStatus,
    /// Standing redemption.
    pub redemption_id: Option<String>,
    /// Standing redemptions (0 or 1).
    pub times_redeemed: u32,
}

/// The server's side of the audit.
#[derive(Debug, Clone)]
pub struct ServerView {
    /// `GET /v1/campaigns/{id}/stats`, once settled.
    pub stats: CampaignStats,
    /// The export, by code.
    pub coupons: HashMap<String, Exported>,
    /// Lines of the export that were duplicates, from another campaign, or unparsable.
    pub export_problems: Vec<String>,
}

/// Our side of the audit.
#[derive(Debug)]
pub struct ClientView<'a> {
    /// The plan (limits, tiers, who shares a person).
    pub plan: &'a Plan,
    /// Acknowledged coupons.
    pub granted: &'a [Granted],
    /// Per tier: a client saw `sold_out`.
    pub sold_out_seen: &'a [bool],
    /// Redemption and reversal acknowledgements.
    pub redemptions: &'a RedemptionAcks,
    /// Contract violations the phases saw in replies.
    pub anomalies: &'a [String],
}

/// Fetches the stats (waiting until they stop changing) and the coupon export.
pub async fn fetch(api: &Api, token: &str, campaign: &str) -> anyhow::Result<ServerView> {
    let path = format!("/v1/campaigns/{campaign}/stats");
    let read = || async {
        api.must::<CampaignStats>("GET stats", api.request(Method::GET, &path, token))
            .await
    };
    // Stats may be a projection that trails the shards; wait for two equal reads.
    let deadline = Instant::now() + Duration::from_secs(STATS_SETTLE_S_MAX);
    let mut stats = read().await?;
    loop {
        tokio::time::sleep(Duration::from_millis(STATS_POLL_MS)).await;
        let again = read().await?;
        let same = serde_json::to_value(&again).ok() == serde_json::to_value(&stats).ok();
        stats = again;
        if same || Instant::now() > deadline {
            break;
        }
    }
    let (coupons, export_problems) = export(api, token, campaign).await?;
    Ok(ServerView {
        stats,
        coupons,
        export_problems,
    })
}

/// Reads the NDJSON export line by line as it arrives.
async fn export(
    api: &Api,
    token: &str,
    campaign: &str,
) -> anyhow::Result<(HashMap<String, Exported>, Vec<String>)> {
    let path = format!("/v1/campaigns/{campaign}/coupons");
    let mut resp = api
        .request(Method::GET, &path, token)
        .timeout(Duration::from_secs(BULK_TIMEOUT_S))
        .send()
        .await
        .with_context(|| format!("GET {path}"))?;
    anyhow::ensure!(resp.status().is_success(), "GET {path}: {}", resp.status());
    let mut coupons = HashMap::new();
    let mut problems = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut line_no = 0u64;
    let mut take_line =
        |line: &[u8], coupons: &mut HashMap<String, Exported>, problems: &mut Vec<String>| {
            line_no += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                return;
            }
            match serde_json::from_slice::<CouponView>(line) {
                Ok(c) => {
                    if c.campaign != campaign {
                        problems.push(format!(
                            "export line {line_no}: coupon {} belongs to campaign {}",
                            c.code, c.campaign
                        ));
                    }
                    let e = Exported {
                        tier: c.tier,
                        round: c.round,
                        status: c.status,
                        redemption_id: c.redemption_id,
                        times_redeemed: c.times_redeemed,
                    };
                    if coupons.insert(c.code.clone(), e).is_some() {
                        problems.push(format!(
                            "export line {line_no}: coupon {} appears twice",
                            c.code
                        ));
                    }
                }
                Err(e) => problems.push(format!("export line {line_no} does not parse: {e}")),
            }
        };
    while let Some(chunk) = resp
        .chunk()
        .await
        .with_context(|| format!("reading {path}"))?
    {
        pending.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(n) = pending[start..].iter().position(|b| *b == b'\n') {
            take_line(&pending[start..start + n], &mut coupons, &mut problems);
            start += n + 1;
        }
        pending.drain(..start);
    }
    if !pending.is_empty() {
        take_line(&pending, &mut coupons, &mut problems);
    }
    Ok((coupons, problems))
}

/// The person route a coupon code carries (its first 8 bytes), if it decodes.
pub fn code_route(code: &str) -> Option<u64> {
    let text = code.get(..ROUTE_CHARS)?;
    // 13 base32 characters are 65 bits: the route's 64 and one bit of the serial.
    let mut padded = text.to_ascii_uppercase();
    padded.push_str("AAA");
    let raw = BASE32_NOPAD.decode(padded.as_bytes()).ok()?;
    let bytes: [u8; 8] = raw.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

fn examples<T: std::fmt::Display>(items: &[T]) -> String {
    let shown: Vec<String> = items
        .iter()
        .take(EXAMPLES_MAX)
        .map(ToString::to_string)
        .collect();
    let more = items.len().saturating_sub(EXAMPLES_MAX);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Holdings above the per-person limits, for any grouping of coupons by person.
fn over_limits<K: Ord + std::fmt::Debug>(
    plan: &Plan,
    held: &BTreeMap<K, BTreeMap<u32, u64>>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (who, tiers) in held {
        for (tier, n) in tiers {
            if *n > u64::from(plan.limits.per_tier_per_round) {
                out.push(format!("{who:?} holds {n} of tier {tier}"));
            }
        }
        let total: u64 = tiers.values().sum();
        if total > u64::from(plan.limits.per_round) {
            out.push(format!("{who:?} holds {total} coupons in the round"));
        }
    }
    out
}

/// Runs every check.
pub fn check(server: &ServerView, ours: &ClientView<'_>) -> AuditReport {
    let plan = ours.plan;
    let stats = &server.stats;
    let mut v: Vec<String> = Vec::new();
    let mut report = AuditReport::default();

    // Stock: per tier, from the stats and from the export.
    let mut exported_per_tier = vec![0u64; plan.tiers.len()];
    let mut redeemed_per_tier = vec![0u64; plan.tiers.len()];
    for c in server.coupons.values() {
        match exported_per_tier.get_mut(c.tier as usize) {
            Some(n) => *n += 1,
            None => v.push(format!(
                "export holds a coupon of tier {} which the campaign does not have",
                c.tier
            )),
        }
        if c.status == CouponStatus::Redeemed {
            if let Some(n) = redeemed_per_tier.get_mut(c.tier as usize) {
                *n += 1;
            }
        }
        if c.round != 0 {
            v.push(format!(
                "export holds a coupon of round {}; the campaign has one round",
                c.round
            ));
        }
    }
    for (t, tier) in plan.tiers.iter().enumerate() {
        let Some(s) = stats
            .tiers
            .iter()
            .find(|s| s.round == 0 && s.tier as usize == t)
        else {
            v.push(format!("stats have no figures for round 0 tier {t}"));
            continue;
        };
        let exported = exported_per_tier.get(t).copied().unwrap_or(0);
        if s.stock != tier.stock {
            v.push(format!(
                "tier {t}: stats show stock {} but the campaign set {}",
                s.stock, tier.stock
            ));
        }
        let claimed = s.claimed.max(exported);
        if claimed > tier.stock {
            report.oversold += claimed - tier.stock;
            v.push(format!(
                "tier {t} oversold: {claimed} claimed of {} in stock",
                tier.stock
            ));
        }
        if ours.sold_out_seen.get(t).copied().unwrap_or(false) && s.claimed < tier.stock {
            report.stranded += tier.stock - s.claimed;
            v.push(format!(
                "tier {t} answered sold_out but only {} of {} units were claimed",
                s.claimed, tier.stock
            ));
        }
        if s.claimed != exported {
            v.push(format!(
                "tier {t}: stats say {} claimed, the export holds {exported} coupons",
                s.claimed
            ));
        }
        let redeemed = redeemed_per_tier.get(t).copied().unwrap_or(0);
        if s.redeemed != redeemed {
            v.push(format!(
                "tier {t}: stats say {} redeemed, the export shows {redeemed} redeemed coupons",
                s.redeemed
            ));
        }
    }
    let tier_discounts: u64 = stats.tiers.iter().map(|s| s.discount_fen).sum();
    if tier_discounts != stats.discount_fen {
        v.push(format!(
            "stats: tiers owe {tier_discounts} fen of discounts in total, the campaign {} fen",
            stats.discount_fen
        ));
    }
    let claimed_total: u64 = stats.tiers.iter().map(|s| s.claimed).sum();
    report.coupons_exported = server.coupons.len() as u64;
    if claimed_total != report.coupons_exported {
        v.push(format!(
            "stats say {claimed_total} coupons claimed, the export holds {}",
            report.coupons_exported
        ));
    }
    for p in &server.export_problems {
        v.push(p.clone());
    }

    // Double redemption: by the export, and by our own acknowledgements.
    let mut doubled: HashSet<&str> = server
        .coupons
        .iter()
        .filter(|(_, c)| c.times_redeemed > 1)
        .map(|(code, _)| code.as_str())
        .collect();
    let mut standing_by_code: HashMap<&str, u32> = HashMap::new();
    for (id, r) in &ours.redemptions.redeemed {
        if !ours.redemptions.reversed.contains_key(id) {
            *standing_by_code.entry(r.code.as_str()).or_insert(0) += 1;
        }
    }
    doubled.extend(
        standing_by_code
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(c, _)| *c),
    );
    report.double_redeemed = doubled.len() as u64;
    if !doubled.is_empty() {
        let mut d: Vec<&str> = doubled.into_iter().collect();
        d.sort_unstable();
        v.push(format!(
            "{} coupons redeemed more than once: {}",
            d.len(),
            examples(&d)
        ));
    }

    // Budget.
    report.over_budget = stats.discount_fen > stats.budget_fen;
    if report.over_budget {
        v.push(format!(
            "discounts {} fen exceed the budget of {} fen",
            stats.discount_fen, stats.budget_fen
        ));
    }
    if stats.budget_fen != plan.budget_fen {
        v.push(format!(
            "stats show a budget of {} fen, the campaign set {}",
            stats.budget_fen, plan.budget_fen
        ));
    }

    // Lost acknowledgements.
    let missing: Vec<&str> = ours
        .granted
        .iter()
        .filter(|g| !server.coupons.contains_key(&g.code))
        .map(|g| g.code.as_str())
        .collect();
    if !missing.is_empty() {
        v.push(format!(
            "{} acknowledged coupons are missing from the export: {}",
            missing.len(),
            examples(&missing)
        ));
    }
    let acks = ours.redemptions;
    let mut lost_redemptions = Vec::new();
    let mut lost_reversals = Vec::new();
    let mut standing_fen = 0u64;
    for (id, r) in &acks.redeemed {
        let coupon = server.coupons.get(&r.code);
        let shows_it = coupon.is_some_and(|c| {
            c.status == CouponStatus::Redeemed && c.redemption_id.as_deref() == Some(id.as_str())
        });
        if acks.reversed.contains_key(id) {
            if shows_it {
                lost_reversals.push(id.as_str());
            }
        } else if !acks.unknown_reversals.contains_key(id) {
            standing_fen += r.discount_fen;
            if !shows_it {
                lost_redemptions.push(id.as_str());
            }
        }
    }
    if !lost_redemptions.is_empty() {
        v.push(format!(
            "{} acknowledged redemptions are not reflected in their coupons: {}",
            lost_redemptions.len(),
            examples(&lost_redemptions)
        ));
    }
    if !lost_reversals.is_empty() {
        v.push(format!(
            "{} acknowledged reversals are not reflected (coupon still redeemed by them): {}",
            lost_reversals.len(),
            examples(&lost_reversals)
        ));
    }
    report.lost_acks = (missing.len() + lost_redemptions.len() + lost_reversals.len()) as u64;

    // Discounts owed: exactly ours, give or take sales and refunds whose fate we never learned.
    let unknown_up: u64 = acks.unknown_redemptions.iter().map(|(_, d)| d).sum();
    let unknown_rev: u64 = acks.unknown_reversals.values().sum();
    report.discount_fen_server = stats.discount_fen;
    report.discount_fen_acked = standing_fen;
    let (lo, hi) = (standing_fen, standing_fen + unknown_up + unknown_rev);
    if !(lo..=hi).contains(&stats.discount_fen) {
        v.push(format!(
            "stats owe {} fen of discounts; our standing redemptions add up to {standing_fen} fen (allowing {unknown_up} fen of unknown sales and {unknown_rev} fen of unknown refunds)",
            stats.discount_fen
        ));
    }

    // Per-person limits: per account and per bot cluster from our acknowledgements,
    // and per person route (carried in every code) over the whole export.
    let mut by_account: BTreeMap<u64, BTreeMap<u32, u64>> = BTreeMap::new();
    let mut by_cluster: BTreeMap<usize, BTreeMap<u32, u64>> = BTreeMap::new();
    let mut cluster_routes: BTreeMap<usize, HashSet<u64>> = BTreeMap::new();
    for g in ours.granted {
        let Some(&account) = plan.participants.get(g.slot as usize) else {
            continue;
        };
        *by_account
            .entry(account)
            .or_default()
            .entry(g.tier)
            .or_insert(0) += 1;
        if let Person::Cluster(n) = plan.population.person(account) {
            *by_cluster.entry(n).or_default().entry(g.tier).or_insert(0) += 1;
            if let Some(route) = code_route(&g.code) {
                cluster_routes.entry(n).or_default().insert(route);
            }
        }
    }
    let mut by_route: BTreeMap<u64, BTreeMap<u32, u64>> = BTreeMap::new();
    for (code, c) in &server.coupons {
        if let Some(route) = code_route(code) {
            *by_route
                .entry(route)
                .or_default()
                .entry(c.tier)
                .or_insert(0) += 1;
        }
    }
    for (what, over) in [
        ("accounts", over_limits(plan, &by_account)),
        (
            "bot clusters (one person each)",
            over_limits(plan, &by_cluster),
        ),
        (
            "persons (by the route in their coupon codes)",
            over_limits(plan, &by_route),
        ),
    ] {
        if !over.is_empty() {
            v.push(format!(
                "{} {what} exceed the per-person limits ({} per tier, {} per round): {}",
                over.len(),
                plan.limits.per_tier_per_round,
                plan.limits.per_round,
                examples(&over)
            ));
        }
    }
    let split: Vec<String> = cluster_routes
        .iter()
        .filter(|(_, r)| r.len() > 1)
        .map(|(n, r)| format!("cluster {n} ({} routes)", r.len()))
        .collect();
    if !split.is_empty() {
        v.push(format!(
            "identity numbers typed differently were treated as different persons: {}",
            examples(&split)
        ));
    }

    v.extend(ours.anomalies.iter().take(ANOMALIES_LISTED_MAX).cloned());
    if ours.anomalies.len() > ANOMALIES_LISTED_MAX {
        v.push(format!(
            "... and {} more contract violations seen in replies",
            ours.anomalies.len() - ANOMALIES_LISTED_MAX
        ));
    }
    report.ok = v.is_empty();
    report.violations = v;
    report
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
