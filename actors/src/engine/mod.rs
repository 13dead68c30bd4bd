//! The engine: shard actors, registries, stock, projections, and the handle callers use.

mod handle;

pub use handle::{Clock, Engine, EngineConfig, Keys, StartError};
