//! JSON inputs: one object, an array of objects, or one object per line (NDJSON).

use serde_json::Value;

use super::{FormatError, Item, Origin, read_json_value};
use crate::validate::Violations;

pub(super) fn read_json(bytes: &[u8]) -> Result<Vec<Item>, FormatError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| FormatError {
        format: "JSON",
        position: Some(format!("line {}, column {}", e.line(), e.column())),
        message: e.to_string(),
    })?;
    Ok(match value {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| Item {
                origin: Origin::Index(i),
                result: read_json_value(v),
            })
            .collect(),
        other => vec![Item {
            origin: Origin::Index(0),
            result: read_json_value(other),
        }],
    })
}

/// Each non-blank line is one item; a line that is not JSON refuses that item only.
pub(super) fn read_ndjson(bytes: &[u8]) -> Vec<Item> {
    bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(i, line)| Item {
            origin: Origin::Index(i),
            result: serde_json::from_slice::<Value>(line)
                .map_err(|e| Violations::one("", format!("line {} is not JSON: {e}", i + 1)))
                .and_then(read_json_value),
        })
        .collect()
}
