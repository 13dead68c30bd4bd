//! A thin HTTP client for the contract in `docs/http-api.md`: bearer tokens,
//! problem+json refusals, and every reply sorted into what the load generator counts.

use anyhow::Context;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::time::Duration;

/// Longest wait for one ordinary request (claim, redeem, reverse, token), in seconds.
pub const REQUEST_TIMEOUT_S: u64 = 15;
/// Longest wait for a bulk request (import chunk, coupon export), in seconds.
pub const BULK_TIMEOUT_S: u64 = 900;
/// Connect timeout, in seconds.
const CONNECT_TIMEOUT_S: u64 = 5;

/// The body of a problem+json reply (the fields we use).
#[derive(Debug, Clone, Deserialize)]
struct Problem {
    /// Stable machine-readable reason.
    #[serde(default)]
    reason: String,
    /// Human-readable explanation.
    #[serde(default)]
    detail: String,
    /// Field-level errors (422 only).
    #[serde(default)]
    errors: Vec<serde_json::Value>,
}

/// What one request came back with.
#[derive(Debug, Clone)]
pub enum Reply<T> {
    /// 2xx with a body that parsed.
    Done {
        /// HTTP status (201 new, 200 replay or read).
        status: u16,
        /// The parsed body.
        body: T,
    },
    /// 409: executed, and the answer is no.
    Refused {
        /// The problem's reason code (`sold_out`, `limit_reached`, ...).
        reason: String,
    },
    /// 503: nothing was executed; try again later.
    Overloaded {
        /// The problem's reason (`overloaded` or `unavailable`).
        reason: String,
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// Anything else: other statuses, transport failures, timeouts, unparsable bodies.
    /// `unknown_outcome` is true when the request may have been executed.
    Failed {
        /// Short stable label for counting, e.g. `http_404_unknown_account`, `timeout`.
        label: String,
        /// Longer description for logs.
        detail: String,
        /// The server may have executed it (timeouts, connection lost, 504, 5xx).
        unknown_outcome: bool,
    },
}

/// The server at one base URL.
#[derive(Debug, Clone)]
pub struct Api {
    /// Pooled client (one pool for every phase).
    http: reqwest::Client,
    /// Base URL without a trailing slash.
    base: String,
}

impl Api {
    /// A client keeping up to `connections` idle connections to the server.
    pub fn new(base: &str, connections: usize) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .connect_timeout(Duration::from_secs(CONNECT_TIMEOUT_S))
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client")?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` with a bearer token and the ordinary timeout.
    pub fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .timeout(Duration::from_secs(REQUEST_TIMEOUT_S))
    }

    /// A request to `path` without credentials (probes), with the ordinary timeout.
    pub fn unauthenticated(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .timeout(Duration::from_secs(REQUEST_TIMEOUT_S))
    }

    /// Sends and sorts the reply.
    pub async fn send<T: DeserializeOwned>(&self, req: RequestBuilder) -> Reply<T> {
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return transport_failure(&e),
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return transport_failure(&e),
        };
        if status.is_success() {
            return match serde_json::from_slice::<T>(&bytes) {
                Ok(body) => Reply::Done {
                    status: status.as_u16(),
                    body,
                },
                Err(e) => Reply::Failed {
                    label: "bad_body".to_owned(),
                    detail: format!("{status}: body does not parse: {e}"),
                    unknown_outcome: true,
                },
            };
        }
        let problem = serde_json::from_slice::<Problem>(&bytes).unwrap_or(Problem {
            reason: String::new(),
            detail: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
            errors: Vec::new(),
        });
        match status {
            StatusCode::CONFLICT => Reply::Refused {
                reason: problem.reason,
            },
            StatusCode::SERVICE_UNAVAILABLE => Reply::Overloaded {
                reason: problem.reason,
                retry_after,
            },
            s => Reply::Failed {
                label: format!(
                    "http_{}_{}",
                    s.as_u16(),
                    if problem.reason.is_empty() {
                        "none"
                    } else {
                        &problem.reason
                    }
                ),
                detail: if problem.errors.is_empty() {
                    format!("{s}: {} {}", problem.reason, problem.detail)
                } else {
                    format!(
                        "{s}: {} {} {:?}",
                        problem.reason, problem.detail, problem.errors
                    )
                },
                // A 5xx (504 timeout above all) may have been executed; a 4xx was not.
                unknown_outcome: s.is_server_error(),
            },
        }
    }

    /// Sends a manager request that must succeed; any other reply is an error that
    /// names the route and the server's reason.
    pub async fn must<T: DeserializeOwned>(
        &self,
        what: &str,
        req: RequestBuilder,
    ) -> anyhow::Result<T> {
        match self.send::<T>(req).await {
            Reply::Done { body, .. } => Ok(body),
            Reply::Refused { reason } => anyhow::bail!("{what}: refused ({reason})"),
            Reply::Overloaded { reason, .. } => {
                anyhow::bail!("{what}: server unavailable ({reason})")
            }
            Reply::Failed { detail, .. } => anyhow::bail!("{what}: {detail}"),
        }
    }
}

fn transport_failure<T>(e: &reqwest::Error) -> Reply<T> {
    let label = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    };
    // A connect failure never reached the server; anything later might have.
    Reply::Failed {
        label: label.to_owned(),
        detail: format!("{e:#}"),
        unknown_outcome: !e.is_connect(),
    }
}
