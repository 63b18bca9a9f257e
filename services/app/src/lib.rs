//! IoT-CANE's use cases, shared by every gateway and the command line: importing and
//! checking knowledge, reading and changing resources, exporting.
//!
//! The app layer owns the rules between the gateways and the store: inputs arrive as
//! model values already read by `iotcane_model::formats`, are validated there, and reach
//! the journal in batches.

pub mod directory;
pub mod events;
pub mod keys;
pub mod live;
pub mod recommend;

use iotcane_model::formats::{Item, Origin};
use iotcane_model::{Resource, ResourceId, Tenant, Violations};
use iotcane_store::{
    Change, ChangeSource, JournalEntry, KnowledgeStore, StoreError, Stored, Written,
};

pub use keys::{KeyError, Keys, Principal, Role};

pub use iotcane_store as store;

/// Errors of the use cases.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    #[error("invalid input: {0}")]
    Invalid(#[from] Violations),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no recommendation `{0}`")]
    NoRecommendation(String),
    /// A rule would change the conclusion of cornerstone cases; it needs confirming.
    #[error("the rule would change the conclusion of {} cornerstone case(s)", .0.len())]
    RuleChangesCases(Vec<iotcane_recommender::ChangedCase>),
}

/// Who is making a change, and through which interface.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub source: ChangeSource,
}

/// Why one imported item did not make it in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejection {
    /// Which file (or input) it came from.
    pub input: String,
    /// Where in that input.
    pub origin: String,
    pub id: Option<String>,
    pub reasons: Vec<String>,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    pub accepted: usize,
    pub rejected: Vec<Rejection>,
    pub created: usize,
    pub updated: usize,
}

/// A batch that reached the journal: its items are acknowledged.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Committed {
    pub ids: Vec<String>,
    pub last_seq: i64,
}

/// The application: a cheap `Clone` handle.
#[derive(Debug, Clone)]
pub struct App {
    store: KnowledgeStore,
    keys: Keys,
    /// SPARQL updates run one at a time: each copies a tenant's graphs.
    updates: std::sync::Arc<tokio::sync::Mutex<()>>,
    recommender: std::sync::Arc<recommend::RecommenderState>,
}

/// One version of a resource, from the journal.
#[derive(Debug, Clone)]
pub struct Version {
    pub entry: JournalEntry,
    /// The description at this version; `None` for a delete.
    pub resource: Option<Resource>,
}

impl App {
    pub fn new(store: KnowledgeStore) -> Self {
        Self {
            keys: Keys::new(store.clone()),
            store,
            updates: std::sync::Arc::default(),
            recommender: std::sync::Arc::new(recommend::RecommenderState::new()),
        }
    }

    pub fn store(&self) -> &KnowledgeStore {
        &self.store
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Writes many resources in one journal transaction; one result per resource, in order.
    pub async fn put_many(
        &self,
        tenant: &Tenant,
        resources: Vec<Resource>,
        actor: &Actor,
    ) -> Result<Vec<Result<Written, StoreError>>, AppError> {
        let changes = resources
            .into_iter()
            .map(|r| Change::put(tenant.clone(), r))
            .collect();
        Ok(self.store.write(changes, &actor.name, actor.source).await?)
    }

    /// Applies a JSON merge patch (RFC 7396) to a resource's native JSON. The result is
    /// validated as a whole and written only if the resource is still at the version the
    /// patch was applied to.
    pub async fn patch(
        &self,
        tenant: &Tenant,
        id: &ResourceId,
        patch: &serde_json::Value,
        expected_version: Option<i64>,
        confirm: bool,
        actor: &Actor,
    ) -> Result<Written, AppError> {
        let current = self.get(tenant, id)?.ok_or_else(|| StoreError::NotFound {
            tenant: tenant.clone(),
            id: id.clone(),
        })?;
        if let Some(expected) = expected_version
            && expected != current.meta.version
        {
            return Err(StoreError::VersionMismatch {
                id: id.clone(),
                expected,
                actual: current.meta.version,
            }
            .into());
        }
        let mut json = current.resource.to_json();
        json_patch::merge(&mut json, patch);
        if json.get("id").and_then(serde_json::Value::as_str) != Some(id.as_str()) {
            return Err(Violations::one("/id", "cannot be changed by a patch").into());
        }
        if json.get("kind").and_then(serde_json::Value::as_str)
            != Some(current.resource.kind().as_str())
        {
            return Err(Violations::one("/kind", "cannot be changed by a patch").into());
        }
        let resource = Resource::from_json(json)?;
        self.write_rule_or_put(tenant, resource, Some(current.meta.version), confirm, actor)
            .await
    }

    /// Runs a SPARQL update through the journal: the resources it changes are written as
    /// one all-or-nothing batch, each only if nobody changed it meanwhile. Returns the
    /// writes; a refusal (a concurrent change) is the error, and then nothing is written.
    pub async fn sparql_update(
        &self,
        tenant: &Tenant,
        update: &str,
        actor: &Actor,
    ) -> Result<Vec<Written>, AppError> {
        let _one_at_a_time = self.updates.lock().await;
        let changes = self.store.plan_update(tenant, update).await?;
        let touches_rules = changes.iter().any(|c| match c {
            Change::Put { resource, .. } => resource.kind() == iotcane_model::Kind::Rule,
            _ => false,
        });
        if touches_rules {
            return Err(Violations::one(
                "",
                "this update writes refinement rules: write rules one at a time at /api/v1/rules/{id}, where they are checked against the cornerstone cases",
            )
            .into());
        }
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let results = self
            .store
            .write_all_or_nothing(changes, &actor.name, actor.source)
            .await?;
        // The refusal that caused the abort, rather than one of the aborted changes.
        let mut written = Vec::with_capacity(results.len());
        let mut aborted = None;
        for result in results {
            match result {
                Ok(w) => written.push(w),
                Err(e @ StoreError::Aborted(_)) => aborted = Some(e),
                Err(refusal) => return Err(refusal.into()),
            }
        }
        match aborted {
            Some(e) => Err(e.into()),
            None => Ok(written),
        }
    }

    /// Every version of a resource, oldest first.
    pub async fn history(
        &self,
        tenant: &Tenant,
        id: &ResourceId,
    ) -> Result<Vec<Version>, AppError> {
        let entries = self.store.history(tenant, id).await?;
        entries
            .into_iter()
            .map(|entry| {
                let resource = match &entry.body {
                    Some(body) => Some(iotcane_store::decode_body(entry.seq, body)?),
                    None => None,
                };
                Ok(Version { entry, resource })
            })
            .collect()
    }

    /// Imports read items into a tenant, `batch_size` per journal transaction. Invalid
    /// items are reported and skipped; each committed batch is announced to `on_commit`
    /// before the next one starts.
    pub async fn import(
        &self,
        tenant: &Tenant,
        input: &str,
        items: Vec<Item>,
        actor: &Actor,
        batch_size: usize,
        mut on_commit: impl FnMut(&Committed),
    ) -> Result<ImportReport, AppError> {
        let mut report = ImportReport::default();
        let mut batch: Vec<(Origin, Resource)> = Vec::with_capacity(batch_size);
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            batch.clear();
            for item in items.by_ref() {
                match item.result {
                    Ok(resource) => {
                        batch.push((item.origin, resource));
                        if batch.len() == batch_size {
                            break;
                        }
                    }
                    Err(violations) => report.rejected.push(Rejection {
                        input: input.to_owned(),
                        origin: item.origin.to_string(),
                        id: None,
                        reasons: violations.0.iter().map(ToString::to_string).collect(),
                    }),
                }
            }
            if batch.is_empty() {
                continue;
            }
            // The resources move into the write; the ids stay for the report.
            let mut changes = Vec::with_capacity(batch.len());
            let mut sent = Vec::with_capacity(batch.len());
            for (origin, resource) in batch.drain(..) {
                sent.push((origin, resource.id.clone()));
                changes.push(Change::put(tenant.clone(), resource));
            }
            let results = self.store.write(changes, &actor.name, actor.source).await?;
            let mut committed = Committed {
                ids: Vec::with_capacity(batch.len()),
                last_seq: 0,
            };
            for ((origin, id), result) in sent.iter().zip(results) {
                match result {
                    Ok(written) => {
                        report.accepted += 1;
                        match written.op {
                            iotcane_store::Op::Create => report.created += 1,
                            _ => report.updated += 1,
                        }
                        committed.last_seq = written.seq;
                        committed.ids.push(written.id.to_string());
                    }
                    Err(e) => report.rejected.push(Rejection {
                        input: input.to_owned(),
                        origin: origin.to_string(),
                        id: Some(id.to_string()),
                        reasons: vec![e.to_string()],
                    }),
                }
            }
            on_commit(&committed);
        }
        Ok(report)
    }

    /// Creates or replaces one resource, optionally only at an expected version; a rule
    /// goes through [`App::write_rule`] (checked against the cornerstone cases, `confirm`
    /// to accept changing them).
    pub async fn write_rule_or_put(
        &self,
        tenant: &Tenant,
        resource: Resource,
        expected_version: Option<i64>,
        confirm: bool,
        actor: &Actor,
    ) -> Result<Written, AppError> {
        if resource.kind() == iotcane_model::Kind::Rule {
            self.write_rule(tenant, resource, expected_version, false, confirm, actor)
                .await
        } else {
            self.put(tenant, resource, expected_version, actor).await
        }
    }

    /// Creates or replaces one resource, optionally only at an expected version. Rules
    /// are written with [`App::write_rule`].
    pub async fn put(
        &self,
        tenant: &Tenant,
        resource: Resource,
        expected_version: Option<i64>,
        actor: &Actor,
    ) -> Result<Written, AppError> {
        Ok(self
            .store
            .write_one(
                Change::Put {
                    tenant: tenant.clone(),
                    resource: Box::new(resource),
                    expected_version,
                    create_only: false,
                },
                &actor.name,
                actor.source,
            )
            .await?)
    }

    /// Deletes a resource, optionally only at an expected version.
    pub async fn delete(
        &self,
        tenant: &Tenant,
        id: &ResourceId,
        expected_version: Option<i64>,
        actor: &Actor,
    ) -> Result<Written, AppError> {
        Ok(self
            .store
            .write_one(
                Change::Delete {
                    tenant: tenant.clone(),
                    id: id.clone(),
                    expected_version,
                },
                &actor.name,
                actor.source,
            )
            .await?)
    }

    pub fn get(&self, tenant: &Tenant, id: &ResourceId) -> Result<Option<Stored>, AppError> {
        Ok(self.store.get(tenant, id)?)
    }
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Validates items without storing anything: the report an import would give, minus the
/// store's own refusals.
pub fn check(input: &str, items: &[Item]) -> ImportReport {
    let mut report = ImportReport::default();
    for item in items {
        match &item.result {
            Ok(_) => report.accepted += 1,
            Err(violations) => report.rejected.push(Rejection {
                input: input.to_owned(),
                origin: item.origin.to_string(),
                id: None,
                reasons: violations.0.iter().map(ToString::to_string).collect(),
            }),
        }
    }
    report
}
