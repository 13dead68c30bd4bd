//! Damaged journal files on disk: the embedded store refuses them with a message naming the
//! file, the journal and the record, and never returns bytes other than those appended.
//!
//! Each test writes records with a distinctive payload, finds that payload's bytes in the redb
//! file, damages them (or truncates / extends the file), reopens and reads. Files are damaged
//! in two states: closed cleanly (redb trusts the file and does not verify its own page
//! checksums) and left open by a process that exited without closing it (redb repairs the file
//! on open, which verifies its page checksums).
// A test fails by panicking; unwrap's panic names the line.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;
use yunquan_storage::{EmbeddedStore, Record, StorageError, Store};

/// The journal every test writes to.
const JOURNAL: u32 = 1;
/// File of [`JOURNAL`] inside a data directory.
const JOURNAL_FILE: &str = "journal-00001.redb";
/// Records per append: each batch is one redb commit.
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
    // Skips every destructor: redb's "closed cleanly" mark is never written.
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

/// Flips one bit in the middle of every copy of `needle` in `file` (stale copies in freed
/// pages included, so the live one is surely hit); returns how many copies there were.
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

/// `err` is a Corrupt error whose message names the journal file and every part in `names`.
fn assert_names(err: &StorageError, names: &[&str]) {
    let message = err.to_string();
    assert!(
        matches!(err, StorageError::Corrupt { .. }),
        "expected Corrupt, got {err:?}"
    );
    assert!(
        message.contains(JOURNAL_FILE),
        "must name the file: {message}"
    );
    for name in names {
        assert!(message.contains(name), "must name {name:?}: {message}");
    }
}

#[test]
fn damaged_record_in_the_middle_of_a_closed_file_is_refused_by_name() {
    let dir = write_clean();
    damage(&journal_path(&dir), &tag(55));
    let store = open(dir.path());
    assert_eq!(store.last_seq(JOURNAL).expect("last_seq"), 100);

    let err = store
        .read(JOURNAL, 1, usize::MAX)
        .expect_err("a read across record 55 must be refused");
    assert_names(&err, &["journal 1", "record 55", "checksum mismatch"]);
    let err = store
        .read(JOURNAL, 55, 1)
        .expect_err("record 55 alone must be refused");
    assert_names(&err, &["journal 1", "record 55"]);

    // The damage is local: the records around it still read, byte for byte.
    let before = store
        .read(JOURNAL, 1, 54)
        .expect("records before the damage");
    assert_eq!(before.len(), 54);
    assert_exact(&before);
    let after = store
        .read(JOURNAL, 56, 1000)
        .expect("records after the damage");
    assert_eq!(after.len(), 45);
    assert_exact(&after);
}

#[test]
fn damaged_snapshot_is_refused_by_name() {
    let dir = write_clean();
    damage(&journal_path(&dir), "<<yq-snapshot>>");
    let store = open(dir.path());
    let err = store
        .load_snapshot(JOURNAL)
        .expect_err("a damaged snapshot must be refused");
    assert_names(&err, &["journal 1", "snapshot taken at record 100"]);
    assert_exact(&store.read(JOURNAL, 1, 1000).expect("records are intact"));
}

/// After an unclean shutdown redb repairs the file on open and verifies its page checksums on
/// the way: damage in pages shared by its last two commits makes the open itself fail.
#[test]
fn damaged_record_in_the_middle_of_an_abandoned_file_is_refused() {
    let dir = write_dirty();
    damage(&journal_path(&dir), &tag(55));
    let store = open(dir.path());
    let outcome = no_panic("read", || store.read(JOURNAL, 1, usize::MAX))
        .unwrap_or_else(|panic| panic!("{panic}"));
    match outcome {
        Ok(records) => panic!(
            "damaged journal read without error ({} records)",
            records.len()
        ),
        Err(err) => {
            let message = err.to_string();
            assert!(
                matches!(err, StorageError::Corrupt { .. }),
                "expected Corrupt, got {err:?}"
            );
            assert!(
                message.contains(JOURNAL_FILE),
                "must name the file: {message}"
            );
            eprintln!("abandoned file, damaged record 55: {message}");
        }
    }
}

/// redb's one-fsync commits cannot tell damage in the newest commit's pages from a commit torn
/// by the crash, so its repair rolls the newest commit back: a batch that was acknowledged
/// disappears without an error. This pins that behaviour (documented in docs/reliability.md as
/// a limit of the embedded store); if a redb upgrade starts refusing instead, this test fails
/// and the documentation must change with it.
#[test]
fn damage_in_the_newest_commit_of_an_abandoned_file_rolls_that_commit_back() {
    let dir = write_dirty_ending_with(false);
    // Record 100's leaf was rewritten by the last commit only; earlier copies hold records < 91.
    damage(&journal_path(&dir), &tag(100));
    let store = open(dir.path());
    let records = no_panic("read", || store.read(JOURNAL, 1, usize::MAX))
        .unwrap_or_else(|panic| panic!("{panic}"))
        .expect("redb repairs the file by rolling back");
    assert_exact(&records);
    assert_eq!(
        records.len() as u64,
        (BATCHES - 1) * BATCH_RECORDS,
        "exactly the newest commit is rolled back"
    );
    assert_eq!(store.last_seq(JOURNAL).expect("last_seq"), 90);
}

/// The outcome of reopening a damaged file: what it read, or the message it refused with.
#[derive(Debug)]
enum Reopened {
    /// Opened; holds the seqs read (all verified byte for byte).
    Read(Vec<u64>),
    /// Refused with this message.
    Refused(String),
}

/// Reopens `dir` and reads the whole journal, insisting on "exact records of whole commits, or
/// a clear refusal naming the file".
fn reopen_and_read(dir: &Path) -> Reopened {
    let result = no_panic("open and read", || {
        let store = EmbeddedStore::open(dir)?;
        let records = store.read(JOURNAL, 1, usize::MAX)?;
        let snapshot = store.load_snapshot(JOURNAL)?;
        Ok::<_, StorageError>((records, snapshot))
    });
    match result {
        Err(panic) => panic!("{panic}"),
        Ok(Err(err)) => {
            let message = err.to_string();
            assert!(
                message.contains(JOURNAL_FILE),
                "a refusal must name the file: {message}"
            );
            Reopened::Refused(message)
        }
        Ok(Ok((records, _snapshot))) => {
            assert_exact(&records);
            let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
            let whole_commits = seqs.len() as u64 % BATCH_RECORDS == 0
                && seqs.iter().copied().eq(1..=seqs.len() as u64);
            assert!(whole_commits, "not a prefix of whole commits: {seqs:?}");
            Reopened::Read(seqs)
        }
    }
}

/// Whether the outcome is a refusal; a refusal must also say what is wrong with the file.
fn refused(outcome: &Reopened) -> bool {
    match outcome {
        Reopened::Refused(message) => {
            assert!(
                message.contains("truncated or damaged"),
                "a refusal must say what is wrong: {message}"
            );
            true
        }
        Reopened::Read(_) => false,
    }
}

/// Cuts the file at several points and extends it with garbage; every outcome must be
/// exact records of whole commits or a clear refusal. Which one redb 3.1 gives is then
/// asserted too, as documented in docs/reliability.md: a file shorter than its header says is
/// refused (redb asserts; the store reports Corrupt), garbage of whole pages after the end is
/// ignored, and a length that is not a whole number of pages is refused.
fn torn_tails(abandoned: bool) {
    let label = if abandoned { "abandoned" } else { "closed" };
    let write = if abandoned { write_dirty } else { write_clean };
    let full_len = std::fs::metadata(journal_path(&write()))
        .expect("journal file")
        .len();
    let cuts = [1, 512, 4096, full_len / 4, full_len / 2, full_len - 4096];
    for cut in cuts {
        let dir = write();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(journal_path(&dir))
            .expect("open journal file");
        file.set_len(full_len - cut).expect("truncate");
        drop(file);
        let outcome = reopen_and_read(dir.path());
        eprintln!("{label} file of {full_len} bytes cut by {cut}: {outcome:?}");
        assert!(
            refused(&outcome),
            "redb 3.1 refused every truncated file; this one opened: update docs/reliability.md"
        );
    }
    for (name, garbage, whole_pages) in [
        ("a page of zeros", vec![0_u8; 4096], true),
        ("a page of 0xff", vec![0xFF_u8; 4096], true),
        ("a stray record", payload(101).repeat(30), false),
        ("one odd byte", vec![0x5A], false),
    ] {
        let dir = write();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(journal_path(&dir))
            .expect("open journal file");
        file.write_all(&garbage).expect("append garbage");
        drop(file);
        let outcome = reopen_and_read(dir.path());
        eprintln!("{label} file extended by {name}: {outcome:?}");
        if let Reopened::Read(seqs) = &outcome {
            assert_eq!(
                seqs.len(),
                100,
                "garbage after the end must not lose commits"
            );
        }
        assert_eq!(
            refused(&outcome),
            !whole_pages,
            "redb 3.1 ignored whole pages after the end and refused other lengths: update docs/reliability.md"
        );
    }
}

#[test]
fn torn_tail_of_a_closed_file_reads_whole_commits_or_is_refused() {
    torn_tails(false);
}

#[test]
fn torn_tail_of_an_abandoned_file_reads_whole_commits_or_is_refused() {
    torn_tails(true);
}

/// A journal file from before checksums (records stored bare, no layout version) is refused
/// with a message saying so, not misreported as damage at its first record.
#[test]
fn journal_written_without_checksums_is_refused_by_layout() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(open(dir.path()));
    {
        let db = redb::Database::create(journal_path(&dir)).expect("create layout-1 file");
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
    assert!(message.contains(JOURNAL_FILE), "{message}");
    assert!(message.contains("without record checksums"), "{message}");
}
