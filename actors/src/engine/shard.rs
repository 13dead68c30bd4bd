//! The shard actor: single writer of its persons' wallets, with group commit.
//!
//! Commands are applied to memory as they arrive; their replies wait in `replies`.
//! The first command of a batch queues a `Flush` to self, which actix runs only after
//! the mailbox is drained, so a batch is everything that arrived meanwhile. The flush
//! appends the batch's events in one durable write and only then sends the replies.
//! If the write fails, the state is reloaded from the journal, counters taken for
//! the batch are given back unless the batch reached the journal after all, and
//! every reply of the batch says "unavailable" (a retry with the same key replays).
//! A command that waited in the mailbox longer than the configured bound is answered
//! "overloaded" without being executed: executing it late would only delay everything
//! queued behind it, and a retry of a command never executed simply executes.

use super::events::{encode, encode_into};
use super::recovery::recover_shard;
use super::registry::{Merchant, Registry};
use super::report::ShardReport;
use super::state::{Coupon, Effect, Pending, ShardState};
use super::Clock;
use crate::api::{CouponView, EngineError, Redemption, Refusal, Reversal};
use crate::domain::{CouponCode, PersonKey};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;
use yunquan_storage::Store;

/// Where a command's answer goes.
pub type Tx<T> = oneshot::Sender<Result<T, EngineError>>;
type Reply = Box<dyn FnOnce(Option<EngineError>) + Send>;

/// What a shard can be asked.
#[derive(Debug)]
pub enum ShardCmd {
    /// Register accounts: (account, person, region).
    Register(
        Vec<(String, PersonKey, String)>,
        Tx<Vec<Result<(), Refusal>>>,
    ),
    /// Grab a coupon.
    Claim {
        /// Person routing key.
        route: u64,
        /// Claiming account.
        account: String,
        /// Campaign id.
        campaign: String,
        /// Tier index.
        tier: u32,
        /// Idempotency key.
        key: Option<String>,
        /// Answer: the coupon, and whether it is a replay.
        reply: Tx<(CouponView, bool)>,
    },
    /// A person's coupons.
    Coupons(u64, Tx<Vec<CouponView>>),
    /// One coupon.
    Coupon(CouponCode, Tx<CouponView>),
    /// Price without committing.
    Quote(CouponCode, Arc<Merchant>, u64, Tx<Redemption>),
    /// Redeem.
    Redeem {
        /// The coupon.
        code: CouponCode,
        /// The merchant.
        merchant: Arc<Merchant>,
        /// The terminal.
        terminal: String,
        /// POS request number.
        request_no: String,
        /// Order in fen.
        order_fen: u64,
        /// Answer: the redemption, and whether it is a replay.
        reply: Tx<(Redemption, bool)>,
    },
    /// Reverse redemption n of a coupon for a merchant.
    Reverse(CouponCode, u32, String, Tx<Reversal>),
    /// Every coupon of a campaign held by this shard.
    CampaignCoupons(String, Tx<Vec<CouponView>>),
    /// Flush and snapshot now (shutdown).
    Snapshot(Tx<()>),
}

/// The envelope actix carries.
#[derive(Debug)]
pub struct Envelope {
    /// The command.
    pub cmd: ShardCmd,
    /// When it was sent, for the mailbox-wait metric and shedding.
    pub sent: Instant,
}

impl Envelope {
    /// A command sent now.
    pub fn new(cmd: ShardCmd) -> Envelope {
        Envelope {
            cmd,
            sent: Instant::now(),
        }
    }
}

impl ShardCmd {
    /// Answers the command with `e` without executing it, or hands it back if it is never
    /// turned away: the shutdown snapshot, and registrations, which arrive as import
    /// chunks of thousands whose wait behind one another is expected (an import is a
    /// manager's bulk job with its own time limit, bounded by the mailbox's size).
    fn turn_away(self, e: EngineError) -> Option<ShardCmd> {
        match self {
            cmd @ (ShardCmd::Register(..) | ShardCmd::Snapshot(_)) => return Some(cmd),
            ShardCmd::Claim { reply, .. } => drop(reply.send(Err(e))),
            ShardCmd::Coupons(_, tx) | ShardCmd::CampaignCoupons(_, tx) => drop(tx.send(Err(e))),
            ShardCmd::Coupon(_, tx) => drop(tx.send(Err(e))),
            ShardCmd::Quote(.., tx) => drop(tx.send(Err(e))),
            ShardCmd::Redeem { reply, .. } => drop(reply.send(Err(e))),
            ShardCmd::Reverse(.., tx) => drop(tx.send(Err(e))),
        }
        None
    }
}

impl Message for Envelope {
    type Result = ();
}

/// Self-message that ends a batch.
struct Flush;

impl Message for Flush {
    type Result = ();
}

/// Limits and shared handles a shard is started with.
#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// Most events per journal write.
    pub batch_events_max: usize,
    /// Snapshot after this many events.
    pub snapshot_every_events: u64,
    /// Idempotency keys remembered.
    pub idempotency_keys_max: usize,
    /// Commands the mailbox holds.
    pub mailbox_commands_max: usize,
    /// A command that waited longer in the mailbox is turned away unexecuted.
    pub queue_wait_max: Option<std::time::Duration>,
    /// MAC key of coupon codes.
    pub code_key: [u8; 32],
}

/// One shard.
pub struct ShardActor {
    /// Shard number, also its journal id.
    id: u32,
    /// Wallets and idempotency memory.
    state: ShardState,
    /// Durable journal.
    store: Arc<dyn Store>,
    /// Campaigns, merchants, accounts.
    registry: Arc<Registry>,
    /// This shard's projections, read by report queries.
    report: Arc<Mutex<ShardReport>>,
    /// Server clock.
    clock: Clock,
    /// Limits and keys.
    config: ShardConfig,
    /// Sequence number of the next journal record.
    next_seq: u64,
    /// Events and counter effects of the open batch.
    pending: Pending,
    /// Replies of the open batch with their commands' send times, sent after the write.
    replies: Vec<(Instant, Reply)>,
    /// Reused encoding buffer of journal writes.
    encode_buf: Vec<u8>,
    /// Whether a Flush is already queued.
    flush_queued: bool,
    /// Events since the last snapshot.
    events_since_snapshot: u64,
    /// Commands sent but not yet handled (the engine increments it).
    depth: Arc<AtomicI64>,
    /// False while the store is failing.
    healthy: Arc<AtomicBool>,
}

impl std::fmt::Debug for ShardActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardActor")
            .field("id", &self.id)
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

impl Actor for ShardActor {
    type Context = Context<Self>;
}

fn deferred<T: Send + 'static>(tx: Tx<T>, v: Result<T, EngineError>) -> Reply {
    Box::new(move |fail| {
        let _ = tx.send(match fail {
            Some(e) => Err(e),
            None => v,
        });
    })
}

fn ts(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

impl ShardActor {
    /// A shard over recovered state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u32,
        state: ShardState,
        next_seq: u64,
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        report: Arc<Mutex<ShardReport>>,
        clock: Clock,
        config: ShardConfig,
        depth: Arc<AtomicI64>,
        healthy: Arc<AtomicBool>,
    ) -> Self {
        ShardActor {
            id,
            state,
            store,
            registry,
            report,
            clock,
            config,
            next_seq,
            pending: Pending::default(),
            replies: Vec::new(),
            flush_queued: false,
            encode_buf: Vec::new(),
            events_since_snapshot: 0,
            depth,
            healthy,
        }
    }

    fn view(&self, route: u64, serial: u32, c: &Coupon, now_ms: i64) -> CouponView {
        let code = CouponCode { route, serial }.encode(&self.config.code_key);
        let (face, min) = self
            .registry
            .campaigns
            .get(&c.campaign)
            .and_then(|e| {
                e.campaign
                    .tiers
                    .get(c.tier as usize)
                    .map(|t| (t.discount.face_value(), t.discount.min_spend()))
            })
            .map_or((0, 0), |(f, m)| (f.get(), m.get()));
        let standing = c.standing();
        CouponView {
            redemption_id: standing.map(|(n, _)| format!("{code}-{n}")),
            times_redeemed: u32::from(standing.is_some()),
            code,
            campaign: c.campaign.clone(),
            round: c.round,
            tier: c.tier,
            status: c.status(now_ms),
            claimed_at: ts(c.at_ms),
            valid_from: ts(c.valid_from_ms),
            valid_until: ts(c.valid_until_ms),
            face_value_fen: face,
            min_spend_fen: min,
        }
    }

    fn coupon_view(&self, code: CouponCode, now_ms: i64) -> Result<CouponView, EngineError> {
        let c = self
            .state
            .coupon(code.route, code.serial)
            .ok_or(Refusal::CouponNotFound)?;
        Ok(self.view(code.route, code.serial, c, now_ms))
    }

    fn redemption(&self, code: CouponCode, n: u32) -> Result<Redemption, EngineError> {
        let c = self
            .state
            .coupon(code.route, code.serial)
            .ok_or(Refusal::CouponNotFound)?;
        let r = c
            .redemptions
            .get(n as usize - 1)
            .ok_or(Refusal::RedemptionNotFound)?;
        let text = code.encode(&self.config.code_key);
        Ok(Redemption {
            redemption_id: format!("{text}-{n}"),
            code: text,
            merchant: r.merchant.clone(),
            order_fen: r.order_fen,
            discount_fen: r.discount_fen,
            payable_fen: r.order_fen - r.discount_fen,
            at: ts(r.at_ms),
        })
    }

    /// Decides a command against memory; the reply is sent now or after the flush.
    fn execute(&mut self, cmd: ShardCmd, now_ms: i64) -> Reply {
        let registry = Arc::clone(&self.registry);
        let out = &mut self.pending;
        match cmd {
            ShardCmd::Register(batch, tx) => {
                let res = batch
                    .iter()
                    .map(|(a, p, r)| self.state.register(a, *p, r, out))
                    .collect();
                deferred(tx, Ok(res))
            }
            ShardCmd::Claim {
                route,
                account,
                campaign,
                tier,
                key,
                reply,
            } => {
                let r = self.state.claim(
                    &registry,
                    route,
                    &account,
                    &campaign,
                    tier,
                    key.as_deref(),
                    now_ms,
                    out,
                );
                let v = r.map_err(EngineError::from).and_then(|(serial, replay)| {
                    let code = CouponCode { route, serial };
                    Ok((self.coupon_view(code, now_ms)?, replay))
                });
                deferred(reply, v)
            }
            ShardCmd::Coupons(route, tx) => {
                let v = self.state.persons.get(&route).map_or_else(Vec::new, |p| {
                    p.coupons
                        .iter()
                        .enumerate()
                        .map(|(i, c)| self.view(route, i as u32 + 1, c, now_ms))
                        .collect()
                });
                deferred(tx, Ok(v))
            }
            ShardCmd::Coupon(code, tx) => deferred(tx, self.coupon_view(code, now_ms)),
            ShardCmd::Quote(code, merchant, order_fen, tx) => {
                let v = self
                    .state
                    .price(
                        &registry,
                        code.route,
                        code.serial,
                        &merchant,
                        order_fen,
                        now_ms,
                    )
                    .and_then(|(entry, d)| {
                        if entry.budget_fits(d.get()) {
                            Ok(d)
                        } else {
                            Err(Refusal::BudgetExhausted)
                        }
                    })
                    .map(|d| Redemption {
                        redemption_id: String::new(),
                        code: code.encode(&self.config.code_key),
                        merchant: merchant.id.clone(),
                        order_fen,
                        discount_fen: d.get(),
                        payable_fen: order_fen - d.get(),
                        at: ts(now_ms),
                    })
                    .map_err(EngineError::from);
                deferred(tx, v)
            }
            ShardCmd::Redeem {
                code,
                merchant,
                terminal,
                request_no,
                order_fen,
                reply,
            } => {
                let r = self.state.redeem(
                    &registry,
                    code.route,
                    code.serial,
                    &merchant,
                    &terminal,
                    &request_no,
                    order_fen,
                    now_ms,
                    out,
                );
                let v = r
                    .map_err(EngineError::from)
                    .and_then(|(n, replay)| Ok((self.redemption(code, n)?, replay)));
                deferred(reply, v)
            }
            ShardCmd::Reverse(code, n, merchant, tx) => {
                let v = self
                    .state
                    .reverse(
                        &registry,
                        code.route,
                        code.serial,
                        n,
                        &merchant,
                        now_ms,
                        out,
                    )
                    .map(|(coupon_status, discount)| Reversal {
                        redemption_id: format!("{}-{n}", code.encode(&self.config.code_key)),
                        coupon_status,
                        discount_returned_fen: discount,
                    });
                deferred(tx, v.map_err(EngineError::from))
            }
            ShardCmd::CampaignCoupons(campaign, tx) => {
                let mut v = Vec::new();
                for (route, p) in &self.state.persons {
                    for (i, c) in p
                        .coupons
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| c.campaign == campaign)
                    {
                        v.push(self.view(*route, i as u32 + 1, c, now_ms));
                    }
                }
                deferred(tx, Ok(v))
            }
            ShardCmd::Snapshot(tx) => {
                // Runs after the open batch: queue it like a write.
                self.events_since_snapshot = self.config.snapshot_every_events;
                deferred(tx, Ok(()))
            }
        }
    }

    /// Ends the open batch: one durable write, then the replies.
    fn flush(&mut self) {
        // Taken out for the write and put back empty with their capacity: a batch's
        // vectors reach megabytes, and growing fresh ones each batch made the kernel zero
        // new pages for every batch.
        let mut pending = std::mem::take(&mut self.pending);
        let mut replies = std::mem::take(&mut self.replies);
        let failure = if pending.events.is_empty() {
            None
        } else {
            self.write(&pending)
        };
        if let Some(e) = &failure {
            tracing::error!(shard = self.id, error = %e, "journal write failed; batch refused, state reloaded");
            self.rollback(&mut pending);
        }
        if failure.is_none() && self.events_since_snapshot >= self.config.snapshot_every_events {
            self.snapshot();
        }
        let replied = Instant::now();
        let reply_seconds = metrics::histogram!("yunquan_shard_reply_seconds");
        for (sent, r) in replies.drain(..) {
            r(failure.clone());
            reply_seconds.record(replied.saturating_duration_since(sent).as_secs_f64());
        }
        pending.clear();
        self.pending = pending;
        self.replies = replies;
        metrics::gauge!("yunquan_shard_mailbox_depth", "shard" => self.id.to_string())
            .set(self.depth.load(Ordering::Relaxed) as f64);
    }

    fn write(&mut self, pending: &Pending) -> Option<EngineError> {
        // One buffer per batch instead of one allocation per event.
        let mut buf = std::mem::take(&mut self.encode_buf);
        buf.clear();
        let mut ends = Vec::with_capacity(pending.events.len());
        for ev in &pending.events {
            encode_into(ev, &mut buf);
            ends.push(buf.len());
        }
        let mut start = 0;
        let refs: Vec<&[u8]> = ends
            .iter()
            .map(|&end| {
                let r = &buf[start..end];
                start = end;
                r
            })
            .collect();
        let started = Instant::now();
        if let Err(e) = self.store.append(self.id, self.next_seq, &refs) {
            drop(refs);
            self.encode_buf = buf;
            self.healthy.store(false, Ordering::Release);
            return Some(EngineError::Unavailable(format!(
                "shard {} journal append: {e}",
                self.id
            )));
        }
        self.healthy.store(true, Ordering::Release);
        metrics::histogram!("yunquan_journal_sync_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("yunquan_journal_batch_events").record(refs.len() as f64);
        drop(refs);
        self.encode_buf = buf;
        self.committed(pending);
        None
    }

    /// Bookkeeping once a batch is known to be in the journal: sequence numbers,
    /// projections, and budget released by reversals.
    fn committed(&mut self, pending: &Pending) {
        let n = pending.events.len() as u64;
        self.next_seq += n;
        self.events_since_snapshot += n;
        let mut report = self.report.lock();
        for ev in &pending.events {
            report.on_event(ev, &self.state, &self.registry);
        }
        drop(report);
        for eff in &pending.effects {
            if let Effect::ReleaseBudget(entry, fen) = eff {
                entry.return_budget(*fen);
            }
        }
    }

    /// Settles a batch whose write reported failure. A store may fail after the batch
    /// reached it (an fsync error after the data landed, a lost reply), so the journal,
    /// not the error, decides: memory is reloaded from it, and the batch's stock and
    /// budget are given back only if none of it is there. Giving back units of grants
    /// that exist would sell more than the stock.
    fn rollback(&mut self, pending: &mut Pending) {
        let batch_events = pending.events.len() as u64;
        let reloaded = recover_shard(
            self.store.as_ref(),
            self.id,
            self.config.idempotency_keys_max,
        );
        match reloaded {
            Ok((state, next_seq)) if next_seq == self.next_seq => {
                self.state = state;
                for eff in pending.effects.drain(..) {
                    match eff {
                        Effect::Unit(entry, round, tier) => entry.return_unit(round, tier),
                        Effect::Budget(entry, fen) => entry.return_budget(fen),
                        Effect::ReleaseBudget(..) => {}
                    }
                }
            }
            Ok((state, next_seq)) if next_seq == self.next_seq + batch_events => {
                tracing::warn!(
                    shard = self.id,
                    "the failed write is in the journal; keeping its effects"
                );
                self.state = state;
                self.committed(pending);
            }
            Ok((_, next_seq)) => {
                // Appends are all-or-nothing; anything else means memory cannot be trusted.
                tracing::error!(
                    shard = self.id,
                    next_seq,
                    expected = self.next_seq,
                    batch_events,
                    "journal holds part of a failed batch; stopping the shard"
                );
                self.stop();
            }
            Err(e) => {
                // Memory would disagree with the journal: stop serving rather than serve wrong state.
                tracing::error!(shard = self.id, error = %e, "cannot reload shard after a failed write; stopping it");
                self.stop();
            }
        }
    }

    /// Stops serving: a restart recovers every shard, and every counter, from the journals.
    fn stop(&mut self) {
        self.healthy.store(false, Ordering::Release);
        System::current().stop_with_code(3);
    }

    fn snapshot(&mut self) {
        let bytes = encode(&self.state);
        let seq = self.next_seq - 1;
        match self.store.save_snapshot(self.id, seq, &bytes) {
            Ok(()) => {
                self.events_since_snapshot = 0;
                tracing::info!(shard = self.id, seq, bytes = bytes.len(), "snapshot saved");
            }
            Err(e) => {
                tracing::warn!(shard = self.id, error = %e, "snapshot failed; will retry after more events")
            }
        }
    }
}

impl Handler<Envelope> for ShardActor {
    type Result = ();

    fn handle(&mut self, Envelope { cmd, sent }: Envelope, ctx: &mut Context<Self>) {
        self.depth.fetch_sub(1, Ordering::Relaxed);
        let waited = sent.elapsed();
        metrics::histogram!("yunquan_shard_queue_wait_seconds").record(waited.as_secs_f64());
        let cmd = match self.config.queue_wait_max {
            Some(max) if waited > max => {
                let overloaded = EngineError::Overloaded {
                    retry_after_ms: super::handle::OVERLOAD_RETRY_AFTER_MS,
                };
                match cmd.turn_away(overloaded) {
                    Some(cmd) => cmd,
                    None => {
                        metrics::counter!("yunquan_shard_shed_total").increment(1);
                        return;
                    }
                }
            }
            _ => cmd,
        };
        let now_ms = (self.clock)();
        let reply = self.execute(cmd, now_ms);
        let must_wait = !self.pending.events.is_empty()
            || !self.replies.is_empty()
            || self.events_since_snapshot >= self.config.snapshot_every_events;
        if !must_wait {
            reply(None);
            metrics::histogram!("yunquan_shard_reply_seconds").record(sent.elapsed().as_secs_f64());
            return;
        }
        self.replies.push((sent, reply));
        if self.pending.events.len() >= self.config.batch_events_max {
            self.flush();
        } else if !self.flush_queued {
            self.flush_queued = true;
            ctx.notify(Flush);
        }
    }
}

impl Handler<Flush> for ShardActor {
    type Result = ();

    fn handle(&mut self, _: Flush, _: &mut Context<Self>) {
        self.flush_queued = false;
        self.flush();
    }
}
