//! Bad path parameters on every route that has one, with a valid body where the route
//! takes one: only the parameter is wrong.

use super::gen::{template, Template};
use super::world::fill;
use super::{check, encode, valid};
use crate::route_table::route_table;
use axum::body::Body;
use proptest::prelude::*;

/// A path segment: any bytes, percent-encoded (NUL, '/', invalid UTF-8 included), or
/// long text.
fn segment() -> impl Strategy<Value = String> {
    let encode_all = |bytes: Vec<u8>| bytes.iter().map(|b| format!("%{b:02X}")).collect();
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..48).prop_map(encode_all),
        "\\PC{1,24}".prop_map(move |s: String| encode_all(s.into_bytes())),
        "[a-zA-Z0-9._~-]{65,600}",
        Just("%00".to_owned()),
        Just("%2F".to_owned()),
        Just("..".to_owned()),
    ]
}

#[test]
fn bad_path_parameters_are_refused() {
    check(256, segment(), |world, segment| {
        // The seeded objects' own ids are not bad input.
        prop_assume!(!world.is_seeded(&percent_decode(&segment)));
        for rule in route_table().iter().filter(|r| r.path.contains('{')) {
            let template = template(rule.endpoint, &world.seed);
            let (ct, body) = match &template {
                Template::None => (None, Vec::new()),
                t => encode(t, valid(t)),
            };
            let mut uri = fill(rule.path, &segment);
            if rule.path.ends_with("/settlement") {
                uri.push_str("?date=2025-06-01");
            }
            for &role in rule.access.roles() {
                let what = format!("{} {uri} as {role:?}", rule.method.as_str());
                let reply =
                    world.send(world.request(rule, &uri, role, ct, Body::from(body.clone())));
                reply.check_problem(&what)?;
                world.check_unchanged(&what)?;
            }
        }
        Ok(())
    });
}

/// `text` with every `%XX` decoded (lossily, for comparison only).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
