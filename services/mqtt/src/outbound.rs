//! What the gateway publishes on its own: change events, recommendation events, and each
//! device's desired configuration (retained) with the delta from what it reported (the
//! device-shadow pattern).

use std::collections::HashMap;
use std::sync::Arc;

use iotcane_app::recommend::RecommendationEvent;
use iotcane_app::store::{JournalEntry, Op, decode_body};
use iotcane_app::{App, AppError};
use iotcane_model::{Kind, ResourceId, Tenant};
use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::gateway::{Context, MqttConfig};
use crate::topics::{Inbound, Topics};

/// Publishes events and desired configurations until `stop`.
pub(crate) async fn run(
    app: App,
    client: AsyncClient,
    topics: Topics,
    config: Arc<MqttConfig>,
    mut connected: watch::Receiver<u64>,
    stop: CancellationToken,
) {
    let mut feed = app.store().subscribe();
    // Change events go out from the replica that wrote the change only: every replica
    // applies every row, and N replicas would otherwise announce each change N times.
    let mut written_here = app.store().subscribe_local();
    let mut recommendations = app.recommendation_events();
    let mut recommendations_open = true;
    let mut shadow = Shadow {
        client,
        topics,
        published: HashMap::new(),
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            changed = connected.changed() => {
                if changed.is_err() {
                    break;
                }
                // A broker that restarted without persistence has lost the retained
                // desired configurations: publish them all again on every connection.
                shadow.publish_all(&app).await;
            }
            entry = written_here.recv() => match entry {
                Ok(entry) => {
                    if config.publish_events && (entry.op != Op::Context || config.context_events) {
                        shadow.publish_event(&entry).await;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    metrics::counter!("iotcane_mqtt_events_missed_total").increment(missed);
                    tracing::warn!(missed, "MQTT publisher fell behind the change feed; events skipped");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            // Desired configurations follow every row, whoever wrote it: they are retained,
            // so publishing one again is harmless, and a replica that died after writing
            // one is covered by the others.
            entry = feed.recv() => match entry {
                Ok(entry) => shadow.follow(&entry).await,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // The desired configurations are all published again on reconnection.
                    tracing::warn!(missed, "MQTT publisher fell behind the change feed; desired configurations skipped");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            event = recommendations.recv(), if recommendations_open => match event {
                Ok(event) => {
                    if config.publish_events {
                        shadow.publish_recommendation_event(&event).await;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    metrics::counter!("iotcane_mqtt_events_missed_total").increment(missed);
                    tracing::warn!(missed, "MQTT publisher fell behind the recommendation events; events skipped");
                }
                Err(broadcast::error::RecvError::Closed) => recommendations_open = false,
            },
        }
    }
}

struct Shadow {
    client: AsyncClient,
    topics: Topics,
    /// The desired configuration last published per Thing (its JSON text).
    published: HashMap<(Tenant, ResourceId), String>,
}

impl Shadow {
    async fn publish_event(&self, entry: &JournalEntry) {
        let Some((name, mut data)) = iotcane_app::events::change_event(entry) else {
            return;
        };
        data["event"] = json!(name);
        let topic = self
            .topics
            .event(&entry.tenant, &entry.kind, &entry.resource_id);
        if let Err(e) = self
            .client
            .publish(topic, QoS::AtLeastOnce, false, data.to_string())
            .await
        {
            tracing::warn!(error = %e, "MQTT event not published");
        }
    }

    /// `{prefix}/{tenant}/events/recommendation/{id}`: a subscribed recommendation was
    /// re-evaluated into the new recommendation `id`.
    async fn publish_recommendation_event(&self, event: &RecommendationEvent) {
        let payload = match serde_json::to_string(event) {
            Ok(payload) => payload,
            Err(e) => {
                tracing::error!(error = %e, "recommendation event not encoded");
                return;
            }
        };
        let topic = self
            .topics
            .event(event.tenant.as_str(), "recommendation", &event.id);
        if let Err(e) = self
            .client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
        {
            tracing::warn!(error = %e, "MQTT recommendation event not published");
        }
    }

    /// Publishes a device's desired configuration when a change sets, changes or removes it.
    async fn follow(&mut self, entry: &JournalEntry) {
        if entry.kind != Kind::Device.as_str() && entry.kind != Kind::EdgeNode.as_str() {
            return;
        }
        let (Ok(tenant), Ok(id)) = (
            entry.tenant.parse::<Tenant>(),
            entry.resource_id.parse::<ResourceId>(),
        ) else {
            return;
        };
        let key = (tenant, id);
        let configs = match entry.op {
            Op::Context => return,
            Op::Delete => None,
            Op::Create | Op::Update => {
                // Most writes carry no desired configuration: skip decoding those.
                let body = entry.body.as_deref().unwrap_or_default();
                if !body.contains("\"desiredConfig\"") && !self.published.contains_key(&key) {
                    return;
                }
                decode_body(entry.seq, body).ok().map(|r| configs_of(&r))
            }
        };
        match configs.and_then(|(desired, reported)| desired.map(|d| (d, reported))) {
            Some((desired, reported)) => {
                let text = Value::Object(desired.clone()).to_string();
                if self.published.get(&key) != Some(&text) {
                    self.publish_desired(&key.0, &key.1, text.clone()).await;
                    self.publish_delta(&key.0, &key.1, &desired, &reported.unwrap_or_default())
                        .await;
                    self.published.insert(key, text);
                }
            }
            None => {
                if self.published.remove(&key).is_some() {
                    // An empty retained message clears the retained one.
                    self.publish_desired(&key.0, &key.1, String::new()).await;
                }
            }
        }
    }

    async fn publish_all(&mut self, app: &App) {
        let scan = app
            .store()
            .scan_literals(iotcane_model::vocab::ic::DESIRED_CONFIG, |_| true);
        let found = match scan {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "desired configurations not read");
                return;
            }
        };
        for (tenant, id, text) in found {
            self.publish_desired(&tenant, &id, text.clone()).await;
            self.published.insert((tenant, id), text);
        }
    }

    async fn publish_desired(&self, tenant: &Tenant, id: &ResourceId, text: String) {
        let topic = self.topics.desired(tenant, id);
        if let Err(e) = self
            .client
            .publish(topic, QoS::AtLeastOnce, true, text)
            .await
        {
            tracing::warn!(error = %e, "desired configuration not published");
        }
    }

    async fn publish_delta(
        &self,
        tenant: &Tenant,
        id: &ResourceId,
        desired: &Map<String, Value>,
        reported: &Map<String, Value>,
    ) {
        publish_delta(&self.client, &self.topics, tenant, id, desired, reported).await;
    }
}

async fn publish_delta(
    client: &AsyncClient,
    topics: &Topics,
    tenant: &Tenant,
    id: &ResourceId,
    desired: &Map<String, Value>,
    reported: &Map<String, Value>,
) {
    let delta = iotcane_app::live::config_delta(desired, reported);
    if delta.is_empty() {
        return;
    }
    if let Err(e) = client
        .publish(
            topics.delta(tenant, id),
            QoS::AtLeastOnce,
            false,
            Value::Object(delta).to_string(),
        )
        .await
    {
        tracing::warn!(error = %e, "configuration delta not published");
    }
}

/// A configuration: a JSON object.
type Config = Map<String, Value>;

/// The desired and reported configurations of a device or edge node.
fn configs_of(resource: &iotcane_model::Resource) -> (Option<Config>, Option<Config>) {
    match iotcane_app::live::placement_of(resource) {
        Some(p) => (p.desired_config.clone(), p.reported_config.clone()),
        None => (None, None),
    }
}

/// Records a device's reported configuration, and publishes the delta that remains.
pub(crate) async fn report_config(
    context: &Context,
    inbound: &Inbound,
    reported: Map<String, Value>,
) -> Result<Value, AppError> {
    let (written, desired) = context
        .app
        .report_config(
            &inbound.tenant,
            &inbound.thing,
            reported.clone(),
            &context.actor,
        )
        .await?;
    let delta = desired
        .as_ref()
        .map(|d| iotcane_app::live::config_delta(d, &reported))
        .unwrap_or_default();
    if let Some(desired) = &desired {
        publish_delta(
            &context.client,
            &context.topics,
            &inbound.tenant,
            &inbound.thing,
            desired,
            &reported,
        )
        .await;
    }
    Ok(json!({
        "id": inbound.thing.as_str(),
        "version": written.version,
        "seq": written.seq,
        "delta": delta,
    }))
}
