//! `shoal validate FILE…`

use std::path::{Path, PathBuf};

use crate::exit::{CliResult, Failure};

pub fn validate(files: &[PathBuf], data_dir: Option<PathBuf>) -> CliResult {
    let mut failed = 0;
    for file in files {
        match check(file, data_dir.clone()) {
            Ok(summary) => println!("ok: {} ({summary})", file.display()),
            Err(Failure::BadInput(msg)) => {
                eprintln!("{msg}");
                failed += 1;
            }
            Err(e) => return Err(e),
        }
    }
    if failed > 0 {
        return Err(Failure::BadInput(format!(
            "{failed} of {} files invalid",
            files.len()
        )));
    }
    Ok(())
}

fn check(file: &Path, data_dir: Option<PathBuf>) -> CliResult<String> {
    let plan = super::load_and_plan(file, data_dir)?;
    let count = |r| plan.nodes.iter().filter(|n| n.role == r).count();
    use shoal_runtime::NodeRole::*;
    Ok(format!(
        "pipeline {}: {} sources, {} transforms, {} sinks",
        plan.name,
        count(Source),
        count(Transform),
        count(Sink)
    ))
}
