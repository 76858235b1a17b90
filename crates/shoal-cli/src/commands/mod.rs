//! One module per subcommand.

mod checkpoints;
mod consume;
mod explain;
mod group;
mod produce;
mod run;
mod topic;
mod validate;

use std::path::Path;

use shoal_plan::{Plan, PlanOptions};

use crate::cli::{Cli, Command};
use crate::exit::{CliResult, Failure};

/// Run the command `cli` asks for.
pub fn dispatch(cli: Cli) -> CliResult {
    match cli.command {
        Command::Run {
            file,
            json,
            no_progress,
            http_addr,
            no_http,
            http_token,
            log_format: _,
            drop_state,
            from_savepoint,
        } => run::run(
            &file,
            cli.data_dir,
            run::RunFlags {
                json,
                no_progress,
                http: (!no_http).then_some(run::HttpFlags {
                    addr: http_addr,
                    token: http_token,
                }),
                drop_state,
                from_savepoint,
            },
        ),
        Command::Validate { files } => validate::validate(&files, cli.data_dir),
        Command::Explain { file, json } => explain::explain(&file, cli.data_dir, json),
        Command::Checkpoints { dir, json } => checkpoints::list(dir, cli.data_dir, json),
        Command::Topic(cmd) => topic::topic(cmd, cli.data_dir),
        Command::Produce {
            topic,
            file,
            key,
            json,
        } => produce::produce(&topic, &file, key.as_deref(), cli.data_dir, json),
        Command::Consume {
            topic,
            group,
            from_beginning,
            max,
            json,
            isolation,
        } => consume::consume(
            &topic,
            group.as_deref(),
            from_beginning,
            max,
            cli.data_dir,
            json,
            isolation,
        ),
        Command::Group(cmd) => group::group(cmd, cli.data_dir),
    }
}

/// Load and plan a pipeline file, printing its warnings.
pub(crate) fn load_and_plan(file: &Path, data_dir: Option<std::path::PathBuf>) -> CliResult<Plan> {
    let spec = shoal_plan::load_file(file)?;
    for w in &spec.warnings {
        eprintln!("{}", w.render());
    }
    let opts = PlanOptions {
        data_dir,
        ..PlanOptions::default()
    };
    Ok(shoal_plan::plan(&spec, &opts)?)
}

/// Where the embedded log lives: `<data_dir or ./shoal-data>/log`. The one
/// place that decides it (the CLI's log commands and the pipeline runner).
pub(crate) fn log_dir(data_dir: Option<std::path::PathBuf>) -> std::path::PathBuf {
    data_dir
        .unwrap_or_else(|| std::path::PathBuf::from("./shoal-data"))
        .join("log")
}

/// Opens the embedded log under `data_dir`. `read_only` for commands that
/// only look: they neither create the directory nor take any lock.
pub(crate) fn open_log(
    data_dir: Option<std::path::PathBuf>,
    read_only: bool,
) -> CliResult<shoal_log::LogDir> {
    let config = shoal_log::LogConfig {
        read_only,
        ..shoal_log::LogConfig::default()
    };
    Ok(shoal_log::LogDir::open(log_dir(data_dir), config)?)
}

/// Maps a log error, adding a hint when the topic does not exist.
pub(crate) fn topic_error(e: shoal_log::Error, hint: &str) -> Failure {
    match e {
        shoal_log::Error::TopicNotFound { .. } => {
            Failure::BadInput(format!("error: {e}\n  hint: {hint}"))
        }
        e => e.into(),
    }
}
