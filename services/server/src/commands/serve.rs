use std::process::ExitCode;

use anyhow::{Context, anyhow};
use iotcane_app::{App, Role};
use iotcane_http::HttpServer;
use iotcane_mqtt::MqttGateway;
use iotcane_store::{KnowledgeStore, redact_url};
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

/// Opens the store, serves HTTP and MQTT and keeps the graph current (journal tail,
/// snapshots) until SIGINT or SIGTERM; then finishes in-flight requests and messages,
/// writes a last snapshot and closes the journal.
pub async fn run(settings: &Settings) -> anyhow::Result<ExitCode> {
    let http_config = settings.http_config().map_err(|e| anyhow!(e))?;
    let mqtt_config = settings
        .mqtt
        .then(|| settings.mqtt_config())
        .transpose()
        .map_err(|e| anyhow!(e))?;
    // Bind before the (possibly long) graph load, so a taken port fails fast.
    let listener = tokio::net::TcpListener::bind(&settings.http_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}; choose another address with --http-addr or IOTCANE_HTTP_ADDR",
                settings.http_addr
            )
        })?;
    let mqtt_binding = match mqtt_config {
        Some(config) => Some(MqttGateway::bind(config).await?),
        None => None,
    };
    let store = KnowledgeStore::open(settings.store_config()).await?;
    let app = App::new(store.clone());
    if http_config.auth {
        bootstrap_admin_key(&app, settings, &http_config.local_tenant).await?;
    } else {
        tracing::warn!(
            tenant = %http_config.local_tenant,
            "API keys are OFF: anyone who reaches {} is an admin of tenant {}. Use this only on your own machine.",
            settings.http_addr,
            http_config.local_tenant
        );
    }
    let shutdown = CancellationToken::new();
    let mqtt = match mqtt_binding {
        Some(binding) => {
            let external = settings.mqtt_url.clone().filter(|u| !u.is_empty());
            let gateway = binding.start(app.clone(), shutdown.clone()).await?;
            let broker = match (gateway.broker_addr(), external) {
                (Some(addr), _) => format!("mqtt://{addr} (embedded)"),
                (None, Some(url)) => redact_url(&url),
                (None, None) => String::new(),
            };
            Some((gateway, broker))
        }
        None => None,
    };
    let app_for_recommendations = app.clone();
    let server = HttpServer::new(listener, app, http_config, shutdown.clone());
    let addr = server.local_addr()?;
    let mut signals = StopSignals::listen()?;
    tracing::info!(
        http = %addr,
        mqtt = mqtt.as_ref().map_or("off", |(_, broker)| broker.as_str()),
        data_dir = %settings.data_dir.display(),
        journal = %redact_url(&settings.database_url()),
        dialect = store.dialect(),
        seq = store.applied_seq(),
        "iotcane is serving; stop with Ctrl-C or SIGTERM"
    );
    let background = tokio::spawn({
        let store = store.clone();
        let shutdown = shutdown.clone();
        async move { store.run_background(shutdown).await }
    });
    let recommendations = tokio::spawn({
        let app = app_for_recommendations;
        let shutdown = shutdown.clone();
        async move { app.run_recommendations(shutdown).await }
    });
    let mut http = tokio::spawn(server.run());
    // The server only ends on its own when it fails.
    let ended_early = tokio::select! {
        signal = signals.wait() => { signal?; None }
        served = &mut http => Some(served),
    };
    tracing::info!("shutting down");
    shutdown.cancel();
    let served = match ended_early {
        Some(served) => served,
        None => http.await,
    };
    if let Some((gateway, _)) = mqtt {
        gateway.join().await;
    }
    background.await?;
    recommendations.await?;
    served?.context("HTTP server")?;
    store.close().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// On a new installation (no key at all), creates the first admin key: the configured
/// one, or a fresh one printed once on standard error (never logged).
async fn bootstrap_admin_key(
    app: &App,
    settings: &Settings,
    tenant: &iotcane_model::Tenant,
) -> anyhow::Result<()> {
    let keys = app.keys();
    if let Some(token) = &settings.bootstrap_admin_key {
        let info = keys
            .ensure(tenant, Role::Admin, "bootstrap admin", token)
            .await
            .context("bootstrap_admin_key must read ick_<hex id>_<hex secret>")?;
        tracing::info!(key_id = %info.key_id, tenant = %info.tenant, "bootstrap admin key present");
        return Ok(());
    }
    if keys.none_yet().await? {
        let key = keys.create(tenant, Role::Admin, "first admin").await?;
        eprintln!(
            "\nNo API key existed, so an admin key for tenant `{}` was created. It is shown only now:\n\n    {}\n\nSend it as `Authorization: Bearer <key>`. Make more with `iotcane keys create`.\n",
            tenant, key.token
        );
        tracing::info!(key_id = %key.info.key_id, tenant = %tenant, "first admin key created");
    }
    Ok(())
}

/// SIGINT and SIGTERM, listened to from before `serve` says it is serving, so a signal
/// sent as soon as the line appears stops it cleanly rather than killing it.
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn wait(&mut self) -> anyhow::Result<()> {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        Ok(())
    }
}
