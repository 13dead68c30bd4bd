//! Overload against the real binary: a server with a tiny in-flight cap and tiny shard
//! mailboxes is flooded by far more concurrent claims than it admits. Every excess request
//! must be turned away at once with 503 `overloaded` and a `Retry-After`, nothing else may
//! go wrong, memory must stay bounded, and a request that was shed must execute when it is
//! retried with the same Idempotency-Key (it was never executed), while a request that was
//! executed replays its first answer.
// A test fails by panicking; unwrap's panic names the line.
#![allow(clippy::unwrap_used)]

mod common;

use common::{live_campaign, residents_ndjson, Api, Server};
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Residents, one claim each (one key each).
const RESIDENTS: usize = 3_000;
/// Concurrent requests of the flood: far above the server's admitted in-flight cap.
const FLOOD_CONCURRENCY: usize = 256;
/// The server's in-flight cap and mailbox size in this test.
const SERVER_LIMITS: [&str; 4] = [
    "--requests-in-flight-max",
    "8",
    "--mailbox-commands-max",
    "4",
];
/// Concurrent retries of shed requests (well under the cap, so they are admitted).
const RETRY_CONCURRENCY: usize = 4;
/// Attempts per shed request before the test gives up on it.
const RETRY_ATTEMPTS_MAX: usize = 200;
/// Resident memory the server may gain during the flood, in KiB. The flood sends about
/// 1 MiB of requests in all; a server that queued them without bound would still stay
/// under this, but one that leaked per request or buffered responses would not.
const RSS_GROWTH_KIB_MAX: u64 = 256 * 1024;

/// One reply: status, problem reason, Retry-After, body.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    reason: Option<String>,
    retry_after: Option<String>,
    body: Value,
}

async fn claim(api: &Api, path: &str, token: &str, key: &str) -> Answer {
    let resp = api
        .http
        .post(format!("{}{path}", api.base))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&json!({"tier": 0}))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status >= 400 {
        assert!(
            content_type.starts_with("application/problem+json"),
            "{status} with {content_type:?}: {body}"
        );
    }
    Answer {
        status,
        reason: body["reason"].as_str().map(str::to_owned),
        retry_after,
        body,
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excess_claims_are_shed_at_once_and_shed_ones_execute_on_retry() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &SERVER_LIMITS);
    let mgr = Api::new(&server.base, Some(server.token("manager", "ops", None)));

    let tiers =
        json!([{"name": "5 cash", "kind": "cash", "discount_fen": 500, "stock": RESIDENTS * 2}]);
    let (s, camp) = mgr.post("/v1/campaigns", live_campaign(tiers)).await;
    assert_eq!(s, 201, "{camp}");
    let id = camp["id"].as_str().unwrap().to_owned();
    let (s, _) = mgr
        .post(&format!("/v1/campaigns/{id}/publish"), json!(null))
        .await;
    assert_eq!(s, 200);
    let (s, out) = mgr
        .post_raw(
            "/v1/residents/import",
            residents_ndjson("ov", RESIDENTS),
            "application/x-ndjson",
        )
        .await;
    assert_eq!(
        (s, out["accepted"].as_u64()),
        (200, Some(RESIDENTS as u64)),
        "{out}"
    );
    let subjects: Vec<String> = (0..RESIDENTS).map(|i| format!("ov{i}")).collect();
    let (s, minted) = mgr
        .post(
            "/v1/tokens",
            json!({"role": "resident", "subjects": subjects}),
        )
        .await;
    assert_eq!(s, 200, "{minted}");
    let tokens: Vec<String> = minted["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();

    let path = format!("/v1/campaigns/{id}/claims");
    let api = Api::new(&server.base, None);
    let rss_before = rss_kib(server.pid());
    let flood: Vec<Answer> = stream::iter(0..RESIDENTS)
        .map(|i| {
            let (api, path, token) = (api.clone(), path.clone(), tokens[i].clone());
            async move { claim(&api, &path, &token, &format!("key-{i}")).await }
        })
        .buffered(FLOOD_CONCURRENCY)
        .collect()
        .await;
    let rss_after = rss_kib(server.pid());

    let mut by_outcome: BTreeMap<(u16, Option<String>), usize> = BTreeMap::new();
    for a in &flood {
        *by_outcome.entry((a.status, a.reason.clone())).or_default() += 1;
    }
    eprintln!("flood outcomes: {by_outcome:?}; server RSS {rss_before} -> {rss_after} KiB");
    let shed: Vec<usize> = (0..RESIDENTS).filter(|&i| flood[i].status == 503).collect();
    for (status, reason) in by_outcome.keys() {
        assert!(
            *status == 201 || (*status == 503 && reason.as_deref() == Some("overloaded")),
            "only grants and load shedding under overload: {by_outcome:?}"
        );
    }
    assert!(
        !shed.is_empty(),
        "the flood must exceed the cap: {by_outcome:?}"
    );
    assert!(
        shed.len() < RESIDENTS,
        "some claims are admitted: {by_outcome:?}"
    );
    for &i in &shed {
        let wait: u64 = flood[i]
            .retry_after
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("503 without a whole-second Retry-After: {:?}", flood[i]));
        assert!(wait >= 1, "{:?}", flood[i]);
    }
    assert!(
        rss_after.saturating_sub(rss_before) < RSS_GROWTH_KIB_MAX,
        "server memory grew from {rss_before} KiB to {rss_after} KiB under the flood"
    );

    // Shed requests were never executed: their retries with the same key execute now.
    let retried: Vec<(usize, Answer)> = stream::iter(shed.iter().copied())
        .map(|i| {
            let (api, path, token) = (api.clone(), path.clone(), tokens[i].clone());
            async move {
                for _ in 0..RETRY_ATTEMPTS_MAX {
                    let a = claim(&api, &path, &token, &format!("key-{i}")).await;
                    if a.status != 503 {
                        return (i, a);
                    }
                }
                panic!("claim {i} still shed after {RETRY_ATTEMPTS_MAX} retries");
            }
        })
        .buffer_unordered(RETRY_CONCURRENCY)
        .collect()
        .await;
    let mut first: Vec<Answer> = flood;
    for (i, a) in retried {
        assert_eq!(a.status, 201, "a shed claim executes on retry: {a:?}");
        first[i] = a;
    }

    // Executed requests replay: same key, same coupon, 200.
    let replays: Vec<(usize, Answer)> = stream::iter(0..RESIDENTS)
        .map(|i| {
            let (api, path, token) = (api.clone(), path.clone(), tokens[i].clone());
            async move { (i, claim(&api, &path, &token, &format!("key-{i}")).await) }
        })
        .buffer_unordered(RETRY_CONCURRENCY)
        .collect()
        .await;
    let mut replayed = 0;
    for (i, a) in replays {
        if a.status == 503 {
            continue; // shed again: says nothing about replay
        }
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.body["code"], first[i].body["code"], "replay of key-{i}");
        replayed += 1;
    }
    assert!(replayed > 0);

    // Exactly one coupon per resident: nothing shed was half-executed.
    let (s, stats) = mgr.get(&format!("/v1/campaigns/{id}/stats")).await;
    assert_eq!(s, 200, "{stats}");
    let claimed: u64 = stats["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["claimed"].as_u64().unwrap())
        .sum();
    assert_eq!(claimed, RESIDENTS as u64, "{stats}");
    let (s, export) = mgr.get_text(&format!("/v1/campaigns/{id}/coupons")).await;
    assert_eq!(s, 200);
    assert_eq!(export.lines().count(), RESIDENTS);
}
