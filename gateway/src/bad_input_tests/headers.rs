//! Bad header parameters: a claim with a valid body for a live campaign, by a resident
//! who has not claimed, and a bad `Idempotency-Key`. Only the header is wrong, so a
//! check that let it through would grant the claim, and the fingerprint would move.

use super::check;
use super::gen::{template, Template};
use super::world::World;
use crate::auth::Role;
use crate::route_table::{route_table, Endpoint};
use crate::validate::IDEMPOTENCY_KEY_BYTES_MAX;
use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Request};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Header values that can be sent but are no idempotency key: empty, too long, or
/// holding a tab or a byte outside printable ASCII.
fn bad_keys() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let byte = prop_oneof![0x20u8..=0x7e, 0x80u8..=0xff, Just(b'\t')];
    let one = prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(0x21u8..=0x7e, IDEMPOTENCY_KEY_BYTES_MAX + 1..200),
        (
            prop::collection::vec(byte, 0..40),
            prop_oneof![0x80u8..=0xff, Just(b'\t')],
            0usize..40
        )
            .prop_map(|(mut v, odd, at)| {
                v.insert(at.min(v.len()), odd);
                v
            }),
    ];
    prop_oneof![
        one.prop_map(|k| vec![k]),
        // Two keys, each valid on its own: which one would count is ambiguous.
        Just(vec![b"k-1".to_vec(), b"k-2".to_vec()]),
    ]
}

fn claim_with_keys(world: &World, keys: &[Vec<u8>]) -> Result<Request<Body>, TestCaseError> {
    let rule = route_table()
        .iter()
        .find(|r| r.endpoint == Endpoint::Claim)
        .ok_or_else(|| TestCaseError::fail("no claim route"))?;
    let Template::Json(body) = template(rule.endpoint, &world.seed) else {
        return Err(TestCaseError::fail("the claim takes JSON"));
    };
    let mut req = world.request(
        rule,
        &world.path(rule),
        Role::Resident,
        None,
        Body::from(body.to_string()),
    );
    let headers = req.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for key in keys {
        let value = HeaderValue::from_bytes(key)
            .map_err(|e| TestCaseError::fail(format!("{key:?} is no header value: {e}")))?;
        headers.append("idempotency-key", value);
    }
    Ok(req)
}

#[test]
fn bad_idempotency_keys_are_refused() {
    check(128, bad_keys(), |world, keys| {
        let what = format!("Idempotency-Key {keys:?}");
        let reply = world.send(claim_with_keys(world, &keys)?);
        reply.check_problem(&what)?;
        let body = reply.json();
        prop_assert_eq!(body["reason"].as_str(), Some("bad_request"), "{}", what);
        world.check_unchanged(&what)
    });
}

/// The same request with a good key is granted: the refusals above are about the key.
#[test]
fn a_good_idempotency_key_is_granted() {
    let world = World::start();
    let reply = world.send(claim_with_keys(&world, &[b"k-1".to_vec()]).unwrap());
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(world.check_unchanged("a granted claim").is_err());
}
