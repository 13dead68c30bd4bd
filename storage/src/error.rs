//! The one error type every backend returns.
//!
//! Messages are written for the operator reading a log line at 3 a.m.: each says what went
//! wrong and what to do about it, so that nobody has to read this crate to fix a deployment.

use std::path::PathBuf;

use crate::store::JournalId;

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// Another store (in this or another process) holds the data directory's lock.
    #[error(
        "data directory {} is locked by another yunquan process (or is already open in this one); \
         stop that process or point this one at a different data directory",
        .path.display()
    )]
    Locked {
        /// The data directory, or the file inside it, whose lock was refused.
        path: PathBuf,
    },

    /// Writing or syncing to disk failed; the batch or value was not stored.
    #[error(
        "disk write failed: {source}; check free space and permissions of {}",
        .path.display()
    )]
    Write {
        /// The file or directory being written.
        path: PathBuf,
        /// What the operating system reported.
        source: std::io::Error,
    },

    /// Reading from disk, or opening a file, failed.
    #[error(
        "disk read failed: {source}; check that {} exists, is readable by this user and that the disk is healthy",
        .path.display()
    )]
    Io {
        /// The file or directory being read.
        path: PathBuf,
        /// What the operating system reported.
        source: std::io::Error,
    },

    /// The append fence refused a batch: someone else wrote to the journal, or the caller lost
    /// track of its position. Nothing of the batch was stored.
    #[error(
        "journal {journal}: append at seq {got} refused because the next seq is {expected}; \
         another writer owns this journal or this writer is stale: stop writing and reload it from storage"
    )]
    SequenceMismatch {
        /// The journal that refused the append.
        journal: JournalId,
        /// The seq the journal would have accepted (its last seq plus one).
        expected: u64,
        /// The seq the caller asked to append at.
        got: u64,
    },

    /// A snapshot was offered for a seq past the journal's last record: it would claim records
    /// that do not exist. Nothing was stored.
    #[error(
        "journal {journal}: snapshot at seq {seq} refused because the journal ends at seq {last_seq}; \
         snapshot only state whose records are already appended"
    )]
    SnapshotPastEnd {
        /// The journal.
        journal: JournalId,
        /// The seq the snapshot claimed.
        seq: u64,
        /// The journal's last seq.
        last_seq: u64,
    },

    /// Stored data failed its checksum or could not be decoded.
    #[error(
        "data file {} is corrupt: {detail}; restore it from a backup or move it aside (the journal's data is then lost)",
        .path.display()
    )]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What was found to be wrong.
        detail: String,
    },

    /// A lease is owned by someone else and has not expired yet.
    #[error("lease {name} is held by {holder} for another {expires_in_ms} ms; retry after it expires or after {holder} releases it")]
    LeaseHeld {
        /// The lease that was asked for.
        name: String,
        /// Its current owner.
        holder: String,
        /// Time until the current grant runs out.
        expires_in_ms: u64,
    },

    /// Anything else the backend reported; the text says which file and what happened.
    #[error("storage backend error: {0}")]
    Backend(String),
}

impl StorageError {
    /// Whether calling again later, unchanged, may succeed.
    ///
    /// A refused fence is not retryable: the caller must reload the journal first, or it would
    /// overwrite another writer's history. Disk errors are not retryable on the same store either,
    /// because backends such as redb refuse further writes after a failed sync until reopened.
    pub fn is_retryable(&self) -> bool {
        match self {
            // The other holder may exit or the lease may expire.
            Self::Locked { .. } | Self::LeaseHeld { .. } => true,
            Self::Write { .. }
            | Self::Io { .. }
            | Self::SequenceMismatch { .. }
            | Self::SnapshotPastEnd { .. }
            | Self::Corrupt { .. }
            | Self::Backend(_) => false,
        }
    }
}
