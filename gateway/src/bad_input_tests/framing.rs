//! Valid bodies framed wrong: a media type the route does not read (415), or more
//! bytes than its limit (413), sized or streamed. The body itself is valid, so a check
//! that let it through would change the state.

use super::gen::Template;
use super::world::IMPORT_BYTES_MAX;
use super::{body_routes, check, encode, send_body, valid, JSON};
use crate::route_table::{RouteClass, RouteRule};
use crate::GatewayConfig;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use proptest::prelude::*;

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
