//! Tail latency of small durable appends at a steady rate, against the bare syscalls.
//!
//! Usage: `cargo run --release -p yunquan-storage --example append_stalls [-- RATE SECONDS]`
//! (defaults 2000 appends/s for 20 s, about what one shard writes at the HTTP peak).
//!
//! Each append is one batch of 7 records of 180 bytes, paced at RATE per second. The store's
//! appends (a fresh journal, which has to grow its file as it goes) are measured against a
//! baseline run right before them in the same process: one `pwrite` + `fdatasync` of a
//! batch-sized buffer into a file whose whole length was written and synced up front, the
//! floor of this disk. The ratios are what to compare across machines; the absolute times
//! depend on the disk and on what else the machine is doing.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};
use yunquan_storage::{EmbeddedStore, Store};

/// Records per batch and bytes per record, close to a claim batch at the HTTP peak.
const RECORDS_PER_BATCH: usize = 7;
const RECORD_BYTES: usize = 180;
/// What the log adds: a 32-byte header per batch, a length and a CRC (4 bytes each) per
/// record, and padding of the batch to 8 bytes.
const BATCH_BYTES: usize = (32 + RECORDS_PER_BATCH * (RECORD_BYTES + 8)).next_multiple_of(8);

/// Latency summary of one run.
struct Summary {
    p50: Duration,
    p99: Duration,
    p999: Duration,
    max: Duration,
    over_5ms: usize,
}

fn summarise(mut lat: Vec<Duration>) -> Summary {
    lat.sort();
    let n = lat.len();
    Summary {
        p50: lat[n / 2],
        p99: lat[n * 99 / 100],
        p999: lat[n * 999 / 1000],
        max: lat[n - 1],
        over_5ms: lat
            .iter()
            .filter(|d| **d > Duration::from_millis(5))
            .count(),
    }
}

/// Calls `append` `count` times at `rate` per second and returns each call's latency.
fn paced(rate: u64, count: u64, mut append: impl FnMut(u64)) -> Vec<Duration> {
    let start = Instant::now();
    let mut lat = Vec::with_capacity(count as usize);
    for i in 0..count {
        let due = start + Duration::from_micros(i * 1_000_000 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t = Instant::now();
        append(i);
        lat.push(t.elapsed());
    }
    lat
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rate: u64 = args
        .next()
        .map_or(2000, |s| s.parse().expect("RATE: appends per second"));
    let secs: u64 = args
        .next()
        .map_or(20, |s| s.parse().expect("SECONDS: whole seconds"));
    let count = rate * secs;
    let dir = tempfile::tempdir().unwrap();

    // Baseline: the file's whole length written and synced before the first append.
    let batch_bytes = BATCH_BYTES;
    let raw_path = dir.path().join("raw.log");
    let raw = std::fs::File::create(&raw_path).unwrap();
    let zeros = vec![0u8; 1 << 20];
    let total = count * batch_bytes as u64;
    let mut at = 0;
    while at < total {
        raw.write_all_at(&zeros, at).unwrap();
        at += zeros.len() as u64;
    }
    raw.sync_all().unwrap();
    let buf = vec![7u8; batch_bytes];
    let base = summarise(paced(rate, count, |i| {
        raw.write_all_at(&buf, i * batch_bytes as u64).unwrap();
        raw.sync_data().unwrap();
    }));

    let store = EmbeddedStore::open(&dir.path().join("store")).unwrap();
    let payload = vec![7u8; RECORD_BYTES];
    let events: Vec<&[u8]> = (0..RECORDS_PER_BATCH).map(|_| payload.as_slice()).collect();
    let ours = summarise(paced(rate, count, |i| {
        store
            .append(0, 1 + i * RECORDS_PER_BATCH as u64, &events)
            .unwrap();
    }));

    println!(
        "{count} appends at {rate}/s, {RECORDS_PER_BATCH} records of {RECORD_BYTES} bytes each"
    );
    println!(
        "{:<22}{:>9}{:>9}{:>9}{:>9}{:>9}",
        "", "p50 ms", "p99 ms", "p999 ms", "max ms", ">5 ms"
    );
    for (name, s) in [("pwrite+fdatasync", &base), ("store append", &ours)] {
        println!(
            "{name:<22}{:>9.3}{:>9.3}{:>9.3}{:>9.3}{:>9}",
            ms(s.p50),
            ms(s.p99),
            ms(s.p999),
            ms(s.max),
            s.over_5ms
        );
    }
    println!(
        "{:<22}{:>9.2}{:>9.2}{:>9.2}{:>9.2}",
        "store / baseline",
        ms(ours.p50) / ms(base.p50),
        ms(ours.p99) / ms(base.p99),
        ms(ours.p999) / ms(base.p999),
        ms(ours.max) / ms(base.max)
    );
}
