//! Valid bodies of every route (the templates) and ways to break them that no field
//! of any template accepts, so every generated body is bad by construction.

use super::world::{campaign_spec, Seed, MERCHANT, NEW_MERCHANT, NEW_RESIDENT};
use crate::route_table::Endpoint;
use proptest::prelude::*;
use serde_json::{json, Map, Number, Value};
use yunquan_actors::domain::money::AMOUNT_FEN_MAX;

/// The body a route takes, in a valid form.
#[derive(Debug, Clone)]
pub(super) enum Template {
    /// A JSON body.
    Json(Value),
    /// An NDJSON import; the value is one valid line.
    Ndjson(Value),
    /// No body.
    None,
}

/// The valid body of each endpoint. Only required fields appear and every array has
/// one element, so removing any member or element leaves a body the API refuses.
/// The match is exhaustive: a new endpoint does not compile until it is listed, and
/// the coverage test fails until a route with a body has a template.
pub(super) fn template(endpoint: Endpoint, seed: &Seed) -> Template {
    use Endpoint as E;
    match endpoint {
        E::Healthz | E::Readyz | E::Metrics | E::OpenApi => Template::None,
        E::ListCampaigns | E::GetCampaign | E::CampaignStats | E::CampaignCoupons => Template::None,
        E::PublishCampaign | E::PauseCampaign | E::ResumeCampaign | E::EndCampaign => {
            Template::None
        }
        E::GetMerchant | E::Settlement | E::MyCoupons | E::GetCoupon | E::Reverse => Template::None,
        E::MintTokens => Template::Json(
            json!({"role": "terminal", "subjects": ["m-1-t9"], "merchant": MERCHANT}),
        ),
        E::CreateCampaign => Template::Json(campaign_spec()),
        E::RegisterResident | E::ImportResidents => {
            let line = json!({"account": NEW_RESIDENT, "identity_number": "520101199001019999", "region": "guiyang"});
            if endpoint == E::RegisterResident {
                Template::Json(line)
            } else {
                Template::Ndjson(line)
            }
        }
        E::RegisterMerchant | E::ImportMerchants => {
            let line = json!({"id": NEW_MERCHANT, "name": "tea shop", "category": "catering", "region": "guiyang"});
            if endpoint == E::RegisterMerchant {
                Template::Json(line)
            } else {
                Template::Ndjson(line)
            }
        }
        E::Claim => Template::Json(json!({"tier": 0})),
        E::Quote => Template::Json(json!({"code": seed.available_code, "order_fen": 20_000})),
        E::Redeem => Template::Json(
            json!({"code": seed.available_code, "request_no": "pos-2", "order_fen": 20_000}),
        ),
    }
}

/// Members holding free text, where any non-control Unicode is valid.
const FREE_TEXT: &[&str] = &["name", "funder"];

/// One way to break a valid body at one place.
#[derive(Debug, Clone)]
pub(super) enum Mutation {
    /// Remove the member or array element.
    Remove,
    /// Replace the value by one of another JSON type.
    WrongType(Value),
    /// Replace the value by a number no numeric field accepts.
    BadNumber(Number),
    /// Replace the value by a string no field accepts (a control character or too long).
    BadString(String),
    /// Replace the value by non-ASCII text (refused everywhere but free text, where a
    /// control character is added).
    Unicode(String),
    /// Add a member no type declares to the object at or around the place.
    Unknown(String),
}

/// A mutation and where to apply it (an index into the body's places, modulo their count).
#[derive(Debug, Clone)]
pub(super) struct Edit {
    /// Selects the place.
    pub(super) at: usize,
    /// What to do there.
    pub(super) mutation: Mutation,
}

/// A place in a body: the keys and indices from the root.
#[derive(Debug, Clone)]
enum Step {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

fn places(v: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                prefix.push(Step::Key(k.clone()));
                out.push(prefix.clone());
                places(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                prefix.push(Step::Index(i));
                out.push(prefix.clone());
                places(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn kind(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// A value of another JSON type than `v`, taken from `candidate` if it qualifies.
fn other_type(v: &Value, candidate: &Value) -> Value {
    if kind(v) != kind(candidate) {
        return candidate.clone();
    }
    match v {
        Value::String(_) => json!(true),
        _ => json!("x"),
    }
}

/// `body` with `edit` applied; never equal to `body`.
pub(super) fn apply(body: &Value, edit: &Edit) -> Value {
    let mut all = Vec::new();
    places(body, &mut Vec::new(), &mut all);
    let mut out = body.clone();
    let Some(path) = all.get(edit.at % all.len().max(1)) else {
        return json!(null);
    };
    let (parent_path, last) = path.split_at(path.len() - 1);
    let mut parent = &mut out;
    for step in parent_path {
        parent = match step {
            Step::Key(k) => &mut parent[k.as_str()],
            Step::Index(i) => &mut parent[*i],
        };
    }
    let key = match &last[0] {
        Step::Key(k) => Some(k.clone()),
        Step::Index(_) => None,
    };
    let slot = match &last[0] {
        Step::Key(k) => &mut parent[k.as_str()],
        Step::Index(i) => &mut parent[*i],
    };
    match &edit.mutation {
        Mutation::Remove => {
            match (&mut *parent, &last[0]) {
                (Value::Object(map), Step::Key(k)) => {
                    map.remove(k);
                }
                (Value::Array(items), Step::Index(i)) => {
                    items.remove(*i);
                }
                _ => {}
            }
            return out;
        }
        Mutation::WrongType(v) => *slot = other_type(slot, v),
        Mutation::BadNumber(n) => *slot = Value::Number(n.clone()),
        Mutation::BadString(s) => *slot = Value::String(s.clone()),
        Mutation::Unicode(s) => {
            let free = key.as_deref().is_some_and(|k| FREE_TEXT.contains(&k));
            *slot = Value::String(if free { format!("{s}\u{0}") } else { s.clone() });
        }
        Mutation::Unknown(name) => {
            let target = if slot.is_object() { slot } else { parent };
            match target {
                Value::Object(map) => {
                    map.insert(format!("x_{name}"), json!(1));
                }
                // The parent is an array of scalars: no object around; break the element.
                other => *other = json!({ format!("x_{name}"): 1 }),
            }
        }
    }
    out
}

/// Any JSON value, a few levels deep.
pub(super) fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,10}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Numbers refused by every numeric field of the templates: negative, fractional,
/// above u64, or above the largest amount (and so above every count and index too).
pub(super) fn bad_number() -> impl Strategy<Value = Number> {
    let fixed = [
        json!(u64::MAX),
        json!(AMOUNT_FEN_MAX + 1),
        json!(-1),
        json!(i64::MIN),
        json!(1e308),
        json!(-1e308),
        json!(0.5),
        json!(18_446_744_073_709_551_616.0),
    ];
    prop_oneof![
        prop::sample::select(fixed.to_vec()),
        (i64::MIN..0).prop_map(|n| json!(n)),
        (AMOUNT_FEN_MAX + 1..=u64::MAX).prop_map(|n| json!(n)),
    ]
    .prop_map(|v| match v {
        Value::Number(n) => n,
        _ => Number::from(0u8),
    })
}

/// Strings refused by every string field: a control character (tab aside, which an
/// identity number skips) somewhere in Unicode text, or longer than any field allows.
pub(super) fn bad_string() -> impl Strategy<Value = String> {
    let control = prop::sample::select(vec![
        '\0', '\u{1}', '\n', '\r', '\u{1b}', '\u{7f}', '\u{85}', '\u{9f}',
    ]);
    prop_oneof![
        ("\\PC{0,12}", control, "\\PC{0,12}").prop_map(|(a, c, b)| format!("{a}{c}{b}")),
        "\\PC{201,400}",
        (300usize..6_000).prop_map(|n| "字".repeat(n)),
    ]
}

/// Non-ASCII text without control characters.
pub(super) fn unicode() -> impl Strategy<Value = String> {
    "[\\p{Han}\\p{Cyrillic}\u{1F600}-\u{1F64F}\u{200b}\u{feff}\u{202e}]{1,12}"
}

/// Any edit.
pub(super) fn edit() -> impl Strategy<Value = Edit> {
    let mutation = prop_oneof![
        Just(Mutation::Remove),
        any_json().prop_map(Mutation::WrongType),
        bad_number().prop_map(Mutation::BadNumber),
        bad_string().prop_map(Mutation::BadString),
        unicode().prop_map(Mutation::Unicode),
        "[a-z]{1,8}".prop_map(Mutation::Unknown),
    ];
    (any::<usize>(), mutation).prop_map(|(at, mutation)| Edit { at, mutation })
}
