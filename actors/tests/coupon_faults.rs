//! The fault cases F1-F15: each a named test against the real engine and store.
// A test fails by panicking; unwrap's panic names the line.
#![allow(clippy::unwrap_used)]

mod common;

use common::{ms, Harness};
use futures::future::join_all;
use serde_json::json;
use yunquan_actors::api::{
    CouponStatus, EngineError, QuoteRequest, RedeemRequest, Refusal, ReverseRequest,
};
use yunquan_actors::domain::Category;

const NOW: &str = "2025-06-01T10:00:00+08:00";

fn fixed(off: u64, min: u64, stock: u64) -> serde_json::Value {
    json!({"kind": "fixed", "discount_fen": off, "min_spend_fen": min, "stock": stock})
}

fn refusal<T: std::fmt::Debug>(r: Result<T, EngineError>) -> Refusal {
    match r {
        Err(EngineError::Refused(x)) => x,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn race(h: &Harness, accounts: &[String], campaign: &str) -> (usize, usize) {
    let results = join_all(
        accounts
            .iter()
            .map(|a| h.engine.claim(a, campaign, 0, None)),
    )
    .await;
    let granted = results.iter().filter(|r| r.is_ok()).count();
    let sold_out = results
        .iter()
        .filter(|r| matches!(r, Err(EngineError::Refused(Refusal::SoldOut))))
        .count();
    (granted, sold_out)
}

#[tokio::test]
async fn f1_stock_one_twenty_residents_exactly_one_wins() {
    let h = Harness::start(NOW);
    let c = h
        .campaign(
            fixed(1000, 5000, 1),
            json!({"limits": {"per_tier_per_round": 100}}),
        )
        .await;
    let accounts = h.residents(20, "r").await;
    assert_eq!(race(&h, &accounts, &c).await, (1, 19));
    let c10 = h.campaign(fixed(1000, 5000, 10), json!({})).await;
    let accounts = h.residents(200, "s").await;
    assert_eq!(race(&h, &accounts, &c10).await, (10, 190));
    let stats = h.engine.campaign_stats(&c10).unwrap();
    assert_eq!((stats.tiers[0].claimed, stats.tiers[0].remaining), (10, 0));
}

#[tokio::test]
async fn f2_one_resident_sixty_four_concurrent_claims_one_coupon() {
    let h = Harness::start(NOW);
    let c = h.campaign(fixed(1000, 5000, 1), json!({})).await;
    let a = h.residents(1, "r").await.remove(0);
    let results = join_all((0..64).map(|i| h.engine.claim(&a, &c, 0, Some(format!("k{i}"))))).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1);
    for r in results.into_iter().filter(|r| r.is_err()) {
        assert!(matches!(
            refusal(r),
            Refusal::LimitReached(_) | Refusal::SoldOut
        ));
    }
    assert_eq!(h.engine.coupons(&a).await.unwrap().len(), 1);
}

#[tokio::test]
async fn f3_refused_repeats_never_consume_stock() {
    let h = Harness::start(NOW);
    let c = h.campaign(fixed(1000, 5000, 100), json!({})).await;
    let a = h.residents(1, "a").await.remove(0);
    h.engine.claim(&a, &c, 0, None).await.unwrap();
    for r in join_all((0..150).map(|_| h.engine.claim(&a, &c, 0, None))).await {
        assert!(matches!(refusal(r), Refusal::LimitReached(_)));
    }
    let others = h.residents(99, "o").await;
    assert_eq!(race(&h, &others, &c).await, (99, 0));
    assert_eq!(h.engine.campaign_stats(&c).unwrap().tiers[0].remaining, 0);
}

async fn one_coupon(
    h: &Harness,
    tier: serde_json::Value,
    extra: serde_json::Value,
) -> (String, String) {
    let c = h.campaign(tier, extra).await;
    let a = h.residents(1, "r").await.remove(0);
    let (coupon, _) = h.engine.claim(&a, &c, 0, None).await.unwrap();
    (c, coupon.code)
}

fn redeem(code: &str, request_no: &str, order_fen: u64) -> RedeemRequest {
    RedeemRequest {
        merchant: "m1".into(),
        terminal: "m1-t1".into(),
        code: code.into(),
        request_no: request_no.into(),
        order_fen,
    }
}

#[tokio::test]
async fn f4_retried_request_number_redeems_once() {
    let h = Harness::start(NOW);
    h.merchant("m1", Category::Catering, "guiyang").await;
    let (_, code) = one_coupon(&h, fixed(2000, 10_000, 5), json!({})).await;
    let results = join_all((0..3).map(|_| h.engine.redeem(redeem(&code, "R1", 12_000)))).await;
    let replies: Vec<_> = results.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(replies.iter().filter(|(_, replay)| !replay).count(), 1);
    assert!(replies.windows(2).all(|w| w[0].0 == w[1].0));
    assert_eq!(replies[0].0.discount_fen, 2000);
    let coupon = h.engine.coupon(&code).await.unwrap();
    assert_eq!(
        (coupon.status, coupon.times_redeemed),
        (CouponStatus::Redeemed, 1)
    );
}

#[tokio::test]
async fn f5_same_request_number_other_amount_is_refused() {
    let h = Harness::start(NOW);
    h.merchant("m1", Category::Catering, "guiyang").await;
    let (c, code) = one_coupon(&h, fixed(2000, 10_000, 5), json!({})).await;
    let (first, _) = h.engine.redeem(redeem(&code, "R1", 12_000)).await.unwrap();
    assert_eq!(
        refusal(h.engine.redeem(redeem(&code, "R1", 13_000)).await),
        Refusal::IdempotencyConflict
    );
    let stats = h.engine.campaign_stats(&c).unwrap();
    assert_eq!(
        (
            stats.tiers[0].redeemed,
            stats.discount_fen,
            stats.tiers[0].spend_fen
        ),
        (1, 2000, 12_000)
    );
    assert_eq!(
        h.engine.coupon(&code).await.unwrap().redemption_id,
        Some(first.redemption_id)
    );
}

#[tokio::test]
async fn f6_reversal_returns_coupon_once_and_never_allows_two_standing() {
    let h = Harness::start(NOW);
    h.merchant("m1", Category::Catering, "guiyang").await;
    let (c, code) = one_coupon(&h, fixed(2000, 10_000, 5), json!({})).await;
    let (r1, _) = h.engine.redeem(redeem(&code, "R1", 12_000)).await.unwrap();
    let rev = ReverseRequest {
        merchant: "m1".into(),
        redemption_id: r1.redemption_id.clone(),
    };
    let first = h.engine.reverse(rev.clone()).await.unwrap();
    assert_eq!(first.coupon_status, CouponStatus::Available);
    assert_eq!(
        h.engine.reverse(rev).await.unwrap(),
        first,
        "reversing twice is a no-op"
    );
    assert_eq!(h.engine.campaign_stats(&c).unwrap().discount_fen, 0);
    let (r2, _) = h.engine.redeem(redeem(&code, "R2", 10_000)).await.unwrap();
    assert_ne!(r2.redemption_id, r1.redemption_id);
    assert_eq!(
        refusal(h.engine.redeem(redeem(&code, "R3", 10_000)).await),
        Refusal::AlreadyRedeemed
    );
    assert_eq!(h.engine.coupon(&code).await.unwrap().times_redeemed, 1);
    let other = ReverseRequest {
        merchant: "m2".into(),
        redemption_id: r2.redemption_id.clone(),
    };
    assert_eq!(
        refusal(h.engine.reverse(other).await),
        Refusal::RedemptionNotFound
    );
    let s = h
        .engine
        .settlement("m1", chrono::NaiveDate::from_ymd_opt(2025, 6, 1).unwrap());
    assert_eq!(
        (s.redemptions, s.reversals, s.discount_fen, s.spend_fen),
        (1, 1, 2000, 10_000)
    );
}

#[tokio::test]
async fn f6_forfeit_policy_keeps_coupon_used() {
    let h = Harness::start(NOW);
    h.merchant("m1", Category::Catering, "guiyang").await;
    let (_, code) = one_coupon(
        &h,
        fixed(2000, 10_000, 5),
        json!({"refund_policy": "forfeit"}),
    )
    .await;
    let (r1, _) = h.engine.redeem(redeem(&code, "R1", 12_000)).await.unwrap();
    let rev = h
        .engine
        .reverse(ReverseRequest {
            merchant: "m1".into(),
            redemption_id: r1.redemption_id,
        })
        .await
        .unwrap();
    assert_eq!(rev.coupon_status, CouponStatus::Forfeited);
    assert_eq!(
        refusal(h.engine.redeem(redeem(&code, "R2", 12_000)).await),
        Refusal::AlreadyRedeemed
    );
}

#[tokio::test]
async fn f7_two_accounts_of_one_person_share_the_limit() {
    let h = Harness::start(NOW);
    let c = h.campaign(fixed(1000, 5000, 10), json!({})).await;
    let batch = vec![
        yunquan_actors::api::ResidentInput {
            account: "acct-a".into(),
            identity_number: "52010119900101123X".into(),
            region: "guiyang".into(),
        },
        yunquan_actors::api::ResidentInput {
            account: "acct-b".into(),
            identity_number: " 520101 1990 0101 123x".into(),
            region: "guiyang".into(),
        },
    ];
    for r in h.engine.register_residents(batch).await.unwrap() {
        r.unwrap();
    }
    h.engine.claim("acct-a", &c, 0, None).await.unwrap();
    assert!(matches!(
        refusal(h.engine.claim("acct-b", &c, 0, None).await),
        Refusal::LimitReached(_)
    ));
}

#[tokio::test]
async fn f8_f9_f10_amounts_through_quote_redeem_and_settlement() {
    let h = Harness::start(NOW);
    h.merchant("m1", Category::Catering, "guiyang").await;
    let c = h
        .campaign(
            fixed(2000, 10_000, 5),
            json!({"tiers": [
                {"kind": "fixed", "discount_fen": 2000, "min_spend_fen": 10_000, "stock": 5},
                {"kind": "percent", "percent": 15, "cap_fen": 100_000, "stock": 5},
                {"kind": "cash", "discount_fen": 5000, "stock": 5}],
                "limits": {"per_tier_per_round": 5}}),
        )
        .await;
    let a = h.residents(1, "r").await.remove(0);
    let code = |t| {
        let (e, a, c) = (&h.engine, a.clone(), c.clone());
        async move { e.claim(&a, &c, t, None).await.unwrap().0.code }
    };
    let quote = |code: String, order_fen| {
        h.engine.quote(QuoteRequest {
            merchant: "m1".into(),
            code,
            order_fen,
        })
    };
    // F8: inclusive threshold in fen.
    let f8 = code(0).await;
    assert_eq!(
        refusal(quote(f8.clone(), 9_999).await),
        Refusal::BelowThreshold {
            min_spend_fen: 10_000
        }
    );
    assert_eq!(quote(f8.clone(), 10_000).await.unwrap().payable_fen, 8_000);
    // F9: 15% of 34.90 = 5.24 half-up, the same in quote, redemption and settlement.
    let f9 = code(1).await;
    let q = quote(f9.clone(), 3490).await.unwrap();
    let (r, _) = h.engine.redeem(redeem(&f9, "F9", 3490)).await.unwrap();
    assert_eq!((q.discount_fen, q.payable_fen), (524, 2966));
    assert_eq!((r.discount_fen, r.payable_fen), (524, 2966));
    let f9b = code(1).await;
    assert_eq!(quote(f9b, 35).await.unwrap().discount_fen, 5);
    // F10: 50 off with no threshold on 30.00 -> 30.00 off, payable 0 (documented policy).
    let f10 = code(2).await;
    let (r10, _) = h.engine.redeem(redeem(&f10, "F10", 3000)).await.unwrap();
    assert_eq!((r10.discount_fen, r10.payable_fen), (3000, 0));
    let s = h
        .engine
        .settlement("m1", chrono::NaiveDate::from_ymd_opt(2025, 6, 1).unwrap());
    assert_eq!(s.discount_fen, 524 + 3000);
}

#[tokio::test]
async fn f11_f12_bad_definitions_change_nothing() {
    let h = Harness::start(NOW);
    let bad: yunquan_actors::domain::CampaignSpec = serde_json::from_value(json!({
        "name": "x", "funder": "y", "budget_fen": 9_223_372_036_854_775_807u64,
        "rounds": [{"start": "2025-06-01T10:00:00", "end": "2025-06-01T22:00:00"}],
        "tiers": [{"kind": "percent", "percent": 120, "cap_fen": 100, "stock": 10_000_000_000u64}],
        "eligibility": {"categories": ["catering"]}, "validity": {"kind": "same_day"}
    }))
    .unwrap();
    match h.engine.create_campaign(bad).await {
        Err(EngineError::Invalid(errors)) => {
            let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
            assert!(
                fields.contains(&"budget_fen")
                    && fields.contains(&"tiers[0].stock")
                    && fields.contains(&"tiers[0].percent"),
                "{fields:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(h.engine.campaigns().is_empty());
}

#[tokio::test]
async fn f13_validity_is_decided_by_the_server_clock_in_campaign_time() {
    let h = Harness::start(NOW);
    h.merchant("m1", Category::Catering, "guiyang").await;
    let (_, code) = one_coupon(&h, fixed(2000, 10_000, 5), json!({})).await;
    let q = |at: &str| {
        h.set_now(at);
        h.engine.quote(QuoteRequest {
            merchant: "m1".into(),
            code: code.clone(),
            order_fen: 10_000,
        })
    };
    assert!(q("2025-06-30T08:30:00+08:00").await.is_ok());
    assert!(q("2025-06-30T00:30:00Z").await.is_ok());
    assert!(q("2025-06-30T23:59:59+08:00").await.is_ok());
    assert_eq!(
        refusal(q("2025-07-01T00:00:00+08:00").await),
        Refusal::Expired
    );
    // A till whose own clock reads UTC-5 sends nothing the engine reads: only the server clock counts.
    assert_eq!(
        ms("2025-06-30T11:00:00-05:00"),
        ms("2025-07-01T00:00:00+08:00")
    );
}

#[tokio::test]
async fn f14_round_start_is_inclusive_at_the_second() {
    let h = Harness::start("2025-06-01T09:59:59+08:00");
    let c = h.campaign(fixed(1000, 5000, 5), json!({})).await;
    let a = h.residents(1, "r").await.remove(0);
    assert_eq!(
        refusal(h.engine.claim(&a, &c, 0, None).await),
        Refusal::NotStarted
    );
    h.set_now("2025-06-01T10:00:00+08:00");
    assert!(h.engine.claim(&a, &c, 0, None).await.is_ok());
    h.set_now("2025-06-01T22:00:01+08:00");
    assert_eq!(
        refusal(h.engine.claim(&a, &c, 0, None).await),
        Refusal::Ended
    );
}

#[tokio::test]
async fn f15_coupon_never_applies_outside_its_scope() {
    let h = Harness::start(NOW);
    h.merchant("m1", Category::Catering, "guiyang").await;
    h.merchant("shop", Category::Retail, "guiyang").await;
    h.merchant("far", Category::Catering, "zunyi").await;
    h.merchant("power", Category::Utility, "guiyang").await;
    let (_, code) = one_coupon(
        &h,
        fixed(2000, 10_000, 5),
        json!({"eligibility": {"categories": ["catering"], "regions": ["guiyang"]}}),
    )
    .await;
    for m in ["shop", "far", "power"] {
        let r = h
            .engine
            .quote(QuoteRequest {
                merchant: m.into(),
                code: code.clone(),
                order_fen: 20_000,
            })
            .await;
        assert!(matches!(refusal(r), Refusal::NotApplicable(_)), "{m}");
        let mut req = redeem(&code, "X", 20_000);
        req.merchant = m.into();
        assert!(
            matches!(
                refusal(h.engine.redeem(req).await),
                Refusal::NotApplicable(_)
            ),
            "{m}"
        );
    }
    assert!(h.engine.redeem(redeem(&code, "ok", 20_000)).await.is_ok());
}

#[tokio::test]
async fn forged_and_mistyped_codes_are_refused_before_lookup() {
    let h = Harness::start(NOW);
    h.merchant("m1", Category::Catering, "guiyang").await;
    let (_, code) = one_coupon(&h, fixed(2000, 10_000, 5), json!({})).await;
    let mut chars: Vec<char> = code.chars().collect();
    chars[2] = if chars[2] == 'A' { 'B' } else { 'A' };
    let forged: String = chars.into_iter().collect();
    assert_eq!(
        refusal(h.engine.redeem(redeem(&forged, "R", 20_000)).await),
        Refusal::ForgedCode
    );
    assert_eq!(
        refusal(h.engine.redeem(redeem("NOTACODE", "R", 20_000)).await),
        Refusal::InvalidCode
    );
}
