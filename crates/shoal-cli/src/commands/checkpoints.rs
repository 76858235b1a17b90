//! `shoal checkpoints [DIR]`

use std::path::{Path, PathBuf};

use shoal_runtime::Manifest;

use crate::exit::{CliResult, Failure};

pub fn list(dir: Option<PathBuf>, data_dir: Option<PathBuf>, json: bool) -> CliResult {
    let dirs: Vec<PathBuf> = match dir {
        Some(d) => vec![d],
        None => {
            let root = data_dir
                .unwrap_or_else(|| PathBuf::from("shoal-data"))
                .join("checkpoints");
            // A missing directory holds no checkpoints; an unreadable one is
            // an error, not "no checkpoints" (issue 16).
            let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&root) {
                Ok(e) => e
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_dir())
                    .collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => {
                    return Err(crate::exit::Failure::Runtime(anyhow::anyhow!(
                        "cannot list checkpoints in {}: {e}",
                        root.display()
                    )));
                }
            };
            dirs.sort();
            dirs
        }
    };
    let mut rows = Vec::new();
    for d in &dirs {
        rows.extend(manifests(d)?);
    }
    let mut savepoints = Vec::new();
    for d in &dirs {
        for (name, m) in Manifest::savepoints(d).map_err(|e| Failure::Runtime(e.into()))? {
            savepoints.push((d.clone(), name, m));
        }
    }
    if json {
        // Checkpoints oldest first (`savepoint: null`), then the savepoints
        // (`savepoint: <name>`).
        let entry = |d: &Path, m: &Manifest, savepoint: Option<&str>| {
            serde_json::json!({
                "dir": d, "pipeline": m.pipeline, "id": m.id, "completed_ms": m.completed_ms,
                "duration_ms": m.duration_ms, "state_bytes": m.state_bytes, "last": m.last,
                "savepoint": savepoint,
            })
        };
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(d, m)| entry(d, m, None))
            .chain(
                savepoints
                    .iter()
                    .map(|(d, name, m)| entry(d, m, Some(name))),
            )
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return Ok(());
    }
    if rows.is_empty() && savepoints.is_empty() {
        eprintln!("no checkpoints");
        return Ok(());
    }
    for (_, name, m) in &savepoints {
        println!(
            "savepoint {name}: pipeline {}, checkpoint {} (completed-ms {}, state {} bytes)",
            m.pipeline, m.id, m.completed_ms, m.state_bytes
        );
    }
    println!(
        "{:<24} {:>8} {:>15} {:>10} {:>12}  {}",
        "PIPELINE", "ID", "COMPLETED-MS", "DURATION", "STATE", "FINAL"
    );
    for (_, m) in &rows {
        println!(
            "{:<24} {:>8} {:>15} {:>8}ms {:>12}  {}",
            m.pipeline,
            m.id,
            m.completed_ms,
            m.duration_ms,
            m.state_bytes,
            if m.last { "yes" } else { "" }
        );
    }
    Ok(())
}

fn manifests(dir: &Path) -> CliResult<Vec<(PathBuf, Manifest)>> {
    let files = Manifest::list(dir).map_err(|e| Failure::Runtime(e.into()))?;
    files
        .into_iter()
        .map(|f| {
            Manifest::read(&f)
                .map(|m| (dir.to_path_buf(), m))
                .map_err(|e| Failure::BadInput(format!("error: {e}")))
        })
        .collect()
}
