//! The claim phase, open loop: every first attempt goes out at its planned instant
//! whether or not earlier ones have been answered, losing clients retry the way
//! real apps do, and latency is measured from the instant a request was *meant* to
//! leave (coordinated-omission corrected), so a stalled server cannot hide its stall
//! by slowing the generator down.

use crate::client::{Api, Reply};
use crate::plan::{Claim, Plan};
use crate::progress::Progress;
use crate::redeem_plan::Granted;
use crate::report::PhaseReport;
use crate::rng::{rng_for, Stream};
use crate::tally::{Counted, Tally};
use rand::Rng;
use reqwest::Method;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use yunquan_actors::api::CouponView;

/// A client gives up on a tier after this many `sold_out` answers in a row [E].
pub const SOLD_OUT_GIVE_UP_AFTER: u32 = 3;
/// Marks "this tier never answered sold_out" in the first-sold-out table.
const NEVER: u64 = u64::MAX;

/// What the claim phase produced.
#[derive(Debug)]
pub struct ClaimOutcome {
    /// Counts and latency.
    pub report: PhaseReport,
    /// Acknowledged coupons.
    pub granted: Vec<Granted>,
    /// Per tier: whether any client saw `sold_out`.
    pub sold_out_seen: Vec<bool>,
    /// Per tier: seconds from round start to the first `sold_out`.
    pub sellout_s: Vec<Option<f64>>,
    /// Replies that contradict the contract (wrong tier granted, ...).
    pub anomalies: Vec<String>,
}

/// Shared by every claim chain.
struct Ctx {
    /// The server.
    api: Api,
    /// `/v1/campaigns/{id}/claims`.
    path: String,
    /// Campaign id (to check replies).
    campaign: String,
    /// Resident token of each participant slot.
    tokens: Arc<Vec<String>>,
    /// Requests in flight at most.
    connections: Semaphore,
    /// Counters.
    tally: Arc<Tally>,
    /// Acknowledged coupons.
    granted: Mutex<Vec<Granted>>,
    /// Per tier: microseconds from round start to the first sold_out, or [`NEVER`].
    first_sold_out_us: Vec<AtomicU64>,
    /// Contract violations seen in replies.
    anomalies: Mutex<Vec<String>>,
    /// Round start.
    t0: Instant,
    /// Retry wait range, in seconds.
    retry_interval_s: [f64; 2],
    /// Retries per chain at most.
    retries_max: u32,
    /// Seed of retry waits.
    seed: u64,
    /// Prefix of every idempotency key: unique per run, so reruns never replay old claims.
    key_prefix: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Ctx {
    fn accept(&self, claim: Claim, coupon: CouponView) {
        if coupon.tier != claim.tier || coupon.campaign != self.campaign || coupon.round != 0 {
            lock(&self.anomalies).push(format!(
                "claim of tier {} in campaign {} round 0 was answered with coupon {} of tier {} in campaign {} round {}",
                claim.tier, self.campaign, coupon.code, coupon.tier, coupon.campaign, coupon.round
            ));
        }
        lock(&self.granted).push(Granted {
            code: coupon.code,
            slot: claim.slot,
            tier: coupon.tier,
        });
    }
}

/// One client's attempts at one tier: the first at its planned instant, retries
/// after a losing answer.
async fn chain(ctx: Arc<Ctx>, claim: Claim) {
    let Some(token) = ctx.tokens.get(claim.slot as usize) else {
        return;
    };
    let mut rng = rng_for(
        ctx.seed,
        Stream::Retry,
        (u64::from(claim.slot) << 8) | u64::from(claim.tier),
    );
    let mut intended = ctx.t0 + Duration::from_micros(claim.at_us);
    let body = serde_json::json!({ "tier": claim.tier });
    // A new tap (after a refusal) gets a new key; a resend of a request whose fate is
    // unknown keeps its key, so the server replays rather than grants twice.
    let mut tap = 0u32;
    let mut sold_out_streak = 0u32;
    let mut retries = 0u32;
    loop {
        tokio::time::sleep_until(intended.into()).await;
        let key = format!("{}-{}-{}-{tap}", ctx.key_prefix, claim.slot, claim.tier);
        let reply = {
            let Ok(_permit) = ctx.connections.acquire().await else {
                return;
            };
            let req = ctx
                .api
                .request(Method::POST, &ctx.path, token)
                .header("Idempotency-Key", key)
                .json(&body);
            ctx.api.send::<CouponView>(req).await
        };
        let counted = ctx.tally.record(&reply, intended);
        let mut wait_at_least = Duration::ZERO;
        match reply {
            Reply::Done { body, .. } => {
                if counted == Counted::Replayed {
                    // Our first acknowledgement of this coupon, even if the server
                    // had executed an earlier, unanswered attempt.
                    ctx.tally.regrade(Counted::Replayed, Counted::Granted);
                }
                ctx.accept(claim, body);
                return;
            }
            Reply::Refused { reason } if reason == "sold_out" => {
                let since = Instant::now().saturating_duration_since(ctx.t0).as_micros();
                if let Some(first) = ctx.first_sold_out_us.get(claim.tier as usize) {
                    first.fetch_min(u64::try_from(since).unwrap_or(NEVER - 1), Relaxed);
                }
                sold_out_streak += 1;
                tap += 1;
                if sold_out_streak >= SOLD_OUT_GIVE_UP_AFTER {
                    return;
                }
            }
            Reply::Refused { .. } => return,
            Reply::Overloaded { retry_after, .. } => {
                wait_at_least = retry_after.unwrap_or_default()
            }
            // A 4xx will not change by asking again.
            Reply::Failed { label, .. } if label.starts_with("http_4") => return,
            Reply::Failed { .. } => {}
        }
        if claim.bot || retries >= ctx.retries_max {
            return;
        }
        retries += 1;
        let [lo, hi] = ctx.retry_interval_s;
        let wait = Duration::from_secs_f64(rng.random_range(lo..=hi)).max(wait_at_least);
        intended = Instant::now() + wait;
    }
}

/// Opens the connection pool before the round: the generator's connections stand
/// for long-lived client connections, so the burst at the opening should measure the
/// server, not TCP handshakes. Best effort, and never past the round's start.
async fn warm_up(api: &Api, connections: usize, t0: Instant) {
    let probes = (0..connections.max(1)).map(|_| async {
        if let Ok(r) = api.unauthenticated(Method::GET, "/healthz").send().await {
            // Reading the body hands the connection back to the pool.
            let _ = r.bytes().await;
        }
    });
    let all = futures::future::join_all(probes);
    let _ = tokio::time::timeout_at(t0.into(), all).await;
}

/// Runs the claim phase. `t0` is the instant the round opens; `tokens` holds one
/// resident token per participant slot.
pub async fn run(
    api: &Api,
    plan: &Plan,
    campaign: &str,
    tokens: Arc<Vec<String>>,
    t0: Instant,
    connections: usize,
    key_prefix: String,
) -> ClaimOutcome {
    let tally = Arc::new(Tally::new());
    let ctx = Arc::new(Ctx {
        api: api.clone(),
        path: format!("/v1/campaigns/{campaign}/claims"),
        campaign: campaign.to_owned(),
        tokens,
        connections: Semaphore::new(connections.max(1)),
        tally: tally.clone(),
        granted: Mutex::new(Vec::new()),
        first_sold_out_us: plan.tiers.iter().map(|_| AtomicU64::new(NEVER)).collect(),
        anomalies: Mutex::new(Vec::new()),
        t0,
        retry_interval_s: plan.retry_interval_s,
        retries_max: plan.retries_max,
        seed: plan.seed,
        key_prefix,
    });
    warm_up(api, connections, t0).await;
    tokio::time::sleep_until(t0.into()).await;
    let progress = Progress::start("claims", tally.clone());
    let mut chains = JoinSet::new();
    for claim in &plan.schedule {
        let at = t0 + Duration::from_micros(claim.at_us);
        if at > Instant::now() {
            tokio::time::sleep_until(at.into()).await;
        }
        chains.spawn(chain(ctx.clone(), *claim));
        // Reap finished chains as we go so the set only holds live ones.
        while chains.try_join_next().is_some() {}
    }
    while chains.join_next().await.is_some() {}
    let wall = Instant::now().saturating_duration_since(t0);
    progress.finish().await;
    let sellout_s: Vec<Option<f64>> = ctx
        .first_sold_out_us
        .iter()
        .map(|a| match a.load(Relaxed) {
            NEVER => None,
            us => Some(us as f64 / 1e6),
        })
        .collect();
    let granted = std::mem::take(&mut *lock(&ctx.granted));
    let anomalies = std::mem::take(&mut *lock(&ctx.anomalies));
    ClaimOutcome {
        report: tally.report(wall),
        granted,
        sold_out_seen: sellout_s.iter().map(Option::is_some).collect(),
        sellout_s,
        anomalies,
    }
}
