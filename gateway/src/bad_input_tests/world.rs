//! A real engine on its own data directory behind the real router, seeded with one
//! live campaign, a merchant with a redemption, and residents with and without
//! coupons; requests are driven in-process with `oneshot`. The fingerprint reads
//! everything a bad request could have changed.

use crate::auth::{mint, Role, TokenClaims};
use crate::error::PROBLEM_CONTENT_TYPE;
use crate::route_table::{Endpoint, RouteRule};
use crate::{router, GatewayConfig};
use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::NaiveDate;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;
use yunquan_actors::api::{CampaignAction, MerchantInput, RedeemRequest, ResidentInput};
use yunquan_actors::domain::CampaignSpec;
use yunquan_actors::{Engine, EngineConfig};

/// 2025-06-01T12:00:00+08:00: inside the seeded campaign's round.
const NOW_MS: i64 = 1_748_750_400_000;
/// The local day of `NOW_MS`, for the settlement fingerprint.
const TODAY: &str = "2025-06-01";
/// Merchant of the seeded terminal.
pub(super) const MERCHANT: &str = "m-1";
/// The seeded terminal.
const TERMINAL: &str = "m-1-t1";
/// Residents: the first has a redeemed coupon, the second an available one, the third
/// none (it is the claiming resident, so a claim that gets through shows).
const RESIDENTS: [&str; 3] = ["r-1", "r-2", "r-3"];
/// Account of the resident template; registering it would show in the fingerprint.
pub(super) const NEW_RESIDENT: &str = "r-new";
/// Id of the merchant template; registering it would show in the fingerprint.
pub(super) const NEW_MERCHANT: &str = "m-new";
/// Request-body limits of the router under test, in bytes: the defaults, except a
/// smaller import limit so that an oversized import is cheap to send.
pub(super) const IMPORT_BYTES_MAX: u64 = 64 * 1024;

/// What the seed created, for paths and templates.
#[derive(Debug, Clone)]
pub(super) struct Seed {
    /// The live campaign.
    pub(super) campaign: String,
    /// A coupon of the second resident, still available (a redemption that gets
    /// through shows in the export and the settlement).
    pub(super) available_code: String,
    /// The first resident's redemption.
    pub(super) redemption_id: String,
}

/// One reply, read to its end.
#[derive(Debug)]
pub(super) struct Reply {
    /// Its status.
    pub(super) status: StatusCode,
    /// Its `Content-Type`, empty if none.
    pub(super) content_type: String,
    /// Its body.
    pub(super) body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (`Null` if it is not JSON).
    pub(super) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Fails unless this is a 4xx problem with a `reason` and the status repeated.
    pub(super) fn check_problem(&self, what: &str) -> Result<(), TestCaseError> {
        let body = self.json();
        let text = String::from_utf8_lossy(&self.body);
        if !self.status.is_client_error() {
            return Err(TestCaseError::fail(format!(
                "{what}: status {} (want 4xx): {text}",
                self.status
            )));
        }
        if self.content_type != PROBLEM_CONTENT_TYPE {
            return Err(TestCaseError::fail(format!(
                "{what}: content-type {:?}: {text}",
                self.content_type
            )));
        }
        let reason_ok = body["reason"].as_str().is_some_and(|r| !r.is_empty());
        if !reason_ok || body["status"] != self.status.as_u16() {
            return Err(TestCaseError::fail(format!(
                "{what}: not a problem with a reason: {text}"
            )));
        }
        Ok(())
    }
}

/// The server side of the tests.
#[derive(Debug)]
pub(super) struct World {
    /// The router under test (cloned per request).
    app: Router,
    /// The engine behind it, read for fingerprints.
    engine: Engine,
    /// Runs the requests and the engine calls.
    rt: tokio::runtime::Runtime,
    /// What the seed made.
    pub(super) seed: Seed,
    /// The fingerprint right after seeding.
    baseline: Value,
    /// A manager's token.
    manager: String,
    /// The third resident's token.
    resident: String,
    /// The seeded terminal's token.
    terminal: String,
    /// Holds the data directory until the world is dropped.
    _dir: tempfile::TempDir,
}

fn config(dir: &std::path::Path) -> EngineConfig {
    EngineConfig {
        data_dir: dir.to_path_buf(),
        shards: 2,
        mailbox_commands_max: 10_000,
        batch_events_max: 1_000,
        snapshot_every_events: 1_000_000,
        idempotency_keys_max: 100_000,
        queue_wait_ms_max: 0,
    }
}

/// The campaign of the seed: one fixed tier, a round from 10:00 to 22:00 local.
pub(super) fn campaign_spec() -> Value {
    json!({
        "name": "spring round", "funder": "commerce dept", "budget_fen": 100_000_000_000u64,
        "rounds": [{"start": "2025-06-01T10:00:00", "end": "2025-06-01T22:00:00"}],
        "tiers": [{"kind": "fixed", "discount_fen": 2000, "stock": 100}],
        "eligibility": {"categories": ["catering"]},
        "validity": {"kind": "window", "from": "2025-06-01", "to": "2025-06-30"}
    })
}

fn resident(account: &str, n: u32) -> ResidentInput {
    ResidentInput {
        account: account.to_owned(),
        identity_number: format!("5201011990010100{n:02}"),
        region: "guiyang".to_owned(),
    }
}

impl World {
    /// Starts and seeds a world; panics (failing the test) if seeding fails.
    pub(super) fn start() -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = Engine::start(config(dir.path()), Arc::new(|| NOW_MS)).expect("engine");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let seed = rt.block_on(seed(&engine));
        let gateway = GatewayConfig {
            import_bytes_max: IMPORT_BYTES_MAX,
            ..GatewayConfig::default()
        };
        let app = router(engine.clone(), &gateway);
        let mut world = World {
            app,
            engine,
            rt,
            seed,
            baseline: Value::Null,
            manager: String::new(),
            resident: String::new(),
            terminal: String::new(),
            _dir: dir,
        };
        world.manager = world.mint(Role::Manager, "ops", None);
        world.resident = world.mint(Role::Resident, RESIDENTS[2], None);
        world.terminal = world.mint(Role::Terminal, TERMINAL, Some(MERCHANT));
        world.baseline = world.fingerprint();
        world
    }

    /// A token of `role` for `sub` (and the terminal's merchant), valid for an hour.
    pub(super) fn mint(&self, role: Role, sub: &str, mer: Option<&str>) -> String {
        let claims = TokenClaims {
            role,
            sub: sub.to_owned(),
            mer: mer.map(str::to_owned),
            exp: NOW_MS / 1_000 + 3_600,
        };
        mint(&self.engine.keys().token, &claims)
    }

    /// Whether every shard still accepts commands.
    pub(super) fn ready(&self) -> bool {
        self.engine.ready()
    }

    /// A token of `role`.
    pub(super) fn token(&self, role: Role) -> &str {
        match role {
            Role::Manager => &self.manager,
            Role::Resident => &self.resident,
            Role::Terminal => &self.terminal,
        }
    }

    /// Whether `value` names a seeded object (coupon codes forgive case and separators).
    pub(super) fn is_seeded(&self, value: &str) -> bool {
        let canon = |s: &str| s.replace(['-', ' '], "").to_ascii_uppercase();
        value == self.seed.campaign
            || value == MERCHANT
            || value == self.seed.redemption_id
            || canon(value) == canon(&self.seed.available_code)
    }

    /// The route's path with the seeded object of each parameter.
    pub(super) fn path(&self, rule: &RouteRule) -> String {
        let value = match rule.endpoint {
            Endpoint::GetMerchant | Endpoint::Settlement => MERCHANT.to_owned(),
            Endpoint::GetCoupon => self.seed.available_code.clone(),
            Endpoint::Reverse => self.seed.redemption_id.clone(),
            _ => self.seed.campaign.clone(),
        };
        let path = fill(rule.path, &value);
        if rule.endpoint == Endpoint::Settlement {
            format!("{path}?date={TODAY}")
        } else {
            path
        }
    }

    /// Sends one request and reads the whole reply.
    pub(super) fn send(&self, req: Request<Body>) -> Reply {
        self.rt.block_on(async {
            let response = self.app.clone().oneshot(req).await.expect("infallible");
            let status = response.status();
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body")
                .to_vec();
            Reply {
                status,
                content_type,
                body,
            }
        })
    }

    /// A request of `rule`'s method to `uri` as `role`, with a body and its type.
    pub(super) fn request(
        &self,
        rule: &RouteRule,
        uri: &str,
        role: Role,
        content_type: Option<&str>,
        body: Body,
    ) -> Request<Body> {
        self.request_with(rule, uri, self.token(role), content_type, body)
    }

    /// Like [`World::request`] with any token.
    pub(super) fn request_with(
        &self,
        rule: &RouteRule,
        uri: &str,
        token: &str,
        content_type: Option<&str>,
        body: Body,
    ) -> Request<Body> {
        let mut req = Request::builder()
            .method(rule.method.method())
            .uri(uri)
            .header(AUTHORIZATION, format!("Bearer {token}"));
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        req.body(body).expect("request")
    }

    /// Everything a request could change that the tests can see.
    pub(super) fn fingerprint(&self) -> Value {
        let e = &self.engine;
        self.rt.block_on(async {
            let campaigns = e.campaigns();
            let stats: Vec<Value> = campaigns
                .iter()
                .map(|c| json!(e.campaign_stats(&c.id)))
                .collect();
            let mut wallets = Vec::new();
            for r in RESIDENTS {
                wallets.push(json!(e.coupons(r).await.ok()));
            }
            let date = NaiveDate::parse_from_str(TODAY, "%Y-%m-%d").expect("date");
            json!({
                "campaigns": campaigns,
                "stats": stats,
                "export": e.campaign_coupons(&self.seed.campaign).await.ok(),
                "settlement": e.settlement(MERCHANT, date),
                "wallets": wallets,
                "new_merchant": e.merchant(NEW_MERCHANT),
                "new_resident": e.resident_exists(NEW_RESIDENT),
            })
        })
    }

    /// Fails if anything changed since seeding.
    pub(super) fn check_unchanged(&self, what: &str) -> Result<(), TestCaseError> {
        let now = self.fingerprint();
        if now == self.baseline {
            Ok(())
        } else {
            Err(TestCaseError::fail(format!(
                "{what} changed the state:\nbefore {}\nafter  {now}",
                self.baseline
            )))
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.rt.block_on(self.engine.shutdown());
    }
}

/// `pattern` with every `{param}` replaced by `value` (already URI-safe).
pub(super) fn fill(pattern: &str, value: &str) -> String {
    pattern
        .split('/')
        .map(|seg| {
            if seg.starts_with('{') && seg.ends_with('}') {
                value
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn seed(engine: &Engine) -> Seed {
    let residents = RESIDENTS
        .iter()
        .zip(1..)
        .map(|(a, n)| resident(a, n))
        .collect();
    for r in engine
        .register_residents(residents)
        .await
        .expect("residents")
    {
        r.expect("resident");
    }
    let merchant = MerchantInput {
        id: MERCHANT.to_owned(),
        name: "noodle house".to_owned(),
        category: yunquan_actors::domain::Category::Catering,
        region: "guiyang".to_owned(),
        terminals: vec![TERMINAL.to_owned()],
    };
    for m in engine
        .register_merchants(vec![merchant])
        .await
        .expect("merchant")
    {
        m.expect("merchant");
    }
    let spec: CampaignSpec = serde_json::from_value(campaign_spec()).expect("spec");
    let campaign = engine.create_campaign(spec).await.expect("campaign").id;
    engine
        .campaign_action(&campaign, CampaignAction::Publish)
        .await
        .expect("publish");
    let (redeemed, _) = engine
        .claim(RESIDENTS[0], &campaign, 0, None)
        .await
        .expect("claim");
    let (available, _) = engine
        .claim(RESIDENTS[1], &campaign, 0, None)
        .await
        .expect("claim");
    let (redemption, _) = engine
        .redeem(RedeemRequest {
            merchant: MERCHANT.to_owned(),
            terminal: TERMINAL.to_owned(),
            code: redeemed.code,
            request_no: "pos-1".to_owned(),
            order_fen: 20_000,
        })
        .await
        .expect("redeem");
    Seed {
        campaign,
        available_code: available.code,
        redemption_id: redemption.redemption_id,
    }
}
