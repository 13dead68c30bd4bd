//! One journal's records: an append-only file of checksummed batches, synced once per batch.
//!
//! Why not the journal's redb file: a redb commit rewrites B-tree, allocator and header pages
//! and costs several block writes per fsync. On the reference machine a durable commit of ten
//! small records took 470-500 µs and 220-240 µs of CPU in redb, against 155-165 µs and 69 µs
//! for one `pwrite` + `fdatasync` into space this file had already filled with zeros.
//!
//! Layout (all integers little-endian):
//!
//! - File header, [`FILE_HEADER_BYTES`]: [`FILE_MAGIC`], layout `u32`, journal `u32`, CRC-32 of
//!   the 16 bytes before it, zeros.
//! - Batches, each at a multiple of [`BATCH_ALIGN_BYTES`]: a [`BATCH_HEADER_BYTES`] header
//!   ([`BATCH_MAGIC`], records `u32`, first seq `u64`, body bytes `u32`, body CRC `u32`,
//!   header CRC `u32` over the 24 bytes before it, zero `u32`), then the body: per record its
//!   sealed length `u32` and the record sealed with its seq (see [`super::checksum`]).
//! - Zeros after the last batch. The file grows by written zeros, a quarter of its size at a
//!   time, mostly in the background (see [`super::room`]), so a batch's `fdatasync` flushes
//!   its own blocks and no size or extent change.
//!
//! Opening scans every batch. An all-zero header ends the log. A batch that does not check
//! out (torn header or body, wrong seq, cut short by the end of the file) is the torn tail of
//! a write that was never acknowledged, because each batch is synced before the next is
//! written, unless an intact batch of a later seq follows it: then acknowledged data is
//! damaged and the file is refused as [`StorageError::Corrupt`]. A torn tail is zeroed.
//!
//! A failed write or sync leaves the file's tail unknown (Linux may drop the dirty pages of a
//! failed fsync), so the log refuses every later call until it is reopened from disk.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use super::checksum::{self, Kind};
use super::room::{Room, STEP_MIN_BYTES};
use crate::error::StorageError;
use crate::store::{JournalId, Record};

/// First bytes of every journal log file.
const FILE_MAGIC: [u8; 8] = *b"YQJLOG\0\0";
/// Layout of the file this build writes and reads.
pub(super) const LOG_LAYOUT: u32 = 1;
/// Bytes before the first batch.
const FILE_HEADER_BYTES: u64 = 64;
/// First four bytes of every batch header ("YQB1").
const BATCH_MAGIC: u32 = u32::from_le_bytes(*b"YQB1");
/// Size of a batch header.
const BATCH_HEADER_BYTES: usize = 32;
/// Batches start at multiples of this, so a search for intact batches after damage looks at
/// one offset in eight.
const BATCH_ALIGN_BYTES: u64 = 8;
/// Chunk of the file read at a time while checking for zeros or searching for batches.
const IO_CHUNK_BYTES: usize = 1024 * 1024;
/// Largest body a batch header may claim; a larger claim is damage, not a batch.
const BATCH_BODY_BYTES_MAX: u32 = 1 << 30;

/// Where one batch is.
#[derive(Debug, Clone, Copy)]
struct BatchAt {
    /// Seq of its first record.
    first_seq: u64,
    /// Number of records.
    records: u32,
    /// Offset of its header.
    offset: u64,
    /// Bytes of its body.
    body_bytes: u32,
}

/// State changed by appends.
#[derive(Debug)]
struct Tail {
    /// Every batch, in order; searched by seq on reads.
    batches: Vec<BatchAt>,
    /// Offset after the last batch (where the next one goes).
    end: u64,
    /// Set when a write or sync failed: what failed.
    poisoned: Option<String>,
    /// Reused buffer of the batch being written.
    buf: Vec<u8>,
}

/// An open journal log.
#[derive(Debug)]
pub(super) struct RecordLog {
    /// The file, named in error messages.
    path: PathBuf,
    /// The journal it holds, named in error messages.
    journal: JournalId,
    /// The open file; reads and writes are positioned, so they share one handle.
    file: Arc<File>,
    /// The zeros written ahead of the end, and their background writer.
    room: Arc<Room>,
    /// Batches and end; one lock, because appends are serial per journal anyway.
    tail: Mutex<Tail>,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

fn align_up(n: u64) -> u64 {
    n.div_ceil(BATCH_ALIGN_BYTES) * BATCH_ALIGN_BYTES
}

/// A parsed batch header, if `h` is one (checksum included).
fn parse_header(h: &[u8]) -> Option<(u32, u64, u32, u32)> {
    if u32_at(h, 0) != BATCH_MAGIC || u32_at(h, 24) != crc32fast::hash(&h[..24]) {
        return None;
    }
    let body_bytes = u32_at(h, 16);
    (body_bytes <= BATCH_BODY_BYTES_MAX)
        .then(|| (u32_at(h, 4), u64_at(h, 8), body_bytes, u32_at(h, 20)))
}

impl RecordLog {
    /// Opens (creating if missing) the log of `journal` at `path` and recovers its tail.
    pub(super) fn open(path: PathBuf, journal: JournalId) -> Result<RecordLog, StorageError> {
        let existed = path.try_exists().map_err(|source| StorageError::Io {
            path: path.clone(),
            source,
        })?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| StorageError::Write {
                path: path.clone(),
                source,
            })?;
        let synced = open_synced(&path, &file)?;
        let file = Arc::new(file);
        let log = RecordLog {
            room: Arc::new(Room::new(Arc::clone(&file), synced, path.clone())),
            path,
            journal,
            file,
            tail: Mutex::new(Tail {
                batches: Vec::new(),
                end: FILE_HEADER_BYTES,
                poisoned: None,
                buf: Vec::new(),
            }),
        };
        let len = log.file_len()?;
        // A header is synced before any batch is written, so a file of nothing but zeros
        // (its creation was cut short) never held an acknowledged record.
        if !existed || log.zero_from(0, len)? {
            log.write_file_header()?;
        } else {
            log.check_file_header(len)?;
            log.recover(len)?;
        }
        Ok(log)
    }

    fn io(&self, source: std::io::Error) -> StorageError {
        StorageError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn write_failed(&self, source: std::io::Error) -> StorageError {
        StorageError::Write {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, detail: String) -> StorageError {
        StorageError::Corrupt {
            path: self.path.clone(),
            detail: format!("journal {}: {detail}", self.journal),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tail> {
        // Every field is updated only after the I/O it describes succeeded.
        self.tail.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn file_len(&self) -> Result<u64, StorageError> {
        Ok(self.file.metadata().map_err(|e| self.io(e))?.len())
    }

    fn write_file_header(&self) -> Result<(), StorageError> {
        let mut h = [0u8; FILE_HEADER_BYTES as usize];
        h[..8].copy_from_slice(&FILE_MAGIC);
        h[8..12].copy_from_slice(&LOG_LAYOUT.to_le_bytes());
        h[12..16].copy_from_slice(&self.journal.to_le_bytes());
        let crc = crc32fast::hash(&h[..16]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        self.file
            .write_all_at(&h, 0)
            .map_err(|e| self.write_failed(e))?;
        self.room.set_allocated(FILE_HEADER_BYTES);
        self.room
            .grow(FILE_HEADER_BYTES, 0)
            .map_err(|e| self.write_failed(e))
    }

    fn check_file_header(&self, len: u64) -> Result<(), StorageError> {
        let mut h = [0u8; FILE_HEADER_BYTES as usize];
        if len < FILE_HEADER_BYTES {
            return Err(self.corrupt(format!("file of {len} bytes is shorter than its header")));
        }
        self.file.read_exact_at(&mut h, 0).map_err(|e| self.io(e))?;
        if h[..8] != FILE_MAGIC || u32_at(&h, 16) != crc32fast::hash(&h[..16]) {
            return Err(self.corrupt("not a yunquan journal log (bad header)".into()));
        }
        let (layout, journal) = (u32_at(&h, 8), u32_at(&h, 12));
        if layout != LOG_LAYOUT {
            return Err(StorageError::Backend(format!(
                "{}: journal log layout {layout}, but this build reads layout {LOG_LAYOUT}; open it with the yunquan release that wrote it",
                self.path.display()
            )));
        }
        if journal != self.journal {
            return Err(self.corrupt(format!("the file holds journal {journal}")));
        }
        Ok(())
    }

    /// Reads the batch at `offset`; `Ok(None)` for an all-zero header (the end of the log).
    /// `Err(reason)` if the bytes there are not an intact batch starting at `expected_seq`
    /// (any seq if `None`).
    fn batch_at(
        &self,
        offset: u64,
        len: u64,
        expected_seq: Option<u64>,
    ) -> Result<Option<(BatchAt, Vec<u8>)>, String> {
        let mut h = [0u8; BATCH_HEADER_BYTES];
        if offset + BATCH_HEADER_BYTES as u64 > len {
            return Err(format!(
                "the file ends inside the batch header at byte {offset}"
            ));
        }
        self.file
            .read_exact_at(&mut h, offset)
            .map_err(|e| format!("reading byte {offset}: {e}"))?;
        if h.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let (records, first_seq, body_bytes, body_crc) = parse_header(&h)
            .ok_or_else(|| format!("the batch header at byte {offset} fails its checksum"))?;
        if let Some(seq) = expected_seq.filter(|&s| s != first_seq) {
            return Err(format!(
                "the batch at byte {offset} starts at record {first_seq}, expected {seq}"
            ));
        }
        let body_at = offset + BATCH_HEADER_BYTES as u64;
        if body_at + u64::from(body_bytes) > len {
            return Err(format!(
                "the file ends inside the batch of records from {first_seq}"
            ));
        }
        let mut body = vec![0u8; body_bytes as usize];
        self.file
            .read_exact_at(&mut body, body_at)
            .map_err(|e| format!("reading byte {body_at}: {e}"))?;
        if crc32fast::hash(&body) != body_crc {
            return Err(self.first_bad_record(first_seq, records, &body));
        }
        let at = BatchAt {
            first_seq,
            records,
            offset,
            body_bytes,
        };
        Ok(Some((at, body)))
    }

    /// Names the first record of a damaged body whose own checksum fails.
    fn first_bad_record(&self, first_seq: u64, records: u32, body: &[u8]) -> String {
        let mut seq = first_seq;
        for item in Records::new(body, first_seq, records) {
            match item {
                Ok(_) => seq += 1,
                Err(detail) => return detail,
            }
        }
        format!(
            "the batch of records {first_seq}..{} fails its checksum",
            seq.saturating_sub(1)
        )
    }

    /// Scans every batch and recovers the tail (see the module documentation).
    fn recover(&self, len: u64) -> Result<(), StorageError> {
        let mut tail = self.lock();
        let mut offset = FILE_HEADER_BYTES;
        let mut next_seq = 1u64;
        loop {
            // A file cut right after its last batch (in the padding) simply ends there.
            if offset >= len {
                break;
            }
            let reason = match self.batch_at(offset, len, Some(next_seq)) {
                Ok(Some((at, _))) => {
                    offset =
                        align_up(offset + BATCH_HEADER_BYTES as u64 + u64::from(at.body_bytes));
                    next_seq = at.first_seq + u64::from(at.records);
                    tail.batches.push(at);
                    continue;
                }
                // Zeros end the log, unless intact batches follow: then a header was wiped.
                Ok(None) => None,
                Err(reason) => Some(reason),
            };
            // Only bytes that are not all zero can hold an intact later batch.
            if !self.zero_from(offset, len)? {
                if let Some(later) = self.intact_batch_after(offset, len, next_seq)? {
                    let what = reason
                        .unwrap_or_else(|| format!("the batch header at byte {offset} is zeroed"));
                    return Err(self.corrupt(format!(
                        "{what}, yet record {later} after it is intact: acknowledged records are damaged"
                    )));
                }
                // A torn batch or other bytes where zeros should be: overwritten now, before
                // a new batch could land next to them.
                if let Some(reason) = &reason {
                    tracing::warn!(path = %self.path.display(), journal = self.journal, %reason, "torn tail of an unacknowledged write; zeroing it");
                }
                tail.end = offset;
                self.room.set_allocated(offset);
                return self
                    .room
                    .grow(offset, len - offset)
                    .map_err(|e| self.write_failed(e));
            }
            break;
        }
        // Every byte from the end to the file's length is zero (a clean log is only read).
        // `len` may be short of `offset` by the last batch's padding; extending writes it.
        tail.end = offset;
        self.room.set_allocated(len);
        if len >= offset + STEP_MIN_BYTES / 2 {
            return Ok(());
        }
        self.room.grow(offset, 0).map_err(|e| self.write_failed(e))
    }

    /// Whether every byte of the file from `offset` to `len` is zero.
    fn zero_from(&self, offset: u64, len: u64) -> Result<bool, StorageError> {
        let mut chunk = vec![0u8; IO_CHUNK_BYTES];
        let mut at = offset;
        while at < len {
            let n = (len - at).min(IO_CHUNK_BYTES as u64) as usize;
            self.file
                .read_exact_at(&mut chunk[..n], at)
                .map_err(|e| self.io(e))?;
            if chunk[..n].iter().any(|&b| b != 0) {
                return Ok(false);
            }
            at += n as u64;
        }
        Ok(true)
    }

    /// The first seq of an intact batch of seq `min_seq` or later that starts after `offset`.
    fn intact_batch_after(
        &self,
        offset: u64,
        len: u64,
        min_seq: u64,
    ) -> Result<Option<u64>, StorageError> {
        let mut chunk = vec![0u8; IO_CHUNK_BYTES];
        let mut base = offset + BATCH_ALIGN_BYTES;
        while base < len {
            let n = (len - base).min(IO_CHUNK_BYTES as u64) as usize;
            self.file
                .read_exact_at(&mut chunk[..n], base)
                .map_err(|e| self.io(e))?;
            let mut i = 0;
            while i + 4 <= n {
                if u32_at(&chunk, i) == BATCH_MAGIC {
                    if let Ok(Some((at, _))) = self.batch_at(base + i as u64, len, None) {
                        if at.first_seq >= min_seq {
                            return Ok(Some(at.first_seq));
                        }
                    }
                }
                i += BATCH_ALIGN_BYTES as usize;
            }
            base += n as u64;
        }
        Ok(None)
    }

    /// Seq of the last record, 0 if none.
    pub(super) fn last_seq(&self) -> u64 {
        self.lock()
            .batches
            .last()
            .map_or(0, |b| b.first_seq + u64::from(b.records) - 1)
    }

    /// Appends one batch and syncs it. The caller checked `first_seq` and that `events` is not
    /// empty.
    pub(super) fn append(&self, first_seq: u64, events: &[&[u8]]) -> Result<(), StorageError> {
        let mut tail = self.lock();
        if let Some(cause) = &tail.poisoned {
            return Err(StorageError::Backend(format!(
                "{}: journal {} refuses writes since a write failed ({cause}); restart to recover it from disk",
                self.path.display(),
                self.journal
            )));
        }
        let records = u32::try_from(events.len()).map_err(|_| {
            StorageError::Backend(format!(
                "journal {}: a batch of {} records is too large",
                self.journal,
                events.len()
            ))
        })?;
        let mut buf = std::mem::take(&mut tail.buf);
        buf.clear();
        buf.resize(BATCH_HEADER_BYTES, 0);
        for (seq, event) in (first_seq..).zip(events) {
            // Length prefix first, filled in once the record is sealed in place.
            let at = buf.len();
            buf.extend_from_slice(&[0; 4]);
            checksum::seal_append(Kind::Record, seq, event, &mut buf);
            let sealed_bytes = u32::try_from(buf.len() - at - 4).map_err(|_| {
                StorageError::Backend(format!(
                    "journal {}: record {seq} of {} bytes is too large",
                    self.journal,
                    event.len()
                ))
            })?;
            buf[at..at + 4].copy_from_slice(&sealed_bytes.to_le_bytes());
        }
        let body_bytes = u32::try_from(buf.len() - BATCH_HEADER_BYTES)
            .ok()
            .filter(|&b| b <= BATCH_BODY_BYTES_MAX)
            .ok_or_else(|| {
                StorageError::Backend(format!(
                    "journal {}: a batch of {} bytes is too large",
                    self.journal,
                    buf.len()
                ))
            })?;
        let body_crc = crc32fast::hash(&buf[BATCH_HEADER_BYTES..]);
        buf[0..4].copy_from_slice(&BATCH_MAGIC.to_le_bytes());
        buf[4..8].copy_from_slice(&records.to_le_bytes());
        buf[8..16].copy_from_slice(&first_seq.to_le_bytes());
        buf[16..20].copy_from_slice(&body_bytes.to_le_bytes());
        buf[20..24].copy_from_slice(&body_crc.to_le_bytes());
        let header_crc = crc32fast::hash(&buf[..24]);
        buf[24..28].copy_from_slice(&header_crc.to_le_bytes());
        buf.resize(align_up(buf.len() as u64) as usize, 0);
        let offset = tail.end;
        let result = (|| {
            self.room
                .ensure(offset, buf.len() as u64)
                .map_err(|e| self.write_failed(e))?;
            let written = self
                .file
                .write_all_at(&buf, offset)
                .and_then(|()| self.file.sync_data());
            if let Err(e) = written {
                tail.poisoned = Some(e.to_string());
                return Err(self.write_failed(e));
            }
            tail.end = offset + buf.len() as u64;
            tail.batches.push(BatchAt {
                first_seq,
                records,
                offset,
                body_bytes,
            });
            self.room.after_append(tail.end);
            Ok(())
        })();
        tail.buf = buf;
        result
    }

    /// Up to `max` records from `from_seq` on (the caller checked `from_seq <= last_seq`).
    pub(super) fn read(
        &self,
        from_seq: u64,
        max: usize,
        out: &mut Vec<Record>,
    ) -> Result<(), StorageError> {
        let (batches, len) = {
            let tail = self.lock();
            if let Some(cause) = &tail.poisoned {
                return Err(StorageError::Backend(format!(
                    "{}: journal {} is unreadable since a write failed ({cause}); restart to recover it from disk",
                    self.path.display(),
                    self.journal
                )));
            }
            let first = tail
                .batches
                .partition_point(|b| b.first_seq + u64::from(b.records) <= from_seq);
            (tail.batches[first..].to_vec(), tail.end)
        };
        for b in batches {
            if out.len() >= max {
                break;
            }
            let (_, body) = match self.batch_at(b.offset, len, Some(b.first_seq)) {
                Ok(Some(found)) => found,
                Ok(None) => {
                    return Err(
                        self.corrupt(format!("the batch of record {} was zeroed", b.first_seq))
                    )
                }
                Err(reason) => return Err(self.corrupt(reason)),
            };
            for item in Records::new(&body, b.first_seq, b.records) {
                let record = item.map_err(|detail| self.corrupt(detail))?;
                if record.seq >= from_seq && out.len() < max {
                    out.push(record);
                }
            }
        }
        Ok(())
    }
}

impl Drop for RecordLog {
    fn drop(&mut self) {
        self.room.finish();
    }
}

/// The records of a batch body, each checked against its own checksum.
struct Records<'a> {
    /// The rest of the body.
    body: &'a [u8],
    /// Seq of the next record.
    seq: u64,
    /// Records still to come.
    left: u32,
}

impl<'a> Records<'a> {
    fn new(body: &'a [u8], first_seq: u64, records: u32) -> Records<'a> {
        Records {
            body,
            seq: first_seq,
            left: records,
        }
    }
}

impl Iterator for Records<'_> {
    type Item = Result<Record, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let seq = self.seq;
        let item = (|| {
            if self.body.len() < 4 {
                return Err(format!("record {seq}: the batch body ends early"));
            }
            let n = u32_at(self.body, 0) as usize;
            let stored = self
                .body
                .get(4..4 + n)
                .ok_or_else(|| format!("record {seq}: its length runs past the batch"))?;
            let payload = checksum::unseal(Kind::Record, seq, stored)
                .map_err(|m| format!("record {seq}: {m}"))?;
            let record = Record {
                seq,
                payload: payload.to_vec(),
            };
            self.body = &self.body[4 + n..];
            Ok(record)
        })();
        self.left = if item.is_ok() { self.left - 1 } else { 0 };
        self.seq += 1;
        Some(item)
    }
}

/// A second handle of the log `file` at `path`, opened with `O_DSYNC` for the writer of the
/// space ahead (see [`super::room`]). Checked to be the same file: the path is looked up again.
fn open_synced(path: &std::path::Path, file: &File) -> Result<File, StorageError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let failed = |source| StorageError::Write {
        path: path.to_path_buf(),
        source,
    };
    let synced = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DSYNC)
        .open(path)
        .map_err(failed)?;
    let (a, b) = (
        file.metadata().map_err(failed)?,
        synced.metadata().map_err(failed)?,
    );
    if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
        return Err(StorageError::Backend(format!(
            "{}: the file was replaced while it was being opened; retry",
            path.display()
        )));
    }
    Ok(synced)
}

/// Whether `path` exists.
pub(super) fn exists(path: &std::path::Path) -> Result<bool, StorageError> {
    path.try_exists().map_err(|source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    })
}
