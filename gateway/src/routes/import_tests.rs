use super::*;
use serde::Deserialize;
use std::sync::Mutex;

#[derive(Debug, Clone, Deserialize)]
struct Rec {
    id: String,
}

const LIMITS: ImportLimits = ImportLimits {
    bytes_max: 1 << 20,
    line_bytes_max: 32,
    chunk_records: 2,
};

fn no_problems(r: &Rec) -> Vec<FieldError> {
    if r.id.is_empty() {
        vec![FieldError {
            field: "id".into(),
            reason: "must not be empty".into(),
        }]
    } else {
        Vec::new()
    }
}

/// Feeds `chunks` as a body; the fake engine refuses id "taken" and records batch sizes.
async fn import(
    chunks: &[&str],
    limits: ImportLimits,
) -> (Result<ImportOutcome, AppError>, Vec<usize>) {
    let batches = Mutex::new(Vec::new());
    let body = futures::stream::iter(
        chunks
            .iter()
            .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c.as_bytes())))
            .collect::<Vec<_>>(),
    );
    let outcome = run(body, limits, no_problems, |batch: Vec<Rec>| {
        batches.lock().unwrap().push(batch.len());
        async move {
            Ok(batch
                .iter()
                .map(|r| {
                    if r.id == "taken" {
                        Err(yunquan_actors::api::Refusal::AlreadyRegistered.into())
                    } else {
                        Ok(())
                    }
                })
                .collect())
        }
    })
    .await;
    (outcome, batches.into_inner().unwrap())
}

fn lines(outcome: &ImportOutcome) -> Vec<(u64, &str)> {
    outcome
        .rejected
        .iter()
        .map(|(l, r, _)| (*l, r.as_str()))
        .collect()
}

#[tokio::test]
async fn lines_split_across_chunks_are_joined_and_numbered() {
    let (outcome, batches) = import(
        &[
            "{\"id\":\"a\"}\n{\"id\"",
            ":\"b\"}\r\n\n{\"id\":\"c\"}\n{\"id\":\"d\"}",
        ],
        LIMITS,
    )
    .await;
    let outcome = outcome.unwrap();
    assert_eq!(outcome.accepted, 4);
    assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
    assert_eq!(batches, vec![2, 2], "chunks of chunk_records");
}

#[tokio::test]
async fn bad_lines_are_reported_with_their_numbers() {
    let long = format!("{{\"id\":\"{}\"}}", "x".repeat(40));
    let body = format!("\u{feff}{{\"id\":\"a\"}}\nnot json\n{{\"id\":\"\"}}\n{long}\n{{\"id\":\"taken\"}}\n{{\"id\":\"e\"}}");
    let (outcome, _) = import(&[&body], LIMITS).await;
    let outcome = outcome.unwrap();
    assert_eq!(outcome.accepted, 2);
    assert_eq!(
        lines(&outcome),
        vec![
            (2, "bad_request"),
            (3, "invalid"),
            (4, "payload_too_large"),
            (5, "already_registered")
        ]
    );
}

#[tokio::test]
async fn an_overlong_last_line_without_newline_is_rejected() {
    let long = format!("{{\"id\":\"{}\"}}", "y".repeat(100));
    let (outcome, _) = import(&["{\"id\":\"a\"}\n", &long[..50], &long[50..]], LIMITS).await;
    let outcome = outcome.unwrap();
    assert_eq!(outcome.accepted, 1);
    assert_eq!(lines(&outcome), vec![(2, "payload_too_large")]);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let limits = ImportLimits {
        bytes_max: 16,
        ..LIMITS
    };
    let (outcome, _) = import(&["{\"id\":\"a\"}\n", "{\"id\":\"b\"}\n"], limits).await;
    assert_eq!(outcome.err().map(|e| e.reason()), Some("payload_too_large"));
}

#[tokio::test]
async fn rejections_listed_are_capped() {
    let garbage = "x\n".repeat(REJECTIONS_LISTED_MAX + 5);
    let (outcome, _) = import(&[&garbage], LIMITS).await;
    let outcome = outcome.unwrap();
    assert_eq!(outcome.rejected.len(), REJECTIONS_LISTED_MAX + 1);
    let last = outcome.rejected.last().unwrap();
    assert_eq!((last.0, last.1.as_str()), (0, "truncated"));
    assert!(last.2.starts_with("5 more"), "{}", last.2);
}

#[test]
fn headers_are_checked_before_reading() {
    let mut h = HeaderMap::new();
    assert!(check_headers(&h, LIMITS).is_ok());
    h.insert(
        CONTENT_TYPE,
        "application/x-ndjson; charset=utf-8".parse().unwrap(),
    );
    assert!(check_headers(&h, LIMITS).is_ok());
    h.insert(CONTENT_TYPE, "multipart/form-data".parse().unwrap());
    assert_eq!(
        check_headers(&h, LIMITS).err().map(|e| e.reason()),
        Some("unsupported_media_type")
    );
    h.remove(CONTENT_TYPE);
    h.insert(
        CONTENT_LENGTH,
        (LIMITS.bytes_max + 1).to_string().parse().unwrap(),
    );
    assert_eq!(
        check_headers(&h, LIMITS).err().map(|e| e.reason()),
        Some("payload_too_large")
    );
}

/// Regression (found by the API fuzzer): an import without a body, or with blank lines
/// only, answered 200 with nothing accepted, though the document requires a body.
#[tokio::test]
async fn an_import_without_a_record_is_a_bad_request() {
    for body in ["", "\n", " \r\n\t\n\n", "\u{feff}\n"] {
        let (outcome, batches) = import(&[body], LIMITS).await;
        assert_eq!(
            outcome.err().map(|e| e.reason()),
            Some("bad_request"),
            "{body:?}"
        );
        assert!(batches.is_empty(), "{body:?}");
    }
    let (outcome, _) = import(&[], LIMITS).await;
    assert_eq!(outcome.err().map(|e| e.reason()), Some("bad_request"));
}
