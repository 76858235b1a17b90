//! `shoal explain FILE`

use std::path::{Path, PathBuf};

use crate::exit::CliResult;

pub fn explain(file: &Path, data_dir: Option<PathBuf>, json: bool) -> CliResult {
    let plan = super::load_and_plan(file, data_dir)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan.explain_json()).expect("json")
        );
    } else {
        print!("{}", plan.explain());
    }
    Ok(())
}
