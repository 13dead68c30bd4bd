//! Behaviour every [`Store`] backend must show, as plain functions that panic on a violation.
//!
//! A backend's tests call [`run_all`] (or each check as its own `#[test]`, to see failures
//! separately) with a fresh, empty store per check, plus [`survives_reopen`]. The checks use
//! only the trait, so a backend that passes them can replace another without the shard code
//! noticing.

use std::sync::Barrier;

use crate::error::StorageError;
use crate::store::{JournalId, Record, Store};

/// One check: panics if `store` (fresh and empty) misbehaves.
pub type Check = fn(&dyn Store);

/// Every check taking a fresh store, by name, in the order [`run_all`] runs them.
pub const ALL: &[(&str, Check)] = &[
    ("append_then_read_in_order", append_then_read_in_order),
    (
        "sequence_fence_refuses_gaps_and_overlaps",
        sequence_fence_refuses_gaps_and_overlaps,
    ),
    ("read_from_middle_and_max", read_from_middle_and_max),
    ("empty_journal", empty_journal),
    ("journals_are_independent", journals_are_independent),
    ("snapshot_replaces_previous", snapshot_replaces_previous),
    ("meta_roundtrip", meta_roundtrip),
    (
        "lease_exclusive_until_expiry_and_epoch_increments",
        lease_exclusive_until_expiry_and_epoch_increments,
    ),
    ("lease_renew_keeps_epoch", lease_renew_keeps_epoch),
    ("large_batch", large_batch),
    (
        "concurrent_appends_to_different_journals",
        concurrent_appends_to_different_journals,
    ),
    (
        "racing_writers_exactly_one_wins",
        racing_writers_exactly_one_wins,
    ),
    ("failed_append_leaves_nothing", failed_append_leaves_nothing),
    (
        "payloads_and_snapshots_roundtrip_byte_exact",
        payloads_and_snapshots_roundtrip_byte_exact,
    ),
];

/// Runs every check in [`ALL`], each on a new store from `make`.
pub fn run_all<S: Store>(make: &mut dyn FnMut() -> S) {
    for (name, check) in ALL {
        eprintln!("storage conformance: {name}");
        let store = make();
        check(&store);
    }
}

/// Unwraps a storage result, naming the step that failed.
fn ok<T>(result: Result<T, StorageError>, step: &str) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("{step}: unexpected error: {err}"),
    }
}

/// Distinct, recognisable payload for `seq` of `journal`.
fn payload(journal: JournalId, seq: u64) -> Vec<u8> {
    format!("journal {journal} event {seq}").into_bytes()
}

fn append_payloads(store: &dyn Store, journal: JournalId, first_seq: u64, count: u64) {
    let payloads: Vec<Vec<u8>> = (first_seq..first_seq + count)
        .map(|seq| payload(journal, seq))
        .collect();
    let events: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    ok(
        store.append(journal, first_seq, &events),
        &format!("append {count} at {first_seq} to journal {journal}"),
    );
}

/// Asserts that `records` are exactly seqs `first..=last` of `journal` with their payloads.
fn assert_records(records: &[Record], journal: JournalId, first: u64, last: u64) {
    let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    let want: Vec<u64> = (first..=last).collect();
    assert_eq!(seqs, want, "journal {journal}: wrong seqs");
    for record in records {
        assert_eq!(
            record.payload,
            payload(journal, record.seq),
            "journal {journal}: wrong payload at seq {}",
            record.seq
        );
    }
}

fn assert_mismatch(result: Result<(), StorageError>, journal: JournalId, expected: u64, got: u64) {
    match result {
        Err(StorageError::SequenceMismatch {
            journal: j,
            expected: e,
            got: g,
        }) => {
            assert_eq!((j, e, g), (journal, expected, got), "mismatch fields");
        }
        other => panic!(
            "append at {got} to journal {journal} (next is {expected}) must be refused, got {other:?}"
        ),
    }
}

/// Batches appended one after another read back as one dense, ordered journal.
pub fn append_then_read_in_order(store: &dyn Store) {
    append_payloads(store, 1, 1, 3);
    append_payloads(store, 1, 4, 1);
    append_payloads(store, 1, 5, 2);
    assert_eq!(ok(store.last_seq(1), "last_seq"), 6);
    assert_records(&ok(store.read(1, 1, 100), "read"), 1, 1, 6);
}

/// The fence refuses every seq but last+1, with the fields a stale writer needs to react.
pub fn sequence_fence_refuses_gaps_and_overlaps(store: &dyn Store) {
    let event: &[u8] = b"intruder";
    assert_mismatch(store.append(2, 0, &[event]), 2, 1, 0);
    assert_mismatch(store.append(2, 2, &[event]), 2, 1, 2);
    append_payloads(store, 2, 1, 3);
    for refused in [1, 2, 3, 5, 100] {
        let result = store.append(2, refused, &[event]);
        if let Err(err) = &result {
            assert!(!err.is_retryable(), "a refused fence must not be retried");
        }
        assert_mismatch(result, 2, 4, refused);
    }
    ok(store.append(2, 4, &[]), "empty batch at the right seq");
    assert_mismatch(store.append(2, 6, &[]), 2, 4, 6);
    assert_eq!(ok(store.last_seq(2), "last_seq"), 3);
    assert_records(&ok(store.read(2, 1, 100), "read"), 2, 1, 3);
    append_payloads(store, 2, 4, 1);
    assert_records(&ok(store.read(2, 1, 100), "read"), 2, 1, 4);
}

/// Recovery and catch-up read from any seq, a bounded page at a time.
pub fn read_from_middle_and_max(store: &dyn Store) {
    append_payloads(store, 3, 1, 10);
    assert_records(&ok(store.read(3, 4, 3), "read 4+3"), 3, 4, 6);
    assert_records(&ok(store.read(3, 8, 100), "read 8+"), 3, 8, 10);
    assert_records(&ok(store.read(3, 0, 2), "read from 0"), 3, 1, 2);
    assert_records(&ok(store.read(3, 10, 1), "read last"), 3, 10, 10);
    assert_records(&ok(store.read(3, 1, usize::MAX), "read all"), 3, 1, 10);
    assert!(ok(store.read(3, 11, 10), "read past end").is_empty());
    assert!(ok(store.read(3, 1, 0), "read max 0").is_empty());
}

/// Unknown journals read as empty and are not created by reading them.
pub fn empty_journal(store: &dyn Store) {
    assert_eq!(ok(store.last_seq(9), "last_seq"), 0);
    assert!(ok(store.read(9, 0, 10), "read from 0").is_empty());
    assert!(ok(store.read(9, 1, 10), "read from 1").is_empty());
    assert_eq!(ok(store.load_snapshot(9), "load_snapshot"), None);
    assert!(
        ok(store.journals(), "journals").is_empty(),
        "reading journals must not make them exist"
    );
}

/// Shards never see each other's records or snapshots; `journals` lists the non-empty ones.
pub fn journals_are_independent(store: &dyn Store) {
    let (a, b, snapshot_only, wide) = (1, 2, 5, 123_456);
    append_payloads(store, b, 1, 2);
    append_payloads(store, a, 1, 5);
    append_payloads(store, wide, 1, 1);
    ok(store.save_snapshot(snapshot_only, 0, b"s"), "save_snapshot");
    ok(store.save_snapshot(a, 5, b"a-state"), "save_snapshot a");
    assert_eq!(ok(store.last_seq(a), "last_seq a"), 5);
    assert_eq!(ok(store.last_seq(b), "last_seq b"), 2);
    assert_eq!(ok(store.last_seq(snapshot_only), "last_seq s"), 0);
    assert_records(&ok(store.read(a, 1, 100), "read a"), a, 1, 5);
    assert_records(&ok(store.read(b, 1, 100), "read b"), b, 1, 2);
    assert_records(&ok(store.read(wide, 1, 100), "read wide"), wide, 1, 1);
    assert_eq!(ok(store.load_snapshot(b), "load_snapshot b"), None);
    assert_eq!(
        ok(store.journals(), "journals"),
        vec![a, b, snapshot_only, wide],
        "journals with records or a snapshot, ascending"
    );
}

/// Only the latest snapshot is kept, and saving one never touches the records.
pub fn snapshot_replaces_previous(store: &dyn Store) {
    assert_eq!(ok(store.load_snapshot(4), "load none"), None);
    append_payloads(store, 4, 1, 9);
    ok(store.save_snapshot(4, 5, b"at five"), "save 5");
    assert_eq!(
        ok(store.load_snapshot(4), "load 5"),
        Some((5, b"at five".to_vec()))
    );
    ok(store.save_snapshot(4, 9, b"at nine, longer"), "save 9");
    assert_eq!(
        ok(store.load_snapshot(4), "load 9"),
        Some((9, b"at nine, longer".to_vec()))
    );
    ok(store.save_snapshot(4, 3, b""), "save empty at 3");
    assert_eq!(
        ok(store.load_snapshot(4), "load 3"),
        Some((3, Vec::new())),
        "the last save wins, whatever its seq"
    );
    assert_eq!(
        ok(store.last_seq(4), "last_seq"),
        9,
        "snapshots leave records alone"
    );
    assert_records(&ok(store.read(4, 1, 100), "read"), 4, 1, 9);
}

/// Settings round-trip exactly, binary and empty values included.
pub fn meta_roundtrip(store: &dyn Store) {
    assert_eq!(ok(store.get_meta("shards"), "get missing"), None);
    ok(store.put_meta("shards", b"16"), "put");
    ok(store.put_meta("secret/hmac", &[0, 255, 1]), "put binary");
    assert_eq!(ok(store.get_meta("shards"), "get"), Some(b"16".to_vec()));
    ok(store.put_meta("shards", b"32"), "overwrite");
    assert_eq!(
        ok(store.get_meta("shards"), "get new"),
        Some(b"32".to_vec())
    );
    assert_eq!(
        ok(store.get_meta("secret/hmac"), "get binary"),
        Some(vec![0, 255, 1])
    );
    ok(store.put_meta("城市", b""), "put empty");
    assert_eq!(ok(store.get_meta("城市"), "get empty"), Some(Vec::new()));
    assert_eq!(ok(store.get_meta("shard"), "get prefix"), None);
}

fn assert_lease_held(result: Result<crate::Lease, StorageError>, holder: &str, expires_in_ms: u64) {
    match result {
        Err(err @ StorageError::LeaseHeld { .. }) => {
            assert!(err.is_retryable(), "a held lease is worth retrying");
            if let StorageError::LeaseHeld {
                holder: h,
                expires_in_ms: e,
                ..
            } = err
            {
                assert_eq!((h.as_str(), e), (holder, expires_in_ms), "LeaseHeld fields");
            }
        }
        other => panic!("lease held by {holder} must be refused, got {other:?}"),
    }
}

/// One holder at a time, and every change of hands raises the fencing epoch.
pub fn lease_exclusive_until_expiry_and_epoch_increments(store: &dyn Store) {
    let first = ok(store.acquire_lease("shard/1", "a", 1000, 0), "a acquires");
    assert_eq!(
        (
            first.name.as_str(),
            first.owner.as_str(),
            first.epoch,
            first.expires_at_ms
        ),
        ("shard/1", "a", 1, 1000)
    );
    assert_lease_held(store.acquire_lease("shard/1", "b", 1000, 500), "a", 500);
    assert_lease_held(store.acquire_lease("shard/1", "b", 1000, 999), "a", 1);
    let other = ok(store.acquire_lease("shard/2", "b", 1000, 500), "other name");
    assert_eq!(other.epoch, 1, "leases are independent");

    let taken = ok(
        store.acquire_lease("shard/1", "b", 1000, 1000),
        "b after expiry",
    );
    assert_eq!((taken.owner.as_str(), taken.epoch), ("b", 2));
    assert_lease_held(store.acquire_lease("shard/1", "a", 1000, 1200), "b", 800);

    ok(
        store.release_lease("shard/1", "a"),
        "release by a non-holder",
    );
    assert_lease_held(store.acquire_lease("shard/1", "a", 1000, 1300), "b", 700);
    ok(store.release_lease("shard/1", "b"), "release by holder");
    let back = ok(
        store.acquire_lease("shard/1", "a", 1000, 1400),
        "a after release",
    );
    assert_eq!((back.owner.as_str(), back.epoch), ("a", 3));
    ok(store.release_lease("shard/1", "a"), "release");
    let again = ok(store.acquire_lease("shard/1", "a", 1000, 1500), "a again");
    assert_eq!(again.epoch, 4, "release then grant is a change of hands");
}

/// A holder renewing its own lease keeps its epoch, so its in-flight writes stay valid.
pub fn lease_renew_keeps_epoch(store: &dyn Store) {
    let first = ok(store.acquire_lease("stock/7", "a", 1000, 0), "acquire");
    let renewed = ok(store.acquire_lease("stock/7", "a", 1000, 500), "renew");
    assert_eq!(renewed.epoch, first.epoch);
    assert_eq!(renewed.expires_at_ms, 1500, "renewal extends from now");
    assert_lease_held(store.acquire_lease("stock/7", "b", 1000, 1200), "a", 300);
    let late = ok(
        store.acquire_lease("stock/7", "a", 1000, 2000),
        "renew after expiry",
    );
    assert_eq!(late.epoch, first.epoch, "nobody else held it in between");
    assert_eq!(late.expires_at_ms, 3000);
}

/// A flash-sale sized batch is stored whole and reads back byte for byte.
pub fn large_batch(store: &dyn Store) {
    let (count, payload_bytes) = (10_000_u64, 100_usize);
    let payloads: Vec<Vec<u8>> = (1..=count)
        .map(|seq| {
            let mut p = seq.to_le_bytes().to_vec();
            p.resize(payload_bytes, (seq % 251) as u8);
            p
        })
        .collect();
    let events: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    ok(store.append(6, 1, &events), "append large batch");
    assert_eq!(ok(store.last_seq(6), "last_seq"), count);
    let all = ok(store.read(6, 1, 20_000), "read all");
    assert_eq!(all.len(), payloads.len());
    for (record, (seq, expected)) in all.iter().zip((1..).zip(&payloads)) {
        assert_eq!(
            (record.seq, &record.payload),
            (seq, expected),
            "record {seq}"
        );
    }
    let mut next = 1;
    while next <= count {
        let page = ok(store.read(6, next, 1_000), "read page");
        assert_eq!(page.len(), 1_000);
        assert_eq!(page.first().map(|r| r.seq), Some(next));
        next += 1_000;
    }
}

/// Shard threads appending at once do not lose or mix up each other's records.
pub fn concurrent_appends_to_different_journals(store: &dyn Store) {
    let (threads, batches, batch_len) = (4_u32, 50_u64, 10_u64);
    std::thread::scope(|scope| {
        for journal in 0..threads {
            scope.spawn(move || {
                for batch in 0..batches {
                    append_payloads(store, journal, batch * batch_len + 1, batch_len);
                }
            });
        }
    });
    for journal in 0..threads {
        let last = batches * batch_len;
        assert_eq!(ok(store.last_seq(journal), "last_seq"), last);
        assert_records(
            &ok(store.read(journal, 1, 10_000), "read"),
            journal,
            1,
            last,
        );
    }
}

/// Writers racing for the same seq: the fence lets exactly one through.
pub fn racing_writers_exactly_one_wins(store: &dyn Store) {
    let (writers, rounds) = (4_usize, 20_u64);
    for seq in 1..=rounds {
        let barrier = Barrier::new(writers);
        let winners: Vec<usize> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..writers)
                .map(|writer| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        let event = format!("writer {writer}");
                        barrier.wait();
                        match store.append(8, seq, &[event.as_bytes()]) {
                            Ok(()) => true,
                            Err(StorageError::SequenceMismatch { .. }) => false,
                            Err(err) => panic!("racing append: {err}"),
                        }
                    })
                })
                .collect();
            let mut winners = Vec::new();
            for (writer, handle) in handles.into_iter().enumerate() {
                match handle.join() {
                    Ok(true) => winners.push(writer),
                    Ok(false) => {}
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            winners
        });
        assert_eq!(winners.len(), 1, "round {seq}: exactly one writer may win");
        let stored = ok(store.read(8, seq, 10), "read round");
        let want = winners.first().map(|w| format!("writer {w}").into_bytes());
        assert_eq!(stored.len(), 1, "round {seq}: one record");
        assert_eq!(stored.first().map(|r| r.payload.clone()), want);
    }
}

/// A refused batch leaves no trace: no records, no seq movement, no new journal.
pub fn failed_append_leaves_nothing(store: &dyn Store) {
    append_payloads(store, 10, 1, 3);
    let refused: Vec<Vec<u8>> = (0..100)
        .map(|i| format!("refused {i}").into_bytes())
        .collect();
    let events: Vec<&[u8]> = refused.iter().map(Vec::as_slice).collect();
    assert!(store.append(10, 5, &events).is_err(), "gap must fail");
    assert!(store.append(10, 3, &events).is_err(), "overlap must fail");
    assert_eq!(ok(store.last_seq(10), "last_seq"), 3);
    assert_records(&ok(store.read(10, 1, 1_000), "read"), 10, 1, 3);

    assert!(
        store.append(11, 2, &events).is_err(),
        "gap on empty journal"
    );
    assert_eq!(ok(store.last_seq(11), "last_seq empty"), 0);
    assert!(ok(store.read(11, 0, 1_000), "read empty").is_empty());
    assert_eq!(
        ok(store.journals(), "journals"),
        vec![10],
        "no journal from a refusal"
    );

    append_payloads(store, 10, 4, 2);
    assert_records(&ok(store.read(10, 1, 1_000), "read after"), 10, 1, 5);
}

/// Whatever framing a backend adds (checksums, lengths) is invisible: empty payloads, every
/// byte value, payloads that end in what looks like a checksum and payloads far larger than a
/// page come back exactly, as records and as snapshots.
pub fn payloads_and_snapshots_roundtrip_byte_exact(store: &dyn Store) {
    let all_bytes: Vec<u8> = (0..=255).collect();
    let large: Vec<u8> = (0..200_000_u32).map(|i| (i % 253) as u8).collect();
    let payloads: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0],
        vec![0; 4],
        vec![0xFF; 4],
        all_bytes.clone(),
        Vec::new(),
        b"ends like a crc\x00\x00\x00\x00".to_vec(),
        large.clone(),
    ];
    let events: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    ok(store.append(12, 1, &events), "append odd payloads");
    ok(store.append(12, 9, &[b""]), "append a lone empty payload");
    let read = ok(store.read(12, 1, 100), "read odd payloads");
    let got: Vec<(u64, &[u8])> = read.iter().map(|r| (r.seq, r.payload.as_slice())).collect();
    let mut want: Vec<(u64, &[u8])> = (1..).zip(events.iter().copied()).collect();
    want.push((9, b""));
    assert_eq!(got, want, "payloads must come back byte for byte");
    for (seq, state) in [(0_u64, &[][..]), (9, &large[..]), (9, &all_bytes[..])] {
        ok(store.save_snapshot(12, seq, state), "save odd snapshot");
        assert_eq!(
            ok(store.load_snapshot(12), "load odd snapshot"),
            Some((seq, state.to_vec())),
            "snapshot at {seq} must come back byte for byte"
        );
    }
    for past in [10, u64::MAX] {
        match store.save_snapshot(12, past, b"claims records that do not exist") {
            Err(StorageError::SnapshotPastEnd {
                journal: 12,
                seq,
                last_seq: 9,
            }) if seq == past => {}
            other => panic!("a snapshot at {past} past the end (9) must be refused, got {other:?}"),
        }
    }
    assert_eq!(
        ok(store.load_snapshot(12), "load after refused snapshots"),
        Some((9, all_bytes.clone())),
        "a refused snapshot leaves the previous one"
    );
}

/// Writes through one store, drops it, and checks a store opened by `open` on the same data
/// sees everything: records, the fence position, snapshots, settings and lease epochs.
pub fn survives_reopen<S: Store>(open: &mut dyn FnMut() -> S) {
    {
        let store = open();
        append_payloads(&store, 1, 1, 3);
        append_payloads(&store, 2, 1, 1);
        ok(store.save_snapshot(1, 2, b"state at 2"), "save_snapshot");
        ok(store.put_meta("shards", b"8"), "put_meta");
        let lease = ok(store.acquire_lease("held", "a", 1000, 0), "acquire held");
        assert_eq!(lease.epoch, 1);
        ok(store.acquire_lease("freed", "a", 1000, 0), "acquire freed");
        ok(store.release_lease("freed", "a"), "release freed");
    }
    {
        let store = open();
        assert_eq!(ok(store.last_seq(1), "last_seq after reopen"), 3);
        assert_records(&ok(store.read(1, 1, 100), "read 1"), 1, 1, 3);
        assert_records(&ok(store.read(2, 1, 100), "read 2"), 2, 1, 1);
        assert_eq!(
            ok(store.load_snapshot(1), "load_snapshot"),
            Some((2, b"state at 2".to_vec()))
        );
        assert_eq!(
            ok(store.get_meta("shards"), "get_meta"),
            Some(b"8".to_vec())
        );
        assert_eq!(ok(store.journals(), "journals"), vec![1, 2]);
        assert_mismatch(store.append(1, 3, &[b"stale"]), 1, 4, 3);
        append_payloads(&store, 1, 4, 1);
        assert_lease_held(store.acquire_lease("held", "b", 1000, 400), "a", 600);
        let taken = ok(store.acquire_lease("held", "b", 1000, 1000), "take held");
        assert_eq!(taken.epoch, 2);
        let freed = ok(store.acquire_lease("freed", "b", 1000, 400), "take freed");
        assert_eq!(freed.epoch, 2, "a release survives reopen");
    }
    let store = open();
    assert_records(
        &ok(store.read(1, 1, 100), "read after second reopen"),
        1,
        1,
        4,
    );
    assert_eq!(ok(store.last_seq(1), "last_seq after second reopen"), 4);
}
