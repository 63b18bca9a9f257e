use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use iotcane_app::{Actor, App, ImportReport, Rejection};
use iotcane_model::Tenant;
use iotcane_store::{ChangeSource, KnowledgeStore};

use super::read_file;
use crate::cli::ImportArgs;
use crate::settings::Settings;

/// Imports every file; exits 1 when anything was rejected.
pub async fn run(settings: &Settings, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let tenant: Tenant = args.tenant.parse().context("--tenant")?;
    let store = KnowledgeStore::open(settings.store_config()).await?;
    let app = App::new(store.clone());
    let actor = Actor {
        name: args.actor.clone(),
        source: ChangeSource::Cli,
    };
    let mut total = ImportReport::default();
    for path in &args.files {
        let input = path.display().to_string();
        let items = match read_file(path)? {
            Ok(items) => items,
            Err(e) => {
                total.rejected.push(Rejection {
                    input: input.clone(),
                    origin: e.position.clone().unwrap_or_default(),
                    id: None,
                    reasons: vec![e.to_string()],
                });
                continue;
            }
        };
        let progress = if args.json {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::new(items.len() as u64);
            bar.set_style(
                ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message(input.clone());
            bar
        };
        let json = args.json;
        let report = app
            .import(
                &tenant,
                &input,
                items,
                &actor,
                args.batch_size as usize,
                |committed| {
                    progress.inc(committed.ids.len() as u64);
                    if json {
                        // One line per durable batch: everything listed is acknowledged.
                        let line = serde_json::json!({ "committed": committed });
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(out, "{line}");
                        let _ = out.flush();
                    }
                },
            )
            .await?;
        progress.finish_and_clear();
        total.accepted += report.accepted;
        total.created += report.created;
        total.updated += report.updated;
        total.rejected.extend(report.rejected);
    }
    if store.config().snapshot_every_changes <= total.accepted as u64 {
        store.snapshot().await?;
    }
    store.close().await;
    print_report(&total, args.json);
    Ok(if total.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The summary: counts, then each rejected item with its reasons.
pub fn print_report(report: &ImportReport, json: bool) {
    if json {
        println!("{}", serde_json::json!({ "summary": report }));
        return;
    }
    println!(
        "accepted {} ({} created, {} updated), rejected {}",
        report.accepted,
        report.created,
        report.updated,
        report.rejected.len()
    );
    for r in &report.rejected {
        let id =
            r.id.as_deref()
                .map(|id| format!(" ({id})"))
                .unwrap_or_default();
        println!("rejected {} {}{id}:", r.input, r.origin);
        for reason in &r.reasons {
            println!("  - {reason}");
        }
    }
}
