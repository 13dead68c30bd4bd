//! The record log under damage and edge cases it must survive: wiped headers between
//! intact batches, files cut inside the padding, all-zero files, lost log or redb files,
//! snapshots past the end, every read position, concurrent reads during appends, growth
//! past the pre-written zeros, very large records and torn large tails.
// A test fails by panicking; unwrap's panic names the line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use yunquan_storage::{EmbeddedStore, StorageError, Store};

const J: u32 = 1;

fn log_path(dir: &Path) -> PathBuf {
    dir.join("journal-00001.log")
}

fn pay(seq: u64) -> Vec<u8> {
    format!("payload-{seq:08}-").repeat(3).into_bytes()
}

fn append_n(store: &EmbeddedStore, first: u64, n: u64) {
    let ps: Vec<Vec<u8>> = (first..first + n).map(pay).collect();
    let refs: Vec<&[u8]> = ps.iter().map(Vec::as_slice).collect();
    store.append(J, first, &refs).unwrap();
}

/// (offset, first_seq, records, body_bytes) of each batch, parsed without checksums.
fn batches(file: &Path) -> Vec<(u64, u64, u32, u32)> {
    let b = std::fs::read(file).unwrap();
    let mut off = 64usize;
    let mut out = Vec::new();
    while off + 32 <= b.len() && &b[off..off + 4] == b"YQB1" {
        let rec = u32::from_le_bytes(b[off + 4..off + 8].try_into().unwrap());
        let seq = u64::from_le_bytes(b[off + 8..off + 16].try_into().unwrap());
        let body = u32::from_le_bytes(b[off + 16..off + 20].try_into().unwrap());
        out.push((off as u64, seq, rec, body));
        off = (off + 32 + body as usize).next_multiple_of(8);
    }
    out
}

fn check_exact(store: &EmbeddedStore, from: u64, max: usize, last: u64) {
    let got = store.read(J, from, max).unwrap();
    let start = from.max(1);
    let expect_n = if start > last {
        0
    } else {
        ((last - start + 1) as usize).min(max)
    };
    assert_eq!(got.len(), expect_n, "from {from} max {max} last {last}");
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.seq, start + i as u64);
        assert_eq!(r.payload, pay(r.seq));
    }
}

/// A middle batch whose header was zeroed (a lost sector) with intact, acknowledged batches
/// after it is refused, not taken for the end of the log (and the batches after it zeroed).
#[test]
fn zeroed_header_of_middle_batch() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        for b in 0..10 {
            append_n(&s, b * 10 + 1, 10);
        }
    }
    let bs = batches(&log_path(dir.path()));
    assert_eq!(bs.len(), 10);
    let (off, seq, _, _) = bs[4];
    assert_eq!(seq, 41);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(log_path(dir.path()))
        .unwrap();
    f.write_all_at(&[0u8; 32], off).unwrap();
    drop(f);
    let s = EmbeddedStore::open(dir.path()).unwrap();
    let res = s.read(J, 1, usize::MAX);
    let last = s.last_seq(J);
    drop(s);
    let after = batches(&log_path(dir.path()));
    eprintln!(
        "read: {:?}, last_seq: {:?}, batches left in the file after reopen: {}",
        res.as_ref().map(|r| r.len()).map_err(|e| e.to_string()),
        last.as_ref().map_err(|e| e.to_string()),
        after.len()
    );
    assert!(
        matches!(res, Err(StorageError::Corrupt { .. })) || matches!(last, Err(StorageError::Corrupt { .. })),
        "acknowledged records 51..100 are intact after the zeroed header; the journal must be refused, got last_seq {last:?}"
    );
}

/// A snapshot past the journal's end is refused when offered, so the journal still reopens.
#[test]
fn snapshot_past_end_is_refused_and_the_journal_reopens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        append_n(&s, 1, 3);
        s.save_snapshot(J, 3, b"state").unwrap();
        match s.save_snapshot(J, 10, b"later") {
            Err(StorageError::SnapshotPastEnd {
                journal: J,
                seq: 10,
                last_seq: 3,
            }) => {}
            other => panic!("a snapshot past the end must be refused, got {other:?}"),
        }
        assert_eq!(s.load_snapshot(J).unwrap(), Some((3, b"state".to_vec())));
    }
    let s = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(s.last_seq(J).unwrap(), 3);
    assert_eq!(s.load_snapshot(J).unwrap(), Some((3, b"state".to_vec())));
}

/// A journal whose log was lost (its redb file says it has one) is refused, not opened empty.
#[test]
fn a_missing_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        append_n(&s, 1, 5);
    }
    std::fs::remove_file(log_path(dir.path())).unwrap();
    let s = EmbeddedStore::open(dir.path()).unwrap();
    let r = s.last_seq(J);
    eprintln!(
        "last_seq with the log missing: {r:?}; journals: {:?}",
        s.journals()
    );
    assert!(
        r.is_err(),
        "a layout-3 journal whose log is missing should be refused, got {r:?}"
    );
}

/// A log file whose header never reached the disk (all zeros, as a crash right after its
/// creation can leave it) never held an acknowledged record: it opens as an empty journal.
#[test]
fn an_all_zero_log_opens_empty() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        // Creates the journal's files; nothing is ever acknowledged.
        assert!(matches!(
            s.append(J, 5, &[b"x"]),
            Err(StorageError::SequenceMismatch { .. })
        ));
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(log_path(dir.path()))
        .unwrap();
    f.set_len(0).unwrap();
    f.set_len(1024 * 1024 + 64).unwrap();
    drop(f);
    let s = EmbeddedStore::open(dir.path()).unwrap();
    let r = s.last_seq(J);
    eprintln!("all-zero log: {r:?}");
    assert!(r.is_ok(), "{r:?}");
}

#[test]
fn reads_at_every_position() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(dir.path()).unwrap();
    let mut last = 0;
    for n in [1u64, 3, 7, 1, 10, 2] {
        append_n(&s, last + 1, n);
        last += n;
    }
    for from in 0..=last + 3 {
        for max in [0usize, 1, 2, 5, 11, 1000, usize::MAX] {
            check_exact(&s, from, max, last);
        }
    }
    check_exact(&s, u64::MAX, usize::MAX, last);
    // fence errors leave state consistent
    assert!(matches!(
        s.append(J, last, &[b"x"]),
        Err(StorageError::SequenceMismatch { .. })
    ));
    assert!(matches!(
        s.append(J, last + 2, &[b"x"]),
        Err(StorageError::SequenceMismatch { .. })
    ));
    assert!(matches!(
        s.append(J, 0, &[b"x"]),
        Err(StorageError::SequenceMismatch { .. })
    ));
    assert!(s.append(J, last + 1, &[]).is_ok());
    assert!(matches!(
        s.append(J, last + 2, &[]),
        Err(StorageError::SequenceMismatch { .. })
    ));
    assert_eq!(s.last_seq(J).unwrap(), last);
    append_n(&s, last + 1, 1);
    last += 1;
    drop(s);
    let s = EmbeddedStore::open(dir.path()).unwrap();
    for from in 0..=last + 1 {
        check_exact(&s, from, usize::MAX, last);
    }
}

/// Many appends crossing several extensions, reopen, more, reopen.
#[test]
fn extension_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let big = vec![0xABu8; 300 * 1024];
    let mut last = 0u64;
    {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        for _ in 0..20 {
            s.append(J, last + 1, &[big.as_slice(), b"small"]).unwrap();
            last += 2;
        }
    }
    eprintln!(
        "log len {}",
        std::fs::metadata(log_path(dir.path())).unwrap().len()
    );
    for round in 0..3 {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(s.last_seq(J).unwrap(), last, "round {round}");
        let all = s.read(J, 1, usize::MAX).unwrap();
        assert_eq!(all.len() as u64, last);
        for r in &all {
            assert_eq!(
                r.payload,
                if r.seq % 2 == 1 {
                    big.clone()
                } else {
                    b"small".to_vec()
                }
            );
        }
        for _ in 0..7 {
            s.append(J, last + 1, &[big.as_slice(), b"small"]).unwrap();
            last += 2;
        }
    }
    eprintln!(
        "log len {}",
        std::fs::metadata(log_path(dir.path())).unwrap().len()
    );
}

/// 10 MiB and 40 MiB records (larger than the 1 MiB preallocation).
#[test]
fn very_large_records() {
    let dir = tempfile::tempdir().unwrap();
    let ten: Vec<u8> = (0..10 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let forty: Vec<u8> = (0..40 * 1024 * 1024).map(|i| (i % 241) as u8).collect();
    {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        s.append(J, 1, &[ten.as_slice()]).unwrap();
        s.append(J, 2, &[b"a", forty.as_slice(), b"b"]).unwrap();
        let r = s.read(J, 3, 1).unwrap();
        assert_eq!(r[0].payload, forty);
    }
    let s = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(s.last_seq(J).unwrap(), 4);
    let r = s.read(J, 0, usize::MAX).unwrap();
    assert_eq!(r.len(), 4);
    assert_eq!(r[0].payload, ten);
    assert_eq!(r[2].payload, forty);
    s.append(J, 5, &[b"c"]).unwrap();
}

/// Torn tail bigger than the zeros after it (cut the file inside a big last batch), then
/// appends, then reopen twice.
#[test]
fn torn_big_tail_then_appends_then_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let big = vec![7u8; 3 * 1024 * 1024];
    {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        append_n(&s, 1, 10);
        s.append(J, 11, &[big.as_slice()]).unwrap();
    }
    let bs = batches(&log_path(dir.path()));
    let (off, _, _, body) = bs[1];
    // Cut inside the big batch, then grow with garbage far beyond (as if another file's blocks).
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(log_path(dir.path()))
        .unwrap();
    f.set_len(off + 32 + u64::from(body) / 2).unwrap();
    let garbage = vec![0x5Au8; 5 * 1024 * 1024];
    f.write_all_at(&garbage, 20 * 1024 * 1024).unwrap();
    drop(f);
    let mut last = 10;
    for round in 0..3 {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(s.last_seq(J).unwrap(), last, "round {round}");
        check_exact(&s, 1, usize::MAX, last);
        append_n(&s, last + 1, 5);
        last += 5;
        check_exact(&s, 1, usize::MAX, last);
    }
    let b = std::fs::read(log_path(dir.path())).unwrap();
    assert!(
        !b.windows(64).any(|w| w.iter().all(|&x| x == 0x5A)),
        "garbage survived"
    );
}

/// Journal id mismatch in the file header.
#[test]
fn header_journal_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        append_n(&s, 1, 3);
        s.append(2, 1, &[b"other"]).unwrap();
    }
    std::fs::copy(dir.path().join("journal-00002.log"), log_path(dir.path())).unwrap();
    let s = EmbeddedStore::open(dir.path()).unwrap();
    let r = s.last_seq(J);
    eprintln!("{r:?}");
    assert!(matches!(r, Err(StorageError::Corrupt { .. })));
}

/// Readers racing appends never see missing or wrong records, never beyond last_seq + the
/// batch in flight.
#[test]
fn concurrent_reads_during_appends() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for t in 0..2 {
        let s = Arc::clone(&s);
        let done = Arc::clone(&done);
        readers.push(std::thread::spawn(move || {
            let mut n = 0u64;
            let mut from = 1u64;
            while !done.load(Ordering::Acquire) {
                let before = s.last_seq(J).unwrap();
                let got = if t == 0 {
                    s.read(J, 1, usize::MAX).unwrap()
                } else {
                    s.read(J, from, 3).unwrap()
                };
                let start = if t == 0 { 1 } else { from };
                for (i, r) in got.iter().enumerate() {
                    assert_eq!(r.seq, start + i as u64);
                    assert_eq!(r.payload, pay(r.seq));
                }
                if t == 0 {
                    assert!(
                        got.len() as u64 >= before,
                        "read fewer than last_seq before the read"
                    );
                } else if let Some(l) = got.last() {
                    from = l.seq + 1;
                }
                n += 1;
            }
            n
        }));
    }
    let mut last = 0;
    for i in 0..400u64 {
        let n = i % 7 + 1;
        append_n(&s, last + 1, n);
        last += n;
    }
    done.store(true, Ordering::Release);
    for r in readers {
        eprintln!("reads {}", r.join().unwrap());
    }
    check_exact(&s, 1, usize::MAX, last);
}

/// A log whose redb file was lost (snapshot and layout stamp gone) still opens with its
/// records: last_seq, reads and the append fence all agree.
#[test]
fn log_without_redb() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        append_n(&s, 1, 5);
    }
    std::fs::remove_file(dir.path().join("journal-00001.redb")).unwrap();
    let s = EmbeddedStore::open(dir.path()).unwrap();
    let last = s.last_seq(J).unwrap();
    let read = s.read(J, 1, 100).unwrap().len();
    let journals = s.journals().unwrap();
    let app = s.append(J, last + 1, &[b"new"]);
    let last2 = s.last_seq(J).unwrap();
    eprintln!("last_seq {last}, read {read}, journals {journals:?}, append({}) -> {app:?}, last_seq now {last2}", last + 1);
    assert!(
        app.is_ok(),
        "append at last_seq()+1 must not be refused by the fence"
    );
    assert_eq!((last, read, journals, last2), (5, 5, vec![J], 6));
}

/// A file cut exactly at the unaligned end of its last batch (inside the padding) keeps every
/// batch, and appends go on from there.
#[test]
fn cut_at_unaligned_end_of_last_batch() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        s.append(J, 1, &[b"a"]).unwrap();
        s.append(J, 2, &[b"bc"]).unwrap();
    }
    let bs = batches(&log_path(dir.path()));
    let (off, _, _, body) = bs[1];
    let end = off + 32 + u64::from(body);
    eprintln!("batches {bs:?}, cut at {end} (aligned: {})", end % 8 == 0);
    assert_ne!(end % 8, 0);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(log_path(dir.path()))
        .unwrap();
    f.set_len(end).unwrap();
    drop(f);
    for round in 0..2u64 {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        let last = s.last_seq(J).unwrap();
        eprintln!("round {round}: last_seq {last}");
        assert_eq!(last, 2 + round);
        assert_eq!(s.read(J, 1, 10).unwrap().len() as u64, last);
        s.append(J, last + 1, &[b"d"]).unwrap();
    }
}

/// What the conformance suite leaves behind reopens.
#[test]
fn what_the_conformance_suite_leaves_reopens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        yunquan_storage::conformance::payloads_and_snapshots_roundtrip_byte_exact(&s);
    }
    let s = EmbeddedStore::open(dir.path()).unwrap();
    let r = s.read(12, 1, 100);
    eprintln!("after reopen: {:?}", r.as_ref().map(|v| v.len()));
    r.expect("journal 12 reopens");
}
