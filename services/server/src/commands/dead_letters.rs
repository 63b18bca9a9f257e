use std::process::ExitCode;

use anyhow::Context;
use iotcane_model::Tenant;
use iotcane_store::KnowledgeStore;

use crate::cli::DeadLettersCommand;
use crate::settings::Settings;

/// `iotcane dead-letters list`: the messages the MQTT gateway refused, newest first.
pub async fn run(settings: &Settings, command: DeadLettersCommand) -> anyhow::Result<ExitCode> {
    let DeadLettersCommand::List {
        tenant,
        limit,
        before,
        json,
    } = command;
    let tenant: Tenant = tenant.parse().context("--tenant")?;
    let store = KnowledgeStore::open(settings.store_config()).await?;
    let letters = store.dead_letters(&tenant, before, i64::from(limit)).await;
    store.close().await;
    let letters = letters?;
    if json {
        for letter in &letters {
            println!(
                "{}",
                serde_json::json!({
                    "id": letter.id,
                    "tenant": letter.tenant,
                    "topic": letter.topic,
                    "reason": letter.reason,
                    "payload": String::from_utf8_lossy(&letter.payload),
                    "payloadBytes": letter.payload_len,
                    "at": iotcane_store::format_time_ms(letter.at_ms),
                })
            );
        }
    } else {
        println!("{:<8} {:<24} {:<48} reason", "id", "at", "topic");
        for letter in &letters {
            println!(
                "{:<8} {:<24} {:<48} {}",
                letter.id,
                iotcane_store::format_time_ms(letter.at_ms),
                letter.topic,
                letter.reason
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
