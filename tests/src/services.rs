//! The external services of the Kafka, Postgres, Redis and object-store
//! tests: a Kafka-protocol broker (`SHOAL_KAFKA_BROKERS`), PostgreSQL
//! (`SHOAL_POSTGRES_URL`), Redis (`SHOAL_REDIS_URL`), a schema registry
//! (`SHOAL_SCHEMA_REGISTRY_URL`) and an S3-compatible server
//! (`SHOAL_S3_BUCKET`),
//! started by `scripts/services.sh start` (which `.ci/run` runs).
//!
//! Outside CI a test whose service is not configured prints a loud SKIPPED
//! line and passes; with `CI` set it fails instead.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

fn service(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "{var} is not set but CI is: `.ci/run` must start {what} (scripts/services.sh start)"
                );
            }
            eprintln!(
                "\n*** SKIPPED: {var} is not set — start {what} with `scripts/services.sh start && source /tmp/shoal-services/env` ***\n"
            );
            None
        }
    }
}

/// The broker list, or `None` (test skipped) outside CI without a broker.
pub fn kafka_brokers() -> Option<String> {
    service("SHOAL_KAFKA_BROKERS", "a Kafka broker")
}

/// The Postgres URL, or `None` (test skipped) outside CI without Postgres.
pub fn postgres_url() -> Option<String> {
    service("SHOAL_POSTGRES_URL", "PostgreSQL")
}

/// The Redis URL, or `None` (test skipped) outside CI without Redis.
pub fn redis_url() -> Option<String> {
    service("SHOAL_REDIS_URL", "Redis")
}

/// The schema registry URL (karapace), or `None` (test skipped) outside CI
/// without one.
pub fn schema_registry_url() -> Option<String> {
    service("SHOAL_SCHEMA_REGISTRY_URL", "a schema registry")
}

/// A connection to the Redis at `url`.
pub fn redis(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .expect("redis url")
        .get_connection_with_timeout(Duration::from_secs(10))
        .expect("connect to redis")
}

/// A Redis server of a test's own (`redis-server` on a free loopback port,
/// every write synced to its append-only file, so a killed server comes
/// back with what it acknowledged), for tests that stop and start it;
/// stopped when dropped.
pub struct OwnRedis {
    /// Its URL.
    pub url: String,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    /// Start one (on a port the OS picked as free).
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Self {
            url: format!("redis://127.0.0.1:{port}/0"),
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        r.up();
        r
    }

    /// Start it again after [`OwnRedis::down`], with its data.
    pub fn up(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (apt install redis-server)");
        self.child = Some(child);
        // A hang guard only.
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not open its port"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop it (SIGKILL; acknowledged writes are in its append-only file).
    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.down();
    }
}

/// The S3 bucket of the object-store tests (`SHOAL_S3_BUCKET`, with the
/// `AWS_*` variables `scripts/services.sh` exports), or `None` (test
/// skipped) outside CI without one.
pub fn s3_bucket() -> Option<String> {
    service("SHOAL_S3_BUCKET", "an S3-compatible server")
}

/// A name no earlier test run used (topics live as long as the broker).
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{:x}", std::process::id(), nanos & 0xffff_ffff)
}

fn config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c
}

/// Create `topic` with `partitions` partitions.
pub fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<_> = config(brokers).create().expect("admin client");
    let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let res = futures::executor::block_on(admin.create_topics([&t], &AdminOptions::new()))
        .expect("create topics");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
    // Wait until the topic's metadata shows every partition.
    let c: BaseConsumer = config(brokers).create().unwrap();
    // A hang guard only: a slow broker may take its time.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let md = c.fetch_metadata(Some(topic), Duration::from_secs(5));
        if let Ok(md) = md
            && md
                .topics()
                .iter()
                .any(|t| t.name() == topic && t.partitions().len() == partitions as usize)
        {
            return;
        }
        assert!(Instant::now() < deadline, "topic {topic} did not appear");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Produce `(key, value)` records (idempotent producer, flushed).
pub fn produce(brokers: &str, topic: &str, records: &[(String, String)]) {
    Feed::new(brokers, topic).send(records);
}

/// A producer kept open, for tests that feed a topic continuously (setting
/// up an idempotent producer takes a while: one per chunk would starve the
/// topic).
pub struct Feed {
    producer: ThreadedProducer<DefaultProducerContext>,
    topic: String,
}

impl Feed {
    /// An idempotent producer to `topic`.
    pub fn new(brokers: &str, topic: &str) -> Self {
        let producer = config(brokers)
            .set("linger.ms", "5")
            .set("enable.idempotence", "true")
            .create()
            .expect("producer");
        Self {
            producer,
            topic: topic.to_string(),
        }
    }

    /// Produce `(key, value)` records and wait until the broker has them.
    pub fn send(&self, records: &[(String, String)]) {
        for (k, v) in records {
            loop {
                match self
                    .producer
                    .send(BaseRecord::to(&self.topic).key(k).payload(v))
                {
                    Ok(()) => break,
                    Err((_, _)) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }
        self.producer.flush(Duration::from_secs(30)).expect("flush");
    }
}

/// One consumed record.
#[derive(Debug, Clone)]
pub struct Consumed {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key, as text.
    pub key: Option<String>,
    /// Value, as JSON.
    pub value: serde_json::Value,
}

/// Read every partition of `topic` from the beginning until nothing new
/// arrived for `idle` (the broker's high watermark is not trusted: tansu
/// 0.6 reports one below the records it holds). `read_committed` hides
/// records of open (and, on a correct broker, aborted) transactions.
pub fn consume_all(
    brokers: &str,
    topic: &str,
    read_committed: bool,
    idle: Duration,
) -> Vec<Consumed> {
    let c: BaseConsumer = config(brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set(
            "isolation.level",
            if read_committed {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        )
        .create()
        .expect("consumer");
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let n = md.topics()[0].partitions().len() as i32;
    let mut tpl = TopicPartitionList::new();
    for p in 0..n {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < idle {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last = Instant::now();
                let value = serde_json::from_slice(m.payload().unwrap_or_default())
                    .unwrap_or(serde_json::Value::Null);
                out.push(Consumed {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    value,
                });
            }
            Some(Err(e)) => panic!("consume {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// The committed offsets of `group` on `topic`, per partition.
pub fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let c: BaseConsumer = config(brokers)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    got.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// Run SQL against `url` and return every row as text columns
/// (`simple_query`; NULL becomes `None`).
pub fn pg(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect to postgres");
        tokio::spawn(conn);
        let msgs = client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        msgs.into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect()
    })
}

/// A `read_committed` reader of every partition of a topic that keeps
/// what it has read, for tests that watch output grow.
pub struct Reader {
    consumer: BaseConsumer,
    /// Everything read so far.
    pub records: Vec<Consumed>,
}

impl Reader {
    /// Read `topic` (all its partitions) from the beginning.
    pub fn new(brokers: &str, topic: &str) -> Self {
        let consumer: BaseConsumer = config(brokers)
            .set("group.id", unique("watch"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .expect("consumer");
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let mut tpl = TopicPartitionList::new();
        for p in md.topics()[0].partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).expect("assign");
        Self {
            consumer,
            records: Vec::new(),
        }
    }

    /// Read for `d`.
    pub fn poll_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if let Some(r) = self.consumer.poll(Duration::from_millis(50)) {
                let m = r.expect("consume");
                self.records.push(Consumed {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    value: serde_json::from_slice(m.payload().unwrap_or_default())
                        .unwrap_or(serde_json::Value::Null),
                });
            }
        }
    }

    /// Read until `n` records arrived or `timeout` passed; whether they did.
    pub fn wait_for(&mut self, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while self.records.len() < n && Instant::now() < end {
            self.poll_for(Duration::from_millis(200));
        }
        self.records.len() >= n
    }
}
