//! STUB: signatures of the engine handle; bodies land with the engine.
#![allow(unused_variables, clippy::todo)]

use crate::api::*;
use crate::domain::CampaignSpec;
use chrono::NaiveDate;
use std::path::PathBuf;
use std::sync::Arc;

/// Milliseconds since the Unix epoch, from the server's clock (tests substitute one).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

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
pub struct Engine {}

impl Engine {
    /// Opens the store, recovers every shard from snapshot + journal, starts the actors.
    pub fn start(config: EngineConfig, clock: Clock) -> Result<Engine, StartError> { todo!() }
    /// The data directory's secrets.
    pub fn keys(&self) -> &Keys { todo!() }
    /// Server clock, ms since epoch.
    pub fn now_ms(&self) -> i64 { todo!() }
    /// Whether every shard is up and accepting commands.
    pub fn ready(&self) -> bool { todo!() }
    /// Flushes, snapshots and stops the shards.
    pub async fn shutdown(&self) { todo!() }

    /// Validates and creates a campaign (status draft).
    pub async fn create_campaign(&self, spec: CampaignSpec) -> Result<CampaignView, EngineError> { todo!() }
    /// One campaign.
    pub fn campaign(&self, id: &str) -> Option<CampaignView> { todo!() }
    /// All campaigns, newest first.
    pub fn campaigns(&self) -> Vec<CampaignView> { todo!() }
    /// Publish, pause, resume or end.
    pub async fn campaign_action(&self, id: &str, action: CampaignAction) -> Result<CampaignView, EngineError> { todo!() }
    /// Live figures.
    pub fn campaign_stats(&self, id: &str) -> Option<CampaignStats> { todo!() }
    /// Every coupon of a campaign (for audits).
    pub async fn campaign_coupons(&self, id: &str) -> Result<Vec<CouponView>, EngineError> { todo!() }

    /// Registers residents; one outcome per input, in order.
    pub async fn register_residents(&self, batch: Vec<ResidentInput>) -> Result<Vec<Result<(), EngineError>>, EngineError> { todo!() }
    /// Whether an account is registered.
    pub fn resident_exists(&self, account: &str) -> bool { todo!() }
    /// Registers merchants with their terminals; one outcome per input, in order.
    pub async fn register_merchants(&self, batch: Vec<MerchantInput>) -> Result<Vec<Result<(), EngineError>>, EngineError> { todo!() }
    /// One merchant.
    pub fn merchant(&self, id: &str) -> Option<MerchantView> { todo!() }
    /// Whether `terminal` is bound to `merchant`.
    pub fn terminal_belongs(&self, merchant: &str, terminal: &str) -> bool { todo!() }

    /// Grabs a coupon of `tier` in the live round.
    pub async fn claim(&self, account: &str, campaign: &str, tier: u32, idempotency_key: Option<String>) -> Result<CouponView, EngineError> { todo!() }
    /// A resident's coupons.
    pub async fn coupons(&self, account: &str) -> Result<Vec<CouponView>, EngineError> { todo!() }
    /// One coupon by code.
    pub async fn coupon(&self, code: &str) -> Result<CouponView, EngineError> { todo!() }
    /// Prices without committing.
    pub async fn quote(&self, req: QuoteRequest) -> Result<Redemption, EngineError> { todo!() }
    /// Redeems; the returned bool is true when this is a replay of an earlier request.
    pub async fn redeem(&self, req: RedeemRequest) -> Result<(Redemption, bool), EngineError> { todo!() }
    /// Reverses a redemption per the campaign's refund policy; reversing twice is a no-op.
    pub async fn reverse(&self, req: ReverseRequest) -> Result<Reversal, EngineError> { todo!() }
    /// A merchant's settlement for a local date.
    pub fn settlement(&self, merchant: &str, date: NaiveDate) -> Settlement { todo!() }
}
