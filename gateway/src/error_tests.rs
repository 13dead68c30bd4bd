use super::*;
use axum::body::Body;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::Value;
use tower::ServiceExt;

async fn parts(response: Response) -> (StatusCode, axum::http::HeaderMap, Value) {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, headers, serde_json::from_slice(&bytes).unwrap())
}

/// Every refusal the contract names, with its status.
fn every_refusal() -> Vec<(Refusal, u16, &'static str)> {
    vec![
        (Refusal::SoldOut, 409, "sold_out"),
        (
            Refusal::LimitReached("per round".into()),
            409,
            "limit_reached",
        ),
        (Refusal::NotStarted, 409, "not_started"),
        (Refusal::Ended, 409, "ended"),
        (Refusal::Paused, 409, "paused"),
        (Refusal::NotPublished, 409, "not_published"),
        (Refusal::UnknownCampaign, 404, "unknown_campaign"),
        (Refusal::UnknownTier, 404, "unknown_tier"),
        (Refusal::UnknownAccount, 404, "unknown_account"),
        (Refusal::UnknownMerchant, 404, "unknown_merchant"),
        (Refusal::CouponNotFound, 404, "coupon_not_found"),
        (Refusal::RedemptionNotFound, 404, "redemption_not_found"),
        (
            Refusal::BelowThreshold {
                min_spend_fen: 5_000,
            },
            409,
            "below_threshold",
        ),
        (Refusal::Expired, 409, "expired"),
        (Refusal::NotYetValid, 409, "not_yet_valid"),
        (
            Refusal::NotApplicable("utility".into()),
            409,
            "not_applicable",
        ),
        (Refusal::AlreadyRedeemed, 409, "already_redeemed"),
        (Refusal::AlreadyReversed, 409, "already_reversed"),
        (Refusal::IdempotencyConflict, 409, "idempotency_conflict"),
        (Refusal::BudgetExhausted, 409, "budget_exhausted"),
        (Refusal::AlreadyRegistered, 409, "already_registered"),
        (Refusal::InvalidCode, 422, "invalid_code"),
        (Refusal::ForgedCode, 422, "forged_code"),
        (Refusal::WrongStatus("draft".into()), 409, "wrong_status"),
    ]
}

#[tokio::test]
async fn every_refusal_maps_to_its_status_and_reason() {
    for (refusal, status, reason) in every_refusal() {
        assert_eq!(refusal.code(), reason);
        let detail = refusal.to_string();
        let (got, headers, body) =
            parts(AppError::from(EngineError::Refused(refusal)).into_response()).await;
        assert_eq!(got.as_u16(), status, "{reason}");
        assert_eq!(headers[CONTENT_TYPE], PROBLEM_CONTENT_TYPE);
        assert_eq!(body["type"], format!("/problems/{reason}"));
        assert_eq!(body["reason"], reason);
        assert_eq!(body["status"], status);
        assert_eq!(body["detail"], detail);
        assert_ne!(body["title"], "Error", "{reason} has a title");
        assert_eq!(body.get("errors").is_some(), status == 422, "{reason}");
    }
}

#[tokio::test]
async fn invalid_lists_fields() {
    let errors = vec![FieldError {
        field: "tiers[0].stock".into(),
        reason: "must be at least 1".into(),
    }];
    let (status, _, body) =
        parts(AppError::from(EngineError::Invalid(errors)).into_response()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["reason"], "invalid");
    assert_eq!(body["errors"][0]["field"], "tiers[0].stock");
    assert_eq!(body["errors"][0]["reason"], "must be at least 1");
}

#[tokio::test]
async fn overloaded_says_when_to_retry_in_whole_seconds() {
    for (ms, secs) in [(0, "1"), (1, "1"), (1_000, "1"), (1_001, "2"), (2_500, "3")] {
        let e = AppError::from(EngineError::Overloaded { retry_after_ms: ms });
        let (status, headers, body) = parts(e.into_response()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[RETRY_AFTER], secs, "{ms} ms");
        assert_eq!(body["reason"], "overloaded");
    }
}

#[tokio::test]
async fn unavailable_hides_the_cause() {
    let e = AppError::from(EngineError::Unavailable(
        "fsync failed on /secret/path".into(),
    ));
    let (status, headers, body) = parts(e.into_response()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["reason"], "unavailable");
    assert!(headers.get(RETRY_AFTER).is_none());
    assert!(!body.to_string().contains("secret"), "{body}");
}

#[tokio::test]
async fn unauthorized_challenges() {
    let (status, headers, body) = parts(AppError::unauthorized("no token").into_response()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[WWW_AUTHENTICATE], "Bearer");
    assert_eq!(body["type"], "/problems/unauthorized");
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Body1 {
    tier: u32,
}

fn app() -> Router {
    Router::new()
        .route(
            "/",
            post(|AppJson(b): AppJson<Body1>| async move { b.tier.to_string() }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(64))
}

async fn send(content_type: Option<&str>, body: &str) -> (StatusCode, Value) {
    let mut req = Request::builder().method("POST").uri("/");
    if let Some(ct) = content_type {
        req = req.header(CONTENT_TYPE, ct);
    }
    let response = app()
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let (status, headers, body) = parts(response).await;
    assert_eq!(headers[CONTENT_TYPE], PROBLEM_CONTENT_TYPE);
    (status, body)
}

#[tokio::test]
async fn json_rejections_are_problems() {
    let json = Some("application/json");
    let cases = [
        (json, "{not json", 400, "bad_request"),
        (json, r#"{"tier": "zero"}"#, 400, "bad_request"),
        (json, "{}", 400, "bad_request"),
        (
            Some("text/plain"),
            r#"{"tier": 0}"#,
            415,
            "unsupported_media_type",
        ),
        (None, r#"{"tier": 0}"#, 415, "unsupported_media_type"),
        (
            json,
            &format!(r#"{{"tier": 0, "pad": "{}"}}"#, "x".repeat(100)),
            413,
            "payload_too_large",
        ),
    ];
    for (ct, body, status, reason) in cases {
        let (got, problem) = send(ct, body).await;
        assert_eq!(got.as_u16(), status, "{body}");
        assert_eq!(problem["reason"], reason, "{body}");
    }
}
