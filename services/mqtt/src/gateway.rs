//! The gateway's connection: the poll loop, and the batches that turn messages into
//! journal writes, answers and acknowledgements.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use iotcane_app::live::DeviceMessage;
use iotcane_app::store::{ChangeSource, StoreError};
use iotcane_app::{Actor, App, AppError};
use iotcane_model::{Tenant, Violations};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish, PublishProperties};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::broker::{BrokerConfig, BrokerError, EmbeddedBroker};
use crate::recommend::Job;
use crate::topics::{Action, Inbound, Request, Topics};

/// A secret setting: shown as `[redacted]` in logs and debug output.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Settings of the gateway (and of the embedded broker when no external one is named).
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// An external broker (`mqtt://host:port`, `mqtts://host:port`, optionally with
    /// `user:password@`); `None` starts the embedded broker.
    pub url: Option<String>,
    /// The embedded broker's address.
    pub listen: SocketAddr,
    pub prefix: String,
    /// The gateway's client id. It names its persistent session, so it must be stable
    /// across restarts and distinct per replica.
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// CA certificate (PEM) for `mqtts://`; the system's roots otherwise.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for brokers that authenticate clients by TLS.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Subscribe as `$share/{group}/…`, so that replicas split the device traffic.
    pub share_group: Option<String>,
    /// How long the broker keeps the gateway's session (and its queued messages) while
    /// the gateway is away.
    pub session_expiry: Duration,
    /// Unacknowledged messages the broker may send at once (MQTT 5 receive maximum); the
    /// gateway's queue holds as many.
    pub inflight: u16,
    /// The largest payload the gateway accepts; larger ones are rejected.
    pub max_payload: usize,
    /// The most messages written in one journal transaction.
    pub batch_max: usize,
    /// Publish change events on `{prefix}/{tenant}/events/…`.
    pub publish_events: bool,
    /// Also publish an event for every live-context report (a lot of traffic).
    pub context_events: bool,
    /// The embedded broker checks API keys and tenants.
    pub check_keys: bool,
    pub max_connections: usize,
}

impl MqttConfig {
    /// Defaults: embedded broker on `127.0.0.1:1883`, prefix `iotcane`.
    pub fn new() -> Self {
        Self {
            url: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            prefix: "iotcane".to_owned(),
            client_id: "iotcane-gateway".to_owned(),
            username: None,
            password: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            share_group: None,
            session_expiry: Duration::from_secs(24 * 3600),
            inflight: 1000,
            max_payload: 256 * 1024,
            batch_max: 1000,
            publish_events: true,
            context_events: false,
            check_keys: true,
            max_connections: 100_000,
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("MQTT settings: {0}")]
    Settings(String),
}

/// A running gateway.
#[derive(Debug)]
pub struct MqttGateway {
    task: tokio::task::JoinHandle<()>,
    broker_addr: Option<SocketAddr>,
}

/// The largest packet the gateway takes from the broker: above its payload limit, so
/// that an oversized payload is rejected by name rather than dropped.
fn max_packet(config: &MqttConfig) -> usize {
    config.max_payload.saturating_mul(4).max(64 * 1024)
}

/// A gateway whose embedded broker's port is bound but which does not run yet: binding
/// first lets `serve` fail fast on a taken port, before the graph loads.
#[derive(Debug)]
pub struct MqttBinding {
    config: MqttConfig,
    listener: Option<tokio::net::TcpListener>,
}

impl MqttBinding {
    /// Starts the embedded broker (when no external one is configured) and the gateway's
    /// connection. Returns once the broker listens; the connection comes up in the
    /// background and is retried with backoff.
    pub async fn start(
        self,
        app: App,
        shutdown: CancellationToken,
    ) -> Result<MqttGateway, MqttError> {
        let MqttBinding { config, listener } = self;
        // rumqttc leaves the choice of TLS provider to the application.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let topics = Topics::new(config.prefix.clone());
        let (options, broker_addr) = match (&config.url, listener) {
            (Some(url), _) => (external_options(url, &config)?, None),
            (None, Some(listener)) => {
                let broker = EmbeddedBroker::start(
                    BrokerConfig {
                        max_packet_size: max_packet(&config),
                        max_connections: config.max_connections,
                        keys: config.check_keys.then(|| app.keys().clone()),
                    },
                    listener,
                    topics.clone(),
                    shutdown.clone(),
                )
                .await?;
                let mut options = MqttOptions::new(
                    config.client_id.clone(),
                    broker.internal_v5.ip().to_string(),
                    broker.internal_v5.port(),
                );
                let (user, password) = broker.internal_login.clone();
                options.set_credentials(user, password);
                (options, Some(broker.addr))
            }
            (None, None) => {
                return Err(MqttError::Settings(
                    "no broker: neither an external URL nor a bound address".to_owned(),
                ));
            }
        };
        let options = session_options(options, &config);
        let (client, eventloop) = AsyncClient::new(options, usize::from(config.inflight) + 256);
        let task = tokio::spawn(run(app, client, eventloop, topics, config, shutdown));
        Ok(MqttGateway { task, broker_addr })
    }
}

impl MqttGateway {
    /// Binds the embedded broker's address (when no external broker is configured).
    pub async fn bind(config: MqttConfig) -> Result<MqttBinding, MqttError> {
        let listener = match config.url {
            None => Some(crate::broker::bind(config.listen).await?),
            Some(_) => None,
        };
        Ok(MqttBinding { config, listener })
    }

    /// [`MqttGateway::bind`], then [`MqttBinding::start`].
    pub async fn start(
        app: App,
        config: MqttConfig,
        shutdown: CancellationToken,
    ) -> Result<Self, MqttError> {
        Self::bind(config).await?.start(app, shutdown).await
    }

    /// The embedded broker's address, if it runs.
    pub fn broker_addr(&self) -> Option<SocketAddr> {
        self.broker_addr
    }

    /// Waits until the gateway has stopped (after the shutdown signal) and has
    /// acknowledged what it processed.
    pub async fn join(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "MQTT gateway task failed");
        }
    }
}

fn session_options(mut options: MqttOptions, config: &MqttConfig) -> MqttOptions {
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_start(false)
        .set_session_expiry_interval(Some(
            u32::try_from(config.session_expiry.as_secs()).unwrap_or(u32::MAX),
        ))
        .set_manual_acks(true)
        .set_receive_maximum(Some(config.inflight))
        .set_max_packet_size(Some(u32::try_from(max_packet(config)).unwrap_or(u32::MAX)));
    options
}

/// Connection options for an external broker URL.
fn external_options(url: &str, config: &MqttConfig) -> Result<MqttOptions, MqttError> {
    let bad = |why: &str| MqttError::Settings(format!("mqtt_url: {why}"));
    let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    let tls = match parsed.scheme() {
        "mqtts" => true,
        "mqtt" => false,
        _ => return Err(bad("must start with mqtt:// or mqtts://")),
    };
    let host = match parsed.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(host) => host.to_string(),
        None => return Err(bad("no host")),
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = parsed.port().unwrap_or(if tls { 8883 } else { 1883 });
    let mut options = MqttOptions::new(config.client_id.clone(), host, port);
    let (mut user, mut password) = (
        config.username.clone(),
        config.password.as_ref().map(|s| s.0.clone()),
    );
    // A user name or password in the URL is percent-encoded, as in any URL.
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(part)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| bad("the user name or password is not UTF-8 once decoded"))
    };
    if !parsed.username().is_empty() {
        user = Some(decode(parsed.username())?);
        password = Some(decode(parsed.password().unwrap_or(""))?);
    }
    if let Some(user) = user {
        options.set_credentials(user, password.unwrap_or_default());
    }
    if tls {
        let read = |path: &PathBuf| {
            std::fs::read(path)
                .map_err(|e| MqttError::Settings(format!("cannot read {}: {e}", path.display())))
        };
        let client_auth = match (&config.client_cert, &config.client_key) {
            (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
            (None, None) => None,
            _ => {
                return Err(MqttError::Settings(
                    "mqtt_client_cert and mqtt_client_key go together".to_owned(),
                ));
            }
        };
        let transport = match &config.ca_file {
            Some(ca) => rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Simple {
                ca: read(ca)?,
                alpn: None,
                client_auth,
            }),
            None if client_auth.is_some() => {
                return Err(MqttError::Settings(
                    "a client certificate needs mqtt_ca_file".to_owned(),
                ));
            }
            None => rumqttc::Transport::tls_with_default_config(),
        };
        options.set_transport(transport);
    } else if config.ca_file.is_some() || config.client_cert.is_some() {
        return Err(bad("TLS files are set but the URL is not mqtts://"));
    }
    Ok(options)
}

const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Batches processed at once: one is written while the next is read.
const BATCHES_IN_FLIGHT: usize = 2;

/// The poll loop. It only moves packets: messages go to a bounded queue whose size is the
/// receive maximum the broker was given, so it never blocks for long.
async fn run(
    app: App,
    client: AsyncClient,
    mut eventloop: EventLoop,
    topics: Topics,
    config: MqttConfig,
    shutdown: CancellationToken,
) {
    let config = Arc::new(config);
    // rumqttd always allows 100 messages in flight, whatever receive maximum it is given.
    let (queue, queued) = mpsc::channel::<Received>(usize::from(config.inflight).max(100) + 16);
    let (epoch_tx, epochs) = watch::channel(0u64);
    let (done, finished) = mpsc::unbounded_channel::<Received>();
    let (connected_tx, connected) = watch::channel(0u64);
    let context = Arc::new(Context {
        app: app.clone(),
        client: client.clone(),
        topics: topics.clone(),
        config: config.clone(),
        tenants: Mutex::default(),
        done,
        stopping: shutdown.clone(),
        actor: Actor {
            name: format!("mqtt:{}", config.client_id),
            source: ChangeSource::Mqtt,
        },
        unknown_retried: Mutex::default(),
    });
    let mut processor = tokio::spawn(process(context, queued));
    let mut acker = tokio::spawn(acknowledge(client.clone(), finished, epochs));
    let stop_outbound = CancellationToken::new();
    let outbound = tokio::spawn(crate::outbound::run(
        app,
        client.clone(),
        topics.clone(),
        config.clone(),
        connected,
        stop_outbound.clone(),
    ));
    let filters = topics.subscriptions(config.share_group.as_deref(), config.url.is_none());
    let mut backoff = BACKOFF_MIN;
    let mut connections = 0u64;
    // Messages of this connection, numbered in the order they arrived.
    let mut arrived = 0u64;
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = BACKOFF_MIN;
                connections += 1;
                arrived = 0;
                let _ = epoch_tx.send(connections);
                metrics::gauge!("iotcane_mqtt_connected").set(1.0);
                tracing::info!(
                    session_present = ack.session_present,
                    "MQTT gateway connected"
                );
                // Subscriptions are not restored by the client after a reconnect.
                let subscriptions = filters
                    .iter()
                    .map(|f| rumqttc::v5::mqttbytes::v5::Filter::new(f.clone(), QoS::AtLeastOnce));
                if let Err(e) = client.try_subscribe_many(subscriptions) {
                    tracing::error!(error = %e, "MQTT subscribe failed");
                }
                let _ = connected_tx.send(connections);
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                metrics::gauge!("iotcane_mqtt_queue_depth")
                    .set((queue.max_capacity() - queue.capacity()) as f64);
                let received = Received {
                    publish,
                    connection: connections,
                    order: arrived,
                };
                arrived += 1;
                if let Err(mpsc::error::TrySendError::Full(received)) = queue.try_send(received) {
                    // Only when the broker sends more than the receive maximum.
                    metrics::counter!("iotcane_mqtt_queue_full_total").increment(1);
                    let _ = queue.send(received).await;
                }
            }
            Ok(_) => {}
            Err(e) => {
                metrics::gauge!("iotcane_mqtt_connected").set(0.0);
                metrics::counter!("iotcane_mqtt_connection_errors_total").increment(1);
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "MQTT connection lost");
                // The next poll reconnects at once: wait first.
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
    // Finish what is queued, still polling so that the acknowledgements go out. Messages
    // arriving now are left unacknowledged: the broker keeps them for the next session.
    drop(queue);
    stop_outbound.cancel();
    let drain_deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(drain_deadline);
    let mut processed = false;
    loop {
        tokio::select! {
            _ = &mut processor, if !processed => processed = true,
            _ = &mut acker, if processed => break,
            () = &mut drain_deadline => {
                tracing::warn!("MQTT gateway stopped before its queue was drained");
                processor.abort();
                acker.abort();
                break;
            }
            event = eventloop.poll() => {
                if event.is_err() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    let _ = outbound.await;
    let _ = client.try_disconnect();
    // Flush the acknowledgements and the DISCONNECT.
    let flush_deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < flush_deadline {
        match tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await {
            Ok(Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))) | Ok(Err(_)) | Err(_) => {
                break;
            }
            Ok(Ok(_)) => {}
        }
    }
    metrics::gauge!("iotcane_mqtt_connected").set(0.0);
    tracing::info!("MQTT gateway stopped");
}

/// What every batch needs.
#[derive(Debug)]
pub(crate) struct Context {
    pub app: App,
    pub client: AsyncClient,
    pub topics: Topics,
    pub config: Arc<MqttConfig>,
    /// Tenants known to exist, and when a negative answer was cached.
    tenants: Mutex<HashMap<Tenant, (bool, Instant)>>,
    /// Where a finished message goes to be acknowledged.
    done: mpsc::UnboundedSender<Received>,
    /// The gateway is stopping: give up retrying the journal.
    stopping: CancellationToken,
    pub actor: Actor,
    /// When messages about unknown Things were last tried again (see `retry_unknown`).
    unknown_retried: Mutex<Option<Instant>>,
}

/// A message as it arrived: on which connection, and in which place.
#[derive(Debug)]
pub(crate) struct Received {
    publish: Publish,
    /// Counts connections: a PUBACK belongs to the connection the message came on.
    connection: u64,
    order: u64,
}

/// Sends the PUBACKs in the order the messages arrived, each once every message before it
/// on its connection is finished: brokers may take acknowledgements out of order as a
/// protocol error (rumqttd disconnects). A message of an earlier connection is not
/// acknowledged; the broker delivers it again.
async fn acknowledge(
    client: AsyncClient,
    mut finished: mpsc::UnboundedReceiver<Received>,
    connections: watch::Receiver<u64>,
) {
    let mut connection = 0;
    let mut next = 0;
    let mut ready: std::collections::BTreeMap<u64, Publish> = std::collections::BTreeMap::new();
    while let Some(message) = finished.recv().await {
        let current = *connections.borrow();
        if current != connection {
            connection = current;
            next = 0;
            ready.clear();
        }
        if message.connection != connection {
            continue;
        }
        ready.insert(message.order, message.publish);
        while let Some(publish) = ready.remove(&next) {
            if let Err(e) = client.ack(&publish).await {
                tracing::warn!(error = %e, "MQTT acknowledgement not sent");
            }
            next += 1;
        }
    }
}

const UNKNOWN_TENANT_TTL: Duration = Duration::from_secs(5);

impl Context {
    async fn tenant_known(&self, tenant: &Tenant) -> Result<bool, AppError> {
        if !self.config.check_keys && self.config.url.is_none() {
            // Without keys, any tenant name is a tenant (development mode).
            return Ok(true);
        }
        if let Ok(cache) = self.tenants.lock()
            && let Some((known, at)) = cache.get(tenant)
            && (*known || at.elapsed() < UNKNOWN_TENANT_TTL)
        {
            return Ok(*known);
        }
        let known = self.app.tenant_exists(tenant).await?;
        if let Ok(mut cache) = self.tenants.lock() {
            cache.insert(tenant.clone(), (known, Instant::now()));
        }
        Ok(known)
    }
}

async fn process(context: Arc<Context>, mut queued: mpsc::Receiver<Received>) {
    // Recommendation requests leave the batches for their own worker: they write no
    // knowledge, and one may take a while.
    let (jobs, waiting) = mpsc::channel(crate::recommend::QUEUED);
    let mut recommender = JoinSet::new();
    recommender.spawn(crate::recommend::run(context.clone(), waiting));
    let limit = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    let mut tasks = JoinSet::new();
    let mut batch = Vec::with_capacity(context.config.batch_max);
    while queued.recv_many(&mut batch, context.config.batch_max).await > 0 {
        metrics::gauge!("iotcane_mqtt_queue_depth").set(queued.len() as f64);
        metrics::histogram!("iotcane_mqtt_batch_size").record(batch.len() as f64);
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        let messages = std::mem::replace(&mut batch, Vec::with_capacity(context.config.batch_max));
        let context = context.clone();
        let jobs = jobs.clone();
        tasks.spawn(async move {
            handle_batch(&context, messages, &jobs).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    // The requests handed over are answered before the gateway disconnects.
    drop(jobs);
    while recommender.join_next().await.is_some() {}
}

/// Why a message was refused: a reason per JSON pointer, as in the HTTP problems.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    /// Short, stable label for the metric.
    pub label: &'static str,
    pub reasons: Vec<(String, String)>,
}

impl Refusal {
    pub(crate) fn new(label: &'static str, detail: impl Into<String>) -> Self {
        Self {
            label,
            reasons: vec![(String::new(), detail.into())],
        }
    }

    fn from_app(error: AppError) -> Self {
        match error {
            AppError::Invalid(violations) => Self::invalid(violations),
            AppError::Store(e) => Self::from_store(e),
            other => Self::new("error", other.to_string()),
        }
    }

    pub(crate) fn invalid(violations: Violations) -> Self {
        Self {
            label: "invalid",
            reasons: violations
                .0
                .into_iter()
                .map(|v| (v.path, v.message))
                .collect(),
        }
    }

    fn from_store(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { tenant, id } => Self::new(
                "unknown_thing",
                format!("unknown Thing: `{id}` is not registered in tenant `{tenant}`"),
            ),
            e @ StoreError::NoLiveContext { .. } => Self::new("no_live_context", e.to_string()),
            e => Self::new("refused", e.to_string()),
        }
    }

    pub(crate) fn text(&self) -> String {
        self.reasons
            .iter()
            .map(|(pointer, detail)| {
                if pointer.is_empty() {
                    detail.clone()
                } else {
                    format!("{pointer}: {detail}")
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// What became of one message of a batch.
pub(crate) enum Plan {
    /// Goes to the journal as the batch's `index`-th change.
    Write { inbound: Inbound, index: usize },
    /// Reported configuration: written on its own (it reads and updates the description).
    Reported {
        inbound: Inbound,
        config: serde_json::Map<String, Value>,
    },
    /// A recommendation request: handed to the recommendation worker.
    Recommend(Job),
    Refuse {
        /// The tenant the dead letter is filed under.
        tenant: Option<String>,
        /// The topic as the client sent it.
        topic: String,
        request: Option<Request>,
        refusal: Refusal,
    },
}

async fn handle_batch(context: &Context, batch: Vec<Received>, jobs: &mpsc::Sender<Job>) {
    let received_ms = now_ms();
    let mut plans = Vec::with_capacity(batch.len());
    let mut writes = Vec::new();
    for received in &batch {
        plans.push(plan(context, &received.publish, received_ms, &mut writes).await);
    }
    let results = if writes.is_empty() {
        Vec::new()
    } else {
        match write_with_retry(context, &writes).await {
            Some(results) => retry_unknown(context, &writes, results).await,
            // The journal is unreachable and we are stopping: acknowledge nothing, the
            // broker delivers the batch again to the next session.
            None => return,
        }
    };
    let mut results: Vec<Option<Result<_, StoreError>>> = results.into_iter().map(Some).collect();
    for (received, plan) in batch.into_iter().zip(plans) {
        let publish = &received.publish;
        let outcome = match plan {
            Plan::Write { inbound, index } => match results.get_mut(index).and_then(Option::take) {
                Some(Ok(written)) => {
                    record(inbound.action.as_str(), "accepted");
                    if inbound.action == Action::Context
                        && let Some(at) = context_lag_seconds(publish, received_ms)
                    {
                        metrics::histogram!("iotcane_mqtt_lag_seconds").record(at);
                    }
                    let answer = json!({
                        "id": inbound.thing.as_str(),
                        "version": written.version,
                        "seq": written.seq,
                    });
                    answer_accepted(context, publish, &inbound, answer).await;
                    Ok(())
                }
                Some(Err(e)) => Err((inbound, Refusal::from_store(e))),
                None => Err((
                    inbound,
                    Refusal::new("error", "the journal gave no result for this message"),
                )),
            },
            Plan::Reported { inbound, config } => {
                match crate::outbound::report_config(context, &inbound, config).await {
                    Ok(answer) => {
                        record(inbound.action.as_str(), "accepted");
                        answer_accepted(context, publish, &inbound, answer).await;
                        Ok(())
                    }
                    Err(e) => Err((inbound, Refusal::from_app(e))),
                }
            }
            // Acknowledged once handed over, not once answered: see `recommend`.
            Plan::Recommend(job) => {
                crate::recommend::hand_over(context, jobs, job).await;
                Ok(())
            }
            Plan::Refuse {
                tenant,
                topic,
                request,
                refusal,
            } => {
                refuse(
                    context,
                    publish,
                    tenant.as_deref(),
                    &topic,
                    request.as_ref(),
                    &refusal,
                )
                .await;
                Ok(())
            }
        };
        if let Err((inbound, refusal)) = outcome {
            let topic = String::from_utf8_lossy(&publish.topic).into_owned();
            let tenant = inbound.tenant.to_string();
            refuse(
                context,
                publish,
                Some(&tenant),
                &topic,
                Some(&Request::Thing(inbound)),
                &refusal,
            )
            .await;
        }
        let _ = context.done.send(received);
    }
}

/// Reads one message into a planned change (appended to `writes`) or a refusal.
async fn plan(
    context: &Context,
    publish: &Publish,
    received_ms: i64,
    writes: &mut Vec<DeviceMessage>,
) -> Plan {
    let refuse =
        |tenant: Option<String>, topic: String, request: Option<Request>, refusal| Plan::Refuse {
            tenant,
            topic,
            request,
            refusal,
        };
    let Ok(topic) = std::str::from_utf8(&publish.topic) else {
        return refuse(
            None,
            String::from_utf8_lossy(&publish.topic).into_owned(),
            None,
            Refusal::new("bad_topic", "the topic is not UTF-8"),
        );
    };
    let topics = &context.topics;
    if let Some((client_tenant, tried)) = topics.parse_denied(topic) {
        return refuse(
            Some(client_tenant.to_owned()),
            tried.to_owned(),
            None,
            Refusal::new(
                "forbidden",
                format!("the client's key (tenant `{client_tenant}`) may not publish to `{tried}`"),
            ),
        );
    }
    let request = match topics.parse_request(topic) {
        Ok(request) => request,
        Err(e) => {
            return refuse(
                topics.tenant_of(topic).map(str::to_owned),
                topic.to_owned(),
                None,
                Refusal::new("bad_topic", e.to_string()),
            );
        }
    };
    let refused_request = |request: Request, refusal: Refusal| Plan::Refuse {
        tenant: Some(request.tenant().to_string()),
        topic: topic.to_owned(),
        request: Some(request),
        refusal,
    };
    if publish.payload.len() > context.config.max_payload {
        let detail = format!(
            "the payload is {} bytes; the limit is {}",
            publish.payload.len(),
            context.config.max_payload
        );
        return refused_request(request, Refusal::new("too_large", detail));
    }
    match context.tenant_known(request.tenant()).await {
        Ok(true) => {}
        Ok(false) => {
            let detail = format!("unknown tenant `{}`", request.tenant());
            return refused_request(request, Refusal::new("unknown_tenant", detail));
        }
        Err(e) => return refused_request(request, Refusal::from_app(e)),
    }
    let inbound = match request {
        Request::Thing(inbound) => inbound,
        Request::Recommendation(request) => {
            return crate::recommend::plan(context, publish, topic, request);
        }
    };
    let refused =
        |inbound: Inbound, refusal: Refusal| refused_request(Request::Thing(inbound), refusal);
    let json = || -> Result<Value, Refusal> {
        serde_json::from_slice(&publish.payload)
            .map_err(|e| Refusal::new("not_json", format!("the payload is not JSON: {e}")))
    };
    let message = match inbound.action {
        Action::Deregister => Ok(DeviceMessage::Deregister {
            tenant: inbound.tenant.clone(),
            id: inbound.thing.clone(),
        }),
        Action::Register => json().and_then(|value| {
            context
                .app
                .registration(&inbound.thing, value)
                .map(|resource| DeviceMessage::Register {
                    tenant: inbound.tenant.clone(),
                    resource: Box::new(resource),
                })
                .map_err(Refusal::from_app)
        }),
        Action::Context => json().and_then(|value| {
            context
                .app
                .context_report(&inbound.tenant, &inbound.thing, value, received_ms)
                .map(DeviceMessage::Context)
                .map_err(Refusal::from_app)
        }),
        Action::ConfigReported => {
            return match json() {
                Ok(Value::Object(config)) => Plan::Reported { inbound, config },
                Ok(_) => refused(
                    inbound,
                    Refusal::new(
                        "invalid",
                        "the reported configuration must be a JSON object",
                    ),
                ),
                Err(refusal) => refused(inbound, refusal),
            };
        }
    };
    match message {
        Ok(message) => {
            writes.push(message);
            Plan::Write {
                inbound,
                index: writes.len() - 1,
            }
        }
        Err(refusal) => refused(inbound, refusal),
    }
}

/// Writes the batch's changes, retrying while the journal is unreachable. `None` when
/// the gateway stops first: then nothing of the batch is acknowledged, and the broker
/// delivers it again to the next session.
async fn write_with_retry(
    context: &Context,
    writes: &[DeviceMessage],
) -> Option<Vec<Result<iotcane_app::store::Written, StoreError>>> {
    let mut delay = BACKOFF_MIN;
    loop {
        match context
            .app
            .apply_device_messages(writes.to_vec(), &context.actor)
            .await
        {
            Ok(results) => return Some(results),
            Err(e) => {
                metrics::counter!("iotcane_mqtt_write_errors_total").increment(1);
                tracing::error!(error = %e, retry_in_ms = delay.as_millis() as u64, "MQTT batch not written");
                tokio::select! {
                    () = context.stopping.cancelled() => return None,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// How long messages about unknown Things wait before they are tried again...
const UNKNOWN_RETRY_DELAY: Duration = Duration::from_millis(100);
/// ...at most this often, so that a device that reports without ever registering slows
/// the gateway by at most 5 %.
const UNKNOWN_RETRY_EVERY: Duration = Duration::from_secs(2);

/// Tries the reports refused as about an unknown Thing once more, after a short wait.
///
/// With replicas on a shared subscription, a device's registration and its first report
/// can go to two replicas, and the report can reach the journal first: its Thing is then
/// registered a few milliseconds later. The same holds for a registration and a report
/// sent by two different clients.
async fn retry_unknown(
    context: &Context,
    writes: &[DeviceMessage],
    mut results: Vec<Result<iotcane_app::store::Written, StoreError>>,
) -> Vec<Result<iotcane_app::store::Written, StoreError>> {
    let refused_unknown = |r: &Result<_, StoreError>| matches!(r, Err(StoreError::NotFound { .. }));
    if !results.iter().any(refused_unknown) {
        return results;
    }
    let last_retry = || {
        context
            .unknown_retried
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let last = *last_retry();
    if last.is_some_and(|at| at.elapsed() < UNKNOWN_RETRY_EVERY) {
        return results;
    }
    // Only reports: a deregistration retried after a registration of the same batch would
    // undo it. And not a report a later accepted report of the same Thing in the batch
    // overtook: its older live context would replace the newer one.
    let thing = |i: usize| match &writes[i] {
        DeviceMessage::Context(report) => Some((&report.tenant, &report.id)),
        DeviceMessage::Register { .. } | DeviceMessage::Deregister { .. } => None,
    };
    let overtaken = |i: usize| {
        (i + 1..writes.len())
            .any(|j| results[j].is_ok() && thing(j).is_some() && thing(j) == thing(i))
    };
    let unknown: Vec<usize> = (0..results.len())
        .filter(|&i| refused_unknown(&results[i]) && thing(i).is_some() && !overtaken(i))
        .collect();
    if unknown.is_empty() {
        return results;
    }
    *last_retry() = Some(Instant::now());
    tokio::select! {
        () = context.stopping.cancelled() => return results,
        () = tokio::time::sleep(UNKNOWN_RETRY_DELAY) => {}
    }
    let again: Vec<DeviceMessage> = unknown.iter().map(|&i| writes[i].clone()).collect();
    match context
        .app
        .apply_device_messages(again, &context.actor)
        .await
    {
        Ok(retried) => {
            metrics::counter!("iotcane_mqtt_unknown_retries_total").increment(unknown.len() as u64);
            for (i, result) in unknown.into_iter().zip(retried) {
                results[i] = result;
            }
        }
        // The first answer stands: the Thing was unknown.
        Err(e) => tracing::warn!(error = %e, "messages about unknown Things not tried again"),
    }
    results
}

pub(crate) fn record(action: &'static str, outcome: &'static str) {
    metrics::counter!("iotcane_mqtt_messages_total", "action" => action, "outcome" => outcome)
        .increment(1);
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Seconds from the report's own `observedAt` to now, when it has one.
fn context_lag_seconds(publish: &Publish, received_ms: i64) -> Option<f64> {
    #[derive(serde::Deserialize)]
    struct Observed {
        #[serde(rename = "observedAt")]
        observed_at: Option<String>,
    }
    let observed: Observed = serde_json::from_slice(&publish.payload).ok()?;
    let at = iotcane_app::store::parse_time_ms(&observed.observed_at?)?;
    let now = now_ms().max(received_ms);
    Some((now - at).max(0) as f64 / 1000.0)
}

/// Answers an accepted message: on the `accepted` topic for registrations and
/// deregistrations, and on the MQTT 5 response topic when the client gave one.
async fn answer_accepted(context: &Context, publish: &Publish, inbound: &Inbound, answer: Value) {
    let body = json!({ "accepted": true, "result": answer });
    if matches!(inbound.action, Action::Register | Action::Deregister) {
        let topic = context.topics.answer(inbound, true);
        publish_answer(context, topic, &body, None).await;
    }
    respond(context, publish, inbound.tenant.as_str(), &body).await;
}

/// Refuses a message: a metric, a dead letter, and an answer on the `rejected` topic (or
/// the response topic; the reply topics for a recommendation request) naming every
/// problem.
pub(crate) async fn refuse(
    context: &Context,
    publish: &Publish,
    tenant: Option<&str>,
    topic: &str,
    request: Option<&Request>,
    refusal: &Refusal,
) {
    let action = request.map_or("unknown", Request::action);
    record(action, "rejected");
    metrics::counter!("iotcane_mqtt_rejected_total", "reason" => refusal.label).increment(1);
    tracing::debug!(%topic, reason = %refusal.text(), "MQTT message rejected");
    if let Err(e) = context
        .app
        .dead_letter(tenant, topic, &refusal.text(), &publish.payload)
        .await
    {
        tracing::error!(error = %e, %topic, "dead letter not written");
    }
    let inbound = match request {
        None => return,
        Some(Request::Recommendation(request)) => {
            let body = crate::recommend::error_body(refusal);
            crate::recommend::reply(context, publish, request, &body).await;
            return;
        }
        Some(Request::Thing(inbound)) => inbound,
    };
    let body = json!({
        "accepted": false,
        "topic": topic,
        "id": inbound.thing.as_str(),
        "reasons": refusal
            .reasons
            .iter()
            .map(|(pointer, detail)| json!({ "pointer": pointer, "detail": detail }))
            .collect::<Vec<_>>(),
    });
    let answer_topic = context.topics.answer(inbound, false);
    publish_answer(context, answer_topic, &body, None).await;
    // A message moved aside by the front has no request, so it gets no response: it was
    // not the client's to send.
    respond(context, publish, inbound.tenant.as_str(), &body).await;
}

/// Publishes on the message's MQTT 5 response topic, with its correlation data, if it
/// lies under `{prefix}/{tenant}/replies/` (so a client can make the gateway publish
/// neither into another tenant's topics nor onto a topic the service acts on).
pub(crate) async fn respond(context: &Context, publish: &Publish, tenant: &str, body: &Value) {
    let Some(properties) = &publish.properties else {
        return;
    };
    let Some(response_topic) = &properties.response_topic else {
        return;
    };
    if !context.topics.is_reply_topic(response_topic, tenant) {
        metrics::counter!("iotcane_mqtt_rejected_total", "reason" => "response_topic").increment(1);
        tracing::debug!(%response_topic, tenant, "response topic outside the tenant ignored");
        return;
    }
    publish_answer(
        context,
        response_topic.clone(),
        body,
        properties.correlation_data.clone(),
    )
    .await;
}

pub(crate) async fn publish_answer(
    context: &Context,
    topic: String,
    body: &Value,
    correlation: Option<Bytes>,
) {
    let properties = PublishProperties {
        content_type: Some("application/json".to_owned()),
        correlation_data: correlation,
        ..Default::default()
    };
    if let Err(e) = context
        .client
        .publish_with_properties(topic, QoS::AtLeastOnce, false, body.to_string(), properties)
        .await
    {
        tracing::warn!(error = %e, "MQTT answer not published");
    }
}

#[cfg(test)]
mod url_tests {
    use super::*;

    fn options(url: &str) -> Result<MqttOptions, MqttError> {
        external_options(url, &MqttConfig::new())
    }

    #[test]
    fn a_broker_url_gives_host_port_and_decoded_credentials() {
        let o = options("mqtt://gate%40way:p%3Ass%2Fw%40rd@broker.example:1884").unwrap();
        assert_eq!(o.broker_address(), ("broker.example".to_owned(), 1884));
        let login = o.credentials().expect("credentials");
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("gate@way", "p:ss/w@rd")
        );

        let o = options("mqtt://[::1]").unwrap();
        assert_eq!(o.broker_address(), ("::1".to_owned(), 1883));
        assert!(o.credentials().is_none());
    }

    #[test]
    fn a_broker_url_that_cannot_work_is_refused_by_name() {
        for (url, words) in [
            ("http://broker:1883", "mqtt://"),
            ("mqtt://broker:port", "port"),
            ("mqtt://", "host"),
        ] {
            let message = options(url).unwrap_err().to_string();
            assert!(
                message.contains("mqtt_url") && message.contains(words),
                "{url}: {message}"
            );
        }
    }
}
