//! Idempotency keys and POS request numbers: a retry replays the first answer of an
//! executed request (business refusals included) for the documented retention window,
//! and executes anew after it, where the per-person limits and single use still hold.
// A test fails by panicking; unwrap's panic names the line.
#![allow(clippy::unwrap_used)]

mod common;

use common::Harness;
use serde_json::json;
use yunquan_actors::api::{EngineError, RedeemRequest, Refusal};
use yunquan_actors::domain::Category;
use yunquan_actors::engine::IDEMPOTENCY_RETENTION_MS;

const OPEN: &str = "2025-06-01T10:00:00+08:00";

fn at(base: &str, plus_ms: i64) -> String {
    let t = chrono::DateTime::parse_from_rfc3339(base).unwrap()
        + chrono::Duration::milliseconds(plus_ms);
    t.to_rfc3339()
}

fn refusal<T: std::fmt::Debug>(r: Result<T, EngineError>) -> Refusal {
    match r {
        Err(EngineError::Refused(x)) => x,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn cash(stock: u64) -> serde_json::Value {
    json!({"kind": "cash", "discount_fen": 500, "stock": stock})
}

#[tokio::test]
async fn a_refusal_replays_even_after_the_cause_is_gone() {
    let h = Harness::start("2025-06-01T09:59:59+08:00");
    let c = h.campaign(cash(10), json!({})).await;
    let a = h.residents(1, "r").await.remove(0);
    let early = h.engine.claim(&a, &c, 0, Some("k".into())).await;
    assert_eq!(refusal(early), Refusal::NotStarted);
    h.set_now(OPEN);
    let replay = h.engine.claim(&a, &c, 0, Some("k".into())).await;
    assert_eq!(
        refusal(replay),
        Refusal::NotStarted,
        "same key: first answer"
    );
    let (coupon, replayed) = h.engine.claim(&a, &c, 0, Some("k2".into())).await.unwrap();
    assert!(!replayed);
    assert_eq!(coupon.tier, 0);
    h.engine.shutdown().await;
}

#[tokio::test]
async fn a_claim_key_replays_through_the_window_then_executes_anew() {
    let h = Harness::start(OPEN);
    let c = h.campaign(cash(10), json!({})).await;
    let a = h.residents(1, "r").await.remove(0);
    let (first, _) = h.engine.claim(&a, &c, 0, Some("k".into())).await.unwrap();
    h.set_now(&at(OPEN, IDEMPOTENCY_RETENTION_MS));
    let (again, replayed) = h.engine.claim(&a, &c, 0, Some("k".into())).await.unwrap();
    assert!(replayed, "inside the window the key replays");
    assert_eq!(again.code, first.code);
    h.set_now(&at(OPEN, IDEMPOTENCY_RETENTION_MS + 1));
    // After the window the request executes: the round (10:00-22:00) is over by now.
    let late = h.engine.claim(&a, &c, 0, Some("k".into())).await;
    assert_eq!(refusal(late), Refusal::Ended);
    assert_eq!(h.engine.coupons(&a).await.unwrap().len(), 1);
    h.engine.shutdown().await;
}

#[tokio::test]
async fn a_request_number_replays_through_the_window_and_never_redeems_twice() {
    let h = Harness::start(OPEN);
    h.merchant("m1", Category::Catering, "guiyang").await;
    let c = h.campaign(cash(10), json!({})).await;
    let a = h.residents(1, "r").await.remove(0);
    let (coupon, _) = h.engine.claim(&a, &c, 0, None).await.unwrap();
    let req = || RedeemRequest {
        merchant: "m1".into(),
        terminal: "m1-t1".into(),
        code: coupon.code.clone(),
        request_no: "R1".into(),
        order_fen: 3_000,
    };
    let (first, _) = h.engine.redeem(req()).await.unwrap();
    h.set_now(&at(OPEN, IDEMPOTENCY_RETENTION_MS));
    let (again, replayed) = h.engine.redeem(req()).await.unwrap();
    assert!(replayed);
    assert_eq!(again, first);
    h.set_now(&at(OPEN, IDEMPOTENCY_RETENTION_MS + 1));
    assert_eq!(
        refusal(h.engine.redeem(req()).await),
        Refusal::AlreadyRedeemed
    );
    assert_eq!(
        h.engine.coupon(&coupon.code).await.unwrap().times_redeemed,
        1
    );
    h.engine.shutdown().await;
}
