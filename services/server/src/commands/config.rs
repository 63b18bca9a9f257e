use std::process::ExitCode;

use crate::settings::Settings;

/// Prints the effective settings as TOML (usable as an `iotcane.toml`), secrets hidden.
pub fn run(settings: &Settings) -> anyhow::Result<ExitCode> {
    print!("{}", toml::to_string(&settings.redacted())?);
    Ok(ExitCode::SUCCESS)
}
