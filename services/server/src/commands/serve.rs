use std::process::ExitCode;

use iotcane_store::{KnowledgeStore, redact_url};
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

/// Opens the store, keeps it current (journal tail, snapshots) until SIGINT or SIGTERM,
/// then finishes in-flight work, writes a last snapshot and closes the journal.
pub async fn run(settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = KnowledgeStore::open(settings.store_config()).await?;
    tracing::info!(
        data_dir = %settings.data_dir.display(),
        journal = %redact_url(&settings.database_url()),
        dialect = store.dialect(),
        resources_seq = store.applied_seq(),
        "iotcane is serving; stop with Ctrl-C or SIGTERM"
    );
    let shutdown = CancellationToken::new();
    let background = tokio::spawn({
        let store = store.clone();
        let shutdown = shutdown.clone();
        async move { store.run_background(shutdown).await }
    });
    wait_for_signal().await?;
    tracing::info!("shutting down");
    shutdown.cancel();
    background.await?;
    store.close().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
