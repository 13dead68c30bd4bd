//! An axum server that answers `POST /v1/campaigns/{id}/claims` with 201 and a small
//! fixed JSON body, doing no work: the baseline `scripts/bench-http.sh` measures
//! `yunquan serve` against. Whatever the HTTP stack itself costs (tokio, hyper, axum
//! routing, reading the request) shows up here too, so the ratio yunquan/empty is what
//! auth, validation, the engine and the durable commit add on top.
//!
//! It deliberately mirrors `yunquan serve`: `#[tokio::main]` (multi-thread runtime,
//! one worker per core), `axum::serve` over a `tokio::net::TcpListener`, the same route
//! pattern, the path parameter extracted and the request body read in full (as the
//! real handler's JSON extractor does), and the `listening on http://ADDR` line on
//! stdout that scripts parse to find the port.
//!
//! Usage: `cargo run --release -p yunquan-gateway --example empty_handler -- 127.0.0.1:0`

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use std::io::Write;
use std::process::ExitCode;

/// Roughly the size and shape of a real claim's `CouponView`, so both servers write
/// responses of similar length.
const COUPON: &str = r#"{"code":"EMPTY-HANDLER-0000000000","campaign":"c","round":0,"tier":0,"status":"available","claimed_at":"2025-06-01T12:00:00Z","valid_from":"2025-06-01T12:00:00Z","valid_until":"2025-06-02T12:00:00Z","face_value_fen":1000,"min_spend_fen":0,"redemption_id":null,"times_redeemed":0}"#;

/// Takes the same extractors' worth of input as a claim (path id, whole body) and
/// ignores it.
async fn claim(Path(_campaign): Path<String>, _body: Bytes) -> impl IntoResponse {
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        COUPON,
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: binding {addr}: {e}");
            return ExitCode::from(2);
        }
    };
    let bound = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: reading the bound address: {e}");
            return ExitCode::from(2);
        }
    };
    let app = Router::new().route("/v1/campaigns/{id}/claims", post(claim));
    {
        // Same line as `yunquan serve`, flushed at once: the script waits for it.
        let mut stdout = std::io::stdout().lock();
        if writeln!(stdout, "listening on http://{bound}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return ExitCode::from(2);
        }
    }
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: serving HTTP: {e}");
            ExitCode::from(2)
        }
    }
}
