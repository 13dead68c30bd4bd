//! Room for a record log's next batches: zeros written ahead of its end, off the append path.
//!
//! A batch's `fdatasync` is cheap only inside space the file already holds as written zeros,
//! because then it syncs its own blocks and no size or extent change. That space used to be
//! written by the append that ran out of it: the batch waited for megabytes of zeros and a full
//! `fsync`, up to 110 ms on the reference machine (`examples/append_stalls.rs`), and every claim
//! behind it waited too. Now an append that leaves less than half a step of room starts a
//! background writer for the next step.
//!
//! The background writer writes through a second handle of the same file, opened with
//! `O_DSYNC` when the log is opened (never reopened by path, which might name another file by
//! then), in small chunks that are each on the disk when their write returns:
//! - plain buffered zeros would sit dirty in the page cache, and a batch's `fdatasync` writes
//!   back every dirty page of its file, so the batch would pay for the zeros all the same;
//! - each chunk is counted as room as soon as it is written, so an append waits for nothing
//!   the writer has done;
//! - the handle is its own, so a write-back error the writer runs into is still reported to the
//!   append handle's next `fdatasync` (Linux reports such an error once per open handle).
//!
//! An append that outran the writer (a bulk import can) asks it to stop after its current
//! chunk and writes the rest of the step itself, inline, in large chunks and one `fsync`, as
//! before. After a failure (a full disk) the writer is not started again until an inline step
//! succeeds, so a full disk does not spawn a thread per append.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

/// Fewest zeros written ahead of the log's end at a time: a new journal costs this much disk (a
/// test suite creates hundreds).
pub(super) const STEP_MIN_BYTES: u64 = 1024 * 1024;
/// Most zeros written ahead at a time, so an append that outran the writer and writes a step
/// inline waits for tens of milliseconds at worst (64 MiB of buffered writes and one `fsync`).
const STEP_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Zeros per write of an inline step; one buffer of this size is allocated per step.
const INLINE_CHUNK_BYTES: usize = 1024 * 1024;
/// Zeros per synchronous write of the background writer. Small, because a batch's `fdatasync`
/// that lands while a chunk is being copied in also writes that chunk back, and because an
/// append that outran the writer waits for the chunk in progress.
const BACKGROUND_CHUNK_BYTES: usize = 64 * 1024;

/// How far ahead of `end` to write: a quarter of the log, so the number of steps grows with
/// the logarithm of its size, within the bounds above.
pub(super) fn step_bytes(end: u64) -> u64 {
    (end / 4).clamp(STEP_MIN_BYTES, STEP_MAX_BYTES)
}

/// The written-ahead space of one log file.
#[derive(Debug)]
pub(super) struct Room {
    /// The log file's append handle: inline steps write and `fsync` through it.
    file: Arc<File>,
    /// A second handle of the same file, opened with `O_DSYNC`: the background writer's.
    synced: File,
    /// The file's path, for messages.
    path: PathBuf,
    /// Bytes of the file known to be written and durable; everything past the log's end up to
    /// here is zeros. Only grows, and only while `writer` is held (or before any append).
    allocated: AtomicU64,
    /// Held by whoever writes zeros, so steps never overlap.
    writer: Mutex<()>,
    /// Set while a background step is running (or about to).
    busy: AtomicBool,
    /// Set by an append that needs room now: the background writer stops after its chunk.
    wanted: AtomicBool,
    /// Set when a background step failed; cleared when an inline step succeeds.
    failed: AtomicBool,
    /// The latest background writer's thread, joined before the file is closed.
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Room {
    /// Room of `file`, none known yet; `synced` is the same file opened with `O_DSYNC`.
    pub(super) fn new(file: Arc<File>, synced: File, path: PathBuf) -> Room {
        Room {
            file,
            synced,
            path,
            allocated: AtomicU64::new(0),
            writer: Mutex::new(()),
            busy: AtomicBool::new(false),
            wanted: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            thread: Mutex::new(None),
        }
    }

    /// Bytes of the file known written.
    pub(super) fn allocated(&self) -> u64 {
        self.allocated.load(Ordering::Acquire)
    }

    /// Declares the file written up to `bytes` (opening and recovery, before any append).
    pub(super) fn set_allocated(&self, bytes: u64) {
        let _writing = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.allocated.store(bytes, Ordering::Release);
    }

    /// Makes sure `needed` bytes past `end` are written. If the background writer has not got
    /// there, it is asked to stop after its current chunk and the rest is written inline.
    pub(super) fn ensure(&self, end: u64, needed: u64) -> std::io::Result<()> {
        if end + needed <= self.allocated() {
            return Ok(());
        }
        self.wanted.store(true, Ordering::Release);
        let writing = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.wanted.store(false, Ordering::Release);
        if end + needed <= self.allocated() {
            return Ok(());
        }
        let written = self.write_inline(end + needed.max(step_bytes(end)));
        drop(writing);
        written
    }

    /// Writes zeros inline from what is allocated to `needed` bytes past `end` and a step more,
    /// whether or not they were there (recovery rewrites a torn tail this way).
    pub(super) fn grow(&self, end: u64, needed: u64) -> std::io::Result<()> {
        let _writing = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.write_inline(end + needed.max(step_bytes(end)))
    }

    /// Called after an append that ended at `end`: starts the background writer if less than
    /// half a step of room is left, it is not running, and it has not failed since the last
    /// successful inline step.
    pub(super) fn after_append(self: &Arc<Self>, end: u64) {
        let step = step_bytes(end);
        if self.allocated().saturating_sub(end) >= step / 2
            || self.failed.load(Ordering::Acquire)
            || self.busy.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let room = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("yunquan-log-room".into())
            .spawn(move || {
                let writing = room.writer.lock().unwrap_or_else(PoisonError::into_inner);
                let target = room.allocated().max(end) + step;
                let written = room.write_in_background(target);
                drop(writing);
                if let Err(e) = written {
                    // Nothing of a batch was written: the next append that needs the room
                    // writes it inline and reports the error to its callers if it recurs.
                    room.failed.store(true, Ordering::Release);
                    tracing::warn!(path = %room.path.display(), error = %e, "writing log space ahead failed; appends will write it themselves");
                }
                room.busy.store(false, Ordering::Release);
            });
        match spawned {
            Ok(handle) => {
                let previous = self
                    .thread
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .replace(handle);
                // It cleared `busy` before this one started, so it is ending.
                if let Some(previous) = previous {
                    let _ = previous.join();
                }
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot start the log space writer; appends will write it themselves");
                self.busy.store(false, Ordering::Release);
            }
        }
    }

    /// Waits for the background writer, if one is running.
    pub(super) fn finish(&self) {
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    /// Writes zeros through the append handle from what is allocated up to `target`, syncs the
    /// file (its size changed) and only then counts them. The caller holds `writer`.
    fn write_inline(&self, target: u64) -> std::io::Result<()> {
        let zeros = vec![0u8; INLINE_CHUNK_BYTES];
        let mut at = self.allocated();
        while at < target {
            let n = (target - at).min(INLINE_CHUNK_BYTES as u64) as usize;
            self.file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        self.file.sync_all()?;
        self.allocated.fetch_max(target, Ordering::AcqRel);
        self.failed.store(false, Ordering::Release);
        Ok(())
    }

    /// Writes zeros through the `O_DSYNC` handle from what is allocated up to `target`,
    /// counting each chunk once its write returned (it is durable then, the file's size
    /// included), and stops early if an append wants the room now. The caller holds `writer`.
    fn write_in_background(&self, target: u64) -> std::io::Result<()> {
        let zeros = vec![0u8; BACKGROUND_CHUNK_BYTES];
        let mut at = self.allocated();
        while at < target && !self.wanted.load(Ordering::Acquire) {
            let n = (target - at).min(BACKGROUND_CHUNK_BYTES as u64) as usize;
            self.synced.write_all_at(&zeros[..n], at)?;
            at += n as u64;
            self.allocated.fetch_max(at, Ordering::AcqRel);
        }
        Ok(())
    }
}
