//! `yunquan loadgen` (placeholder until implemented).

use std::process::ExitCode;

/// Arguments of `yunquan loadgen`.
#[derive(Debug, clap::Args)]
pub struct Loadgen {}

impl Loadgen {
    /// Runs it.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        anyhow::bail!("not implemented yet")
    }
}
