//! `yunquan token` (placeholder until implemented).

use std::process::ExitCode;

/// Arguments of `yunquan token`.
#[derive(Debug, clap::Args)]
pub struct Token {}

impl Token {
    /// Runs it.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        anyhow::bail!("not implemented yet")
    }
}
