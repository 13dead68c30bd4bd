//! `yunquan audit`: checks the invariants offline from a data directory (the server
//! must be stopped: the store is opened exclusively).

use std::path::PathBuf;
use std::process::ExitCode;
use yunquan_storage::{EmbeddedStore, Store};

/// Arguments of `yunquan audit`.
#[derive(Debug, clap::Args)]
pub struct Audit {
    /// Data directory of a stopped server.
    #[arg(long)]
    data: PathBuf,
    /// Print the full report as JSON instead of a summary.
    #[arg(long)]
    json: bool,
}

impl Audit {
    /// Runs the audit; exit code 0 only when every invariant holds.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        if !self.data.join("meta.redb").exists() {
            anyhow::bail!(
                "{} is not a yunquan data directory (no meta.redb)",
                self.data.display()
            );
        }
        let store = EmbeddedStore::open(&self.data)?;
        let shards = match store.get_meta("shards")? {
            Some(b) if b.len() == 4 => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            _ => anyhow::bail!(
                "{} has no shard count recorded; was a server ever started on it?",
                self.data.display()
            ),
        };
        let report =
            tokio::task::spawn_blocking(move || yunquan_actors::audit::audit_store(&store, shards))
                .await??;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!(
                "audited {} campaigns, {} persons, {} coupons, {} redemptions",
                report.campaigns, report.persons, report.coupons, report.redemptions
            );
            println!(
                "oversold {}  double-redeemed {}  over budget {}  violations {}",
                report.oversold, report.double_redeemed, report.over_budget, report.violation_count
            );
            for v in &report.violations {
                println!("  violation: {v}");
            }
            println!("audit: {}", if report.ok { "OK" } else { "FAILED" });
        }
        Ok(if report.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}
