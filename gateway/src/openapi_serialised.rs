//! Passes over the serialised document for what utoipa does not write: tuples in a
//! form that OpenAPI tooling reads, and the constraints the gateway checks before the
//! engine (`validate.rs` and the handlers) on fields whose types cannot state them.

use super::ID_PATTERN;
use crate::routes::tokens::{SUBJECTS_MAX, TTL_S_MAX};
use serde_json::{json, Value};
use yunquan_actors::domain::campaign::NAME_CHARS_MAX;
use yunquan_actors::domain::identity::{IDENTITY_CHARS_MAX, IDENTITY_CHARS_MIN};
use yunquan_actors::domain::money::AMOUNT_FEN_MAX;

/// A region code: 1-32 of a-z, 0-9 and '_' (`valid_region`).
const REGION_PATTERN: &str = "^[a-z0-9_]{1,32}$";

/// Rewrites each tuple schema (`prefixItems`, as utoipa writes a Rust tuple) as an
/// array of exactly that many elements, each of any of the tuple's types. Common
/// OpenAPI tooling turns `prefixItems` into the draft-04 `items: [...]` form and then
/// refuses it as not 3.1, so a precise tuple makes the document unusable to it; the
/// order of the elements is in each field's description instead.
pub(super) fn tuples_without_prefix_items(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(parts)) = map.remove("prefixItems") {
                let n = parts.len();
                let mut kinds: Vec<Value> = Vec::new();
                for part in parts {
                    if !kinds.contains(&part) {
                        kinds.push(part);
                    }
                }
                let items = match kinds.len() {
                    1 => kinds.remove(0),
                    _ => json!({ "anyOf": kinds }),
                };
                map.insert("items".to_owned(), items);
                map.insert("minItems".to_owned(), n.into());
                map.insert("maxItems".to_owned(), n.into());
            }
            map.values_mut().for_each(tuples_without_prefix_items);
        }
        Value::Array(items) => items.iter_mut().for_each(tuples_without_prefix_items),
        _ => {}
    }
}

/// An identity number: 6-32 letters or digits once the separators that
/// `IdentityNumber::parse` skips are removed.
fn identity_pattern() -> String {
    let sep = r"[ \t._/\u3000-]";
    format!("^{sep}*([0-9A-Za-z]{sep}*){{{IDENTITY_CHARS_MIN},{IDENTITY_CHARS_MAX}}}$")
}

/// (schema, property, constraints merged into the property's schema).
pub(super) fn checked_constraints() -> Vec<(&'static str, &'static str, Value)> {
    let id = || json!({ "pattern": ID_PATTERN });
    let ids = |max: Option<usize>| {
        let mut v = json!({ "items": { "type": "string", "pattern": ID_PATTERN } });
        if let Some(max) = max {
            v["minItems"] = json!(1);
            v["maxItems"] = json!(max);
        }
        v
    };
    let region = || json!({ "pattern": REGION_PATTERN });
    let amount = || json!({ "maximum": AMOUNT_FEN_MAX });
    vec![
        ("ResidentInput", "account", id()),
        (
            "ResidentInput",
            "identity_number",
            json!({ "pattern": identity_pattern() }),
        ),
        ("ResidentInput", "region", region()),
        ("MerchantInput", "id", id()),
        (
            "MerchantInput",
            "name",
            json!({ "minLength": 1, "maxLength": NAME_CHARS_MAX }),
        ),
        ("MerchantInput", "region", region()),
        ("MerchantInput", "terminals", ids(None)),
        ("MintRequest", "subjects", ids(Some(SUBJECTS_MAX))),
        ("MintRequest", "merchant", id()),
        (
            "MintRequest",
            "ttl_s",
            json!({ "minimum": 1, "maximum": TTL_S_MAX }),
        ),
        ("QuoteBody", "order_fen", amount()),
        ("RedeemBody", "order_fen", amount()),
        ("RedeemBody", "request_no", id()),
    ]
}

/// Merges [`checked_constraints`] into the component schemas; a named schema or
/// property that does not exist is left alone (the tests name each one).
pub(super) fn add_checked_constraints(doc: &mut Value) {
    for (schema, property, constraints) in checked_constraints() {
        let pointer = format!("/components/schemas/{schema}/properties/{property}");
        if let (Some(Value::Object(target)), Value::Object(extra)) =
            (doc.pointer_mut(&pointer), constraints)
        {
            target.extend(extra);
        }
    }
}
