//! yunquan as deployed: `yunquan serve` over HTTP/1.1, each grab a
//! `POST /v1/campaigns/{id}/claims` with the person's own resident token, one
//! connection per client and one request in flight on it. The server answers 201
//! only after the grant's group commit reached the disk.

use super::spec;
use super::target::{ClaimTarget, Outcome, StoreCounts, TargetInfo};
use crate::client::{Api, REQUEST_TIMEOUT_S};
use crate::tally::Tally;
use anyhow::Context;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use std::collections::HashSet;
use std::time::Duration;

/// Body of every claim: the round's only tier.
const CLAIM_BODY: &[u8] = br#"{"tier":0}"#;
/// Connect timeout of the claim connections, in seconds.
const CONNECT_TIMEOUT_S: u64 = 5;
/// Characters of an unexpected reply kept in its error text.
const BODY_SHOWN_CHARS: usize = 120;

/// A running server with the workload's residents registered and their tokens minted.
pub struct HttpTarget {
    /// Manager calls (seeding, campaigns, export).
    api: Api,
    /// Manager token.
    manager: String,
    /// One HTTP client (so one connection) per driver client.
    clients: Vec<reqwest::Client>,
    /// `Bearer <token>` of each person.
    auth: Vec<HeaderValue>,
}

impl std::fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are credentials: never in logs.
        f.debug_struct("HttpTarget")
            .field("base", &self.api.base())
            .field("clients", &self.clients.len())
            .field("persons", &self.auth.len())
            .finish()
    }
}

/// One round: a published campaign.
#[derive(Debug, Clone)]
pub struct HttpRound {
    /// Campaign id.
    campaign: String,
    /// Full URL of its claims route.
    url: String,
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
        let auth = tokens
            .iter()
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
            .collect::<Result<Vec<_>, _>>()
            .context("a minted token is not a valid header value")?;
        let clients = (0..clients.max(1))
            .map(|_| {
                reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .connect_timeout(Duration::from_secs(CONNECT_TIMEOUT_S))
                    .timeout(Duration::from_secs(REQUEST_TIMEOUT_S))
                    .tcp_nodelay(true)
                    .http1_only()
                    .build()
                    .context("building an HTTP client")
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(HttpTarget {
            api,
            manager: manager.to_owned(),
            clients,
            auth,
        })
    }
}

/// Sorts a claim reply.
pub fn outcome(status: StatusCode, body: &[u8]) -> Outcome {
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    match status {
        StatusCode::CREATED => Outcome::Granted,
        StatusCode::CONFLICT if has(br#""reason":"sold_out""#) => Outcome::SoldOut,
        StatusCode::CONFLICT if has(br#""reason":"limit_reached""#) => Outcome::Limited,
        s => Outcome::Error(format!(
            "HTTP {}: {}",
            s.as_u16(),
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
            url: format!("{}/v1/campaigns/{}/claims", self.api.base(), view.id),
            campaign: view.id,
        })
    }

    async fn claim(&self, round: &HttpRound, client: usize, person: u64) -> Outcome {
        let (Some(http), Some(auth)) = (
            self.clients.get(client % self.clients.len().max(1)),
            self.auth.get(person as usize),
        ) else {
            return Outcome::Error(format!("person {person} has no token"));
        };
        let sent = http
            .post(&round.url)
            .header(AUTHORIZATION, auth.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(CLAIM_BODY)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return Outcome::Error(format!("transport: {e}")),
        };
        let status = resp.status();
        // Reading the whole body hands the connection back for the next claim.
        match resp.bytes().await {
            Ok(body) => outcome(status, &body),
            Err(e) => Outcome::Error(format!("reading the reply: {e}")),
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
    fn replies_are_sorted_by_status_and_reason() {
        assert_eq!(outcome(StatusCode::CREATED, b"{}"), Outcome::Granted);
        let sold = br#"{"type":"/problems/sold_out","status":409,"reason":"sold_out"}"#;
        assert_eq!(outcome(StatusCode::CONFLICT, sold), Outcome::SoldOut);
        let limit = br#"{"status":409,"reason":"limit_reached","detail":"x"}"#;
        assert_eq!(outcome(StatusCode::CONFLICT, limit), Outcome::Limited);
        let paused = br#"{"status":409,"reason":"paused"}"#;
        assert!(matches!(outcome(StatusCode::CONFLICT, paused), Outcome::Error(_)));
        assert!(matches!(
            outcome(StatusCode::SERVICE_UNAVAILABLE, b"overloaded"),
            Outcome::Error(e) if e.starts_with("HTTP 503")
        ));
    }
}
