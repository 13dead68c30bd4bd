//! Bad input never costs a 5xx, a panic or a change of state: property tests over
//! every route of the route table, each against a real engine on its own data
//! directory. Every route with a body gets generated bad bodies (any JSON, the valid
//! body broken at one place, malformed bytes, the wrong media type, too many bytes)
//! and every route with a path parameter gets bad parameters, each with a token of
//! every role the route admits. Each reply must be a 4xx `application/problem+json`
//! with a `reason`, and the fingerprint of the state must not move.

mod coverage;
mod extremes;
mod gen;
mod headers;
mod world;

use crate::auth::Role;
use crate::route_table::{route_table, RouteClass, RouteRule};
use crate::GatewayConfig;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use gen::{any_json, apply, edit, template, Template};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;
use world::{fill, Reply, World, IMPORT_BYTES_MAX};

const JSON: &str = "application/json";
const NDJSON: &str = "application/x-ndjson";

/// Runs `test` on `cases` generated values against one fresh world (one engine, one
/// data directory), so the fingerprint of every case is compared with the same seed.
fn check<S: Strategy>(
    cases: u32,
    strategy: S,
    test: impl Fn(&World, S::Value) -> Result<(), TestCaseError>,
) {
    let world = World::start();
    let config = Config {
        cases,
        // Minimal failures become named regression tests instead of files.
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, |v| test(&world, v)) {
        panic!("{e}");
    }
}

/// A route that takes a body, its valid body, and the roles that may send it.
struct BodyRoute {
    /// The row.
    rule: &'static RouteRule,
    /// The valid body.
    template: Template,
}

fn body_routes(world: &World) -> Vec<BodyRoute> {
    route_table()
        .iter()
        .map(|rule| BodyRoute {
            rule,
            template: template(rule.endpoint, &world.seed),
        })
        .filter(|r| !matches!(r.template, Template::None))
        .collect()
}

/// Sends `body` to `route` as each role it admits and checks each reply and the state.
fn send_body(
    world: &World,
    route: &BodyRoute,
    content_type: Option<&str>,
    body: &[u8],
    what: &str,
) -> Result<(), TestCaseError> {
    for &role in route.rule.access.roles() {
        let what = format!(
            "{what}: {} {} as {role:?}",
            route.rule.method.as_str(),
            route.rule.path
        );
        let req = world.request(
            route.rule,
            &world.path(route.rule),
            role,
            content_type,
            Body::from(body.to_vec()),
        );
        let reply = world.send(req);
        match route.template {
            Template::Ndjson(_) => check_import_refused(&reply, &what)?,
            _ => reply.check_problem(&what)?,
        }
        world.check_unchanged(&what)?;
    }
    Ok(())
}

/// An import refuses bad lines one by one: a 200 that accepted nothing and names the
/// refused lines is as good as a 4xx problem (the whole body refused).
fn check_import_refused(reply: &Reply, what: &str) -> Result<(), TestCaseError> {
    if reply.status != StatusCode::OK {
        return reply.check_problem(what);
    }
    let outcome = reply.json();
    let refused = outcome["rejected"].as_array().map_or(0, Vec::len);
    prop_assert!(
        outcome["accepted"].as_u64() == Some(0) && refused > 0,
        "{}: {}",
        what,
        outcome
    );
    Ok(())
}

/// Regression: an import without any record answered 200 with nothing done.
#[test]
fn an_import_without_a_record_is_refused() {
    let world = World::start();
    for route in body_routes(&world) {
        if let Template::Ndjson(_) = route.template {
            for body in ["", "\n\n", " \r\n"] {
                let what = format!("{} {body:?}", route.rule.path);
                let req = world.request(
                    route.rule,
                    route.rule.path,
                    Role::Manager,
                    Some(NDJSON),
                    Body::from(body),
                );
                let reply = world.send(req);
                reply.check_problem(&what).unwrap();
                assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{what}");
            }
        }
    }
}

/// The body of a template with `value` in place of its valid content.
fn encode(template: &Template, value: &Value) -> (Option<&'static str>, Vec<u8>) {
    let text = value.to_string().into_bytes();
    match template {
        Template::Ndjson(_) => (Some(NDJSON), text),
        _ => (Some(JSON), text),
    }
}

fn valid(template: &Template) -> &Value {
    match template {
        Template::Json(v) | Template::Ndjson(v) => v,
        Template::None => &Value::Null,
    }
}

#[test]
fn arbitrary_json_bodies_are_refused() {
    check(256, any_json(), |world, value| {
        for route in body_routes(world) {
            let (ct, body) = encode(&route.template, &value);
            send_body(world, &route, ct, &body, &format!("body {value}"))?;
        }
        Ok(())
    });
}

#[test]
fn valid_bodies_broken_at_one_place_are_refused() {
    check(512, edit(), |world, edit| {
        for route in body_routes(world) {
            let good = valid(&route.template);
            let bad = apply(good, &edit);
            prop_assert_ne!(&bad, good, "{:?} left the body valid", edit);
            let (ct, body) = encode(&route.template, &bad);
            send_body(world, &route, ct, &body, &format!("body {bad}"))?;
            if let Template::Ndjson(_) = route.template {
                // Each line is refused on its own, with its line number.
                let req = world.request(
                    route.rule,
                    &world.path(route.rule),
                    Role::Manager,
                    ct,
                    Body::from(body),
                );
                let outcome = world.send(req).json();
                prop_assert_eq!(outcome["rejected"][0][0].as_u64(), Some(1), "{}", outcome);
            }
        }
        Ok(())
    });
}

/// Ways to make bytes that are not JSON out of a valid body.
#[derive(Debug, Clone)]
enum Malformed {
    /// The first n bytes (an object cut short is never JSON).
    Truncate(usize),
    /// A byte that is never UTF-8 at position n.
    NotUtf8(usize),
    /// The body followed by something that is not whitespace.
    Trailing(String),
    /// Any bytes at all.
    Bytes(Vec<u8>),
    /// Arrays or objects nested deeper than any parser should follow.
    Deep(usize, bool),
}

fn malformed() -> impl Strategy<Value = Malformed> {
    prop_oneof![
        any::<usize>().prop_map(Malformed::Truncate),
        any::<usize>().prop_map(Malformed::NotUtf8),
        "[,}\\]x\\\\{\"0-9][^\\n]{0,8}".prop_map(Malformed::Trailing),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Malformed::Bytes),
        (129usize..20_000, any::<bool>()).prop_map(|(n, objects)| Malformed::Deep(n, objects)),
    ]
}

fn break_bytes(good: &[u8], how: &Malformed) -> Vec<u8> {
    match how {
        Malformed::Truncate(n) => good[..n % good.len()].to_vec(),
        Malformed::NotUtf8(n) => {
            let mut out = good.to_vec();
            out.insert(n % (good.len() + 1), 0xff);
            out
        }
        Malformed::Trailing(tail) => [good, tail.as_bytes()].concat(),
        Malformed::Bytes(bytes) => bytes.clone(),
        Malformed::Deep(n, false) => format!("{}{}", "[".repeat(*n), "]".repeat(*n)).into_bytes(),
        Malformed::Deep(n, true) => {
            format!("{}1{}", "{\"tier\":".repeat(*n), "}".repeat(*n)).into_bytes()
        }
    }
}

#[test]
fn malformed_json_is_refused() {
    check(256, malformed(), |world, how| {
        for route in body_routes(world) {
            let (ct, good) = encode(&route.template, valid(&route.template));
            let bad = break_bytes(&good, &how);
            // Random bytes that happen to be a JSON object are another property's case.
            let object = serde_json::from_slice::<Value>(&bad).is_ok_and(|v| v.is_object());
            prop_assume!(!object);
            let what = format!("bytes {:?}", String::from_utf8_lossy(&bad));
            send_body(world, &route, ct, &bad, &what)?;
        }
        Ok(())
    });
}

/// Whether a route reads a body sent with `content_type` (the refusal is then not
/// about the media type).
fn accepts_media(template: &Template, content_type: Option<&str>) -> bool {
    let essence = content_type.map(|ct| {
        ct.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    });
    match (template, essence.as_deref()) {
        (Template::Ndjson(_), None) => true,
        (Template::Ndjson(_), Some(e)) => [
            "application/x-ndjson",
            "application/ndjson",
            "application/jsonl",
            "application/x-jsonlines",
            "application/json",
            "text/plain",
        ]
        .contains(&e),
        (_, Some(e)) => e == JSON || (e.starts_with("application/") && e.ends_with("+json")),
        (_, None) => false,
    }
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    let listed = [
        "text/plain",
        "text/json",
        "application/xml",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
        "application/octet-stream",
        "application/x-ndjson",
        "image/png",
        "application",
        "",
        ";",
        "application/json\u{0}",
    ];
    prop_oneof![
        Just(None),
        prop::sample::select(listed.map(str::to_owned).to_vec()).prop_map(Some),
        "[a-z]{1,8}/[a-z+.-]{1,12}".prop_map(Some),
    ]
}

#[test]
fn valid_bodies_of_the_wrong_media_type_are_refused() {
    check(128, content_type(), |world, ct| {
        for route in body_routes(world) {
            if accepts_media(&route.template, ct.as_deref()) {
                continue;
            }
            let (_, body) = encode(&route.template, valid(&route.template));
            let Some(header) = ct.as_deref().map(|c| c.replace('\0', "")) else {
                send_body(world, &route, None, &body, "no content-type")?;
                continue;
            };
            // NUL cannot be sent in a header; what is left must still be refused.
            if accepts_media(&route.template, Some(&header)) {
                continue;
            }
            send_body(
                world,
                &route,
                Some(&header),
                &body,
                &format!("content-type {header:?}"),
            )?;
            let reply = world.send(world.request(
                route.rule,
                &world.path(route.rule),
                route.rule.access.roles()[0],
                Some(&header),
                Body::from(body),
            ));
            prop_assert_eq!(
                reply.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{}",
                header
            );
        }
        Ok(())
    });
}

/// The largest body `rule` reads, in bytes.
fn body_bytes_max(rule: &RouteRule) -> usize {
    let config = GatewayConfig::default();
    match rule.class {
        RouteClass::Tokens => config.tokens_body_bytes_max,
        RouteClass::Import => usize::try_from(IMPORT_BYTES_MAX).unwrap_or(usize::MAX),
        RouteClass::Api | RouteClass::Ops => config.body_bytes_max,
    }
}

#[test]
fn valid_bodies_over_the_limit_are_refused() {
    let strategy = (1usize..4_096, any::<bool>(), 1usize..8_192);
    check(32, strategy, |world, (extra, streamed, chunk_bytes)| {
        for route in body_routes(world) {
            let (ct, good) = encode(&route.template, valid(&route.template));
            let total = body_bytes_max(route.rule) + extra;
            let pad = vec![b'\n'; total - good.len()];
            // Whitespace is valid JSON padding and blank lines are skipped by imports,
            // so only the size is wrong; an import's valid line comes last so that
            // nothing is registered before the limit is reached.
            let body = match route.template {
                Template::Ndjson(_) => [pad, good].concat(),
                _ => [good, pad].concat(),
            };
            for &role in route.rule.access.roles() {
                let what = format!("{total} bytes to {} as {role:?}", route.rule.path);
                let payload = if streamed {
                    let chunks: Vec<Result<Bytes, std::io::Error>> = body
                        .chunks(chunk_bytes)
                        .map(|c| Ok(Bytes::copy_from_slice(c)))
                        .collect();
                    Body::from_stream(futures::stream::iter(chunks))
                } else {
                    Body::from(body.clone())
                };
                let reply = world.send(world.request(
                    route.rule,
                    &world.path(route.rule),
                    role,
                    ct,
                    payload,
                ));
                reply.check_problem(&what)?;
                prop_assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", what);
                world.check_unchanged(&what)?;
            }
        }
        Ok(())
    });
}

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
