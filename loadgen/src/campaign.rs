//! The campaign a run creates: the plan's tiers and limits, one round opening a few
//! seconds from now in the campaign's zone, and a validity that cannot expire under
//! the redemption phase's feet.

use crate::plan::Plan;
use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use yunquan_actors::domain::campaign::{Eligibility, RoundSpec, TierKind, TierSpec};
use yunquan_actors::domain::window::ValiditySpec;
use yunquan_actors::domain::{CampaignSpec, Category, Limits, RefundPolicy};

/// The round opens this long after the campaign is computed, in seconds: enough to
/// create and publish it.
pub const ROUND_LEAD_S: i64 = 3;
/// Closer than this to local midnight, same-day coupons could expire mid-run, in minutes.
pub const MIDNIGHT_MARGIN_MIN: i64 = 30;

/// Why no campaign could be built.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// The scenario's time zone is not an IANA name.
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
    /// The scenario's validity variant is not understood.
    #[error("validity variant {0:?} is not same_day or days_after_claim:N")]
    Validity(String),
    /// The round's local time does not exist (DST gap).
    #[error("local time {0} does not exist in the campaign zone")]
    LocalTime(NaiveDateTime),
}

/// Parses the campaign zone.
pub fn zone(name: &str) -> Result<Tz, CampaignError> {
    name.parse()
        .map_err(|_| CampaignError::TimeZone(name.to_owned()))
}

/// Wall-clock time now in `tz`.
pub fn local_now(tz: Tz, now: DateTime<Utc>) -> NaiveDateTime {
    now.with_timezone(&tz).naive_local()
}

/// A local time in `tz` as a UTC instant.
pub fn to_utc(tz: Tz, local: NaiveDateTime) -> Result<DateTime<Utc>, CampaignError> {
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or(CampaignError::LocalTime(local))
}

/// Round start: `now` + [`ROUND_LEAD_S`], rounded up to a whole second (rounds are
/// written in whole seconds).
pub fn round_start(now_local: NaiveDateTime) -> NaiveDateTime {
    let t = now_local + Duration::seconds(ROUND_LEAD_S);
    let floor = t.with_nanosecond(0).unwrap_or(t);
    if floor == t {
        t
    } else {
        floor + Duration::seconds(1)
    }
}

/// The validity to use: the scenario's, except that a same-day coupon near local
/// midnight becomes "until the end of tomorrow" so the run's own coupons stay valid.
pub fn validity(variant: &str, now_local: NaiveDateTime) -> Result<ValiditySpec, CampaignError> {
    let v = variant.trim();
    if let Some(days) = v.strip_prefix("days_after_claim:") {
        let days = days
            .trim()
            .parse()
            .map_err(|_| CampaignError::Validity(v.to_owned()))?;
        return Ok(ValiditySpec::DaysAfterClaim { days });
    }
    if v != "same_day" {
        return Err(CampaignError::Validity(v.to_owned()));
    }
    let since_midnight = i64::from(now_local.num_seconds_from_midnight());
    let margin_s = MIDNIGHT_MARGIN_MIN * 60;
    if since_midnight < margin_s || since_midnight > 24 * 3600 - margin_s {
        Ok(ValiditySpec::DaysAfterClaim { days: 1 })
    } else {
        Ok(ValiditySpec::SameDay)
    }
}

/// The campaign definition for a plan.
pub fn spec(
    plan: &Plan,
    start: NaiveDateTime,
    duration_s: u64,
    validity: ValiditySpec,
) -> CampaignSpec {
    let mut categories: Vec<Category> = plan.tiers.iter().map(|t| t.category).collect();
    categories.sort();
    categories.dedup();
    let end = start + Duration::seconds(i64::try_from(duration_s).unwrap_or(i64::MAX / 4).max(1));
    CampaignSpec {
        name: format!("{} loadgen {} x{}", plan.scenario, plan.tag, plan.scale),
        funder: "yunquan loadgen".to_owned(),
        timezone: plan.timezone.clone(),
        budget_fen: plan.budget_fen,
        rounds: vec![RoundSpec { start, end }],
        tiers: plan
            .tiers
            .iter()
            .map(|t| TierSpec {
                name: t.name.clone(),
                kind: TierKind::Fixed,
                discount_fen: Some(t.discount_fen),
                percent: None,
                cap_fen: None,
                min_spend_fen: t.min_spend_fen,
                stock: t.stock,
                categories: vec![t.category],
            })
            .collect(),
        limits: Limits {
            per_tier_per_round: plan.limits.per_tier_per_round,
            per_round: Some(plan.limits.per_round),
            per_day: None,
        },
        eligibility: Eligibility {
            categories,
            regions: Vec::new(),
            merchants: Vec::new(),
        },
        validity,
        refund_policy: RefundPolicy::ReturnIfValid,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(h: u32, m: u32, s: u32, ms: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2025, 6, 1)
            .unwrap()
            .and_hms_milli_opt(h, m, s, ms)
            .unwrap()
    }

    #[test]
    fn round_starts_three_seconds_out_on_a_whole_second() {
        assert_eq!(round_start(at(20, 0, 0, 0)), at(20, 0, 3, 0));
        assert_eq!(round_start(at(20, 0, 0, 1)), at(20, 0, 4, 0));
        assert_eq!(
            round_start(at(23, 59, 58, 500)),
            NaiveDate::from_ymd_opt(2025, 6, 2)
                .unwrap()
                .and_hms_opt(0, 0, 2)
                .unwrap()
        );
    }

    #[test]
    fn same_day_moves_to_next_day_near_midnight() {
        assert!(matches!(
            validity("same_day", at(20, 0, 0, 0)),
            Ok(ValiditySpec::SameDay)
        ));
        assert!(matches!(
            validity("same_day", at(23, 45, 0, 0)),
            Ok(ValiditySpec::DaysAfterClaim { days: 1 })
        ));
        assert!(matches!(
            validity("same_day", at(0, 10, 0, 0)),
            Ok(ValiditySpec::DaysAfterClaim { days: 1 })
        ));
        assert!(matches!(
            validity("days_after_claim:7", at(20, 0, 0, 0)),
            Ok(ValiditySpec::DaysAfterClaim { days: 7 })
        ));
        assert!(validity("forever", at(20, 0, 0, 0)).is_err());
    }

    #[test]
    fn shanghai_is_utc_plus_8() {
        let tz = zone("Asia/Shanghai").unwrap();
        let utc = to_utc(tz, at(20, 0, 0, 0)).unwrap();
        assert_eq!(utc.naive_utc(), at(12, 0, 0, 0));
        assert!(zone("Mars/Olympus").is_err());
    }
}
