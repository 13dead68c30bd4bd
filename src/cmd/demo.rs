//! `yunquan demo`: a fresh engine and gateway in this process on 127.0.0.1, the
//! Guizhou flash round replayed against them at a small scale, the audit, a summary
//! and `./report.json`. Exit code 0 iff the audit passed.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use yunquan_actors::{Clock, Engine, EngineConfig};
use yunquan_gateway::{GatewayConfig, Role, TokenClaims};
use yunquan_loadgen::LoadgenConfig;

/// The scenario when `--scenario` is not given and this file is not found from here.
const SCENARIO_DEFAULT_PATH: &str = "scenarios/guizhou-flash-round.toml";
/// A copy built into the binary so the demo runs from any directory.
const SCENARIO_EMBEDDED: &str = include_str!("../../scenarios/guizhou-flash-round.toml");
/// Where the report goes.
const REPORT_PATH: &str = "report.json";
/// Lifetime of the demo's manager token, in seconds.
const MANAGER_TOKEN_TTL_S: i64 = 24 * 3_600;

/// Arguments of `yunquan demo`.
#[derive(Debug, clap::Args)]
pub struct Demo {
    /// Scale of the Guizhou round. The default (292,000 residents, 40,000 contenders,
    /// 23,560 coupons) runs in about a minute on two cores with room to spare.
    #[arg(long, default_value_t = 0.02)]
    scale: f64,
    /// Data directory (default: a fresh temporary directory, removed afterwards).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Scenario file (default: scenarios/guizhou-flash-round.toml, else the built-in copy).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Seed of every random decision.
    #[arg(long, default_value_t = yunquan_loadgen::SEED_DEFAULT)]
    seed: u64,
    /// Requests in flight at most.
    #[arg(long, default_value_t = yunquan_loadgen::CONNECTIONS_DEFAULT)]
    connections: usize,
}

impl Demo {
    /// Runs it.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        // Keep the temporary directory alive until the engine has stopped.
        let (data, _temp) = match &self.data {
            Some(d) => {
                std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
                (d.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("yunquan-demo-")
                    .tempdir()
                    .context("creating a temporary data directory")?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let shards = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let config = EngineConfig::new(data.clone(), u32::try_from(shards).unwrap_or(1));
        let clock: Clock = Arc::new(yunquan_actors::wall_clock_ms);
        let engine = tokio::task::spawn_blocking(move || Engine::start(config, clock))
            .await
            .context("engine start panicked")?
            .with_context(|| format!("starting the engine on {}", data.display()))?;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding 127.0.0.1:0")?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(yunquan_gateway::serve(
            listener,
            engine.clone(),
            GatewayConfig::default(),
            async {
                let _ = stopped.await;
            },
        ));
        eprintln!(
            "demo: engine on {} ({shards} shards), API on http://{addr}",
            data.display()
        );

        let manager = yunquan_gateway::mint(
            &engine.keys().token,
            &TokenClaims {
                role: Role::Manager,
                sub: "demo".to_owned(),
                mer: None,
                exp: yunquan_actors::wall_clock_ms() / 1_000 + MANAGER_TOKEN_TTL_S,
            },
        );
        let (scenario_path, scenario_text) = match self.scenario {
            Some(p) => (p, None),
            None if Path::new(SCENARIO_DEFAULT_PATH).is_file() => {
                (PathBuf::from(SCENARIO_DEFAULT_PATH), None)
            }
            None => (
                PathBuf::from("(built-in) guizhou-flash-round.toml"),
                Some(SCENARIO_EMBEDDED.to_owned()),
            ),
        };
        let mut config =
            LoadgenConfig::new(scenario_path, format!("http://{addr}"), self.scale, manager);
        config.scenario_text = scenario_text;
        config.seed = self.seed;
        config.connections = self.connections;
        config.report_path = Some(PathBuf::from(REPORT_PATH));
        let outcome = yunquan_loadgen::run(config).await;

        let _ = stop.send(());
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the gateway stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "the gateway task failed"),
        }
        engine.shutdown().await;

        let report = outcome?;
        print!("{}", yunquan_loadgen::summary(&report));
        println!("report written to {REPORT_PATH}");
        Ok(if report.audit.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}
