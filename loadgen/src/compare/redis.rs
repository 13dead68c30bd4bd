//! The Redis design: one Lua script per grab, run atomically by the server, that
//! checks the round's set of holders, checks and decrements the stock counter and adds
//! the person to the set. Sent with EVALSHA over one connection per client, one
//! request in flight on each (no pipelining), by the same lean client as yunquan's
//! HTTP claims ([`super::wire`]). Setup and read-back use the `redis` crate. Whether
//! a grant survives a crash depends on the server's persistence settings, which are
//! read back and shown.

use super::target::{ClaimTarget, Outcome, StoreCounts, TargetInfo};
use super::wire::{resp_command, Conn};
use anyhow::Context;
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use tokio::sync::Mutex;

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
    /// Setup and read-back.
    admin: MultiplexedConnection,
    /// One connection per client; each carries one request at a time (only its own
    /// client uses it, so the lock is never contended).
    conns: Vec<Mutex<Conn>>,
    /// SHA1 of [`CLAIM_LUA`], loaded on the server at connect.
    sha: String,
    /// Name and description, persistence included.
    info: TargetInfo,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("connections", &self.conns.len())
            .field("sha", &self.sha)
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
pub fn persistence_label(
    appendonly: &str,
    appendfsync: &str,
    save: &str,
) -> (String, String, bool) {
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
        let addr = match &client.get_connection_info().addr {
            redis::ConnectionAddr::Tcp(host, port) => {
                tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .with_context(|| format!("resolving {host}"))?
                    .next()
                    .with_context(|| format!("{host} resolves to no address"))?
            }
            other => anyhow::bail!("only plain TCP Redis URLs are supported, not {other:?}"),
        };
        let mut admin = client
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("connecting to Redis at {url}; is it running?"))?;
        let appendonly = config_get(&mut admin, "appendonly").await?;
        let appendfsync = config_get(&mut admin, "appendfsync").await?;
        let save = config_get(&mut admin, "save").await?;
        let (name, description, durable) = persistence_label(&appendonly, &appendfsync, &save);
        let script = redis::Script::new(CLAIM_LUA);
        let sha = script
            .prepare_invoke()
            .load_async(&mut admin)
            .await
            .context("SCRIPT LOAD of the claim script")?;
        Ok(RedisTarget {
            admin,
            conns: (0..clients.max(1))
                .map(|_| Mutex::new(Conn::new(addr)))
                .collect(),
            sha,
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
        let mut conn = self.admin.clone();
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
        let person = person.to_string();
        let mut command = Vec::with_capacity(128);
        resp_command(
            &mut command,
            &[
                b"EVALSHA",
                self.sha.as_bytes(),
                b"2",
                round.stock.as_bytes(),
                round.holders.as_bytes(),
                person.as_bytes(),
            ],
        );
        match conn.lock().await.resp_line(&command).await {
            Ok(Ok(1)) => Outcome::Granted,
            Ok(Ok(0)) => Outcome::SoldOut,
            Ok(Ok(-1)) => Outcome::Limited,
            Ok(Ok(other)) => Outcome::Error(format!("the script answered {other}")),
            Ok(Err(e)) => Outcome::Error(format!("redis: {e}")),
            Err(e) => Outcome::Error(format!("transport: {e}")),
        }
    }

    async fn verify(&self, round: &RedisRound) -> anyhow::Result<StoreCounts> {
        let mut conn = self.admin.clone();
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
#[allow(clippy::unwrap_used)]
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

    /// Needs `YUNQUAN_TEST_REDIS_URL` (a scratch Redis server); `scripts/test.sh` starts one.
    #[tokio::test]
    async fn the_script_grants_once_per_person_and_never_oversells() {
        let Some(url) = super::super::target::testing::server_url(
            "YUNQUAN_TEST_REDIS_URL",
            "redis://127.0.0.1:PORT",
        ) else {
            return;
        };
        let t = RedisTarget::connect(&url, 2).await.unwrap();
        super::super::target::testing::grants_once_per_person_and_never_oversells(&t).await;
    }
}
