//! `shoal topic create NAME --partitions N | list | describe NAME | verify NAME
//! | repair NAME --truncate-after-damage | delete NAME`

use std::path::PathBuf;

use serde_json::json;

use super::{open_log, topic_error};
use crate::cli::TopicCommand;
use crate::exit::CliResult;
use crate::table::{self, Table};

pub fn topic(cmd: TopicCommand, data_dir: Option<PathBuf>) -> CliResult {
    match cmd {
        TopicCommand::Create {
            name,
            partitions,
            json,
        } => create(&name, partitions, data_dir, json),
        TopicCommand::List { json } => list(data_dir, json),
        TopicCommand::Describe { name, json } => describe(&name, data_dir, json),
        TopicCommand::Delete { name, json } => delete(&name, data_dir, json),
        TopicCommand::Verify { name, json } => verify(&name, data_dir, json),
        TopicCommand::Repair {
            name,
            truncate_after_damage,
            json,
        } => repair(&name, data_dir, truncate_after_damage, json),
    }
}

fn create(name: &str, partitions: u32, data_dir: Option<PathBuf>, json: bool) -> CliResult {
    let log = open_log(data_dir, false)?;
    let existed = log.partition_count(name).is_ok();
    log.create_topic(name, partitions)?;
    if json {
        table::print_json(&json!({
            "name": name,
            "partitions": partitions,
            "created": !existed,
        }));
    } else if existed {
        println!("topic {name} already exists with {partitions} partitions");
    } else {
        println!("created topic {name} with {partitions} partitions");
    }
    Ok(())
}

fn list(data_dir: Option<PathBuf>, json: bool) -> CliResult {
    let log = open_log(data_dir, true)?;
    let topics = log.list_topics()?;
    if json {
        table::print_json(&topics);
        return Ok(());
    }
    if topics.is_empty() {
        eprintln!(
            "no topics in {} (create one: shoal topic create NAME --partitions N)",
            log.path().display()
        );
        return Ok(());
    }
    let mut t = Table::new(["TOPIC", "PARTITIONS"]);
    for s in &topics {
        t.row([s.name.clone(), s.partitions.to_string()]);
    }
    t.print();
    Ok(())
}

fn describe(name: &str, data_dir: Option<PathBuf>, json: bool) -> CliResult {
    let log = open_log(data_dir, true)?;
    let d = log
        .describe_topic(name)
        .map_err(|e| topic_error(e, "list the topics: shoal topic list"))?;
    if json {
        table::print_json(&d);
        return Ok(());
    }
    println!(
        "topic {}: {} partitions, {} records, {}",
        d.name,
        d.partitions.len(),
        d.records,
        table::bytes(d.bytes)
    );
    let mut t = Table::new(["PARTITION", "START", "END", "RECORDS", "SEGMENTS", "BYTES"]);
    for p in &d.partitions {
        t.row([
            p.partition.to_string(),
            p.start_offset.to_string(),
            p.end_offset.to_string(),
            p.records.to_string(),
            p.segments.len().to_string(),
            p.bytes.to_string(),
        ]);
    }
    t.print();
    Ok(())
}

fn delete(name: &str, data_dir: Option<PathBuf>, json: bool) -> CliResult {
    let log = open_log(data_dir, false)?;
    log.delete_topic(name)
        .map_err(|e| topic_error(e, "list the topics: shoal topic list"))?;
    if json {
        table::print_json(&json!({ "name": name, "deleted": true }));
    } else {
        println!("deleted topic {name}");
    }
    Ok(())
}

fn verify(name: &str, data_dir: Option<PathBuf>, json: bool) -> CliResult {
    let log = open_log(data_dir, true)?;
    let found = log
        .verify_topic(name)
        .map_err(|e| topic_error(e, "list the topics: shoal topic list"))?;
    let damaged = found.iter().filter(|d| !d.torn_tail).count();
    if json {
        table::print_json(&json!({ "topic": name, "damaged": damaged, "found": found }));
    } else if found.is_empty() {
        println!("topic {name}: every record checked, no damage");
    } else {
        let mut t = Table::new(["PARTITION", "SEGMENT", "BYTE", "OFFSET", "PROBLEM"]);
        for d in &found {
            let what = if d.torn_tail {
                format!("torn tail ({}): the next writer truncates it", d.reason)
            } else {
                format!("damage ({})", d.reason)
            };
            t.row([
                d.partition.to_string(),
                d.segment.clone(),
                d.position.to_string(),
                d.offset.to_string(),
                what,
            ]);
        }
        t.print();
    }
    if damaged > 0 {
        return Err(crate::exit::Failure::Runtime(anyhow::anyhow!(
            "topic {name}: {damaged} damaged segment(s); `shoal topic repair {name} --truncate-after-damage` drops the records from the damage on"
        )));
    }
    Ok(())
}

fn repair(name: &str, data_dir: Option<PathBuf>, confirmed: bool, json: bool) -> CliResult {
    if !confirmed {
        return Err(crate::exit::Failure::BadInput(format!(
            "error: repair deletes every record from the first damage on\n  hint: see what is damaged with `shoal topic verify {name}`, then run `shoal topic repair {name} --truncate-after-damage`"
        )));
    }
    let log = open_log(data_dir, false)?;
    let repairs = log
        .repair_topic(name)
        .map_err(|e| topic_error(e, "list the topics: shoal topic list"))?;
    if json {
        table::print_json(&repairs);
        return Ok(());
    }
    let mut any = false;
    for r in &repairs {
        if let Some(d) = &r.damage {
            any = true;
            println!(
                "partition {}: cut {} at byte {} (offset {}, {}): dropped {} records, deleted {} later segment(s)",
                r.partition,
                d.segment,
                d.position,
                d.offset,
                d.reason,
                r.records_dropped,
                r.segments_deleted
            );
        }
    }
    if !any {
        println!("topic {name}: no damage, nothing dropped");
    }
    Ok(())
}
