use super::*;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

#[test]
fn rows_are_unique_and_in_declaration_order() {
    let mut seen = HashSet::new();
    for (i, rule) in route_table().iter().enumerate() {
        assert_eq!(
            rule.endpoint as usize, i,
            "{:?} is row {i}: keep the table in the enum's order",
            rule.endpoint
        );
        assert!(
            seen.insert((rule.method, rule.path)),
            "{} {} has two rows",
            rule.method.as_str(),
            rule.path
        );
        assert!(rule.path.starts_with('/'), "{}", rule.path);
        assert!(!rule.rule().is_empty() && !rule.summary.is_empty());
        assert_eq!(
            find_route(&rule.method.method(), rule.path),
            Some(rule),
            "find_route"
        );
    }
}

#[test]
fn only_public_rows_need_no_token_and_only_ops_rows_are_public() {
    for rule in route_table() {
        let public = rule.access == Access::Public;
        assert_eq!(public, rule.access.roles().is_empty(), "{rule:?}");
        assert_eq!(public, rule.rule() == "none", "{rule:?}");
        assert_eq!(public, rule.class == RouteClass::Ops, "{rule:?}");
        assert_eq!(
            rule.path.starts_with("/v1/"),
            !public,
            "every API route is under /v1 and needs a token: {rule:?}"
        );
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A route added with `Router::route` somewhere else would have no row, so no access
/// rule, no OpenAPI operation and no row in the access matrix: only the builder,
/// which walks the table, may add routes.
#[test]
fn routes_are_added_only_from_the_table() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let builder = src.join("routes").join("mod.rs");
    let mut offenders = Vec::new();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if file == builder || name.ends_with("_tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for needle in [".route(", ".route_service(", ".nest(", ".nest_service("] {
            if text.contains(needle) {
                offenders.push(format!("{} uses {needle}", file.display()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "routes outside the table: {offenders:?}"
    );
    let text = std::fs::read_to_string(&builder).unwrap();
    assert_eq!(
        text.matches(".route(").count(),
        1,
        "the builder adds routes in one place, from the table"
    );
}

/// `docs/http-api.md` lists the same routes with the same rules.
#[test]
fn the_contract_lists_every_route_with_its_rule() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/http-api.md"))
            .unwrap();
    let mut documented = HashSet::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | METHOD /path | rule | body -> reply |
        if cells.len() < 4 {
            continue;
        }
        let Some((method, path)) = cells[1].split_once(' ') else {
            continue;
        };
        if method == "GET" || method == "POST" {
            let path = path.split('?').next().unwrap();
            documented.insert((method.to_owned(), path.to_owned(), cells[2].to_owned()));
        }
    }
    let table: HashSet<(String, String, String)> = route_table()
        .iter()
        .map(|r| {
            (
                r.method.as_str().to_owned(),
                r.path.to_owned(),
                r.rule().to_owned(),
            )
        })
        .collect();
    let missing: Vec<_> = table.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&table).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/http-api.md and the route table differ: not documented {missing:?}; not in the table {extra:?}"
    );
}
