//! A test tool: a [`Store`] wrapper that fails appends (and snapshots) on command.
//!
//! **Not for production.** It exists so that tests can show what the engine does when its
//! disk refuses a write: which answers callers get, that nothing of a refused batch stays in
//! memory, that stock and budget taken for it are given back, and that service resumes once
//! writes succeed again. Real disks fail this way too (a full disk, an I/O error on fsync);
//! unlike them, an injected failure touches nothing, so the inner store keeps working and the
//! test decides when the "disk" recovers.
//!
//! One switch breaks the [`Store`] contract on purpose: [`FaultyStore::fail_appends_after_writing`]
//! stores the batch and then reports failure. That is the ambiguous outcome every durable store
//! can produce (an fsync that fails after the data reached the disk, a network store whose
//! reply is lost), and callers must not assume that an `Err` means "not written".
//!
//! A `FaultyStore` is cheap to clone and every clone shares the same switches: hand one clone
//! to the engine (`Engine::start_on(Arc::new(faulty.clone()), ..)`) and flip the switches on
//! the other.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::error::StorageError;
use crate::store::{JournalId, Lease, Record, Store};

/// Refused appends remembered for [`FaultyStore::refused_appends`]; older ones are dropped so
/// that a long test cannot grow the log without bound.
const REFUSED_LOG_ENTRIES_MAX: usize = 1024;

/// One append the wrapper refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedAppend {
    /// The journal it was for.
    pub journal: JournalId,
    /// The seq its first event would have had.
    pub first_seq: u64,
    /// How many events the batch carried.
    pub events: usize,
}

/// Whether appends are held back, and how many are waiting.
#[derive(Debug, Default)]
struct Gate {
    /// True between [`FaultyStore::hold_appends`] and [`FaultyStore::release_appends`].
    held: bool,
    /// Appends blocked at the gate right now.
    waiting: usize,
}

/// The switches shared by every clone of one `FaultyStore`.
#[derive(Debug, Default)]
struct Faults {
    /// Every non-empty append fails while set.
    fail_appends: AtomicBool,
    /// The next this-many non-empty appends fail (on top of `fail_appends`).
    fail_next_appends: AtomicU64,
    /// Every non-empty append is passed on and then reported as failed while set.
    fail_after_writing: AtomicBool,
    /// Every snapshot save fails while set.
    fail_snapshots: AtomicBool,
    /// Holds appends back so a test can let commands pile up into one batch.
    gate: Mutex<Gate>,
    /// Signalled whenever `gate` changes.
    gate_changed: Condvar,
    /// The most recent refused appends, oldest first.
    refused: Mutex<Vec<RefusedAppend>>,
}

/// A [`Store`] that passes every call to `inner` unless a fault is switched on. See the
/// module documentation: this is a test tool.
#[derive(Debug, Clone)]
pub struct FaultyStore {
    /// The store doing the real work.
    inner: Arc<dyn Store>,
    /// Switches shared with every clone.
    faults: Arc<Faults>,
}

impl FaultyStore {
    /// Wraps `inner` with every fault switched off.
    pub fn new(inner: Arc<dyn Store>) -> FaultyStore {
        FaultyStore {
            inner,
            faults: Arc::new(Faults::default()),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// While `on`, every append with at least one event fails with [`StorageError::Write`]
    /// and the inner store is not called.
    pub fn fail_appends(&self, on: bool) {
        self.faults.fail_appends.store(on, Ordering::SeqCst);
    }

    /// Makes the next `n` appends with at least one event fail, replacing any count left.
    pub fn fail_next_appends(&self, n: u64) {
        self.faults.fail_next_appends.store(n, Ordering::SeqCst);
    }

    /// While `on`, every append with at least one event is stored by the inner store and then
    /// reported as failed with [`StorageError::Write`]: the write landed, its acknowledgement
    /// was lost. Refused appends (`fail_appends`, `fail_next_appends`) take precedence.
    pub fn fail_appends_after_writing(&self, on: bool) {
        self.faults.fail_after_writing.store(on, Ordering::SeqCst);
    }

    /// While `on`, every snapshot save fails with [`StorageError::Write`].
    pub fn fail_snapshots(&self, on: bool) {
        self.faults.fail_snapshots.store(on, Ordering::SeqCst);
    }

    /// Blocks every append (before it is failed or passed on) until
    /// [`FaultyStore::release_appends`], so a test can queue several commands behind one
    /// write and make them form a single batch.
    pub fn hold_appends(&self) {
        self.gate().held = true;
    }

    /// Lets held appends, and all later ones, through.
    pub fn release_appends(&self) {
        self.gate().held = false;
        self.faults.gate_changed.notify_all();
    }

    /// Appends blocked by [`FaultyStore::hold_appends`] right now.
    pub fn appends_held(&self) -> usize {
        self.gate().waiting
    }

    /// The appends refused so far (the most recent ones if there were many), oldest first.
    pub fn refused_appends(&self) -> Vec<RefusedAppend> {
        self.faults
            .refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The gate's state; it stays consistent even if a holder panicked.
    fn gate(&self) -> std::sync::MutexGuard<'_, Gate> {
        self.faults
            .gate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn wait_at_gate(&self) {
        let mut gate = self.gate();
        if !gate.held {
            return;
        }
        gate.waiting += 1;
        while gate.held {
            gate = self
                .faults
                .gate_changed
                .wait(gate)
                .unwrap_or_else(PoisonError::into_inner);
        }
        gate.waiting -= 1;
    }

    /// Whether this non-empty append must fail; consumes one of `fail_next_appends`.
    fn append_fails(&self) -> bool {
        let counted = self
            .faults
            .fail_next_appends
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        counted || self.faults.fail_appends.load(Ordering::SeqCst)
    }

    fn injected(journal: JournalId, what: &str) -> StorageError {
        StorageError::Write {
            path: PathBuf::from(format!("fault-injection/journal-{journal}")),
            source: std::io::Error::other(format!("{what} failed on purpose by FaultyStore")),
        }
    }
}

impl Store for FaultyStore {
    fn append(
        &self,
        journal: JournalId,
        first_seq: u64,
        events: &[&[u8]],
    ) -> Result<(), StorageError> {
        self.wait_at_gate();
        // An empty batch writes nothing, so a failing disk would not notice it either.
        if !events.is_empty() && self.append_fails() {
            let mut refused = self
                .faults
                .refused
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if refused.len() >= REFUSED_LOG_ENTRIES_MAX {
                refused.remove(0);
            }
            refused.push(RefusedAppend {
                journal,
                first_seq,
                events: events.len(),
            });
            return Err(Self::injected(journal, "append"));
        }
        self.inner.append(journal, first_seq, events)?;
        if !events.is_empty() && self.faults.fail_after_writing.load(Ordering::SeqCst) {
            return Err(Self::injected(
                journal,
                "acknowledgement of a stored append",
            ));
        }
        Ok(())
    }

    fn read(
        &self,
        journal: JournalId,
        from_seq: u64,
        max: usize,
    ) -> Result<Vec<Record>, StorageError> {
        self.inner.read(journal, from_seq, max)
    }

    fn last_seq(&self, journal: JournalId) -> Result<u64, StorageError> {
        self.inner.last_seq(journal)
    }

    fn save_snapshot(
        &self,
        journal: JournalId,
        seq: u64,
        state: &[u8],
    ) -> Result<(), StorageError> {
        if self.faults.fail_snapshots.load(Ordering::SeqCst) {
            return Err(Self::injected(journal, "snapshot"));
        }
        self.inner.save_snapshot(journal, seq, state)
    }

    fn load_snapshot(&self, journal: JournalId) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        self.inner.load_snapshot(journal)
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get_meta(key)
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.inner.put_meta(key, value)
    }

    fn journals(&self) -> Result<Vec<JournalId>, StorageError> {
        self.inner.journals()
    }

    fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<Lease, StorageError> {
        self.inner.acquire_lease(name, owner, ttl_ms, now_ms)
    }

    fn release_lease(&self, name: &str, owner: &str) -> Result<(), StorageError> {
        self.inner.release_lease(name, owner)
    }
}
