//! `report.json` and the human summary. The required fields and their names are a
//! contract with whoever reads the report (CI, dashboards); extras follow them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Latency percentiles of a phase, in milliseconds, measured from each request's
/// intended send time (coordinated omission corrected).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest.
    pub max: f64,
}

/// Outcome counts of one phase (claims or redemptions).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseReport {
    /// Requests sent (retries and resends included).
    pub attempted: u64,
    /// New grants: coupons claimed (claims) or sales redeemed (redemptions).
    pub granted: u64,
    /// 409 `sold_out` replies.
    pub sold_out: u64,
    /// Other 409 business refusals (`limit_reached`, `below_threshold`, `not_applicable`, ...).
    pub limited: u64,
    /// Every reply that is neither 2xx nor a 409 refusal: 503s, other 4xx/5xx,
    /// timeouts, transport failures, unparsable bodies.
    pub errors: u64,
    /// attempted / wall time of the phase.
    pub per_second: f64,
    /// Latency percentiles of every reply, from its intended send time.
    pub latency_ms: Latency,
    /// Latency of the replies the server executed (all but 503s).
    #[serde(default)]
    pub executed_latency_ms: Latency,
    /// Latency of 503 replies (load turned away).
    #[serde(default)]
    pub shed_latency_ms: Latency,
    /// The part of `errors` that were 503 (load shed or store unavailable).
    pub overloaded: u64,
    /// 200 replays of an earlier request (same idempotency key or request number).
    pub replayed: u64,
    /// The part of `errors` whose outcome is unknown (timeouts, 5xx, lost connections).
    pub unknown_outcome: u64,
    /// Replies by reason: `ok_201`, `ok_200`, problem reasons, `timeout`, ...
    pub by_reason: BTreeMap<String, u64>,
    /// Wall time of the phase, in seconds.
    pub wall_s: f64,
}

/// Reversals sent after refunds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReversalReport {
    /// Reverse requests sent.
    pub attempted: u64,
    /// Acknowledged reversals.
    pub reversed: u64,
    /// Anything else.
    pub errors: u64,
}

/// The audit verdict.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    /// True iff `violations` is empty.
    pub ok: bool,
    /// Units claimed beyond stock, summed over tiers.
    pub oversold: u64,
    /// Units left unclaimed in tiers that answered `sold_out` (should be 0).
    pub stranded: u64,
    /// Coupons redeemed more than once.
    pub double_redeemed: u64,
    /// Discounts committed above the budget.
    pub over_budget: bool,
    /// Acknowledged claims, redemptions or reversals the server does not show.
    pub lost_acks: u64,
    /// Every failed check, in words.
    pub violations: Vec<String>,
    /// Coupons in the server's export.
    pub coupons_exported: u64,
    /// Discounts the server says are owed, in fen.
    pub discount_fen_server: u64,
    /// Discounts of our standing acknowledged redemptions, in fen.
    pub discount_fen_acked: u64,
}

/// Time spent in each phase, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Durations {
    /// Registering residents.
    pub seed_residents_s: f64,
    /// Registering merchants.
    pub seed_merchants_s: f64,
    /// Minting tokens (residents and terminals).
    pub tokens_s: f64,
    /// The claim phase.
    pub claims_s: f64,
    /// The redemption phase.
    pub redemptions_s: f64,
    /// The audit.
    pub audit_s: f64,
    /// The whole run.
    pub total_s: f64,
}

/// The knobs a run used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Server base URL.
    pub target: String,
    /// Seed of every random decision.
    pub seed: u64,
    /// Requests in flight at most.
    pub connections: usize,
    /// First attempts spread over this long, in seconds.
    pub round_window_s: f64,
    /// Round length, in seconds.
    pub round_duration_s: u64,
    /// Target redemption rate, per second.
    pub redeem_rate: f64,
}

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Scale factor.
    pub scale: f64,
    /// Registered resident accounts.
    pub users: u64,
    /// Registered merchants.
    pub merchants: u64,
    /// The claim phase.
    pub claims: PhaseReport,
    /// The redemption phase.
    pub redemptions: PhaseReport,
    /// The audit.
    pub audit: AuditReport,
    /// Campaign id created for the run.
    pub campaign: String,
    /// Human contenders.
    pub contenders: u64,
    /// Accounts in bot clusters.
    pub bot_accounts: u64,
    /// Bot clusters (one natural person each).
    pub bot_clusters: u64,
    /// Units of stock over all tiers.
    pub stock: u64,
    /// Campaign budget, in fen.
    pub budget_fen: u64,
    /// Seconds from round start to the first `sold_out` of each tier (null: never sold out).
    pub sellout_s: Vec<Option<f64>>,
    /// Reversals.
    pub reversals: ReversalReport,
    /// Phase durations.
    pub durations: Durations,
    /// Knobs.
    pub config: RunConfig,
}

fn phase_row(out: &mut String, name: &str, p: &PhaseReport) {
    let _ = writeln!(
        out,
        "{name:<12} {:>10} {:>10} {:>10} {:>10} {:>8} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
        p.attempted,
        p.granted,
        p.sold_out,
        p.limited,
        p.errors,
        p.per_second,
        p.latency_ms.p50,
        p.latency_ms.p99,
        p.latency_ms.p999,
        p.latency_ms.max
    );
}

/// A human-readable summary: the two phases as a table, then the audit verdict.
pub fn summary(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} at scale {}: {} residents ({} contenders, {} bot accounts in {} clusters), {} merchants, {} units of stock",
        r.scenario, r.scale, r.users, r.contenders, r.bot_accounts, r.bot_clusters, r.merchants, r.stock
    );
    let _ = writeln!(
        out,
        "{:<12} {:>10} {:>10} {:>10} {:>10} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "phase",
        "attempted",
        "granted",
        "sold_out",
        "limited",
        "errors",
        "per_s",
        "p50_ms",
        "p99_ms",
        "p999_ms",
        "max_ms"
    );
    phase_row(&mut out, "claims", &r.claims);
    phase_row(&mut out, "redemptions", &r.redemptions);
    for (name, p) in [("claims", &r.claims), ("redemptions", &r.redemptions)] {
        if p.overloaded > 0 || p.unknown_outcome > 0 || p.replayed > 0 {
            let _ = writeln!(
                out,
                "  {name}: {} overloaded (503), {} unknown outcome, {} replays",
                p.overloaded, p.unknown_outcome, p.replayed
            );
        }
        if p.overloaded > 0 {
            let _ = writeln!(
                out,
                "  {name}: executed p99 {:.2} ms, shed (503) p99 {:.2} ms",
                p.executed_latency_ms.p99, p.shed_latency_ms.p99
            );
        }
    }
    let _ = writeln!(
        out,
        "reversals: {} sent, {} acknowledged, {} errors",
        r.reversals.attempted, r.reversals.reversed, r.reversals.errors
    );
    let a = &r.audit;
    let _ = writeln!(
        out,
        "audit: {}  oversold {}  stranded {}  double_redeemed {}  over_budget {}  lost_acks {}  ({} coupons exported; discounts {} fen on the server, {} fen acknowledged)",
        if a.ok { "OK" } else { "FAILED" },
        a.oversold,
        a.stranded,
        a.double_redeemed,
        a.over_budget,
        a.lost_acks,
        a.coupons_exported,
        a.discount_fen_server,
        a.discount_fen_acked
    );
    for v in &a.violations {
        let _ = writeln!(out, "  violation: {v}");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object().unwrap().keys().map(String::as_str).collect()
    }

    fn has_all(v: &Value, want: &[&str]) {
        let got = keys(v);
        for k in want {
            assert!(got.contains(k), "missing {k} in {got:?}");
        }
    }

    #[test]
    fn report_json_has_the_contract_fields() {
        let v = serde_json::to_value(Report::default()).unwrap();
        has_all(
            &v,
            &[
                "scenario",
                "scale",
                "users",
                "merchants",
                "claims",
                "redemptions",
                "audit",
            ],
        );
        assert!(v["scenario"].is_string());
        assert!(v["scale"].is_f64());
        assert!(v["users"].is_u64() && v["merchants"].is_u64());
        for phase in ["claims", "redemptions"] {
            let p = &v[phase];
            has_all(
                p,
                &[
                    "attempted",
                    "granted",
                    "sold_out",
                    "limited",
                    "errors",
                    "per_second",
                    "latency_ms",
                ],
            );
            for k in ["attempted", "granted", "sold_out", "limited", "errors"] {
                assert!(p[k].is_u64(), "{phase}.{k}");
            }
            assert!(p["per_second"].is_f64());
            has_all(&p["latency_ms"], &["p50", "p99", "p999", "max"]);
            assert!(["p50", "p99", "p999", "max"]
                .iter()
                .all(|k| p["latency_ms"][k].is_f64()));
        }
        let a = &v["audit"];
        has_all(
            a,
            &[
                "ok",
                "oversold",
                "stranded",
                "double_redeemed",
                "over_budget",
                "lost_acks",
                "violations",
            ],
        );
        assert!(a["ok"].is_boolean() && a["over_budget"].is_boolean());
        assert!(a["violations"].is_array());
        for k in ["oversold", "stranded", "double_redeemed", "lost_acks"] {
            assert!(a[k].is_u64(), "audit.{k}");
        }
    }

    #[test]
    fn summary_names_violations() {
        let mut r = Report::default();
        r.audit.violations.push("oversold tier 0 by 3".into());
        let s = summary(&r);
        assert!(s.contains("FAILED"));
        assert!(s.contains("oversold tier 0 by 3"));
        assert!(s.contains("claims") && s.contains("redemptions"));
    }
}
