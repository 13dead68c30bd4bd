//! The conformance suite against `EmbeddedStore`, one fresh data directory per check, plus the
//! embedded backend's own promises: reopening keeps data and a data directory has one user.
// A test fails by panicking; unwrap's panic names the line.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use tempfile::TempDir;
use yunquan_storage::{conformance, EmbeddedStore, StorageError};

fn fresh_dir() -> TempDir {
    tempfile::tempdir().expect("create temp dir")
}

fn open(dir: &Path) -> EmbeddedStore {
    match EmbeddedStore::open(dir) {
        Ok(store) => store,
        Err(err) => panic!("open {}: {err}", dir.display()),
    }
}

macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                let dir = fresh_dir();
                let store = open(dir.path());
                conformance::$check(&store);
            }
        )*

        /// Fails when a check is added to the suite but not to this file.
        #[test]
        fn every_conformance_check_has_a_test() {
            let here = [$(stringify!($check)),*];
            let missing: Vec<&str> = conformance::ALL
                .iter()
                .map(|(name, _)| *name)
                .filter(|name| !here.contains(name))
                .collect();
            assert!(missing.is_empty(), "add to conformance_tests!: {missing:?}");
        }
    };
}

conformance_tests!(
    append_then_read_in_order,
    sequence_fence_refuses_gaps_and_overlaps,
    read_from_middle_and_max,
    empty_journal,
    journals_are_independent,
    snapshot_replaces_previous,
    meta_roundtrip,
    lease_exclusive_until_expiry_and_epoch_increments,
    lease_renew_keeps_epoch,
    large_batch,
    concurrent_appends_to_different_journals,
    racing_writers_exactly_one_wins,
    failed_append_leaves_nothing,
    payloads_and_snapshots_roundtrip_byte_exact,
);

#[test]
fn run_all_uses_a_fresh_store_per_check() {
    let mut dirs = Vec::new();
    conformance::run_all(&mut || {
        let dir = fresh_dir();
        let store = open(dir.path());
        dirs.push(dir);
        store
    });
    assert_eq!(dirs.len(), conformance::ALL.len());
}

#[test]
fn survives_reopen() {
    let dir = fresh_dir();
    conformance::survives_reopen(&mut || open(dir.path()));
}

fn assert_locked(result: Result<EmbeddedStore, StorageError>, dir: &Path) {
    match result {
        Err(err @ StorageError::Locked { .. }) => {
            let message = err.to_string();
            assert!(message.contains("is locked"), "unclear message: {message}");
            assert!(
                message.contains(&dir.display().to_string()),
                "message must name the directory: {message}"
            );
            assert!(err.is_retryable());
        }
        other => panic!(
            "second open of {} must be refused, got {other:?}",
            dir.display()
        ),
    }
}

#[test]
fn second_open_in_same_process_is_refused_until_the_first_is_dropped() {
    let dir = fresh_dir();
    let first = open(dir.path());
    assert_locked(EmbeddedStore::open(dir.path()), dir.path());
    drop(first);
    let again = open(dir.path());
    assert_eq!(again.path(), dir.path());
}

/// Set by `open_from_another_process_is_refused` for the child it starts.
const LOCK_CHILD_DIR_ENV: &str = "YUNQUAN_STORAGE_TEST_LOCK_CHILD_DIR";
const LOCK_CHILD_READY: &str = "lock-child-ready";

/// Not a test on its own: the child half of `open_from_another_process_is_refused`. It holds
/// the directory open until its stdin closes.
#[test]
fn lock_holder_child() {
    let Some(dir) = std::env::var_os(LOCK_CHILD_DIR_ENV) else {
        return;
    };
    let store = open(Path::new(&dir));
    println!("{LOCK_CHILD_READY}");
    std::io::stdout().flush().expect("flush");
    let _ = std::io::stdin().read_line(&mut String::new());
    drop(store);
}

#[test]
fn open_from_another_process_is_refused() {
    let dir = fresh_dir();
    let exe = std::env::current_exe().expect("current test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "lock_holder_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(LOCK_CHILD_DIR_ENV, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    // libtest may print "test lock_holder_child ... " on the same line first.
    let ready = lines.any(|line| line.contains(LOCK_CHILD_READY));
    assert!(ready, "child never opened the store");

    assert_locked(EmbeddedStore::open(dir.path()), dir.path());

    drop(child.stdin.take());
    // Keep reading so the child's closing output does not hit a closed pipe.
    lines.for_each(drop);
    let status = child.wait().expect("wait for child");
    assert!(status.success(), "child failed: {status}");
    open(dir.path());
}
