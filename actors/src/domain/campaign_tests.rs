// A test fails by panicking; unwrap's panic names the line.
#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;
use serde_json::json;

fn spec(tiers: serde_json::Value) -> CampaignSpec {
    serde_json::from_value(json!({
        "name": "Guizhou dining", "funder": "Guizhou Commerce Dept", "budget_fen": 1_000_000_000u64,
        "rounds": [{"start": "2025-06-01T10:00:00", "end": "2025-06-01T22:00:00"}],
        "tiers": tiers,
        "eligibility": {"categories": ["catering", "retail"]},
        "validity": {"kind": "same_day"}
    }))
    .unwrap()
}

fn fields(r: Result<Campaign, Vec<FieldError>>) -> Vec<String> {
    r.err()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.field)
        .collect()
}

#[test]
fn f11_bad_tiers_are_refused_with_field_errors() {
    let cases = [
        (
            json!({"kind": "percent", "percent": 120, "cap_fen": 100, "stock": 1}),
            "tiers[0].percent",
        ),
        (
            json!({"kind": "percent", "percent": 0, "cap_fen": 100, "stock": 1}),
            "tiers[0].percent",
        ),
        (
            json!({"kind": "percent", "percent": 100.001, "cap_fen": 100, "stock": 1}),
            "tiers[0].percent",
        ),
        (
            json!({"kind": "fixed", "discount_fen": 0, "min_spend_fen": 100, "stock": 1}),
            "tiers[0].discount_fen",
        ),
        (
            json!({"kind": "fixed", "discount_fen": 6000, "min_spend_fen": 5000, "stock": 1}),
            "tiers[0].discount_fen",
        ),
        (
            json!({"kind": "percent", "percent": 15, "stock": 1}),
            "tiers[0].cap_fen",
        ),
    ];
    for (tier, field) in cases {
        let got = fields(spec(json!([tier.clone()])).validate("c".into()));
        assert_eq!(got, vec![field.to_string()], "tier {tier}");
    }
    // A negative fixed amount does not even parse as a definition.
    let neg: Result<CampaignSpec, _> = serde_json::from_value(json!({
        "name": "x", "funder": "y", "budget_fen": 1, "rounds": [], "eligibility": {"categories": ["retail"]},
        "validity": {"kind": "same_day"}, "tiers": [{"kind": "fixed", "discount_fen": -50, "stock": 1}]
    }));
    assert!(neg.is_err());
}

#[test]
fn f12_huge_stock_and_budget_are_refused_with_the_documented_maximum() {
    let mut s = spec(
        json!([{"kind": "fixed", "discount_fen": 1000, "min_spend_fen": 5000, "stock": 10_000_000_000u64}]),
    );
    s.budget_fen = 9_223_372_036_854_775_807;
    let errors = s.validate("c".into()).unwrap_err();
    let f: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert!(f.contains(&"tiers[0].stock"), "{errors:?}");
    assert!(f.contains(&"budget_fen"), "{errors:?}");
    assert!(errors
        .iter()
        .any(|e| e.reason.contains(&STOCK_PER_TIER_MAX.to_string())));
}

#[test]
fn budget_that_cannot_cover_stock_times_face_value_is_refused() {
    let mut s =
        spec(json!([{"kind": "fixed", "discount_fen": 1000, "min_spend_fen": 5000, "stock": 100}]));
    s.budget_fen = 99_999;
    assert_eq!(fields(s.validate("c".into())), vec!["budget_fen"]);
    s.budget_fen = 100_000;
    assert!(s.validate("c".into()).is_ok());
}

#[test]
fn utility_is_never_eligible() {
    let mut s = spec(json!([{"kind": "cash", "discount_fen": 500, "stock": 1}]));
    s.eligibility.categories.push(Category::Utility);
    assert_eq!(
        fields(s.validate("c".into())),
        vec!["eligibility.categories"]
    );
}

#[test]
fn f8_threshold_is_inclusive_in_fen() {
    let d = Discount::Fixed {
        off: Fen::new(2000).unwrap(),
        min_spend: Fen::new(10_000).unwrap(),
    };
    let p = d.apply(Fen::new(10_000).unwrap()).unwrap();
    assert_eq!((p.discount.get(), p.payable.get()), (2000, 8000));
    assert_eq!(d.apply(Fen::new(9_999).unwrap()), None);
}

#[test]
fn f9_percent_half_up() {
    let d = Discount::Percent {
        basis_points: 1500,
        cap: Fen::new(100_000).unwrap(),
        min_spend: Fen::ZERO,
    };
    let p = d.apply(Fen::new(3490).unwrap()).unwrap();
    assert_eq!((p.discount.get(), p.payable.get()), (524, 2966));
    assert_eq!(d.apply(Fen::new(35).unwrap()).unwrap().discount.get(), 5);
}

#[test]
fn f10_fixed_larger_than_order_pays_zero_never_negative() {
    let d = Discount::Fixed {
        off: Fen::new(5000).unwrap(),
        min_spend: Fen::ZERO,
    };
    let p = d.apply(Fen::new(3000).unwrap()).unwrap();
    assert_eq!((p.discount.get(), p.payable.get()), (3000, 0));
}

#[test]
fn f14_round_start_is_inclusive() {
    let c = spec(json!([{"kind": "cash", "discount_fen": 500, "stock": 1}]))
        .validate("c".into())
        .unwrap();
    let ms = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    };
    assert_eq!(
        c.round_at(ms("2025-06-01T09:59:59+08:00")),
        RoundState::NotStarted
    );
    assert_eq!(
        c.round_at(ms("2025-06-01T10:00:00+08:00")),
        RoundState::Live(0)
    );
    assert_eq!(
        c.round_at(ms("2025-06-01T22:00:00+08:00")),
        RoundState::Live(0)
    );
    assert_eq!(
        c.round_at(ms("2025-06-01T22:00:00.001+08:00")),
        RoundState::Ended
    );
}

proptest! {
    #[test]
    fn discounts_never_exceed_order_cap_or_face(order in 0u64..10_000_000, off in 1u64..1_000_000, min in 0u64..1_000_000, bp in 1u32..10_000, cap in 1u64..1_000_000) {
        let fixed = Discount::Fixed { off: Fen::new(off).unwrap(), min_spend: Fen::new(min).unwrap() };
        let pct = Discount::Percent { basis_points: bp, cap: Fen::new(cap).unwrap(), min_spend: Fen::new(min).unwrap() };
        for d in [fixed, pct] {
            match d.apply(Fen::new(order).unwrap()) {
                None => prop_assert!(order < min),
                Some(p) => {
                    prop_assert!(order >= min);
                    prop_assert!(p.discount <= d.face_value());
                    prop_assert_eq!(p.discount.get() + p.payable.get(), order);
                }
            }
        }
    }
}
