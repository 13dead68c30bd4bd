use super::*;
use serde_json::Value;

fn doc() -> Value {
    serde_json::from_slice(document_json()).unwrap()
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_route_has_an_operation_with_its_access() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    for rule in route_table() {
        let op = &doc["paths"][rule.path][rule.method.as_str().to_lowercase()];
        assert!(
            op.is_object(),
            "{} {} missing",
            rule.method.as_str(),
            rule.path
        );
        assert_eq!(op[ACCESS_EXTENSION], format!("{:?}", rule.access));
        assert_eq!(op[RULE_EXTENSION], rule.rule());
        let secured = op["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get(BEARER_SCHEME).is_some()));
        assert_eq!(secured, rule.access.needs_token(), "{}", rule.path);
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{}",
            rule.path
        );
        for status in problem_statuses(rule) {
            let r = &responses[&status.to_string()];
            assert!(
                r["content"][PROBLEM_CONTENT_TYPE]["schema"]["$ref"]
                    .as_str()
                    .is_some_and(|s| s.ends_with("/Problem")),
                "{} {status}",
                rule.path
            );
        }
        // Every `{param}` of the pattern is a documented, required path parameter.
        for name in rule
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        {
            let params = op["parameters"].as_array().unwrap();
            assert!(
                params
                    .iter()
                    .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true),
                "{} {name}",
                rule.path
            );
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"][BEARER_SCHEME]["scheme"],
        "bearer"
    );
}

#[test]
fn every_reference_resolves() {
    let doc = doc();
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }
}

/// Tuples are plain fixed-length arrays: no `prefixItems`, and never an `items` list.
#[test]
fn tuples_are_fixed_length_arrays() {
    let doc = doc();
    let rejected =
        &doc["components"]["schemas"]["ImportOutcome"]["properties"]["rejected"]["items"];
    assert_eq!(rejected["type"], "array");
    assert_eq!(
        (rejected["minItems"].as_u64(), rejected["maxItems"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(
        rejected["items"]["anyOf"].as_array().map(Vec::len),
        Some(2),
        "{rejected}"
    );
    fn walk(v: &Value) {
        match v {
            Value::Object(map) => {
                assert!(!map.contains_key("prefixItems"), "{v}");
                assert!(!map.get("items").is_some_and(Value::is_array), "{v}");
                map.values().for_each(walk);
            }
            Value::Array(items) => items.iter().for_each(walk),
            _ => {}
        }
    }
    walk(&doc);
}

/// Every constraint the gateway checks lands on a property that exists.
#[test]
fn checked_constraints_name_existing_properties() {
    let doc = doc();
    for (schema, property, constraints) in serialised::checked_constraints() {
        let target = &doc["components"]["schemas"][schema]["properties"][property];
        for (key, value) in constraints.as_object().unwrap() {
            assert_eq!(&target[key], value, "{schema}.{property}.{key}");
        }
    }
    let subjects = &doc["components"]["schemas"]["MintRequest"]["properties"]["subjects"];
    assert_eq!(subjects["items"]["pattern"], ID_PATTERN);
}
