//! Correctness of one run, from the clients' acknowledgements and the target's own
//! store: sold to exactly min(stock, demand), nobody twice, stock accounted for.

use super::driver::DriveResult;
use super::target::StoreCounts;
use serde::Serialize;

/// The verdict on one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Correctness {
    /// No problem found.
    pub ok: bool,
    /// min(stock, distinct persons who asked): what a correct target grants.
    pub expected_granted: u64,
    /// What the store said.
    pub store: StoreCounts,
    /// Each violation, in words.
    pub problems: Vec<String>,
}

/// Checks a run that offered `stock` units.
pub fn check(stock: u64, seen: &DriveResult, store: &StoreCounts) -> Correctness {
    let expected = stock.min(seen.demand);
    let mut problems = Vec::new();
    if store.granted > stock {
        problems.push(format!(
            "oversold: the store granted {} of {stock} units",
            store.granted
        ));
    }
    if seen.errors == 0 && store.granted != expected {
        problems.push(format!(
            "the store granted {} but min(stock {stock}, demand {}) is {expected}",
            store.granted, seen.demand
        ));
    }
    if seen.errors > 0 {
        // A failed request may or may not have been executed, so the exact figure is
        // unknowable; the run is invalid either way.
        problems.push(format!(
            "{} claims failed (e.g. {:?}); a run with errors proves nothing",
            seen.errors,
            seen.error_examples
                .first()
                .map(String::as_str)
                .unwrap_or("")
        ));
    }
    if store.distinct_persons != store.granted {
        problems.push(format!(
            "the store holds {} grants for only {} distinct persons: someone got two",
            store.granted, store.distinct_persons
        ));
    }
    if seen.persons_granted_twice > 0 {
        problems.push(format!(
            "{} persons were acknowledged twice",
            seen.persons_granted_twice
        ));
    }
    let acks_match = if seen.errors == 0 {
        seen.granted == store.granted
    } else {
        seen.granted <= store.granted
    };
    if !acks_match {
        problems.push(format!(
            "the clients were acknowledged {} grants but the store holds {}",
            seen.granted, store.granted
        ));
    }
    if store.granted.saturating_add(store.stock_left) != stock {
        problems.push(format!(
            "stock does not add up: {} granted + {} left != {stock}",
            store.granted, store.stock_left
        ));
    }
    Correctness {
        ok: problems.is_empty(),
        expected_granted: expected,
        store: *store,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(granted: u64, demand: u64) -> DriveResult {
        DriveResult {
            sent: demand + 10,
            granted,
            sold_out: demand - granted,
            limited: 10,
            demand,
            ..DriveResult::default()
        }
    }

    fn store(granted: u64, distinct: u64, left: u64) -> StoreCounts {
        StoreCounts {
            granted,
            distinct_persons: distinct,
            stock_left: left,
        }
    }

    #[test]
    fn a_clean_sell_out_passes() {
        let c = check(80, &seen(80, 100), &store(80, 80, 0));
        assert!(c.ok, "{:?}", c.problems);
        assert_eq!(c.expected_granted, 80);
        let c = check(120, &seen(100, 100), &store(100, 100, 20));
        assert!(c.ok, "{:?}", c.problems);
    }

    #[test]
    fn a_person_holding_two_is_flagged() {
        let c = check(80, &seen(80, 100), &store(80, 79, 0));
        assert!(!c.ok);
        assert!(c.problems.iter().any(|p| p.contains("someone got two")));
        let mut twice = seen(80, 100);
        twice.persons_granted_twice = 1;
        let c = check(80, &twice, &store(80, 80, 0));
        assert!(c.problems.iter().any(|p| p.contains("acknowledged twice")));
    }

    #[test]
    fn oversell_undersell_and_lost_acks_are_flagged() {
        let c = check(80, &seen(80, 100), &store(81, 81, 0));
        assert!(c.problems.iter().any(|p| p.starts_with("oversold")));
        let c = check(80, &seen(79, 100), &store(79, 79, 1));
        assert!(c.problems.iter().any(|p| p.contains("min(stock 80")));
        let c = check(80, &seen(78, 100), &store(80, 80, 0));
        assert!(c.problems.iter().any(|p| p.contains("acknowledged 78")));
        let c = check(80, &seen(80, 100), &store(80, 80, 5));
        assert!(c.problems.iter().any(|p| p.contains("does not add up")));
    }

    #[test]
    fn errors_invalidate_a_run() {
        let mut s = seen(70, 100);
        s.errors = 3;
        s.error_examples = vec!["503 overloaded".into()];
        let c = check(80, &s, &store(72, 72, 8));
        assert!(!c.ok);
        assert_eq!(c.problems.len(), 1, "{:?}", c.problems);
        assert!(c.problems[0].contains("503 overloaded"));
    }
}
