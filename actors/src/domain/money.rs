//! Money is integer fen (0.01 yuan). Floats never touch an amount.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The largest amount yunquan accepts anywhere: 10^15 fen (ten trillion yuan).
///
/// Chosen so that any sum of a campaign's amounts (stock_per_tier_max x tiers x amount)
/// fits in u128 arithmetic with room to spare, and so that JSON clients that parse
/// numbers as f64 still read every amount exactly (2^53 > 10^15).
pub const AMOUNT_FEN_MAX: u64 = 1_000_000_000_000_000;

/// An amount of money in fen, in `0..=AMOUNT_FEN_MAX`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(try_from = "u64", into = "u64")]
pub struct Fen(u64);

/// Why a number is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("amount {0} fen is above the maximum of {AMOUNT_FEN_MAX} fen")]
pub struct AmountTooLarge(pub u64);

impl Fen {
    /// Zero fen.
    pub const ZERO: Fen = Fen(0);

    /// Parses a fen count, refusing anything above [`AMOUNT_FEN_MAX`].
    pub fn new(fen: u64) -> Result<Self, AmountTooLarge> {
        if fen > AMOUNT_FEN_MAX {
            Err(AmountTooLarge(fen))
        } else {
            Ok(Fen(fen))
        }
    }

    /// The raw fen count.
    pub fn get(self) -> u64 {
        self.0
    }

    /// `self - other`, never below zero.
    pub fn saturating_sub(self, other: Fen) -> Fen {
        Fen(self.0.saturating_sub(other.0))
    }

    /// The smaller of two amounts.
    pub fn min(self, other: Fen) -> Fen {
        Fen(self.0.min(other.0))
    }
}

impl TryFrom<u64> for Fen {
    type Error = AmountTooLarge;
    fn try_from(v: u64) -> Result<Self, Self::Error> {
        Fen::new(v)
    }
}

impl From<Fen> for u64 {
    fn from(f: Fen) -> u64 {
        f.0
    }
}

impl fmt::Display for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// `amount x basis_points / 10_000`, rounded half-up on the fen, computed exactly in u128.
pub fn percent_of_half_up(amount: Fen, basis_points: u32) -> Fen {
    let exact = u128::from(amount.0) * u128::from(basis_points);
    let rounded = (exact + 5_000) / 10_000;
    // basis_points < 10_000 so rounded <= amount <= AMOUNT_FEN_MAX: always fits.
    debug_assert!(rounded <= u128::from(amount.0));
    Fen(u64::try_from(rounded).unwrap_or(u64::MAX).min(amount.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn display_is_yuan_with_two_decimals() {
        assert_eq!(Fen(524).to_string(), "5.24");
        assert_eq!(Fen(5).to_string(), "0.05");
    }

    #[test]
    fn above_max_is_refused() {
        assert!(Fen::new(AMOUNT_FEN_MAX).is_ok());
        assert_eq!(
            Fen::new(AMOUNT_FEN_MAX + 1),
            Err(AmountTooLarge(AMOUNT_FEN_MAX + 1))
        );
        assert!(Fen::new(i64::MAX as u64).is_err());
    }

    #[test]
    fn half_up_examples() {
        // 34.90 x 15% = 5.235 -> 5.24; 0.35 x 15% = 0.0525 -> 0.05
        assert_eq!(percent_of_half_up(Fen(3490), 1500), Fen(524));
        assert_eq!(percent_of_half_up(Fen(35), 1500), Fen(5));
        // exactly half a fen rounds up: 0.10 x 5% = 0.005 -> 0.01
        assert_eq!(percent_of_half_up(Fen(10), 500), Fen(1));
    }

    proptest! {
        #[test]
        fn percent_never_exceeds_amount_and_is_within_half_fen(amount in 0..=AMOUNT_FEN_MAX, bp in 0u32..10_000) {
            let d = percent_of_half_up(Fen(amount), bp);
            prop_assert!(d.get() <= amount);
            // |d - amount*bp/10000| <= 0.5 fen, checked in integers (x2 to stay exact)
            let exact2 = u128::from(amount) * u128::from(bp) * 2;
            let d2 = u128::from(d.get()) * 20_000;
            prop_assert!(d2.abs_diff(exact2) <= 10_000);
        }

        #[test]
        fn serde_roundtrip_refuses_above_max(v in any::<u64>()) {
            let parsed: Result<Fen, _> = serde_json::from_str(&v.to_string());
            prop_assert_eq!(parsed.is_ok(), v <= AMOUNT_FEN_MAX);
        }
    }
}
