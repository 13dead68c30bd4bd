//! Seeding through the API with a manager token: residents and merchants by NDJSON
//! import, bearer tokens for the accounts and terminals that will act, and the
//! campaign itself.

use crate::client::{Api, Reply, BULK_TIMEOUT_S};
use crate::plan::{Plan, PlannedMerchant};
use crate::population::Population;
use crate::tally::Tally;
use anyhow::Context;
use futures::{stream, StreamExt, TryStreamExt};
use reqwest::{Method, RequestBuilder};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;
use yunquan_actors::api::{CampaignStatus, CampaignView, ImportOutcome, MerchantInput};
use yunquan_actors::domain::CampaignSpec;

/// Lines per import request (each request is one NDJSON body).
pub const IMPORT_CHUNK_LINES: u64 = 50_000;
/// Import requests in flight at once: enough to keep the server's group commit busy
/// without queueing hundreds of megabytes.
const IMPORTS_IN_FLIGHT: usize = 4;
/// Subjects per token request (the contract's maximum).
pub const TOKENS_PER_CALL_MAX: u64 = 10_000;
/// Token requests in flight at once for resident tokens.
const TOKEN_CALLS_IN_FLIGHT: usize = 4;
/// Lifetime of minted tokens, in seconds: longer than any run.
const TOKEN_TTL_S: u64 = 12 * 3600;
/// Retries of a manager request the server shed (503) or lost, at most.
const MANAGER_RETRIES_MAX: u32 = 8;
/// Wait before the first retry of a manager request, in milliseconds (doubles each time).
const MANAGER_BACKOFF_MS: u64 = 250;
/// Import refusals shown in an error, at most.
const REJECTIONS_SHOWN_MAX: usize = 5;

/// `POST /v1/tokens` reply.
#[derive(Debug, Deserialize)]
struct Tokens {
    /// One token per subject, in order.
    tokens: Vec<String>,
}

/// Splits `0..n` into consecutive ranges of at most `max` items (`max` 0 is taken as 1).
pub fn batches(n: u64, max: u64) -> Vec<std::ops::Range<u64>> {
    let max = max.max(1);
    (0..n.div_ceil(max))
        .map(|k| k * max..((k + 1) * max).min(n))
        .collect()
}

/// Sends a manager request, retrying 503s and (when `idempotent`) lost replies.
async fn manager<T, F>(api: &Api, what: &str, idempotent: bool, make: F) -> anyhow::Result<T>
where
    T: serde::de::DeserializeOwned,
    F: Fn() -> RequestBuilder,
{
    let mut backoff = Duration::from_millis(MANAGER_BACKOFF_MS);
    for attempt in 0..=MANAGER_RETRIES_MAX {
        let last = attempt == MANAGER_RETRIES_MAX;
        match api.send::<T>(make()).await {
            Reply::Done { body, .. } => return Ok(body),
            Reply::Refused { reason } => anyhow::bail!("{what}: refused ({reason})"),
            Reply::Overloaded { retry_after, .. } if !last => {
                tokio::time::sleep(retry_after.unwrap_or(backoff).max(backoff)).await;
            }
            Reply::Failed {
                unknown_outcome: true,
                ..
            } if idempotent && !last => tokio::time::sleep(backoff).await,
            Reply::Failed { label, .. } if label == "connect" && !last => {
                tokio::time::sleep(backoff).await
            }
            Reply::Overloaded { reason, .. } => {
                anyhow::bail!("{what}: server unavailable ({reason}) after retries")
            }
            Reply::Failed { detail, .. } => anyhow::bail!("{what}: {detail}"),
        }
        backoff *= 2;
    }
    anyhow::bail!("{what}: gave up after {MANAGER_RETRIES_MAX} retries")
}

/// Posts one NDJSON chunk; `already_registered` lines count as accepted, so a rerun
/// with the same seed against the same server goes through.
async fn import_chunk(
    api: &Api,
    token: &str,
    route: &str,
    body: Vec<u8>,
    lines: u64,
) -> anyhow::Result<(u64, Vec<String>)> {
    let outcome: ImportOutcome = manager(api, route, true, || {
        api.request(Method::POST, route, token)
            .timeout(Duration::from_secs(BULK_TIMEOUT_S))
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body.clone())
    })
    .await?;
    let mut refused = Vec::new();
    let mut again = 0u64;
    for (line, reason, detail) in outcome.rejected {
        if reason == "already_registered" {
            again += 1;
        } else {
            refused.push(format!("line {line}: {reason} {detail}"));
        }
    }
    if outcome.accepted + again + refused.len() as u64 != lines {
        refused.push(format!(
            "{lines} lines sent, {} accepted, {} rejected",
            outcome.accepted,
            again + refused.len() as u64
        ));
    }
    Ok((outcome.accepted + again, refused))
}

/// Streams `n` NDJSON lines made by `line` to `route`, a chunk per request.
pub(crate) async fn import<F>(
    api: &Api,
    token: &str,
    route: &str,
    n: u64,
    tally: &Tally,
    line: F,
) -> anyhow::Result<()>
where
    F: Fn(u64, &mut Vec<u8>) -> anyhow::Result<()>,
{
    let line = &line;
    let refused: Vec<String> = stream::iter(batches(n, IMPORT_CHUNK_LINES))
        .map(|range| async move {
            let lines = range.end - range.start;
            let mut body = Vec::with_capacity(lines as usize * 96);
            for i in range {
                line(i, &mut body)?;
                body.push(b'\n');
            }
            let (accepted, refused) = import_chunk(api, token, route, body, lines).await?;
            tally.lines(lines, accepted);
            anyhow::Ok(refused)
        })
        .buffer_unordered(IMPORTS_IN_FLIGHT)
        .try_concat()
        .await?;
    if !refused.is_empty() {
        let shown: Vec<&String> = refused.iter().take(REJECTIONS_SHOWN_MAX).collect();
        anyhow::bail!("{route}: {} lines refused, e.g. {shown:?}", refused.len());
    }
    Ok(())
}

/// Registers every resident of the population.
pub async fn residents(
    api: &Api,
    token: &str,
    population: &Population,
    tally: &Tally,
) -> anyhow::Result<()> {
    import(
        api,
        token,
        "/v1/residents/import",
        population.len(),
        tally,
        |i, buf| serde_json::to_writer(buf, &population.resident(i)).context("encoding a resident"),
    )
    .await
}

/// Registers every merchant with its terminal.
pub async fn merchants(api: &Api, token: &str, plan: &Plan, tally: &Tally) -> anyhow::Result<()> {
    import(
        api,
        token,
        "/v1/merchants/import",
        plan.merchants.len() as u64,
        tally,
        |i, buf| {
            let m = plan.merchants.get(i as usize).context("merchant index")?;
            let input = MerchantInput {
                id: m.id.clone(),
                name: format!("{} store {}", m.category.as_str(), i),
                category: m.category,
                region: plan.region_codes.get(m.region).cloned().unwrap_or_default(),
                terminals: vec![m.terminal.clone()],
            };
            serde_json::to_writer(buf, &input).context("encoding a merchant")
        },
    )
    .await
}

/// Resident tokens for `accounts`, in order, minted in batches.
pub async fn resident_tokens(
    api: &Api,
    token: &str,
    accounts: &[String],
) -> anyhow::Result<Vec<String>> {
    let per_batch: Vec<Vec<String>> = stream::iter(batches(
        accounts.len() as u64,
        TOKENS_PER_CALL_MAX,
    ))
    .map(|range| async move {
        let subjects = accounts
            .get(range.start as usize..range.end as usize)
            .unwrap_or(&[]);
        let body =
            serde_json::json!({"role": "resident", "subjects": subjects, "ttl_s": TOKEN_TTL_S});
        let t: Tokens = manager(api, "POST /v1/tokens", true, || {
            api.request(Method::POST, "/v1/tokens", token).json(&body)
        })
        .await?;
        anyhow::ensure!(
            t.tokens.len() == subjects.len(),
            "asked for {} tokens, got {}",
            subjects.len(),
            t.tokens.len()
        );
        Ok(t.tokens)
    })
    .buffered(TOKEN_CALLS_IN_FLIGHT)
    .try_collect()
    .await?;
    Ok(per_batch.into_iter().flatten().collect())
}

/// A terminal token for each merchant index in `which`. The contract names one
/// merchant per token request, so this is one request per merchant.
pub async fn terminal_tokens(
    api: &Api,
    token: &str,
    merchants: &[PlannedMerchant],
    which: &[usize],
    in_flight: usize,
) -> anyhow::Result<HashMap<usize, String>> {
    stream::iter(which.iter().copied())
        .map(|i| async move {
            let m = merchants.get(i).context("merchant index")?;
            let body = serde_json::json!({"role": "terminal", "subjects": [m.terminal], "merchant": m.id, "ttl_s": TOKEN_TTL_S});
            let t: Tokens =
                manager(api, "POST /v1/tokens", true, || api.request(Method::POST, "/v1/tokens", token).json(&body))
                    .await?;
            let tok = t.tokens.into_iter().next().context("token reply has no token")?;
            Ok((i, tok))
        })
        .buffer_unordered(in_flight.max(1))
        .try_collect()
        .await
}

/// Creates the campaign (not retried on a lost reply: that could create two).
pub async fn create_campaign(
    api: &Api,
    token: &str,
    spec: &CampaignSpec,
) -> anyhow::Result<CampaignView> {
    manager(api, "POST /v1/campaigns", false, || {
        api.request(Method::POST, "/v1/campaigns", token).json(spec)
    })
    .await
}

/// Publishes it. A retried publish whose first attempt did land is refused
/// (`wrong_status`), so on failure the campaign's status decides.
pub async fn publish(api: &Api, token: &str, id: &str) -> anyhow::Result<CampaignView> {
    let path = format!("/v1/campaigns/{id}/publish");
    match manager(api, &path, true, || api.request(Method::POST, &path, token)).await {
        Ok(v) => Ok(v),
        Err(e) => {
            let get = format!("/v1/campaigns/{id}");
            let v: CampaignView =
                manager(api, &get, true, || api.request(Method::GET, &get, token)).await?;
            if v.status == CampaignStatus::Published {
                Ok(v)
            } else {
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_everything_within_the_limit() {
        for n in [0u64, 1, 9_999, 10_000, 10_001, 25_001] {
            let b = batches(n, TOKENS_PER_CALL_MAX);
            assert!(b
                .iter()
                .all(|r| !r.is_empty() && r.end - r.start <= TOKENS_PER_CALL_MAX));
            assert_eq!(b.iter().map(|r| r.end - r.start).sum::<u64>(), n);
            assert!(b.windows(2).all(|w| w[0].end == w[1].start));
        }
        assert_eq!(batches(25_001, TOKENS_PER_CALL_MAX).len(), 3);
        assert_eq!(batches(120_000, IMPORT_CHUNK_LINES).len(), 3);
    }
}
