//! The demo at a small scale, as a newcomer runs it: it exits 0, writes report.json
//! with the documented fields, and its audit passed.
// A test fails by panicking; unwrap's panic names the line.
#![allow(clippy::unwrap_used)]

mod common;

use common::BIN;
use std::process::Command;

#[test]
fn demo_at_small_scale_passes_its_audit() {
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["demo", "--scale", "0.002"])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cwd.path().join("report.json")).unwrap()).unwrap();
    for key in [
        "scenario",
        "scale",
        "users",
        "merchants",
        "claims",
        "redemptions",
        "audit",
    ] {
        assert!(report.get(key).is_some(), "report.json lacks {key}");
    }
    for phase in ["claims", "redemptions"] {
        for key in [
            "attempted",
            "granted",
            "sold_out",
            "limited",
            "errors",
            "per_second",
        ] {
            assert!(report[phase].get(key).is_some(), "{phase}.{key} missing");
        }
        for q in ["p50", "p99", "p999", "max"] {
            assert!(
                report[phase]["latency_ms"][q].is_f64(),
                "{phase}.latency_ms.{q}"
            );
        }
    }
    let audit = &report["audit"];
    assert_eq!(audit["ok"], true, "{audit}");
    for key in ["oversold", "stranded", "double_redeemed", "lost_acks"] {
        assert_eq!(audit[key], 0, "{key}");
    }
    assert_eq!(audit["over_budget"], false);
    // The round sold out: stock was claimed to the last unit.
    assert!(report["claims"]["granted"].as_u64().unwrap() > 0);
    assert!(
        report["claims"]["sold_out"].as_u64().unwrap() > 0,
        "demand exceeds stock in the scenario"
    );
}
