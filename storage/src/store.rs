//! The contract every storage backend implements.
//!
//! The API is blocking on purpose: it is called from shard actor threads that own their journal
//! and would only wait on the fsync anyway. It is object-safe so callers can hold an
//! `Arc<dyn Store>` and pick the backend at startup.

use crate::error::StorageError;

/// Identifies one journal; in practice one shard's event log.
pub type JournalId = u32;

/// One journal record: sequence numbers start at 1 and are dense per journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Position in the journal, starting at 1, without gaps.
    pub seq: u64,
    /// The event bytes exactly as appended.
    pub payload: Vec<u8>,
}

/// A time-limited, exclusive grant of a named resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The resource, e.g. `shard/3` or `stock/campaign-17`.
    pub name: String,
    /// Who holds it now.
    pub owner: String,
    /// Fencing token: 1 for the first grant, plus one each time the lease changes hands
    /// (including a release followed by a new grant). Writers stamp their writes with it so that
    /// a holder that lost the lease while paused cannot overwrite its successor.
    pub epoch: u64,
    /// When the grant ends unless renewed, in the caller's clock (milliseconds).
    pub expires_at_ms: u64,
}

/// Durable journals, snapshots, settings and leases for one data directory.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Appends `events` as seq first_seq, first_seq+1, ...; durable (fsynced) when it returns Ok.
    /// Refuses with StorageError::SequenceMismatch if first_seq != last_seq(journal)+1 (this is the fence that stops two writers).
    /// All-or-nothing: on Err nothing of the batch is visible afterwards.
    ///
    /// An empty batch only checks the fence and stores nothing.
    fn append(
        &self,
        journal: JournalId,
        first_seq: u64,
        events: &[&[u8]],
    ) -> Result<(), StorageError>;

    /// Records with seq >= from_seq, in order, at most `max` of them.
    fn read(
        &self,
        journal: JournalId,
        from_seq: u64,
        max: usize,
    ) -> Result<Vec<Record>, StorageError>;

    /// Highest seq written (0 when empty).
    fn last_seq(&self, journal: JournalId) -> Result<u64, StorageError>;

    /// Durably stores a snapshot of the journal's state as of `seq` (replaces the previous one).
    ///
    /// `seq` may not be past the journal's last record ([`StorageError::SnapshotPastEnd`]):
    /// a snapshot promises that its records were appended, and a backend that finds a
    /// snapshot past the end of its records on opening must treat them as lost. Whether the
    /// state matches the records is the caller's job, since only the caller knows what the
    /// state contains.
    fn save_snapshot(&self, journal: JournalId, seq: u64, state: &[u8])
        -> Result<(), StorageError>;

    /// The latest snapshot, if any: (seq, bytes).
    fn load_snapshot(&self, journal: JournalId) -> Result<Option<(u64, Vec<u8>)>, StorageError>;

    /// Small durable key/value settings of a data directory (shard count, secrets).
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// Durably sets a setting, replacing any previous value.
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StorageError>;

    /// Ids of journals that have at least one record or snapshot, in ascending order.
    fn journals(&self) -> Result<Vec<JournalId>, StorageError>;

    /// Leases (for clusters: shard ownership and stock leases). Conditional: grants `name` to `owner`
    /// for ttl_ms if it is free, expired, or already held by `owner`; returns the lease with a fencing epoch that
    /// increases by one every time ownership changes hands. Err(StorageError::LeaseHeld{holder, expires_in_ms}) otherwise.
    ///
    /// Time is the caller's (`now_ms`), so every contender must use the same clock. A renewal
    /// by the holder keeps the epoch even if its grant had already expired, as long as nobody
    /// else took the lease in between.
    fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<Lease, StorageError>;

    /// Frees `name` if `owner` holds it, so the next acquirer need not wait for expiry.
    /// Does nothing if `owner` does not hold it (it may have expired and been taken over):
    /// releasing must never take a lease away from its successor.
    fn release_lease(&self, name: &str, owner: &str) -> Result<(), StorageError>;
}
