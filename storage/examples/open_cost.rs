//! What opening a big journal costs, against reading its file once.
//!
//! Usage: `cargo run --release -p yunquan-storage --example open_cost [-- REGISTRATIONS CLAIMS]`
//! (defaults 7,300,000 and 300,000: one of two shards' registrations at the reference
//! program's 14.6M residents, then claims in the small batches of a flash round).
//!
//! Registrations are appended in batches of 4,096 records and claims in batches of 7, each
//! record 100 bytes. Then the store is closed, and reopening it with the first call on the
//! journal (which opens its log and scans every batch: header, body and checksums) is timed,
//! then a read of the last 1,000 records (what recovery after a recent snapshot reads). The
//! baseline, timed right before in the same process, is one sequential pass over the same
//! file with a CRC-32 of every byte: the least any scan that verifies the file could cost.
//! Both run with
//! the file in the page cache (it was just written); as root, `COLD=1` drops the cache before
//! each and times them from the disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::io::Read;
use std::time::Instant;
use yunquan_storage::{EmbeddedStore, Store};

const RECORD_BYTES: usize = 100;
const REGISTRATION_BATCH_RECORDS: u64 = 4096;
const CLAIM_BATCH_RECORDS: u64 = 7;
const JOURNAL: u32 = 0;

fn append_all(store: &EmbeddedStore, first: u64, records: u64, per_batch: u64) -> u64 {
    let payload = vec![0x5Au8; RECORD_BYTES];
    let mut seq = first;
    let end = first + records;
    while seq < end {
        let n = per_batch.min(end - seq) as usize;
        let batch: Vec<&[u8]> = (0..n).map(|_| payload.as_slice()).collect();
        store.append(JOURNAL, seq, &batch).unwrap();
        seq += n as u64;
    }
    seq
}

fn drop_caches() {
    if std::env::var("COLD").is_ok_and(|v| v == "1") {
        std::fs::write("/proc/sys/vm/drop_caches", "3").expect("COLD=1 needs root");
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let regs: u64 = args
        .next()
        .map_or(7_300_000, |s| s.parse().expect("REGISTRATIONS"));
    let claims: u64 = args.next().map_or(300_000, |s| s.parse().expect("CLAIMS"));
    let dir = tempfile::tempdir().unwrap();
    let written = Instant::now();
    let last = {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let next = append_all(&store, 1, regs, REGISTRATION_BATCH_RECORDS);
        append_all(&store, next, claims, CLAIM_BATCH_RECORDS) - 1
    };
    let log = dir.path().join("journal-00000.log");
    let bytes = std::fs::metadata(&log).unwrap().len();
    let batches = regs.div_ceil(REGISTRATION_BATCH_RECORDS) + claims.div_ceil(CLAIM_BATCH_RECORDS);
    println!(
        "{last} records in {batches} batches, log file {:.0} MiB, written in {:.1} s",
        bytes as f64 / (1 << 20) as f64,
        written.elapsed().as_secs_f64()
    );

    drop_caches();
    let t = Instant::now();
    let mut file = std::fs::File::open(&log).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut hasher = crc32fast::Hasher::new();
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    std::hint::black_box(hasher.finalize());
    let baseline_s = t.elapsed().as_secs_f64();

    drop_caches();
    let t = Instant::now();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.last_seq(JOURNAL).unwrap(), last);
    let open_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let tail = store.read(JOURNAL, last - 999, 1000).unwrap();
    assert_eq!(tail.len(), 1000);
    let tail_ms = t.elapsed().as_secs_f64() * 1e3;

    println!("read + CRC of the file   {baseline_s:8.3} s");
    println!(
        "open (scan every batch)  {open_s:8.3} s   {:.2}x the baseline",
        open_s / baseline_s
    );
    println!("then read the last 1,000 records: {tail_ms:.2} ms");
}
