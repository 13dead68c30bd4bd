//! `yunquan serve` (placeholder until implemented).

use std::process::ExitCode;

/// Arguments of `yunquan serve`.
#[derive(Debug, clap::Args)]
pub struct Serve {}

impl Serve {
    /// Runs it.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        anyhow::bail!("not implemented yet")
    }
}
