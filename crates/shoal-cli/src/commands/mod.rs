//! One module per subcommand.

mod explain;
mod run;
mod validate;

use std::path::Path;

use shoal_plan::{Plan, PlanOptions};

use crate::cli::{Cli, Command};
use crate::exit::CliResult;

/// Run the command `cli` asks for.
pub fn dispatch(cli: Cli) -> CliResult {
    match cli.command {
        Command::Run {
            file,
            json,
            no_progress,
        } => run::run(&file, cli.data_dir, json, no_progress),
        Command::Validate { files } => validate::validate(&files, cli.data_dir),
        Command::Explain { file, json } => explain::explain(&file, cli.data_dir, json),
    }
}

/// Load and plan a pipeline file, printing its warnings.
pub(crate) fn load_and_plan(file: &Path, data_dir: Option<std::path::PathBuf>) -> CliResult<Plan> {
    let spec = shoal_dsl::load_file(file)?;
    for w in &spec.warnings {
        eprintln!("{}", w.render());
    }
    let opts = PlanOptions {
        data_dir,
        ..PlanOptions::default()
    };
    Ok(shoal_plan::plan(&spec, &opts)?)
}
