//! What residents spend when they use a coupon: just above the threshold, with a
//! long tail, and a lump right at the threshold (people top up to qualify).

use crate::scenario::RedemptionShape;
use rand::Rng;
use rand_distr::{Distribution, LogNormal};

/// Bunched baskets land within this fraction above the threshold.
pub const BUNCHING_BAND: f64 = 0.05;

/// The basket model: order = min_spend x (1 + X).
#[derive(Debug, Clone, Copy)]
pub struct BasketModel {
    /// X ~ log-normal with this median ...
    x: LogNormal<f64>,
    /// ... capped here.
    cap: f64,
    /// Share of baskets within [`BUNCHING_BAND`] of the threshold.
    bunching_share: f64,
}

impl BasketModel {
    /// From the scenario's redemption section; `None` if the parameters are unusable.
    pub fn new(shape: &RedemptionShape) -> Option<BasketModel> {
        // A log-normal's median is exp(mu).
        let x = LogNormal::new(shape.basket_x_median.ln(), shape.basket_x_sigma).ok()?;
        Some(BasketModel {
            x,
            cap: shape.basket_x_cap,
            bunching_share: shape.bunching_share,
        })
    }

    /// One order amount in integer fen, never below `min_spend_fen`.
    pub fn order_fen<R: Rng>(&self, min_spend_fen: u64, rng: &mut R) -> u64 {
        let x = if rng.random::<f64>() < self.bunching_share {
            rng.random_range(0.0..=BUNCHING_BAND)
        } else {
            self.x.sample(rng).min(self.cap)
        };
        // Round up so rounding never pushes a basket below the threshold.
        let amount = (min_spend_fen as f64 * (1.0 + x)).ceil() as u64;
        amount.max(min_spend_fen)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn shape() -> RedemptionShape {
        RedemptionShape {
            basket_x_median: 0.12,
            basket_x_sigma: 0.7,
            basket_x_cap: 5.0,
            bunching_share: 0.25,
            refund_full_share: 0.015,
            retry_same_key_share: 0.03,
        }
    }

    #[test]
    fn baskets_stay_within_threshold_and_cap() {
        let m = BasketModel::new(&shape()).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let min = 5_000u64;
        let mut near = 0;
        let n = 20_000;
        let mut xs = Vec::with_capacity(n);
        for _ in 0..n {
            let o = m.order_fen(min, &mut rng);
            assert!(o >= min);
            assert!(o <= min * 6 + 1, "capped at 5: {o}");
            if o as f64 <= min as f64 * (1.0 + BUNCHING_BAND) {
                near += 1;
            }
            xs.push(o as f64 / min as f64 - 1.0);
        }
        // Bunching (25%) plus the log-normal's own mass below 0.05 (about 11% of 75%).
        let share = near as f64 / n as f64;
        assert!(
            (0.28..0.40).contains(&share),
            "near-threshold share {share}"
        );
        xs.sort_by(f64::total_cmp);
        let median = xs[n / 2];
        assert!((0.07..0.13).contains(&median), "median X {median}");
    }

    #[test]
    fn amounts_are_integer_fen_for_odd_thresholds() {
        let m = BasketModel::new(&shape()).unwrap();
        let mut rng = StdRng::seed_from_u64(2);
        for min in [1u64, 3, 99, 100_000] {
            for _ in 0..100 {
                assert!(m.order_fen(min, &mut rng) >= min);
            }
        }
    }
}
