//! In-process engine benchmark: durable claims per second through the real engine
//! (shard actors, group commit, embedded store with fsync), against a baseline run
//! in the same process: a bare actix round trip to an actor that does nothing.
//!
//! `cargo bench -p yunquan-actors --bench claims` (env: BENCH_CLAIMS, BENCH_IN_FLIGHT, BENCH_SHARDS).
//! Reports ratios; asserts nothing about time.

use actix::prelude::*;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;
use yunquan_actors::api::{CampaignAction, ResidentInput};
use yunquan_actors::{Engine, EngineConfig};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Nop;
impl Actor for Nop {
    type Context = Context<Self>;
}
struct Ping(oneshot::Sender<u64>);
impl Message for Ping {
    type Result = ();
}
impl Handler<Ping> for Nop {
    type Result = ();
    fn handle(&mut self, Ping(tx): Ping, _: &mut Context<Self>) {
        let _ = tx.send(1);
    }
}

/// Runs `n` operations with at most `in_flight` outstanding; returns ops/s.
async fn drive<F, Fut>(n: usize, in_flight: usize, op: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    let mut pending = FuturesUnordered::new();
    let mut ok = 0usize;
    for i in 0..n {
        if pending.len() >= in_flight {
            ok += usize::from(pending.next().await.unwrap_or(false));
        }
        pending.push(op(i));
    }
    while let Some(r) = pending.next().await {
        ok += usize::from(r);
    }
    assert_eq!(ok, n, "every operation must succeed");
    n as f64 / started.elapsed().as_secs_f64()
}

fn baseline(n: usize, in_flight: usize, shards: usize) -> f64 {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let sys = System::new();
        sys.block_on(async move {
            let arbiters: Vec<Arbiter> = (0..shards).map(|_| Arbiter::new()).collect();
            let addrs: Vec<Addr<Nop>> = arbiters
                .iter()
                .map(|a| {
                    Nop::start_in_arbiter(&a.handle(), |ctx| {
                        ctx.set_mailbox_capacity(1 << 20);
                        Nop
                    })
                })
                .collect();
            let _ = tx.send((addrs, arbiters));
            // Keep the system (and so the arbiters) alive for the rest of the process.
            std::future::pending::<()>().await;
        });
    });
    let (addrs, _arbiters) = rx.recv().expect("actors");
    let addrs = Arc::new(addrs);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(drive(n, in_flight, |i| {
        let addrs = Arc::clone(&addrs);
        async move {
            let (tx, rx) = oneshot::channel();
            // `send` waits for mailbox room as the engine's callers do not; with the
            // mailbox sized far above the in-flight count it never has to.
            addrs[i % addrs.len()].send(Ping(tx)).await.is_ok() && rx.await.is_ok()
        }
    }))
}

fn engine_run(n: usize, in_flight: usize, shards: u32) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = EngineConfig {
        data_dir: dir.path().to_path_buf(),
        shards,
        mailbox_commands_max: 1 << 20,
        batch_events_max: 8192,
        snapshot_every_events: u64::MAX,
        idempotency_keys_max: 1 << 20,
        queue_wait_ms_max: 0,
    };
    let engine =
        Engine::start(config, Arc::new(|| chrono::Utc::now().timestamp_millis())).expect("engine");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let started = Instant::now();
        for chunk in (0..n).collect::<Vec<_>>().chunks(5_000) {
            let batch = chunk
                .iter()
                .map(|i| ResidentInput { account: format!("a{i}"), identity_number: format!("ID{i:010}"), region: "guiyang".into() })
                .collect();
            engine.register_residents(batch).await.expect("register");
        }
        let registered_per_s = n as f64 / started.elapsed().as_secs_f64();
        let now = chrono::Utc::now().naive_utc();
        let spec = json!({
            "name": "bench", "funder": "bench", "timezone": "UTC", "budget_fen": (n as u64) * 1000,
            "rounds": [{"start": (now - chrono::Duration::minutes(1)).format("%Y-%m-%dT%H:%M:%S").to_string(),
                        "end": (now + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%S").to_string()}],
            "tiers": [{"kind": "fixed", "discount_fen": 1000, "min_spend_fen": 5000, "stock": n}],
            "eligibility": {"categories": ["catering"]}, "validity": {"kind": "same_day"}
        });
        let id = engine.create_campaign(serde_json::from_value(spec).expect("spec")).await.expect("campaign").id;
        engine.campaign_action(&id, CampaignAction::Publish).await.expect("publish");
        let claims_per_s = drive(n, in_flight, |i| {
            let (engine, id) = (engine.clone(), id.clone());
            async move { engine.claim(&format!("a{i}"), &id, 0, None).await.is_ok() }
        })
        .await;
        let stats = engine.campaign_stats(&id).expect("stats");
        assert_eq!(stats.tiers[0].claimed, n as u64, "sold out to exactly the stock");
        engine.shutdown().await;
        (registered_per_s, claims_per_s)
    })
}

fn main() {
    let n = env("BENCH_CLAIMS", 300_000);
    let in_flight = env("BENCH_IN_FLIGHT", 4096);
    let shards = env(
        "BENCH_SHARDS",
        std::thread::available_parallelism().map_or(2, |p| p.get()),
    );
    println!("in-process engine benchmark: {n} claims, {in_flight} in flight, {shards} shards");
    let base = baseline(n, in_flight, shards);
    let (reg, claims) = engine_run(n, in_flight, shards as u32);
    let base2 = baseline(n, in_flight, shards);
    let base_med = (base + base2) / 2.0;
    println!("baseline actix round trip (no work)   {base_med:>12.0} ops/s   (runs: {base:.0}, {base2:.0})");
    println!(
        "durable claims (group commit, fsync)  {claims:>12.0} claims/s   ratio to baseline {:.2}",
        claims / base_med
    );
    println!("resident registration (durable)       {reg:>12.0} residents/s");
}
