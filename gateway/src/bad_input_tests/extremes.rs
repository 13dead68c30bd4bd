//! Valid input at its extremes: a campaign whose every number and date is as large or
//! small as the API allows, then a claim, quotes and a redemption of the largest
//! order, a reversal, and settlements of the first and last representable days. Such
//! input changes state (it is valid), so the property is only that every answer is a
//! success or a 4xx problem, never a 5xx, and that the shards stay up throughout.

use super::check;
use super::world::{World, MERCHANT};
use crate::auth::Role;
use crate::route_table::{route_table, Endpoint, RouteRule};
use axum::body::Body;
use chrono::{NaiveDate, NaiveDateTime};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use yunquan_actors::domain::campaign::STOCK_PER_TIER_MAX;
use yunquan_actors::domain::money::AMOUNT_FEN_MAX;
use Endpoint as E;

fn rule(endpoint: Endpoint) -> &'static RouteRule {
    route_table()
        .iter()
        .find(|r| r.endpoint == endpoint)
        .unwrap()
}

/// The first and last days whose local midnight is an instant in every zone.
fn earliest() -> NaiveDate {
    NaiveDate::MIN + chrono::Days::new(2)
}

fn latest() -> NaiveDate {
    NaiveDate::MAX - chrono::Days::new(2)
}

fn at_midnight(date: NaiveDate) -> Value {
    json!(NaiveDateTime::from(date))
}

/// A live round (from far in the past to far in the future), a tier of extreme
/// amounts whose exposure the largest budget still covers, and an extreme validity.
fn spec() -> impl Strategy<Value = Value> {
    let zone = prop::sample::select(vec![
        "Asia/Shanghai",
        "Pacific/Kiritimati",
        "Pacific/Pago_Pago",
        "America/Sao_Paulo",
        "UTC",
    ]);
    let start = prop_oneof![
        Just(earliest()),
        Just(NaiveDate::from_ymd_opt(2025, 5, 31).unwrap())
    ];
    let end = prop_oneof![
        Just(latest()),
        Just(NaiveDate::from_ymd_opt(2025, 6, 2).unwrap())
    ];
    let amount = prop_oneof![Just(1u64), Just(AMOUNT_FEN_MAX), 1..=AMOUNT_FEN_MAX];
    let tier = prop_oneof![
        (amount.clone(), any::<bool>()).prop_map(|(off, threshold)| {
            let min_spend = if threshold { off } else { 0 };
            json!({"kind": "fixed", "discount_fen": off, "min_spend_fen": min_spend})
        }),
        amount
            .clone()
            .prop_map(|off| json!({"kind": "cash", "discount_fen": off})),
        (1u32..10_000, amount).prop_map(|(bp, cap)| {
            json!({"kind": "percent", "percent": f64::from(bp) / 100.0, "cap_fen": cap})
        }),
    ];
    let validity = prop_oneof![
        Just(json!({"kind": "same_day"})),
        Just(json!({"kind": "days_after_claim", "days": 366})),
        Just(json!({"kind": "window", "from": NaiveDate::MIN, "to": NaiveDate::MAX})),
    ];
    let limit = prop_oneof![Just(1u32), Just(u32::MAX)];
    (zone, start, end, tier, validity, limit).prop_map(
        |(zone, start, end, mut tier, validity, limit)| {
            let face = tier["discount_fen"]
                .as_u64()
                .or(tier["cap_fen"].as_u64())
                .unwrap_or(1);
            tier["stock"] = json!((AMOUNT_FEN_MAX / face).clamp(1, STOCK_PER_TIER_MAX));
            json!({
                "name": "extreme round", "funder": "treasury", "timezone": zone,
                "budget_fen": AMOUNT_FEN_MAX,
                "rounds": [{"start": at_midnight(start), "end": at_midnight(end)}],
                "tiers": [tier],
                "limits": {"per_tier_per_round": limit, "per_round": limit, "per_day": limit},
                "eligibility": {"categories": ["catering"]},
                "validity": validity,
                "refund_policy": "return_if_valid"
            })
        },
    )
}

/// Sends and fails on a 5xx, or on an error that is not a problem; returns the body.
fn call(
    world: &World,
    endpoint: Endpoint,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> Result<Value, TestCaseError> {
    let rule = rule(endpoint);
    let (ct, bytes) = match body {
        Some(v) => (Some("application/json"), v.to_string().into_bytes()),
        None => (None, Vec::new()),
    };
    let reply = world.send(world.request_with(rule, uri, token, ct, Body::from(bytes)));
    let what = format!("{} {uri}", rule.method.as_str());
    if !reply.status.is_success() {
        reply.check_problem(&what)?;
    }
    Ok(reply.json())
}

#[test]
fn valid_input_at_its_extremes_is_answered_without_server_errors() {
    let residents = AtomicU32::new(0);
    check(64, (spec(), 0..=AMOUNT_FEN_MAX), |world, (spec, order)| {
        let manager = world.token(Role::Manager).to_owned();
        let till = world.token(Role::Terminal).to_owned();
        let send = |endpoint, uri: &str, token: &str, body| call(world, endpoint, uri, token, body);
        let n = residents.fetch_add(1, Ordering::SeqCst);
        let account = format!("x-{n}");
        let resident =
            json!({"account": account, "identity_number": format!("X{n:09}"), "region": "guiyang"});
        send(
            E::RegisterResident,
            "/v1/residents",
            &manager,
            Some(resident),
        )?;
        let created = send(
            E::CreateCampaign,
            "/v1/campaigns",
            &manager,
            Some(spec.clone()),
        )?;
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        prop_assert!(!id.is_empty(), "not created: {} from {}", created, spec);
        let campaign = format!("/v1/campaigns/{id}");
        send(
            E::PublishCampaign,
            &format!("{campaign}/publish"),
            &manager,
            None,
        )?;
        let mine = world.mint(Role::Resident, &account, None);
        let claim = Some(json!({"tier": 0}));
        let coupon = send(E::Claim, &format!("{campaign}/claims"), &mine, claim)?;
        send(E::MyCoupons, "/v1/me/coupons", &mine, None)?;
        send(
            E::CampaignStats,
            &format!("{campaign}/stats"),
            &manager,
            None,
        )?;
        send(
            E::CampaignCoupons,
            &format!("{campaign}/coupons"),
            &manager,
            None,
        )?;
        // The round is live and the resident new: the claim is granted and the largest
        // order covers any threshold, or the rest would test nothing.
        let code = coupon["code"].as_str().unwrap_or_default();
        prop_assert!(!code.is_empty(), "claim refused: {} in {}", coupon, spec);
        send(E::GetCoupon, &format!("/v1/coupons/{code}"), &mine, None)?;
        for order_fen in [0, order, AMOUNT_FEN_MAX] {
            let quote = json!({"code": code, "order_fen": order_fen});
            send(E::Quote, "/v1/redemptions/quote", &till, Some(quote))?;
        }
        let redeem =
            json!({"code": code, "request_no": format!("pos-x-{n}"), "order_fen": AMOUNT_FEN_MAX});
        let redemption = send(E::Redeem, "/v1/redemptions", &till, Some(redeem))?;
        let rid = redemption["redemption_id"].as_str().unwrap_or_default();
        prop_assert!(
            !rid.is_empty(),
            "redemption refused: {} in {}",
            redemption,
            spec
        );
        let reversal = send(
            E::Reverse,
            &format!("/v1/redemptions/{rid}/reverse"),
            &till,
            None,
        )?;
        prop_assert!(reversal.get("reason").is_none(), "{} in {}", reversal, spec);
        for date in [NaiveDate::MIN, NaiveDate::MAX] {
            let uri = format!("/v1/merchants/{MERCHANT}/settlement?date={date}");
            send(E::Settlement, &uri.replace('+', "%2B"), &manager, None)?;
        }
        for (endpoint, action) in [
            (E::PauseCampaign, "pause"),
            (E::ResumeCampaign, "resume"),
            (E::EndCampaign, "end"),
        ] {
            send(endpoint, &format!("{campaign}/{action}"), &manager, None)?;
        }
        prop_assert!(world.ready(), "a shard stopped after {}", spec);
        Ok(())
    });
}
