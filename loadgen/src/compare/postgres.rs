//! The relational design: one stock row per round and one claim row per grant with a
//! unique (person, round) constraint, in one transaction per grab:
//!
//! ```sql
//! BEGIN;
//! INSERT INTO claims (person, round) VALUES ($1, $2);       -- unique violation: limit
//! UPDATE stock SET n = n - 1 WHERE round = $1 AND n > 0;    -- 0 rows: sold out
//! COMMIT;                                                   -- durable (WAL fsync)
//! ```
//!
//! The claim row goes in first so a person over the limit is refused without ever
//! touching the hot stock row; the hot row's lock is then held only from the UPDATE to
//! the end of COMMIT. That is the most favourable order for this design, and still
//! every grant of a round waits for the previous one's commit on the same row.

use super::target::{ClaimTarget, Outcome, StoreCounts, TargetInfo};
use anyhow::Context;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Statement};

/// Tables of the design (created if missing).
pub const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS stock (
  round integer PRIMARY KEY,
  n integer NOT NULL CHECK (n >= 0)
);
CREATE TABLE IF NOT EXISTS claims (
  person bigint NOT NULL,
  round integer NOT NULL,
  claimed_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (person, round)
);";

/// The claim row.
const INSERT_SQL: &str = "INSERT INTO claims (person, round) VALUES ($1, $2)";
/// The hot row.
const UPDATE_SQL: &str = "UPDATE stock SET n = n - 1 WHERE round = $1 AND n > 0";

/// One connection of one client, with its prepared statements.
struct Conn {
    /// The session.
    client: Client,
    /// [`INSERT_SQL`], prepared.
    insert: Statement,
    /// [`UPDATE_SQL`], prepared.
    update: Statement,
}

/// PostgreSQL, one connection per client.
pub struct PostgresTarget {
    /// One per client; each runs one transaction at a time.
    conns: Vec<Conn>,
    /// Name and description, durability settings included.
    info: TargetInfo,
}

impl std::fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTarget")
            .field("connections", &self.conns.len())
            .field("info", &self.info)
            .finish()
    }
}

/// One round: its stock row's key.
#[derive(Debug, Clone, Copy)]
pub struct PostgresRound {
    /// `stock.round`.
    id: i32,
}

async fn open(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to PostgreSQL ({url}); is it running?"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

async fn setting(client: &Client, name: &str) -> anyhow::Result<String> {
    let row = client
        .query_one(&format!("SHOW {name}"), &[])
        .await
        .with_context(|| format!("SHOW {name}"))?;
    row.try_get::<_, String>(0)
        .with_context(|| format!("reading {name}"))
}

impl PostgresTarget {
    /// Opens `clients` connections to `url` (`postgres://user@127.0.0.1:PORT/db`),
    /// creates the tables and prepares the statements. Refuses a server that would
    /// acknowledge a commit before it is on disk, since the comparison is of durable
    /// designs.
    pub async fn connect(url: &str, clients: usize) -> anyhow::Result<PostgresTarget> {
        let first = open(url).await?;
        first
            .batch_execute(SCHEMA_SQL)
            .await
            .context("creating the stock and claims tables")?;
        let sync = setting(&first, "synchronous_commit").await?;
        let fsync = setting(&first, "fsync").await?;
        anyhow::ensure!(
            sync == "on" && fsync == "on",
            "PostgreSQL has synchronous_commit={sync}, fsync={fsync}; set both to on so commits are durable"
        );
        let version = setting(&first, "server_version").await?;
        let mut conns = Vec::with_capacity(clients.max(1));
        let mut next = Some(first);
        for _ in 0..clients.max(1) {
            let client = match next.take() {
                Some(c) => c,
                None => open(url).await?,
            };
            let insert = client
                .prepare(INSERT_SQL)
                .await
                .context("preparing INSERT")?;
            let update = client
                .prepare(UPDATE_SQL)
                .await
                .context("preparing UPDATE")?;
            conns.push(Conn {
                client,
                insert,
                update,
            });
        }
        Ok(PostgresTarget {
            conns,
            info: TargetInfo {
                name: "postgres-row".into(),
                description: format!(
                    "PostgreSQL {version}, hot stock row + unique claim row per transaction, synchronous_commit=on, fsync=on"
                ),
                durable: true,
            },
        })
    }
}

/// Runs the transaction; `Ok` carries the outcome, `Err` a failure to report.
async fn claim_tx(c: &Conn, round: i32, person: i64) -> Result<Outcome, tokio_postgres::Error> {
    c.client.batch_execute("BEGIN").await?;
    match c.client.execute(&c.insert, &[&person, &round]).await {
        Ok(_) => {}
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            c.client.batch_execute("ROLLBACK").await?;
            return Ok(Outcome::Limited);
        }
        Err(e) => {
            let _ = c.client.batch_execute("ROLLBACK").await;
            return Err(e);
        }
    }
    if c.client.execute(&c.update, &[&round]).await? == 0 {
        c.client.batch_execute("ROLLBACK").await?;
        return Ok(Outcome::SoldOut);
    }
    c.client.batch_execute("COMMIT").await?;
    Ok(Outcome::Granted)
}

impl ClaimTarget for PostgresTarget {
    type Round = PostgresRound;

    fn info(&self) -> TargetInfo {
        self.info.clone()
    }

    async fn open_round(&self, stock: u64) -> anyhow::Result<PostgresRound> {
        let c = &self.conns.first().context("no connection")?.client;
        let n = i32::try_from(stock).context("stock must fit in an integer column")?;
        let row = c
            .query_one(
                "INSERT INTO stock (round, n) SELECT coalesce(max(round), 0) + 1, $1 FROM stock RETURNING round",
                &[&n],
            )
            .await
            .context("inserting the stock row")?;
        Ok(PostgresRound {
            id: row.try_get(0).context("reading the round id")?,
        })
    }

    async fn claim(&self, round: &PostgresRound, client: usize, person: u64) -> Outcome {
        let Some(c) = self.conns.get(client % self.conns.len().max(1)) else {
            return Outcome::Error("no connection".into());
        };
        let Ok(person) = i64::try_from(person) else {
            return Outcome::Error(format!("person {person} does not fit in bigint"));
        };
        match claim_tx(c, round.id, person).await {
            Ok(o) => o,
            Err(e) => Outcome::Error(format!("postgres: {e}")),
        }
    }

    async fn verify(&self, round: &PostgresRound) -> anyhow::Result<StoreCounts> {
        let c = &self.conns.first().context("no connection")?.client;
        let row = c
            .query_one(
                "SELECT count(*), count(DISTINCT person), (SELECT n FROM stock WHERE round = $1)::bigint
                 FROM claims WHERE round = $1",
                &[&round.id],
            )
            .await
            .context("counting claims")?;
        let get = |i: usize| -> anyhow::Result<u64> {
            let v: Option<i64> = row.try_get(i).context("reading the counts")?;
            Ok(u64::try_from(v.unwrap_or(0)).unwrap_or(0))
        };
        Ok(StoreCounts {
            granted: get(0)?,
            distinct_persons: get(1)?,
            stock_left: get(2)?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Needs `YUNQUAN_TEST_PG_URL` (a scratch database); `scripts/test.sh` starts one.
    #[tokio::test]
    async fn the_transaction_grants_once_per_person_and_never_oversells() {
        let Some(url) = super::super::target::testing::server_url(
            "YUNQUAN_TEST_PG_URL",
            "postgres://USER@127.0.0.1:PORT/DB",
        ) else {
            return;
        };
        let t = PostgresTarget::connect(&url, 2).await.unwrap();
        super::super::target::testing::grants_once_per_person_and_never_oversells(&t).await;
    }
}
