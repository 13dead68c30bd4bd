//! The embedded backend: record logs and redb files in one local data directory.
//!
//! Layout of a data directory:
//!
//! - `meta.redb`: settings and leases. Its file lock is held for the store's lifetime and is
//!   what stops a second process (or a second store in this process) from using the directory.
//! - `journal-00000.log`, `journal-00001.log`, ...: one append-only record log per journal
//!   (see `log.rs`): checksummed batches, each written with one `pwrite` and one `fdatasync`.
//! - `journal-00000.redb`, `journal-00001.redb`, ...: beside each log, its layout version and
//!   latest snapshot. Separate files per journal mean each shard's fsync is independent and no
//!   shard waits on another's write; a single file would serialise every commit in the process.
//!
//! Every write is durable before it returns `Ok`: a log batch is synced with `fdatasync`, and
//! redb writes (settings, leases, snapshots) commit with `Durability::Immediate`. redb rolls
//! back to its last complete commit after a crash; the log drops a torn tail back to its last
//! whole batch. Every journal record and snapshot also carries a checksum of its own, verified
//! on every read: damaged bytes are refused as [`StorageError::Corrupt`], never returned.
//!
//! One limit of every fsync-based store applies: if the disk fails in the middle of a commit,
//! the call returns `Err` and the file refuses further use until the process restarts, but
//! whether that last batch is on disk is only known after reopening. Shards must therefore
//! treat a write error as fatal and recover from storage, never retry blind.

mod checksum;
mod journal;
mod log;
mod meta;
mod room;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use crate::error::StorageError;
use crate::store::{JournalId, Lease, Record, Store};
use journal::JournalFile;
use meta::MetaFile;

/// File name of the settings-and-leases database inside a data directory.
const META_FILE_NAME: &str = "meta.redb";
const JOURNAL_FILE_PREFIX: &str = "journal-";
const JOURNAL_FILE_SUFFIX: &str = ".redb";
/// Suffix of a journal's record log, beside its redb file.
const LOG_FILE_SUFFIX: &str = ".log";

/// A [`Store`] backed by redb files in one directory.
pub struct EmbeddedStore {
    /// The data directory this store owns.
    dir: PathBuf,
    /// Journal files opened so far. Opened on first use so that startup time and memory do not
    /// grow with the number of journals a directory has ever had. Declared before `meta` so the
    /// journal files are closed before the directory lock is released.
    journals: RwLock<HashMap<JournalId, Arc<JournalFile>>>,
    /// Settings and leases; holding it open holds the directory lock.
    meta: MetaFile,
}

impl EmbeddedStore {
    /// Opens (creating if needed) the data directory `dir`.
    ///
    /// Fails with [`StorageError::Locked`] if another store, in this process or another one,
    /// has it open.
    pub fn open(dir: &Path) -> Result<EmbeddedStore, StorageError> {
        std::fs::create_dir_all(dir).map_err(|source| StorageError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let meta = MetaFile::open(dir, &dir.join(META_FILE_NAME))?;
        Ok(EmbeddedStore {
            dir: dir.to_path_buf(),
            journals: RwLock::new(HashMap::new()),
            meta,
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn journal_path(&self, journal: JournalId) -> PathBuf {
        self.dir.join(journal_file_name(journal))
    }

    /// The open file of `journal`; `None` if it has no file and `create` is false, so that
    /// reads of unknown journals leave no empty files behind.
    fn journal(
        &self,
        journal: JournalId,
        create: bool,
    ) -> Result<Option<Arc<JournalFile>>, StorageError> {
        // The map is only a cache of open handles, valid even if a holder panicked.
        if let Some(file) = self
            .journals
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&journal)
        {
            return Ok(Some(Arc::clone(file)));
        }
        let mut journals = self
            .journals
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(file) = journals.get(&journal) {
            return Ok(Some(Arc::clone(file)));
        }
        let path = self.journal_path(journal);
        // Either file makes the journal exist: opening then finds out whether the other one
        // is missing, instead of reporting an empty journal.
        let exists = log::exists(&path)? || log::exists(&path.with_extension("log"))?;
        if !exists && !create {
            return Ok(None);
        }
        // Opening under the write lock briefly stalls other journals' lookups, but it happens
        // once per journal and keeps two threads from opening the same file (which redb refuses).
        let file = Arc::new(JournalFile::open(path, journal)?);
        if !exists {
            sync_dir(&self.dir)?;
        }
        journals.insert(journal, Arc::clone(&file));
        Ok(Some(file))
    }

    /// The open file of `journal`, created if it does not exist yet.
    fn journal_for_write(&self, journal: JournalId) -> Result<Arc<JournalFile>, StorageError> {
        self.journal(journal, true)?.ok_or_else(|| {
            StorageError::Backend(format!(
                "journal {journal} could not be created in {}",
                self.dir.display()
            ))
        })
    }
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let open_journals = self
            .journals
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("EmbeddedStore")
            .field("dir", &self.dir)
            .field("open_journals", &open_journals)
            .finish()
    }
}

impl Store for EmbeddedStore {
    fn append(
        &self,
        journal: JournalId,
        first_seq: u64,
        events: &[&[u8]],
    ) -> Result<(), StorageError> {
        self.journal_for_write(journal)?
            .append(journal, first_seq, events)
    }

    fn read(
        &self,
        journal: JournalId,
        from_seq: u64,
        max: usize,
    ) -> Result<Vec<Record>, StorageError> {
        match self.journal(journal, false)? {
            Some(file) => file.read(from_seq, max),
            None => Ok(Vec::new()),
        }
    }

    fn last_seq(&self, journal: JournalId) -> Result<u64, StorageError> {
        Ok(self
            .journal(journal, false)?
            .map_or(0, |file| file.last_seq()))
    }

    fn save_snapshot(
        &self,
        journal: JournalId,
        seq: u64,
        state: &[u8],
    ) -> Result<(), StorageError> {
        self.journal_for_write(journal)?.save_snapshot(seq, state)
    }

    fn load_snapshot(&self, journal: JournalId) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        match self.journal(journal, false)? {
            Some(file) => file.load_snapshot(),
            None => Ok(None),
        }
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.meta.get(key)
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.meta.put(key, value)
    }

    fn journals(&self) -> Result<Vec<JournalId>, StorageError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|source| StorageError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| StorageError::Io {
                path: self.dir.clone(),
                source,
            })?;
            let Some(id) = entry.file_name().to_str().and_then(parse_journal_file_name) else {
                continue;
            };
            // A journal has a .redb and a .log file; list it once.
            if ids.contains(&id) {
                continue;
            }
            // A file can exist without content, e.g. after an append refused by the fence.
            if let Some(file) = self.journal(id, false)? {
                if file.last_seq() > 0 || file.has_snapshot()? {
                    ids.push(id);
                }
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<Lease, StorageError> {
        self.meta.acquire_lease(name, owner, ttl_ms, now_ms)
    }

    fn release_lease(&self, name: &str, owner: &str) -> Result<(), StorageError> {
        self.meta.release_lease(name, owner)
    }
}

fn journal_file_name(journal: JournalId) -> String {
    format!("{JOURNAL_FILE_PREFIX}{journal:05}{JOURNAL_FILE_SUFFIX}")
}

/// The journal id of a file name, only if it is exactly the name that id is stored under
/// (so a stray `journal-7.redb` is not mistaken for `journal-00007.redb`).
/// The journal of a file name, its redb file's or its log's.
fn parse_journal_file_name(name: &str) -> Option<JournalId> {
    let rest = name.strip_prefix(JOURNAL_FILE_PREFIX)?;
    let (digits, suffix) = match rest.strip_suffix(JOURNAL_FILE_SUFFIX) {
        Some(digits) => (digits, JOURNAL_FILE_SUFFIX),
        None => (rest.strip_suffix(LOG_FILE_SUFFIX)?, LOG_FILE_SUFFIX),
    };
    let id = digits.parse::<JournalId>().ok()?;
    (format!("{JOURNAL_FILE_PREFIX}{id:05}{suffix}") == name).then_some(id)
}

/// Makes a newly created file's directory entry durable; without it a crash can lose the
/// whole file even though its contents were fsynced.
fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| StorageError::Write {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Whether a failed redb call was reading or writing, to pick the message for I/O errors.
#[derive(Debug, Clone, Copy)]
enum Access {
    Read,
    Write,
}

/// Turns a redb error about the file at `path` into a message the operator can act on.
fn from_redb(err: impl Into<redb::Error>, path: &Path, access: Access) -> StorageError {
    let path = path.to_path_buf();
    match err.into() {
        redb::Error::DatabaseAlreadyOpen => StorageError::Locked { path },
        redb::Error::Corrupted(detail) => StorageError::Corrupt { path, detail },
        err @ (redb::Error::TableTypeMismatch { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TypeDefinitionChanged { .. }) => StorageError::Corrupt {
            path,
            detail: format!("not laid out as a yunquan data file: {err}"),
        },
        redb::Error::Io(source) => match access {
            Access::Read => StorageError::Io { path, source },
            Access::Write => StorageError::Write { path, source },
        },
        redb::Error::PreviousIo => StorageError::Backend(format!(
            "{}: an earlier disk write failed, so the file refuses further use; fix the disk, then restart the process",
            path.display()
        )),
        redb::Error::UpgradeRequired(version) => StorageError::Backend(format!(
            "{} uses redb file format {version}, which this build cannot open; open it with the yunquan release that wrote it",
            path.display()
        )),
        redb::Error::ValueTooLarge(len) => StorageError::Backend(format!(
            "{}: a value of {len} bytes exceeds redb's 3 GiB limit",
            path.display()
        )),
        err => StorageError::Backend(format!("{}: {err}", path.display())),
    }
}

/// Adapter for `map_err` on reads of `path`.
fn reading<E: Into<redb::Error>>(path: &Path) -> impl FnOnce(E) -> StorageError + '_ {
    move |err| from_redb(err, path, Access::Read)
}

/// Adapter for `map_err` on writes to `path`.
fn writing<E: Into<redb::Error>>(path: &Path) -> impl FnOnce(E) -> StorageError + '_ {
    move |err| from_redb(err, path, Access::Write)
}

/// Runs a redb call on the file at `path`, turning a panic into [`StorageError::Corrupt`].
///
/// redb asserts on some damage instead of returning an error: opening a file shorter than its
/// header says it is (a truncated copy, a torn restore) panics. Unwinding through the caller
/// would take the server down with a message naming neither the file nor a remedy, so the
/// panic is caught here and reported like any other damaged file. The default panic hook still
/// prints redb's own message first, which helps whoever debugs the file.
fn survive_panic<T>(path: &Path, call: impl FnOnce() -> T) -> Result<T, StorageError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no message")
            // Assertion messages span lines; a log line should not.
            .replace('\n', " ");
        StorageError::Corrupt {
            path: path.to_path_buf(),
            detail: format!(
                "the storage engine failed on it ({message}); the file is truncated or damaged"
            ),
        }
    })
}

/// Starts a write transaction that is fsynced on commit, which is what makes `Ok` mean durable.
fn begin_durable_write(
    db: &redb::Database,
    path: &Path,
) -> Result<redb::WriteTransaction, StorageError> {
    let mut txn = db.begin_write().map_err(writing(path))?;
    txn.set_durability(redb::Durability::Immediate)
        .map_err(writing(path))?;
    Ok(txn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_file_names_roundtrip_and_reject_strays() {
        assert_eq!(journal_file_name(7), "journal-00007.redb");
        assert_eq!(parse_journal_file_name("journal-00007.redb"), Some(7));
        assert_eq!(
            parse_journal_file_name("journal-123456.redb"),
            Some(123_456)
        );
        assert_eq!(parse_journal_file_name("journal-7.redb"), None);
        assert_eq!(parse_journal_file_name("meta.redb"), None);
        assert_eq!(parse_journal_file_name("journal-00007.redb.tmp"), None);
    }
}
