//! The engine handle: routes each call to the shard or actor that owns the data.

use super::control::{ControlActor, ControlCmd};
use super::recovery::{recover_control, recover_shard};
use super::registry::{Merchant, Registry};
use super::report::ShardReport;
use super::shard::{Envelope, ShardActor, ShardCmd, ShardConfig, Tx};
use super::state::ShardState;
use super::stats;
use crate::api::*;
use crate::domain::{
    valid_id, valid_region, CampaignSpec, CodeError, CouponCode, FieldError, IdentityNumber,
    PersonKey,
};
use actix::prelude::*;
use chrono::NaiveDate;
use parking_lot::Mutex;
use rand::RngCore;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use tokio::sync::oneshot;
use yunquan_storage::{EmbeddedStore, Store};

/// One account to register: (account, person, region), as a shard takes it.
type Registration = (String, PersonKey, String);

/// Milliseconds since the Unix epoch, from the server's clock (tests substitute one).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The server's wall clock in milliseconds since the Unix epoch (the engine's default [`Clock`]).
pub fn wall_clock_ms() -> i64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// Secrets of a data directory, created on first start and kept in its meta table.
#[derive(Clone)]
pub struct Keys {
    /// Signs bearer tokens.
    pub token: [u8; 32],
    /// MACs coupon codes.
    pub code: [u8; 32],
    /// Keys the identity-number hash.
    pub identity: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

/// How to run the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Data directory of the embedded store.
    pub data_dir: PathBuf,
    /// Number of shards; must match the data directory's once it has data.
    pub shards: u32,
    /// Commands a shard mailbox holds before callers get `Overloaded`.
    pub mailbox_commands_max: usize,
    /// Most events one journal write carries.
    pub batch_events_max: usize,
    /// A shard snapshots after this many events since its last snapshot.
    pub snapshot_every_events: u64,
    /// Idempotency keys and POS request numbers remembered per shard.
    pub idempotency_keys_max: usize,
    /// Longest a command may wait in a shard's mailbox, in milliseconds; an older one is
    /// answered `Overloaded` unexecuted when the shard reaches it (0: never shed).
    pub queue_wait_ms_max: u64,
}

impl EngineConfig {
    /// Commands a shard mailbox holds by default: a flash round's first second at one
    /// shard, with room to spare, in a few megabytes.
    pub const MAILBOX_COMMANDS_MAX_DEFAULT: usize = 65_536;
    /// Events one journal write carries at most by default.
    pub const BATCH_EVENTS_MAX_DEFAULT: usize = 8_192;
    /// Events between a shard's snapshots by default: recovery replays at most this many.
    pub const SNAPSHOT_EVERY_EVENTS_DEFAULT: u64 = 1_000_000;
    /// Idempotency keys and POS request numbers kept per shard by default.
    pub const IDEMPOTENCY_KEYS_MAX_DEFAULT: usize = 1_000_000;
    /// Mailbox wait after which a command is shed by default. A journal write takes
    /// about 1 ms here and 5 ms at its p99, and a flash round's first-second burst queues
    /// commands for up to about 10 ms at a load the server sustains; a command that waited
    /// 50 ms sits behind many writes' worth of work, and executing it would only make it
    /// and everything behind it later, while a 503 now lets its client retry into a
    /// shorter queue. It is a backstop: the gateway's in-flight cap sheds first.
    pub const QUEUE_WAIT_MS_MAX_DEFAULT: u64 = 50;

    /// The settings `yunquan serve` runs with unless told otherwise.
    pub fn new(data_dir: PathBuf, shards: u32) -> EngineConfig {
        EngineConfig {
            data_dir,
            shards,
            mailbox_commands_max: Self::MAILBOX_COMMANDS_MAX_DEFAULT,
            batch_events_max: Self::BATCH_EVENTS_MAX_DEFAULT,
            snapshot_every_events: Self::SNAPSHOT_EVERY_EVENTS_DEFAULT,
            idempotency_keys_max: Self::IDEMPOTENCY_KEYS_MAX_DEFAULT,
            queue_wait_ms_max: Self::QUEUE_WAIT_MS_MAX_DEFAULT,
        }
    }
}

/// Why the engine could not start; each says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The store could not be opened or read.
    #[error("storage: {0}")]
    Storage(#[from] yunquan_storage::StorageError),
    /// The data directory was created with another shard count.
    #[error("data directory {dir} was created with {found} shards but {requested} were requested; restart with --shards {found}")]
    ShardCountMismatch {
        /// The directory.
        dir: PathBuf,
        /// Shards recorded in it.
        found: u32,
        /// Shards asked for.
        requested: u32,
    },
    /// A file of the data directory or a thread could not be created.
    #[error("{what}: {source}; check permissions and free space")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A journal record could not be decoded: the data is corrupt or from an incompatible version.
    #[error("journal {journal} record {seq} cannot be decoded ({detail}); the data directory is corrupt or from another version")]
    Corrupt {
        /// Journal id.
        journal: u32,
        /// Record sequence.
        seq: u64,
        /// Decoder message.
        detail: String,
    },
}

/// Cheap to clone; every clone talks to the same shards.
#[derive(Clone, Debug)]
pub struct Engine {
    /// Shared internals.
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Shard actors, index = route % shards.
    shards: Vec<Addr<ShardActor>>,
    /// Commands in flight per shard (mailbox depth).
    depths: Vec<Arc<AtomicI64>>,
    /// False while a shard's store is failing.
    healthy: Vec<Arc<AtomicBool>>,
    /// Registry writer.
    control: Addr<ControlActor>,
    /// Campaigns, merchants, accounts.
    registry: Arc<Registry>,
    /// Per-shard projections.
    reports: Vec<Arc<Mutex<ShardReport>>>,
    /// Secrets.
    keys: Keys,
    /// Server clock.
    clock: ClockBox,
    /// Mailbox bound, for the overload hint.
    mailbox_commands_max: usize,
    /// Stops the actor system on drop of the engine (or at shutdown).
    stop: Mutex<Option<oneshot::Sender<()>>>,
    /// Joined at shutdown.
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// A clock with a Debug impl.
struct ClockBox(Clock);

impl std::fmt::Debug for ClockBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// How long an overloaded caller should wait before retrying.
pub(super) const OVERLOAD_RETRY_AFTER_MS: u64 = 1_000;

fn gone() -> EngineError {
    EngineError::Unavailable("engine is stopping".into())
}

impl Engine {
    /// Opens the store, recovers every shard from snapshot + journal, starts the actors.
    pub fn start(config: EngineConfig, clock: Clock) -> Result<Engine, StartError> {
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&config.data_dir)?);
        Self::start_on(store, config, clock)
    }

    /// Same as [`Engine::start`] on a store the caller opened (other backends, fault injection).
    pub fn start_on(
        store: Arc<dyn Store>,
        config: EngineConfig,
        clock: Clock,
    ) -> Result<Engine, StartError> {
        assert!(config.shards >= 1, "at least one shard");
        let keys = load_keys(store.as_ref(), &config)?;
        let registry = Arc::new(Registry::default());
        let control_seq = recover_control(store.as_ref(), &registry)?;
        let recovered: Vec<Result<(ShardState, u64), StartError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..config.shards)
                .map(|id| {
                    let (store, registry) = (Arc::clone(&store), Arc::clone(&registry));
                    let keys_max = config.idempotency_keys_max;
                    s.spawn(move || {
                        let recovered = recover_shard(store.as_ref(), id, keys_max)?;
                        // Each shard indexes its own accounts, in parallel: at the reference
                        // scale these are millions of inserts, a fifth of a restart's
                        // samples when one thread did them all.
                        for (route, p) in &recovered.0.persons {
                            for a in &p.accounts {
                                registry.accounts.insert(a.clone(), *route);
                            }
                        }
                        Ok(recovered)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(StartError::Corrupt {
                            journal: 0,
                            seq: 0,
                            detail: "recovery panicked".into(),
                        })
                    })
                })
                .collect()
        });
        let mut states = Vec::with_capacity(recovered.len());
        for r in recovered {
            states.push(r?);
        }
        let mut reports = Vec::with_capacity(states.len());
        for (state, _) in &states {
            reports.push(Arc::new(Mutex::new(ShardReport::rebuild(state, &registry))));
        }
        restore_counters(&registry, &reports);
        let shard_config = ShardConfig {
            batch_events_max: config.batch_events_max.max(1),
            snapshot_every_events: config.snapshot_every_events.max(1),
            idempotency_keys_max: config.idempotency_keys_max,
            mailbox_commands_max: config.mailbox_commands_max.max(1),
            queue_wait_max: (config.queue_wait_ms_max > 0)
                .then(|| std::time::Duration::from_millis(config.queue_wait_ms_max)),
            code_key: keys.code,
        };
        let depths: Vec<_> = (0..config.shards)
            .map(|_| Arc::new(AtomicI64::new(0)))
            .collect();
        let healthy: Vec<_> = (0..config.shards)
            .map(|_| Arc::new(AtomicBool::new(true)))
            .collect();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let spawn = {
            let (store, registry, reports, clock) = (
                Arc::clone(&store),
                Arc::clone(&registry),
                reports.clone(),
                clock.clone(),
            );
            let (depths, healthy) = (depths.clone(), healthy.clone());
            move || {
                let system = System::new();
                system.block_on(async move {
                    let mut shards = Vec::new();
                    let mut arbiters = Vec::new();
                    for (id, (state, next_seq)) in states.into_iter().enumerate() {
                        let arbiter = Arbiter::new();
                        let actor = ShardActor::new(
                            id as u32,
                            state,
                            next_seq,
                            Arc::clone(&store),
                            Arc::clone(&registry),
                            Arc::clone(&reports[id]),
                            clock.clone(),
                            shard_config.clone(),
                            Arc::clone(&depths[id]),
                            Arc::clone(&healthy[id]),
                        );
                        let cap = shard_config.mailbox_commands_max;
                        shards.push(ShardActor::start_in_arbiter(
                            &arbiter.handle(),
                            move |ctx| {
                                ctx.set_mailbox_capacity(cap);
                                actor
                            },
                        ));
                        arbiters.push(arbiter);
                    }
                    let control = ControlActor::new(store, registry, clock, control_seq).start();
                    let _ = addr_tx.send((shards, control));
                    let _ = stop_rx.await;
                    // Join the shard threads so the store is closed when shutdown returns.
                    for a in arbiters {
                        a.stop();
                        let _ = a.join();
                    }
                    System::current().stop();
                });
                let _ = system.run();
            }
        };
        let thread = std::thread::Builder::new()
            .name("yunquan-actors".into())
            .spawn(spawn)
            .map_err(|source| StartError::Io {
                what: "starting the actor thread".into(),
                source,
            })?;
        let (shards, control) = addr_rx.recv().map_err(|_| StartError::Corrupt {
            journal: 0,
            seq: 0,
            detail: "actor system failed to start".into(),
        })?;
        Ok(Engine {
            inner: Arc::new(Inner {
                shards,
                depths,
                healthy,
                control,
                registry,
                reports,
                keys,
                clock: ClockBox(clock),
                mailbox_commands_max: config.mailbox_commands_max,
                stop: Mutex::new(Some(stop_tx)),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// The data directory's secrets.
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// Server clock, ms since epoch.
    pub fn now_ms(&self) -> i64 {
        (self.inner.clock.0)()
    }

    /// Whether every shard is up and its store writable.
    pub fn ready(&self) -> bool {
        self.inner.shards.iter().all(Addr::connected)
            && self.inner.healthy.iter().all(|h| h.load(Ordering::Acquire))
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.inner.shards.len()
    }

    /// Flushes, snapshots and stops the shards. Idempotent.
    pub async fn shutdown(&self) {
        let waits: Vec<_> = (0..self.inner.shards.len())
            .filter_map(|i| {
                let (tx, rx) = oneshot::channel();
                self.inner.shards[i]
                    .try_send(Envelope::new(ShardCmd::Snapshot(tx)))
                    .ok()
                    .map(|_| rx)
            })
            .collect();
        for w in waits {
            let _ = w.await;
        }
        if let Some(stop) = self.inner.stop.lock().take() {
            let _ = stop.send(());
        }
        let thread = self.inner.thread.lock().take();
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }

    fn shard_of(&self, route: u64) -> usize {
        (route % self.inner.shards.len() as u64) as usize
    }

    async fn ask<T>(
        &self,
        shard: usize,
        make: impl FnOnce(Tx<T>) -> ShardCmd,
    ) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        let depth = &self.inner.depths[shard];
        depth.fetch_add(1, Ordering::Relaxed);
        match self.inner.shards[shard].try_send(Envelope::new(make(tx))) {
            Ok(()) => {}
            Err(SendError::Full(_)) => {
                depth.fetch_sub(1, Ordering::Relaxed);
                return Err(EngineError::Overloaded {
                    retry_after_ms: OVERLOAD_RETRY_AFTER_MS,
                });
            }
            Err(SendError::Closed(_)) => {
                depth.fetch_sub(1, Ordering::Relaxed);
                return Err(gone());
            }
        }
        rx.await.map_err(|_| gone())?
    }

    async fn ask_control<T>(
        &self,
        make: impl FnOnce(Tx<T>) -> ControlCmd,
    ) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.inner.control.try_send(make(tx)).map_err(|e| match e {
            SendError::Full(_) => EngineError::Overloaded {
                retry_after_ms: OVERLOAD_RETRY_AFTER_MS,
            },
            SendError::Closed(_) => gone(),
        })?;
        rx.await.map_err(|_| gone())?
    }

    /// Validates and creates a campaign (status draft).
    pub async fn create_campaign(&self, spec: CampaignSpec) -> Result<CampaignView, EngineError> {
        self.ask_control(|tx| ControlCmd::Create(Box::new(spec), tx))
            .await
    }

    /// One campaign.
    pub fn campaign(&self, id: &str) -> Option<CampaignView> {
        self.inner.registry.campaigns.get(id).map(|e| e.view())
    }

    /// All campaigns, newest first.
    pub fn campaigns(&self) -> Vec<CampaignView> {
        let mut v: Vec<CampaignView> = self
            .inner
            .registry
            .campaigns
            .iter()
            .map(|e| e.view())
            .collect();
        v.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        v
    }

    /// Publish, pause, resume or end.
    pub async fn campaign_action(
        &self,
        id: &str,
        action: CampaignAction,
    ) -> Result<CampaignView, EngineError> {
        let id = id.to_owned();
        self.ask_control(|tx| ControlCmd::Action(id, action, tx))
            .await
    }

    /// Live figures, summed over the shards' projections.
    pub fn campaign_stats(&self, id: &str) -> Option<CampaignStats> {
        let entry = self
            .inner
            .registry
            .campaigns
            .get(id)
            .map(|e| Arc::clone(e.value()))?;
        Some(stats::campaign_stats(&entry, &self.inner.reports))
    }

    /// Every coupon of a campaign (for audits).
    pub async fn campaign_coupons(&self, id: &str) -> Result<Vec<CouponView>, EngineError> {
        if !self.inner.registry.campaigns.contains_key(id) {
            return Err(Refusal::UnknownCampaign.into());
        }
        let mut all = Vec::new();
        for shard in 0..self.inner.shards.len() {
            let id = id.to_owned();
            all.extend(
                self.ask(shard, |tx| ShardCmd::CampaignCoupons(id, tx))
                    .await?,
            );
        }
        Ok(all)
    }

    /// Registers residents; one outcome per input, in order.
    pub async fn register_residents(
        &self,
        batch: Vec<ResidentInput>,
    ) -> Result<Vec<Result<(), EngineError>>, EngineError> {
        let n = self.inner.shards.len();
        let mut outcomes: Vec<Option<Result<(), EngineError>>> =
            (0..batch.len()).map(|_| None).collect();
        // Per shard: (index in `batch`, registration) pairs.
        let mut per_shard: Vec<Vec<(usize, Registration)>> = (0..n).map(|_| Vec::new()).collect();
        for (i, r) in batch.into_iter().enumerate() {
            match self.check_resident(&r) {
                Err(e) => outcomes[i] = Some(Err(e)),
                Ok(person) => {
                    per_shard[self.shard_of(person.route)].push((i, (r.account, person, r.region)))
                }
            }
        }
        for (shard, items) in per_shard
            .into_iter()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
        {
            // Claim the account ids first so two shards can never register the same one.
            let mut accepted = Vec::with_capacity(items.len());
            for (i, item) in items {
                match self.inner.registry.accounts.entry(item.0.clone()) {
                    dashmap::Entry::Occupied(o) if *o.get() != item.1.route => {
                        outcomes[i] = Some(Err(Refusal::AlreadyRegistered.into()))
                    }
                    dashmap::Entry::Occupied(_) => accepted.push((i, item)),
                    dashmap::Entry::Vacant(v) => {
                        v.insert(item.1.route);
                        accepted.push((i, item));
                    }
                }
            }
            let (idx, items): (Vec<usize>, Vec<_>) = accepted.into_iter().unzip();
            let accounts: Vec<String> = items.iter().map(|(a, _, _)| a.clone()).collect();
            match self.ask(shard, |tx| ShardCmd::Register(items, tx)).await {
                Ok(results) => {
                    for ((i, r), a) in idx.into_iter().zip(results).zip(accounts) {
                        if r.is_err() {
                            self.inner.registry.accounts.remove(&a);
                        }
                        outcomes[i] = Some(r.map_err(EngineError::from));
                    }
                }
                Err(e) => {
                    for (i, a) in idx.into_iter().zip(accounts) {
                        self.inner.registry.accounts.remove(&a);
                        outcomes[i] = Some(Err(e.clone()));
                    }
                }
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Err(gone())))
            .collect())
    }

    fn check_resident(&self, r: &ResidentInput) -> Result<PersonKey, EngineError> {
        let mut errors = Vec::new();
        if !valid_id(&r.account) {
            errors.push(FieldError {
                field: "account".into(),
                reason: "1-64 printable ASCII characters without spaces or '/'".into(),
            });
        }
        if !valid_region(&r.region) {
            errors.push(FieldError {
                field: "region".into(),
                reason: "1-32 of a-z, 0-9, _".into(),
            });
        }
        let id = IdentityNumber::parse(&r.identity_number).map_err(|e| {
            errors.push(FieldError {
                field: "identity_number".into(),
                reason: e.to_string(),
            })
        });
        match id {
            Ok(id) if errors.is_empty() => Ok(PersonKey::derive(&self.inner.keys.identity, &id)),
            _ => Err(EngineError::Invalid(errors)),
        }
    }

    /// Whether an account is registered.
    pub fn resident_exists(&self, account: &str) -> bool {
        self.inner.registry.accounts.contains_key(account)
    }

    /// Registers merchants with their terminals; one outcome per input, in order.
    pub async fn register_merchants(
        &self,
        batch: Vec<MerchantInput>,
    ) -> Result<Vec<Result<(), EngineError>>, EngineError> {
        self.ask_control(|tx| ControlCmd::Merchants(batch, tx))
            .await
    }

    /// One merchant.
    pub fn merchant(&self, id: &str) -> Option<MerchantView> {
        self.inner.registry.merchants.get(id).map(|m| MerchantView {
            id: m.id.clone(),
            name: m.name.clone(),
            category: m.category,
            region: m.region.clone(),
            terminals: m.terminals.clone(),
        })
    }

    /// Whether `terminal` is bound to `merchant`.
    pub fn terminal_belongs(&self, merchant: &str, terminal: &str) -> bool {
        self.inner
            .registry
            .merchants
            .get(merchant)
            .is_some_and(|m| m.terminals.iter().any(|t| t == terminal))
    }

    /// The routing key of a registered account's natural person.
    fn route_of_account(&self, account: &str) -> Result<u64, EngineError> {
        let route = self.inner.registry.accounts.get(account).map(|r| *r);
        route.ok_or_else(|| Refusal::UnknownAccount.into())
    }

    /// Grabs a coupon of `tier` in the live round. The bool is true for a replay.
    pub async fn claim(
        &self,
        account: &str,
        campaign: &str,
        tier: u32,
        idempotency_key: Option<String>,
    ) -> Result<(CouponView, bool), EngineError> {
        let route = self.route_of_account(account)?;
        let (account, campaign) = (account.to_owned(), campaign.to_owned());
        self.ask(self.shard_of(route), |reply| ShardCmd::Claim {
            route,
            account,
            campaign,
            tier,
            key: idempotency_key,
            reply,
        })
        .await
    }

    /// A resident's coupons.
    pub async fn coupons(&self, account: &str) -> Result<Vec<CouponView>, EngineError> {
        let route = self.route_of_account(account)?;
        self.ask(self.shard_of(route), |tx| ShardCmd::Coupons(route, tx))
            .await
    }

    /// Parses and verifies a coupon code typed or scanned at a till.
    pub fn parse_code(&self, code: &str) -> Result<CouponCode, EngineError> {
        CouponCode::parse(code, &self.inner.keys.code).map_err(|e| match e {
            CodeError::Malformed => Refusal::InvalidCode.into(),
            CodeError::Forged => Refusal::ForgedCode.into(),
        })
    }

    /// One coupon by code (a forged or mistyped code is refused before any lookup).
    pub async fn coupon(&self, code: &str) -> Result<CouponView, EngineError> {
        let c = self.parse_code(code)?;
        self.ask(self.shard_of(c.route), |tx| ShardCmd::Coupon(c, tx))
            .await
    }

    fn merchant_arc(&self, id: &str) -> Result<Arc<Merchant>, EngineError> {
        Ok(Arc::clone(
            self.inner
                .registry
                .merchants
                .get(id)
                .ok_or(Refusal::UnknownMerchant)?
                .value(),
        ))
    }

    /// Prices without committing.
    pub async fn quote(&self, req: QuoteRequest) -> Result<Redemption, EngineError> {
        let c = self.parse_code(&req.code)?;
        let m = self.merchant_arc(&req.merchant)?;
        self.ask(self.shard_of(c.route), |tx| {
            ShardCmd::Quote(c, m, req.order_fen, tx)
        })
        .await
    }

    /// Redeems; the returned bool is true when this is a replay of an earlier request.
    pub async fn redeem(&self, req: RedeemRequest) -> Result<(Redemption, bool), EngineError> {
        let code = self.parse_code(&req.code)?;
        let merchant = self.merchant_arc(&req.merchant)?;
        let RedeemRequest {
            terminal,
            request_no,
            order_fen,
            ..
        } = req;
        self.ask(self.shard_of(code.route), |reply| ShardCmd::Redeem {
            code,
            merchant,
            terminal,
            request_no,
            order_fen,
            reply,
        })
        .await
    }

    /// Reverses a redemption per the campaign's refund policy; reversing twice is a no-op.
    pub async fn reverse(&self, req: ReverseRequest) -> Result<Reversal, EngineError> {
        let (code, n) = req
            .redemption_id
            .rsplit_once('-')
            .ok_or(Refusal::RedemptionNotFound)?;
        let n: u32 = n
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or(Refusal::RedemptionNotFound)?;
        let c = self.parse_code(code)?;
        self.ask(self.shard_of(c.route), |tx| {
            ShardCmd::Reverse(c, n, req.merchant, tx)
        })
        .await
    }

    /// A merchant's settlement for a local date.
    pub fn settlement(&self, merchant: &str, date: NaiveDate) -> Settlement {
        stats::settlement(&self.inner.reports, merchant, date)
    }

    /// Mailbox bound per shard.
    pub fn mailbox_commands_max(&self) -> usize {
        self.inner.mailbox_commands_max
    }
}

/// Reads or creates the data directory's secrets and checks the shard count.
fn load_keys(store: &dyn Store, config: &EngineConfig) -> Result<Keys, StartError> {
    match store.get_meta("shards")? {
        Some(b) => {
            let found = u32::from_be_bytes(b.as_slice().try_into().unwrap_or([0; 4]));
            if found != config.shards {
                return Err(StartError::ShardCountMismatch {
                    dir: config.data_dir.clone(),
                    found,
                    requested: config.shards,
                });
            }
        }
        None => store.put_meta("shards", &config.shards.to_be_bytes())?,
    }
    let raw = match store.get_meta("keys")? {
        Some(k) if k.len() == 96 => k,
        _ => {
            let mut k = vec![0u8; 96];
            rand::rng().fill_bytes(&mut k);
            store.put_meta("keys", &k)?;
            k
        }
    };
    let mut keys = Keys {
        token: [0; 32],
        code: [0; 32],
        identity: [0; 32],
    };
    keys.token.copy_from_slice(&raw[..32]);
    keys.code.copy_from_slice(&raw[32..64]);
    keys.identity.copy_from_slice(&raw[64..]);
    write_token_key(&config.data_dir, &keys.token)?;
    Ok(keys)
}

/// `yunquan token` reads the token key from this file while a server holds the store open.
fn write_token_key(dir: &std::path::Path, key: &[u8; 32]) -> Result<(), StartError> {
    let path = dir.join("token.key");
    if std::fs::read(&path).is_ok_and(|k| k == key) {
        return Ok(());
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let io = |source| StartError::Io {
        what: format!("writing {}", path.display()),
        source,
    };
    let mut f = opts.open(&path).map_err(io)?;
    std::io::Write::write_all(&mut f, key).map_err(io)?;
    Ok(())
}

/// After recovery: remaining = stock - claims found in the journals; committed budget
/// = discounts of standing redemptions.
fn restore_counters(registry: &Registry, reports: &[Arc<Mutex<ShardReport>>]) {
    for e in registry.campaigns.iter() {
        let s = stats::campaign_stats(e.value(), reports);
        for t in &s.tiers {
            e.set_claimed(t.round, t.tier, t.claimed);
        }
        e.set_committed(s.discount_fen);
    }
}
