//! Event time while partitions move between the members of a `log` source.
//!
//! A member's watermark promises that nothing earlier follows on its
//! channel. When a partition moves to another member, that member (and the
//! one that lost it) must not have promised past the partition's next
//! records, or a downstream window drops them as late. This is the crash
//! moment that lost window results in the SIGKILL chaos test: after a
//! restart, members join one by one and partitions move between members
//! that had already read (and promised) further in event time. Here the
//! move is forced deterministically: member 1 stops as if crashed after a
//! fixed number of records (`SHOAL_TEST_CRASH_MEMBER`), the others read on,
//! and its partitions move once the group expels it.

use shoal_tests::windows::{check_windows, tumble_oracle, windows_of};
use shoal_tests::{
    partition_owners, produce_transactions, read_jsonl_dir, run_with_member_crash, shoal_ok,
    workdir,
};

const RECORDS: u64 = 60_000;

#[test]
fn windows_count_every_record_of_a_partition_moved_off_a_crashed_member() {
    let dir = workdir();
    let d = dir.path();
    produce_transactions(d, 5, RECORDS, "txns", 8);
    std::fs::write(
        d.join("windows.yaml"),
        r#"name: windows
sources:
  txns:
    type: log
    topic: txns
    group: windows
    parallelism: 4
    assignor: cooperative-sticky
    start: earliest
    stop_at_end: true
    session_timeout: 5s
    batch_size: 500
    event_time: { column: ts, max_delay: 5s }
    schema: { txn_id: utf8, card_id: int64, merchant_id: int64, amount: float64, country: utf8, ts: timestamp_ms, is_fraud: bool }
transforms:
  per_card:
    type: sql
    inputs: [txns]
    parallelism: 2
    key: card_id
    query: |
      SELECT card_id, tumble(ts, INTERVAL '1' MINUTE) AS w, COUNT(*) AS n, SUM(amount) AS total
      FROM txns GROUP BY card_id, tumble(ts, INTERVAL '1' MINUTE)
sinks:
  out: { type: file, inputs: [per_card], path: out/windows }
dead_letter: { type: file, path: out/dead }
"#,
    )
    .unwrap();
    // Member 1 stops after 1 000 records (two batches of its partitions);
    // the others read on while the group waits out its session (5 s), so
    // they are far ahead in event time when its partitions reach them.
    let stderr = run_with_member_crash(d, "windows.yaml", 1, 1000);
    // Who acquired which partition, in order: member 1's partitions moved.
    let owners = partition_owners(&stderr);
    let crashed: Vec<u32> = owners
        .iter()
        .filter(|(_, m)| m.iter().any(|m| m == "txns-1"))
        .map(|(p, _)| *p)
        .collect();
    assert!(!crashed.is_empty(), "member 1 owned nothing: {owners:?}");
    for p in &crashed {
        assert_ne!(
            owners[p].last().unwrap(),
            "txns-1",
            "partition {p} never moved: {owners:?}"
        );
    }

    let input = shoal_ok(d, &["consume", "txns"]);
    let input: Vec<serde_json::Value> = String::from_utf8(input.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(input.len() as u64, RECORDS);
    let expected = tumble_oracle(&input, 60_000);
    let late = std::fs::read_to_string(d.join("out/dead/dead-letters.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"late\""))
        .count();
    assert_eq!(late, 0, "records dropped as late");
    let got = windows_of(&read_jsonl_dir(&d.join("out/windows")));
    check_windows(&got, &expected, "member 1 stopped after 1000 records");
}
