//! Scale-out across processes on a real broker: two `shoal run` processes
//! with the same pipeline and consumer group split the partitions; one is
//! SIGKILLed, the survivor takes over its partitions after the session
//! timeout, and a `read_committed` consumer still sees every output record
//! exactly once. A second test shows cooperative-sticky rebalancing: while
//! a member joins and leaves, the partitions it does not take keep flowing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shoal_tests::services::{Reader, create_topic, kafka_brokers, produce, unique};
use shoal_tests::{shoal_bin, workdir};

fn records(from: usize, to: usize) -> Vec<(String, String)> {
    (from..to)
        .map(|i| {
            (
                format!("k{}", i % 101),
                format!("{{\"id\":{i},\"v\":{}}}", i % 10),
            )
        })
        .collect()
}

fn start(dir: &Path, name: &str) -> Child {
    Command::new(shoal_bin())
        .args(["run", "--no-progress", "p.yaml"])
        .current_dir(dir)
        .env("SHOAL_DATA_DIR", dir.join(format!("data-{name}")))
        .env("RUST_LOG", "shoal_connectors=info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
        .spawn()
        .expect("start shoal")
}

fn signal(child: &Child, sig: &str) {
    Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
}

fn stop(mut child: Child, dir: &Path, name: &str) {
    signal(&child, "-INT");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "{name} did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    assert!(status.success(), "{name} failed: {status}\n{log}");
}

fn assigned(dir: &Path, name: &str) -> usize {
    std::fs::read_to_string(dir.join(format!("{name}.log")))
        .unwrap_or_default()
        .matches("partition assigned")
        .count()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn exactly_once(reader: &Reader, expected: usize) {
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for r in &reader.records {
        *seen.entry(r.value["id"].as_i64().unwrap()).or_default() += 1;
    }
    let dupes: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dupes.is_empty(), "duplicates: {dupes:?}");
    assert_eq!(seen.len(), expected, "missing records");
    assert_eq!(reader.records.len(), expected);
}

fn pipeline(brokers: &str, input: &str, output: &str, group: &str, assignor: &str) -> String {
    format!(
        "name: scale\ncheckpoint: {{ interval: 200ms }}\nsources:\n  in:\n    type: kafka\n    brokers: {brokers}\n    topic: {input}\n    group: {group}\n    assignor: {assignor}\n    start: earliest\n    session_timeout: 6s\n    batch_size: 500\n    schema: {{ id: int64, v: int64 }}\nsinks:\n  out: {{ type: kafka, inputs: [in], brokers: {brokers}, topic: {output}, key: id }}\n"
    )
}

#[test]
#[ignore = "written but not yet run against the broker (session ran out); run with --ignored"]
fn two_processes_split_the_group_and_the_survivor_of_a_sigkill_finishes_exactly_once() {
    let Some(brokers) = kafka_brokers() else {
        return;
    };
    let (input, output, group) = (unique("scale-in"), unique("scale-out"), unique("g-scale"));
    create_topic(&brokers, &input, 8);
    create_topic(&brokers, &output, 4);
    produce(&brokers, &input, &records(0, 40_000));
    let dir = workdir();
    let d = dir.path();
    std::fs::write(
        d.join("p.yaml"),
        pipeline(&brokers, &input, &output, &group, "range"),
    )
    .unwrap();

    let a = start(d, "a");
    let b = start(d, "b");
    let mut reader = Reader::new(&brokers, &output);
    // Both members hold partitions.
    wait_until(
        "both processes to be assigned partitions",
        Duration::from_secs(60),
        || assigned(d, "a") > 0 && assigned(d, "b") > 0,
    );
    assert!(reader.wait_for(5_000, Duration::from_secs(60)), "no output");
    // Kill A mid-stream; more input arrives; B must take over A's partitions.
    let before = assigned(d, "b");
    signal(&a, "-KILL");
    let mut a = a;
    a.wait().unwrap();
    produce(&brokers, &input, &records(40_000, 60_000));
    assert!(
        reader.wait_for(60_000, Duration::from_secs(90)),
        "only {} of 60000 records arrived",
        reader.records.len()
    );
    assert!(
        assigned(d, "b") > before,
        "B never took over A's partitions"
    );
    stop(b, d, "b");
    reader.poll_for(Duration::from_secs(2));
    exactly_once(&reader, 60_000);
}

#[test]
#[ignore = "written but not yet run against the broker (session ran out); run with --ignored"]
fn cooperative_sticky_keeps_unaffected_partitions_flowing_while_a_member_joins_and_leaves() {
    let Some(brokers) = kafka_brokers() else {
        return;
    };
    let (input, output, group) = (unique("coop-in"), unique("coop-out"), unique("g-coop"));
    create_topic(&brokers, &input, 6);
    create_topic(&brokers, &output, 3);
    let dir = workdir();
    let d = dir.path();
    std::fs::write(
        d.join("p.yaml"),
        pipeline(&brokers, &input, &output, &group, "cooperative-sticky"),
    )
    .unwrap();
    let a = start(d, "a");
    wait_until("A to own every partition", Duration::from_secs(60), || {
        assigned(d, "a") >= 6
    });
    // A producer thread keeps input flowing on every partition.
    let stop_flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = {
        let (brokers, input, stop_flag) = (brokers.clone(), input.clone(), stop_flag.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop_flag.load(std::sync::atomic::Ordering::Relaxed) {
                produce(&brokers, &input, &records(i, i + 500));
                i += 500;
                std::thread::sleep(Duration::from_millis(50));
            }
            i
        })
    };
    let mut reader = Reader::new(&brokers, &output);
    assert!(reader.wait_for(1_000, Duration::from_secs(30)), "no output");
    // B joins: cooperative-sticky moves some partitions to B and revokes
    // nothing else from A, so A never stops emitting.
    let b = start(d, "b");
    let joined = Instant::now();
    let mut gaps = Vec::new();
    let mut last_len = reader.records.len();
    let mut last_growth = Instant::now();
    while assigned(d, "b") == 0 && joined.elapsed() < Duration::from_secs(60) {
        reader.poll_for(Duration::from_millis(100));
        if reader.records.len() > last_len {
            gaps.push(last_growth.elapsed());
            last_len = reader.records.len();
            last_growth = Instant::now();
        }
    }
    assert!(assigned(d, "b") > 0, "B never got partitions");
    let a_log = std::fs::read_to_string(d.join("a.log")).unwrap();
    assert_eq!(
        a_log.matches("partition revoked").count(),
        assigned(d, "b"),
        "A lost only the partitions B took:\n{a_log}"
    );
    let longest = gaps.iter().max().copied().unwrap_or_default();
    assert!(
        longest < Duration::from_secs(3),
        "output stalled {longest:?} while B joined (the group's join took {:?})",
        joined.elapsed()
    );
    stop(b, d, "b");
    stop_flag.store(true, std::sync::atomic::Ordering::Relaxed);
    let produced = producer.join().unwrap();
    assert!(
        reader.wait_for(produced, Duration::from_secs(60)),
        "missing output"
    );
    stop(a, d, "a");
    reader.poll_for(Duration::from_secs(1));
    exactly_once(&reader, produced);
}
