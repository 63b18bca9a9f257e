//! One module per subcommand.

pub mod check;
pub mod compact;
pub mod config;
pub mod dead_letters;
pub mod eval;
pub mod export;
pub mod import;
pub mod keys;
pub mod recommend;
pub mod serve;

use std::path::Path;

use anyhow::Context;
use iotcane_model::formats::{self, Format, FormatError, Item};

/// Reads one input file in the format its extension names.
fn read_file(path: &Path) -> anyhow::Result<Result<Vec<Item>, FormatError>> {
    let name = path.display().to_string();
    let format = Format::from_path(&name).with_context(|| {
        format!("{name}: unknown file extension; use .json, .ndjson, .jsonld, .ttl, .nt or .nq")
    })?;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {name}"))?;
    Ok(formats::read(format, &bytes))
}
