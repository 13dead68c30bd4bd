//! What keeps the properties honest: every route with a body has a template, every
//! template is a body the API accepts (so a refusal of a broken one is about the
//! breakage), and the fingerprint sees what an accepted body changes.

use super::gen::{template, Template};
use super::world::World;
use super::{check, encode, valid};
use crate::openapi::document_json;
use crate::route_table::{route_table, Endpoint};
use axum::body::Body;
use proptest::prelude::*;
use serde_json::Value;

/// The media type of each route's request body in the OpenAPI document, if any.
fn documented_media(rule: &crate::route_table::RouteRule) -> Option<String> {
    let doc: Value = serde_json::from_slice(document_json()).unwrap();
    let op = &doc["paths"][rule.path][rule.method.as_str().to_lowercase()];
    let content = op["requestBody"]["content"].as_object()?;
    content.keys().next().cloned()
}

#[test]
fn every_route_with_a_body_has_a_template_of_its_media_type() {
    let world = World::start();
    for rule in route_table() {
        let want = documented_media(rule);
        let have = match template(rule.endpoint, &world.seed) {
            Template::Json(_) => Some("application/json".to_owned()),
            Template::Ndjson(_) => Some("application/x-ndjson".to_owned()),
            Template::None => None,
        };
        assert_eq!(
            have,
            want,
            "{} {}: the template and the documented body differ",
            rule.method.as_str(),
            rule.path
        );
    }
}

#[test]
fn every_template_is_accepted_and_what_it_changes_is_seen() {
    for rule in route_table() {
        // A world per route: one route's template must not stand in another's way.
        let world = World::start();
        let t = template(rule.endpoint, &world.seed);
        if let Template::None = t {
            continue;
        }
        let (ct, body) = encode(&t, valid(&t));
        let role = rule.access.roles()[0];
        let reply = world.send(world.request(rule, &world.path(rule), role, ct, Body::from(body)));
        let what = format!("{} {}", rule.method.as_str(), rule.path);
        assert!(
            reply.status.is_success(),
            "{what}: {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
        if let Template::Ndjson(_) = t {
            assert_eq!(reply.json()["accepted"], 1, "{what}");
        }
        // Pricing and minting change nothing by design; every other body does.
        let stateless = matches!(rule.endpoint, Endpoint::Quote | Endpoint::MintTokens);
        assert_eq!(
            world.check_unchanged(&what).is_ok(),
            stateless,
            "{what}: the fingerprint does not tell"
        );
    }
}

/// A date query as typed: any text, or a date of any year, valid or not.
fn date_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,16}",
        (-300_000i64..300_000, 0u32..14, 0u32..33)
            .prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
        (-300_000i64..300_000).prop_map(|y| format!("{y:+}-01-01")),
    ]
}

/// Percent-encodes every byte outside the unreserved set.
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn settlement_dates_are_answered_or_refused_never_failed() {
    check(256, date_text(), |world, date| {
        let rule = route_table()
            .iter()
            .find(|r| r.endpoint == Endpoint::Settlement)
            .unwrap();
        let base = world.path(rule);
        let path = base.split('?').next().unwrap_or_default();
        let uri = format!("{path}?date={}", query_escape(&date));
        for &role in rule.access.roles() {
            let what = format!("GET {uri} as {role:?}");
            let reply = world.send(world.request(rule, &uri, role, None, Body::empty()));
            let parses = date.parse::<chrono::NaiveDate>().is_ok();
            if parses {
                prop_assert!(
                    reply.status.is_success(),
                    "{}: {} {}",
                    what,
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                );
            } else {
                reply.check_problem(&what)?;
            }
            world.check_unchanged(&what)?;
        }
        Ok(())
    });
}
