//! yunquan as deployed: `yunquan serve` over HTTP/1.1, each grab a
//! `POST /v1/campaigns/{id}/claims` with the person's own resident token, one
//! keep-alive connection per client and one request in flight on it (see [`super::wire`]
//! for why the claims bypass a general HTTP client). The server answers 201 only after
//! the grant's group commit reached the disk.

use super::spec;
use super::target::{ClaimTarget, Outcome, StoreCounts, TargetInfo};
use super::wire::Conn;
use crate::client::Api;
use crate::tally::Tally;
use anyhow::Context;
use std::collections::HashSet;
use std::net::SocketAddr;
use tokio::sync::Mutex;

/// Body of every claim: the round's only tier.
const CLAIM_BODY: &str = r#"{"tier":0}"#;
/// Characters of an unexpected reply kept in its error text.
const BODY_SHOWN_CHARS: usize = 120;

/// A running server with the workload's residents registered and their tokens minted.
pub struct HttpTarget {
    /// Manager calls (seeding, campaigns, export).
    api: Api,
    /// Manager token.
    manager: String,
    /// One connection per driver client (each is only ever used by its own client,
    /// so the lock is never contended).
    conns: Vec<Mutex<Conn>>,
    /// `host:port` for the Host header.
    host: String,
    /// Resident token of each person.
    tokens: Vec<String>,
}

impl std::fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are credentials: never in logs.
        f.debug_struct("HttpTarget")
            .field("base", &self.api.base())
            .field("clients", &self.conns.len())
            .field("persons", &self.tokens.len())
            .finish()
    }
}

/// One round: a published campaign.
#[derive(Debug, Clone)]
pub struct HttpRound {
    /// Campaign id.
    campaign: String,
    /// Request line and fixed headers up to the token.
    head: String,
}

impl HttpTarget {
    /// Registers `persons` residents on the server at `base` (already registered ones
    /// are fine, so a server can be reused), mints their tokens, and opens `clients`
    /// connections' worth of HTTP clients.
    pub async fn connect(
        base: &str,
        manager: &str,
        persons: u64,
        clients: usize,
    ) -> anyhow::Result<HttpTarget> {
        let api = Api::new(base, 8)?;
        let tally = Tally::new();
        crate::seed::import(
            &api,
            manager,
            "/v1/residents/import",
            persons,
            &tally,
            |i, buf| serde_json::to_writer(buf, &spec::resident(i)).context("encoding a resident"),
        )
        .await
        .context("registering the residents")?;
        let accounts: Vec<String> = (0..persons).map(spec::account).collect();
        let tokens = crate::seed::resident_tokens(&api, manager, &accounts)
            .await
            .context("minting resident tokens")?;
        let url = reqwest::Url::parse(base).with_context(|| format!("server URL {base}"))?;
        anyhow::ensure!(
            url.scheme() == "http",
            "only plain http:// servers are supported, not {base}"
        );
        let host = url
            .host_str()
            .context("the server URL has no host")?
            .to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let addr: SocketAddr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .with_context(|| format!("resolving {host}"))?
            .next()
            .with_context(|| format!("{host} resolves to no address"))?;
        let conns = (0..clients.max(1))
            .map(|_| Mutex::new(Conn::new(addr)))
            .collect();
        Ok(HttpTarget {
            api,
            manager: manager.to_owned(),
            conns,
            host: format!("{host}:{port}"),
            tokens,
        })
    }
}

/// The server's cumulative group-commit and latency counters (Prometheus), to say per
/// run how many durable writes its claims took and how many of its claims were slow by
/// its own clock (a tail the clients see but the server does not lies outside it).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JournalCounters {
    /// Journal writes (each one fsynced).
    pub writes: f64,
    /// Events in them.
    pub events: f64,
    /// Seconds the shards spent in them.
    pub sync_s: f64,
    /// Journal writes that took at most [`SLOW_MS`] ms.
    pub writes_fast: f64,
    /// Claims the gateway timed: the engine call (mailbox, batch, durable write, the
    /// shard's reply), before the answer is serialised; the claim histogram.
    pub claims: f64,
    /// Of those, claims that took at most [`SLOW_MS`] ms.
    pub claims_fast: f64,
    /// Claim requests the HTTP layer timed (the whole handler stack, by route).
    pub requests: f64,
    /// Of those, requests that took at most [`SLOW_MS`] ms.
    pub requests_fast: f64,
}

/// What counts as slow in [`JournalCounters`], in milliseconds: the half-load p99 goal.
/// It must be one of the server's histogram bounds (`yunquan_gateway::metrics`).
pub const SLOW_MS: f64 = super::report::P99_AT_HALF_PEAK_GOAL_MS;

/// [`SLOW_MS`] as the server writes it in its `le` label (seconds).
fn slow_le() -> String {
    format!("le=\"{}\"", SLOW_MS / 1_000.0)
}
/// The claim route's label in the HTTP histogram.
const CLAIM_ROUTE_LABEL: &str = "path=\"/v1/campaigns/{id}/claims\"";

/// Reads [`JournalCounters`] from a `/metrics` text (absent series count as zero).
pub fn parse_journal_counters(text: &str) -> JournalCounters {
    let slow_le = slow_le();
    let mut c = JournalCounters::default();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(series), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let slow_bound = labels.contains(&slow_le);
        let claim_route = labels.contains(CLAIM_ROUTE_LABEL);
        match name {
            "yunquan_journal_sync_seconds_count" => c.writes = v,
            "yunquan_journal_sync_seconds_sum" => c.sync_s = v,
            "yunquan_journal_sync_seconds_bucket" if slow_bound => c.writes_fast = v,
            "yunquan_journal_batch_events_sum" => c.events = v,
            "yunquan_claim_duration_seconds_count" => c.claims = v,
            "yunquan_claim_duration_seconds_bucket" if slow_bound => c.claims_fast = v,
            "yunquan_http_request_duration_seconds_count" if claim_route => c.requests = v,
            "yunquan_http_request_duration_seconds_bucket" if claim_route && slow_bound => {
                c.requests_fast = v;
            }
            _ => {}
        }
    }
    c
}

impl JournalCounters {
    /// What was counted after `before`, field by field.
    pub fn since(self, before: JournalCounters) -> JournalCounters {
        JournalCounters {
            writes: self.writes - before.writes,
            events: self.events - before.events,
            sync_s: self.sync_s - before.sync_s,
            writes_fast: self.writes_fast - before.writes_fast,
            claims: self.claims - before.claims,
            claims_fast: self.claims_fast - before.claims_fast,
            requests: self.requests - before.requests,
            requests_fast: self.requests_fast - before.requests_fast,
        }
    }
}

impl HttpTarget {
    /// The server's journal counters now; `None` if `/metrics` cannot be read.
    pub async fn journal_counters(&self) -> Option<JournalCounters> {
        let resp = self
            .api
            .unauthenticated(reqwest::Method::GET, "/metrics")
            .send()
            .await
            .ok()?;
        let text = resp.text().await.ok()?;
        Some(parse_journal_counters(&text))
    }
}

/// Sorts a claim reply.
pub fn outcome(status: u16, body: &[u8]) -> Outcome {
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    match status {
        201 => Outcome::Granted,
        409 if has(br#""reason":"sold_out""#) => Outcome::SoldOut,
        409 if has(br#""reason":"limit_reached""#) => Outcome::Limited,
        s => Outcome::Error(format!(
            "HTTP {s}: {}",
            String::from_utf8_lossy(body)
                .chars()
                .take(BODY_SHOWN_CHARS)
                .collect::<String>()
        )),
    }
}

impl ClaimTarget for HttpTarget {
    type Round = HttpRound;

    fn info(&self) -> TargetInfo {
        TargetInfo {
            name: "yunquan-http".into(),
            description: format!(
                "yunquan serve at {} over HTTP/1.1, resident token per claim, durable group commit (fsync before 201)",
                self.api.base()
            ),
            durable: true,
        }
    }

    async fn open_round(&self, stock: u64) -> anyhow::Result<HttpRound> {
        let spec = spec::campaign(stock, chrono::Utc::now())?;
        let view = crate::seed::create_campaign(&self.api, &self.manager, &spec)
            .await
            .context("creating the campaign")?;
        crate::seed::publish(&self.api, &self.manager, &view.id)
            .await
            .context("publishing the campaign")?;
        Ok(HttpRound {
            head: format!(
                "POST /v1/campaigns/{}/claims HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nauthorization: Bearer ",
                view.id,
                self.host,
                CLAIM_BODY.len()
            ),
            campaign: view.id,
        })
    }

    async fn claim(&self, round: &HttpRound, client: usize, person: u64) -> Outcome {
        let (Some(conn), Some(token)) = (
            self.conns.get(client % self.conns.len().max(1)),
            self.tokens.get(person as usize),
        ) else {
            return Outcome::Error(format!("person {person} has no token"));
        };
        let mut request =
            String::with_capacity(round.head.len() + token.len() + 4 + CLAIM_BODY.len());
        request.push_str(&round.head);
        request.push_str(token);
        request.push_str("\r\n\r\n");
        request.push_str(CLAIM_BODY);
        match conn.lock().await.http(request.as_bytes()).await {
            Ok(reply) => outcome(reply.status, &reply.body),
            Err(e) => Outcome::Error(format!("transport: {e}")),
        }
    }

    async fn verify(&self, round: &HttpRound) -> anyhow::Result<StoreCounts> {
        let server = crate::audit::fetch(&self.api, &self.manager, &round.campaign)
            .await
            .context("reading the campaign back")?;
        anyhow::ensure!(
            server.export_problems.is_empty(),
            "the coupon export is inconsistent: {:?}",
            server.export_problems
        );
        let routes: HashSet<u64> = server
            .coupons
            .keys()
            .filter_map(|code| crate::audit::code_route(code))
            .collect();
        let remaining = server
            .stats
            .tiers
            .first()
            .map(|t| t.remaining)
            .context("the campaign has no tier in its stats")?;
        Ok(StoreCounts {
            granted: server.coupons.len() as u64,
            distinct_persons: routes.len() as u64,
            stock_left: remaining,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_counters_are_read_from_metrics_text() {
        let text = "# TYPE yunquan_journal_sync_seconds histogram\n\
            yunquan_journal_sync_seconds_bucket{le=\"0.001\"} 3\n\
            yunquan_journal_sync_seconds_bucket{le=\"0.005\"} 98\n\
            yunquan_journal_sync_seconds_sum 0.25\n\
            yunquan_journal_sync_seconds_count 100\n\
            yunquan_journal_batch_events_sum 1200\n\
            yunquan_journal_batch_events_count 100\n\
            yunquan_claim_duration_seconds_bucket{le=\"0.005\"} 1150\n\
            yunquan_claim_duration_seconds_count 1200\n\
            yunquan_http_request_duration_seconds_bucket{method=\"GET\",path=\"/metrics\",le=\"0.005\"} 7\n\
            yunquan_http_request_duration_seconds_count{method=\"GET\",path=\"/metrics\"} 9\n\
            yunquan_http_request_duration_seconds_bucket{method=\"POST\",path=\"/v1/campaigns/{id}/claims\",le=\"0.0025\"} 1000\n\
            yunquan_http_request_duration_seconds_bucket{method=\"POST\",path=\"/v1/campaigns/{id}/claims\",le=\"0.005\"} 1100\n\
            yunquan_http_request_duration_seconds_count{method=\"POST\",path=\"/v1/campaigns/{id}/claims\"} 1201\n";
        let c = parse_journal_counters(text);
        assert_eq!((c.writes, c.events, c.sync_s), (100.0, 1200.0, 0.25));
        assert_eq!(c.writes_fast, 98.0);
        assert_eq!((c.claims, c.claims_fast), (1200.0, 1150.0));
        assert_eq!((c.requests, c.requests_fast), (1201.0, 1100.0));
        assert_eq!(parse_journal_counters(""), JournalCounters::default());
    }

    #[test]
    fn replies_are_sorted_by_status_and_reason() {
        assert_eq!(outcome(201, b"{}"), Outcome::Granted);
        let sold = br#"{"type":"/problems/sold_out","status":409,"reason":"sold_out"}"#;
        assert_eq!(outcome(409, sold), Outcome::SoldOut);
        let limit = br#"{"status":409,"reason":"limit_reached","detail":"x"}"#;
        assert_eq!(outcome(409, limit), Outcome::Limited);
        let paused = br#"{"status":409,"reason":"paused"}"#;
        assert!(matches!(outcome(409, paused), Outcome::Error(_)));
        assert!(matches!(
            outcome(503, b"overloaded"),
            Outcome::Error(e) if e.starts_with("HTTP 503")
        ));
    }
}
