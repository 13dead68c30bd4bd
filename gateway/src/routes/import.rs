//! Streaming NDJSON bulk imports: the body is read chunk by chunk, split into lines,
//! each line parsed and checked on its own, and valid records handed to the engine
//! in chunks, so a 256 MiB import never sits in memory. Every refused line is
//! reported with its 1-based line number; one bad line never fails the others.

use crate::error::AppError;
use crate::GatewayConfig;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::HeaderMap;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use std::future::Future;
use std::time::Duration;
use yunquan_actors::api::{EngineError, ImportOutcome};
use yunquan_actors::domain::FieldError;

/// Rejected lines listed at most; past it they are only counted, so a file of
/// garbage cannot make the answer (or the server's memory) grow without bound.
pub(crate) const REJECTIONS_LISTED_MAX: usize = 10_000;
/// Times one chunk is re-sent when a shard mailbox is full, before the import gives up.
const OVERLOAD_RETRIES_MAX: u32 = 50;
/// Longest wait between two such attempts, in milliseconds.
const OVERLOAD_WAIT_MS_MAX: u64 = 2_000;
/// Media types accepted for an import (a missing Content-Type is accepted too).
const ACCEPTED_CONTENT_TYPES: &[&str] = &[
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
    "application/json",
    "text/plain",
];
const BOM: &[u8] = b"\xef\xbb\xbf";

/// Limits of one import.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ImportLimits {
    /// Largest body, in bytes.
    pub(crate) bytes_max: u64,
    /// Longest line, in bytes.
    pub(crate) line_bytes_max: usize,
    /// Records per engine call.
    pub(crate) chunk_records: usize,
}

impl From<&GatewayConfig> for ImportLimits {
    fn from(c: &GatewayConfig) -> Self {
        ImportLimits {
            bytes_max: c.import_bytes_max,
            line_bytes_max: c.import_line_bytes_max.max(1),
            chunk_records: c.import_chunk_records.max(1),
        }
    }
}

/// Refuses, before reading a byte, bodies of the wrong type or a declared size over the limit.
pub(crate) fn check_headers(headers: &HeaderMap, limits: ImportLimits) -> Result<(), AppError> {
    if let Some(value) = headers.get(CONTENT_TYPE) {
        let essence = value
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default();
        let essence = essence.trim().to_ascii_lowercase();
        if !ACCEPTED_CONTENT_TYPES.contains(&essence.as_str()) {
            return Err(AppError::unsupported_media_type(
                "expected Content-Type: application/x-ndjson (one JSON object per line)",
            ));
        }
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.bytes_max) {
        return Err(too_large(limits));
    }
    Ok(())
}

fn too_large(limits: ImportLimits) -> AppError {
    AppError::payload_too_large(format!(
        "an import body is at most {} bytes; split the file",
        limits.bytes_max
    ))
}

/// An import route's whole work: checks the headers, streams the body through [`run`]
/// and answers its outcome.
pub(crate) async fn serve<T, V, R, Fut>(
    headers: &HeaderMap,
    body: axum::body::Body,
    limits: ImportLimits,
    validate: V,
    register: R,
) -> Result<axum::Json<ImportOutcome>, AppError>
where
    T: DeserializeOwned + Clone,
    V: Fn(&T) -> Vec<FieldError>,
    R: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = Result<Vec<Result<(), EngineError>>, EngineError>>,
{
    check_headers(headers, limits)?;
    let outcome = run(body.into_data_stream(), limits, validate, register).await?;
    Ok(axum::Json(outcome))
}

/// The outcome of a registration of one record (`POST /v1/residents`, `/v1/merchants`).
pub(crate) fn single_outcome(outcomes: Vec<Result<(), EngineError>>) -> Result<(), AppError> {
    match outcomes.into_iter().next() {
        Some(outcome) => outcome.map_err(AppError::from),
        None => {
            tracing::error!("engine answered a registration with no outcome");
            Err(AppError::unavailable())
        }
    }
}

/// Reads `body` to its end, registering records through `register`.
pub(crate) async fn run<T, B, E, V, R, Fut>(
    mut body: B,
    limits: ImportLimits,
    validate: V,
    register: R,
) -> Result<ImportOutcome, AppError>
where
    T: DeserializeOwned + Clone,
    B: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
    V: Fn(&T) -> Vec<FieldError>,
    R: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = Result<Vec<Result<(), EngineError>>, EngineError>>,
{
    let mut importer = Importer {
        limits,
        validate,
        register,
        line: Vec::with_capacity(limits.line_bytes_max),
        overlong: false,
        line_no: 0,
        pending: Vec::new(),
        pending_lines: Vec::new(),
        outcome: ImportOutcome {
            accepted: 0,
            rejected: Vec::new(),
        },
        unlisted: 0,
    };
    let mut total: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let what = format!(
                    "reading the body failed after line {}: {e}",
                    importer.line_no
                );
                return Err(AppError::bad_request(importer.progress(&what)));
            }
        };
        total = total.saturating_add(chunk.len() as u64);
        if total > limits.bytes_max {
            let e = too_large(limits);
            let detail = importer.progress(e.detail());
            return Err(e.with_detail(detail));
        }
        importer.feed(&chunk).await?;
    }
    importer.finish().await
}

struct Importer<T, V, R> {
    limits: ImportLimits,
    validate: V,
    register: R,
    /// The current line so far (never longer than the limit).
    line: Vec<u8>,
    /// The current line passed the limit; its bytes are being skipped.
    overlong: bool,
    /// Lines ended so far (1-based number of the last one).
    line_no: u64,
    /// Valid records not yet sent.
    pending: Vec<T>,
    /// Their line numbers.
    pending_lines: Vec<u64>,
    outcome: ImportOutcome,
    /// Rejections past `REJECTIONS_LISTED_MAX`.
    unlisted: u64,
}

impl<T, V, R, Fut> Importer<T, V, R>
where
    T: DeserializeOwned + Clone,
    V: Fn(&T) -> Vec<FieldError>,
    R: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = Result<Vec<Result<(), EngineError>>, EngineError>>,
{
    async fn feed(&mut self, mut bytes: &[u8]) -> Result<(), AppError> {
        while !bytes.is_empty() {
            let (part, ends_line) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], true),
                None => (bytes, false),
            };
            if !self.overlong && self.line.len() + part.len() > self.limits.line_bytes_max {
                self.overlong = true;
                self.line.clear();
            }
            if !self.overlong {
                self.line.extend_from_slice(part);
            }
            bytes = &bytes[part.len() + usize::from(ends_line)..];
            if ends_line {
                self.end_line().await?;
            }
        }
        Ok(())
    }

    async fn end_line(&mut self) -> Result<(), AppError> {
        self.line_no += 1;
        let line_no = self.line_no;
        let parsed = if std::mem::take(&mut self.overlong) {
            Some(Err((
                "payload_too_large",
                format!("line longer than {} bytes", self.limits.line_bytes_max),
            )))
        } else {
            let text = if line_no == 1 {
                self.line.strip_prefix(BOM).unwrap_or(&self.line)
            } else {
                &self.line
            };
            let text = text.trim_ascii();
            (!text.is_empty()).then(|| {
                serde_json::from_slice::<T>(text).map_err(|e| ("bad_request", e.to_string()))
            })
        };
        self.line.clear();
        match parsed {
            None => {}
            Some(Err((reason, detail))) => self.reject(line_no, reason, detail),
            Some(Ok(record)) => {
                let errors = (self.validate)(&record);
                if errors.is_empty() {
                    self.pending.push(record);
                    self.pending_lines.push(line_no);
                } else {
                    self.reject(line_no, "invalid", describe_fields(&errors));
                }
            }
        }
        if self.pending.len() >= self.limits.chunk_records {
            self.flush().await?;
        }
        Ok(())
    }

    fn reject(&mut self, line: u64, reason: &str, detail: String) {
        if self.outcome.rejected.len() < REJECTIONS_LISTED_MAX {
            self.outcome
                .rejected
                .push((line, reason.to_owned(), detail));
        } else {
            self.unlisted += 1;
        }
    }

    async fn flush(&mut self) -> Result<(), AppError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        let lines = std::mem::take(&mut self.pending_lines);
        let first_line = lines.first().copied().unwrap_or(self.line_no);
        let results = match self.send(batch).await {
            Ok(r) => r,
            Err(e) => {
                let detail = self.progress(&format!(
                    "{} (lines from {first_line} on were not registered)",
                    e.detail()
                ));
                return Err(e.with_detail(detail));
            }
        };
        if results.len() != lines.len() {
            tracing::error!(
                sent = lines.len(),
                answered = results.len(),
                "engine answered a bulk registration partially"
            );
        }
        let mut results = results.into_iter();
        // A failing store fails a whole chunk: log its cause once, not once per line.
        let mut store_failure = None;
        for line in lines {
            match results.next() {
                Some(Ok(())) => self.outcome.accepted += 1,
                Some(Err(EngineError::Unavailable(cause))) => {
                    store_failure.get_or_insert(cause);
                    let detail = AppError::unavailable().detail().to_owned();
                    self.reject(line, "unavailable", detail);
                }
                Some(Err(e)) => {
                    let e = AppError::from(e);
                    let detail = if e.errors().is_empty() {
                        e.detail().to_owned()
                    } else {
                        describe_fields(e.errors())
                    };
                    self.reject(line, e.reason(), detail);
                }
                None => self.reject(
                    line,
                    "unavailable",
                    "the engine gave no outcome; re-send this line".to_owned(),
                ),
            }
        }
        if let Some(cause) = store_failure {
            tracing::error!(%cause, "engine unavailable during an import");
        }
        Ok(())
    }

    /// One engine call, re-sent while the shards are merely full.
    async fn send(&self, batch: Vec<T>) -> Result<Vec<Result<(), EngineError>>, AppError> {
        let mut attempts = 0;
        loop {
            match (self.register)(batch.clone()).await {
                Ok(results) => return Ok(results),
                Err(EngineError::Overloaded { retry_after_ms })
                    if attempts < OVERLOAD_RETRIES_MAX =>
                {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(
                        retry_after_ms.clamp(1, OVERLOAD_WAIT_MS_MAX),
                    ))
                    .await;
                }
                Err(e) => return Err(AppError::from(e)),
            }
        }
    }

    fn progress(&self, what: &str) -> String {
        format!(
            "{what}; {} lines were registered before this",
            self.outcome.accepted
        )
    }

    async fn finish(mut self) -> Result<ImportOutcome, AppError> {
        if !self.line.is_empty() || self.overlong {
            self.end_line().await?;
        }
        self.flush().await?;
        if self.outcome.accepted == 0 && self.outcome.rejected.is_empty() && self.unlisted == 0 {
            // Nothing but blank lines (or no body at all): most likely the wrong file or
            // a client that lost its body; a 200 would say the import worked.
            return Err(AppError::bad_request(
                "the body holds no record: send one JSON object per line",
            ));
        }
        if self.unlisted > 0 {
            // Line 0 never names a real line: it marks the summary of the unlisted rest.
            let detail = format!("{} more rejected lines are not listed", self.unlisted);
            self.outcome
                .rejected
                .push((0, "truncated".to_owned(), detail));
        }
        Ok(self.outcome)
    }
}

fn describe_fields(errors: &[FieldError]) -> String {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.reason))
        .collect();
    parts.join("; ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "import_tests.rs"]
mod tests;
