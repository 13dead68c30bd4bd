//! Bounded memory of idempotency keys and POS request numbers.
//!
//! A key maps to the parameters it was first used with and the first result. Keys of
//! granted claims and of redemptions are rebuilt from the journal on restart; business
//! refusals are remembered in memory only (a retry after a restart executes again, and
//! since refusals change nothing, it can only be refused again or succeed where the
//! first attempt could not, e.g. once a round has started).
//!
//! A key is replayed for [`IDEMPOTENCY_RETENTION_MS`] after its first use; later, a
//! request with it executes anew (a claim is then refused by the per-person limits, a
//! redemption by the coupon's single use). `idempotency_keys_max` bounds memory: when a
//! shard holds that many keys, its oldest is forgotten even inside the window.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// How long a key replays its first answer, in milliseconds: a POS or an app retries
/// within seconds or minutes; a day covers a till that comes back online the same day.
pub const IDEMPOTENCY_RETENTION_MS: i64 = 24 * 60 * 60 * 1_000;

/// A bounded, insertion-ordered map whose entries expire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdemTable<K: Hash + Eq + Clone, V> {
    /// Key -> (memo, when the key was first used, in Unix milliseconds).
    map: HashMap<K, (V, i64)>,
    /// Keys oldest first with their first use, for eviction.
    order: VecDeque<(K, i64)>,
    /// Most keys kept.
    keys_max: usize,
}

impl<K: Hash + Eq + Clone, V> IdemTable<K, V> {
    /// An empty table keeping at most `keys_max` keys (at least 1).
    pub fn new(keys_max: usize) -> Self {
        IdemTable {
            map: HashMap::new(),
            order: VecDeque::new(),
            keys_max: keys_max.max(1),
        }
    }

    /// Changes the bound (e.g. after loading a snapshot made under another setting).
    pub fn set_keys_max(&mut self, keys_max: usize) {
        self.keys_max = keys_max.max(1);
    }

    /// The memo of a key still inside its retention window at `now_ms`.
    pub fn get(&self, k: &K, now_ms: i64) -> Option<&V> {
        self.map
            .get(k)
            .filter(|(_, at_ms)| now_ms.saturating_sub(*at_ms) <= IDEMPOTENCY_RETENTION_MS)
            .map(|(v, _)| v)
    }

    /// Remembers a key's first result, first used at `at_ms`; an existing key keeps its
    /// first memo. Expired keys and, past `keys_max`, the oldest ones are forgotten.
    pub fn insert(&mut self, k: K, v: V, at_ms: i64) {
        if self.map.contains_key(&k) {
            return;
        }
        while let Some((old, old_at_ms)) = self.order.front() {
            let expired = at_ms.saturating_sub(*old_at_ms) > IDEMPOTENCY_RETENTION_MS;
            if !expired && self.map.len() < self.keys_max {
                break;
            }
            self.map.remove(old);
            self.order.pop_front();
        }
        self.order.push_back((k.clone(), at_ms));
        self.map.insert(k, (v, at_ms));
    }

    /// Forgets a key (used when the command it answered was never made durable).
    pub fn remove(&mut self, k: &K) {
        if self.map.remove(k).is_some() {
            self.order.retain(|(o, _)| o != k);
        }
    }

    /// Keys kept.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_result_wins_and_oldest_is_evicted() {
        let mut t = IdemTable::new(2);
        t.insert("a", 1, 0);
        t.insert("a", 2, 0);
        assert_eq!(t.get(&"a", 0), Some(&1));
        t.insert("b", 3, 0);
        t.insert("c", 4, 0);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(&"a", 0), None);
        assert_eq!(t.get(&"c", 0), Some(&4));
    }

    #[test]
    fn keys_replay_through_the_window_and_not_after() {
        let mut t = IdemTable::new(100);
        t.insert("a", 1, 1_000);
        assert_eq!(t.get(&"a", 1_000 + IDEMPOTENCY_RETENTION_MS), Some(&1));
        assert_eq!(t.get(&"a", 1_001 + IDEMPOTENCY_RETENTION_MS), None);
        // A later insert forgets expired keys, so memory follows the window too.
        t.insert("b", 2, 1_001 + IDEMPOTENCY_RETENTION_MS);
        assert_eq!(t.len(), 1);
        // An expired key may be used again, with a new first answer.
        t.insert("a", 3, 2_000 + IDEMPOTENCY_RETENTION_MS);
        assert_eq!(t.get(&"a", 2_000 + IDEMPOTENCY_RETENTION_MS), Some(&3));
    }

    #[test]
    fn a_removed_key_leaves_no_trace() {
        let mut t = IdemTable::new(2);
        t.insert("a", 1, 0);
        t.insert("b", 2, 0);
        t.remove(&"a");
        t.insert("c", 3, 0);
        assert_eq!((t.get(&"b", 0), t.get(&"c", 0)), (Some(&2), Some(&3)));
        assert_eq!(t.len(), 2);
    }
}
