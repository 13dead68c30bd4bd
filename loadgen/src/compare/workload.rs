//! The claim workload every target gets: the same persons, the same stock, the same
//! order of claims. Each person claims once, in a shuffled order, and some come back
//! later for a second grab (which the per-person limit must refuse), so one run
//! exercises grants, the limit and the sell-out.

use crate::rng::{rng_for, Stream};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;

/// Persons at most: person indices are kept as `u32` to halve the sequence's memory.
pub const PERSONS_MAX: u64 = u32::MAX as u64;

/// What one comparison run asks of every target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadSpec {
    /// Distinct persons (0..persons), each with a limit of one coupon per round.
    pub persons: u64,
    /// Units of stock in each round.
    pub stock: u64,
    /// Second grabs by persons who already tried, as a fraction of `persons`.
    pub repeat_fraction: f64,
    /// Seed of the order.
    pub seed: u64,
}

/// The claims in the order they are sent: person indices.
#[derive(Debug, Clone)]
pub struct Sequence {
    /// Person of each claim.
    persons: Vec<u32>,
    /// Distinct persons in the workload.
    persons_total: u64,
}

impl Sequence {
    /// Builds the order: a shuffle of every person, plus `repeat_fraction * persons`
    /// second grabs, each placed somewhere after that person's first one.
    pub fn build(spec: &WorkloadSpec) -> anyhow::Result<Sequence> {
        anyhow::ensure!(
            (1..=PERSONS_MAX).contains(&spec.persons),
            "persons must be 1..={PERSONS_MAX}, not {}",
            spec.persons
        );
        anyhow::ensure!(
            spec.repeat_fraction.is_finite() && (0.0..=1.0).contains(&spec.repeat_fraction),
            "repeat fraction must be within 0..=1, not {}",
            spec.repeat_fraction
        );
        let n = spec.persons as u32;
        let mut rng = rng_for(spec.seed, Stream::Compare, 0);
        let mut first: Vec<u32> = (0..n).collect();
        first.shuffle(&mut rng);
        let repeats = (spec.persons as f64 * spec.repeat_fraction).round() as u64;
        // Sort keys: first grab at position i gets 2i; a repeat of that person gets an
        // odd key 2j+1 with j >= i, so it lands after the first grab.
        let mut keyed: Vec<(u64, u32)> = first
            .iter()
            .enumerate()
            .map(|(i, &p)| (2 * i as u64, p))
            .collect();
        for _ in 0..repeats {
            let i = rng.random_range(0..n);
            let j = rng.random_range(i..n);
            keyed.push((2 * u64::from(j) + 1, first[i as usize]));
        }
        keyed.sort_by_key(|&(k, _)| k);
        Ok(Sequence {
            persons: keyed.into_iter().map(|(_, p)| p).collect(),
            persons_total: spec.persons,
        })
    }

    /// Number of claims.
    pub fn len(&self) -> usize {
        self.persons.len()
    }

    /// Whether there are no claims.
    pub fn is_empty(&self) -> bool {
        self.persons.is_empty()
    }

    /// Person of claim `i`.
    pub fn person(&self, i: usize) -> Option<u64> {
        self.persons.get(i).map(|&p| u64::from(p))
    }

    /// Distinct persons in the workload.
    pub fn persons_total(&self) -> u64 {
        self.persons_total
    }

    /// Distinct persons among the first `n` claims: the demand a run that sent only
    /// those claims put on the stock.
    pub fn distinct_in_prefix(&self, n: usize) -> u64 {
        let mut seen = vec![false; self.persons_total as usize];
        let mut distinct = 0;
        for &p in self.persons.iter().take(n) {
            if let Some(s) = seen.get_mut(p as usize) {
                if !*s {
                    *s = true;
                    distinct += 1;
                }
            }
        }
        distinct
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(persons: u64, repeat_fraction: f64) -> WorkloadSpec {
        WorkloadSpec {
            persons,
            stock: persons / 2,
            repeat_fraction,
            seed: 7,
        }
    }

    #[test]
    fn every_person_claims_and_repeats_come_after_the_first_grab() {
        let s = Sequence::build(&spec(1_000, 0.2)).unwrap();
        assert_eq!(s.len(), 1_200);
        let mut first_at = vec![usize::MAX; 1_000];
        let mut count = vec![0u32; 1_000];
        for i in 0..s.len() {
            let p = s.person(i).unwrap() as usize;
            if first_at[p] == usize::MAX {
                first_at[p] = i;
            }
            count[p] += 1;
        }
        assert!(
            first_at.iter().all(|&i| i != usize::MAX),
            "someone never claims"
        );
        assert_eq!(count.iter().map(|&c| u64::from(c)).sum::<u64>(), 1_200);
        assert!(count.iter().filter(|&&c| c > 1).count() > 100);
        assert_eq!(s.distinct_in_prefix(s.len()), 1_000);
    }

    #[test]
    fn same_seed_same_order_and_other_seed_another() {
        let a = Sequence::build(&spec(500, 0.1)).unwrap();
        let b = Sequence::build(&spec(500, 0.1)).unwrap();
        let mut other = spec(500, 0.1);
        other.seed = 8;
        let c = Sequence::build(&other).unwrap();
        let order = |s: &Sequence| (0..s.len()).map(|i| s.person(i)).collect::<Vec<_>>();
        assert_eq!(order(&a), order(&b));
        assert_ne!(order(&a), order(&c));
    }

    #[test]
    fn prefix_demand_counts_distinct_persons_only() {
        let s = Sequence::build(&spec(100, 1.0)).unwrap();
        assert_eq!(s.distinct_in_prefix(0), 0);
        assert_eq!(s.distinct_in_prefix(1), 1);
        assert!(s.distinct_in_prefix(150) <= 100);
        assert_eq!(s.distinct_in_prefix(10_000), 100);
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(Sequence::build(&spec(0, 0.1)).is_err());
        assert!(Sequence::build(&spec(10, -0.1)).is_err());
        assert!(Sequence::build(&spec(10, f64::NAN)).is_err());
    }
}
