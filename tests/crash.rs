//! kill -9 under load, many times on one data directory: every acknowledged claim,
//! redemption and reversal survives each restart, nothing is duplicated, stock and budget
//! figures agree exactly with the coupons that exist, and the offline audit of the
//! directory passes at the end.
//!
//! Each cycle imports its own residents, then runs claims (some followed by a redemption,
//! some of those by a reversal) and kills the server after a number of acknowledgements
//! drawn from a seeded RNG. Every fourth cycle also kills a freshly started server right
//! after it prints its listening line, and one while it is still recovering (a drawn number
//! of microseconds after it was started). The server snapshots every few hundred events, so
//! kills land during snapshots too.
//!
//! `YUNQUAN_CRASH_CYCLES` sets the number of cycles (default 3 in the suite;
//! `scripts/crash-loop.sh` runs 100), `YUNQUAN_CRASH_SEED` the seed (printed, so a failing
//! run can be repeated exactly).
// A test fails by panicking; unwrap's panic names the line.
#![allow(clippy::unwrap_used)]

mod common;

use common::{live_campaign, residents_ndjson, Api, Server, BIN};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;

/// Kill cycles when `YUNQUAN_CRASH_CYCLES` is not set.
const CYCLES_DEFAULT: usize = 3;
/// Seed when `YUNQUAN_CRASH_SEED` is not set.
const SEED_DEFAULT: u64 = 0x5eed_2025_0601;
/// Residents claiming per cycle.
const CLAIMERS_PER_CYCLE: usize = 600;
/// Most acknowledgements (claims, redemptions, reversals) before a kill; a cycle draws its
/// kill point from 1..=this.
const ACKS_BEFORE_KILL_MAX: usize = 900;
/// Every this-many cycles (starting with the second) a server is also killed right after
/// its listening line, before it served anything.
const STARTUP_KILL_EVERY_CYCLES: usize = 4;
/// Longest a server started on the same cycles runs before it is killed while it is still
/// recovering (opening journals, loading snapshots, replaying), in microseconds; the kill
/// point is drawn from 1..=this.
const RECOVERY_KILL_US_MAX: usize = 40_000;
/// Claimers who redeem their coupon, per mille.
const REDEEM_PER_MILLE: u64 = 700;
/// Redeemers who then reverse the redemption, per mille.
const REVERSE_PER_MILLE: u64 = 300;
/// The server snapshots a shard after this many events, so that kills land during
/// snapshots as well as between them.
const SNAPSHOT_EVERY_EVENTS: &str = "200";
/// Discount of the campaign's only tier (fixed amount), in fen.
const DISCOUNT_FEN: u64 = 1000;
/// Order amount of every redemption, in fen (above the tier's threshold).
const ORDER_FEN: u64 = 6000;
/// Acknowledged claims whose retry is checked to replay after each restart.
const REPLAYS_CHECKED_MAX: usize = 20;

/// What the server acknowledged, across all cycles.
#[derive(Default, Clone)]
struct Acked {
    /// account -> (idempotency key, coupon code)
    claims: HashMap<String, (String, String)>,
    /// coupon code -> (redemption id, POS request number, discount in fen)
    redemptions: HashMap<String, (String, String, u64)>,
    /// Redemption ids whose reversal was sent; it may have been applied without an answer.
    reversals_sent: HashSet<String>,
    /// Redemption ids whose reversal was acknowledged.
    reversals: HashSet<String>,
}

/// Figures of a run, printed at the end (scripts/crash-loop.sh shows them).
#[derive(Default)]
struct Tally {
    /// Load phases ended by kill -9.
    load_kills: usize,
    /// Servers killed right after their listening line.
    startup_kills: usize,
    /// Servers killed before their listening line, most of them while recovering.
    recovery_kills: usize,
    /// Restarts whose state was verified.
    restarts_verified: usize,
    /// Requests sent (claims, redemptions, reversals), answered or not.
    requests: usize,
}

/// splitmix64: a small, seedable generator, so a failing seed can be replayed exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 1..=max.
    fn one_to(&mut self, max: usize) -> usize {
        1 + (self.next() % max as u64) as usize
    }

    fn per_mille(&mut self, p: u64) -> bool {
        self.next() % 1000 < p
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a valid number")),
        Err(_) => default,
    }
}

/// Starts a server on `dir` and kill -9s it a drawn number of microseconds later, before it
/// has printed its listening line: during start-up, while it opens and replays the journals.
/// The wait spins on the clock (it is the kill point, not a wait for anything).
fn kill_while_recovering(dir: &std::path::Path, rng: &mut Rng) {
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--data"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0", "--shards", "2"])
        .args(serve_args())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn yunquan serve");
    let kill_at = std::time::Duration::from_micros(rng.one_to(RECOVERY_KILL_US_MAX) as u64);
    let spawned = Instant::now();
    while spawned.elapsed() < kill_at {
        std::hint::spin_loop();
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn serve_args() -> [&'static str; 2] {
    ["--snapshot-every-events", SNAPSHOT_EVERY_EVENTS]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_state_survives_kill_minus_nine() {
    let cycles: usize = env_or("YUNQUAN_CRASH_CYCLES", CYCLES_DEFAULT);
    let seed: u64 = env_or("YUNQUAN_CRASH_SEED", SEED_DEFAULT);
    eprintln!("crash test: {cycles} cycles, seed {seed}");
    let started = Instant::now();
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(dir.path(), &serve_args());
    let http = reqwest::Client::new();
    let mgr = Api::new(&server.base, Some(server.token("manager", "ops", None)));
    let stock = (cycles * CLAIMERS_PER_CYCLE) as u64;
    let tiers = json!([{"kind": "fixed", "discount_fen": DISCOUNT_FEN, "min_spend_fen": 5000, "stock": stock}]);
    let (s, camp) = mgr.post("/v1/campaigns", live_campaign(tiers)).await;
    assert_eq!(s, 201);
    let id = camp["id"].as_str().unwrap().to_owned();
    assert_eq!(
        mgr.post(&format!("/v1/campaigns/{id}/publish"), json!(null))
            .await
            .0,
        200
    );
    let m = json!({"id": "m1", "name": "Canteen", "category": "catering", "region": "guiyang", "terminals": ["t1"]});
    assert_eq!(
        mgr.post_raw(
            "/v1/merchants/import",
            m.to_string(),
            "application/x-ndjson"
        )
        .await
        .0,
        200
    );
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut tally = Tally::default();

    for cycle in 0..cycles {
        if cycle % STARTUP_KILL_EVERY_CYCLES == 1 {
            server.kill9();
            kill_while_recovering(dir.path(), &mut rng);
            tally.recovery_kills += 1;
            Server::spawn_listening(dir.path(), &serve_args()).kill9();
            tally.startup_kills += 1;
            server = Server::start_with(dir.path(), &serve_args());
            verify(&server, &id, stock, &acked).await;
            tally.restarts_verified += 1;
        }
        let mgr = Api {
            http: http.clone(),
            ..Api::new(&server.base, Some(server.token("manager", "ops", None)))
        };
        let prefix = format!("k{cycle}-");
        let (s, out) = mgr
            .post_raw(
                "/v1/residents/import",
                residents_ndjson(&prefix, CLAIMERS_PER_CYCLE),
                "application/x-ndjson",
            )
            .await;
        assert_eq!(
            (s, out["accepted"].as_u64()),
            (200, Some(CLAIMERS_PER_CYCLE as u64)),
            "{out}"
        );
        let accounts: Vec<String> = (0..CLAIMERS_PER_CYCLE)
            .map(|i| format!("{prefix}{i}"))
            .collect();
        let (s, minted) = mgr
            .post(
                "/v1/tokens",
                json!({"role": "resident", "subjects": accounts}),
            )
            .await;
        assert_eq!(s, 200, "{minted}");
        let till = Api {
            http: http.clone(),
            ..Api::new(
                &server.base,
                Some(server.token("terminal", "t1", Some("m1"))),
            )
        };
        let kill_after = rng.one_to(ACKS_BEFORE_KILL_MAX);
        let acks = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(Notify::new());
        let mut tasks = Vec::new();
        for (account, token) in accounts
            .into_iter()
            .zip(minted["tokens"].as_array().unwrap())
        {
            let plan = Plan {
                redeem: rng.per_mille(REDEEM_PER_MILLE),
                reverse: rng.per_mille(REVERSE_PER_MILLE),
            };
            let resident = Api {
                http: http.clone(),
                base: server.base.clone(),
                token: Some(token.as_str().unwrap().to_owned()),
            };
            let run = Run {
                resident,
                till: till.clone(),
                campaign: id.clone(),
                acked: Arc::clone(&acked),
                acks: Arc::clone(&acks),
                kill_after,
                stop: Arc::clone(&stop),
            };
            let (finished, stop) = (Arc::clone(&finished), Arc::clone(&stop));
            tasks.push(tokio::spawn(async move {
                let sent = run.resident_flow(account, plan).await;
                if finished.fetch_add(1, Ordering::SeqCst) + 1 == CLAIMERS_PER_CYCLE {
                    stop.notify_one();
                }
                sent
            }));
        }
        stop.notified().await;
        server.kill9();
        tally.load_kills += 1;
        for t in tasks {
            tally.requests += t.await.unwrap();
        }
        eprintln!(
            "cycle {cycle}: killed after {} acks (drawn {kill_after})",
            acks.load(Ordering::SeqCst)
        );
        server = Server::start_with(dir.path(), &serve_args());
        verify(&server, &id, stock, &acked).await;
        tally.restarts_verified += 1;
    }
    drop(server);
    let out = std::process::Command::new(BIN)
        .args(["audit", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let a = acked.lock().unwrap().clone();
    // One line for scripts/crash-loop.sh to show.
    eprintln!(
        "crash summary: seed {seed} cycles {cycles} load-kills {} recovery-kills {} startup-kills {} \
         restarts-verified {} requests {} acked-claims {} acked-redemptions {} acked-reversals {} \
         audit OK in {:.1} s",
        tally.load_kills,
        tally.recovery_kills,
        tally.startup_kills,
        tally.restarts_verified,
        tally.requests,
        a.claims.len(),
        a.redemptions.len(),
        a.reversals.len(),
        started.elapsed().as_secs_f64()
    );
}

/// What one resident does in a cycle after claiming.
#[derive(Clone, Copy)]
struct Plan {
    /// Redeem the coupon at the till.
    redeem: bool,
    /// Then reverse the redemption.
    reverse: bool,
}

/// Shared handles of one resident's task.
struct Run {
    /// The resident's client.
    resident: Api,
    /// The till's client.
    till: Api,
    /// The campaign id.
    campaign: String,
    /// Acknowledgements of the whole run.
    acked: Arc<Mutex<Acked>>,
    /// Acknowledgements of this cycle.
    acks: Arc<AtomicUsize>,
    /// Kill once this many acknowledgements arrived.
    kill_after: usize,
    /// Told when it is time to kill.
    stop: Arc<Notify>,
}

impl Run {
    fn ack(&self) {
        if self.acks.fetch_add(1, Ordering::SeqCst) + 1 == self.kill_after {
            self.stop.notify_one();
        }
    }

    /// POSTs `body` to `path` as `api`; the JSON answer if the status is `want`.
    async fn post(
        api: &Api,
        path: &str,
        body: serde_json::Value,
        key: Option<&str>,
        want: u16,
    ) -> Option<serde_json::Value> {
        let mut req = api
            .http
            .post(format!("{}{path}", api.base))
            .bearer_auth(api.token.as_deref().unwrap())
            .json(&body);
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        let resp = req.send().await.ok()?;
        if resp.status().as_u16() != want {
            return None;
        }
        resp.json().await.ok()
    }

    /// Claim, then maybe redeem, then maybe reverse; stops at the first unanswered request.
    /// Returns the number of requests sent.
    async fn resident_flow(&self, account: String, plan: Plan) -> usize {
        let key = format!("key-{account}");
        let path = format!("/v1/campaigns/{}/claims", self.campaign);
        let Some(claim) =
            Self::post(&self.resident, &path, json!({"tier": 0}), Some(&key), 201).await
        else {
            return 1;
        };
        let code = claim["code"].as_str().unwrap().to_owned();
        self.acked
            .lock()
            .unwrap()
            .claims
            .insert(account.clone(), (key, code.clone()));
        self.ack();
        if !plan.redeem {
            return 1;
        }
        let request_no = format!("R-{account}");
        let body = json!({"code": code, "request_no": request_no, "order_fen": ORDER_FEN});
        let Some(red) = Self::post(&self.till, "/v1/redemptions", body, None, 201).await else {
            return 2;
        };
        let rid = red["redemption_id"].as_str().unwrap().to_owned();
        let discount = red["discount_fen"].as_u64().unwrap();
        self.acked
            .lock()
            .unwrap()
            .redemptions
            .insert(code, (rid.clone(), request_no, discount));
        self.ack();
        if !plan.reverse {
            return 2;
        }
        let path = format!("/v1/redemptions/{rid}/reverse");
        self.acked
            .lock()
            .unwrap()
            .reversals_sent
            .insert(rid.clone());
        if Self::post(&self.till, &path, json!(null), None, 200)
            .await
            .is_some()
        {
            self.acked.lock().unwrap().reversals.insert(rid);
            self.ack();
        }
        3
    }
}

async fn verify(server: &Server, id: &str, stock: u64, acked: &Arc<Mutex<Acked>>) {
    let mgr = Api::new(&server.base, Some(server.token("manager", "ops", None)));
    let a = acked.lock().unwrap().clone();
    let (s, export) = mgr.get_text(&format!("/v1/campaigns/{id}/coupons")).await;
    assert_eq!(s, 200);
    let coupons: HashMap<String, serde_json::Value> = export
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|c| (c["code"].as_str().unwrap().to_owned(), c))
        .collect();
    assert_eq!(coupons.len(), export.lines().count(), "no duplicate codes");
    for (account, (_, code)) in &a.claims {
        assert!(
            coupons.contains_key(code),
            "acknowledged coupon of {account} lost"
        );
    }
    let mut acked_standing_fen = 0;
    for (code, (rid, _, discount)) in &a.redemptions {
        let c = &coupons[code];
        if a.reversals_sent.contains(rid) && !a.reversals.contains(rid) {
            // In flight at the kill: either outcome is allowed, but never both at once.
            assert!(c["times_redeemed"] == 0 || c["redemption_id"].as_str() == Some(rid));
        } else if a.reversals.contains(rid) {
            assert_ne!(
                c["redemption_id"].as_str(),
                Some(rid.as_str()),
                "acknowledged reversal of {rid} lost: {c}"
            );
            assert_eq!(c["times_redeemed"], 0, "{c}");
        } else {
            assert_eq!(c["times_redeemed"], 1, "acknowledged redemption lost: {c}");
            assert_eq!(c["redemption_id"].as_str(), Some(rid.as_str()));
            acked_standing_fen += discount;
        }
    }
    let standing: Vec<&serde_json::Value> = coupons
        .values()
        .filter(|c| c["times_redeemed"] == 1)
        .collect();
    let standing_fen: u64 = standing
        .iter()
        .map(|c| c["face_value_fen"].as_u64().unwrap())
        .sum();
    let (_, stats) = mgr.get(&format!("/v1/campaigns/{id}/stats")).await;
    let tier = &stats["tiers"][0];
    // Stock: exactly the coupons that exist are claimed, the rest is still for sale.
    assert_eq!(
        tier["claimed"].as_u64(),
        Some(coupons.len() as u64),
        "{stats}"
    );
    assert_eq!(
        tier["remaining"].as_u64(),
        Some(stock - coupons.len() as u64),
        "{stats}"
    );
    // Budget: the committed discount is exactly that of the standing redemptions, which
    // include every acknowledged one not reversed (others were in flight at the kill).
    assert_eq!(tier["redeemed"].as_u64(), Some(standing.len() as u64));
    assert_eq!(
        stats["discount_fen"].as_u64(),
        Some(standing_fen),
        "{stats}"
    );
    assert!(
        standing_fen >= acked_standing_fen,
        "acknowledged discounts {acked_standing_fen} fen, standing {standing_fen} fen"
    );
    // A retried claim replays the acknowledged coupon instead of granting another, and a
    // retried redemption replays the acknowledged one.
    for (account, (key, code)) in a.claims.iter().take(REPLAYS_CHECKED_MAX) {
        let res = Api::new(&server.base, Some(server.token("resident", account, None)));
        let (s, body) = res
            .post_key(
                &format!("/v1/campaigns/{id}/claims"),
                json!({"tier": 0}),
                key,
            )
            .await;
        assert_eq!((s, body["code"].as_str()), (200, Some(code.as_str())));
    }
    let till = Api::new(
        &server.base,
        Some(server.token("terminal", "t1", Some("m1"))),
    );
    for (code, (rid, request_no, _)) in a
        .redemptions
        .iter()
        .filter(|(_, (rid, _, _))| !a.reversals_sent.contains(rid))
        .take(REPLAYS_CHECKED_MAX)
    {
        let body = json!({"code": code, "request_no": request_no, "order_fen": ORDER_FEN});
        let (s, red) = till.post("/v1/redemptions", body).await;
        assert_eq!(
            (s, red["redemption_id"].as_str()),
            (200, Some(rid.as_str())),
            "{red}"
        );
    }
}
