use std::process::ExitCode;

use anyhow::{Context, anyhow};
use iotcane_app::{Keys, Role};
use iotcane_model::Tenant;
use iotcane_store::KnowledgeStore;

use crate::cli::KeysCommand;
use crate::settings::Settings;

/// `iotcane keys create|list|revoke`, straight on the journal database.
pub async fn run(settings: &Settings, command: KeysCommand) -> anyhow::Result<ExitCode> {
    let store = KnowledgeStore::open(settings.store_config()).await?;
    let keys = Keys::new(store.clone());
    let code = match command {
        KeysCommand::Create { tenant, role, name } => {
            let tenant: Tenant = tenant.parse().context("--tenant")?;
            let role: Role = role.parse().map_err(|e: String| anyhow!(e))?;
            let key = keys.create(&tenant, role, &name).await?;
            eprintln!(
                "created {} key {} ({}) in tenant {}; the key is shown only now:",
                key.info.role, key.info.key_id, key.info.name, key.info.tenant
            );
            println!("{}", key.token);
            ExitCode::SUCCESS
        }
        KeysCommand::List { tenant, json } => {
            let tenant: Option<Tenant> =
                tenant.map(|t| t.parse()).transpose().context("--tenant")?;
            let list = keys.list(tenant.as_ref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!(
                    "{:<14} {:<20} {:<6} {:<8} name",
                    "key id", "tenant", "role", "state"
                );
                for k in list {
                    let state = if k.revoked_ms.is_some() {
                        "revoked"
                    } else {
                        "live"
                    };
                    println!(
                        "{:<14} {:<20} {:<6} {:<8} {}",
                        k.key_id, k.tenant, k.role, state, k.name
                    );
                }
            }
            ExitCode::SUCCESS
        }
        KeysCommand::Revoke { tenant, key_id } => {
            let tenant: Tenant = tenant.parse().context("--tenant")?;
            if keys.revoke(&tenant, &key_id).await? {
                eprintln!("revoked key {key_id}");
                ExitCode::SUCCESS
            } else {
                eprintln!("error: tenant {tenant} has no live key {key_id}");
                ExitCode::FAILURE
            }
        }
    };
    store.close().await;
    Ok(code)
}
