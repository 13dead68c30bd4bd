//! kill -9 under load, several times on one data directory: every acknowledged claim
//! and redemption survives each restart, nothing is duplicated, and the offline audit
//! of the directory passes at the end.

mod common;

use common::{live_campaign, residents_ndjson, Api, Server, BIN};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Kill cycles in the test suite (a longer loop is a script).
const CYCLES: usize = 3;
/// Residents claiming per cycle.
const CLAIMERS_PER_CYCLE: usize = 600;
/// Acknowledgements to wait for before the kill.
const ACKS_BEFORE_KILL: usize = 150;

#[derive(Default)]
struct Acked {
    /// account -> (idempotency key, coupon code)
    claims: HashMap<String, (String, String)>,
    /// coupon code -> redemption id
    redemptions: HashMap<String, String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_state_survives_kill_minus_nine() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let mgr = Api::new(&server.base, Some(server.token("manager", "ops", None)));
    let tiers =
        json!([{"kind": "fixed", "discount_fen": 1000, "min_spend_fen": 5000, "stock": 100_000}]);
    let (s, camp) = mgr.post("/v1/campaigns", live_campaign(tiers)).await;
    assert_eq!(s, 201);
    let id = camp["id"].as_str().unwrap().to_owned();
    assert_eq!(
        mgr.post(&format!("/v1/campaigns/{id}/publish"), json!(null))
            .await
            .0,
        200
    );
    let total = CYCLES * CLAIMERS_PER_CYCLE;
    let (s, out) = mgr
        .post_raw(
            "/v1/residents/import",
            residents_ndjson("c", total),
            "application/x-ndjson",
        )
        .await;
    assert_eq!((s, out["accepted"].as_u64()), (200, Some(total as u64)));
    let m = json!({"id": "m1", "name": "Canteen", "category": "catering", "region": "guiyang", "terminals": ["t1"]});
    assert_eq!(
        mgr.post_raw(
            "/v1/merchants/import",
            m.to_string(),
            "application/x-ndjson"
        )
        .await
        .0,
        200
    );
    let acked = Arc::new(Mutex::new(Acked::default()));

    for cycle in 0..CYCLES {
        let till = Api::new(
            &server.base,
            Some(server.token("terminal", "t1", Some("m1"))),
        );
        let count = Arc::new(AtomicUsize::new(0));
        let enough = Arc::new(Notify::new());
        let mut tasks = Vec::new();
        let accounts: Vec<String> = (cycle * CLAIMERS_PER_CYCLE..(cycle + 1) * CLAIMERS_PER_CYCLE)
            .map(|i| format!("c{i}"))
            .collect();
        let mgr = Api::new(&server.base, Some(server.token("manager", "ops", None)));
        let (s, minted) = mgr
            .post(
                "/v1/tokens",
                json!({"role": "resident", "subjects": accounts}),
            )
            .await;
        assert_eq!(s, 200, "{minted}");
        for (account, token) in accounts
            .into_iter()
            .zip(minted["tokens"].as_array().unwrap())
        {
            let res = Api::new(&server.base, Some(token.as_str().unwrap().to_owned()));
            let (till, id, acked, count, enough) = (
                till.clone(),
                id.clone(),
                acked.clone(),
                count.clone(),
                enough.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let key = format!("key-{account}");
                let Ok(resp) = res
                    .http
                    .post(format!("{}/v1/campaigns/{id}/claims", res.base))
                    .bearer_auth(res.token.as_deref().unwrap())
                    .header("Idempotency-Key", &key)
                    .json(&json!({"tier": 0}))
                    .send()
                    .await
                else {
                    return;
                };
                if resp.status().as_u16() != 201 {
                    return;
                }
                let Ok(body) = resp.json::<serde_json::Value>().await else {
                    return;
                };
                let code = body["code"].as_str().unwrap().to_owned();
                acked
                    .lock()
                    .unwrap()
                    .claims
                    .insert(account.clone(), (key, code.clone()));
                if count.fetch_add(1, Ordering::SeqCst) + 1 == ACKS_BEFORE_KILL {
                    enough.notify_one();
                }
                let red =
                    json!({"code": code, "request_no": format!("R-{account}"), "order_fen": 6000});
                let Ok(resp) = till
                    .http
                    .post(format!("{}/v1/redemptions", till.base))
                    .bearer_auth(till.token.as_deref().unwrap())
                    .json(&red)
                    .send()
                    .await
                else {
                    return;
                };
                if resp.status().as_u16() == 201 {
                    if let Ok(b) = resp.json::<serde_json::Value>().await {
                        acked
                            .lock()
                            .unwrap()
                            .redemptions
                            .insert(code, b["redemption_id"].as_str().unwrap().to_owned());
                    }
                }
            }));
        }
        enough.notified().await;
        server.kill9();
        for t in tasks {
            let _ = t.await;
        }
        server = Server::start(dir.path());
        verify(&server, &id, &acked).await;
    }
    drop(server);
    let out = std::process::Command::new(BIN)
        .args(["audit", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

async fn verify(server: &Server, id: &str, acked: &Arc<Mutex<Acked>>) {
    let mgr = Api::new(&server.base, Some(server.token("manager", "ops", None)));
    let (claims, redemptions) = {
        let a = acked.lock().unwrap();
        (a.claims.clone(), a.redemptions.clone())
    };
    assert!(!claims.is_empty());
    let (s, export) = mgr.get_text(&format!("/v1/campaigns/{id}/coupons")).await;
    assert_eq!(s, 200);
    let coupons: HashMap<String, serde_json::Value> = export
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|c| (c["code"].as_str().unwrap().to_owned(), c))
        .collect();
    assert_eq!(coupons.len(), export.lines().count(), "no duplicate codes");
    for (account, (_, code)) in &claims {
        assert!(
            coupons.contains_key(code),
            "acknowledged coupon of {account} lost"
        );
    }
    for (code, rid) in &redemptions {
        let c = &coupons[code];
        assert_eq!(c["times_redeemed"], 1, "{c}");
        assert_eq!(c["redemption_id"].as_str(), Some(rid.as_str()));
    }
    let (_, stats) = mgr.get(&format!("/v1/campaigns/{id}/stats")).await;
    assert_eq!(
        stats["tiers"][0]["claimed"].as_u64(),
        Some(coupons.len() as u64)
    );
    assert_eq!(
        stats["tiers"][0]["redeemed"].as_u64(),
        Some(
            coupons
                .values()
                .filter(|c| c["times_redeemed"] == 1)
                .count() as u64
        )
    );
    // A retried claim replays the acknowledged coupon instead of granting another.
    for (account, (key, code)) in claims.iter().take(20) {
        let res = Api::new(&server.base, Some(server.token("resident", account, None)));
        let (s, body) = res
            .post_key(
                &format!("/v1/campaigns/{id}/claims"),
                json!({"tier": 0}),
                key,
            )
            .await;
        assert_eq!((s, body["code"].as_str()), (200, Some(code.as_str())));
    }
}
