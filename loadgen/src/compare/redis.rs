//! The Redis design: one Lua script per grab, run atomically by the server, that
//! checks the round's set of holders, checks and decrements the stock counter and adds
//! the person to the set. Sent with EVALSHA over one connection per client, one
//! request in flight on each (no pipelining). Whether a grant survives a crash
//! depends on the server's persistence settings, which are read back and shown.

use super::target::{ClaimTarget, Outcome, StoreCounts, TargetInfo};
use anyhow::Context;
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;

/// KEYS[1]: the round's stock counter; KEYS[2]: the set of persons holding a coupon;
/// ARGV[1]: the person. Returns 1 granted, 0 sold out, -1 limit reached.
pub const CLAIM_LUA: &str = r"
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return -1
end
local left = tonumber(redis.call('GET', KEYS[1]) or '0')
if left <= 0 then
  return 0
end
redis.call('DECR', KEYS[1])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
";

/// Keys of every round share this prefix (and a counter of rounds under it).
const KEY_PREFIX: &str = "yunquan-compare";

/// Redis with the claim script loaded, one connection per client.
pub struct RedisTarget {
    /// One connection per client; each carries one request at a time.
    conns: Vec<MultiplexedConnection>,
    /// The claim script (EVALSHA, loaded on first use).
    script: redis::Script,
    /// Name and description, persistence included.
    info: TargetInfo,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("connections", &self.conns.len())
            .field("info", &self.info)
            .finish()
    }
}

/// One round's keys.
#[derive(Debug, Clone)]
pub struct RedisRound {
    /// Stock counter.
    stock: String,
    /// Set of persons holding a coupon.
    holders: String,
}

/// Reads one configuration value (`CONFIG GET name` answers `[name, value]`).
async fn config_get(conn: &mut MultiplexedConnection, name: &str) -> anyhow::Result<String> {
    let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(conn)
        .await
        .with_context(|| format!("CONFIG GET {name}"))?;
    Ok(pair.get(1).cloned().unwrap_or_default())
}

/// Name and words for the server's persistence settings.
pub fn persistence_label(appendonly: &str, appendfsync: &str, save: &str) -> (String, String, bool) {
    match (appendonly, save.trim().is_empty()) {
        ("no", true) => (
            "redis-lua-none".into(),
            "Redis Lua script, no persistence (a restart loses every grant)".into(),
            false,
        ),
        ("yes", _) => (
            format!("redis-lua-aof-{appendfsync}"),
            format!("Redis Lua script, append-only file, appendfsync {appendfsync} (a crash may lose up to a second of grants unless 'always')"),
            appendfsync == "always",
        ),
        _ => (
            "redis-lua-rdb".into(),
            format!("Redis Lua script, RDB snapshots only (save \"{save}\"; a crash loses everything since the last snapshot)"),
            false,
        ),
    }
}

impl RedisTarget {
    /// Connects `clients` connections to `url` (e.g. `redis://127.0.0.1:6379`) and reads
    /// the persistence settings for the label.
    pub async fn connect(url: &str, clients: usize) -> anyhow::Result<RedisTarget> {
        let client = redis::Client::open(url).with_context(|| format!("Redis URL {url}"))?;
        let mut conns = Vec::with_capacity(clients.max(1));
        for _ in 0..clients.max(1) {
            conns.push(
                client
                    .get_multiplexed_async_connection()
                    .await
                    .with_context(|| format!("connecting to Redis at {url}; is it running?"))?,
            );
        }
        let first = conns.first_mut().context("no connection")?;
        let appendonly = config_get(first, "appendonly").await?;
        let appendfsync = config_get(first, "appendfsync").await?;
        let save = config_get(first, "save").await?;
        let (name, description, durable) = persistence_label(&appendonly, &appendfsync, &save);
        let script = redis::Script::new(CLAIM_LUA);
        script
            .prepare_invoke()
            .load_async(first)
            .await
            .context("SCRIPT LOAD of the claim script")?;
        Ok(RedisTarget {
            conns,
            script,
            info: TargetInfo {
                name,
                description,
                durable,
            },
        })
    }
}

impl ClaimTarget for RedisTarget {
    type Round = RedisRound;

    fn info(&self) -> TargetInfo {
        self.info.clone()
    }

    async fn open_round(&self, stock: u64) -> anyhow::Result<RedisRound> {
        let mut conn = self.conns.first().context("no connection")?.clone();
        let n: u64 = conn
            .incr(format!("{KEY_PREFIX}:rounds"), 1)
            .await
            .context("INCR rounds")?;
        let round = RedisRound {
            stock: format!("{KEY_PREFIX}:{n}:stock"),
            holders: format!("{KEY_PREFIX}:{n}:holders"),
        };
        let _: () = conn
            .del(&[&round.stock, &round.holders])
            .await
            .context("DEL")?;
        let _: () = conn.set(&round.stock, stock).await.context("SET stock")?;
        Ok(round)
    }

    async fn claim(&self, round: &RedisRound, client: usize, person: u64) -> Outcome {
        let Some(conn) = self.conns.get(client % self.conns.len().max(1)) else {
            return Outcome::Error("no connection".into());
        };
        let mut conn = conn.clone();
        let r: redis::RedisResult<i64> = self
            .script
            .key(&round.stock)
            .key(&round.holders)
            .arg(person)
            .invoke_async(&mut conn)
            .await;
        match r {
            Ok(1) => Outcome::Granted,
            Ok(0) => Outcome::SoldOut,
            Ok(-1) => Outcome::Limited,
            Ok(other) => Outcome::Error(format!("the script answered {other}")),
            Err(e) => Outcome::Error(format!("redis: {e}")),
        }
    }

    async fn verify(&self, round: &RedisRound) -> anyhow::Result<StoreCounts> {
        let mut conn = self.conns.first().context("no connection")?.clone();
        let left: i64 = conn.get(&round.stock).await.context("GET stock")?;
        let granted: u64 = conn.scard(&round.holders).await.context("SCARD")?;
        // A set holds each member once, so its members are distinct by construction;
        // count them anyway from the members themselves, as the store returns them.
        let members: Vec<String> = conn.smembers(&round.holders).await.context("SMEMBERS")?;
        let mut distinct: Vec<&String> = members.iter().collect();
        distinct.sort_unstable();
        distinct.dedup();
        anyhow::ensure!(
            members.len() as u64 == granted,
            "SCARD says {granted} but SMEMBERS returned {}",
            members.len()
        );
        Ok(StoreCounts {
            granted,
            distinct_persons: distinct.len() as u64,
            stock_left: u64::try_from(left).unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_say_what_survives_a_crash() {
        let (name, _, durable) = persistence_label("no", "everysec", "");
        assert_eq!(name, "redis-lua-none");
        assert!(!durable);
        let (name, d, durable) = persistence_label("yes", "everysec", "");
        assert_eq!(name, "redis-lua-aof-everysec");
        assert!(d.contains("everysec") && !durable);
        assert!(persistence_label("yes", "always", "").2);
        assert_eq!(persistence_label("no", "no", "3600 1").0, "redis-lua-rdb");
    }

    /// Runs only with `YUNQUAN_TEST_REDIS_URL` set (a scratch Redis server).
    #[tokio::test]
    async fn the_script_grants_once_per_person_and_never_oversells() {
        let Ok(url) = std::env::var("YUNQUAN_TEST_REDIS_URL") else {
            eprintln!("skipped: set YUNQUAN_TEST_REDIS_URL=redis://127.0.0.1:PORT to run");
            return;
        };
        let t = RedisTarget::connect(&url, 2).await.unwrap();
        let round = t.open_round(2).await.unwrap();
        assert_eq!(t.claim(&round, 0, 7).await, Outcome::Granted);
        assert_eq!(t.claim(&round, 1, 7).await, Outcome::Limited);
        assert_eq!(t.claim(&round, 1, 8).await, Outcome::Granted);
        assert_eq!(t.claim(&round, 0, 9).await, Outcome::SoldOut);
        assert_eq!(t.claim(&round, 0, 8).await, Outcome::Limited);
        let s = t.verify(&round).await.unwrap();
        assert_eq!(
            s,
            StoreCounts {
                granted: 2,
                distinct_persons: 2,
                stock_left: 0
            }
        );
        // A fresh round starts empty.
        let again = t.open_round(1).await.unwrap();
        assert_eq!(t.claim(&again, 0, 7).await, Outcome::Granted);
    }
}
