//! Durable storage for yunquan: per-shard event journals, snapshots, data-directory settings
//! and leases.
//!
//! - [`Store`] is the contract. Shard actors call it from their own threads (it is blocking
//!   and object-safe), append each batch of events with the seq they expect to be next, and
//!   recover by loading the latest snapshot and replaying the records after it. The seq check
//!   on append is the fence that keeps a stale writer from forking a journal.
//! - [`EmbeddedStore`] implements it on redb files in one local directory: one file per
//!   journal so shards fsync in parallel, plus `meta.redb` for settings and leases.
//! - [`conformance`] is the behaviour every backend must show; a new backend runs
//!   [`conformance::run_all`] in its tests.
//! - [`faults::FaultyStore`] is a test tool: a wrapper that fails writes on command.

pub mod conformance;
mod embedded;
mod error;
pub mod faults;
mod store;

pub use embedded::EmbeddedStore;
pub use error::StorageError;
pub use faults::FaultyStore;
pub use store::{JournalId, Lease, Record, Store};
