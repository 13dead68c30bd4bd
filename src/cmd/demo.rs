//! `yunquan demo` (placeholder until implemented).

use std::process::ExitCode;

/// Arguments of `yunquan demo`.
#[derive(Debug, clap::Args)]
pub struct Demo {}

impl Demo {
    /// Runs it.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        anyhow::bail!("not implemented yet")
    }
}
