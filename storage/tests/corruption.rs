//! Damaged journal files on disk: the embedded store refuses damage to acknowledged records
//! with a message naming the file, the journal and the record, recovers a torn tail up to the
//! last whole batch, and never returns bytes other than those appended.
//!
//! Each test writes records with a distinctive payload, finds that payload's bytes in the log
//! file (or the snapshot's in the redb file), damages them (or cuts / overwrites the file's
//! tail), reopens and reads. Files are damaged in two states: closed cleanly, and left by a
//! process that exited without closing anything, as a killed server leaves them.
// A test fails by panicking; unwrap's panic names the line.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;
use yunquan_storage::{EmbeddedStore, Record, StorageError, Store};

/// The journal every test writes to.
const JOURNAL: u32 = 1;
/// Record log of [`JOURNAL`] inside a data directory.
const JOURNAL_FILE: &str = "journal-00001.log";
/// Layout version and snapshot of [`JOURNAL`].
const SNAPSHOT_FILE: &str = "journal-00001.redb";
/// Bytes of the log's file header, before the first batch.
const LOG_HEADER_BYTES: u64 = 64;
/// Records per append: each batch is one synced write.
const BATCH_RECORDS: u64 = 10;
/// Batches written by [`write_journal`].
const BATCHES: u64 = 10;
/// Repeats of the record's tag inside its payload, so a payload spans a few hundred bytes.
const PAYLOAD_TAG_REPEATS: usize = 8;

/// Set for the child process of [`write_dirty`]: the data directory to write and abandon.
const DIRTY_CHILD_DIR_ENV: &str = "YUNQUAN_STORAGE_TEST_DIRTY_CHILD_DIR";
/// Set for that child: "1" to end the journal with a snapshot commit, "0" with a batch.
const DIRTY_CHILD_SNAPSHOT_ENV: &str = "YUNQUAN_STORAGE_TEST_DIRTY_CHILD_SNAPSHOT";

/// The recognisable tag of record `seq`; it occurs nowhere else in the file.
fn tag(seq: u64) -> String {
    format!("<<yq-record-{seq:06}>>")
}

fn payload(seq: u64) -> Vec<u8> {
    tag(seq).repeat(PAYLOAD_TAG_REPEATS).into_bytes()
}

fn open(dir: &Path) -> EmbeddedStore {
    match EmbeddedStore::open(dir) {
        Ok(store) => store,
        Err(err) => panic!("open {}: {err}", dir.display()),
    }
}

/// Appends [`BATCHES`] batches of [`BATCH_RECORDS`] records, then (if `snapshot`) a snapshot
/// of the last one, tagged `<<yq-snapshot>>`.
fn write_journal(store: &EmbeddedStore, snapshot: bool) {
    for batch in 0..BATCHES {
        let first = batch * BATCH_RECORDS + 1;
        let payloads: Vec<Vec<u8>> = (first..first + BATCH_RECORDS).map(payload).collect();
        let events: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        if let Err(err) = store.append(JOURNAL, first, &events) {
            panic!("append batch {batch}: {err}");
        }
    }
    if !snapshot {
        return;
    }
    let snapshot = "<<yq-snapshot>>".repeat(PAYLOAD_TAG_REPEATS);
    let last = BATCHES * BATCH_RECORDS;
    if let Err(err) = store.save_snapshot(JOURNAL, last, snapshot.as_bytes()) {
        panic!("save snapshot: {err}");
    }
}

/// A data directory whose journal was written and closed cleanly.
fn write_clean() -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    write_journal(&open(dir.path()), true);
    dir
}

/// Not a test on its own: the child half of [`write_dirty`]. Writes the journal and exits
/// without closing the store, as a killed server would leave it.
#[test]
fn dirty_writer_child() {
    let Some(dir) = std::env::var_os(DIRTY_CHILD_DIR_ENV) else {
        return;
    };
    let snapshot = std::env::var_os(DIRTY_CHILD_SNAPSHOT_ENV).is_some_and(|v| v == "1");
    let store = open(Path::new(&dir));
    write_journal(&store, snapshot);
    let _ = std::io::stdout().flush();
    // Skips every destructor: nothing is flushed or closed.
    std::process::exit(0);
}

/// A data directory whose journal was written (ending with a snapshot) by a process that
/// exited without closing it.
fn write_dirty() -> TempDir {
    write_dirty_ending_with(true)
}

/// Like [`write_dirty`]; the last commit is the snapshot if `snapshot`, else the last batch.
fn write_dirty_ending_with(snapshot: bool) -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = std::env::current_exe().expect("current test binary");
    let status = Command::new(exe)
        .args(["--exact", "dirty_writer_child", "--test-threads=1"])
        .env(DIRTY_CHILD_DIR_ENV, dir.path())
        .env(DIRTY_CHILD_SNAPSHOT_ENV, if snapshot { "1" } else { "0" })
        .stdout(std::process::Stdio::null())
        .status()
        .expect("spawn child");
    assert!(status.success(), "dirty writer child failed: {status}");
    dir
}

fn journal_path(dir: &TempDir) -> PathBuf {
    dir.path().join(JOURNAL_FILE)
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, window)| *window == needle)
        .map(|(at, _)| at)
        .collect()
}

/// Flips one bit in the middle of every copy of `needle` in `file`; returns how many copies
/// there were.
fn damage(file: &Path, needle: &str) -> usize {
    let mut bytes = std::fs::read(file).expect("read journal file");
    let hits = find_all(&bytes, needle.as_bytes());
    assert!(!hits.is_empty(), "{needle} not found in {}", file.display());
    for at in &hits {
        bytes[at + needle.len() / 2] ^= 0x01;
    }
    std::fs::write(file, &bytes).expect("write journal file");
    hits.len()
}

/// Runs `f` and turns a panic into `Err(message)`, so a test can insist that damage is
/// reported as an error rather than by bringing the process down.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        format!("{what} panicked: {message}")
    })
}

/// Every record returned is exactly the one appended at its seq.
fn assert_exact(records: &[Record]) {
    for record in records {
        assert_eq!(
            record.payload,
            payload(record.seq),
            "record {} came back with other bytes",
            record.seq
        );
    }
}

/// `err` is a Corrupt error whose message names `file` and every part in `names`.
fn assert_names(err: &StorageError, file: &str, names: &[&str]) {
    let message = err.to_string();
    assert!(
        matches!(err, StorageError::Corrupt { .. }),
        "expected Corrupt, got {err:?}"
    );
    assert!(message.contains(file), "must name the file: {message}");
    for name in names {
        assert!(message.contains(name), "must name {name:?}: {message}");
    }
}

/// Damage to an acknowledged record (one with intact records after it) stops the journal
/// from opening, with a message naming the file, the journal and the record.
fn damaged_record_in_the_middle_is_refused(dir: &TempDir) {
    assert_eq!(damage(&journal_path(dir), &tag(55)), PAYLOAD_TAG_REPEATS);
    let store = open(dir.path());
    let err = no_panic("last_seq", || store.last_seq(JOURNAL))
        .unwrap_or_else(|panic| panic!("{panic}"))
        .expect_err("a journal with a damaged acknowledged record must be refused");
    assert_names(
        &err,
        JOURNAL_FILE,
        &[
            "journal 1",
            "record 55",
            "checksum mismatch",
            "acknowledged",
        ],
    );
    let err = store
        .read(JOURNAL, 1, usize::MAX)
        .expect_err("reads are refused too");
    assert_names(&err, JOURNAL_FILE, &["record 55"]);
}

#[test]
fn damaged_record_in_the_middle_of_a_closed_file_is_refused_by_name() {
    damaged_record_in_the_middle_is_refused(&write_clean());
}

#[test]
fn damaged_record_in_the_middle_of_an_abandoned_file_is_refused_by_name() {
    damaged_record_in_the_middle_is_refused(&write_dirty());
}

#[test]
fn damaged_snapshot_is_refused_by_name() {
    let dir = write_clean();
    damage(&dir.path().join(SNAPSHOT_FILE), "<<yq-snapshot>>");
    let store = open(dir.path());
    let err = store
        .load_snapshot(JOURNAL)
        .expect_err("a damaged snapshot must be refused");
    assert_names(
        &err,
        SNAPSHOT_FILE,
        &["journal 1", "snapshot taken at record 100"],
    );
    assert_exact(&store.read(JOURNAL, 1, 1000).expect("records are intact"));
}

/// Damage in the newest batch cannot be told from a write torn by a crash before it was
/// acknowledged, so that batch is dropped: a limit of any log that syncs once per batch
/// (documented in docs/reliability.md). Everything before it reads exactly.
#[test]
fn damage_in_the_newest_batch_drops_that_batch_only() {
    let dir = write_dirty_ending_with(false);
    damage(&journal_path(&dir), &tag(100));
    let store = open(dir.path());
    let records = no_panic("read", || store.read(JOURNAL, 1, usize::MAX))
        .unwrap_or_else(|panic| panic!("{panic}"))
        .expect("a damaged newest batch is a torn tail");
    assert_exact(&records);
    assert_eq!(records.len() as u64, (BATCHES - 1) * BATCH_RECORDS);
    assert_eq!(store.last_seq(JOURNAL).expect("last_seq"), 90);
    // The log goes on from there: the next batch takes seq 91.
    let replacement = payload(91);
    store
        .append(JOURNAL, 91, &[replacement.as_slice()])
        .expect("append after the torn tail");
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.last_seq(JOURNAL).expect("last_seq after reopen"), 91);
    assert_exact(
        &store
            .read(JOURNAL, 1, usize::MAX)
            .expect("read after reopen"),
    );
}

/// Offset just past the last non-zero byte of the log: the end of its last batch (within the
/// zero padding that aligns batches).
fn data_end(file: &Path) -> u64 {
    let bytes = std::fs::read(file).expect("read journal file");
    bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i as u64 + 1)
}

/// Reopens `dir` and reads the whole journal: the exact records of whole batches (the seqs
/// read are returned), or a refusal naming the file (its message is returned as `Err`).
fn reopen_and_read(dir: &Path) -> Result<Vec<u64>, String> {
    let result = no_panic("open and read", || {
        let store = EmbeddedStore::open(dir)?;
        let records = store.read(JOURNAL, 1, usize::MAX)?;
        let _snapshot = store.load_snapshot(JOURNAL)?;
        Ok::<_, StorageError>(records)
    });
    match result {
        Err(panic) => panic!("{panic}"),
        Ok(Err(err)) => {
            let message = err.to_string();
            assert!(
                message.contains(JOURNAL_FILE) || message.contains(SNAPSHOT_FILE),
                "a refusal must name the file: {message}"
            );
            Err(message)
        }
        Ok(Ok(records)) => {
            assert_exact(&records);
            Ok(records.iter().map(|r| r.seq).collect())
        }
    }
}

/// Cuts the log inside every batch, at its first, a middle and its last byte: the journal
/// opens with exactly the batches before the cut. Then overwrites the zeros after the last
/// batch with garbage: all 100 records read.
fn torn_tails(abandoned: bool) {
    let label = if abandoned { "abandoned" } else { "closed" };
    let write = || {
        if abandoned {
            write_dirty_ending_with(false)
        } else {
            let dir = tempfile::tempdir().expect("temp dir");
            write_journal(&open(dir.path()), false);
            dir
        }
    };
    let end = data_end(&journal_path(&write()));
    let batch_bytes = (end - LOG_HEADER_BYTES).div_ceil(BATCHES);
    for batch in 0..BATCHES {
        let start = LOG_HEADER_BYTES + batch * batch_bytes;
        for cut in [start + 1, start + batch_bytes / 2, start + batch_bytes - 9] {
            let dir = write();
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(journal_path(&dir))
                .expect("open journal file");
            file.set_len(cut).expect("truncate");
            drop(file);
            let seqs = reopen_and_read(dir.path())
                .unwrap_or_else(|e| panic!("{label} log cut at byte {cut}: refused: {e}"));
            let whole: Vec<u64> = (1..=batch * BATCH_RECORDS).collect();
            assert_eq!(
                seqs, whole,
                "{label} log cut at byte {cut} (inside batch {batch})"
            );
        }
    }
    for (name, garbage) in [
        ("a page of 0xff", vec![0xFF_u8; 4096]),
        ("a stray record", payload(101).repeat(30)),
        ("one odd byte", vec![0x5A]),
    ] {
        let dir = write();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(journal_path(&dir))
            .expect("open journal file");
        use std::os::unix::fs::FileExt;
        file.write_all_at(&garbage, end.next_multiple_of(8))
            .expect("write garbage");
        drop(file);
        let seqs = reopen_and_read(dir.path())
            .unwrap_or_else(|e| panic!("{label} log followed by {name}: refused: {e}"));
        assert_eq!(
            seqs,
            (1..=100).collect::<Vec<_>>(),
            "{label} log followed by {name}"
        );
    }
    let dir = write();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(journal_path(&dir))
        .expect("open journal file");
    file.set_len(LOG_HEADER_BYTES - 1).expect("truncate");
    drop(file);
    let refusal = reopen_and_read(dir.path()).expect_err("a log without its header is refused");
    assert!(refusal.contains("shorter than its header"), "{refusal}");
}

#[test]
fn torn_tail_of_a_closed_log_recovers_whole_batches() {
    torn_tails(false);
}

#[test]
fn torn_tail_of_an_abandoned_log_recovers_whole_batches() {
    torn_tails(true);
}

/// A snapshot promises the records up to its seq were acknowledged; a log that ends before it
/// lost acknowledged records and is refused, whatever cut it.
#[test]
fn a_log_that_ends_before_its_snapshot_is_refused() {
    let dir = write_clean();
    let end = data_end(&journal_path(&dir));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(journal_path(&dir))
        .expect("open journal file");
    file.set_len(end - 20).expect("truncate");
    drop(file);
    let refusal = reopen_and_read(dir.path()).expect_err("records under the snapshot are gone");
    assert!(
        refusal.contains("snapshot was taken at record 100")
            && refusal.contains("ends at record 90"),
        "{refusal}"
    );
}

/// A journal file from before checksums (records stored bare, no layout version) is refused
/// with a message saying so, not misreported as damage at its first record.
#[test]
fn journal_written_without_checksums_is_refused_by_layout() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(open(dir.path()));
    {
        let db =
            redb::Database::create(dir.path().join(SNAPSHOT_FILE)).expect("create layout-1 file");
        let txn = db.begin_write().expect("begin");
        {
            let events: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("events");
            let mut table = txn.open_table(events).expect("table");
            table.insert(1, payload(1).as_slice()).expect("insert");
        }
        txn.commit().expect("commit");
    }
    let store = open(dir.path());
    let err = store
        .read(JOURNAL, 1, 10)
        .expect_err("a layout-1 journal must be refused");
    let message = err.to_string();
    assert!(message.contains(SNAPSHOT_FILE), "{message}");
    assert!(message.contains("without record checksums"), "{message}");
}

/// A journal of layout 2 (checksummed records inside the redb file) is refused by layout.
#[test]
fn journal_with_records_inside_redb_is_refused_by_layout() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(open(dir.path()));
    {
        let db =
            redb::Database::create(dir.path().join(SNAPSHOT_FILE)).expect("create layout-2 file");
        let txn = db.begin_write().expect("begin");
        {
            let format: redb::TableDefinition<&str, u32> = redb::TableDefinition::new("format");
            let mut table = txn.open_table(format).expect("table");
            table.insert("version", 2).expect("insert");
        }
        txn.commit().expect("commit");
    }
    let err = open(dir.path())
        .last_seq(JOURNAL)
        .expect_err("a layout-2 journal must be refused");
    let message = err.to_string();
    assert!(message.contains("layout 2"), "{message}");
    assert!(message.contains("inside the redb file"), "{message}");
}
