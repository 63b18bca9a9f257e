//! The `iotcane` binary's library: command line, layered settings, and the commands.

pub mod cli;
mod commands;
pub mod settings;
mod telemetry;

use std::process::ExitCode;

use cli::{Cli, Command};
use settings::Settings;

/// Loads the settings, sets up logging, and runs the command.
pub fn run(cli: Cli) -> ExitCode {
    let settings = match Settings::load(&cli) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(_) => commands::serve::run(&settings).await,
            Command::Import(args) => commands::import::run(&settings, args).await,
            Command::Export(args) => commands::export::run(&settings, args).await,
            Command::Check(args) => commands::check::run(args),
            Command::Config => commands::config::run(&settings),
            Command::Keys(command) => commands::keys::run(&settings, command).await,
            Command::DeadLetters(command) => commands::dead_letters::run(&settings, command).await,
            Command::Compact(args) => commands::compact::run(&settings, args).await,
            Command::Recommend(args) => commands::recommend::run(&settings, args).await,
            Command::Eval(args) => commands::eval::run(args),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "command failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
