//! `yunquan loadgen`: replays a scenario against a running server, audits the
//! result, prints a summary and writes `report.json`. Exit code 0 iff the audit passed.

use std::path::PathBuf;
use std::process::ExitCode;
use yunquan_loadgen::{
    LoadgenConfig, CONNECTIONS_DEFAULT, REDEEM_RATE_DEFAULT_PER_S, SEED_DEFAULT,
};

/// A credential: parsed like a string, never shown by `Debug`.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.trim().to_owned()))
    }
}

/// Arguments of `yunquan loadgen`.
#[derive(Debug, clap::Args)]
pub struct Loadgen {
    /// Scenario file, e.g. scenarios/guizhou-flash-round.toml.
    #[arg(long)]
    scenario: PathBuf,
    /// Base URL of the server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    target: String,
    /// Shrinks population, contenders, merchants and stock alike (1.0: real size).
    #[arg(long)]
    scale: f64,
    /// Manager bearer token (see `yunquan token --role manager`).
    #[arg(long, env = "YUNQUAN_TOKEN", hide_env_values = true)]
    token: Secret,
    /// Requests in flight at most.
    #[arg(long, default_value_t = CONNECTIONS_DEFAULT)]
    connections: usize,
    /// Where to write the JSON report.
    #[arg(long, default_value = "report.json")]
    report: PathBuf,
    /// First claim attempts spread over this many seconds.
    #[arg(long, default_value_t = yunquan_loadgen::plan::ROUND_WINDOW_DEFAULT_S)]
    round_window_s: f64,
    /// Round length in seconds (default: long enough for every retry).
    #[arg(long)]
    round_duration_s: Option<u64>,
    /// Target redemption rate, per second.
    #[arg(long, default_value_t = REDEEM_RATE_DEFAULT_PER_S)]
    redeem_rate: f64,
    /// Seed of every random decision (same seed and scale: same run).
    #[arg(long, default_value_t = SEED_DEFAULT)]
    seed: u64,
}

impl Loadgen {
    /// Runs it.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let mut config = LoadgenConfig::new(self.scenario, self.target, self.scale, self.token.0);
        config.connections = self.connections;
        config.round_window_s = self.round_window_s;
        config.round_duration_s = self.round_duration_s;
        config.redeem_rate = self.redeem_rate;
        config.seed = self.seed;
        config.report_path = Some(self.report.clone());
        let report = yunquan_loadgen::run(config).await?;
        print!("{}", yunquan_loadgen::summary(&report));
        println!("report written to {}", self.report.display());
        Ok(if report.audit.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}
