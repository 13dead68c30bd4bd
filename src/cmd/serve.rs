//! `yunquan serve`: opens a data directory, recovers the shards and serves the HTTP API
//! until SIGINT/SIGTERM, then drains requests and stops the engine cleanly.

use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use yunquan_actors::{Clock, Engine, EngineConfig};
use yunquan_gateway::GatewayConfig;

/// Arguments of `yunquan serve`.
#[derive(Debug, clap::Args)]
pub struct Serve {
    /// Data directory (created if missing; holds the store and `token.key`).
    #[arg(long, env = "YUNQUAN_DATA")]
    data: PathBuf,
    /// Address to listen on; port 0 picks a free port (the chosen one is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Number of shards (default: number of CPU cores); fixed once the directory has data.
    #[arg(long)]
    shards: Option<u32>,
    /// Commands a shard mailbox holds before callers get 503 `overloaded`.
    #[arg(long, default_value_t = EngineConfig::MAILBOX_COMMANDS_MAX_DEFAULT)]
    mailbox_commands_max: usize,
    /// Most events one journal write (group commit) carries.
    #[arg(long, default_value_t = EngineConfig::BATCH_EVENTS_MAX_DEFAULT)]
    batch_events_max: usize,
    /// A shard snapshots after this many events since its last snapshot.
    #[arg(long, default_value_t = EngineConfig::SNAPSHOT_EVERY_EVENTS_DEFAULT)]
    snapshot_every_events: u64,
    /// Idempotency keys and POS request numbers remembered per shard.
    #[arg(long, default_value_t = EngineConfig::IDEMPOTENCY_KEYS_MAX_DEFAULT)]
    idempotency_keys_max: usize,
    /// Longest a command may wait in a shard's mailbox, in milliseconds, before it is
    /// answered 503 `overloaded` unexecuted (0: never).
    #[arg(long, default_value_t = EngineConfig::QUEUE_WAIT_MS_MAX_DEFAULT)]
    queue_wait_ms_max: u64,
    /// HTTP requests handled at once; more are shed with 503 (default: gateway default).
    #[arg(long)]
    requests_in_flight_max: Option<usize>,
    /// Floor of the adaptive limit on API requests in flight (default: gateway default).
    #[arg(long)]
    requests_in_flight_min: Option<usize>,
    /// p90 latency of API requests to hold, in milliseconds: past it, fewer are admitted
    /// (down to --requests-in-flight-min). Set it well above an unloaded server's latency;
    /// 0 keeps the limit at --requests-in-flight-max (default: gateway default, 10).
    #[arg(long)]
    request_latency_ms_p90_target: Option<u64>,
    /// Longest an HTTP request may run before 504, in milliseconds (default: gateway default).
    #[arg(long)]
    request_timeout_ms: Option<u64>,
}

/// Resolves on SIGINT or (on Unix) SIGTERM; if a handler cannot be installed, that
/// signal is simply not awaited.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}

impl Serve {
    /// Runs it.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let shards = match self.shards {
            Some(n) => n,
            None => u32::try_from(cores).unwrap_or(u32::MAX),
        };
        anyhow::ensure!(shards >= 1, "--shards must be at least 1");
        std::fs::create_dir_all(&self.data)
            .with_context(|| format!("creating data directory {}", self.data.display()))?;
        let config = EngineConfig {
            data_dir: self.data.clone(),
            shards,
            mailbox_commands_max: self.mailbox_commands_max,
            batch_events_max: self.batch_events_max,
            snapshot_every_events: self.snapshot_every_events,
            idempotency_keys_max: self.idempotency_keys_max,
            queue_wait_ms_max: self.queue_wait_ms_max,
        };
        let clock: Clock = Arc::new(yunquan_actors::wall_clock_ms);
        // Recovery reads every journal: keep it off the async workers.
        let engine = tokio::task::spawn_blocking(move || Engine::start(config, clock))
            .await
            .context("engine start panicked")?
            .with_context(|| format!("starting the engine on {}", self.data.display()))?;

        let mut gateway = GatewayConfig::default();
        if let Some(n) = self.requests_in_flight_max {
            gateway.requests_in_flight_max = n;
        }
        if let Some(n) = self.requests_in_flight_min {
            gateway.requests_in_flight_min = n;
        }
        if let Some(ms) = self.request_latency_ms_p90_target {
            gateway.request_latency_ms_p90_target = ms;
        }
        if let Some(ms) = self.request_timeout_ms {
            gateway.request_timeout_ms = ms;
        }
        let listener = match tokio::net::TcpListener::bind(&self.listen).await {
            Ok(l) => l,
            Err(e) => {
                engine.shutdown().await;
                return Err(e).with_context(|| format!("binding {}", self.listen));
            }
        };
        let addr = listener.local_addr().context("reading the bound address")?;
        tracing::info!(%addr, shards, data = %self.data.display(), "serving");
        // Tests and scripts parse this exact line to find the port.
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{addr}").context("writing to stdout")?;
        stdout.flush().context("writing to stdout")?;
        drop(stdout);

        let served =
            yunquan_gateway::serve(listener, engine.clone(), gateway, shutdown_signal()).await;
        tracing::info!("HTTP server stopped; stopping the engine");
        engine.shutdown().await;
        served.context("serving HTTP")?;
        Ok(ExitCode::SUCCESS)
    }
}
