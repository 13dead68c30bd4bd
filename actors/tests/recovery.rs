//! Restarts: everything acknowledged is back, stock and budget counters included,
//! and a data directory refuses another shard count.
// A test fails by panicking; unwrap's panic names the line.
#![allow(clippy::unwrap_used)]

mod common;

use common::{config, Harness};
use serde_json::json;
use std::sync::Arc;
use yunquan_actors::api::{EngineError, RedeemRequest, Refusal};
use yunquan_actors::domain::Category;
use yunquan_actors::{Engine, StartError};

#[tokio::test]
async fn restart_restores_wallets_stock_budget_and_idempotency() {
    let h = Harness::start("2025-06-01T10:00:00+08:00");
    h.merchant("m1", Category::Catering, "guiyang").await;
    let c = h
        .campaign(
            json!({"kind": "fixed", "discount_fen": 2000, "min_spend_fen": 10_000, "stock": 3}),
            json!({}),
        )
        .await;
    let accounts = h.residents(5, "r").await;
    let (coupon, _) = h
        .engine
        .claim(&accounts[0], &c, 0, Some("k0".into()))
        .await
        .unwrap();
    h.engine.claim(&accounts[1], &c, 0, None).await.unwrap();
    let req = RedeemRequest {
        merchant: "m1".into(),
        terminal: "m1-t1".into(),
        code: coupon.code.clone(),
        request_no: "R1".into(),
        order_fen: 15_000,
    };
    let (red, _) = h.engine.redeem(req.clone()).await.unwrap();
    let before = h.engine.campaign_stats(&c).unwrap();
    // No orderly shutdown: drop the engine as a crash would leave it (no snapshot).
    let clock = Arc::clone(&h.clock);
    let dir = h.dir;
    drop(h.engine);
    // redb releases its file lock when the store is dropped with the actor thread.
    let engine = loop {
        let c2 = Arc::clone(&clock);
        match Engine::start(
            config(dir.path(), 2),
            Arc::new(move || c2.load(std::sync::atomic::Ordering::SeqCst)),
        ) {
            Ok(e) => break e,
            Err(StartError::Storage(_)) => std::thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    };
    let after = engine.campaign_stats(&c).unwrap();
    assert_eq!(before.tiers, after.tiers);
    assert_eq!(after.discount_fen, 2000);
    let (again, replay) = engine
        .claim(&accounts[0], &c, 0, Some("k0".into()))
        .await
        .unwrap();
    assert!(replay);
    assert_eq!(again.code, coupon.code);
    let (red2, replay) = engine.redeem(req).await.unwrap();
    assert!(replay);
    assert_eq!(red2, red);
    // Stock: 3 - 2 claimed = 1 left.
    engine.claim(&accounts[2], &c, 0, None).await.unwrap();
    assert!(matches!(
        engine.claim(&accounts[3], &c, 0, None).await,
        Err(EngineError::Refused(Refusal::SoldOut))
    ));
    engine.shutdown().await;
}

#[tokio::test]
async fn other_shard_count_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::start(config(dir.path(), 2), Arc::new(|| 0)).unwrap();
    e.shutdown().await;
    drop(e);
    let err = Engine::start(config(dir.path(), 3), Arc::new(|| 0)).unwrap_err();
    assert!(
        matches!(
            err,
            StartError::ShardCountMismatch {
                found: 2,
                requested: 3,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("--shards 2"));
}

#[tokio::test]
async fn offline_audit_passes_on_real_data_and_catches_a_forged_grant() {
    use yunquan_actors::engine::{ShardEvent, CONTROL_JOURNAL};
    use yunquan_storage::{EmbeddedStore, Store};
    let h = Harness::start("2025-06-01T10:00:00+08:00");
    h.merchant("m1", Category::Catering, "guiyang").await;
    let c = h
        .campaign(
            json!({"kind": "fixed", "discount_fen": 2000, "min_spend_fen": 10_000, "stock": 2}),
            json!({}),
        )
        .await;
    let accounts = h.residents(4, "r").await;
    let (coupon, _) = h.engine.claim(&accounts[0], &c, 0, None).await.unwrap();
    h.engine.claim(&accounts[1], &c, 0, None).await.unwrap();
    let req = RedeemRequest {
        merchant: "m1".into(),
        terminal: "m1-t1".into(),
        code: coupon.code,
        request_no: "R1".into(),
        order_fen: 15_000,
    };
    h.engine.redeem(req).await.unwrap();
    h.engine.shutdown().await;
    let dir = h.dir;
    drop(h.engine);
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let report = yunquan_actors::audit::audit_store(&store, 2).unwrap();
    assert!(report.ok, "{:?}", report.violations);
    assert_eq!(
        (report.coupons, report.redemptions, report.persons),
        (2, 1, 4)
    );
    assert!(store.last_seq(CONTROL_JOURNAL).unwrap() >= 3);
    // Append a third grant of the 2-unit tier behind the engine's back: the audit must see it.
    let (shard, state, next) = (0..2)
        .map(|s| {
            let (state, next) = yunquan_actors::engine::recover_shard(&store, s, 10).unwrap();
            (s, state, next)
        })
        .find(|(_, st, _)| st.persons.values().any(|p| p.coupons.is_empty()))
        .unwrap();
    let (&route, person) = state
        .persons
        .iter()
        .find(|(_, p)| p.coupons.is_empty())
        .unwrap();
    let forged = ShardEvent::Granted {
        route,
        serial: 1,
        account: person.accounts[0].clone(),
        campaign: c.clone(),
        round: 0,
        tier: 0,
        at_ms: common::ms("2025-06-01T10:00:00+08:00"),
        valid_from_ms: 0,
        valid_until_ms: i64::MAX,
        idempotency_key: None,
    };
    store
        .append(shard, next, &[&postcard::to_allocvec(&forged).unwrap()])
        .unwrap();
    let report = yunquan_actors::audit::audit_store(&store, 2).unwrap();
    assert!(!report.ok);
    assert_eq!(report.oversold, 1);
}

#[tokio::test]
async fn recovery_from_snapshot_plus_journal_tail() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(std::sync::atomic::AtomicI64::new(common::ms(
        "2025-06-01T10:00:00+08:00",
    )));
    let start = |dir: &std::path::Path| {
        let mut cfg = config(dir, 2);
        cfg.snapshot_every_events = 3;
        let c = Arc::clone(&clock);
        Engine::start(
            cfg,
            Arc::new(move || c.load(std::sync::atomic::Ordering::SeqCst)),
        )
        .unwrap()
    };
    let engine = start(dir.path());
    let h = Harness {
        engine,
        clock: Arc::clone(&clock),
        dir,
    };
    let c = h
        .campaign(
            json!({"kind": "cash", "discount_fen": 500, "stock": 50}),
            json!({}),
        )
        .await;
    let accounts = h.residents(20, "s").await;
    let mut codes = Vec::new();
    for a in &accounts {
        codes.push(h.engine.claim(a, &c, 0, None).await.unwrap().0.code);
    }
    let Harness { engine, dir, .. } = h;
    drop(engine);
    let engine = loop {
        match std::panic::catch_unwind(|| start(dir.path())) {
            Ok(e) => break e,
            Err(_) => std::thread::yield_now(),
        }
    };
    for (a, code) in accounts.iter().zip(&codes) {
        let mine = engine.coupons(a).await.unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(&mine[0].code, code);
    }
    assert_eq!(engine.campaign_stats(&c).unwrap().tiers[0].remaining, 30);
    engine.shutdown().await;
}

#[tokio::test]
async fn full_mailbox_answers_overloaded_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(std::sync::atomic::AtomicI64::new(common::ms(
        "2025-06-01T10:00:00+08:00",
    )));
    let mut cfg = config(dir.path(), 1);
    cfg.mailbox_commands_max = 1;
    let c2 = Arc::clone(&clock);
    let engine = Engine::start(
        cfg,
        Arc::new(move || c2.load(std::sync::atomic::Ordering::SeqCst)),
    )
    .unwrap();
    let h = Harness { engine, clock, dir };
    let c = h
        .campaign(
            json!({"kind": "cash", "discount_fen": 500, "stock": 10_000}),
            json!({}),
        )
        .await;
    let mut accounts = Vec::new();
    for i in 0..20 {
        accounts.extend(h.residents(100, &format!("o{i}x")).await);
    }
    let results =
        futures::future::join_all(accounts.iter().map(|a| h.engine.claim(a, &c, 0, None))).await;
    let granted = results.iter().filter(|r| r.is_ok()).count() as u64;
    let overloaded = results
        .iter()
        .filter(|r| matches!(r, Err(EngineError::Overloaded { .. })))
        .count();
    assert!(
        overloaded > 0,
        "2000 claims into a mailbox of 1 must overflow"
    );
    assert_eq!(
        granted as usize + overloaded,
        results.len(),
        "nothing else went wrong"
    );
    let stats = h.engine.campaign_stats(&c).unwrap();
    assert_eq!(
        stats.tiers[0].claimed, granted,
        "refused claims took no stock"
    );
    assert_eq!(
        h.engine.campaign_coupons(&c).await.unwrap().len() as u64,
        granted
    );
}
