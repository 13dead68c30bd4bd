//! The yunquan side of the workload, shared by the HTTP and in-process targets: who
//! the persons are and the campaign each round is (one tier, limit one per person).

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use yunquan_actors::api::ResidentInput;
use yunquan_actors::domain::CampaignSpec;

/// The round opened this long before now, in seconds, so the server's clock is
/// inside it however the two clocks differ.
const ROUND_OPENED_AGO_S: i64 = 60;
/// The round lasts this long after now, in seconds: longer than any run.
const ROUND_LASTS_S: i64 = 6 * 3_600;
/// Face value of the coupon, in fen.
const DISCOUNT_FEN: u64 = 1_000;

/// Account id of person `i`.
pub fn account(i: u64) -> String {
    format!("cmp{i:09}")
}

/// Resident record of person `i`: one account per natural person.
pub fn resident(i: u64) -> ResidentInput {
    ResidentInput {
        account: account(i),
        identity_number: format!("CMP{i:012}"),
        region: "compare".into(),
    }
}

/// A campaign with one tier of `stock` units, a round live from a minute ago, and
/// the per-person limit the workload assumes (one coupon per tier per round).
pub fn campaign(stock: u64, now: DateTime<Utc>) -> anyhow::Result<CampaignSpec> {
    let fmt = |t: DateTime<Utc>| t.naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string();
    let spec = serde_json::json!({
        "name": "compare", "funder": "compare", "timezone": "UTC",
        "budget_fen": stock.saturating_mul(DISCOUNT_FEN).saturating_mul(2),
        "rounds": [{"start": fmt(now - Duration::seconds(ROUND_OPENED_AGO_S)),
                    "end": fmt(now + Duration::seconds(ROUND_LASTS_S))}],
        "tiers": [{"name": "10 off", "kind": "fixed", "discount_fen": DISCOUNT_FEN, "stock": stock}],
        "limits": {"per_tier_per_round": 1},
        "eligibility": {"categories": ["catering"]},
        "validity": {"kind": "days_after_claim", "days": 1}
    });
    serde_json::from_value(spec).context("building the campaign spec")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_campaign_is_valid_and_persons_are_distinct() {
        let spec = campaign(1_000, Utc::now()).unwrap();
        assert!(spec.validate("compare".into()).is_ok());
        assert_ne!(resident(1).identity_number, resident(10).identity_number);
        assert_eq!(account(42), "cmp000000042");
    }
}
