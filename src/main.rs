//! `yunquan`: one binary for the server, the demo, the load generator, the offline
//! auditor and token minting. Each command lives in its own file under `cmd/`.

mod cmd;

use clap::Parser;

// The request path allocates small, short-lived buffers on every worker thread (HTTP
// parsing, JSON, per-request futures); the system allocator's consolidation and
// free-list work showed up as a seventh of the server's CPU time in profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cmd::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command.run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
