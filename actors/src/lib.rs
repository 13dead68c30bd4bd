//! yunquan's domain and its sharded actor engine.
//!
//! Residents' wallets live in shard actors chosen by a stable hash of the person;
//! each shard applies a batch of commands to memory, appends the batch's events to
//! its journal in one durable write, and only then replies.

pub mod api;
pub mod audit;
pub mod domain;
pub mod engine;

pub use engine::{wall_clock_ms, Clock, Engine, EngineConfig, Keys, StartError};
