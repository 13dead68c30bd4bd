//! Synthetic residents: account ids, identity numbers and regions, computed on demand
//! from an index so that even the full 14.6 million never sit in memory at once.
//!
//! Accounts `0..humans` are ordinary residents, one natural person each. After them
//! come the bot clusters: every account of a cluster registers the *same* person's
//! identity number, typed differently (lower case, spaces, dashes, full-width spaces),
//! so only a server that normalises identities enforces its per-person limits on them.

use crate::rng::{hash3, mix, pick, unit, Stream};
use yunquan_actors::api::ResidentInput;

/// Persons of bot clusters are numbered from here, far above any human index, so
/// their identity numbers never coincide with a human's.
const BOT_PERSON_BASE: u64 = 10_000_000_000_000;
/// The 15 scrambled digits of an identity number range over 0..10^15.
const IDENTITY_SPACE: u128 = 1_000_000_000_000_000;
/// Multiplier of the identity scramble; coprime with 10 so the scramble is a bijection.
const IDENTITY_MULTIPLIER: u128 = 614_889_782_588_491;
/// ISO 7064 MOD 11-2 weights of the 17 body digits of a PRC resident identity number.
const CHECK_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check characters by weighted sum modulo 11.
const CHECK_CHARS: &[u8; 11] = b"10X98765432";

/// A scripted multi-account cluster: one natural person behind many accounts.
#[derive(Debug, Clone, PartialEq)]
pub struct BotCluster {
    /// Global index of its first account.
    pub first_account: u64,
    /// How many accounts it has.
    pub accounts: u64,
    /// Tiers its script grabs with every account.
    pub tiers: Vec<u32>,
    /// Index of its region in the scenario's region list.
    pub region: usize,
}

/// Whom an account belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Person {
    /// An ordinary resident (the account index).
    Human(u64),
    /// The person behind bot cluster `n`.
    Cluster(usize),
}

/// The registered residents of one run.
#[derive(Debug, Clone)]
pub struct Population {
    /// The run's seed.
    seed: u64,
    /// Short seed-derived tag in every id, so runs with other seeds do not collide.
    tag: String,
    /// Ordinary residents (accounts `0..humans`).
    pub humans: u64,
    /// Bot clusters, in account order.
    pub clusters: Vec<BotCluster>,
    /// Region codes.
    pub region_codes: Vec<String>,
    /// Cumulative user shares of the regions.
    pub region_cdf: Vec<f64>,
}

impl Population {
    /// A population of `humans` residents followed by `clusters`' accounts.
    pub fn new(
        seed: u64,
        humans: u64,
        clusters: Vec<BotCluster>,
        region_codes: Vec<String>,
        region_cdf: Vec<f64>,
    ) -> Population {
        Population {
            seed,
            tag: seed_tag(seed),
            humans,
            clusters,
            region_codes,
            region_cdf,
        }
    }

    /// Accounts held by bot clusters.
    pub fn bot_accounts(&self) -> u64 {
        self.clusters.iter().map(|c| c.accounts).sum()
    }

    /// Every registered account.
    pub fn len(&self) -> u64 {
        self.humans + self.bot_accounts()
    }

    /// Whether nobody is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Who holds account `i`.
    pub fn person(&self, i: u64) -> Person {
        if i < self.humans {
            return Person::Human(i);
        }
        // Clusters are in account order: the last one starting at or before i.
        let n = self
            .clusters
            .partition_point(|c| c.first_account <= i)
            .saturating_sub(1);
        Person::Cluster(n)
    }

    /// The account id of account `i`.
    pub fn account(&self, i: u64) -> String {
        match self.person(i) {
            Person::Human(_) => format!("h{}-{i}", self.tag),
            Person::Cluster(n) => {
                let j = self.clusters.get(n).map_or(0, |c| i - c.first_account);
                format!("b{}-{n}-{j}", self.tag)
            }
        }
    }

    /// The registration line of account `i`.
    pub fn resident(&self, i: u64) -> ResidentInput {
        let (identity_number, region) = match self.person(i) {
            Person::Human(h) => {
                let u = unit(hash3(self.seed, Stream::ResidentRegion, h));
                (canonical_identity(self.seed, h), pick(&self.region_cdf, u))
            }
            Person::Cluster(n) => {
                let (first, region) = self
                    .clusters
                    .get(n)
                    .map_or((0, 0), |c| (c.first_account, c.region));
                let canonical = canonical_identity(self.seed, BOT_PERSON_BASE + n as u64);
                (typed_variant(&canonical, i - first), region)
            }
        };
        let region = self.region_codes.get(region).cloned().unwrap_or_default();
        ResidentInput {
            account: self.account(i),
            identity_number,
            region,
        }
    }
}

/// The tag that goes into every id of a run with this seed.
pub fn seed_tag(seed: u64) -> String {
    format!("{:08x}", mix(seed) as u32)
}

/// The canonical 18-character identity number of synthetic person `person`: "52"
/// (Guizhou), 15 scrambled digits, and a real MOD 11-2 check character.
pub fn canonical_identity(seed: u64, person: u64) -> String {
    let offset = u128::from(hash3(seed, Stream::Identity, 0)) % IDENTITY_SPACE;
    let digits = (u128::from(person) * IDENTITY_MULTIPLIER + offset) % IDENTITY_SPACE;
    let body = format!("52{digits:015}");
    let sum: u32 = body
        .bytes()
        .zip(CHECK_WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    let check = CHECK_CHARS[(sum % 11) as usize] as char;
    format!("{body}{check}")
}

/// The `j`-th way a cluster's operator types the same identity number; every one
/// normalises back to `canonical` (case-folded, separators removed).
pub fn typed_variant(canonical: &str, j: u64) -> String {
    let (a, rest) = canonical.split_at(6.min(canonical.len()));
    let (b, c) = rest.split_at(8.min(rest.len()));
    match j % 6 {
        0 => canonical.to_owned(),
        1 => format!(" {} ", canonical.to_ascii_lowercase()),
        2 => format!("{a} {b} {c}"),
        3 => format!("{a}-{b}-{c}"),
        4 => format!("{a} {b} {}", c.to_ascii_lowercase()),
        _ => format!("{a}\u{3000}{b}\u{3000}{c}"),
    }
}

/// The canonical form the server derives a person from (mirrors the server's rule:
/// drop separators, upper-case).
pub fn normalise_identity(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '-' | '_' | '.' | '/' | '\u{3000}'))
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn population() -> Population {
        let clusters = vec![
            BotCluster {
                first_account: 100,
                accounts: 7,
                tiers: vec![0],
                region: 1,
            },
            BotCluster {
                first_account: 107,
                accounts: 3,
                tiers: vec![1],
                region: 0,
            },
        ];
        Population::new(
            9,
            100,
            clusters,
            vec!["a".into(), "b".into()],
            vec![0.5, 1.0],
        )
    }

    #[test]
    fn identities_are_18_chars_unique_and_checked() {
        let mut seen = HashSet::new();
        for p in 0..10_000 {
            let id = canonical_identity(3, p);
            assert_eq!(id.len(), 18);
            assert!(id.starts_with("52"));
            assert!(seen.insert(id));
        }
        // Known-good check character (GB 11643 example).
        let sum: u32 = "11010519491231002"
            .bytes()
            .zip(CHECK_WEIGHTS)
            .map(|(b, w)| u32::from(b - b'0') * w)
            .sum();
        assert_eq!(CHECK_CHARS[(sum % 11) as usize], b'X');
    }

    #[test]
    fn cluster_accounts_share_one_person_typed_differently() {
        let p = population();
        assert_eq!(p.len(), 110);
        assert_eq!(p.person(99), Person::Human(99));
        assert_eq!(p.person(100), Person::Cluster(0));
        assert_eq!(p.person(106), Person::Cluster(0));
        assert_eq!(p.person(107), Person::Cluster(1));
        let typed: Vec<String> = (100..107).map(|i| p.resident(i).identity_number).collect();
        let distinct: HashSet<&String> = typed.iter().collect();
        assert!(distinct.len() >= 5, "typed differently: {typed:?}");
        let canon: HashSet<String> = typed.iter().map(|t| normalise_identity(t)).collect();
        assert_eq!(canon.len(), 1);
        let other = normalise_identity(&p.resident(107).identity_number);
        assert!(!canon.contains(&other));
        assert_eq!(p.resident(100).region, "b");
    }

    #[test]
    fn account_ids_are_valid_and_distinct() {
        let p = population();
        let ids: HashSet<String> = (0..p.len()).map(|i| p.account(i)).collect();
        assert_eq!(ids.len() as u64, p.len());
        assert!(ids.iter().all(|s| yunquan_actors::domain::valid_id(s)));
    }
}
