//! The Thing Description Directory's use cases: TDs in, validated against the W3C TD 1.1
//! JSON Schema, stored as devices or edge nodes with the original TD kept; TDs out, with
//! the directory's registration information; expiry of TDs that carry a time to live.

use std::sync::LazyLock;

use iotcane_model::td::resource_from_td;
use iotcane_model::{Kind, ResourceBody, ResourceId, Tenant, Violation, Violations};
use iotcane_store::{Meta, Stored, Written, format_time_ms, parse_time_ms};
use serde_json::{Map, Value, json};

use crate::{Actor, App, AppError};

/// The W3C TD 1.1 JSON Schema, bundled (no schema is ever fetched at run time).
const TD_SCHEMA: &str = include_str!("../../../schema/w3c/td-json-schema-validation.json");

/// The longest time to live a TD may ask for: a hundred years, in seconds.
const MAX_TTL_S: f64 = 100.0 * 365.25 * 86_400.0;

/// The kinds a Thing Description can describe.
pub const THING_KINDS: [Kind; 2] = [Kind::Device, Kind::EdgeNode];

static TD_VALIDATOR: LazyLock<Result<jsonschema::Validator, String>> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(TD_SCHEMA).map_err(|e| e.to_string())?;
    jsonschema::draft7::new(&schema).map_err(|e| e.to_string())
});

/// A stored Thing: its TD as the directory serves it, and its version metadata.
#[derive(Debug, Clone)]
pub struct Thing {
    pub id: ResourceId,
    pub td: Map<String, Value>,
    pub meta: Meta,
    /// When it expires (epoch ms), if it has a time to live.
    pub expires_ms: Option<i64>,
}

/// Checks a TD against the TD 1.1 JSON Schema; every violation names its JSON pointer.
pub fn validate_td(td: &Value) -> Result<(), Violations> {
    let validator = TD_VALIDATOR
        .as_ref()
        .map_err(|e| Violations::one("", format!("TD schema unavailable: {e}")))?;
    let violations: Vec<Violation> = validator
        .iter_errors(td)
        .take(50)
        .map(|e| Violation {
            path: e.instance_path().as_str().to_owned(),
            message: e.masked().to_string(),
        })
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Violations(violations))
    }
}

/// Gives a description without `id` the id it is addressed to (`by`: the request, the
/// topic); refuses one whose own `id` differs.
pub(crate) fn bind_id(
    body: &mut Map<String, Value>,
    id: &ResourceId,
    by: &str,
) -> Result<(), Violations> {
    match body.get("id") {
        Some(Value::String(own)) if own != id.as_str() => Err(Violations::one(
            "/id",
            format!("is `{own}`, but {by} is for `{id}`"),
        )),
        Some(Value::String(_)) => Ok(()),
        Some(_) => Err(Violations::one("/id", "must be a string")),
        None => {
            body.insert("id".into(), Value::String(id.to_string()));
            Ok(())
        }
    }
}

/// When a stored TD expires: its `registration.expires`, as epoch ms.
pub fn expiry_of(td: &Map<String, Value>) -> Option<i64> {
    td.get("registration")?
        .get("expires")?
        .as_str()
        .and_then(parse_time_ms)
}

impl App {
    /// Stores a TD under `id` (the TD's own `id` must match when it has one). Returns the
    /// write and whether the Thing is new.
    pub async fn put_thing(
        &self,
        tenant: &Tenant,
        id: &ResourceId,
        td: Value,
        expected_version: Option<i64>,
        actor: &Actor,
    ) -> Result<Written, AppError> {
        let Value::Object(mut td) = td else {
            return Err(Violations::one("", "a Thing Description must be a JSON object").into());
        };
        bind_id(&mut td, id, "the request")?;
        let resource = thing_resource(td)?;
        self.put(tenant, resource, expected_version, actor).await
    }

    /// Stores an anonymous TD (one without `id`) under a new `urn:uuid:` id.
    pub async fn create_thing(
        &self,
        tenant: &Tenant,
        td: Value,
        actor: &Actor,
    ) -> Result<Written, AppError> {
        let Value::Object(mut td) = td else {
            return Err(Violations::one("", "a Thing Description must be a JSON object").into());
        };
        if td.contains_key("id") {
            return Err(Violations::one(
                "/id",
                "an anonymous TD has no id; use PUT /things/{id} for a TD with one",
            )
            .into());
        }
        let id: ResourceId = new_urn_uuid()
            .parse()
            .map_err(|e: iotcane_model::IdError| {
                AppError::Invalid(Violations::one("/id", e.to_string()))
            })?;
        td.insert("id".into(), Value::String(id.to_string()));
        let resource = thing_resource(td)?;
        Ok(self
            .store()
            .write_one(
                iotcane_store::Change::Put {
                    tenant: tenant.clone(),
                    resource: Box::new(resource),
                    expected_version: Some(0),
                    create_only: true,
                },
                &actor.name,
                actor.source,
            )
            .await?)
    }

    /// Applies a JSON merge patch (RFC 7396) to a stored TD.
    pub async fn patch_thing(
        &self,
        tenant: &Tenant,
        id: &ResourceId,
        patch: &Value,
        expected_version: Option<i64>,
        actor: &Actor,
    ) -> Result<Written, AppError> {
        let thing = self
            .thing(tenant, id)?
            .ok_or_else(|| not_found(tenant, id))?;
        if let Some(expected) = expected_version
            && expected != thing.meta.version
        {
            return Err(iotcane_store::StoreError::VersionMismatch {
                id: id.clone(),
                expected,
                actual: thing.meta.version,
            }
            .into());
        }
        let mut td = Value::Object(stored_td(thing.td));
        json_patch::merge(&mut td, patch);
        // The merge happened on this version: a concurrent change in between is a conflict.
        self.put_thing(tenant, id, td, Some(thing.meta.version), actor)
            .await
    }

    /// A stored Thing with its registration information, unless it has expired.
    pub fn thing(&self, tenant: &Tenant, id: &ResourceId) -> Result<Option<Thing>, AppError> {
        let Some(stored) = self.get(tenant, id)? else {
            return Ok(None);
        };
        Ok(thing_of(stored).filter(|t| t.expires_ms.is_none_or(|at| at > crate::now_ms())))
    }

    /// A tenant's Things in id order after a cursor, expired ones left out.
    pub fn things(
        &self,
        tenant: &Tenant,
        after: Option<&ResourceId>,
        limit: usize,
    ) -> Result<Vec<Thing>, AppError> {
        let mut out = Vec::with_capacity(limit.min(1024));
        let mut cursor = after.cloned();
        while out.len() < limit {
            let page = self.store().list_kinds(
                tenant,
                &THING_KINDS,
                cursor.as_ref(),
                limit - out.len(),
            )?;
            let Some((last, _)) = page.last() else {
                break;
            };
            cursor = Some(last.clone());
            for (id, _) in page {
                if let Some(thing) = self.thing(tenant, &id)? {
                    out.push(thing);
                }
            }
        }
        Ok(out)
    }

    /// How many Things a tenant has (expired ones not yet removed included).
    pub fn thing_count(&self, tenant: &Tenant) -> Result<usize, AppError> {
        Ok(self.store().count_kinds(tenant, &THING_KINDS)?)
    }

    /// Deletes `id` if its stored TD has expired by `now` (at the version seen, so a TD
    /// refreshed meanwhile stays). Returns whether it was deleted.
    async fn expire_one(
        &self,
        tenant: &Tenant,
        id: &ResourceId,
        now: i64,
        actor: &Actor,
    ) -> Result<bool, AppError> {
        let Some(stored) = self.get(tenant, id)? else {
            return Ok(false);
        };
        let version = stored.meta.version;
        let expired = thing_of(stored)
            .and_then(|t| t.expires_ms)
            .is_some_and(|at| at <= now);
        if !expired {
            return Ok(false);
        }
        match self.delete(tenant, id, Some(version), actor).await {
            Ok(_) => Ok(true),
            Err(AppError::Store(
                iotcane_store::StoreError::VersionMismatch { .. }
                | iotcane_store::StoreError::NotFound { .. },
            )) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every Thing with an expiry, read from the graph: a scan of the stored TDs that
    /// parses only those that mention an expiry.
    fn expiring_things(&self) -> Result<Vec<(i64, Tenant, ResourceId)>, AppError> {
        let tds = self
            .store()
            .scan_literals(iotcane_model::vocab::ic::THING_DESCRIPTION, |json| {
                json.contains("\"expires\"")
            })?;
        Ok(tds
            .into_iter()
            .filter_map(|(tenant, id, json)| {
                let td: Map<String, Value> = serde_json::from_str(&json).ok()?;
                Some((expiry_of(&td)?, tenant, id))
            })
            .collect())
    }

    /// Removes expired Things through the journal until `shutdown`, checking every
    /// `interval`. An index of expiry times, built once and then kept current from the
    /// store's change feed (which includes other replicas' changes), means a tick costs
    /// nothing when nothing is due.
    pub async fn run_expiry(
        &self,
        interval: std::time::Duration,
        shutdown: tokio_util::sync::CancellationToken,
        actor: &Actor,
    ) {
        let mut changes = self.store().subscribe();
        let mut index = ExpiryIndex::default();
        let mut rebuild = true;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if rebuild {
                let app = self.clone();
                match tokio::task::spawn_blocking(move || app.expiring_things()).await {
                    Ok(Ok(all)) => {
                        index = ExpiryIndex::default();
                        for (at, tenant, id) in all {
                            index.set(tenant, id, Some(at));
                        }
                        rebuild = false;
                    }
                    Ok(Err(e)) => tracing::error!(error = %e, "reading TD expiries failed"),
                    Err(e) => tracing::error!(error = %e, "reading TD expiries failed"),
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                change = changes.recv() => match change {
                    Ok(entry) => index.follow(&entry),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => rebuild = true,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    let now = crate::now_ms();
                    let mut expired = 0;
                    for (tenant, id) in index.due(now) {
                        match self.expire_one(&tenant, &id, now, actor).await {
                            Ok(true) => expired += 1,
                            Ok(false) => {}
                            Err(e) => {
                                tracing::error!(error = %e, id = %id, "TD expiry failed; will retry");
                                index.set(tenant, id, Some(now));
                            }
                        }
                    }
                    if expired > 0 {
                        tracing::info!(expired, "expired Thing Descriptions removed");
                    }
                }
            }
        }
    }
}

/// When each Thing with a time to live expires.
#[derive(Debug, Default)]
struct ExpiryIndex {
    by_time: std::collections::BTreeSet<(i64, Tenant, ResourceId)>,
    by_thing: std::collections::HashMap<(Tenant, ResourceId), i64>,
}

impl ExpiryIndex {
    fn set(&mut self, tenant: Tenant, id: ResourceId, at: Option<i64>) {
        let key = (tenant, id);
        if let Some(old) = self.by_thing.remove(&key) {
            self.by_time.remove(&(old, key.0.clone(), key.1.clone()));
        }
        if let Some(at) = at {
            self.by_time.insert((at, key.0.clone(), key.1.clone()));
            self.by_thing.insert(key, at);
        }
    }

    /// Keeps the index current with one journal row.
    fn follow(&mut self, entry: &iotcane_store::JournalEntry) {
        if !THING_KINDS.iter().any(|k| k.as_str() == entry.kind) {
            return;
        }
        let (Ok(tenant), Ok(id)) = (entry.tenant.parse(), entry.resource_id.parse()) else {
            return;
        };
        // Most writes carry no expiry: only those that mention one are parsed.
        let at = entry
            .body
            .as_deref()
            .filter(|b| b.contains("\"expires\""))
            .and_then(|body| {
                let value: Value = serde_json::from_str(body).ok()?;
                value
                    .pointer("/td/registration/expires")?
                    .as_str()
                    .and_then(parse_time_ms)
            });
        self.set(tenant, id, at);
    }

    /// Takes the Things due by `now` out of the index.
    fn due(&mut self, now: i64) -> Vec<(Tenant, ResourceId)> {
        let mut out = Vec::new();
        while let Some(first) = self.by_time.first() {
            if first.0 > now {
                break;
            }
            if let Some((_, tenant, id)) = self.by_time.pop_first() {
                self.by_thing.remove(&(tenant.clone(), id.clone()));
                out.push((tenant, id));
            }
        }
        out
    }
}

fn not_found(tenant: &Tenant, id: &ResourceId) -> AppError {
    iotcane_store::StoreError::NotFound {
        tenant: tenant.clone(),
        id: id.clone(),
    }
    .into()
}

/// Validates a TD, sets its registration's expiry from its time to live, and maps it to
/// a resource.
pub(crate) fn thing_resource(
    mut td: Map<String, Value>,
) -> Result<iotcane_model::Resource, AppError> {
    // The directory owns `registration`: only `ttl` (and an explicit `expires`) are taken
    // from the client; created/modified/retrieved are added when the TD is read.
    let mut registration = Map::new();
    if let Some(Value::Object(given)) = td.remove("registration") {
        match given.get("ttl") {
            // At most a century: beyond that, expiry times stop being representable.
            Some(Value::Number(n)) if n.as_f64().is_some_and(|s| s > 0.0 && s <= MAX_TTL_S) => {
                let ttl_s = n.as_f64().unwrap_or(0.0);
                registration.insert("ttl".into(), Value::Number(n.clone()));
                let expires = crate::now_ms().saturating_add((ttl_s * 1000.0) as i64);
                registration.insert("expires".into(), json!(format_time_ms(expires)));
            }
            Some(_) => {
                return Err(Violations::one(
                    "/registration/ttl",
                    "must be a positive number of seconds",
                )
                .into());
            }
            None => {}
        }
        if let Some(expires) = given.get("expires")
            && !registration.contains_key("expires")
        {
            match expires.as_str().and_then(parse_time_ms) {
                Some(at) => {
                    registration.insert("expires".into(), json!(format_time_ms(at)));
                }
                None => {
                    return Err(Violations::one(
                        "/registration/expires",
                        "must be an RFC 3339 date-time",
                    )
                    .into());
                }
            }
        }
    }
    let td_value = Value::Object(td);
    validate_td(&td_value)?;
    let Value::Object(mut td) = td_value else {
        unreachable!("validated as an object above")
    };
    if !registration.is_empty() {
        td.insert("registration".into(), Value::Object(registration));
    }
    Ok(resource_from_td(td, None)?)
}

/// The TD as the client gave it (registration reduced to what the client set).
fn stored_td(mut td: Map<String, Value>) -> Map<String, Value> {
    if let Some(Value::Object(registration)) = td.get_mut("registration") {
        registration.retain(|k, _| k == "ttl" || k == "expires");
    }
    td
}

/// The Thing a stored resource is, with its registration information. Devices and edge
/// nodes stored without a TD get one made from the model.
pub fn thing_of(stored: Stored) -> Option<Thing> {
    let Stored { resource, meta } = stored;
    let (placement, kind) = match &resource.body {
        ResourceBody::Device(d) => (&d.placement, Kind::Device),
        ResourceBody::EdgeNode(e) => (&e.placement, Kind::EdgeNode),
        _ => return None,
    };
    let mut td = match &placement.td {
        Some(td) => td.clone(),
        None => synthesized_td(&resource, placement, kind),
    };
    let expires_ms = expiry_of(&td);
    let registration = td
        .entry("registration")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(r) = registration {
        r.insert("created".into(), json!(format_time_ms(meta.created_ms)));
        r.insert("modified".into(), json!(format_time_ms(meta.modified_ms)));
        r.insert("retrieved".into(), json!(format_time_ms(crate::now_ms())));
    }
    Some(Thing {
        id: resource.id.clone(),
        td,
        meta,
        expires_ms,
    })
}

/// A minimal TD 1.1 for a device or edge node that was stored without one.
fn synthesized_td(
    resource: &iotcane_model::Resource,
    placement: &iotcane_model::resource::Placement,
    kind: Kind,
) -> Map<String, Value> {
    let mut td = Map::new();
    td.insert(
        "@context".into(),
        json!(["https://www.w3.org/2022/wot/td/v1.1", {"iotcane": "https://w3id.org/iotcane/ontology#"}]),
    );
    td.insert("id".into(), json!(resource.id.to_string()));
    if kind == Kind::EdgeNode {
        td.insert("@type".into(), json!("iotcane:EdgeNode"));
    }
    td.insert("title".into(), json!(resource.name));
    if let Some(d) = &resource.description {
        td.insert("description".into(), json!(d));
    }
    td.insert(
        "securityDefinitions".into(),
        json!({"nosec_sc": {"scheme": "nosec"}}),
    );
    td.insert("security".into(), json!("nosec_sc"));
    let mut groups: [(&str, Map<String, Value>); 3] = [
        ("properties", Map::new()),
        ("actions", Map::new()),
        ("events", Map::new()),
    ];
    for a in &placement.affordances {
        let slot = match a.kind {
            iotcane_model::AffordanceKind::Property => 0,
            iotcane_model::AffordanceKind::Action => 1,
            iotcane_model::AffordanceKind::Event => 2,
        };
        let forms: Vec<Value> = a
            .forms
            .iter()
            .map(|f| {
                let mut form = json!({ "href": f.href });
                if let Some(ct) = &f.content_type {
                    form["contentType"] = json!(ct);
                }
                form
            })
            .collect();
        let mut affordance = json!({ "forms": forms });
        if let Some(title) = &a.title {
            affordance["title"] = json!(title);
        }
        groups[slot].1.insert(a.name.clone(), affordance);
    }
    for (member, map) in groups {
        if !map.is_empty() {
            td.insert(member.into(), Value::Object(map));
        }
    }
    td
}

/// A random (version 4) UUID URN.
fn new_urn_uuid() -> String {
    let mut b = crate::keys::random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::keys::hex(&b);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Shared by the gateways: the bundled TD schema compiles.
pub fn td_schema_ready() -> bool {
    TD_VALIDATOR.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_td_schema_compiles_and_checks() {
        assert!(td_schema_ready());
        let minimal = json!({
            "@context": "https://www.w3.org/2022/wot/td/v1.1",
            "title": "Lamp",
            "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
            "security": "nosec_sc"
        });
        assert!(validate_td(&minimal).is_ok());
        let broken = json!({"@context": "https://www.w3.org/2022/wot/td/v1.1", "title": 5});
        let violations = validate_td(&broken).unwrap_err();
        assert!(
            violations.0.iter().any(|v| v.path == "/title"),
            "{violations:?}"
        );
    }

    #[test]
    fn the_expiry_index_hands_out_what_is_due_once() {
        let mut index = ExpiryIndex::default();
        let t: Tenant = "acme".parse().unwrap();
        let id = |s: &str| s.parse::<ResourceId>().unwrap();
        index.set(t.clone(), id("a"), Some(10));
        index.set(t.clone(), id("b"), Some(20));
        index.set(t.clone(), id("a"), Some(30)); // refreshed
        index.set(t.clone(), id("c"), Some(5));
        index.set(t.clone(), id("c"), None); // deleted
        assert_eq!(index.due(25), [(t.clone(), id("b"))]);
        assert!(index.due(25).is_empty());
        assert_eq!(index.due(30), [(t, id("a"))]);
    }

    #[test]
    fn urn_uuids_are_version_4() {
        let urn = new_urn_uuid();
        assert_eq!(urn.len(), "urn:uuid:".len() + 36);
        assert_eq!(&urn[23..24], "4");
    }
}
