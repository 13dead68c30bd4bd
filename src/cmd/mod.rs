//! Command-line commands, one file each.

mod audit;
mod compare;
mod demo;
mod loadgen;
mod serve;
mod token;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Government consumer-coupon platform at flash-sale scale.
#[derive(Debug, Parser)]
#[command(name = "yunquan", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server on a data directory.
    Serve(serve::Serve),
    /// Start a fresh server, replay the Guizhou flash round against it, audit, write report.json.
    Demo(demo::Demo),
    /// Replay a scenario against a running server and audit the result.
    Loadgen(loadgen::Loadgen),
    /// Check the invariants offline from a data directory.
    Audit(audit::Audit),
    /// The same claim workload against yunquan, Redis (Lua) and PostgreSQL (row lock), side by side.
    Compare(compare::Compare),
    /// Mint a bearer token signed with a data directory's key.
    Token(token::Token),
}

impl Command {
    /// Runs the command; the exit code says whether it succeeded.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Serve(c) => c.run().await,
            Command::Demo(c) => c.run().await,
            Command::Loadgen(c) => c.run().await,
            Command::Audit(c) => c.run().await,
            Command::Compare(c) => c.run().await,
            Command::Token(c) => c.run().await,
        }
    }
}
