//! The exactly-once chaos test with a real broker and a real database: a
//! Kafka source feeding a Postgres sink, `shoal run` SIGKILLed at seeded
//! random moments while input keeps arriving, restarted, and finally (input
//! stopped) run to the end. The table must then hold every input record exactly once, and
//! `shoal_offsets` must point just past the last one of every partition.
//! Seeded (`SHOAL_CHAOS_SEED`, `SHOAL_CHAOS_RUNS`: see `shoal_tests::chaos`)
//! so a failure can be replayed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shoal_tests::chaos::{Rng, for_each_seed};
use shoal_tests::services::{Feed, create_topic, kafka_brokers, pg, postgres_url, produce, unique};
use shoal_tests::{shoal_bin, shoal_ok, workdir};

/// Records produced at a time (every 50 ms).
const CHUNK: usize = 1_000;
/// SIGKILLs that must land while the job runs.
const KILLS: usize = 4;

fn records(from: usize, to: usize) -> Vec<(String, String)> {
    (from..to)
        .map(|i| {
            let card = i % 53;
            (
                card.to_string(),
                format!(
                    "{{\"id\":{i},\"card\":{card},\"amount\":{}}}",
                    (i % 997) as f64 / 4.0
                ),
            )
        })
        .collect()
}

fn count(url: &str, sql: &str) -> i64 {
    pg(url, sql)[0][0]
        .as_deref()
        .unwrap_or("0")
        .parse()
        .unwrap()
}

fn log_has(path: &Path, what: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s.contains(what))
}

#[test]
fn sigkill_with_a_kafka_source_and_a_postgres_sink_writes_every_record_once() {
    let (Some(brokers), Some(url)) = (kafka_brokers(), postgres_url()) else {
        return;
    };
    for_each_seed(
        "sigkill_with_a_kafka_source_and_a_postgres_sink",
        20261125,
        workdir,
        |d, seed| kafka_to_postgres_under_sigkill(&brokers, &url, d, seed),
    );
}

/// One seed of the Kafka → Postgres chaos test, in working directory `d`.
fn kafka_to_postgres_under_sigkill(brokers: &str, url: &str, d: &Path, seed: u64) {
    let (brokers, url) = (brokers.to_owned(), url.to_owned());
    let mut rng = Rng::new(seed);
    let (topic, group, table) = (
        unique("chaos-in"),
        unique("g-chaos"),
        unique("chaos_pg").replace('-', "_"),
    );
    create_topic(&brokers, &topic, 4);
    // A short session timeout: a killed member holds its partitions until
    // it expires, and the restarted process waits for that.
    std::fs::write(
        d.join("p.yaml"),
        format!(
            "name: {table}\ncheckpoint: {{ interval: 100ms, keep: 3 }}\nsources:\n  src:\n    type: kafka\n    brokers: {brokers}\n    topic: {topic}\n    group: {group}\n    start: earliest\n    stop_at_end: true\n    session_timeout: 2s\n    batch_size: 1000\n    schema: {{ id: int64, card: int64, amount: float64 }}\ntransforms:\n  scaled:\n    type: sql\n    inputs: [src]\n    query: SELECT id, card, amount * 4 AS quarters FROM src\nsinks:\n  db: {{ type: postgres, inputs: [scaled], url: \"{url}\", table: {table} }}\n"
        ),
    )
    .unwrap();

    // Input keeps arriving (about 20 000 records/s) while runs are killed,
    // so no run can reach the end of it (`stop_at_end` waits for a second
    // without records): every kill lands mid-stream.
    let stop_flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // (Some input exists before the first run: `stop_at_end` on an empty
    // topic ends the run at once.)
    produce(&brokers, &topic, &records(0, CHUNK));
    let producer = {
        let (brokers, topic, stop_flag) = (brokers.clone(), topic.clone(), stop_flag.clone());
        std::thread::spawn(move || {
            let feed = Feed::new(&brokers, &topic);
            let mut i = CHUNK;
            while !stop_flag.load(std::sync::atomic::Ordering::Relaxed) {
                feed.send(&records(i, i + CHUNK));
                i += CHUNK;
                std::thread::sleep(Duration::from_millis(50));
            }
            i
        })
    };
    let started = Instant::now();
    let (mut kills, mut runs) = (0usize, 0usize);
    while kills < KILLS {
        runs += 1;
        let log = d.join(format!("run{runs}.log"));
        let mut child = Command::new(shoal_bin())
            .args(["run", "--no-progress", "p.yaml"])
            .current_dir(d)
            .env("SHOAL_DATA_DIR", d.join("shoal-data"))
            .env("RUST_LOG", "shoal_connectors=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // Once it reads (after the group join), kill it somewhere in the
        // next 50..1550 ms: while reading, at a checkpoint, or inside a
        // Postgres transaction (one per completed checkpoint, every 100 ms).
        // (The deadline is a hang guard only.)
        let deadline = Instant::now() + Duration::from_secs(180);
        while !log_has(&log, "partition assigned") {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "run {runs} ended ({status}) before reading: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "run {runs} never got partitions");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(50 + rng.next_u64() % 1500));
        if let Some(status) = child.try_wait().unwrap() {
            // Only if the input paused for a second (a slow broker): fine,
            // as long as the run succeeded; the next run gets the kill.
            assert!(
                status.success(),
                "run {runs} failed: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            assert!(
                runs < 2 * KILLS,
                "{runs} runs ended on their own (seed {seed})"
            );
            println!("run {runs} ended on its own");
            continue;
        }
        Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status()
            .unwrap();
        child.wait().unwrap();
        kills += 1;
        let rows = count(&url, &format!("SELECT count(*) FROM {table}"));
        println!("run {runs} killed: {rows} rows in the table");
    }
    stop_flag.store(true, std::sync::atomic::Ordering::Relaxed);
    let produced = producer.join().unwrap();
    // The last run goes to the end of the input.
    shoal_ok(d, &["run", "--no-progress", "p.yaml"]);
    println!(
        "kafka chaos: seed {seed}, {kills} SIGKILLs, {} runs, {produced} records, {:.1}s",
        runs + 1,
        started.elapsed().as_secs_f64()
    );

    let stats = pg(
        &url,
        &format!("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM {table}"),
    );
    let stats: Vec<i64> = stats[0]
        .iter()
        .map(|v| v.as_deref().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        stats,
        vec![produced as i64, produced as i64, 0, produced as i64 - 1],
        "rows, distinct ids, min id, max id (seed {seed})"
    );
    // Every row as the SQL transform computed it.
    assert_eq!(
        count(
            &url,
            &format!(
                "SELECT count(*) FROM {table} WHERE card <> id % 53 OR quarters <> (id % 997)"
            )
        ),
        0
    );
    // The offsets stored with the rows cover exactly the input.
    assert_eq!(
        count(
            &url,
            &format!("SELECT sum(next_offset) FROM shoal_offsets WHERE consumer_group = '{group}'")
        ),
        produced as i64
    );
    // A restart after the clean end writes nothing.
    shoal_ok(d, &["run", "--no-progress", "p.yaml"]);
    assert_eq!(
        count(&url, &format!("SELECT count(*) FROM {table}")),
        produced as i64
    );
}
