//! The engine over a failing or damaged store: a refused write is refused to every caller of
//! its batch and leaves nothing behind (no coupon, no stock or budget taken, no settlement
//! line), readiness follows the store, and a data directory with a damaged record makes the
//! engine refuse to start instead of serving wrong state.
// A test fails by panicking; unwrap's panic names the line.
#![allow(clippy::unwrap_used)]

mod common;

use common::{config, ms, Harness};
use futures::future::join_all;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use yunquan_actors::api::{
    CouponStatus, EngineError, RedeemRequest, ResidentInput, ReverseRequest, Settlement,
};
use yunquan_actors::domain::Category;
use yunquan_actors::{Engine, StartError};
use yunquan_storage::faults::RefusedAppend;
use yunquan_storage::{EmbeddedStore, FaultyStore, StorageError, Store};

const NOW: &str = "2025-06-01T10:00:00+08:00";
/// Stock of the test campaign's tier.
const STOCK: u64 = 10;
/// Discount of the test campaign's tier, in fen.
const DISCOUNT_FEN: u64 = 2000;
/// How long a test waits for the engine's thread to let go of a data directory.
const RELEASE_DEADLINE: Duration = Duration::from_secs(30);

fn tier() -> serde_json::Value {
    json!({"kind": "fixed", "discount_fen": DISCOUNT_FEN, "min_spend_fen": 10_000, "stock": STOCK})
}

/// An engine with `shards` shards on a fresh directory, over a fault-injecting store.
fn start_faulty(shards: u32) -> (Harness, FaultyStore) {
    let dir = tempfile::tempdir().unwrap();
    let inner = EmbeddedStore::open(dir.path()).unwrap();
    let faulty = FaultyStore::new(Arc::new(inner));
    let clock = Arc::new(AtomicI64::new(ms(NOW)));
    let c = Arc::clone(&clock);
    let engine = Engine::start_on(
        Arc::new(faulty.clone()),
        config(dir.path(), shards),
        Arc::new(move || c.load(Ordering::SeqCst)),
    )
    .unwrap();
    (Harness { engine, clock, dir }, faulty)
}

fn unavailable<T: std::fmt::Debug>(what: &str, r: Result<T, EngineError>) {
    match r {
        Err(EngineError::Unavailable(cause)) => {
            assert!(cause.contains("FaultyStore"), "{what}: cause {cause}")
        }
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

fn redeem_req(code: &str, request_no: &str) -> RedeemRequest {
    RedeemRequest {
        merchant: "m1".into(),
        terminal: "m1-t1".into(),
        code: code.into(),
        request_no: request_no.into(),
        order_fen: 15_000,
    }
}

fn today(h: &Harness) -> Settlement {
    h.engine
        .settlement("m1", chrono::NaiveDate::from_ymd_opt(2025, 6, 1).unwrap())
}

/// (claimed, remaining, redeemed, discount_fen) of the campaign's only tier.
fn figures(h: &Harness, campaign: &str) -> (u64, u64, u64, u64) {
    let s = h.engine.campaign_stats(campaign).unwrap();
    let t = &s.tiers[0];
    assert_eq!(t.claimed + t.remaining, t.stock, "stock is conserved");
    (t.claimed, t.remaining, t.redeemed, s.discount_fen)
}

#[tokio::test]
async fn while_appends_fail_nothing_is_granted_or_taken_and_service_resumes_after() {
    let (h, faulty) = start_faulty(2);
    h.merchant("m1", Category::Catering, "guiyang").await;
    let c = h.campaign(tier(), json!({})).await;
    let accounts = h.residents(6, "r").await;
    let (held, _) = h.engine.claim(&accounts[0], &c, 0, None).await.unwrap();
    assert!(h.engine.ready());
    let before = figures(&h, &c);
    assert_eq!(before, (1, STOCK - 1, 0, 0));

    faulty.fail_appends(true);
    for (i, a) in accounts.iter().enumerate().skip(1) {
        unavailable(
            "claim",
            h.engine.claim(a, &c, 0, Some(format!("key-{i}"))).await,
        );
    }
    unavailable(
        "redemption",
        h.engine.redeem(redeem_req(&held.code, "R1")).await,
    );
    assert!(
        !h.engine.ready(),
        "not ready while the store refuses writes"
    );
    assert_eq!(figures(&h, &c), before, "no stock or budget taken");
    for a in &accounts[1..] {
        assert!(
            h.engine.coupons(a).await.unwrap().is_empty(),
            "{a}: no coupon"
        );
    }
    let all = h.engine.campaign_coupons(&c).await.unwrap();
    assert_eq!(all.len(), 1, "only the coupon claimed before the fault");
    let still = h.engine.coupon(&held.code).await.unwrap();
    assert_eq!(
        (still.status, still.times_redeemed),
        (CouponStatus::Available, 0)
    );
    let settlement = today(&h);
    assert_eq!((settlement.redemptions, settlement.discount_fen), (0, 0));

    // The disk is back, but readiness returns only with a write that succeeded.
    faulty.fail_appends(false);
    assert!(!h.engine.ready());
    for (i, a) in accounts.iter().enumerate().skip(1) {
        let (coupon, replay) = h
            .engine
            .claim(a, &c, 0, Some(format!("key-{i}")))
            .await
            .unwrap();
        assert!(!replay, "a refused claim's key is not remembered");
        assert_eq!(coupon.campaign, c);
    }
    let (red, replay) = h.engine.redeem(redeem_req(&held.code, "R1")).await.unwrap();
    assert!(
        !replay,
        "a refused redemption's request number is not remembered"
    );
    assert_eq!(red.discount_fen, DISCOUNT_FEN);
    assert!(h.engine.ready(), "every shard wrote successfully since");
    assert_eq!(
        figures(&h, &c),
        (6, STOCK - 6, 1, DISCOUNT_FEN),
        "exactly the successful writes count"
    );
    assert_eq!(h.engine.campaign_coupons(&c).await.unwrap().len(), 6);
    let refused = faulty.refused_appends();
    assert!(
        refused.len() >= 6,
        "every refused command hit the store: {refused:?}"
    );
    h.engine.shutdown().await;
}

/// Several commands of different kinds queue behind a write held at the store, form one
/// batch, and that batch's write fails: every one of them is refused and none leaves a trace.
#[tokio::test]
async fn a_failed_write_refuses_every_command_of_its_batch() {
    // One shard, so every command below meets in the same mailbox.
    let (h, faulty) = start_faulty(1);
    h.merchant("m1", Category::Catering, "guiyang").await;
    let c = h.campaign(tier(), json!({})).await;
    let accounts = h.residents(8, "r").await;
    let (to_redeem, _) = h.engine.claim(&accounts[0], &c, 0, None).await.unwrap();
    let (redeemed, _) = h.engine.claim(&accounts[1], &c, 0, None).await.unwrap();
    let (first_red, _) = h
        .engine
        .redeem(redeem_req(&redeemed.code, "R0"))
        .await
        .unwrap();
    let before = figures(&h, &c);
    assert_eq!(before, (2, STOCK - 2, 1, DISCOUNT_FEN));
    let settlement_before = today(&h);

    // The first claim's write is held at the store while the rest pile up behind it.
    faulty.hold_appends();
    faulty.fail_next_appends(2);
    let engine = h.engine.clone();
    let (c2, first_account) = (c.clone(), accounts[2].clone());
    let first = tokio::spawn(async move { engine.claim(&first_account, &c2, 0, None).await });
    let deadline = Instant::now() + RELEASE_DEADLINE;
    while faulty.appends_held() == 0 {
        assert!(
            Instant::now() < deadline,
            "first write never reached the store"
        );
        tokio::task::yield_now().await;
    }
    let claimers = &accounts[3..8];
    let mut claims = pin!(join_all(
        claimers.iter().map(|a| h.engine.claim(a, &c, 0, None))
    ));
    let mut redeem = pin!(h.engine.redeem(redeem_req(&to_redeem.code, "R1")));
    let mut reverse = pin!(h.engine.reverse(ReverseRequest {
        merchant: "m1".into(),
        redemption_id: first_red.redemption_id.clone(),
    }));
    let newcomer = ResidentInput {
        account: "newcomer".into(),
        identity_number: "52010119900101123X".into(),
        region: "guiyang".into(),
    };
    let mut register = pin!(h.engine.register_residents(vec![newcomer.clone()]));
    // One poll each puts every command in the shard's mailbox.
    assert!(futures::poll!(claims.as_mut()).is_pending());
    assert!(futures::poll!(redeem.as_mut()).is_pending());
    assert!(futures::poll!(reverse.as_mut()).is_pending());
    assert!(futures::poll!(register.as_mut()).is_pending());
    faulty.release_appends();

    unavailable("held claim", first.await.unwrap());
    for r in claims.await {
        unavailable("batched claim", r);
    }
    unavailable("batched redemption", redeem.await);
    unavailable("batched reversal", reverse.await);
    let registered = register.await.unwrap();
    unavailable(
        "batched registration",
        registered.into_iter().next().unwrap(),
    );
    let batches: Vec<usize> = faulty.refused_appends().iter().map(|r| r.events).collect();
    assert_eq!(
        batches,
        vec![1, claimers.len() + 3],
        "the held claim alone, then one batch of every queued command"
    );
    assert!(!h.engine.ready());

    assert_eq!(figures(&h, &c), before, "no stock or budget moved");
    assert_eq!(today(&h), settlement_before, "no settlement line");
    assert_eq!(h.engine.campaign_coupons(&c).await.unwrap().len(), 2);
    for a in &accounts[2..] {
        assert!(
            h.engine.coupons(a).await.unwrap().is_empty(),
            "{a}: no coupon"
        );
    }
    assert!(!h.engine.resident_exists("newcomer"));
    let untouched = h.engine.coupon(&to_redeem.code).await.unwrap();
    assert_eq!(untouched.times_redeemed, 0);
    let standing = h.engine.coupon(&redeemed.code).await.unwrap();
    assert_eq!(
        standing.redemption_id.as_deref(),
        Some(first_red.redemption_id.as_str()),
        "the refused reversal left the redemption standing"
    );

    // The same commands succeed once the store does.
    for a in &accounts[2..] {
        h.engine.claim(a, &c, 0, None).await.unwrap();
    }
    h.engine
        .redeem(redeem_req(&to_redeem.code, "R1"))
        .await
        .unwrap();
    let rev = h
        .engine
        .reverse(ReverseRequest {
            merchant: "m1".into(),
            redemption_id: first_red.redemption_id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(rev.discount_returned_fen, DISCOUNT_FEN);
    for r in h.engine.register_residents(vec![newcomer]).await.unwrap() {
        r.unwrap();
    }
    assert!(h.engine.ready());
    assert_eq!(figures(&h, &c), (8, STOCK - 8, 1, DISCOUNT_FEN));
    assert_eq!(
        faulty.refused_appends(),
        vec![
            RefusedAppend {
                journal: 0,
                first_seq: faulty.refused_appends()[0].first_seq,
                events: 1
            },
            RefusedAppend {
                journal: 0,
                first_seq: faulty.refused_appends()[0].first_seq,
                events: claimers.len() + 3
            },
        ],
        "both refusals were at the same journal position: the first left nothing behind"
    );
    h.engine.shutdown().await;
}

/// A write that reaches the journal but reports failure (an fsync error after the data landed,
/// a lost reply) must not hand the batch's stock back: the coupon exists, so giving its unit
/// back would sell one more than the stock. Whatever the caller was told, the figures must
/// match the journal and the coupons must never outnumber the stock.
#[tokio::test]
async fn a_write_that_lands_but_reports_failure_never_oversells() {
    let (h, faulty) = start_faulty(1);
    h.merchant("m1", Category::Catering, "guiyang").await;
    let c = h
        .campaign(
            json!({"kind": "fixed", "discount_fen": DISCOUNT_FEN, "min_spend_fen": 10_000, "stock": 2}),
            json!({}),
        )
        .await;
    let accounts = h.residents(4, "r").await;
    let (held, _) = h.engine.claim(&accounts[0], &c, 0, None).await.unwrap();

    faulty.fail_appends_after_writing(true);
    let landed = h.engine.claim(&accounts[1], &c, 0, Some("k1".into())).await;
    let redeemed = h.engine.redeem(redeem_req(&held.code, "R1")).await;
    faulty.fail_appends_after_writing(false);

    // Both writes are in the journal, whatever their callers were told.
    let coupon = h.engine.coupon(&held.code).await.unwrap();
    assert_eq!(
        coupon.times_redeemed, 1,
        "the redemption is in the journal (told {redeemed:?})"
    );
    let wallet = h.engine.coupons(&accounts[1]).await.unwrap();
    assert_eq!(
        wallet.len(),
        1,
        "the grant is in the journal (told {landed:?})"
    );
    // The retry replays the grant that landed instead of taking another unit.
    let (again, _) = h
        .engine
        .claim(&accounts[1], &c, 0, Some("k1".into()))
        .await
        .unwrap();
    assert_eq!(again.code, wallet[0].code);
    for a in &accounts[2..] {
        let r = h.engine.claim(a, &c, 0, None).await;
        assert!(
            matches!(
                r,
                Err(EngineError::Refused(yunquan_actors::api::Refusal::SoldOut))
            ),
            "stock 2 is gone, {a} got {r:?}"
        );
    }
    let coupons = h.engine.campaign_coupons(&c).await.unwrap();
    assert_eq!(coupons.len(), 2, "never more coupons than stock");
    assert_eq!(
        figures(&h, &c),
        (2, 0, 1, DISCOUNT_FEN),
        "figures match the journal"
    );
    h.engine.shutdown().await;
}

/// Registers one resident whose account name is `account` (distinctive, so its bytes can be
/// found in the journal file).
async fn register_one(h: &Harness, account: &str, identity_number: &str) {
    let input = ResidentInput {
        account: account.into(),
        identity_number: identity_number.into(),
        region: "guiyang".into(),
    };
    for r in h.engine.register_residents(vec![input]).await.unwrap() {
        r.unwrap();
    }
}

/// Waits until nothing holds the data directory's lock any more (the engine's thread closes
/// the store shortly after the engine is dropped).
fn wait_until_released(dir: &Path) {
    let deadline = Instant::now() + RELEASE_DEADLINE;
    loop {
        match EmbeddedStore::open(dir) {
            Ok(store) => return drop(store),
            Err(StorageError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::yield_now()
            }
            Err(err) => panic!("data directory not released: {err}"),
        }
    }
}

/// Flips one bit in every copy of `needle` in the journal files of `dir` whose names end in
/// `ext` (`log`: records, `redb`: snapshots); returns the files hit.
fn damage(dir: &Path, needle: &str, ext: &str) -> Vec<PathBuf> {
    let mut hit = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("journal-") || !name.ends_with(&format!(".{ext}")) {
            continue;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let at: Vec<usize> = bytes
            .windows(needle.len())
            .enumerate()
            .filter(|(_, w)| *w == needle.as_bytes())
            .map(|(i, _)| i)
            .collect();
        if at.is_empty() {
            continue;
        }
        for i in at {
            bytes[i + needle.len() / 2] ^= 0x01;
        }
        std::fs::write(&path, bytes).unwrap();
        hit.push(path);
    }
    assert!(!hit.is_empty(), "{needle} is in no journal file");
    hit
}

/// The journal id in a file name like `journal-00001.log`.
fn journal_of(file: &Path) -> u32 {
    let name = file.file_name().unwrap().to_string_lossy();
    name.trim_start_matches("journal-")
        .trim_end_matches(".log")
        .trim_end_matches(".redb")
        .parse()
        .unwrap()
}

fn start_error(dir: &Path) -> StartError {
    match Engine::start(config(dir, 2), Arc::new(|| ms(NOW))) {
        Ok(_) => panic!("the engine started on a damaged data directory"),
        Err(err) => err,
    }
}

/// The message names the damaged file and its journal, and the error is a storage Corrupt.
fn assert_refused(err: &StartError, file: &Path, what: &str) {
    let message = err.to_string();
    assert!(
        matches!(err, StartError::Storage(StorageError::Corrupt { .. })),
        "expected a corrupt-storage refusal, got {err:?}"
    );
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(
        message.contains(name.as_ref()),
        "must name {name}: {message}"
    );
    let journal = format!("journal {}", journal_of(file));
    assert!(message.contains(&journal), "must name {journal}: {message}");
    assert!(message.contains(what), "must say {what:?}: {message}");
}

/// A record in the middle of a shard journal is damaged after a crash (no snapshot covers
/// it): the engine refuses to start and names the journal, rather than replay wrong state.
#[tokio::test]
async fn a_damaged_record_in_the_middle_of_a_journal_stops_the_start() {
    let h = Harness::start(NOW);
    let c = h.campaign(tier(), json!({})).await;
    let early = h.residents(3, "early").await;
    register_one(&h, "damaged-target-account", "520101199001019999").await;
    // Persons land on shards by a keyed hash that differs per data directory: with 3 later
    // residents and 6 claims, about one run in 500 put none of them after the target on its
    // shard. 20 later residents and 10 claims (the stock) make that about one in a billion.
    let late = h.residents(20, "late").await;
    for a in early.iter().chain(&late).take(STOCK as usize) {
        h.engine.claim(a, &c, 0, None).await.unwrap();
    }
    // A crash: no orderly shutdown, so no snapshot is taken.
    let dir = h.dir;
    drop(h.engine);
    wait_until_released(dir.path());
    let (journal, seq) = record_holding(dir.path(), "damaged-target-account");
    let files = damage(dir.path(), "damaged-target-account", "log");
    assert_eq!(files.len(), 1, "one shard holds the account");
    assert_eq!(journal_of(&files[0]), journal);
    let err = start_error(dir.path());
    assert_refused(&err, &files[0], "checksum mismatch");
    let record = format!("record {seq}:");
    assert!(
        err.to_string().contains(&record),
        "must name {record}: {err}"
    );
    eprintln!("refused start: {err}");
}

/// (journal, seq) of the one shard record whose payload contains `needle`; asserts that
/// records follow it in its journal, so it is in the middle.
fn record_holding(dir: &Path, needle: &str) -> (u32, u64) {
    let store = EmbeddedStore::open(dir).unwrap();
    let mut found = Vec::new();
    for journal in store.journals().unwrap() {
        let records = store.read(journal, 1, usize::MAX).unwrap();
        let last = records.last().map_or(0, |r| r.seq);
        for r in records {
            if r.payload
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
            {
                assert!(
                    r.seq < last,
                    "record {} is the last of journal {journal}",
                    r.seq
                );
                found.push((journal, r.seq));
            }
        }
    }
    assert_eq!(found.len(), 1, "{needle} in records {found:?}");
    found[0]
}

/// The same for the control journal (campaigns and merchants).
#[tokio::test]
async fn a_damaged_campaign_record_stops_the_start() {
    let h = Harness::start(NOW);
    h.campaign(tier(), json!({"name": "damaged-campaign-name"}))
        .await;
    h.campaign(tier(), json!({})).await;
    let dir = h.dir;
    drop(h.engine);
    wait_until_released(dir.path());
    let files = damage(dir.path(), "damaged-campaign-name", "log");
    assert_eq!(journal_of(&files[0]), u32::MAX, "the control journal");
    let err = start_error(dir.path());
    assert_refused(&err, &files[0], "checksum mismatch");
    eprintln!("refused start: {err}");
}

/// After an orderly shutdown every shard starts from its snapshot: a damaged snapshot is
/// refused by name as well.
#[tokio::test]
async fn a_damaged_snapshot_stops_the_start() {
    let h = Harness::start(NOW);
    register_one(&h, "snapshotted-account", "520101199001018888").await;
    h.engine.shutdown().await;
    let dir = h.dir;
    drop(h.engine);
    wait_until_released(dir.path());
    let files = damage(dir.path(), "snapshotted-account", "redb");
    let err = start_error(dir.path());
    assert_refused(&err, &files[0], "snapshot");
    eprintln!("refused start: {err}");
}
