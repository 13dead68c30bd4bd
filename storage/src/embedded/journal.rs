//! One journal: its records in an append-only log file (see [`super::log`]) and its latest
//! snapshot in a redb file beside it.
//!
//! Every record and snapshot is stored with a checksum (see [`super::checksum`]) that is
//! verified on every read, so damaged bytes are refused as [`StorageError::Corrupt`] instead
//! of being replayed. The redb file records the layout version, so a journal of an older
//! layout is refused with a message saying so rather than as damage.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::checksum::{self, Kind};
use super::log::{self, RecordLog};
use super::{begin_durable_write, reading, survive_panic, writing};
use crate::error::StorageError;
use crate::store::{JournalId, Record};

/// Records keyed by seq, in layouts 1 and 2 only: read to recognise those files.
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// At most one entry: the latest snapshot, keyed by the seq it was taken at.
const SNAPSHOT: TableDefinition<u64, &[u8]> = TableDefinition::new("snapshot");
/// The file's layout version under [`FORMAT_KEY`].
const FORMAT: TableDefinition<&str, u32> = TableDefinition::new("format");
const FORMAT_KEY: &str = "version";
/// Layout this build writes and reads: 3 = records in the journal's log file, the snapshot
/// here, each with a checksum. Layout 2 kept checksummed records in this file; files without a
/// version that hold data were written by layout 1 (no checksums).
const FORMAT_VERSION: u32 = 3;
/// The layout that kept records inside the redb file.
const FORMAT_RECORDS_IN_REDB: u32 = 2;

/// redb's page cache per journal file. Its default (1 GiB) is sized for one database per
/// process; with one file per shard it would let a few busy shards take the machine's memory.
/// Recovery reads a journal once, front to back, so a small cache costs little.
const JOURNAL_CACHE_SIZE_BYTES: usize = 32 * 1024 * 1024;

/// Caps the up-front allocation of a read so that a caller passing `usize::MAX` as "all" does
/// not allocate for records that do not exist.
const READ_PREALLOC_RECORDS_MAX: usize = 4096;

/// An open journal.
pub(super) struct JournalFile {
    /// The redb file, named in error messages.
    path: PathBuf,
    /// The journal stored in the file, named in error messages.
    journal: JournalId,
    /// The redb database in the file: layout version and snapshot.
    db: Database,
    /// The records.
    log: RecordLog,
    /// Held across the fence check and the commit, so two appenders cannot both pass the check.
    append_lock: Mutex<()>,
    /// Highest committed seq. Changed only under `append_lock` and only after a commit
    /// succeeded; read without the lock so `last_seq` never waits behind an fsync.
    last_seq: AtomicU64,
}

impl JournalFile {
    /// Opens or creates the file of `journal`, checks its layout version and loads its last seq.
    pub(super) fn open(path: PathBuf, journal: JournalId) -> Result<JournalFile, StorageError> {
        Self::open_unnamed(path, journal).map_err(|err| match err {
            // redb's own findings (a failed repair, a panic) cannot know which journal the
            // file holds; the operator reading the message should not have to work it out.
            StorageError::Corrupt { path, detail } if !detail.starts_with("journal ") => {
                StorageError::Corrupt {
                    path,
                    detail: format!("journal {journal}: {detail}"),
                }
            }
            err => err,
        })
    }

    fn open_unnamed(path: PathBuf, journal: JournalId) -> Result<JournalFile, StorageError> {
        let db = survive_panic(&path, || {
            Database::builder()
                .set_cache_size(JOURNAL_CACHE_SIZE_BYTES)
                .create(&path)
        })?
        .map_err(writing(&path))?;
        let stamped = check_format(&db, &path, journal)?;
        let log_path = path.with_extension("log");
        // The log is created before the layout is stamped, so a stamped journal without its
        // log lost it (a crash in between leaves an unstamped file and a new log).
        if stamped && !log::exists(&log_path)? {
            return Err(StorageError::Corrupt {
                path: log_path,
                detail: format!(
                    "journal {journal}: the record log is missing, though {} says the journal has one",
                    path.display()
                ),
            });
        }
        let log = RecordLog::open(log_path, journal)?;
        if !stamped {
            stamp_format(&db, &path)?;
        }
        let last_seq = log.last_seq();
        if let Some(snapshot_seq) = last_key(&db, &path, SNAPSHOT)?.filter(|&s| s > last_seq) {
            return Err(StorageError::Corrupt {
                path,
                detail: format!(
                    "journal {journal}: the snapshot was taken at record {snapshot_seq} but the log ends at record {last_seq}; the log file is missing or was cut"
                ),
            });
        }
        Ok(JournalFile {
            path,
            journal,
            db,
            log,
            append_lock: Mutex::new(()),
            last_seq: AtomicU64::new(last_seq),
        })
    }

    /// The refusal of a stored value whose checksum failed.
    fn corrupt(&self, what: &str, mismatch: &checksum::Mismatch) -> StorageError {
        StorageError::Corrupt {
            path: self.path.clone(),
            detail: format!("journal {} {what}: {mismatch}", self.journal),
        }
    }

    pub(super) fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Acquire)
    }

    pub(super) fn append(
        &self,
        journal: JournalId,
        first_seq: u64,
        events: &[&[u8]],
    ) -> Result<(), StorageError> {
        // The guard protects no data of its own and `last_seq` is only stored after a
        // successful commit, so a panic while it was held left nothing half-done.
        let _guard = self
            .append_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let last_seq = self.last_seq.load(Ordering::Acquire);
        let expected = last_seq.saturating_add(1);
        if first_seq != expected {
            return Err(StorageError::SequenceMismatch {
                journal,
                expected,
                got: first_seq,
            });
        }
        let Some(new_last_seq) = u64::try_from(events.len())
            .ok()
            .and_then(|count| last_seq.checked_add(count))
        else {
            return Err(StorageError::Backend(format!(
                "journal {journal}: a batch of {} records would overflow the seq counter",
                events.len()
            )));
        };
        if events.is_empty() {
            return Ok(());
        }
        self.log.append(first_seq, events)?;
        self.last_seq.store(new_last_seq, Ordering::Release);
        Ok(())
    }

    pub(super) fn read(&self, from_seq: u64, max: usize) -> Result<Vec<Record>, StorageError> {
        if max == 0 || from_seq > self.last_seq() {
            return Ok(Vec::new());
        }
        let mut records = Vec::with_capacity(max.min(READ_PREALLOC_RECORDS_MAX));
        self.log.read(from_seq.max(1), max, &mut records)?;
        Ok(records)
    }

    pub(super) fn save_snapshot(&self, seq: u64, state: &[u8]) -> Result<(), StorageError> {
        let last_seq = self.last_seq();
        if seq > last_seq {
            return Err(StorageError::SnapshotPastEnd {
                journal: self.journal,
                seq,
                last_seq,
            });
        }
        let txn = begin_durable_write(&self.db, &self.path)?;
        {
            let mut table = txn.open_table(SNAPSHOT).map_err(writing(&self.path))?;
            table.retain(|_, _| false).map_err(writing(&self.path))?;
            let mut sealed = Vec::new();
            checksum::seal_into(Kind::Snapshot, seq, state, &mut sealed);
            table
                .insert(seq, sealed.as_slice())
                .map_err(writing(&self.path))?;
        }
        txn.commit().map_err(writing(&self.path))
    }

    pub(super) fn load_snapshot(&self) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        let txn = self.db.begin_read().map_err(reading(&self.path))?;
        let table = match txn.open_table(SNAPSHOT) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(err) => return Err(reading(&self.path)(err)),
        };
        let Some((seq, state)) = table.last().map_err(reading(&self.path))? else {
            return Ok(None);
        };
        let seq = seq.value();
        let state = checksum::unseal(Kind::Snapshot, seq, state.value()).map_err(|mismatch| {
            self.corrupt(&format!("snapshot taken at record {seq}"), &mismatch)
        })?;
        Ok(Some((seq, state.to_vec())))
    }

    pub(super) fn has_snapshot(&self) -> Result<bool, StorageError> {
        let txn = self.db.begin_read().map_err(reading(&self.path))?;
        match txn.open_table(SNAPSHOT) {
            Ok(table) => Ok(!table.is_empty().map_err(reading(&self.path))?),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
            Err(err) => Err(reading(&self.path)(err)),
        }
    }
}

/// Refuses files of another layout. `Ok(true)`: the file is of this build's layout;
/// `Ok(false)`: a new (empty) file, to be stamped with [`stamp_format`].
fn check_format(db: &Database, path: &Path, journal: JournalId) -> Result<bool, StorageError> {
    let found = {
        let txn = db.begin_read().map_err(reading(path))?;
        match txn.open_table(FORMAT) {
            Ok(table) => table
                .get(FORMAT_KEY)
                .map_err(reading(path))?
                .map(|v| v.value()),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(err) => return Err(reading(path)(err)),
        }
    };
    let has_data = || -> Result<bool, StorageError> {
        Ok(last_key(db, path, EVENTS)?.is_some() || last_key(db, path, SNAPSHOT)?.is_some())
    };
    match found {
        Some(FORMAT_VERSION) => Ok(true),
        Some(FORMAT_RECORDS_IN_REDB) => Err(StorageError::Backend(format!(
            "{}: journal {journal} keeps its records inside the redb file (layout {FORMAT_RECORDS_IN_REDB}); \
             this build reads layout {FORMAT_VERSION} (records in a log file) only: replay it with \
             the release that wrote it or start from an empty data directory",
            path.display()
        ))),
        Some(other) => Err(StorageError::Backend(format!(
            "{}: journal file layout {other}, but this build reads layout {FORMAT_VERSION}; \
             open it with the yunquan release that wrote it",
            path.display()
        ))),
        None if has_data()? => Err(StorageError::Backend(format!(
            "{}: journal {journal} was written by a yunquan build without record checksums \
             (layout 1); this build reads layout {FORMAT_VERSION} only: replay it with \
             the release that wrote it or start from an empty data directory",
            path.display()
        ))),
        None => Ok(false),
    }
}

/// Records this build's layout in a new journal's redb file.
fn stamp_format(db: &Database, path: &Path) -> Result<(), StorageError> {
    let txn = begin_durable_write(db, path)?;
    {
        let mut table = txn.open_table(FORMAT).map_err(writing(path))?;
        table
            .insert(FORMAT_KEY, FORMAT_VERSION)
            .map_err(writing(path))?;
    }
    txn.commit().map_err(writing(path))
}

/// The highest key of `table`, `None` if it is empty or was never created.
fn last_key(
    db: &Database,
    path: &Path,
    table: TableDefinition<u64, &[u8]>,
) -> Result<Option<u64>, StorageError> {
    let txn = db.begin_read().map_err(reading(path))?;
    let table = match txn.open_table(table) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(err) => return Err(reading(path)(err)),
    };
    let last = table.last().map_err(reading(path))?;
    Ok(last.map(|(key, _)| key.value()))
}
