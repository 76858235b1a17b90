//! An oracle for per-card tumbling windows over the transaction generator's
//! records: what `SELECT card_id, tumble(ts, …) AS w, COUNT(*) AS n,
//! SUM(amount) AS total … GROUP BY card_id, tumble(ts, …)` must produce if
//! every record lands in its window once and none is dropped as late.

use std::collections::BTreeMap;

use serde_json::Value;

/// Per (card, window start in ms of the day): count and sum of amount.
pub type Windows = BTreeMap<(i64, i64), (u64, f64)>;

/// Milliseconds since 2026-01-01T00:00 (the generator's day) of a timestamp
/// as the JSON encoder writes it (`2026-01-01T00:01:00`, fraction optional).
pub fn ms_of_day(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    assert!(
        s.starts_with("2026-01-01T"),
        "timestamp off the generator's day: {s}"
    );
    let t = &s["2026-01-01T".len()..];
    let (hms, frac) = t.split_once('.').unwrap_or((t, "0"));
    let p: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    let frac: String = frac.chars().chain("000".chars()).take(3).collect();
    ((p[0] * 60 + p[1]) * 60 + p[2]) * 1_000 + frac.parse::<i64>().unwrap()
}

/// The windows of `size_ms` that `records` (with `card_id`, `ts`, `amount`)
/// fall into.
pub fn tumble_oracle(records: &[Value], size_ms: i64) -> Windows {
    let mut w = Windows::new();
    for r in records {
        let start = ms_of_day(&r["ts"]).div_euclid(size_ms) * size_ms;
        let e = w
            .entry((r["card_id"].as_i64().unwrap(), start))
            .or_default();
        e.0 += 1;
        e.1 += r["amount"].as_f64().unwrap();
    }
    w
}

/// The windows a query wrote (`card_id`, `w`, `n`, `total`); a window
/// written twice is an error.
pub fn windows_of(rows: &[Value]) -> Windows {
    let mut w = Windows::new();
    for r in rows {
        let key = (r["card_id"].as_i64().unwrap(), ms_of_day(&r["w"]));
        let value = (r["n"].as_u64().unwrap(), r["total"].as_f64().unwrap());
        assert!(
            w.insert(key, value).is_none(),
            "window {key:?} written twice"
        );
    }
    w
}

/// `got` holds exactly the windows of `expected`, with the same counts and
/// sums (up to float rounding: the order of addition differs); `what`
/// names the run in the message.
pub fn check_windows(got: &Windows, expected: &Windows, what: &str) {
    let missing: Vec<_> = expected.keys().filter(|k| !got.contains_key(k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !expected.contains_key(k)).collect();
    let wrong: Vec<_> = expected
        .iter()
        .filter_map(|(k, (n, sum))| {
            let (gn, gsum) = got.get(k)?;
            let off = gn != n || (gsum - sum).abs() > 1e-6 * sum.abs().max(1.0);
            off.then_some((k, (*n, *sum), (*gn, *gsum)))
        })
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && wrong.is_empty(),
        "window results differ from the input ({what}): {} of {} windows missing (e.g. {:?}), \
         {} extra (e.g. {:?}), {} with other counts or sums (e.g. {:?})",
        missing.len(),
        expected.len(),
        &missing[..missing.len().min(3)],
        extra.len(),
        &extra[..extra.len().min(3)],
        wrong.len(),
        &wrong[..wrong.len().min(3)],
    );
}
