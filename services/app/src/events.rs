//! Change events: the one description of a journal row that every event stream (HTTP
//! server-sent events, MQTT event topics) sends.

use iotcane_model::Kind;
use iotcane_store::{JournalEntry, Op, format_time_ms};
use serde_json::{Value, json};

/// The event name and data of a journal row: `created`, `updated`, `deleted`, or
/// `context` for a live-context report (whose data carries the report).
pub fn change_event(entry: &JournalEntry) -> Option<(&'static str, Value)> {
    let kind = Kind::parse(&entry.kind)?;
    let name = match entry.op {
        Op::Create => "created",
        Op::Update => "updated",
        Op::Delete => "deleted",
        Op::Context => "context",
    };
    let mut data = json!({
        "id": entry.resource_id,
        "kind": kind.as_str(),
        "version": entry.version,
        "seq": entry.seq,
        "at": format_time_ms(entry.at_ms),
    });
    if entry.op == Op::Context
        && let Some(live) = entry
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<Value>(b).ok())
    {
        data["live"] = live;
    }
    Some((name, data))
}
