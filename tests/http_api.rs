//! End to end over HTTP against the real binary: a manager sets up a round, residents
//! claim, a till quotes, redeems, retries and reverses, and bad input changes nothing.
// A test fails by panicking; unwrap's panic names the line.
#![allow(clippy::unwrap_used)]

mod common;

use common::{live_campaign, residents_ndjson, Api, Server};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_from_definition_to_settlement() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let anon = Api::new(&server.base, None);
    let mgr = anon.as_(&server.token("manager", "ops", None));

    // Campaign: created as a draft, published.
    let tiers = json!([
        {"name": "20 off 100", "kind": "fixed", "discount_fen": 2000, "min_spend_fen": 10_000, "stock": 2, "categories": ["catering"]},
        {"name": "15%", "kind": "percent", "percent": 15, "cap_fen": 5000, "stock": 5}
    ]);
    let (s, camp) = mgr.post("/v1/campaigns", live_campaign(tiers)).await;
    assert_eq!(s, 201, "{camp}");
    assert_eq!(camp["status"], "draft");
    let id = camp["id"].as_str().unwrap().to_owned();
    let (s, _) = mgr
        .post(&format!("/v1/campaigns/{id}/publish"), json!(null))
        .await;
    assert_eq!(s, 200);

    // Residents and merchants through the bulk imports; one bad line is reported, not fatal.
    let mut nd = residents_ndjson("res", 3);
    nd.push_str(
        "\n{\"account\": \"bad\", \"identity_number\": \"12\", \"region\": \"guiyang\"}\nnot json",
    );
    let (s, out) = mgr
        .post_raw("/v1/residents/import", nd, "application/x-ndjson")
        .await;
    assert_eq!(s, 200, "{out}");
    assert_eq!(out["accepted"], 3);
    assert_eq!(out["rejected"].as_array().unwrap().len(), 2);
    let merchants = [
        json!({"id": "m1", "name": "Noodle house", "category": "catering", "region": "guiyang", "terminals": ["t1"]}),
        json!({"id": "m2", "name": "Grocer", "category": "retail", "region": "guiyang", "terminals": ["t2"]}),
    ]
    .iter()
    .map(|m| m.to_string())
    .collect::<Vec<_>>()
    .join("\n");
    let (s, out) = mgr
        .post_raw("/v1/merchants/import", merchants, "application/x-ndjson")
        .await;
    assert_eq!((s, out["accepted"].as_u64()), (200, Some(2)), "{out}");

    // Claims with idempotency keys.
    let r0 = anon.as_(&server.token("resident", "res0", None));
    let (s, coupon) = r0
        .post_key(
            &format!("/v1/campaigns/{id}/claims"),
            json!({"tier": 0}),
            "k-1",
        )
        .await;
    assert_eq!(s, 201, "{coupon}");
    let (s, again) = r0
        .post_key(
            &format!("/v1/campaigns/{id}/claims"),
            json!({"tier": 0}),
            "k-1",
        )
        .await;
    assert_eq!((s, &again), (200, &coupon));
    let (s, p) = r0
        .post_key(
            &format!("/v1/campaigns/{id}/claims"),
            json!({"tier": 1}),
            "k-1",
        )
        .await;
    assert_eq!(
        (s, p["reason"].as_str()),
        (409, Some("idempotency_conflict"))
    );
    let (s, p) = r0
        .post(&format!("/v1/campaigns/{id}/claims"), json!({"tier": 0}))
        .await;
    assert_eq!((s, p["reason"].as_str()), (409, Some("limit_reached")));
    let (s, mine) = r0.get("/v1/me/coupons").await;
    assert_eq!((s, mine.as_array().unwrap().len()), (200, 1));
    let code = coupon["code"].as_str().unwrap().to_owned();

    // Stock 2: the second resident gets the last unit, the third finds it sold out.
    let r1 = anon.as_(&server.token("resident", "res1", None));
    let r2 = anon.as_(&server.token("resident", "res2", None));
    assert_eq!(
        r1.post(&format!("/v1/campaigns/{id}/claims"), json!({"tier": 0}))
            .await
            .0,
        201
    );
    let (s, p) = r2
        .post(&format!("/v1/campaigns/{id}/claims"), json!({"tier": 0}))
        .await;
    assert_eq!((s, p["reason"].as_str()), (409, Some("sold_out")));

    // The till: quote, redeem, replay, conflicting replay, wrong category, reverse.
    let t1 = anon.as_(&server.token("terminal", "t1", Some("m1")));
    let t2 = anon.as_(&server.token("terminal", "t2", Some("m2")));
    let (s, q) = t1
        .post(
            "/v1/redemptions/quote",
            json!({"code": code, "order_fen": 9_999}),
        )
        .await;
    assert_eq!((s, q["reason"].as_str()), (409, Some("below_threshold")));
    let (s, q) = t1
        .post(
            "/v1/redemptions/quote",
            json!({"code": code, "order_fen": 10_000}),
        )
        .await;
    assert_eq!(
        (s, q["discount_fen"].as_u64(), q["payable_fen"].as_u64()),
        (200, Some(2000), Some(8000))
    );
    let (s, p) = t2
        .post(
            "/v1/redemptions",
            json!({"code": code, "request_no": "R1", "order_fen": 12_000}),
        )
        .await;
    assert_eq!((s, p["reason"].as_str()), (409, Some("not_applicable")));
    let (s, red) = t1
        .post(
            "/v1/redemptions",
            json!({"code": code, "request_no": "R1", "order_fen": 12_000}),
        )
        .await;
    assert_eq!(s, 201, "{red}");
    let (s, red2) = t1
        .post(
            "/v1/redemptions",
            json!({"code": code, "request_no": "R1", "order_fen": 12_000}),
        )
        .await;
    assert_eq!((s, &red2), (200, &red));
    let (s, p) = t1
        .post(
            "/v1/redemptions",
            json!({"code": code, "request_no": "R1", "order_fen": 13_000}),
        )
        .await;
    assert_eq!(
        (s, p["reason"].as_str()),
        (409, Some("idempotency_conflict"))
    );
    let rid = red["redemption_id"].as_str().unwrap();
    let (s, _) = t2
        .post(&format!("/v1/redemptions/{rid}/reverse"), json!(null))
        .await;
    assert!(
        s == 403 || s == 404,
        "another merchant's till cannot reverse: {s}"
    );
    let (s, rev) = t1
        .post(&format!("/v1/redemptions/{rid}/reverse"), json!(null))
        .await;
    assert_eq!(
        (s, rev["coupon_status"].as_str()),
        (200, Some("available")),
        "{rev}"
    );

    // Reports.
    let (s, stats) = mgr.get(&format!("/v1/campaigns/{id}/stats")).await;
    assert_eq!(s, 200);
    assert_eq!(stats["tiers"][0]["claimed"], 2);
    assert_eq!(stats["tiers"][0]["remaining"], 0);
    assert_eq!(stats["discount_fen"], 0);
    let date = (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y-%m-%d")
        .to_string();
    let (s, settle) = t1
        .get(&format!("/v1/merchants/m1/settlement?date={date}"))
        .await;
    assert_eq!(
        (s, settle["reversals"].as_u64()),
        (200, Some(1)),
        "{settle}"
    );
    let (s, _) = t2
        .get(&format!("/v1/merchants/m1/settlement?date={date}"))
        .await;
    assert_eq!(s, 403);
    let (s, export) = mgr.get_text(&format!("/v1/campaigns/{id}/coupons")).await;
    assert_eq!((s, export.lines().count()), (200, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_wrong_roles_get_problems_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let anon = Api::new(&server.base, None);
    let mgr = anon.as_(&server.token("manager", "ops", None));
    let (s, p) = anon.get("/v1/campaigns").await;
    assert_eq!((s, p["reason"].as_str()), (401, Some("unauthorized")));
    let forged = format!("{}x", server.token("manager", "ops", None));
    assert_eq!(anon.as_(&forged).get("/v1/campaigns").await.0, 401);
    let (s, p) = mgr
        .post_raw("/v1/campaigns", "{not json".into(), "application/json")
        .await;
    assert_eq!((s / 100, p["status"].as_u64()), (4, Some(u64::from(s))));
    let (s, p) = mgr.post("/v1/campaigns", json!({"name": 5})).await;
    assert_eq!(s / 100, 4, "{p}");
    let bad_tier =
        live_campaign(json!([{"kind": "percent", "percent": 120, "cap_fen": 100, "stock": 1}]));
    let (s, p) = mgr.post("/v1/campaigns", bad_tier).await;
    assert_eq!((s, p["reason"].as_str()), (422, Some("invalid")), "{p}");
    assert_eq!(p["errors"][0]["field"], "tiers[0].percent");
    let (s, list) = mgr.get("/v1/campaigns").await;
    assert_eq!(
        (s, list.as_array().map(Vec::len)),
        (200, Some(0)),
        "nothing was created"
    );
    // A resident token for an unregistered account is refused; residents cannot manage.
    mgr.post_raw(
        "/v1/residents/import",
        residents_ndjson("r", 1),
        "application/x-ndjson",
    )
    .await;
    let res = anon.as_(&server.token("resident", "r0", None));
    assert_eq!(res.post("/v1/campaigns", json!({})).await.0, 403);
    assert_eq!(
        anon.as_(&server.token("resident", "ghost", None))
            .get("/v1/me/coupons")
            .await
            .0,
        403
    );
    let (s, p) = mgr.get("/v1/coupons/NOT-A-CODE").await;
    assert_eq!(
        (s, p["reason"].as_str()),
        (422, Some("invalid_code")),
        "{p}"
    );
    let (s, _) = anon.get("/no/such/route").await;
    assert_eq!(s, 404);
    assert_eq!(anon.get_text("/healthz").await.0, 200);
}
