//! The fault-injecting wrapper: transparent while its switches are off (it passes the whole
//! conformance suite), and while they are on it refuses writes without touching the inner store.
// A test fails by panicking; unwrap's panic names the line.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use yunquan_storage::faults::RefusedAppend;
use yunquan_storage::{conformance, EmbeddedStore, FaultyStore, StorageError, Store};

/// How long a test waits for another thread to reach a point before failing.
const WAIT_DEADLINE: Duration = Duration::from_secs(30);

fn faulty() -> (FaultyStore, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let inner = EmbeddedStore::open(dir.path()).expect("open store");
    (FaultyStore::new(Arc::new(inner)), dir)
}

fn assert_injected(result: Result<(), StorageError>) {
    match result {
        Err(err @ StorageError::Write { .. }) => {
            let message = err.to_string();
            assert!(message.contains("FaultyStore"), "{message}");
            assert!(
                !err.is_retryable(),
                "a failed write means reload, not retry"
            );
        }
        other => panic!("expected an injected write failure, got {other:?}"),
    }
}

fn payloads(store: &dyn Store, journal: u32) -> Vec<Vec<u8>> {
    store
        .read(journal, 1, 1000)
        .expect("read")
        .into_iter()
        .map(|r| r.payload)
        .collect()
}

#[test]
fn with_every_switch_off_it_passes_the_conformance_suite() {
    let mut dirs = Vec::new();
    conformance::run_all(&mut || {
        let (store, dir) = faulty();
        dirs.push(dir);
        store
    });
    let dir = tempfile::tempdir().expect("temp dir");
    conformance::survives_reopen(&mut || {
        FaultyStore::new(Arc::new(
            EmbeddedStore::open(dir.path()).expect("open store"),
        ))
    });
}

#[test]
fn failing_appends_store_nothing_and_recover_when_switched_off() {
    let (store, _dir) = faulty();
    let switch = store.clone();
    store
        .append(1, 1, &[b"a"])
        .expect("append before the fault");
    switch.fail_appends(true);
    for _ in 0..3 {
        assert_injected(store.append(1, 2, &[b"b", b"c"]));
    }
    assert_eq!(store.last_seq(1).expect("last_seq"), 1);
    assert_eq!(payloads(store.inner().as_ref(), 1), vec![b"a".to_vec()]);
    // Reads, snapshots and settings are not affected by the append switch.
    store.save_snapshot(1, 1, b"state").expect("snapshot");
    store.put_meta("k", b"v").expect("meta");
    // An empty batch writes nothing, so it only checks the fence.
    store.append(1, 2, &[]).expect("empty batch");

    switch.fail_appends(false);
    store
        .append(1, 2, &[b"b", b"c"])
        .expect("append after the fault");
    assert_eq!(
        payloads(&store, 1),
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );
    assert_eq!(
        switch.refused_appends(),
        vec![
            RefusedAppend {
                journal: 1,
                first_seq: 2,
                events: 2
            };
            3
        ]
    );
}

#[test]
fn fail_next_appends_counts_only_non_empty_batches() {
    let (store, _dir) = faulty();
    store.fail_next_appends(2);
    store
        .append(7, 1, &[])
        .expect("empty batches pass and are not counted");
    assert_injected(store.append(7, 1, &[b"x"]));
    assert_injected(store.append(7, 1, &[b"x"]));
    store
        .append(7, 1, &[b"x"])
        .expect("the third append passes");
    store.append(7, 2, &[b"y"]).expect("and so do later ones");
    assert_eq!(payloads(&store, 7), vec![b"x".to_vec(), b"y".to_vec()]);
    assert_eq!(store.refused_appends().len(), 2);
}

#[test]
fn failing_snapshots_keep_the_previous_one() {
    let (store, _dir) = faulty();
    let records: Vec<&[u8]> = vec![b"r"; 9];
    store.append(3, 1, &records[..5]).expect("records 1-5");
    store.save_snapshot(3, 5, b"old").expect("first snapshot");
    store.fail_snapshots(true);
    assert_injected(store.save_snapshot(3, 5, b"new"));
    assert_eq!(
        store.load_snapshot(3).expect("load"),
        Some((5, b"old".to_vec()))
    );
    store
        .append(3, 6, &records[5..])
        .expect("appends are not affected");
    store.fail_snapshots(false);
    store
        .save_snapshot(3, 9, b"new")
        .expect("snapshot after the fault");
}

#[test]
fn held_appends_wait_until_released_then_fail_or_pass() {
    let (store, _dir) = faulty();
    store.hold_appends();
    store.fail_next_appends(1);
    let (first, second) = (store.clone(), store.clone());
    let refused = std::thread::spawn(move || first.append(4, 1, &[b"one"]));
    let deadline = Instant::now() + WAIT_DEADLINE;
    while store.appends_held() < 1 {
        assert!(Instant::now() < deadline, "append never reached the gate");
        std::thread::yield_now();
    }
    let passed = std::thread::spawn(move || second.append(4, 1, &[b"two"]));
    while store.appends_held() < 2 {
        assert!(
            Instant::now() < deadline,
            "second append never reached the gate"
        );
        std::thread::yield_now();
    }
    assert_eq!(
        store.last_seq(4).expect("last_seq"),
        0,
        "nothing passed yet"
    );
    store.release_appends();
    let results = [
        refused.join().expect("first thread"),
        passed.join().expect("second thread"),
    ];
    // Which one consumed the single failure depends on wake-up order; one fails, one passes.
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
    assert_eq!(store.last_seq(4).expect("last_seq"), 1);
    assert_eq!(store.appends_held(), 0);
}

#[test]
fn failing_after_writing_stores_the_batch_and_still_reports_failure() {
    let (store, _dir) = faulty();
    store.fail_appends_after_writing(true);
    assert_injected(store.append(2, 1, &[b"landed"]));
    assert_eq!(payloads(&store, 2), vec![b"landed".to_vec()]);
    assert_eq!(store.last_seq(2).expect("last_seq"), 1);
    assert!(store.refused_appends().is_empty(), "it was not refused");
    store.fail_appends_after_writing(false);
    store
        .append(2, 2, &[b"next"])
        .expect("append after the fault");
}
