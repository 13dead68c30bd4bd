//! How long a restart takes at full scale: the engine recovering a data directory of
//! `PERSONS` registered residents (default 14.6M, the reference program) from its
//! snapshots alone, and from the snapshots plus a journal tail of `TAIL` claims written
//! after them (default 2,000,000: with two shards and the default
//! `--snapshot-every-events` of 1,000,000, about the most a restart ever replays).
//!
//! `cargo run --release -p yunquan-actors --example recovery_cost`
//! (env: PERSONS, TAIL, SHARDS, RECOVERY_DIR to keep the data directory somewhere).
//!
//! Each step runs in a child process of its own, so every recovery starts in a fresh
//! process, as a restart does, and the tail step can end without the clean shutdown's
//! snapshot (as after kill -9). The baseline, in the same run, is one sequential read of
//! every file of the data directory (the page cache holds them after the build, as it
//! does the recoveries' reads). Reports times and ratios; asserts nothing about time.

use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::json;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;
use yunquan_actors::api::{CampaignAction, ResidentInput};
use yunquan_actors::{Engine, EngineConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Residents per registration call.
const REGISTER_BATCH: usize = 10_000;
/// Registration calls in flight.
const REGISTER_IN_FLIGHT: usize = 4;
/// Claims in flight in the tail step.
const CLAIMS_IN_FLIGHT: usize = 4_096;
/// Shortest replay time, in seconds, worth turning into a rate.
const REPLAY_S_MIN: f64 = 0.1;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(dir: &Path, shards: u32) -> EngineConfig {
    EngineConfig {
        data_dir: dir.to_path_buf(),
        shards,
        mailbox_commands_max: 1 << 20,
        batch_events_max: 8_192,
        // No automatic snapshot: the build's only snapshot is the clean shutdown's, and
        // the tail stays a tail.
        snapshot_every_events: u64::MAX,
        idempotency_keys_max: 1 << 16,
        queue_wait_ms_max: 0,
    }
}

fn clock() -> yunquan_actors::engine::Clock {
    Arc::new(|| chrono::Utc::now().timestamp_millis())
}

fn start(dir: &Path, shards: u32) -> (Engine, f64) {
    let started = Instant::now();
    let engine = Engine::start(config(dir, shards), clock()).expect("engine starts");
    (engine, started.elapsed().as_secs_f64())
}

async fn build(engine: &Engine, persons: usize) {
    let mut pending = FuturesUnordered::new();
    for first in (0..persons).step_by(REGISTER_BATCH) {
        if pending.len() >= REGISTER_IN_FLIGHT {
            pending.next().await;
        }
        let batch: Vec<ResidentInput> = (first..(first + REGISTER_BATCH).min(persons))
            .map(|i| ResidentInput {
                account: format!("a{i}"),
                identity_number: format!("ID{i:010}"),
                region: "guiyang".into(),
            })
            .collect();
        let engine = engine.clone();
        pending.push(async move {
            let outcomes = engine.register_residents(batch).await.expect("register");
            assert!(
                outcomes.iter().all(Result::is_ok),
                "every resident registers"
            );
        });
    }
    while pending.next().await.is_some() {}
}

async fn tail(engine: &Engine, claims: usize) {
    let now = chrono::Utc::now().naive_utc();
    let spec = json!({
        "name": "recovery", "funder": "recovery", "timezone": "UTC",
        "budget_fen": (claims as u64) * 1000,
        "rounds": [{"start": (now - chrono::Duration::minutes(1)).format("%Y-%m-%dT%H:%M:%S").to_string(),
                    "end": (now + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%S").to_string()}],
        "tiers": [{"kind": "fixed", "discount_fen": 1000, "min_spend_fen": 5000, "stock": claims}],
        "eligibility": {"categories": ["catering"]}, "validity": {"kind": "same_day"}
    });
    let id = engine
        .create_campaign(serde_json::from_value(spec).expect("spec"))
        .await
        .expect("campaign")
        .id;
    engine
        .campaign_action(&id, CampaignAction::Publish)
        .await
        .expect("publish");
    let mut pending = FuturesUnordered::new();
    for i in 0..claims {
        if pending.len() >= CLAIMS_IN_FLIGHT {
            assert!(
                pending.next().await.unwrap_or(false),
                "every claim is granted"
            );
        }
        let (engine, id) = (engine.clone(), id.clone());
        pending.push(async move { engine.claim(&format!("a{i}"), &id, 0, None).await.is_ok() });
    }
    while let Some(ok) = pending.next().await {
        assert!(ok, "every claim is granted");
    }
}

/// Runs one step in a child process and returns what it printed.
fn child(step: &str, dir: &Path) -> String {
    let out = Command::new(std::env::current_exe().expect("own path"))
        .env("RECOVERY_STEP", step)
        .env("RECOVERY_DIR", dir)
        .output()
        .expect("child runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "step {step} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.trim().to_owned()
}

/// Seconds of one sequential read of every file under `dir`, and the bytes read.
fn read_all(dir: &Path) -> (f64, u64) {
    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                files(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    files(dir, &mut paths);
    let started = Instant::now();
    let (mut buf, mut bytes) = (vec![0u8; 1 << 20], 0u64);
    for path in paths {
        let mut f = std::fs::File::open(path).expect("open");
        loop {
            let n = f.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            bytes += n as u64;
        }
    }
    (started.elapsed().as_secs_f64(), bytes)
}

/// Times one recovery in a fresh process against the baseline read; prints and returns it.
fn recovery(label: &str, dir: &Path) -> f64 {
    let seconds: f64 = child("open", dir).parse().expect("seconds");
    let (base, bytes) = read_all(dir);
    println!(
        "{label} {seconds:>7.2} s   baseline read of {:.0} MiB {base:.2} s   ratio {:.1}",
        bytes as f64 / 1_048_576.0,
        seconds / base
    );
    seconds
}

fn run_step(step: &str, dir: &Path) {
    let shards = env("SHARDS", 2) as u32;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (engine, open_s) = start(dir, shards);
    match step {
        "build" => {
            let started = Instant::now();
            rt.block_on(build(&engine, env("PERSONS", 14_600_000)));
            let registered_s = started.elapsed().as_secs_f64();
            let started = Instant::now();
            rt.block_on(engine.shutdown());
            println!("{registered_s:.2} {:.2}", started.elapsed().as_secs_f64());
        }
        "tail" => {
            let started = Instant::now();
            rt.block_on(tail(&engine, env("TAIL", 2_000_000)));
            println!("{:.2}", started.elapsed().as_secs_f64());
        }
        "open" => println!("{open_s:.3}"),
        other => panic!("unknown step {other:?}: build, tail or open"),
    }
    // No clean shutdown after "open" and "tail": nothing more is written, as after kill -9.
    std::process::exit(0);
}

fn main() {
    let dir_kept = std::env::var_os("RECOVERY_DIR").map(PathBuf::from);
    if let (Ok(step), Some(dir)) = (std::env::var("RECOVERY_STEP"), &dir_kept) {
        run_step(&step, dir);
        return;
    }
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = dir_kept.unwrap_or_else(|| temp.path().to_path_buf());
    let (persons, claims) = (env("PERSONS", 14_600_000), env("TAIL", 2_000_000));
    println!(
        "recovery at scale: {persons} residents, then a tail of {claims} claims, data in {}",
        dir.display()
    );
    let built = child("build", &dir);
    println!("build: registered and snapshotted in {built} s (registration, shutdown)");
    let snap_only = recovery("recovery from the snapshots:          ", &dir);
    let tail_s = child("tail", &dir);
    println!("tail: {claims} claims in {tail_s} s, left unsnapshotted");
    let with_tail = recovery("recovery from the snapshots plus tail:", &dir);
    // The difference of two timed recoveries: below the timings' own spread it means nothing.
    let replay_s = with_tail - snap_only;
    if replay_s > REPLAY_S_MIN {
        println!(
            "replaying the tail cost {replay_s:.2} s ({:.0} claims/s)",
            claims as f64 / replay_s
        );
    } else {
        println!("replaying the tail cost {replay_s:.2} s: too little to time at this scale");
    }
}
