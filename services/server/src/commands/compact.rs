use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use iotcane_store::format_time_ms;

use crate::cli::CompactArgs;
use crate::settings::Settings;

/// `iotcane compact`: one compaction run, beside running replicas or not.
pub async fn run(settings: &Settings, args: CompactArgs) -> anyhow::Result<ExitCode> {
    let hours = args
        .retention_hours
        .unwrap_or(settings.journal_retention_hours);
    if hours == 0 {
        bail!(
            "journal_retention_hours is 0 (keep everything); pass --retention-hours H to \
             compact anyway"
        );
    }
    let now_ms = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("the clock is before 1970")?
            .as_millis(),
    )?;
    let retention_ms = i64::try_from(hours)?.saturating_mul(3_600_000);
    let (compacted, state) =
        iotcane_store::compact_journal(&settings.store_config(), now_ms - retention_ms).await?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "rowsRemoved": compacted.rows_removed,
                "cutoffSeq": compacted.cutoff_seq,
                "historyFrom": format_time_ms(state.history_from_ms),
                "deletionsRemovedThroughSeq": state.tombstones_through_seq,
            })
        );
    } else {
        println!(
            "removed {} journal rows at or before position {}; history is complete from {}",
            compacted.rows_removed,
            compacted.cutoff_seq,
            format_time_ms(state.history_from_ms)
        );
    }
    Ok(ExitCode::SUCCESS)
}
