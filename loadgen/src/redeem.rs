//! The redemption phase, open loop at a target rate: tills scan granted coupons,
//! sometimes resend the same request number at once (the reply must be identical),
//! refund some sales in full (reversal), and now and then a coupon is presented at a
//! utility biller, where it must be refused.

use crate::client::{Api, Reply};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::redeem_plan::{Granted, RedeemJob};
use crate::report::{PhaseReport, ReversalReport};
use crate::tally::{Counted, Tally};
use reqwest::Method;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use yunquan_actors::api::{Redemption, Reversal};

/// A till resends a request whose fate it does not know this many times at most.
const POS_RETRIES_MAX: u32 = 5;
/// First wait before a till resends, in milliseconds (doubles each time).
const POS_BACKOFF_MS: u64 = 200;
/// The first sale leaves this long after the phase starts, in milliseconds.
const PHASE_LEAD_MS: u64 = 100;

/// A redemption the server acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckedRedemption {
    /// Coupon code.
    pub code: String,
    /// Discount the funder owes, in fen.
    pub discount_fen: u64,
}

/// Everything the tills were told.
#[derive(Debug, Default)]
pub struct RedemptionAcks {
    /// Acknowledged redemptions by redemption id.
    pub redeemed: HashMap<String, AckedRedemption>,
    /// Acknowledged reversals: redemption id -> discount returned, in fen.
    pub reversed: HashMap<String, u64>,
    /// Sales whose fate is unknown: (coupon code, the most discount it could carry in fen).
    pub unknown_redemptions: Vec<(String, u64)>,
    /// Reversals whose fate is unknown: redemption id -> discount at stake, in fen.
    pub unknown_reversals: HashMap<String, u64>,
}

/// What the redemption phase produced.
#[derive(Debug)]
pub struct RedeemOutcome {
    /// Counts and latency of `POST /v1/redemptions`.
    pub report: PhaseReport,
    /// Reversal counts.
    pub reversals: ReversalReport,
    /// Acknowledgements, for the audit.
    pub acks: RedemptionAcks,
    /// Replies that contradict the contract.
    pub anomalies: Vec<String>,
}

/// One sale, with everything its task needs.
#[derive(Debug, Clone)]
struct Sale {
    /// Coupon code.
    code: String,
    /// Merchant id (replies must name it).
    merchant: String,
    /// Terminal token of that merchant.
    token: String,
    /// Order in fen.
    order_fen: u64,
    /// The tier's fixed discount, in fen.
    discount_fen: u64,
    /// POS request number.
    request_no: String,
    /// Send twice at once.
    resend: bool,
    /// Reverse afterwards.
    refund: bool,
    /// Utility biller (merchant id, terminal token) to try first.
    probe: Option<(String, String)>,
    /// Intended send time.
    intended: Instant,
}

/// Shared by every sale.
struct Ctx {
    /// The server.
    api: Api,
    /// Counters of POST /v1/redemptions.
    tally: Arc<Tally>,
    /// Requests in flight at most.
    connections: Semaphore,
    /// Acknowledgements.
    acks: Mutex<RedemptionAcks>,
    /// Contract violations seen in replies.
    anomalies: Mutex<Vec<String>>,
    /// Refusals of sales that should have gone through, by reason.
    unexpected: Mutex<BTreeMap<String, u64>>,
    /// Reverse requests sent, acknowledged, failed.
    reversals: [AtomicU64; 3],
    /// Run tag for probe request numbers.
    tag: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Ctx {
    fn anomaly(&self, s: String) {
        lock(&self.anomalies).push(s);
    }

    async fn redeem(
        &self,
        token: &str,
        body: &serde_json::Value,
        intended: Instant,
    ) -> Option<(Reply<Redemption>, Counted)> {
        let _permit = self.connections.acquire().await.ok()?;
        let reply = self
            .api
            .send::<Redemption>(
                self.api
                    .request(Method::POST, "/v1/redemptions", token)
                    .json(body),
            )
            .await;
        let counted = self.tally.record(&reply, intended);
        Some((reply, counted))
    }

    /// Checks and records an acknowledged redemption.
    fn ack(&self, sale: &Sale, merchant: &str, r: &Redemption, counted: Counted) {
        let discount = sale.discount_fen.min(sale.order_fen);
        if r.redemption_id.is_empty()
            || r.code != sale.code
            || r.merchant != merchant
            || r.order_fen != sale.order_fen
            || r.discount_fen != discount
            || r.payable_fen != sale.order_fen - discount
        {
            self.anomaly(format!(
                "redemption of {} at {merchant} for {} fen (expected discount {discount}) was acknowledged as {r:?}",
                sale.code, sale.order_fen
            ));
        }
        let new = lock(&self.acks)
            .redeemed
            .insert(
                r.redemption_id.clone(),
                AckedRedemption {
                    code: r.code.clone(),
                    discount_fen: r.discount_fen,
                },
            )
            .is_none();
        match (new, counted) {
            (true, Counted::Replayed) => self.tally.regrade(Counted::Replayed, Counted::Granted),
            (false, Counted::Granted) => self.tally.regrade(Counted::Granted, Counted::Replayed),
            _ => {}
        }
    }

    /// Presents the coupon at a utility biller: the only right answer is `not_applicable`.
    async fn probe(&self, sale: &Sale, merchant: &str, token: &str) {
        let body = serde_json::json!({
            "code": sale.code, "request_no": format!("u{}-{}", self.tag, sale.code), "order_fen": sale.order_fen
        });
        let Some((reply, counted)) = self.redeem(token, &body, sale.intended).await else {
            return;
        };
        match reply {
            Reply::Done { body, .. } => {
                self.anomaly(format!(
                    "coupon {} was redeemed at utility biller {merchant}",
                    sale.code
                ));
                self.ack(sale, merchant, &body, counted);
            }
            Reply::Refused { reason } if reason == "not_applicable" => {}
            Reply::Refused { reason } => self.anomaly(format!(
                "coupon {} at utility biller {merchant}: refused {reason}, expected not_applicable",
                sale.code
            )),
            _ => {}
        }
    }

    /// One sale from first scan to (maybe) refund.
    async fn sale(&self, sale: Sale) {
        if let Some((m, t)) = &sale.probe {
            self.probe(&sale, m, t).await;
        }
        let body = serde_json::json!({"code": sale.code, "request_no": sale.request_no, "order_fen": sale.order_fen});
        let mut answer: Option<Result<Redemption, String>> = None;
        let mut unknown = false;
        let mut intended = sale.intended;
        if sale.resend {
            let (a, b) = tokio::join!(
                self.redeem(&sale.token, &body, intended),
                self.redeem(&sale.token, &body, intended)
            );
            let (Some(a), Some(b)) = (a, b) else { return };
            self.compare(&sale, &a.0, &b.0);
            for (reply, counted) in [a, b] {
                self.take(&sale, reply, counted, &mut answer, &mut unknown);
            }
        }
        let mut backoff = Duration::from_millis(POS_BACKOFF_MS);
        let mut attempt = 0;
        while answer.is_none() && attempt <= POS_RETRIES_MAX {
            if attempt > 0 || sale.resend {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                intended = Instant::now();
            }
            attempt += 1;
            let Some((reply, counted)) = self.redeem(&sale.token, &body, intended).await else {
                return;
            };
            if let Reply::Failed { label, .. } = &reply {
                if label.starts_with("http_4") {
                    self.take(&sale, reply, counted, &mut answer, &mut unknown);
                    break;
                }
            }
            if let Reply::Overloaded {
                retry_after: Some(d),
                ..
            } = &reply
            {
                backoff = backoff.max(*d);
            }
            self.take(&sale, reply, counted, &mut answer, &mut unknown);
        }
        match answer {
            Some(Ok(r)) if sale.refund => self.reverse(&sale, &r).await,
            Some(Ok(_)) => {}
            Some(Err(reason)) => *lock(&self.unexpected).entry(reason).or_insert(0) += 1,
            None if unknown => lock(&self.acks)
                .unknown_redemptions
                .push((sale.code.clone(), sale.discount_fen.min(sale.order_fen))),
            None => {}
        }
    }

    /// Folds one reply into the sale's answer.
    fn take(
        &self,
        sale: &Sale,
        reply: Reply<Redemption>,
        counted: Counted,
        answer: &mut Option<Result<Redemption, String>>,
        unknown: &mut bool,
    ) {
        match reply {
            Reply::Done { body, .. } => {
                self.ack(sale, &sale.merchant, &body, counted);
                if !matches!(answer, Some(Ok(_))) {
                    *answer = Some(Ok(body));
                }
            }
            Reply::Refused { reason } => {
                if answer.is_none() {
                    *answer = Some(Err(reason));
                }
            }
            Reply::Failed {
                unknown_outcome: true,
                ..
            } => *unknown = true,
            Reply::Failed { .. } | Reply::Overloaded { .. } => {}
        }
    }

    /// Two concurrent sends of one request number must get the same answer.
    fn compare(&self, sale: &Sale, a: &Reply<Redemption>, b: &Reply<Redemption>) {
        match (a, b) {
            (Reply::Done { body: x, .. }, Reply::Done { body: y, .. }) if x != y => {
                self.anomaly(format!(
                "request_no {} sent twice at once got two different redemptions: {x:?} vs {y:?}",
                sale.request_no
            ))
            }
            (Reply::Done { body, .. }, Reply::Refused { reason })
            | (Reply::Refused { reason }, Reply::Done { body, .. }) => self.anomaly(format!(
                "request_no {} sent twice at once was answered both {} and {reason}",
                sale.request_no, body.redemption_id
            )),
            _ => {}
        }
    }

    /// Refunds a sale in full.
    async fn reverse(&self, sale: &Sale, r: &Redemption) {
        let path = format!("/v1/redemptions/{}/reverse", r.redemption_id);
        let [sent, reversed, failed] = &self.reversals;
        let mut unknown = false;
        let mut backoff = Duration::from_millis(POS_BACKOFF_MS);
        for attempt in 0..=POS_RETRIES_MAX {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            let reply = {
                let Ok(_permit) = self.connections.acquire().await else {
                    return;
                };
                sent.fetch_add(1, Relaxed);
                self.api
                    .send::<Reversal>(self.api.request(Method::POST, &path, &sale.token))
                    .await
            };
            match reply {
                Reply::Done { body, .. } => {
                    reversed.fetch_add(1, Relaxed);
                    if body.redemption_id != r.redemption_id
                        || body.discount_returned_fen != r.discount_fen
                    {
                        self.anomaly(format!(
                            "reversal of {} (discount {}) was acknowledged as {body:?}",
                            r.redemption_id, r.discount_fen
                        ));
                    }
                    lock(&self.acks)
                        .reversed
                        .insert(r.redemption_id.clone(), body.discount_returned_fen);
                    return;
                }
                // An earlier attempt whose reply we lost did the work.
                Reply::Refused { reason } if reason == "already_reversed" && unknown => {
                    reversed.fetch_add(1, Relaxed);
                    lock(&self.acks)
                        .reversed
                        .insert(r.redemption_id.clone(), r.discount_fen);
                    return;
                }
                Reply::Refused { reason } => {
                    failed.fetch_add(1, Relaxed);
                    self.anomaly(format!(
                        "reversal of {} was refused: {reason}",
                        r.redemption_id
                    ));
                    return;
                }
                Reply::Failed { label, detail, .. } if label.starts_with("http_4") => {
                    failed.fetch_add(1, Relaxed);
                    self.anomaly(format!("reversal of {} failed: {detail}", r.redemption_id));
                    return;
                }
                Reply::Failed {
                    unknown_outcome, ..
                } => {
                    failed.fetch_add(1, Relaxed);
                    unknown |= unknown_outcome;
                }
                Reply::Overloaded { retry_after, .. } => {
                    failed.fetch_add(1, Relaxed);
                    backoff = backoff.max(retry_after.unwrap_or_default());
                }
            }
        }
        if unknown {
            lock(&self.acks)
                .unknown_reversals
                .insert(r.redemption_id.clone(), r.discount_fen);
        }
    }
}

/// Runs the redemption phase at `rate` sales per second. `tokens` maps merchant
/// indices to their terminal's token.
pub async fn run(
    api: &Api,
    plan: &Plan,
    granted: &[Granted],
    jobs: &[RedeemJob],
    tokens: &HashMap<usize, String>,
    rate: f64,
    connections: usize,
) -> RedeemOutcome {
    let tally = Arc::new(Tally::new());
    let ctx = Arc::new(Ctx {
        api: api.clone(),
        tally: tally.clone(),
        connections: Semaphore::new(connections.max(1)),
        acks: Mutex::new(RedemptionAcks::default()),
        anomalies: Mutex::new(Vec::new()),
        unexpected: Mutex::new(BTreeMap::new()),
        reversals: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
        tag: plan.tag.clone(),
    });
    let rate = if rate.is_finite() && rate > 0.0 {
        rate
    } else {
        1.0
    };
    let t0 = Instant::now() + Duration::from_millis(PHASE_LEAD_MS);
    let progress = Progress::start("redemptions", tally.clone());
    let mut sales = JoinSet::new();
    for (i, job) in jobs.iter().enumerate() {
        let (Some(g), Some(m), Some(token)) = (
            granted.get(job.coupon),
            plan.merchants.get(job.merchant),
            tokens.get(&job.merchant),
        ) else {
            continue;
        };
        let probe = job
            .utility_probe
            .and_then(|u| Some((plan.merchants.get(u)?.id.clone(), tokens.get(&u)?.clone())));
        let sale = Sale {
            code: g.code.clone(),
            merchant: m.id.clone(),
            token: token.clone(),
            order_fen: job.order_fen,
            discount_fen: plan
                .tiers
                .get(g.tier as usize)
                .map_or(0, |t| t.discount_fen),
            request_no: job.request_no.clone(),
            resend: job.resend,
            refund: job.refund,
            probe,
            intended: t0 + Duration::from_secs_f64(i as f64 / rate),
        };
        if sale.intended > Instant::now() {
            tokio::time::sleep_until(sale.intended.into()).await;
        }
        let ctx = ctx.clone();
        sales.spawn(async move { ctx.sale(sale).await });
        while sales.try_join_next().is_some() {}
    }
    while sales.join_next().await.is_some() {}
    let wall = Instant::now().saturating_duration_since(t0);
    progress.finish().await;
    let mut anomalies = std::mem::take(&mut *lock(&ctx.anomalies));
    let unexpected = std::mem::take(&mut *lock(&ctx.unexpected));
    if !unexpected.is_empty() {
        anomalies.push(format!(
            "sales of valid coupons at eligible merchants above the threshold were refused: {unexpected:?}"
        ));
    }
    let [sent, reversed, failed] = &ctx.reversals;
    let reversals = ReversalReport {
        attempted: sent.load(Relaxed),
        reversed: reversed.load(Relaxed),
        errors: failed.load(Relaxed),
    };
    let acks = std::mem::take(&mut *lock(&ctx.acks));
    RedeemOutcome {
        report: tally.report(wall),
        reversals,
        acks,
        anomalies,
    }
}
