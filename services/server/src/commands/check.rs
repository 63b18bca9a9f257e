use std::process::ExitCode;

use iotcane_app::{ImportReport, Rejection, check};

use super::import::print_report;
use super::read_file;
use crate::cli::CheckArgs;

/// Validates files without opening the store; exits 1 when anything is invalid.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let mut total = ImportReport::default();
    for path in &args.files {
        let input = path.display().to_string();
        match read_file(path)? {
            Ok(items) => {
                let report = check(&input, &items);
                total.accepted += report.accepted;
                total.rejected.extend(report.rejected);
            }
            Err(e) => total.rejected.push(Rejection {
                input,
                origin: e.position.clone().unwrap_or_default(),
                id: None,
                reasons: vec![e.to_string()],
            }),
        }
    }
    print_report(&total, args.json);
    Ok(if total.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
