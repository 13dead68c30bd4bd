//! Deterministic randomness. Everything the load generator invents derives from the
//! run's seed, so two runs with the same seed and scale send the same population, the
//! same merchants and the same schedule. Per-item values (an account's region, a
//! coupon's basket) come from a hash of (seed, stream, index) rather than from one
//! sequential generator, so they do not depend on the order work happens in.

use rand::rngs::StdRng;
use rand::SeedableRng;

/// Independent streams of the same seed, one per kind of decision.
#[derive(Debug, Clone, Copy)]
#[repr(u64)]
pub enum Stream {
    /// Identity-number scrambling.
    Identity = 1,
    /// Residents' regions.
    ResidentRegion = 2,
    /// Merchants' regions.
    MerchantRegion = 3,
    /// Who contends and when.
    Schedule = 4,
    /// Bot clusters.
    Bots = 5,
    /// Retry intervals of one claim chain.
    Retry = 6,
    /// What happens to one granted coupon.
    Redeem = 7,
    /// Order of the comparison workload's claims.
    Compare = 8,
}

/// SplitMix64 finaliser: a cheap, well-mixed 64-bit hash.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hash of (seed, stream, index).
pub fn hash3(seed: u64, stream: Stream, index: u64) -> u64 {
    mix(mix(seed ^ mix(stream as u64)) ^ index)
}

/// A uniform number in [0, 1) from a hash.
pub fn unit(h: u64) -> f64 {
    // 53 high bits fill an f64 mantissa exactly.
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A generator for one item of one stream.
pub fn rng_for(seed: u64, stream: Stream, index: u64) -> StdRng {
    StdRng::seed_from_u64(hash3(seed, stream, index))
}

/// Cumulative weights, normalised to end at 1, for [`pick`].
pub fn cdf(weights: &[f64]) -> Vec<f64> {
    let total: f64 = weights.iter().map(|w| w.max(0.0)).sum();
    let mut acc = 0.0;
    weights
        .iter()
        .map(|w| {
            acc += if total > 0.0 {
                w.max(0.0) / total
            } else {
                1.0 / weights.len() as f64
            };
            acc
        })
        .collect()
}

/// The index whose cumulative weight first exceeds `u` (uniform in [0, 1)).
pub fn pick(cdf: &[f64], u: f64) -> usize {
    let i = cdf.partition_point(|&c| c <= u);
    i.min(cdf.len().saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_ends_at_one_and_pick_follows_weights() {
        let c = cdf(&[1.0, 3.0]);
        assert!((c[1] - 1.0).abs() < 1e-12);
        assert_eq!(pick(&c, 0.0), 0);
        assert_eq!(pick(&c, 0.24), 0);
        assert_eq!(pick(&c, 0.26), 1);
        assert_eq!(pick(&c, 0.999_999), 1);
    }

    #[test]
    fn hashes_differ_by_stream_and_index() {
        assert_ne!(hash3(1, Stream::Bots, 0), hash3(1, Stream::Retry, 0));
        assert_ne!(hash3(1, Stream::Bots, 0), hash3(1, Stream::Bots, 1));
        assert_eq!(hash3(7, Stream::Redeem, 3), hash3(7, Stream::Redeem, 3));
        let u = unit(u64::MAX);
        assert!((0.0..1.0).contains(&u));
    }
}
