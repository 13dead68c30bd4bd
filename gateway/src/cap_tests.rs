//! The fixed in-flight cap through the real router, with the adaptive limit off
//! (`--request-latency-ms-p90-target 0`, as the benchmarks run it): a resident import
//! whose body is still arriving holds the only place, so an API request is turned away at
//! once with 503 `overloaded` and a `Retry-After`, and is served once the import is done.
// A test fails by panicking; unwrap's panic names the line.
#![allow(clippy::unwrap_used)]

use crate::auth::{mint, Role, TokenClaims};
use crate::{router, GatewayConfig};
use axum::body::{Body, Bytes};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{Request, StatusCode};
use axum::Router;
use futures::channel::mpsc;
use futures::stream::{self, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tower::ServiceExt;
use yunquan_actors::{Engine, EngineConfig};

/// 2025-06-01T12:00:00+08:00.
const NOW_MS: i64 = 1_748_750_400_000;
/// How long the test waits for the import's handler to read its body before it fails.
const HOLD_WAIT_MS_MAX: u64 = 30_000;

fn engine(dir: &std::path::Path) -> Engine {
    let config = EngineConfig {
        data_dir: dir.to_path_buf(),
        shards: 2,
        mailbox_commands_max: 10_000,
        batch_events_max: 1_000,
        snapshot_every_events: 1_000_000,
        idempotency_keys_max: 1_000,
        queue_wait_ms_max: 0,
    };
    Engine::start(config, Arc::new(|| NOW_MS)).unwrap()
}

fn manager_token(engine: &Engine) -> String {
    let claims = TokenClaims {
        role: Role::Manager,
        sub: "ops".to_owned(),
        mer: None,
        exp: NOW_MS / 1_000 + 3_600,
    };
    mint(&engine.keys().token, &claims)
}

/// An API request behind the cap: status, the problem's reason, Retry-After.
async fn list_campaigns(app: &Router, token: &str) -> (StatusCode, String, Option<String>) {
    let req = Request::get("/v1/campaigns")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let reason = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["reason"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, reason, retry_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_latency_target_the_fixed_cap_still_turns_api_requests_away() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let token = manager_token(&engine);
    let config = GatewayConfig {
        requests_in_flight_max: 1,
        request_latency_ms_p90_target: 0,
        ..GatewayConfig::default()
    };
    let app = router(engine.clone(), &config);
    assert_eq!(list_campaigns(&app, &token).await.0, StatusCode::OK);

    // An import whose body arrives in two parts, the second only when the test says so.
    // Its first part is produced when the handler first reads the body, which it does only
    // once the request holds its place: that is when `reading` is told.
    let reading = Arc::new(Notify::new());
    let (body_tx, body_rx) = mpsc::unbounded::<Result<Bytes, std::io::Error>>();
    let first = {
        let reading = Arc::clone(&reading);
        stream::once(async move {
            reading.notify_one();
            Ok(Bytes::from_static(
                b"{\"account\":\"cap-1\",\"identity_number\":\"520101199001010011\",\"region\":\"guiyang\"}\n",
            ))
        })
    };
    let import = Request::post("/v1/residents/import")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(first.chain(body_rx)))
        .unwrap();
    let importing = tokio::spawn(app.clone().oneshot(import));
    tokio::time::timeout(Duration::from_millis(HOLD_WAIT_MS_MAX), reading.notified())
        .await
        .expect("the import's handler reads its body");

    // The import holds the only place: an API request is turned away at once.
    let shed = list_campaigns(&app, &token).await;
    assert_eq!(shed.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shed.1, "overloaded");
    let retry_after: u64 = shed.2.expect("a Retry-After").parse().unwrap();
    assert!(retry_after >= 1);

    // The rest of the body; the import ends and frees its place.
    body_tx
        .unbounded_send(Ok(Bytes::from_static(
            b"{\"account\":\"cap-2\",\"identity_number\":\"520101199001010022\",\"region\":\"guiyang\"}\n",
        )))
        .unwrap();
    drop(body_tx);
    let imported = importing.await.unwrap().unwrap();
    assert_eq!(imported.status(), StatusCode::OK);
    let body = axum::body::to_bytes(imported.into_body(), usize::MAX)
        .await
        .unwrap();
    let out: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(out["accepted"], 2, "{out}");
    assert_eq!(list_campaigns(&app, &token).await.0, StatusCode::OK);
    engine.shutdown().await;
}
