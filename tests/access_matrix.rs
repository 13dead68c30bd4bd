//! Every route of the route table x every kind of caller, against the real binary:
//! each call is allowed or denied exactly as the table's rule says (401 without a
//! valid token, 403 for the wrong role or someone else's merchant or coupon, 404 for
//! another merchant's redemption), every error is problem+json, and no call that was
//! refused (denied, or allowed and answered no) changed anything a manager can see.
// A test fails by panicking; unwrap's panic names the line.
#![allow(clippy::unwrap_used)]

mod common;

use common::{live_campaign, Api, Server};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use yunquan_gateway::{mint, route_table, Access, Endpoint, Role, RouteRule, TokenClaims, Verb};

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// No Authorization header.
    Anonymous,
    /// A manager token whose `exp` has passed.
    Expired,
    /// A manager token signed with another key.
    Forged,
    /// Resident A, acting on resident B's coupon.
    ResidentA,
    /// The terminal of merchant M2, acting on M1's merchant, settlement and redemption.
    TerminalM2,
    /// The terminal of merchant M1, acting for M1.
    TerminalM1,
    /// Resident B, acting on B's own coupon.
    ResidentB,
    /// A manager.
    Manager,
}

/// In this order: intruders before the rightful callers, so an intruder's call is
/// never answered "already done" because the rightful one went first.
const CALLERS: [Caller; 8] = [
    Caller::Anonymous,
    Caller::Expired,
    Caller::Forged,
    Caller::ResidentA,
    Caller::TerminalM2,
    Caller::TerminalM1,
    Caller::ResidentB,
    Caller::Manager,
];

impl Caller {
    fn role(self) -> Option<Role> {
        match self {
            Caller::Anonymous | Caller::Expired | Caller::Forged => None,
            Caller::ResidentA | Caller::ResidentB => Some(Role::Resident),
            Caller::TerminalM1 | Caller::TerminalM2 => Some(Role::Terminal),
            Caller::Manager => Some(Role::Manager),
        }
    }
}

/// What the rule says about a caller; the status is the one expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allowed(u16),
    Denied(u16),
}

/// The fixture: ids of what the setup created.
struct World {
    campaign: String,
    /// Campaigns in the state each lifecycle action needs: draft, published, paused, published.
    to_publish: String,
    to_pause: String,
    to_resume: String,
    to_end: String,
    /// B's coupon (A must not see it).
    coupon_b: String,
    /// The redemption of A's coupon at M1 (M2 must not reverse it).
    redemption_a: String,
    /// Today in the campaign's zone.
    date: String,
}

/// One call per route: path and body, chosen so the rightful caller succeeds.
fn probe(w: &World, e: Endpoint) -> (String, Option<Value>, Option<&'static str>) {
    let c = &w.campaign;
    let resident = |account: &str| json!({"account": account, "identity_number": format!("PROBE{}", account.len() * 1_000_003), "region": "guiyang"});
    let merchant = |id: &str| json!({"id": id, "name": "probe shop", "category": "retail", "region": "guiyang", "terminals": [format!("{id}-t")]});
    match e {
        Endpoint::Healthz => ("/healthz".into(), None, None),
        Endpoint::Readyz => ("/readyz".into(), None, None),
        Endpoint::Metrics => ("/metrics".into(), None, None),
        Endpoint::OpenApi => ("/openapi.json".into(), None, None),
        Endpoint::MintTokens => (
            "/v1/tokens".into(),
            Some(json!({"role": "resident", "subjects": ["resident-a"]})),
            None,
        ),
        Endpoint::CreateCampaign => (
            "/v1/campaigns".into(),
            Some(live_campaign(
                json!([{"name": "probe", "kind": "cash", "discount_fen": 100, "stock": 1}]),
            )),
            None,
        ),
        Endpoint::ListCampaigns => ("/v1/campaigns".into(), None, None),
        Endpoint::GetCampaign => (format!("/v1/campaigns/{c}"), None, None),
        Endpoint::PublishCampaign => (
            format!("/v1/campaigns/{}/publish", w.to_publish),
            None,
            None,
        ),
        Endpoint::PauseCampaign => (format!("/v1/campaigns/{}/pause", w.to_pause), None, None),
        Endpoint::ResumeCampaign => (format!("/v1/campaigns/{}/resume", w.to_resume), None, None),
        Endpoint::EndCampaign => (format!("/v1/campaigns/{}/end", w.to_end), None, None),
        Endpoint::CampaignStats => (format!("/v1/campaigns/{c}/stats"), None, None),
        Endpoint::CampaignCoupons => (format!("/v1/campaigns/{c}/coupons"), None, None),
        Endpoint::RegisterResident => ("/v1/residents".into(), Some(resident("probe-r")), None),
        Endpoint::ImportResidents => (
            "/v1/residents/import".into(),
            Some(resident("probe-import-r")),
            Some("application/x-ndjson"),
        ),
        Endpoint::RegisterMerchant => ("/v1/merchants".into(), Some(merchant("probe-m")), None),
        Endpoint::ImportMerchants => (
            "/v1/merchants/import".into(),
            Some(merchant("probe-import-m")),
            Some("application/x-ndjson"),
        ),
        Endpoint::GetMerchant => ("/v1/merchants/m1".into(), None, None),
        Endpoint::Settlement => (
            format!("/v1/merchants/m1/settlement?date={}", w.date),
            None,
            None,
        ),
        Endpoint::Claim => (
            format!("/v1/campaigns/{c}/claims"),
            Some(json!({"tier": 1})),
            None,
        ),
        Endpoint::MyCoupons => ("/v1/me/coupons".into(), None, None),
        Endpoint::GetCoupon => (format!("/v1/coupons/{}", w.coupon_b), None, None),
        Endpoint::Quote => (
            "/v1/redemptions/quote".into(),
            Some(json!({"code": w.coupon_b, "order_fen": 10_000})),
            None,
        ),
        Endpoint::Redeem => (
            "/v1/redemptions".into(),
            Some(json!({"code": w.coupon_b, "request_no": "R-B", "order_fen": 10_000})),
            None,
        ),
        Endpoint::Reverse => (
            format!("/v1/redemptions/{}/reverse", w.redemption_a),
            None,
            None,
        ),
    }
}

/// What the rule of `rule` means for `caller`, and the status that follows.
fn verdict(rule: &RouteRule, caller: Caller) -> Verdict {
    if !rule.access.needs_token() {
        return Verdict::Allowed(200);
    }
    let Some(role) = caller.role() else {
        return Verdict::Denied(401);
    };
    if !rule.access.roles().contains(&role) {
        return Verdict::Denied(403);
    }
    match (rule.access, caller) {
        (Access::ManagerOrMerchantTerminal, Caller::TerminalM2) => return Verdict::Denied(403),
        (Access::ManagerOrCouponOwner, Caller::ResidentA) => return Verdict::Denied(403),
        (Access::RedeemingMerchantTerminal, Caller::TerminalM2) => return Verdict::Denied(404),
        _ => {}
    }
    Verdict::Allowed(match (rule.endpoint, caller) {
        // M2 is a utility biller: allowed to try, and told the coupon does not apply.
        (Endpoint::Quote | Endpoint::Redeem, Caller::TerminalM2) => 409,
        (
            Endpoint::CreateCampaign
            | Endpoint::RegisterResident
            | Endpoint::RegisterMerchant
            | Endpoint::Claim
            | Endpoint::Redeem,
            _,
        ) => 201,
        _ => 200,
    })
}

/// Everything a manager can see that any route could change.
async fn snapshot(mgr: &Api, residents: &[(String, Api)], date: &str) -> BTreeMap<String, Value> {
    let mut s = BTreeMap::new();
    let (_, campaigns) = mgr.get("/v1/campaigns").await;
    for c in campaigns.as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        s.insert(
            format!("stats {id}"),
            mgr.get(&format!("/v1/campaigns/{id}/stats")).await.1,
        );
        let (_, export) = mgr.get_text(&format!("/v1/campaigns/{id}/coupons")).await;
        let mut lines: Vec<&str> = export.lines().collect();
        lines.sort_unstable();
        s.insert(format!("coupons {id}"), json!(lines));
    }
    s.insert("campaigns".into(), campaigns);
    for m in ["m1", "m2", "probe-m", "probe-import-m"] {
        let (status, view) = mgr.get(&format!("/v1/merchants/{m}")).await;
        s.insert(format!("merchant {m}"), json!([status, view]));
        let (status, settle) = mgr
            .get(&format!("/v1/merchants/{m}/settlement?date={date}"))
            .await;
        s.insert(format!("settlement {m}"), json!([status, settle]));
    }
    for (account, api) in residents {
        // 403 while the account is not registered.
        let (status, coupons) = api.get("/v1/me/coupons").await;
        s.insert(format!("resident {account}"), json!([status, coupons]));
    }
    s
}

fn request(
    api: &Api,
    rule: &RouteRule,
    path: &str,
    body: Option<&Value>,
    ct: Option<&str>,
) -> reqwest::RequestBuilder {
    let url = format!("{}{path}", api.base);
    let mut r = match rule.method {
        Verb::Get => api.http.get(url),
        Verb::Post => api.http.post(url),
    };
    if let Some(t) = &api.token {
        r = r.bearer_auth(t);
    }
    match (body, ct) {
        (Some(b), Some(ct)) => r.header("content-type", ct).body(b.to_string()),
        (Some(b), None) => r.json(b),
        (None, _) => r,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_times_every_caller() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let anon = Api::new(&server.base, None);
    let mgr = anon.as_(&server.token("manager", "ops", None));

    // Residents A and B; merchants M1 (catering) and M2 (a utility biller, where no
    // coupon applies), each with a terminal.
    for (account, identity) in [
        ("resident-a", "520101199001010011"),
        ("resident-b", "520101199001010022"),
    ] {
        let (s, p) = mgr
            .post(
                "/v1/residents",
                json!({"account": account, "identity_number": identity, "region": "guiyang"}),
            )
            .await;
        assert_eq!(s, 201, "{p}");
    }
    for (id, category, terminal) in [("m1", "catering", "t1"), ("m2", "utility", "t2")] {
        let (s, p) = mgr
            .post("/v1/merchants", json!({"id": id, "name": id, "category": category, "region": "guiyang", "terminals": [terminal]}))
            .await;
        assert_eq!(s, 201, "{p}");
    }
    let tiers = json!([
        {"name": "10 off", "kind": "fixed", "discount_fen": 1000, "stock": 100},
        {"name": "5 cash", "kind": "cash", "discount_fen": 500, "stock": 100}
    ]);
    let mut spec = live_campaign(tiers.clone());
    spec["limits"] = json!({"per_tier_per_round": 1, "per_round": 5});
    let create = |spec: Value| {
        let mgr = mgr.clone();
        async move {
            let (s, c) = mgr.post("/v1/campaigns", spec).await;
            assert_eq!(s, 201, "{c}");
            c["id"].as_str().unwrap().to_owned()
        }
    };
    let act = |id: String, action: &'static str| {
        let mgr = mgr.clone();
        async move {
            let (s, p) = mgr
                .post(&format!("/v1/campaigns/{id}/{action}"), json!(null))
                .await;
            assert_eq!(s, 200, "{action}: {p}");
        }
    };
    let campaign = create(spec.clone()).await;
    act(campaign.clone(), "publish").await;
    let to_publish = create(spec.clone()).await;
    let to_pause = create(spec.clone()).await;
    act(to_pause.clone(), "publish").await;
    let to_resume = create(spec.clone()).await;
    act(to_resume.clone(), "publish").await;
    act(to_resume.clone(), "pause").await;
    let to_end = create(spec.clone()).await;
    act(to_end.clone(), "publish").await;

    let a = anon.as_(&server.token("resident", "resident-a", None));
    let b = anon.as_(&server.token("resident", "resident-b", None));
    let t1 = anon.as_(&server.token("terminal", "t1", Some("m1")));
    let t2 = anon.as_(&server.token("terminal", "t2", Some("m2")));
    let claim = format!("/v1/campaigns/{campaign}/claims");
    let (s, coupon_a) = a.post(&claim, json!({"tier": 0})).await;
    assert_eq!(s, 201, "{coupon_a}");
    let (s, coupon_b) = b.post(&claim, json!({"tier": 0})).await;
    assert_eq!(s, 201, "{coupon_b}");
    let (s, redemption) = t1
        .post(
            "/v1/redemptions",
            json!({"code": coupon_a["code"], "request_no": "R-A", "order_fen": 8_000}),
        )
        .await;
    assert_eq!(s, 201, "{redemption}");

    // The callers that no valid token stands behind.
    let key = std::fs::read(dir.path().join("token.key")).unwrap();
    let now_s = chrono::Utc::now().timestamp();
    let manager_claims = |exp| TokenClaims {
        role: Role::Manager,
        sub: "ops".into(),
        mer: None,
        exp,
    };
    let expired = anon.as_(&mint(&key, &manager_claims(now_s - 60)));
    let forged = anon.as_(&mint(&[7u8; 32], &manager_claims(now_s + 3_600)));
    let api_of = |caller: Caller| -> &Api {
        match caller {
            Caller::Anonymous => &anon,
            Caller::Expired => &expired,
            Caller::Forged => &forged,
            Caller::ResidentA => &a,
            Caller::TerminalM2 => &t2,
            Caller::TerminalM1 => &t1,
            Caller::ResidentB => &b,
            Caller::Manager => &mgr,
        }
    };

    let date = (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y-%m-%d")
        .to_string();
    let world = World {
        campaign,
        to_publish,
        to_pause,
        to_resume,
        to_end,
        coupon_b: coupon_b["code"].as_str().unwrap().to_owned(),
        redemption_a: redemption["redemption_id"].as_str().unwrap().to_owned(),
        date: date.clone(),
    };
    let residents: Vec<(String, Api)> = ["resident-a", "resident-b", "probe-r", "probe-import-r"]
        .into_iter()
        .map(|r| (r.to_owned(), anon.as_(&server.token("resident", r, None))))
        .collect();

    let mut before = snapshot(&mgr, &residents, &date).await;
    let (mut allowed, mut denied) = (0, 0);
    for rule in route_table() {
        let (path, body, ct) = probe(&world, rule.endpoint);
        for caller in CALLERS {
            let api = api_of(caller);
            let what = format!("{caller:?} {} {path}", rule.method.as_str());
            let (status, reply) = api.send(request(api, rule, &path, body.as_ref(), ct)).await;
            let expected = verdict(rule, caller);
            match expected {
                Verdict::Allowed(s) => {
                    allowed += 1;
                    assert_eq!(status, s, "{what} is allowed by {:?}: {reply}", rule.access);
                }
                Verdict::Denied(s) => {
                    denied += 1;
                    assert_eq!(status, s, "{what} is denied by {:?}: {reply}", rule.access);
                }
            }
            if status >= 400 {
                assert_eq!(reply["status"], status, "{what}: {reply}");
                let after = snapshot(&mgr, &residents, &date).await;
                for (k, v) in &before {
                    assert_eq!(after.get(k), Some(v), "{what} ({status}) changed {k}");
                }
                assert_eq!(
                    after.len(),
                    before.len(),
                    "{what} ({status}) changed the campaigns"
                );
                before = after;
            } else if rule.method == Verb::Post {
                before = snapshot(&mgr, &residents, &date).await;
            }
        }
    }
    assert_eq!(allowed + denied, route_table().len() * CALLERS.len());
    // Every kind of denial was exercised.
    assert!(denied > route_table().len() * 3, "{denied} denials");
}
