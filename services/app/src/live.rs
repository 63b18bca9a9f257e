//! What running devices send: registrations, live-context reports, reported
//! configuration, and the messages a gateway could not accept (dead letters).
//!
//! A context report is the device's whole live state at one moment: it replaces the live
//! context, it does not merge into it. That keeps every report self-contained, so older
//! reports can be pruned without changing what a replay of the journal ends on.

use iotcane_model::{
    Kind, LiveContext, Placement, Resource, ResourceBody, ResourceId, Tenant, Violations,
};
use iotcane_store::{Change, DeadLetter, NewDeadLetter, StoreError, Written};
use serde_json::{Map, Value};

use crate::directory::{bind_id, thing_resource};
use crate::{Actor, App, AppError};

/// The longest payload kept in a dead letter; the rest is cut (its full size is kept).
pub const DEAD_LETTER_PAYLOAD_BYTES: usize = 16 * 1024;

/// One live-context report.
#[derive(Debug, Clone)]
pub struct ContextReport {
    pub tenant: Tenant,
    pub id: ResourceId,
    pub live: LiveContext,
}

/// One report as stored in the journal.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ContextVersion {
    pub seq: i64,
    pub at_ms: i64,
    pub live: LiveContext,
}

/// A message for the journal from a device: what to write, already checked.
#[derive(Debug, Clone)]
pub enum DeviceMessage {
    Register {
        tenant: Tenant,
        resource: Box<Resource>,
    },
    Context(ContextReport),
    Deregister {
        tenant: Tenant,
        id: ResourceId,
    },
}

impl App {
    /// Reads a registration: a Thing Description (JSON-LD) or the native JSON of a device
    /// or edge node. The id in the body, if any, must be `id`.
    pub fn registration(&self, id: &ResourceId, payload: Value) -> Result<Resource, AppError> {
        let Value::Object(mut body) = payload else {
            return Err(Violations::one("", "a registration must be a JSON object").into());
        };
        bind_id(&mut body, id, "the topic")?;
        if body.contains_key("kind") {
            let resource = Resource::from_json(Value::Object(body))?;
            if !matches!(resource.kind(), Kind::Device | Kind::EdgeNode) {
                return Err(Violations::one(
                    "/kind",
                    "only devices and edge nodes register themselves",
                )
                .into());
            }
            return Ok(resource);
        }
        crate::directory::validate_td(&Value::Object(body.clone()))?;
        thing_resource(body)
    }

    /// Reads a context report: the live-context JSON, checked. Property values must be of
    /// properties the Thing declares, when its description is at hand.
    pub fn context_report(
        &self,
        tenant: &Tenant,
        id: &ResourceId,
        payload: Value,
        received_ms: i64,
    ) -> Result<ContextReport, AppError> {
        let mut live: LiveContext =
            iotcane_model::typed(payload).map_err(|v| Violations(vec![v]))?;
        live.normalize();
        if live.observed_at.is_none() {
            live.observed_at = Some(iotcane_store::format_time_ms(received_ms));
        }
        let violations = iotcane_model::validate::validate_live(&live);
        if !violations.is_empty() {
            return Err(Violations(violations).into());
        }
        if !live.properties.is_empty()
            && let Some(stored) = self.store.get(tenant, id)?
        {
            let declared = declared_properties(&stored.resource);
            let unknown: Vec<_> = live
                .properties
                .keys()
                .filter(|name| !declared.iter().any(|d| d == *name))
                .map(|name| {
                    iotcane_model::Violation::new(
                        format!(
                            "/properties/{}",
                            iotcane_model::validate::pointer_segment(name)
                        ),
                        format!("`{name}` is not a property the Thing declares"),
                    )
                })
                .collect();
            if !unknown.is_empty() {
                return Err(Violations(unknown).into());
            }
        }
        Ok(ContextReport {
            tenant: tenant.clone(),
            id: id.clone(),
            live,
        })
    }

    /// Writes device messages in one journal transaction (shared with concurrent writers
    /// by group commit). One result per message, in order; all accepted ones are durable
    /// on return.
    pub async fn apply_device_messages(
        &self,
        messages: Vec<DeviceMessage>,
        actor: &Actor,
    ) -> Result<Vec<Result<Written, StoreError>>, AppError> {
        let changes = messages
            .into_iter()
            .map(|m| match m {
                DeviceMessage::Register { tenant, resource } => Change::Put {
                    tenant,
                    resource,
                    expected_version: None,
                    create_only: false,
                },
                DeviceMessage::Context(report) => Change::Context {
                    tenant: report.tenant,
                    id: report.id,
                    live: Box::new(report.live),
                },
                DeviceMessage::Deregister { tenant, id } => Change::Delete {
                    tenant,
                    id,
                    expected_version: None,
                },
            })
            .collect();
        Ok(self.store.write(changes, &actor.name, actor.source).await?)
    }

    /// Records the configuration a device reports it runs (`reportedConfig`). Returns the
    /// write and the desired configuration it is to be compared with.
    pub async fn report_config(
        &self,
        tenant: &Tenant,
        id: &ResourceId,
        reported: Map<String, Value>,
        actor: &Actor,
    ) -> Result<(Written, Option<Map<String, Value>>), AppError> {
        self.update_placement(tenant, id, actor, |placement| {
            placement.reported_config = Some(reported.clone());
        })
        .await
    }

    /// Sets (or with `None` clears) the configuration a device is to run
    /// (`desiredConfig`); the MQTT gateway publishes it to the device.
    pub async fn set_desired_config(
        &self,
        tenant: &Tenant,
        id: &ResourceId,
        desired: Option<Map<String, Value>>,
        actor: &Actor,
    ) -> Result<Written, AppError> {
        let (written, _) = self
            .update_placement(tenant, id, actor, |placement| {
                placement.desired_config = desired.clone();
            })
            .await?;
        Ok(written)
    }

    /// Changes a device's or edge node's description in place, at the version it was read
    /// at; a concurrent change makes it read and try again.
    async fn update_placement(
        &self,
        tenant: &Tenant,
        id: &ResourceId,
        actor: &Actor,
        change: impl Fn(&mut Placement),
    ) -> Result<(Written, Option<Map<String, Value>>), AppError> {
        const ATTEMPTS: usize = 5;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let stored = self.get(tenant, id)?.ok_or_else(|| StoreError::NotFound {
                tenant: tenant.clone(),
                id: id.clone(),
            })?;
            let mut resource = stored.resource;
            let Some(placement) = placement_of_mut(&mut resource) else {
                return Err(Violations::one(
                    "",
                    format!(
                        "{id} is a {}: only devices and edge nodes have a configuration",
                        resource.kind().as_str()
                    ),
                )
                .into());
            };
            change(placement);
            // Written without its live context, the description keeps the current one:
            // a report that arrived since the read is not undone.
            placement.live = None;
            let desired = placement.desired_config.clone();
            let violations = iotcane_model::validate::validate(&resource);
            if !violations.is_empty() {
                return Err(Violations(violations).into());
            }
            match self
                .put(tenant, resource, Some(stored.meta.version), actor)
                .await
            {
                Ok(written) => return Ok((written, desired)),
                Err(AppError::Store(StoreError::VersionMismatch { .. })) if attempt < ATTEMPTS => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether a tenant exists: it has an API key, or knowledge.
    pub async fn tenant_exists(&self, tenant: &Tenant) -> Result<bool, AppError> {
        if self.store.count(tenant, None)? > 0 {
            return Ok(true);
        }
        Ok(!self.store.keys(Some(tenant)).await?.is_empty())
    }

    /// A device's or edge node's newest context reports, newest first.
    pub async fn context_history(
        &self,
        tenant: &Tenant,
        id: &ResourceId,
        limit: i64,
    ) -> Result<Vec<ContextVersion>, AppError> {
        let rows = self.store.context_history(tenant, id, limit).await?;
        rows.into_iter()
            .map(|row| {
                let live =
                    serde_json::from_str(row.body.as_deref().unwrap_or("null")).map_err(|e| {
                        StoreError::Corrupt(format!("journal row {}: live context: {e}", row.seq))
                    })?;
                Ok(ContextVersion {
                    seq: row.seq,
                    at_ms: row.at_ms,
                    live,
                })
            })
            .collect()
    }

    /// Keeps a message a gateway refused, with why.
    pub async fn dead_letter(
        &self,
        tenant: Option<&str>,
        topic: &str,
        reason: &str,
        payload: &[u8],
    ) -> Result<(), AppError> {
        let kept = &payload[..payload.len().min(DEAD_LETTER_PAYLOAD_BYTES)];
        self.store
            .insert_dead_letter(&NewDeadLetter {
                tenant: tenant.map(str::to_owned),
                topic: topic.to_owned(),
                reason: reason.to_owned(),
                payload: kept.to_vec(),
                payload_len: i64::try_from(payload.len()).unwrap_or(i64::MAX),
                at_ms: crate::now_ms(),
            })
            .await?;
        Ok(())
    }

    /// A tenant's dead letters, newest first, with ids below `before`.
    pub async fn dead_letters(
        &self,
        tenant: &Tenant,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<DeadLetter>, AppError> {
        Ok(self.store.dead_letters(tenant, before, limit).await?)
    }
}

/// The property names a device or edge node declares: its property affordances, and the
/// `properties` of its TD.
fn declared_properties(resource: &Resource) -> Vec<String> {
    let Some(placement) = placement_of(resource) else {
        return Vec::new();
    };
    let mut names: Vec<String> = placement
        .affordances
        .iter()
        .filter(|a| a.kind == iotcane_model::AffordanceKind::Property)
        .map(|a| a.name.clone())
        .collect();
    if let Some(Value::Object(properties)) =
        placement.td.as_ref().and_then(|td| td.get("properties"))
    {
        names.extend(properties.keys().cloned());
    }
    names
}

/// What a device or edge node carries beyond its kind's own fields; `None` for other kinds.
pub fn placement_of(resource: &Resource) -> Option<&Placement> {
    match &resource.body {
        ResourceBody::Device(d) => Some(&d.placement),
        ResourceBody::EdgeNode(e) => Some(&e.placement),
        _ => None,
    }
}

fn placement_of_mut(resource: &mut Resource) -> Option<&mut Placement> {
    match &mut resource.body {
        ResourceBody::Device(d) => Some(&mut d.placement),
        ResourceBody::EdgeNode(e) => Some(&mut e.placement),
        _ => None,
    }
}

/// The keys of `desired` whose values `reported` does not have: what a device still has
/// to apply (the device-shadow delta).
pub fn config_delta(
    desired: &Map<String, Value>,
    reported: &Map<String, Value>,
) -> Map<String, Value> {
    desired
        .iter()
        .filter(|(key, value)| reported.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}
