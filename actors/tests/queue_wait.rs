//! A command that waited in a shard's mailbox longer than `queue_wait_ms_max` is answered
//! `Overloaded` without being executed: it takes no stock, leaves no coupon and no
//! idempotency record, so its retry executes. Registrations are never turned away.
// A test fails by panicking; unwrap's panic names the line.
#![allow(clippy::unwrap_used)]

mod common;

use common::{config, ms, Harness};
use serde_json::json;
use std::pin::pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use yunquan_actors::api::{EngineError, ResidentInput};
use yunquan_actors::Engine;
use yunquan_storage::{EmbeddedStore, FaultyStore};

const NOW: &str = "2025-06-01T10:00:00+08:00";
/// Stock of the test tier.
const STOCK: u64 = 5;
/// The shedding bound under test.
const QUEUE_WAIT_MS_MAX: u64 = 2;
/// How long the test waits for anything the engine does.
const DEADLINE: Duration = Duration::from_secs(30);

fn start(queue_wait_ms_max: u64) -> (Harness, FaultyStore) {
    let dir = tempfile::tempdir().unwrap();
    let faulty = FaultyStore::new(Arc::new(EmbeddedStore::open(dir.path()).unwrap()));
    let clock = Arc::new(AtomicI64::new(ms(NOW)));
    let c = Arc::clone(&clock);
    let mut cfg = config(dir.path(), 1);
    cfg.queue_wait_ms_max = queue_wait_ms_max;
    let engine = Engine::start_on(
        Arc::new(faulty.clone()),
        cfg,
        Arc::new(move || c.load(Ordering::SeqCst)),
    )
    .unwrap();
    (Harness { engine, clock, dir }, faulty)
}

/// Holds the store's writes and blocks the shard inside one (a registration, which is never
/// shed); returns the registration's task once the shard is stuck in its write.
async fn block_shard_in_a_write(
    h: &Harness,
    faulty: &FaultyStore,
    account: &str,
) -> tokio::task::JoinHandle<Result<Vec<Result<(), EngineError>>, EngineError>> {
    faulty.hold_appends();
    let engine = h.engine.clone();
    let resident = ResidentInput {
        account: account.into(),
        identity_number: "52010119900101123X".into(),
        region: "guiyang".into(),
    };
    let blocker = tokio::spawn(async move { engine.register_residents(vec![resident]).await });
    let deadline = Instant::now() + DEADLINE;
    while faulty.appends_held() == 0 {
        assert!(
            Instant::now() < deadline,
            "the write never reached the store"
        );
        tokio::task::yield_now().await;
    }
    blocker
}

/// Spins until `since` is more than `ms` milliseconds ago.
async fn wait_past(since: Instant, ms: u64) {
    while since.elapsed() <= Duration::from_millis(ms) {
        tokio::task::yield_now().await;
    }
}

fn remaining(h: &Harness, campaign: &str) -> u64 {
    h.engine.campaign_stats(campaign).unwrap().tiers[0].remaining
}

fn tier() -> serde_json::Value {
    json!({"kind": "fixed", "discount_fen": 1000, "min_spend_fen": 5000, "stock": STOCK})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_that_waited_too_long_is_turned_away_unexecuted_and_its_retry_executes() {
    let (h, faulty) = start(QUEUE_WAIT_MS_MAX);
    let campaign = h.campaign(tier(), json!({})).await;
    let accounts = h.residents(1, "q").await;

    let blocker = block_shard_in_a_write(&h, &faulty, "blocker").await;
    // One poll puts the claim in the mailbox, behind the shard's write.
    let sent = Instant::now();
    let mut late = pin!(h
        .engine
        .claim(&accounts[0], &campaign, 0, Some("k-late".into())));
    assert!(futures::poll!(late.as_mut()).is_pending());
    wait_past(sent, QUEUE_WAIT_MS_MAX * 3).await;
    faulty.release_appends();

    assert!(blocker.await.unwrap().unwrap()[0].is_ok());
    match late.await {
        Err(EngineError::Overloaded { retry_after_ms }) => assert!(retry_after_ms > 0),
        other => panic!("a claim that waited past the bound must be shed, got {other:?}"),
    }
    // Nothing of the shed claim exists: no unit taken, no coupon.
    assert_eq!(remaining(&h, &campaign), STOCK);
    assert!(h.engine.coupons(&accounts[0]).await.unwrap().is_empty());

    // Its retry with the same key executes (a shed request was never an answer).
    let (coupon, replay) = h
        .engine
        .claim(&accounts[0], &campaign, 0, Some("k-late".into()))
        .await
        .unwrap();
    assert!(!replay, "the retry must execute, not replay a shed answer");
    assert_eq!(remaining(&h, &campaign), STOCK - 1);
    let again = h
        .engine
        .claim(&accounts[0], &campaign, 0, Some("k-late".into()))
        .await
        .unwrap();
    assert_eq!((again.0.code, again.1), (coupon.code, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_never_shed_and_zero_turns_shedding_off() {
    for queue_wait_ms_max in [QUEUE_WAIT_MS_MAX, 0] {
        let (h, faulty) = start(queue_wait_ms_max);
        let campaign = h.campaign(tier(), json!({})).await;
        let accounts = h.residents(1, "r").await;

        let blocker = block_shard_in_a_write(&h, &faulty, "blocker").await;
        let sent = Instant::now();
        let mut register = pin!(h.engine.register_residents(vec![ResidentInput {
            account: "late-registrant".into(),
            identity_number: "52010119900101124X".into(),
            region: "guiyang".into(),
        }]));
        let mut claim = pin!(h.engine.claim(&accounts[0], &campaign, 0, None));
        assert!(futures::poll!(register.as_mut()).is_pending());
        assert!(futures::poll!(claim.as_mut()).is_pending());
        wait_past(sent, QUEUE_WAIT_MS_MAX * 3).await;
        faulty.release_appends();

        assert!(blocker.await.unwrap().unwrap()[0].is_ok());
        let registered = register.await.unwrap();
        assert!(
            registered[0].is_ok(),
            "registration refused: {registered:?}"
        );
        let claim = claim.await;
        if queue_wait_ms_max == 0 {
            assert!(
                claim.is_ok(),
                "with shedding off the late claim executes: {claim:?}"
            );
        } else {
            assert!(
                matches!(claim, Err(EngineError::Overloaded { .. })),
                "{claim:?}"
            );
        }
    }
}
