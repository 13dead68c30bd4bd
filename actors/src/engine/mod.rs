//! The engine: shard actors, registries, stock, projections, and the handle callers use.
//!
//! Rules a claim follows (in order): idempotency key replay, campaign and tier exist,
//! campaign published, a round is live at the server's clock, per-person limits
//! (natural person, across accounts), a stock unit is taken from the round's shared
//! counter, then the grant is journaled. A redemption: request-number replay, coupon
//! exists and is not used, inside its validity window, the merchant's category, region
//! and id are covered (never utility billers), the order meets the threshold, the
//! campaign budget can pay the discount, then the redemption is journaled.

mod control;
mod events;
mod handle;
mod idempotency;
mod recovery;
mod registry;
mod report;
mod shard;
mod state;
mod stats;

pub use events::{ControlEvent, ShardEvent, CONTROL_JOURNAL};
pub use handle::{wall_clock_ms, Clock, Engine, EngineConfig, Keys, StartError};
pub use idempotency::IDEMPOTENCY_RETENTION_MS;
pub use recovery::{recover_control, recover_shard};
pub use registry::Registry;
pub use state::ShardState;
