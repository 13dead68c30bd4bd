//! yunquan without HTTP: the engine started in this process on its own data
//! directory, with the settings `yunquan serve` starts it with (shard actors, group
//! commit, fsync before a grant is answered). The gap to the HTTP target is what the
//! HTTP layer costs.

use super::spec;
use super::target::{ClaimTarget, Outcome, StoreCounts, TargetInfo};
use anyhow::Context;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use yunquan_actors::api::{CampaignAction, EngineError, Refusal};
use yunquan_actors::{Clock, Engine, EngineConfig};

/// Residents registered per engine call.
const REGISTER_CHUNK: u64 = 5_000;
/// Stats are projections that trail the shards a little; poll this often, in ms...
const STATS_POLL_MS: u64 = 20;
/// ...for at most this many polls.
const STATS_POLLS_MAX: u32 = 500;

/// The engine, its persons' accounts, and the temporary data directory it owns.
#[derive(Debug)]
pub struct InProcessTarget {
    /// The engine.
    engine: Engine,
    /// Account id of each person.
    accounts: Vec<String>,
    /// Removed when the target is dropped (after shutdown).
    _dir: Option<tempfile::TempDir>,
    /// Shards the engine runs.
    shards: u32,
}

/// One round: a published campaign.
#[derive(Debug, Clone)]
pub struct InProcessRound {
    /// Campaign id.
    campaign: String,
}

impl InProcessTarget {
    /// Starts the engine on `data` (a fresh temporary directory when `None`) with
    /// `shards` shards and registers `persons` residents.
    pub async fn start(
        data: Option<PathBuf>,
        shards: u32,
        persons: u64,
    ) -> anyhow::Result<InProcessTarget> {
        let (dir, owned) = match data {
            Some(d) => {
                std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
                (d, None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("yunquan-compare-")
                    .tempdir()
                    .context("creating a temporary data directory")?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        // `yunquan serve`'s defaults: the same engine a deployment runs.
        let config = EngineConfig::new(dir.clone(), shards.max(1));
        let clock: Clock = Arc::new(yunquan_actors::wall_clock_ms);
        let engine = tokio::task::spawn_blocking(move || Engine::start(config, clock))
            .await
            .context("engine start panicked")?
            .with_context(|| format!("starting the engine on {}", dir.display()))?;
        for first in (0..persons).step_by(REGISTER_CHUNK as usize) {
            let batch = (first..(first + REGISTER_CHUNK).min(persons))
                .map(spec::resident)
                .collect();
            let outcomes = engine
                .register_residents(batch)
                .await
                .context("registering residents")?;
            for o in outcomes {
                match o {
                    Ok(()) | Err(EngineError::Refused(Refusal::AlreadyRegistered)) => {}
                    Err(e) => anyhow::bail!("registering a resident: {e}"),
                }
            }
        }
        Ok(InProcessTarget {
            engine,
            accounts: (0..persons).map(spec::account).collect(),
            _dir: owned,
            shards: shards.max(1),
        })
    }

    /// Flushes, snapshots and stops the engine.
    pub async fn shutdown(&self) {
        self.engine.shutdown().await;
    }
}

impl ClaimTarget for InProcessTarget {
    type Round = InProcessRound;

    fn info(&self) -> TargetInfo {
        TargetInfo {
            name: "yunquan-inprocess".into(),
            description: format!(
                "yunquan engine in the load generator's process ({} shards, durable group commit: fsync before each answer), no HTTP",
                self.shards
            ),
            durable: true,
        }
    }

    async fn open_round(&self, stock: u64) -> anyhow::Result<InProcessRound> {
        let spec = spec::campaign(stock, chrono::Utc::now())?;
        let view = self
            .engine
            .create_campaign(spec)
            .await
            .context("creating the campaign")?;
        self.engine
            .campaign_action(&view.id, CampaignAction::Publish)
            .await
            .context("publishing the campaign")?;
        Ok(InProcessRound { campaign: view.id })
    }

    async fn claim(&self, round: &InProcessRound, _client: usize, person: u64) -> Outcome {
        let Some(account) = self.accounts.get(person as usize) else {
            return Outcome::Error(format!("person {person} is not registered"));
        };
        match self.engine.claim(account, &round.campaign, 0, None).await {
            Ok(_) => Outcome::Granted,
            Err(EngineError::Refused(Refusal::SoldOut)) => Outcome::SoldOut,
            Err(EngineError::Refused(Refusal::LimitReached(_))) => Outcome::Limited,
            Err(e) => Outcome::Error(format!("engine: {e}")),
        }
    }

    async fn verify(&self, round: &InProcessRound) -> anyhow::Result<StoreCounts> {
        let coupons = self
            .engine
            .campaign_coupons(&round.campaign)
            .await
            .context("reading the campaign's coupons")?;
        let routes: HashSet<u64> = coupons
            .iter()
            .filter_map(|c| crate::audit::code_route(&c.code))
            .collect();
        let stats = || {
            self.engine
                .campaign_stats(&round.campaign)
                .and_then(|s| s.tiers.first().map(|t| (t.claimed, t.remaining)))
        };
        // Wait until the projection has caught up with the coupons the shards hold.
        let mut figures = stats();
        for _ in 0..STATS_POLLS_MAX {
            if figures.is_some_and(|(claimed, _)| claimed == coupons.len() as u64) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(STATS_POLL_MS)).await;
            figures = stats();
        }
        let (_, remaining) = figures.context("the campaign has no stats")?;
        Ok(StoreCounts {
            granted: coupons.len() as u64,
            distinct_persons: routes.len() as u64,
            stock_left: remaining,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::driver::{drive, RunSpec};
    use super::super::workload::{Sequence, WorkloadSpec};
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sells_out_to_exactly_the_stock_and_nobody_twice() {
        let dir = tempfile::tempdir().unwrap();
        let target = Arc::new(
            InProcessTarget::start(Some(dir.path().to_path_buf()), 2, 300)
                .await
                .unwrap(),
        );
        let seq = Arc::new(
            Sequence::build(&WorkloadSpec {
                persons: 300,
                stock: 120,
                repeat_fraction: 0.5,
                seed: 3,
            })
            .unwrap(),
        );
        let round = Arc::new(target.open_round(120).await.unwrap());
        let spec = RunSpec {
            clients: 8,
            rate_per_s: None,
            requests: seq.len(),
            duration_s_max: 600.0,
        };
        let seen = drive(target.clone(), round.clone(), seq.clone(), spec).await;
        let store = target.verify(&round).await.unwrap();
        target.shutdown().await;
        assert_eq!(seen.sent, 450);
        assert_eq!(seen.errors, 0, "{:?}", seen.error_examples);
        assert_eq!(seen.granted, 120);
        assert_eq!(seen.persons_granted_twice, 0);
        assert!(seen.limited > 0, "repeat grabs must meet the limit");
        assert_eq!(store.granted, 120);
        assert_eq!(store.distinct_persons, 120);
        assert_eq!(store.stock_left, 0);
        let verdict = super::super::check::check(120, &seen, &store);
        assert!(verdict.ok, "{:?}", verdict.problems);
    }
}
