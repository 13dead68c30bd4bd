//! Bounded memory of idempotency keys and POS request numbers.
//!
//! A key maps to the parameters it was first used with and the first result. Keys of
//! granted claims and of redemptions are rebuilt from the journal on restart; business
//! refusals are remembered in memory only (a retry after a restart executes again).
//! When full, the oldest key is forgotten: `idempotency_keys_max` bounds memory.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A bounded, insertion-ordered map.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdemTable<K: Hash + Eq + Clone, V> {
    /// Key -> memo.
    map: HashMap<K, V>,
    /// Keys oldest first, for eviction.
    order: VecDeque<K>,
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

    /// The memo of a key.
    pub fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k)
    }

    /// Remembers a key's first result; an existing key keeps its first memo.
    pub fn insert(&mut self, k: K, v: V) {
        if self.map.contains_key(&k) {
            return;
        }
        while self.map.len() >= self.keys_max {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        self.order.push_back(k.clone());
        self.map.insert(k, v);
    }

    /// Forgets a key (used when the command it answered was never made durable).
    pub fn remove(&mut self, k: &K) {
        if self.map.remove(k).is_some() {
            self.order.retain(|o| o != k);
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
        t.insert("a", 1);
        t.insert("a", 2);
        assert_eq!(t.get(&"a"), Some(&1));
        t.insert("b", 3);
        t.insert("c", 4);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(&"a"), None);
        assert_eq!(t.get(&"c"), Some(&4));
    }
}
