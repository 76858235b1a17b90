//! `shoal consume TOPIC [--group G] [--from-beginning] [--max N] [--json]
//! [--isolation read_committed|read_uncommitted]`: record values as JSON
//! lines on stdout.
//!
//! * `--isolation` (default `read_committed`): only records of committed
//!   transactions, up to each partition's last stable offset; transaction
//!   markers are never printed (they take offsets, so offsets have gaps).
//!
//! * Without `--group`: every partition from its first stored offset (there
//!   is no follow mode, so starting at the end would print nothing;
//!   `--from-beginning` is accepted and changes nothing). Opens the log
//!   read-only: no lock, nothing written.
//! * With `--group G`: joins G as a member (assignor `cooperative-sticky`,
//!   like pipeline sources), reads its assigned partitions from the group's
//!   committed offsets (the first stored offset where none is committed, or
//!   everywhere with `--from-beginning`), commits the next offset of every
//!   partition it printed from, then leaves. A consumer killed before it
//!   commits prints the same records again next time (at least once).
//!
//! Both stop at the end offsets seen at start, or after `--max` records.
//! Output goes partition by partition, each in offset order. A closed
//! stdout (`| head`) ends the command normally; with a group, only what
//! was fully written is committed.

use std::io::{BufWriter, ErrorKind, Stdout, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use shoal_log::{
    Assignment, AssignorKind, Consumer, ConsumerConfig, FetchBuffer, Isolation, LogDir,
};

use super::{open_log, topic_error};
use crate::exit::{CliResult, Failure};

/// Records per fetch.
const FETCH_RECORDS: u64 = 1000;
/// Bytes per fetch (about).
const FETCH_BYTES: usize = 1 << 20;
/// How long to wait for the group to hand out partitions.
const ASSIGNMENT_TIMEOUT: Duration = Duration::from_secs(30);

const HINT: &str = "list the topics: shoal topic list";

pub fn consume(
    topic: &str,
    group: Option<&str>,
    from_beginning: bool,
    max: Option<u64>,
    data_dir: Option<PathBuf>,
    json: bool,
    isolation: Isolation,
) -> CliResult {
    let mut out = Printer {
        topic,
        json,
        isolation,
        left: max.unwrap_or(u64::MAX),
        printed: 0,
        stdout: BufWriter::with_capacity(1 << 16, std::io::stdout()),
        closed: false,
        buf: FetchBuffer::new(),
    };
    match group {
        None => {
            let log = open_log(data_dir, true)?;
            let starts = log.start_offsets(topic).map_err(|e| topic_error(e, HINT))?;
            let ends = log.end_offsets(topic)?;
            for (p, (&start, &end)) in starts.iter().zip(&ends).enumerate() {
                if out.done() {
                    break;
                }
                out.partition(&log, p as u32, start, end)?;
            }
            eprintln!("consumed {} records from {topic}", out.printed);
            Ok(())
        }
        Some(group) => {
            let log = open_log(data_dir, false)?;
            log.partition_count(topic)
                .map_err(|e| topic_error(e, HINT))?;
            let consumer = log.consumer(
                group,
                ConsumerConfig::new([topic], AssignorKind::CooperativeSticky),
            )?;
            let result = consume_group(&log, &consumer, &mut out, from_beginning);
            let left = consumer.leave();
            let committed = result?;
            left?;
            eprintln!(
                "consumed {} records from {topic}; group {group} committed offsets of {committed} partition{}",
                out.printed,
                if committed == 1 { "" } else { "s" }
            );
            Ok(())
        }
    }
}

/// Reads the member's partitions; commits what was printed (also when
/// printing failed); returns how many partitions got a commit.
fn consume_group(
    log: &LogDir,
    consumer: &Consumer,
    out: &mut Printer<'_>,
    from_beginning: bool,
) -> CliResult<usize> {
    let topic = out.topic;
    let assignment = wait_for_assignment(consumer)?;
    let committed = consumer.committed(topic)?;
    let starts = log.start_offsets(topic)?;
    let ends = log.end_offsets(topic)?;
    let mut partitions: Vec<u32> = assignment
        .partitions
        .iter()
        .filter(|tp| tp.topic == topic)
        .map(|tp| tp.partition)
        .collect();
    partitions.sort_unstable();
    let mut commits: Vec<(&str, u32, u64)> = Vec::new();
    let mut result = Ok(());
    for p in partitions {
        if out.done() {
            break;
        }
        let (start, end) = (starts[p as usize], ends[p as usize]);
        let from = match committed.get(&p) {
            Some(&c) if !from_beginning => c.clamp(start, end),
            _ => start,
        };
        let mut pos = from;
        result = out.partition_from(log, p, &mut pos, end);
        if pos != from {
            commits.push((topic, p, pos));
        }
        if result.is_err() {
            break;
        }
    }
    if !commits.is_empty() {
        consumer.commit(assignment.generation, &commits)?;
    }
    result.map(|()| commits.len())
}

/// Polls until the group has handed this member its partitions.
fn wait_for_assignment(consumer: &Consumer) -> CliResult<Assignment> {
    let deadline = Instant::now() + ASSIGNMENT_TIMEOUT;
    loop {
        let a = consumer.poll_assignment()?;
        if a.must_revoke() {
            consumer.ack_revocation(a.generation)?;
            continue;
        }
        if !a.rebalancing {
            return Ok(a);
        }
        if Instant::now() >= deadline {
            return Err(anyhow::anyhow!(
                "group {} is still rebalancing after {}s",
                consumer.group(),
                ASSIGNMENT_TIMEOUT.as_secs()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A record as `--json` prints it (the value embedded as JSON, or as a
/// string if it is not JSON; the key as UTF-8 text).
#[derive(serde::Serialize)]
struct Envelope<'a> {
    topic: &'a str,
    partition: u32,
    offset: u64,
    timestamp: i64,
    key: Option<std::borrow::Cow<'a, str>>,
    value: Value,
}

/// Writes records to stdout and counts them.
struct Printer<'a> {
    topic: &'a str,
    json: bool,
    isolation: Isolation,
    /// Records still allowed by `--max`.
    left: u64,
    printed: u64,
    stdout: BufWriter<Stdout>,
    /// Stdout was closed by the reader: stop quietly.
    closed: bool,
    buf: FetchBuffer,
}

impl Printer<'_> {
    fn done(&self) -> bool {
        self.left == 0 || self.closed
    }

    fn partition(&mut self, log: &LogDir, p: u32, start: u64, end: u64) -> CliResult {
        let mut pos = start;
        self.partition_from(log, p, &mut pos, end)
    }

    /// Prints partition `p` from `*pos` up to `end`, advancing `*pos` past
    /// every record written and flushed.
    fn partition_from(&mut self, log: &LogDir, p: u32, pos: &mut u64, end: u64) -> CliResult {
        while *pos < end && !self.done() {
            let want = (end - *pos).min(self.left).min(FETCH_RECORDS) as usize;
            log.fetch_with(
                self.topic,
                p,
                *pos,
                want,
                FETCH_BYTES,
                self.isolation,
                &mut self.buf,
            )?;
            let Some(next) = self.buf.next_offset() else {
                break;
            };
            let n = self.buf.len() as u64;
            match self.write_batch(p) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                    self.closed = true;
                    return Ok(());
                }
                Err(e) => return Err(Failure::Runtime(anyhow::anyhow!("writing stdout: {e}"))),
            }
            *pos = next;
            self.left = self.left.saturating_sub(n);
            self.printed += n;
        }
        Ok(())
    }

    fn write_batch(&mut self, partition: u32) -> std::io::Result<()> {
        for r in self.buf.iter() {
            if self.json {
                let value: Value = serde_json::from_slice(r.value).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(r.value).into_owned())
                });
                let envelope = Envelope {
                    topic: self.topic,
                    partition,
                    offset: r.offset,
                    timestamp: r.timestamp,
                    key: r.key.map(String::from_utf8_lossy),
                    value,
                };
                serde_json::to_writer(&mut self.stdout, &envelope)?;
            } else {
                self.stdout.write_all(r.value)?;
            }
            self.stdout.write_all(b"\n")?;
        }
        self.stdout.flush()
    }
}
