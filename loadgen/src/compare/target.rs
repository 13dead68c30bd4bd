//! What a claim target must offer: open a round with some stock, answer one person's
//! grab, and read back from its own store what it granted, so correctness is checked
//! against the store rather than taken from the replies.

use serde::Serialize;
use std::future::Future;

/// The answer to one grab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A coupon was granted, durably where the target is durable.
    Granted,
    /// Refused: no stock left.
    SoldOut,
    /// Refused: the person already holds one.
    Limited,
    /// Anything else (overload, transport failure, unexpected reply); the text says what.
    Error(String),
}

/// What the target's own store says about one round, read after the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StoreCounts {
    /// Grants recorded for the round.
    pub granted: u64,
    /// Distinct persons among those grants (equal to `granted` when nobody got two).
    pub distinct_persons: u64,
    /// Units the store says are left.
    pub stock_left: u64,
}

/// How a target is shown in tables and the plot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetInfo {
    /// Short stable name, e.g. `yunquan-http`, `redis-lua-none`.
    pub name: String,
    /// Longer description, durability included, read from the server where it can be.
    pub description: String,
    /// Whether an acknowledged grant survives a crash of the server process and the
    /// machine (fsync before the answer, or at most a second of loss for `false`).
    pub durable: bool,
}

/// One design of flash-sale claims, driven by [`super::driver`]. Every method takes
/// `&self` so the driver's clients can share the target; per-client state (a
/// connection each) is indexed by `client`.
pub trait ClaimTarget: Send + Sync + 'static {
    /// What identifies one round (a campaign, a key prefix, a row id).
    type Round: Send + Sync + 'static;

    /// Name, description, durability.
    fn info(&self) -> TargetInfo;

    /// Opens a fresh round with `stock` units in which nobody holds anything yet.
    fn open_round(&self, stock: u64) -> impl Future<Output = anyhow::Result<Self::Round>> + Send;

    /// One grab by `person` over client `client`'s connection; one request in flight
    /// per client, no pipelining.
    fn claim(
        &self,
        round: &Self::Round,
        client: usize,
        person: u64,
    ) -> impl Future<Output = Outcome> + Send;

    /// Reads the round back from the target's own store.
    fn verify(
        &self,
        round: &Self::Round,
    ) -> impl Future<Output = anyhow::Result<StoreCounts>> + Send;
}

/// Test support for targets backed by an external server.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod testing {
    use super::{ClaimTarget, Outcome, StoreCounts};

    /// The URL of a scratch server from `var`, or `None` to skip. The test command
    /// (`scripts/test.sh`) starts the servers and sets `YUNQUAN_TEST_SERVERS_REQUIRED=1`,
    /// so there a missing URL fails the test instead of skipping it.
    pub(crate) fn server_url(var: &str, example: &str) -> Option<String> {
        match std::env::var(var) {
            Ok(url) => Some(url),
            Err(_) if std::env::var_os("YUNQUAN_TEST_SERVERS_REQUIRED").is_some() => {
                panic!(
                    "{var} is not set, but YUNQUAN_TEST_SERVERS_REQUIRED is: set {var}={example}"
                )
            }
            Err(_) => {
                eprintln!("skipped: set {var}={example} to run");
                None
            }
        }
    }

    /// One person grabs once, a repeat meets the limit, the round sells out to exactly
    /// its stock of 2, the store's counts agree, and a new round starts empty.
    pub(crate) async fn grants_once_per_person_and_never_oversells<T: ClaimTarget>(t: &T) {
        let round = t.open_round(2).await.unwrap();
        assert_eq!(t.claim(&round, 0, 7).await, Outcome::Granted);
        assert_eq!(t.claim(&round, 1, 7).await, Outcome::Limited);
        assert_eq!(t.claim(&round, 1, 8).await, Outcome::Granted);
        assert_eq!(t.claim(&round, 0, 9).await, Outcome::SoldOut);
        assert_eq!(t.claim(&round, 0, 8).await, Outcome::Limited);
        assert_eq!(
            t.verify(&round).await.unwrap(),
            StoreCounts {
                granted: 2,
                distinct_persons: 2,
                stock_left: 0
            }
        );
        let again = t.open_round(1).await.unwrap();
        assert_eq!(t.claim(&again, 0, 7).await, Outcome::Granted);
    }
}
