//! `yunquan audit` (placeholder until implemented).

use std::process::ExitCode;

/// Arguments of `yunquan audit`.
#[derive(Debug, clap::Args)]
pub struct Audit {}

impl Audit {
    /// Runs it.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        anyhow::bail!("not implemented yet")
    }
}
