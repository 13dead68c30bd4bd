//! `meta.redb`: a data directory's settings and leases.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{begin_durable_write, reading, survive_panic, writing};
use crate::error::StorageError;
use crate::store::Lease;

/// Settings by key.
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Lease state by lease name, encoded by [`LeaseState`].
const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");

/// Settings and leases are a few kilobytes; redb's 1 GiB default cache would be wasted.
const META_CACHE_SIZE_BYTES: usize = 4 * 1024 * 1024;

/// The open meta file. While it is open, redb's lock on it keeps other stores out of the
/// whole data directory.
pub(super) struct MetaFile {
    /// The file, named in error messages.
    path: PathBuf,
    /// The redb database in the file.
    db: Database,
}

impl MetaFile {
    /// Opens or creates the meta file of the data directory `dir`.
    pub(super) fn open(dir: &Path, path: &Path) -> Result<MetaFile, StorageError> {
        let db = match survive_panic(path, || {
            Database::builder()
                .set_cache_size(META_CACHE_SIZE_BYTES)
                .create(path)
        })? {
            Ok(db) => db,
            // This file's lock is the directory's lock, so name the directory.
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StorageError::Locked {
                    path: dir.to_path_buf(),
                })
            }
            Err(err) => return Err(writing(path)(err)),
        };
        Ok(MetaFile {
            path: path.to_path_buf(),
            db,
        })
    }

    pub(super) fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let txn = self.db.begin_read().map_err(reading(&self.path))?;
        let table = match txn.open_table(SETTINGS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(err) => return Err(reading(&self.path)(err)),
        };
        let value = table.get(key).map_err(reading(&self.path))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    pub(super) fn put(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        let txn = begin_durable_write(&self.db, &self.path)?;
        {
            let mut table = txn.open_table(SETTINGS).map_err(writing(&self.path))?;
            table.insert(key, value).map_err(writing(&self.path))?;
        }
        txn.commit().map_err(writing(&self.path))
    }

    pub(super) fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<Lease, StorageError> {
        // Read and decide inside the write transaction: redb serialises writers, which makes
        // the check-and-grant atomic against other contenders in this process.
        let txn = begin_durable_write(&self.db, &self.path)?;
        let lease = {
            let mut table = txn.open_table(LEASES).map_err(writing(&self.path))?;
            let current = match table.get(name).map_err(reading(&self.path))? {
                Some(bytes) => Some(LeaseState::decode(bytes.value(), &self.path, name)?),
                None => None,
            };
            let epoch = match current {
                None => 1,
                Some(state) if state.held && state.owner == owner => state.epoch,
                Some(state) if !state.held || now_ms >= state.expires_at_ms => {
                    state.epoch.saturating_add(1)
                }
                Some(state) => {
                    return Err(StorageError::LeaseHeld {
                        name: name.to_owned(),
                        expires_in_ms: state.expires_at_ms - now_ms,
                        holder: state.owner,
                    })
                }
            };
            let granted = LeaseState {
                held: true,
                epoch,
                expires_at_ms: now_ms.saturating_add(ttl_ms),
                owner: owner.to_owned(),
            };
            table
                .insert(name, granted.encode().as_slice())
                .map_err(writing(&self.path))?;
            Lease {
                name: name.to_owned(),
                owner: granted.owner,
                epoch: granted.epoch,
                expires_at_ms: granted.expires_at_ms,
            }
        };
        txn.commit().map_err(writing(&self.path))?;
        Ok(lease)
    }

    pub(super) fn release_lease(&self, name: &str, owner: &str) -> Result<(), StorageError> {
        let txn = begin_durable_write(&self.db, &self.path)?;
        {
            let mut table = txn.open_table(LEASES).map_err(writing(&self.path))?;
            let current = match table.get(name).map_err(reading(&self.path))? {
                Some(bytes) => LeaseState::decode(bytes.value(), &self.path, name)?,
                None => return Ok(()),
            };
            if !current.held || current.owner != owner {
                return Ok(());
            }
            // Keep the epoch so the next holder's epoch is still higher than every earlier one.
            let released = LeaseState {
                held: false,
                ..current
            };
            table
                .insert(name, released.encode().as_slice())
                .map_err(writing(&self.path))?;
        }
        txn.commit().map_err(writing(&self.path))
    }
}

/// A lease as stored: `[tag][epoch: u64 LE][expires_at_ms: u64 LE][owner: UTF-8]`, where the
/// tag is 1 for held and 2 for released.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LeaseState {
    /// False once released: free for anyone, but the epoch must survive.
    held: bool,
    /// Fencing epoch of the latest grant.
    epoch: u64,
    /// When the latest grant ends, in the contenders' clock.
    expires_at_ms: u64,
    /// Holder of the latest grant.
    owner: String,
}

const LEASE_TAG_HELD: u8 = 1;
const LEASE_TAG_RELEASED: u8 = 2;
const LEASE_HEADER_BYTES: usize = 17;

impl LeaseState {
    fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(LEASE_HEADER_BYTES + self.owner.len());
        bytes.push(if self.held {
            LEASE_TAG_HELD
        } else {
            LEASE_TAG_RELEASED
        });
        bytes.extend_from_slice(&self.epoch.to_le_bytes());
        bytes.extend_from_slice(&self.expires_at_ms.to_le_bytes());
        bytes.extend_from_slice(self.owner.as_bytes());
        bytes
    }

    fn decode(bytes: &[u8], path: &Path, name: &str) -> Result<LeaseState, StorageError> {
        let corrupt = |what: &str| StorageError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("lease {name}: {what}"),
        };
        let (header, owner) = bytes
            .split_at_checked(LEASE_HEADER_BYTES)
            .ok_or_else(|| corrupt("record too short"))?;
        let held = match header[0] {
            LEASE_TAG_HELD => true,
            LEASE_TAG_RELEASED => false,
            tag => return Err(corrupt(&format!("unknown tag {tag}"))),
        };
        let u64_at = |at: usize| {
            header
                .get(at..at + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_le_bytes)
                .ok_or_else(|| corrupt("record too short"))
        };
        Ok(LeaseState {
            held,
            epoch: u64_at(1)?,
            expires_at_ms: u64_at(9)?,
            owner: String::from_utf8(owner.to_vec()).map_err(|_| corrupt("owner is not UTF-8"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_state_roundtrips_and_rejects_garbage() {
        let state = LeaseState {
            held: false,
            epoch: 42,
            expires_at_ms: 1_700_000_000_000,
            owner: "node-a".into(),
        };
        let path = Path::new("meta.redb");
        let decoded = LeaseState::decode(&state.encode(), path, "l");
        assert_eq!(decoded.ok(), Some(state));
        assert!(LeaseState::decode(&[1, 2, 3], path, "l").is_err());
        assert!(LeaseState::decode(&[9; 20], path, "l").is_err());
    }
}
