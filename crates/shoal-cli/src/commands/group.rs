//! `shoal group list | describe GROUP`

use std::path::PathBuf;

use super::open_log;
use crate::cli::GroupCommand;
use crate::exit::CliResult;
use crate::table::{self, Table};

pub fn group(cmd: GroupCommand, data_dir: Option<PathBuf>) -> CliResult {
    match cmd {
        GroupCommand::List { json } => list(data_dir, json),
        GroupCommand::Describe { group, json } => describe(&group, data_dir, json),
    }
}

fn list(data_dir: Option<PathBuf>, json: bool) -> CliResult {
    let log = open_log(data_dir, true)?;
    let groups = log.list_groups()?;
    if json {
        table::print_json(&groups);
        return Ok(());
    }
    if groups.is_empty() {
        eprintln!("no consumer groups in {}", log.path().display());
        return Ok(());
    }
    let mut t = Table::new([
        "GROUP",
        "STATE",
        "ACTIVE",
        "GENERATION",
        "MEMBERS",
        "ASSIGNOR",
    ]);
    for g in &groups {
        t.row([
            g.group.clone(),
            g.state.to_string(),
            yes_no(g.active).into(),
            g.generation.to_string(),
            g.members.to_string(),
            table::opt(g.assignor),
        ]);
    }
    t.print();
    Ok(())
}

fn describe(group: &str, data_dir: Option<PathBuf>, json: bool) -> CliResult {
    let log = open_log(data_dir, true)?;
    let d = log.describe_group(group)?;
    if json {
        table::print_json(&d);
        return Ok(());
    }
    println!(
        "group {}: {}{}, generation {}, assignor {}, {} members, total lag {}",
        d.group,
        d.state,
        if d.active {
            ""
        } else {
            " (no live coordinator)"
        },
        d.generation,
        table::opt(d.assignor),
        d.members.len(),
        d.total_lag
    );
    if !d.members.is_empty() {
        println!();
        let mut t = Table::new(["MEMBER", "TOPICS", "ASSIGNED", "REVOKING"]);
        for m in &d.members {
            let list = |tps: &[shoal_log::TopicPartition]| {
                if tps.is_empty() {
                    "-".to_owned()
                } else {
                    tps.iter()
                        .map(|tp| tp.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                }
            };
            t.row([
                m.id.clone(),
                m.topics.join(","),
                list(&m.assigned),
                list(&m.revoking),
            ]);
        }
        t.print();
    }
    if !d.partitions.is_empty() {
        println!();
        let mut t = Table::new([
            "TOPIC",
            "PARTITION",
            "OWNER",
            "COMMITTED",
            "LOG-START",
            "LOG-END",
            "LAG",
        ]);
        for p in &d.partitions {
            t.row([
                p.topic.clone(),
                p.partition.to_string(),
                p.owner.clone().unwrap_or_else(|| "-".into()),
                table::opt(p.committed),
                p.log_start.to_string(),
                p.log_end.to_string(),
                p.lag.to_string(),
            ]);
        }
        t.print();
    }
    Ok(())
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}
