//! Scenario-driven load generator and auditor for yunquan.
//!
//! A run has a pure half and an I/O half. The pure half ([`plan`], [`redeem_plan`],
//! [`campaign`], [`population`], [`basket`]) turns a scenario, a scale and a seed
//! into everything that will be sent. The I/O half seeds the server through its
//! HTTP API ([`seed`]), contends one flash round open loop ([`round`]), spends the
//! coupons at tills ([`redeem`]), and audits the server's books against every
//! acknowledgement it gave ([`audit`]). [`run`] does it all and returns the
//! [`Report`] that also lands in `report.json`.

pub mod audit;
pub mod basket;
pub mod campaign;
pub mod client;
pub mod compare;
pub mod plan;
pub mod population;
pub mod progress;
pub mod redeem;
pub mod redeem_plan;
pub mod report;
pub mod rng;
pub mod round;
pub mod scenario;
pub mod seed;
pub mod tally;

pub use report::{summary, Report};

use anyhow::Context;
use chrono::Utc;
use client::Api;
use plan::{Plan, PlanOptions};
use progress::Progress;
use report::{Durations, RunConfig};
use scenario::Scenario;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tally::Tally;

/// Requests in flight at most, by default.
pub const CONNECTIONS_DEFAULT: usize = 256;
/// Target redemption rate by default, per second.
pub const REDEEM_RATE_DEFAULT_PER_S: f64 = 2_000.0;
/// Seed by default.
pub const SEED_DEFAULT: u64 = 20_200_520;
/// The claim phase starts this long after the round opens, in milliseconds, so the
/// first claims never race the server's own reading of the clock.
const ROUND_START_MARGIN_MS: u64 = 20;
/// Slack added to the default round length beyond the last possible retry, in seconds.
const ROUND_SLACK_S: f64 = 60.0;

/// What to run, against what.
#[derive(Clone)]
pub struct LoadgenConfig {
    /// Scenario file (also names the scenario when `scenario_text` is given).
    pub scenario_path: PathBuf,
    /// Scenario text to use instead of reading `scenario_path` (e.g. an embedded copy).
    pub scenario_text: Option<String>,
    /// Base URL of the server, e.g. `http://127.0.0.1:8080`.
    pub target: String,
    /// Shrinks population, contenders, merchants and stock alike (1.0: real size).
    pub scale: f64,
    /// Manager bearer token.
    pub manager_token: String,
    /// Requests in flight at most (one connection each).
    pub connections: usize,
    /// First claim attempts spread over this long, in seconds.
    pub round_window_s: f64,
    /// Round length, in seconds; `None`: long enough for every retry, plus slack.
    pub round_duration_s: Option<u64>,
    /// Target redemption rate, per second.
    pub redeem_rate: f64,
    /// Seed of every random decision (same seed and scale: same run).
    pub seed: u64,
    /// Where to write `report.json`; `None`: nowhere.
    pub report_path: Option<PathBuf>,
}

impl std::fmt::Debug for LoadgenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The manager token is a credential: never in logs.
        f.debug_struct("LoadgenConfig")
            .field("scenario_path", &self.scenario_path)
            .field(
                "scenario_text",
                &self.scenario_text.as_ref().map(|t| t.len()),
            )
            .field("target", &self.target)
            .field("scale", &self.scale)
            .field("manager_token", &"<redacted>")
            .field("connections", &self.connections)
            .field("round_window_s", &self.round_window_s)
            .field("round_duration_s", &self.round_duration_s)
            .field("redeem_rate", &self.redeem_rate)
            .field("seed", &self.seed)
            .field("report_path", &self.report_path)
            .finish()
    }
}

impl LoadgenConfig {
    /// A configuration with defaults for everything but the essentials.
    pub fn new(
        scenario_path: PathBuf,
        target: String,
        scale: f64,
        manager_token: String,
    ) -> LoadgenConfig {
        LoadgenConfig {
            scenario_path,
            scenario_text: None,
            target,
            scale,
            manager_token,
            connections: CONNECTIONS_DEFAULT,
            round_window_s: plan::ROUND_WINDOW_DEFAULT_S,
            round_duration_s: None,
            redeem_rate: REDEEM_RATE_DEFAULT_PER_S,
            seed: SEED_DEFAULT,
            report_path: None,
        }
    }
}

/// Round length that outlasts the last possible retry of the last first attempt.
pub fn default_round_duration_s(plan: &Plan, round_window_s: f64) -> u64 {
    let retries = f64::from(plan.retries_max) * plan.retry_interval_s[1];
    (round_window_s.max(0.0) + plan::NEXT_TAP_DELAY_S[1] * 4.0 + retries + ROUND_SLACK_S).ceil()
        as u64
}

async fn phase<T, F>(name: &str, f: impl FnOnce(Arc<Tally>) -> F) -> anyhow::Result<(T, f64)>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    let started = Instant::now();
    let tally = Arc::new(Tally::new());
    let progress = Progress::start(name, tally.clone());
    let out = f(tally).await;
    progress.finish().await;
    Ok((out?, started.elapsed().as_secs_f64()))
}

/// Seeds, contends one round, redeems, audits, and writes the report.
pub async fn run(config: LoadgenConfig) -> anyhow::Result<Report> {
    let started = Instant::now();
    let scenario = match &config.scenario_text {
        Some(text) => Scenario::parse(text)?,
        None => Scenario::load(&config.scenario_path)?,
    };
    let options = PlanOptions {
        scale: config.scale,
        seed: config.seed,
        round_window_s: config.round_window_s,
    };
    let plan = Plan::build(&scenario, &options)?;
    let tz = campaign::zone(&plan.timezone)?;
    let api = Api::new(&config.target, config.connections)?;
    let token = config.manager_token.as_str();
    let round_duration_s = config
        .round_duration_s
        .unwrap_or_else(|| default_round_duration_s(&plan, config.round_window_s));
    tracing::info!(
        scenario = %plan.scenario, scale = plan.scale, residents = plan.population.len(),
        contenders = plan.contenders, bot_accounts = plan.population.bot_accounts(),
        merchants = plan.merchants.len(), stock = plan.total_stock(), claims = plan.schedule.len(),
        "plan ready"
    );
    let mut durations = Durations::default();

    let (api_ref, plan_ref) = (&api, &plan);
    let ((), s) = phase("seed residents", |t| async move {
        seed::residents(api_ref, token, &plan_ref.population, &t).await
    })
    .await
    .context("registering residents")?;
    durations.seed_residents_s = s;
    let ((), s) = phase("seed merchants", |t| async move {
        seed::merchants(api_ref, token, plan_ref, &t).await
    })
    .await
    .context("registering merchants")?;
    durations.seed_merchants_s = s;

    let tokens_started = Instant::now();
    let accounts: Vec<String> = plan
        .participants
        .iter()
        .map(|&i| plan.population.account(i))
        .collect();
    let tokens = Arc::new(
        seed::resident_tokens(&api, token, &accounts)
            .await
            .context("minting resident tokens")?,
    );
    drop(accounts);
    durations.tokens_s = tokens_started.elapsed().as_secs_f64();

    let now = Utc::now();
    let local = campaign::local_now(tz, now);
    let start = campaign::round_start(local);
    let spec = campaign::spec(
        &plan,
        start,
        round_duration_s,
        campaign::validity(&plan.validity_variant, local)?,
    );
    if let Err(errors) = spec.validate("local-check".to_owned()) {
        anyhow::bail!("the campaign this plan makes is invalid: {errors:?}");
    }
    let view = seed::create_campaign(&api, token, &spec)
        .await
        .context("creating the campaign")?;
    seed::publish(&api, token, &view.id)
        .await
        .context("publishing the campaign")?;
    let until_start = (campaign::to_utc(tz, start)? - Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO);
    let t0 = Instant::now() + until_start + Duration::from_millis(ROUND_START_MARGIN_MS);
    tracing::info!(campaign = %view.id, round_start = %start, "campaign published; round opens shortly");

    let key_prefix = format!("k{}{:x}", plan.tag, now.timestamp_millis());
    let claims = round::run(
        &api,
        &plan,
        &view.id,
        tokens,
        t0,
        config.connections,
        key_prefix,
    )
    .await;
    durations.claims_s = claims.report.wall_s;

    let jobs = redeem_plan::plan_redemptions(&plan, &claims.granted);
    let mut used: Vec<usize> = jobs
        .iter()
        .flat_map(|j| std::iter::once(j.merchant).chain(j.utility_probe))
        .collect();
    used.sort_unstable();
    used.dedup();
    let terminals_started = Instant::now();
    let terminal_tokens =
        seed::terminal_tokens(&api, token, &plan.merchants, &used, config.connections)
            .await
            .context("minting terminal tokens")?;
    durations.tokens_s += terminals_started.elapsed().as_secs_f64();
    let redeemed = redeem::run(
        &api,
        &plan,
        &claims.granted,
        &jobs,
        &terminal_tokens,
        config.redeem_rate,
        config.connections,
    )
    .await;
    durations.redemptions_s = redeemed.report.wall_s;

    let audit_started = Instant::now();
    let server = audit::fetch(&api, token, &view.id)
        .await
        .context("fetching the campaign's books")?;
    let anomalies: Vec<String> = claims
        .anomalies
        .iter()
        .chain(&redeemed.anomalies)
        .cloned()
        .collect();
    let audit = audit::check(
        &server,
        &audit::ClientView {
            plan: &plan,
            granted: &claims.granted,
            sold_out_seen: &claims.sold_out_seen,
            redemptions: &redeemed.acks,
            anomalies: &anomalies,
        },
    );
    durations.audit_s = audit_started.elapsed().as_secs_f64();
    durations.total_s = started.elapsed().as_secs_f64();

    let report = Report {
        scenario: plan.scenario.clone(),
        scale: plan.scale,
        users: plan.population.len(),
        merchants: plan.merchants.len() as u64,
        claims: claims.report,
        redemptions: redeemed.report,
        audit,
        campaign: view.id,
        contenders: plan.contenders,
        bot_accounts: plan.population.bot_accounts(),
        bot_clusters: plan.population.clusters.len() as u64,
        stock: plan.total_stock(),
        budget_fen: plan.budget_fen,
        sellout_s: claims.sellout_s,
        reversals: redeemed.reversals,
        durations,
        config: RunConfig {
            target: api.base().to_owned(),
            seed: config.seed,
            connections: config.connections,
            round_window_s: config.round_window_s,
            round_duration_s,
            redeem_rate: config.redeem_rate,
        },
    };
    if let Some(path) = &config.report_path {
        let json = serde_json::to_vec_pretty(&report).context("encoding the report")?;
        tokio::fs::write(path, json)
            .await
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}
