//! The record log writes its next zeros in the background: the file grows ahead of the log
//! without an append asking, a store closed and reopened while that writer is at work (so the
//! reopened file ends in zeros still being written) keeps every record, and the writer never
//! finds its file again by path. Closing
//! waits for the writer; the second test does not prove that wait (the writer finishes
//! long before a reopened store reaches its zeros), it proves reopening mid-growth is safe
//! and that closing does not hang.
// A test fails by panicking; unwrap's panic names the line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::path::Path;
use std::time::{Duration, Instant};

use yunquan_storage::{EmbeddedStore, Store};

const J: u32 = 3;

fn log_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("journal-00003.log"))
        .unwrap()
        .len()
}

fn payload(seq: u64) -> Vec<u8> {
    format!("record-{seq:010}-").repeat(40).into_bytes()
}

/// Appends `n` one-record batches after `last`; returns the new last seq.
fn append(store: &EmbeddedStore, last: u64, n: u64) -> u64 {
    for seq in last + 1..=last + n {
        store.append(J, seq, &[payload(seq).as_slice()]).unwrap();
    }
    last + n
}

fn check_all(store: &EmbeddedStore, last: u64) {
    assert_eq!(store.last_seq(J).unwrap(), last);
    let all = store.read(J, 1, usize::MAX).unwrap();
    assert_eq!(all.len() as u64, last);
    for r in all {
        assert_eq!(r.payload, payload(r.seq), "record {}", r.seq);
    }
}

#[test]
fn the_file_grows_ahead_of_the_log_without_an_append_waiting_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    // The journal's file is created by its first append.
    let last = append(&store, 0, 1);
    let fresh = log_len(dir.path());
    // Records of 760 bytes on disk: 1,000 of them fill most of the first 1 MiB of
    // room, leaving less than half a step but enough that no append has to grow the file.
    let last = append(&store, last, 1_000);
    // So only the background writer can grow it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while log_len(dir.path()) == fresh {
        assert!(
            Instant::now() < deadline,
            "the file never grew past {fresh} bytes"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let last = append(&store, last, 500);
    check_all(&store, last);
    drop(store);
    let store = EmbeddedStore::open(dir.path()).unwrap();
    check_all(&store, last);
}

#[test]
fn reopening_while_the_file_grows_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut last = 0;
    for round in 0..12 {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        check_all(&store, last);
        // Enough to cross the half-step mark every round, then close at once: the writer is
        // mid-step, and the next open appends right where its zeros go.
        last = append(&store, last, 900 + round * 150);
        drop(store);
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    check_all(&store, last);
}

/// The writer of the space ahead must never find its file again by path: here the data
/// directory is renamed while a store has it open, and a second store opens a fresh one at
/// the old path. Zeros meant for the first store's log must not land in the second's.
#[test]
fn a_renamed_data_directory_keeps_each_logs_zeros_in_its_own_file() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("data");
    let first = EmbeddedStore::open(&path).unwrap();
    let first_last = append(&first, 0, 600);
    std::fs::rename(&path, root.path().join("data.old")).unwrap();
    let second = EmbeddedStore::open(&path).unwrap();
    let second_last = append(&second, 0, 3_000);
    drop(second);
    // Crosses the first log's half-step mark: its writer starts now, after the rename.
    let first_last = append(&first, first_last, 300);
    check_all(&first, first_last);
    drop(first);
    let second = EmbeddedStore::open(&path).unwrap();
    check_all(&second, second_last);
}
