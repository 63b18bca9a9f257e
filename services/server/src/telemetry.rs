//! One tracing setup for every command; logs go to standard error.

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;
use crate::settings::Settings;

pub fn init(settings: &Settings) {
    let filter = EnvFilter::try_new(&settings.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests running commands in-process) keeps the first subscriber.
    let _ = match settings.log_format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
