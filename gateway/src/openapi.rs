//! `GET /openapi.json`: the API as an OpenAPI 3.1 document, built from the route
//! table (paths, methods, who may call them) and the API types' `ToSchema` derives
//! (bodies), so it cannot drift from the code: a route without a row has no route,
//! and a type that changes changes its schema.
//!
//! What is written by hand here is only what the types cannot say: which body and
//! replies each endpoint has, its parameters, and which problem statuses it can answer.

use crate::auth::Role;
use crate::error::{Problem, PROBLEM_CONTENT_TYPE};
use crate::route_table::{route_table, Access, Endpoint, RouteClass, RouteRule, Verb};
use crate::routes::{claims, redemptions, residents, tokens};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, Content, ContentBuilder, HeaderBuilder, InfoBuilder, OpenApi,
    OpenApiBuilder, Paths, Ref, RefOr, Required, Response, ResponseBuilder, Tag,
};
use utoipa::ToSchema;
use yunquan_actors::api::{
    CampaignStats, CampaignView, CouponView, ImportOutcome, MerchantInput, MerchantView,
    Redemption, ResidentInput, Reversal, Settlement,
};
use yunquan_actors::domain::CampaignSpec;

/// Name of the bearer security scheme in the document.
pub const BEARER_SCHEME: &str = "bearer";
/// Operation extension naming the row's [`Access`] (e.g. `ManagerOrMerchantTerminal`).
pub const ACCESS_EXTENSION: &str = "x-yunquan-access";
/// Operation extension with the row's rule as the contract states it.
pub const RULE_EXTENSION: &str = "x-yunquan-rule";
/// Tag of the public routes (probes, metrics, this document).
pub const PUBLIC_TAG: &str = "public";

const JSON: &str = "application/json";
const NDJSON: &str = "application/x-ndjson";
const TEXT: &str = "text/plain";

/// An opaque id: 1-64 printable ASCII characters without spaces or '/'.
pub(crate) const ID_PATTERN: &str = "^[!-.0-~]{1,64}$";
/// An `Idempotency-Key`: 1-64 printable ASCII characters (spaces allowed).
const IDEMPOTENCY_KEY_PATTERN: &str = "^[ -~]{1,64}$";

/// The document, built on first use.
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(build)
}

/// The document as JSON, serialised once.
pub fn document_json() -> &'static [u8] {
    static JSON_DOC: OnceLock<Vec<u8>> = OnceLock::new();
    let serialise = || {
        let mut doc = serde_json::to_value(document())?;
        serialised::tuples_without_prefix_items(&mut doc);
        serialised::add_checked_constraints(&mut doc);
        serde_json::to_vec(&doc)
    };
    JSON_DOC.get_or_init(|| match serialise() {
        Ok(bytes) => bytes,
        Err(e) => {
            // Plain data always serialises; if it ever does not, say so, not a 500.
            tracing::error!(error = %e, "the OpenAPI document does not serialise");
            b"{}".to_vec()
        }
    })
}

fn build() -> OpenApi {
    let mut paths = Paths::new();
    for rule in route_table() {
        paths.add_path_operation(rule.path, vec![http_method(rule.method)], operation(rule));
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("yunquan")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Government consumer-coupon platform: campaigns, flash claims, POS \
                     redemption. Amounts are integer fen. Every error is \
                     application/problem+json with a stable `reason` (docs/http-api.md).",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(
            ComponentsBuilder::new()
                .schemas_from_iter(schemas())
                .security_scheme(
                    BEARER_SCHEME,
                    SecurityScheme::Http(
                        HttpBuilder::new()
                            .scheme(HttpAuthScheme::Bearer)
                            .description(Some(
                                "HMAC-signed token minted by `yunquan token` or POST /v1/tokens",
                            ))
                            .build(),
                    ),
                )
                .build(),
        ))
        .tags(Some(
            [PUBLIC_TAG, "manager", "resident", "terminal"]
                .into_iter()
                .map(Tag::new),
        ))
        .build()
}

/// Every named schema the operations refer to, with the schemas they refer to.
fn schemas() -> BTreeMap<String, RefOr<Schema>> {
    let mut all = Vec::new();
    fn add<T: ToSchema>(all: &mut Vec<(String, RefOr<Schema>)>) {
        all.push((T::name().into_owned(), T::schema()));
        T::schemas(all);
    }
    add::<Problem>(&mut all);
    add::<CampaignSpec>(&mut all);
    add::<CampaignView>(&mut all);
    add::<CampaignStats>(&mut all);
    add::<CouponView>(&mut all);
    add::<ResidentInput>(&mut all);
    add::<MerchantInput>(&mut all);
    add::<MerchantView>(&mut all);
    add::<ImportOutcome>(&mut all);
    add::<Redemption>(&mut all);
    add::<Reversal>(&mut all);
    add::<Settlement>(&mut all);
    add::<tokens::MintRequest>(&mut all);
    add::<tokens::MintReply>(&mut all);
    add::<residents::Registered>(&mut all);
    add::<claims::ClaimRequest>(&mut all);
    add::<redemptions::QuoteBody>(&mut all);
    add::<redemptions::RedeemBody>(&mut all);
    all.into_iter().collect()
}

fn http_method(verb: Verb) -> HttpMethod {
    match verb {
        Verb::Get => HttpMethod::Get,
        Verb::Post => HttpMethod::Post,
    }
}

fn reference<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

fn array_of<T: ToSchema>() -> RefOr<Schema> {
    RefOr::T(Schema::Array(
        ArrayBuilder::new().items(reference::<T>()).build(),
    ))
}

fn text() -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new().schema_type(Type::String).build(),
    ))
}

fn string(pattern: Option<&str>, format: Option<KnownFormat>) -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(pattern)
            .format(format.map(SchemaFormat::KnownFormat))
            .build(),
    ))
}

/// A request or reply body.
struct Body {
    /// Its media type.
    media: &'static str,
    /// Its schema.
    schema: RefOr<Schema>,
    /// Said about it, e.g. how NDJSON is laid out.
    description: &'static str,
}

fn json(schema: RefOr<Schema>) -> Option<Body> {
    Some(Body {
        media: JSON,
        schema,
        description: "",
    })
}

/// A success reply.
struct Reply {
    /// Its status.
    status: u16,
    /// What it means.
    description: &'static str,
    /// Its body, if any.
    body: Option<Body>,
}

/// What the table does not say about an endpoint.
struct Shape {
    /// The request body, if it takes one.
    request: Option<Body>,
    /// The success replies.
    replies: Vec<Reply>,
    /// Problem statuses besides those every route of its access and class can answer
    /// (401 and 403 with a token, 503 and 504 under the limits).
    problems: &'static [u16],
    /// Query and header parameters (path parameters come from the pattern).
    params: Vec<Parameter>,
}

fn ok(status: u16, description: &'static str, body: Option<Body>) -> Reply {
    Reply {
        status,
        description,
        body,
    }
}

/// Problem statuses of a JSON body: malformed (400), too large (413), not JSON (415),
/// fields invalid (422).
const BODY: &[u16] = &[400, 413, 415, 422];
/// Problem statuses of a path id: not an id (400), nothing by that id (404).
const PATH: &[u16] = &[400, 404];

fn shape(endpoint: Endpoint) -> Shape {
    use Endpoint as E;
    let none = |replies: Vec<Reply>, problems: &'static [u16]| Shape {
        request: None,
        replies,
        problems,
        params: Vec::new(),
    };
    let with = |request: Option<Body>, replies: Vec<Reply>, problems: &'static [u16]| Shape {
        request,
        replies,
        problems,
        params: Vec::new(),
    };
    let campaign = || json(reference::<CampaignView>());
    let coupon = || json(reference::<CouponView>());
    let lifecycle = |what| none(vec![ok(200, what, campaign())], &[400, 404, 409]);
    match endpoint {
        E::Healthz => none(vec![ok(200, "`ok`", text_body())], &[]),
        E::Readyz => none(vec![ok(200, "`ready`", text_body())], &[503]),
        E::Metrics => none(vec![ok(200, "Prometheus text format", text_body())], &[]),
        E::OpenApi => none(
            vec![ok(
                200,
                "This document",
                json(RefOr::T(Schema::Object(
                    ObjectBuilder::new().schema_type(Type::Object).build(),
                ))),
            )],
            &[],
        ),
        E::MintTokens => with(
            json(reference::<tokens::MintRequest>()),
            vec![ok(
                200,
                "One token per subject, in order",
                json(reference::<tokens::MintReply>()),
            )],
            BODY,
        ),
        E::CreateCampaign => with(
            json(reference::<CampaignSpec>()),
            vec![ok(201, "Created as a draft", campaign())],
            BODY,
        ),
        E::ListCampaigns => none(
            vec![ok(200, "Newest first", json(array_of::<CampaignView>()))],
            &[],
        ),
        E::GetCampaign => none(vec![ok(200, "The campaign", campaign())], PATH),
        E::PublishCampaign => lifecycle("Published"),
        E::PauseCampaign => lifecycle("Paused"),
        E::ResumeCampaign => lifecycle("Published again"),
        E::EndCampaign => lifecycle("Ended"),
        E::CampaignStats => none(
            vec![ok(200, "Live figures", json(reference::<CampaignStats>()))],
            PATH,
        ),
        E::CampaignCoupons => none(
            vec![ok(
                200,
                "Every coupon of the campaign",
                Some(Body {
                    media: NDJSON,
                    schema: array_of::<CouponView>(),
                    description: "One CouponView JSON object per line",
                }),
            )],
            PATH,
        ),
        E::RegisterResident => with(
            json(reference::<ResidentInput>()),
            vec![ok(
                201,
                "Registered",
                json(reference::<residents::Registered>()),
            )],
            &[400, 409, 413, 415, 422],
        ),
        E::ImportResidents => with(
            Some(Body {
                media: NDJSON,
                schema: array_of::<ResidentInput>(),
                description:
                    "One ResidentInput JSON object per line; a bad line is reported, not fatal",
            }),
            vec![ok(
                200,
                "Lines accepted and rejected",
                json(reference::<ImportOutcome>()),
            )],
            &[400, 413, 415],
        ),
        E::RegisterMerchant => with(
            json(reference::<MerchantInput>()),
            vec![ok(201, "Registered", json(reference::<MerchantView>()))],
            &[400, 409, 413, 415, 422],
        ),
        E::ImportMerchants => with(
            Some(Body {
                media: NDJSON,
                schema: array_of::<MerchantInput>(),
                description:
                    "One MerchantInput JSON object per line; a bad line is reported, not fatal",
            }),
            vec![ok(
                200,
                "Lines accepted and rejected",
                json(reference::<ImportOutcome>()),
            )],
            &[400, 413, 415],
        ),
        E::GetMerchant => none(
            vec![ok(200, "The merchant", json(reference::<MerchantView>()))],
            PATH,
        ),
        E::Settlement => Shape {
            params: vec![ParameterBuilder::new()
                .name("date")
                .parameter_in(ParameterIn::Query)
                .required(Required::True)
                .description(Some("Local date in the campaign's zone, YYYY-MM-DD"))
                .schema(Some(string(None, Some(KnownFormat::Date))))
                .build()],
            ..none(
                vec![ok(
                    200,
                    "The day's settlement",
                    json(reference::<Settlement>()),
                )],
                PATH,
            )
        },
        E::Claim => Shape {
            params: vec![ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "A retry with the same key replays the first answer (200, same body)",
                ))
                .schema(Some(string(Some(IDEMPOTENCY_KEY_PATTERN), None)))
                .build()],
            ..with(
                json(reference::<claims::ClaimRequest>()),
                vec![
                    ok(201, "Granted", coupon()),
                    ok(
                        200,
                        "A replay of an earlier claim with this Idempotency-Key",
                        coupon(),
                    ),
                ],
                &[400, 404, 409, 413, 415],
            )
        },
        E::MyCoupons => none(
            vec![ok(
                200,
                "The caller's coupons",
                json(array_of::<CouponView>()),
            )],
            &[],
        ),
        E::GetCoupon => none(vec![ok(200, "The coupon", coupon())], &[400, 404, 422]),
        E::Quote => with(
            json(reference::<redemptions::QuoteBody>()),
            vec![ok(
                200,
                "Priced (redemption_id empty)",
                json(reference::<Redemption>()),
            )],
            &[400, 404, 409, 413, 415, 422],
        ),
        E::Redeem => with(
            json(reference::<redemptions::RedeemBody>()),
            vec![
                ok(201, "Redeemed", json(reference::<Redemption>())),
                ok(
                    200,
                    "A replay of an earlier redemption with this request_no",
                    json(reference::<Redemption>()),
                ),
            ],
            &[400, 404, 409, 413, 415, 422],
        ),
        E::Reverse => none(
            vec![ok(
                200,
                "Reversed (or already reversed)",
                json(reference::<Reversal>()),
            )],
            &[400, 404, 422],
        ),
    }
}

fn text_body() -> Option<Body> {
    Some(Body {
        media: TEXT,
        schema: text(),
        description: "",
    })
}

/// Path parameters of a pattern, described by what they name.
fn path_params(rule: &RouteRule) -> Vec<Parameter> {
    rule.path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let (description, schema) = match (rule.endpoint, name) {
                (Endpoint::GetCoupon, _) => (
                    "Coupon code as printed or scanned (case and separators are forgiven)",
                    string(None, None),
                ),
                (Endpoint::Reverse, _) => (
                    "Redemption id as returned by POST /v1/redemptions",
                    string(None, None),
                ),
                (Endpoint::GetMerchant | Endpoint::Settlement, _) => {
                    ("Merchant id", string(Some(ID_PATTERN), None))
                }
                _ => ("Campaign id", string(Some(ID_PATTERN), None)),
            };
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(description))
                .schema(Some(schema))
                .build()
        })
        .collect()
}

fn problem_description(status: u16) -> &'static str {
    match status {
        400 => "Malformed request: bad JSON, wrong types, missing or unknown fields, bad ids",
        401 => "Missing, expired or forged bearer token",
        403 => "Valid token, but the wrong role or acting for someone else",
        404 => "Nothing by that id (reason names what)",
        409 => "Executed, and the answer is no (reason says why)",
        413 => "Body too large",
        415 => "Wrong Content-Type",
        422 => "Fields to fix (`errors`), or a coupon code that fails its check",
        503 => "Overloaded (Retry-After) or unavailable; nothing was done",
        504 => "Timed out; it may or may not have taken effect",
        _ => "Problem",
    }
}

fn problem_response(status: u16) -> Response {
    let mut response = ResponseBuilder::new()
        .description(problem_description(status))
        .content(
            PROBLEM_CONTENT_TYPE,
            ContentBuilder::new()
                .schema(Some(reference::<Problem>()))
                .build(),
        );
    if status == 401 {
        response = response.header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .schema(text())
                .description(Some("`Bearer`"))
                .build(),
        );
    }
    if status == 503 {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(RefOr::T(Schema::Object(
                    ObjectBuilder::new().schema_type(Type::Integer).build(),
                )))
                .description(Some("Seconds to wait before retrying (`overloaded` only)"))
                .build(),
        );
    }
    response.build()
}

fn content(body: &Body) -> Content {
    ContentBuilder::new()
        .schema(Some(body.schema.clone()))
        .build()
}

/// The problem statuses `rule` can answer: those of its shape, plus 401 and 403 when
/// it needs a token and 503 and 504 when it runs under the in-flight cap and timeout.
pub fn problem_statuses(rule: &RouteRule) -> Vec<u16> {
    let mut statuses: Vec<u16> = shape(rule.endpoint).problems.to_vec();
    if rule.access.needs_token() {
        statuses.extend([401, 403]);
    }
    if rule.class != RouteClass::Ops {
        statuses.extend([503, 504]);
    }
    statuses.sort_unstable();
    statuses.dedup();
    statuses
}

fn tags(access: Access) -> Vec<&'static str> {
    if !access.needs_token() {
        return vec![PUBLIC_TAG];
    }
    access.roles().iter().map(|r| Role::as_str(*r)).collect()
}

fn operation(rule: &RouteRule) -> Operation {
    let shape = shape(rule.endpoint);
    let mut op = OperationBuilder::new()
        .operation_id(Some(format!("{:?}", rule.endpoint)))
        .summary(Some(rule.summary))
        .description(Some(format!("Who may call: {}.", rule.rule())))
        .tags(Some(tags(rule.access)))
        .extensions(Some(
            ExtensionsBuilder::new()
                .add(ACCESS_EXTENSION, format!("{:?}", rule.access))
                .add(RULE_EXTENSION, rule.rule())
                .build(),
        ));
    let params: Vec<Parameter> = path_params(rule).into_iter().chain(shape.params).collect();
    if !params.is_empty() {
        op = op.parameters(Some(params));
    }
    if let Some(body) = &shape.request {
        let description = (!body.description.is_empty()).then_some(body.description);
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .description(description)
                .content(body.media, content(body))
                .build(),
        ));
    }
    for reply in &shape.replies {
        let description = match &reply.body {
            Some(body) if !body.description.is_empty() => {
                format!("{}. {}", reply.description, body.description)
            }
            _ => reply.description.to_owned(),
        };
        let mut response = ResponseBuilder::new().description(description);
        if let Some(body) = &reply.body {
            response = response.content(body.media, content(body));
        }
        op = op.response(reply.status.to_string(), response.build());
    }
    for status in problem_statuses(rule) {
        op = op.response(status.to_string(), problem_response(status));
    }
    if rule.access.needs_token() {
        op = op.security(SecurityRequirement::new(
            BEARER_SCHEME,
            Vec::<String>::new(),
        ));
    }
    op.build()
}

#[path = "openapi_serialised.rs"]
mod serialised;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "openapi_tests.rs"]
mod tests;
