//! Time windows in the campaign's zone. The server clock decides; a till's clock is
//! never consulted. Dates are inclusive through 23:59:59.999 local.

use super::campaign::FieldError;
use chrono::{Days, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Longest "days after claim" validity.
pub const VALIDITY_DAYS_MAX: u32 = 366;

/// A local wall-clock time as UTC milliseconds; `None` if it does not exist there
/// (a DST gap). In a DST overlap the earlier instant is taken.
pub fn local_to_ms(tz: Tz, local: NaiveDateTime) -> Option<i64> {
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.timestamp_millis())
}

/// The local calendar date of an instant.
pub fn local_date(tz: Tz, ms: i64) -> NaiveDate {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.with_timezone(&tz).date_naive(),
        None => NaiveDate::MIN,
    }
}

/// First millisecond of a local date.
pub fn day_start_ms(tz: Tz, date: NaiveDate) -> i64 {
    // Midnight may not exist in a DST gap; the first existing instant after it is used.
    for minutes in [0u32, 30, 60, 90, 120] {
        let t = NaiveTime::from_hms_opt(minutes / 60, minutes % 60, 0).unwrap_or(NaiveTime::MIN);
        if let Some(ms) = local_to_ms(tz, date.and_time(t)) {
            return ms;
        }
    }
    i64::MIN
}

/// Last millisecond of a local date (23:59:59.999).
pub fn day_end_ms(tz: Tz, date: NaiveDate) -> i64 {
    match date.checked_add_days(Days::new(1)) {
        Some(next) => day_start_ms(tz, next) - 1,
        None => i64::MAX,
    }
}

/// How long a coupon stays redeemable, as submitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ValiditySpec {
    /// Until the end of the local day of the claim.
    SameDay,
    /// From the claim through the end of the `days`-th local day after the claim day.
    DaysAfterClaim {
        /// 1..=366.
        days: u32,
    },
    /// From the start of `from` through the end of `to`, local dates, inclusive.
    Window {
        /// First valid date.
        from: NaiveDate,
        /// Last valid date.
        to: NaiveDate,
    },
}

/// Validated validity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Validity {
    /// See [`ValiditySpec::SameDay`].
    SameDay,
    /// See [`ValiditySpec::DaysAfterClaim`].
    DaysAfterClaim(u32),
    /// See [`ValiditySpec::Window`].
    Window(NaiveDate, NaiveDate),
}

impl ValiditySpec {
    /// Checks ranges.
    pub fn validate(&self) -> Result<Validity, FieldError> {
        match *self {
            ValiditySpec::SameDay => Ok(Validity::SameDay),
            ValiditySpec::DaysAfterClaim { days } if (1..=VALIDITY_DAYS_MAX).contains(&days) => {
                Ok(Validity::DaysAfterClaim(days))
            }
            ValiditySpec::DaysAfterClaim { .. } => Err(FieldError {
                field: "validity.days".into(),
                reason: format!("between 1 and {VALIDITY_DAYS_MAX}"),
            }),
            ValiditySpec::Window { from, to } if from <= to => Ok(Validity::Window(from, to)),
            ValiditySpec::Window { .. } => Err(FieldError {
                field: "validity.to".into(),
                reason: "must not be before validity.from".into(),
            }),
        }
    }
}

impl Validity {
    /// The inclusive window `[from_ms, until_ms]` of a coupon claimed at `claimed_ms`.
    pub fn window(&self, tz: Tz, claimed_ms: i64) -> (i64, i64) {
        let day = local_date(tz, claimed_ms);
        match *self {
            Validity::SameDay => (claimed_ms, day_end_ms(tz, day)),
            Validity::DaysAfterClaim(n) => {
                let last = day
                    .checked_add_days(Days::new(u64::from(n)))
                    .unwrap_or(NaiveDate::MAX);
                (claimed_ms, day_end_ms(tz, last))
            }
            Validity::Window(from, to) => (day_start_ms(tz, from), day_end_ms(tz, to)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn f13_window_inclusive_through_end_of_local_day() {
        let tz: Tz = "Asia/Shanghai".parse().unwrap();
        let v = ValiditySpec::Window {
            from: NaiveDate::from_ymd_opt(2025, 6, 1).unwrap(),
            to: NaiveDate::from_ymd_opt(2025, 6, 30).unwrap(),
        }
        .validate()
        .unwrap();
        let (from, until) = v.window(tz, ms("2025-06-10T12:00:00+08:00"));
        let inside = |t: i64| from <= t && t <= until;
        assert!(inside(ms("2025-06-30T08:30:00+08:00")));
        assert!(inside(ms("2025-06-30T00:30:00Z")));
        assert!(inside(ms("2025-06-30T23:59:59+08:00")));
        assert!(inside(ms("2025-06-30T23:59:59.999+08:00")));
        assert!(!inside(ms("2025-07-01T00:00:00+08:00")));
        // The same instant written in a till's UTC-5 clock is still the same instant.
        assert!(!inside(ms("2025-06-30T11:00:00-05:00")));
        assert!(!inside(ms("2025-05-31T23:59:59.999+08:00")));
    }

    #[test]
    fn same_day_and_days_after() {
        let tz: Tz = "Asia/Shanghai".parse().unwrap();
        let claimed = ms("2025-06-01T20:00:05+08:00");
        assert_eq!(
            Validity::SameDay.window(tz, claimed),
            (claimed, ms("2025-06-01T23:59:59.999+08:00"))
        );
        assert_eq!(
            Validity::DaysAfterClaim(7).window(tz, claimed).1,
            ms("2025-06-08T23:59:59.999+08:00")
        );
    }

    #[test]
    fn bad_specs_are_refused() {
        assert!(ValiditySpec::DaysAfterClaim { days: 0 }.validate().is_err());
        assert!(ValiditySpec::DaysAfterClaim { days: 367 }
            .validate()
            .is_err());
        let d = |day| NaiveDate::from_ymd_opt(2025, 6, day).unwrap();
        assert!(ValiditySpec::Window {
            from: d(2),
            to: d(1)
        }
        .validate()
        .is_err());
    }
}
