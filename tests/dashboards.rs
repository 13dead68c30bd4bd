//! Every metric the Grafana dashboard queries is one a live server really exports.
// A test fails by panicking; unwrap's panic names the line.
#![allow(clippy::unwrap_used)]

mod common;

use common::{live_campaign, residents_ndjson, Api, Server};
use serde_json::json;
use std::collections::BTreeSet;

fn queried_metrics() -> BTreeSet<String> {
    let dash: serde_json::Value =
        serde_json::from_str(include_str!("../dashboards/grafana/yunquan.json")).unwrap();
    let mut names = BTreeSet::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find("yunquan_") {
                let tail = &rest[i..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                names.insert(tail[..end].to_owned());
                rest = &tail[end..];
            }
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_queries_only_exported_metrics() {
    let queried = queried_metrics();
    assert!(queried.len() >= 8, "{queried:?}");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mgr = Api::new(&server.base, Some(server.token("manager", "ops", None)));
    // Traffic so that every series exists: a claim, a redemption, a refusal.
    let (_, camp) = mgr
        .post(
            "/v1/campaigns",
            live_campaign(json!([{"kind": "cash", "discount_fen": 500, "stock": 1}])),
        )
        .await;
    let id = camp["id"].as_str().unwrap();
    mgr.post(&format!("/v1/campaigns/{id}/publish"), json!(null))
        .await;
    mgr.post_raw(
        "/v1/residents/import",
        residents_ndjson("d", 2),
        "application/x-ndjson",
    )
    .await;
    let m = json!({"id": "m1", "name": "Canteen", "category": "catering", "region": "guiyang", "terminals": ["t1"]});
    mgr.post_raw(
        "/v1/merchants/import",
        m.to_string(),
        "application/x-ndjson",
    )
    .await;
    let (s, coupon) = mgr
        .as_(&server.token("resident", "d0", None))
        .post(&format!("/v1/campaigns/{id}/claims"), json!({"tier": 0}))
        .await;
    assert_eq!(s, 201);
    mgr.as_(&server.token("resident", "d1", None))
        .post(&format!("/v1/campaigns/{id}/claims"), json!({"tier": 0}))
        .await;
    let till = mgr.as_(&server.token("terminal", "t1", Some("m1")));
    let (s, _) = till
        .post(
            "/v1/redemptions",
            json!({"code": coupon["code"], "request_no": "R1", "order_fen": 800}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, text) = mgr.get_text("/metrics").await;
    assert_eq!(s, 200);
    let exported: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect();
    let missing: Vec<_> = queried.iter().filter(|q| !exported.contains(*q)).collect();
    assert!(
        missing.is_empty(),
        "dashboard queries metrics the server does not export: {missing:?}\nexported: {exported:?}"
    );
}
