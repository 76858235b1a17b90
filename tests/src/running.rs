//! The oracle of the running-aggregate tests: input ids `0..n`, card
//! `id % cards`, amount `id % 100`; a per-card running COUNT/SUM in id order
//! (one pass in partition order, as the topic is keyed by card).

use std::collections::BTreeMap;

/// Checks `(id, count, total)` output rows: every id in `0..n` exactly
/// once, and per card, in id order, the count and sum so far.
pub fn check_running(rows: impl Iterator<Item = (i64, i64, f64)>, n: i64, cards: i64) {
    let mut seen: BTreeMap<i64, (i64, f64)> = BTreeMap::new();
    let mut twice = Vec::new();
    for (id, count, total) in rows {
        if seen.insert(id, (count, total)).is_some() {
            twice.push(id);
        }
    }
    assert!(
        twice.is_empty(),
        "{} ids written twice, e.g. {:?}",
        twice.len(),
        &twice[..twice.len().min(5)]
    );
    let missing: Vec<i64> = (0..n).filter(|i| !seen.contains_key(i)).take(10).collect();
    assert_eq!(
        seen.len() as i64,
        n,
        "every record once; missing e.g. {missing:?}"
    );
    let mut sums = vec![0.0; cards as usize];
    let mut wrong = Vec::new();
    for (id, (count, total)) in &seen {
        let card = (*id % cards) as usize;
        sums[card] += (*id % 100) as f64;
        let want = (*id / cards + 1, sums[card]);
        if (*count, *total) != want {
            wrong.push((*id, (*count, *total), want));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} running values differ from one pass in partition order, e.g. (id, got, want) {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
}
