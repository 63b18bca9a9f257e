//! `iotcane`: the IoT-CANE service and its command line.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = iotcane_server::cli::Cli::parse();
    iotcane_server::run(cli)
}
