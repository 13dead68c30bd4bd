#![allow(clippy::unwrap_used)]

use super::*;
use crate::plan::{PlanOptions, ROUND_WINDOW_DEFAULT_S};
use crate::redeem::AckedRedemption;
use crate::scenario::Scenario;
use yunquan_actors::api::{CampaignStatus, TierStats};
use yunquan_actors::domain::CouponCode;

const GUIZHOU: &str = include_str!("../../scenarios/guizhou-flash-round.toml");
const KEY: &[u8] = b"audit-test-key";

fn plan() -> Plan {
    let s = Scenario::parse(GUIZHOU).unwrap();
    Plan::build(
        &s,
        &PlanOptions {
            scale: 0.0005,
            seed: 4,
            round_window_s: ROUND_WINDOW_DEFAULT_S,
        },
    )
    .unwrap()
}

fn code(route: u64, serial: u32) -> String {
    CouponCode { route, serial }.encode(KEY)
}

/// A consistent world: every unit of every tier claimed by a different contender,
/// the first coupon of each tier redeemed, tier 0's first refunded.
struct World {
    plan: Plan,
    server: ServerView,
    granted: Vec<Granted>,
    sold_out: Vec<bool>,
    acks: RedemptionAcks,
}

impl World {
    fn new() -> World {
        let plan = plan();
        let mut coupons = HashMap::new();
        let mut granted = Vec::new();
        let mut acks = RedemptionAcks::default();
        let mut tiers = Vec::new();
        let mut slot = 0u32;
        let mut discount_total = 0;
        for (t, tier) in plan.tiers.iter().enumerate() {
            let mut redeemed = 0;
            for k in 0..tier.stock {
                let c = code(1_000 + u64::from(slot), 1);
                let mut e = Exported {
                    tier: t as u32,
                    round: 0,
                    status: CouponStatus::Available,
                    redemption_id: None,
                    times_redeemed: 0,
                };
                if k == 0 {
                    let id = format!("r{t}");
                    acks.redeemed.insert(
                        id.clone(),
                        AckedRedemption {
                            code: c.clone(),
                            discount_fen: tier.discount_fen,
                        },
                    );
                    if t == 0 {
                        acks.reversed.insert(id, tier.discount_fen);
                    } else {
                        e.status = CouponStatus::Redeemed;
                        e.redemption_id = Some(id);
                        e.times_redeemed = 1;
                        redeemed += 1;
                        discount_total += tier.discount_fen;
                    }
                }
                coupons.insert(c.clone(), e);
                granted.push(Granted {
                    code: c,
                    slot,
                    tier: t as u32,
                });
                slot += 1;
            }
            tiers.push(TierStats {
                round: 0,
                tier: t as u32,
                stock: tier.stock,
                claimed: tier.stock,
                remaining: 0,
                redeemed,
                discount_fen: redeemed * tier.discount_fen,
                spend_fen: 0,
            });
        }
        assert!(
            (slot as u64) < plan.contenders,
            "test needs a contender per coupon"
        );
        let stats = CampaignStats {
            campaign: "c1".into(),
            status: CampaignStatus::Ended,
            budget_fen: plan.budget_fen,
            discount_fen: discount_total,
            tiers,
            by_category: Vec::new(),
            by_region: Vec::new(),
        };
        let sold_out = vec![true; plan.tiers.len()];
        World {
            server: ServerView {
                stats,
                coupons,
                export_problems: Vec::new(),
            },
            plan,
            granted,
            sold_out,
            acks,
        }
    }

    fn check(&self) -> AuditReport {
        check(
            &self.server,
            &ClientView {
                plan: &self.plan,
                granted: &self.granted,
                sold_out_seen: &self.sold_out,
                redemptions: &self.acks,
                anomalies: &[],
            },
        )
    }
}

#[test]
fn a_consistent_world_passes() {
    let w = World::new();
    let r = w.check();
    assert!(r.ok, "{:#?}", r.violations);
    assert_eq!(
        (r.oversold, r.stranded, r.double_redeemed, r.lost_acks),
        (0, 0, 0, 0)
    );
    assert_eq!(r.discount_fen_acked, r.discount_fen_server);
}

#[test]
fn oversold_is_counted() {
    let mut w = World::new();
    w.server.coupons.insert(
        code(9, 9),
        Exported {
            tier: 0,
            round: 0,
            status: CouponStatus::Available,
            redemption_id: None,
            times_redeemed: 0,
        },
    );
    w.server.stats.tiers[0].claimed += 1;
    let r = w.check();
    assert_eq!(r.oversold, 1);
    assert!(!r.ok);
}

#[test]
fn stranded_stock_after_sold_out_is_counted() {
    let mut w = World::new();
    // Two units of tier 1 never claimed, yet a client heard sold_out.
    let victims: Vec<String> = w
        .granted
        .iter()
        .filter(|g| g.tier == 1)
        .skip(1)
        .take(2)
        .map(|g| g.code.clone())
        .collect();
    assert_eq!(victims.len(), 2);
    w.granted.retain(|g| !victims.contains(&g.code));
    for v in &victims {
        w.server.coupons.remove(v);
    }
    w.server.stats.tiers[1].claimed -= 2;
    let r = w.check();
    assert_eq!(r.stranded, 2);
    assert_eq!(r.lost_acks, 0);
    w.sold_out[1] = false;
    assert!(w.check().ok);
}

#[test]
fn acknowledged_coupon_missing_is_a_lost_ack() {
    let mut w = World::new();
    let lost = w.granted.iter().find(|g| g.tier == 6).unwrap().code.clone();
    w.server.coupons.remove(&lost);
    w.server.stats.tiers[6].claimed -= 1;
    w.server.stats.tiers[6].redeemed = w.server.stats.tiers[6].redeemed.saturating_sub(1);
    let r = w.check();
    assert!(r.lost_acks >= 1);
    assert!(r
        .violations
        .iter()
        .any(|v| v.contains("missing from the export")));
}

#[test]
fn redemption_not_reflected_is_a_lost_ack_and_a_discount_gap() {
    let mut w = World::new();
    let c = &w.acks.redeemed["r2"].code;
    let e = w.server.coupons.get_mut(c).unwrap();
    e.status = CouponStatus::Available;
    e.redemption_id = None;
    e.times_redeemed = 0;
    w.server.stats.tiers[2].redeemed -= 1;
    w.server.stats.discount_fen -= w.plan.tiers[2].discount_fen;
    let r = w.check();
    assert_eq!(r.lost_acks, 1);
    assert!(r.violations.iter().any(|v| v.contains("owe")));
}

#[test]
fn reversal_not_reflected_is_a_lost_ack() {
    let mut w = World::new();
    let c = w.acks.redeemed["r0"].code.clone();
    let e = w.server.coupons.get_mut(&c).unwrap();
    e.status = CouponStatus::Redeemed;
    e.redemption_id = Some("r0".into());
    e.times_redeemed = 1;
    w.server.stats.tiers[0].redeemed += 1;
    w.server.stats.discount_fen += w.plan.tiers[0].discount_fen;
    let r = w.check();
    assert_eq!(r.lost_acks, 1);
}

#[test]
fn unknown_outcomes_widen_the_discount_tolerance() {
    let mut w = World::new();
    w.server.stats.discount_fen += 1_000;
    w.server.stats.tiers[1].discount_fen += 1_000;
    assert!(!w.check().ok);
    w.acks.unknown_redemptions.push(("X".into(), 1_000));
    assert!(w.check().ok, "{:?}", w.check().violations);
}

#[test]
fn double_redemption_and_budget_are_caught() {
    let mut w = World::new();
    let c = w.acks.redeemed["r3"].code.clone();
    w.server.coupons.get_mut(&c).unwrap().times_redeemed = 2;
    w.server.stats.discount_fen = w.server.stats.budget_fen + 1;
    let r = w.check();
    assert_eq!(r.double_redeemed, 1);
    assert!(r.over_budget);
}

#[test]
fn a_bot_cluster_over_the_person_limit_is_caught() {
    let mut w = World::new();
    let cluster = &w.plan.population.clusters[0];
    let first_slot = w
        .plan
        .participants
        .iter()
        .position(|&a| a == cluster.first_account)
        .unwrap() as u32;
    // Two accounts of one cluster each got tier 0; the server treated them as two persons.
    for (j, route) in [(0u32, 77u64), (1, 78)] {
        let c = code(route, 1);
        w.granted.push(Granted {
            code: c.clone(),
            slot: first_slot + j,
            tier: 0,
        });
        w.server.coupons.insert(
            c,
            Exported {
                tier: 0,
                round: 0,
                status: CouponStatus::Available,
                redemption_id: None,
                times_redeemed: 0,
            },
        );
    }
    w.server.stats.tiers[0].claimed += 2;
    let r = w.check();
    assert!(
        r.violations.iter().any(|v| v.contains("bot clusters")),
        "{:#?}",
        r.violations
    );
    assert!(r.violations.iter().any(|v| v.contains("typed differently")));
}

#[test]
fn one_route_over_the_limit_is_caught_from_the_export_alone() {
    let mut w = World::new();
    for serial in [2u32, 3] {
        w.server.coupons.insert(
            code(1_000, serial),
            Exported {
                tier: 1,
                round: 0,
                status: CouponStatus::Available,
                redemption_id: None,
                times_redeemed: 0,
            },
        );
    }
    w.server.stats.tiers[1].claimed += 2;
    let r = w.check();
    assert!(
        r.violations
            .iter()
            .any(|v| v.contains("persons (by the route")),
        "{:#?}",
        r.violations
    );
}

#[test]
fn code_routes_decode() {
    for route in [0u64, 1, 0xdead_beef_0102_0304, u64::MAX] {
        assert_eq!(code_route(&code(route, 7)), Some(route));
    }
    assert_eq!(code_route("short"), None);
}
