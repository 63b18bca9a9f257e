//! Recommendations: checking a declarative context, retrieving its candidates from the
//! graph with typed queries (live context included), running the recommender, keeping
//! the answer; feedback that turns accepted configurations into cases; refinement rules
//! checked against cornerstone cases; subscriptions re-evaluated as knowledge changes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::Duration;

use iotcane_model::fields::field;
use iotcane_model::{
    Binding, BindingRole, Case, Comparator, Configuration as ModelConfiguration, Kind, Metric,
    Outcome, QosRequirement, Resource, ResourceBody, ResourceId, Tenant, Violation, Violations,
};
use iotcane_recommender::context::Need;
use iotcane_recommender::{
    AppContext, CaseIndex, ChangedCase, Knowledge, Recommendation, Settings,
};
use iotcane_store::{
    Condition, Filter, Find, JournalEntry, Op, RecommendationRecord, StoreError, Written,
};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::{Actor, App, AppError};

const CONTEXT_SCHEMA: &str = include_str!("../../../schema/json-schema/context.schema.json");

static CONTEXT_VALIDATOR: LazyLock<Result<jsonschema::Validator, String>> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(CONTEXT_SCHEMA).map_err(|e| e.to_string())?;
    jsonschema::draft202012::new(&schema).map_err(|e| e.to_string())
});

/// How often subscriptions are re-evaluated at most, per tenant.
const REEVALUATE_EVERY: Duration = Duration::from_secs(1);
/// How long a replica keeps a subscription after it last re-evaluated it: far longer than
/// a re-evaluation takes, short enough that a dead replica's subscriptions move on soon.
const SUBSCRIPTION_LEASE: Duration = Duration::from_secs(30);
/// The objective improvement that makes a better configuration worth announcing, when a
/// subscription states none.
pub const DEFAULT_MARGIN: f64 = 0.05;

/// Checks a context: the JSON Schema, then the types, then the model's own checks. Every
/// violation names its field by JSON pointer.
pub fn parse_context(value: &Value) -> Result<AppContext, Violations> {
    let validator = CONTEXT_VALIDATOR
        .as_ref()
        .map_err(|e| Violations::one("", format!("context schema unavailable: {e}")))?;
    let violations: Vec<Violation> = validator
        .iter_errors(value)
        .take(50)
        .map(|e| Violation::new(e.instance_path().as_str(), e.masked().to_string()))
        .collect();
    if !violations.is_empty() {
        return Err(Violations(violations));
    }
    let ctx: AppContext = iotcane_model::typed(value.clone()).map_err(|v| Violations(vec![v]))?;
    ctx.check()?;
    Ok(ctx)
}

/// A stored recommendation, as served.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredRecommendation {
    pub id: String,
    pub created_at: String,
    pub context: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<String>,
    pub subscribed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    /// How long the recommender took, in ms (retrieval and search).
    pub elapsed_ms: f64,
    #[serde(flatten)]
    pub answer: Value,
}

impl StoredRecommendation {
    fn of(record: RecommendationRecord) -> Result<Self, AppError> {
        let stored: Value = serde_json::from_str(&record.result)
            .map_err(|e| StoreError::Corrupt(format!("recommendation {}: {e}", record.id)))?;
        let elapsed_ms = stored
            .get("elapsedMs")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let mut answer = stored;
        if let Some(map) = answer.as_object_mut() {
            map.remove("elapsedMs");
        }
        Ok(Self {
            created_at: iotcane_store::format_time_ms(record.created_ms),
            context: serde_json::from_str(&record.context).unwrap_or(Value::Null),
            supersedes: record.supersedes,
            subscribed: record.subscribed,
            margin: record.margin,
            feedback: record.feedback.and_then(|f| serde_json::from_str(&f).ok()),
            case: record.case_id,
            id: record.id,
            elapsed_ms,
            answer,
        })
    }

    /// The configuration at `rank` (1-based).
    pub fn configuration(&self, rank: usize) -> Option<&Value> {
        self.answer
            .get("configurations")
            .and_then(Value::as_array)
            .and_then(|c| c.get(rank.checked_sub(1)?))
    }
}

/// Feedback on a recommendation.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    pub accepted: bool,
    /// Which configuration (rank, from 1).
    pub configuration: usize,
    pub reason: Option<String>,
    /// How it went, for an accepted configuration (now or later).
    pub outcome: Option<Outcome>,
}

/// A recommendation event: a subscribed recommendation was re-evaluated into a new one.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecommendationEvent {
    #[serde(skip)]
    pub tenant: Tenant,
    /// The new recommendation.
    pub id: String,
    pub supersedes: String,
    /// `constraintBroken` or `betterFound`.
    pub reason: String,
    pub detail: String,
    pub objective: Option<f64>,
}

/// What the recommender keeps in memory per tenant, current with the journal: the case
/// index, and the catalog (device models and edge types: neither a site nor an
/// `instanceOf`), which typed queries can only find by checking every device.
#[derive(Debug, Default)]
pub(crate) struct TenantView {
    cases: CaseIndex,
    catalog: BTreeMap<ResourceId, Resource>,
}

impl TenantView {
    fn upsert(&mut self, resource: &Resource) {
        match &resource.body {
            ResourceBody::Case(_) => self.cases.upsert(resource),
            ResourceBody::Device(_) | ResourceBody::EdgeNode(_) if is_catalog(resource) => {
                self.catalog.insert(resource.id.clone(), resource.clone());
            }
            ResourceBody::Device(_) | ResourceBody::EdgeNode(_) => {
                self.catalog.remove(&resource.id);
            }
            _ => {}
        }
    }

    /// Applies one journal row; puts and deletes are idempotent.
    fn apply(&mut self, entry: &JournalEntry) {
        let Ok(id) = entry.resource_id.parse::<ResourceId>() else {
            return;
        };
        if !VIEW_KINDS.iter().any(|k| k.as_str() == entry.kind) {
            return;
        }
        match (&entry.op, &entry.body) {
            (Op::Delete, _) | (_, None) => {
                self.cases.remove(&id);
                self.catalog.remove(&id);
            }
            (_, Some(body)) => match iotcane_store::decode_body(entry.seq, body) {
                Ok(resource) => self.upsert(&resource),
                Err(e) => {
                    tracing::warn!(seq = entry.seq, error = %e, "resource in the journal is unreadable")
                }
            },
        }
    }

    /// The catalog models of one kind.
    fn catalog_of(&self, kind: Kind) -> impl Iterator<Item = &Resource> {
        self.catalog.values().filter(move |r| r.kind() == kind)
    }
}

/// The kinds a [`TenantView`] follows.
const VIEW_KINDS: [Kind; 3] = [Kind::Case, Kind::Device, Kind::EdgeNode];

fn is_catalog(resource: &Resource) -> bool {
    let placement = match &resource.body {
        ResourceBody::Device(d) => &d.placement,
        ResourceBody::EdgeNode(e) => &e.placement,
        _ => return false,
    };
    placement.site.is_none() && placement.instance_of.is_none()
}

/// A tenant's view, or the changes seen while it is being built.
#[derive(Debug)]
enum ViewSlot {
    Loading(Vec<Arc<JournalEntry>>),
    Ready(Arc<RwLock<TenantView>>),
}

/// The recommender's state in the app: case indices and the event channel.
#[derive(Debug)]
pub(crate) struct RecommenderState {
    views: Mutex<HashMap<Tenant, ViewSlot>>,
    /// Whether [`App::run_recommendations`] is following the change feed; without it
    /// views are not kept, since nothing would keep them current.
    following: AtomicBool,
    /// The newest journal row the change feed has handed to the views.
    seen_seq: AtomicI64,
    /// Names this process when it takes subscription leases.
    owner: String,
    settings: Settings,
    events: broadcast::Sender<Arc<RecommendationEvent>>,
    /// Tenants with changes since their subscriptions were last re-evaluated.
    dirty: Mutex<BTreeSet<Tenant>>,
}

/// Tells apart the apps of one process (tests run several).
static INSTANCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl RecommenderState {
    pub(crate) fn new() -> Self {
        Self {
            views: Mutex::default(),
            following: AtomicBool::new(false),
            seen_seq: AtomicI64::new(0),
            owner: format!(
                "{}-{}-{}",
                std::process::id(),
                crate::now_ms(),
                INSTANCES.fetch_add(1, Ordering::Relaxed)
            ),
            settings: Settings::default(),
            events: broadcast::channel(1024).0,
            dirty: Mutex::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn property_filter(need: Need, property: &str) -> Result<Filter, AppError> {
    let key = match need {
        Need::Sensing => "observes",
        Need::Actuation => "actuates",
    };
    typed_filter(Kind::Device, key, property)
}

/// An equality filter on a field, with the value as a typed term.
fn typed_filter(kind: Kind, key: &str, value: &str) -> Result<Filter, AppError> {
    let f = field(Some(kind), key).ok_or_else(|| StoreError::Corrupt(format!("no field {key}")))?;
    let term = f.term(value).map_err(|e| Violations::one("", e))?;
    Ok(Filter {
        path: f.path,
        condition: Condition::OneOf(vec![term]),
    })
}

fn one_of(kind: Kind, key: &str, values: &[String]) -> Result<Filter, AppError> {
    let f = field(Some(kind), key).ok_or_else(|| StoreError::Corrupt(format!("no field {key}")))?;
    let terms = values
        .iter()
        .map(|v| f.term(v))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Violations::one("", e))?;
    Ok(Filter {
        path: f.path,
        condition: Condition::OneOf(terms),
    })
}

fn absent(kind: Kind, key: &str) -> Result<Filter, AppError> {
    let f = field(Some(kind), key).ok_or_else(|| StoreError::Corrupt(format!("no field {key}")))?;
    Ok(Filter {
        path: f.path,
        condition: Condition::Absent,
    })
}

impl App {
    /// Runs a typed query and reads every resource it finds.
    async fn find_resources(&self, find: Find) -> Result<Vec<Resource>, AppError> {
        let tenant = find.tenant.clone();
        let found = self.store.find(find).await?;
        let mut out = Vec::with_capacity(found.len());
        for f in found {
            if let Some(stored) = self.store.get(&tenant, &f.id)? {
                out.push(stored.resource);
            }
        }
        Ok(out)
    }

    async fn any(
        &self,
        tenant: &Tenant,
        kind: Kind,
        filters: Vec<Filter>,
    ) -> Result<bool, AppError> {
        let mut find = Find::new(tenant.clone(), Some(kind));
        find.filters = filters;
        Ok(self.store.exists(find).await?)
    }

    /// The candidates of a context, retrieved from the graph; refuses contexts that name
    /// properties, sites, regions or providers the knowledge base does not know.
    pub async fn knowledge_for(
        &self,
        tenant: &Tenant,
        ctx: &AppContext,
    ) -> Result<Knowledge, AppError> {
        Ok(self.knowledge_and_view(tenant, ctx).await?.0)
    }

    async fn knowledge_and_view(
        &self,
        tenant: &Tenant,
        ctx: &AppContext,
    ) -> Result<(Knowledge, Arc<RwLock<TenantView>>), AppError> {
        let view = self.view(tenant).await?;
        let mut unknown = Vec::new();
        let requirements = ctx.requirements();
        let sites = ctx.sites();
        let mut known_sites = BTreeSet::new();
        for site in &sites {
            let site_term = vec![site.clone()];
            let link_from = vec![format!("site:{site}")];
            if self
                .any(
                    tenant,
                    Kind::Device,
                    vec![one_of(Kind::Device, "site", &site_term)?],
                )
                .await?
                || self
                    .any(
                        tenant,
                        Kind::EdgeNode,
                        vec![one_of(Kind::EdgeNode, "site", &site_term)?],
                    )
                    .await?
                || self
                    .any(
                        tenant,
                        Kind::NetworkLink,
                        vec![one_of(Kind::NetworkLink, "from", &link_from)?],
                    )
                    .await?
                || self
                    .any(
                        tenant,
                        Kind::NetworkLink,
                        vec![one_of(Kind::NetworkLink, "to", &link_from)?],
                    )
                    .await?
            {
                known_sites.insert(site.clone());
            }
        }
        let mut devices = Vec::with_capacity(requirements.len());
        for r in &requirements {
            if !known_sites.contains(&r.site) {
                unknown.push(Violation::new(
                    format!("{}/site", r.pointer),
                    format!(
                        "no device, edge node or network link is known at site `{}`",
                        r.site
                    ),
                ));
            }
            let serves = property_filter(r.need, &r.property)?;
            if !self.any(tenant, Kind::Device, vec![serves.clone()]).await? {
                unknown.push(Violation::new(
                    format!("{}/property", r.pointer),
                    format!(
                        "no device in the knowledge base {} `{}`",
                        if r.need == Need::Sensing {
                            "observes"
                        } else {
                            "actuates"
                        },
                        r.property
                    ),
                ));
                devices.push(Vec::new());
                continue;
            }
            let mut found = Vec::new();
            if ctx.use_.registered() {
                let mut find = Find::new(tenant.clone(), Some(Kind::Device));
                // The site first: it narrows far more than the property.
                find.filters = vec![typed_filter(Kind::Device, "site", &r.site)?, serves];
                found.extend(self.find_resources(find).await?);
            }
            if ctx.use_.catalog() {
                let view = view
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                found.extend(
                    view.catalog_of(Kind::Device)
                        .filter(|d| iotcane_recommender::serves(d, r.need, &r.property))
                        .cloned(),
                );
            }
            devices.push(found);
        }
        let q = &ctx.qos;
        for (list, key, pointer) in [
            (&q.allowed_regions, "region", "/qos/allowedRegions"),
            (&q.allowed_providers, "provider", "/qos/allowedProviders"),
        ] {
            for (i, value) in list.iter().flatten().enumerate() {
                let known = self
                    .any(
                        tenant,
                        Kind::CloudOffering,
                        vec![typed_filter(Kind::CloudOffering, key, value)?],
                    )
                    .await?;
                if !known {
                    unknown.push(Violation::new(
                        format!("{pointer}/{i}"),
                        format!("no cloud offering is known in {key} `{value}`"),
                    ));
                }
            }
        }
        if !unknown.is_empty() {
            return Err(Violations(unknown).into());
        }
        let mut edge_nodes = Vec::new();
        let mut find = Find::new(tenant.clone(), Some(Kind::EdgeNode));
        find.filters = vec![one_of(Kind::EdgeNode, "site", &sites)?];
        edge_nodes.extend(self.find_resources(find).await?);
        edge_nodes.extend(
            view.read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .catalog_of(Kind::EdgeNode)
                .cloned(),
        );
        let mut find = Find::new(tenant.clone(), Some(Kind::CloudOffering));
        if let Some(regions) = &q.allowed_regions {
            find.filters
                .push(one_of(Kind::CloudOffering, "region", regions)?);
        }
        if let Some(providers) = &q.allowed_providers {
            find.filters
                .push(one_of(Kind::CloudOffering, "provider", providers)?);
        }
        let offerings = self.find_resources(find).await?;
        let endpoints: Vec<String> = sites.iter().map(|s| format!("site:{s}")).collect();
        let mut links = Vec::new();
        for key in ["from", "to"] {
            let mut find = Find::new(tenant.clone(), Some(Kind::NetworkLink));
            find.filters = vec![one_of(Kind::NetworkLink, key, &endpoints)?];
            links.extend(self.find_resources(find).await?);
        }
        let rules = self
            .find_resources(Find::new(tenant.clone(), Some(Kind::Rule)))
            .await?;
        let knowledge = Knowledge {
            devices,
            edge_nodes,
            offerings,
            links,
            rules,
        };
        Ok((knowledge, view))
    }

    /// The tenant's view, built on first use and kept current by
    /// [`App::run_recommendations`] (built afresh on every call when that is not running).
    async fn view(&self, tenant: &Tenant) -> Result<Arc<RwLock<TenantView>>, AppError> {
        let following = self.recommender.following.load(Ordering::Acquire);
        if following {
            self.wait_for_feed().await;
            let mut slots = lock(&self.recommender.views);
            match slots.get(tenant) {
                Some(ViewSlot::Ready(view)) => return Ok(view.clone()),
                Some(ViewSlot::Loading(_)) => {}
                None => {
                    slots.insert(tenant.clone(), ViewSlot::Loading(Vec::new()));
                }
            }
        }
        let loaded = self.load_view(tenant).await;
        if !following {
            return Ok(Arc::new(RwLock::new(loaded?)));
        }
        let mut slots = lock(&self.recommender.views);
        let mut view = match loaded {
            Ok(view) => view,
            Err(e) => {
                slots.remove(tenant);
                return Err(e);
            }
        };
        if let Some(ViewSlot::Ready(view)) = slots.get(tenant) {
            return Ok(view.clone());
        }
        // Changes seen while loading are applied on top: puts and deletes are idempotent.
        if let Some(ViewSlot::Loading(pending)) = slots.get(tenant) {
            for entry in pending {
                view.apply(entry);
            }
        }
        let view = Arc::new(RwLock::new(view));
        slots.insert(tenant.clone(), ViewSlot::Ready(view.clone()));
        Ok(view)
    }

    async fn load_view(&self, tenant: &Tenant) -> Result<TenantView, AppError> {
        let mut view = TenantView::default();
        for case in self
            .find_resources(Find::new(tenant.clone(), Some(Kind::Case)))
            .await?
        {
            view.upsert(&case);
        }
        for kind in [Kind::Device, Kind::EdgeNode] {
            let mut find = Find::new(tenant.clone(), Some(kind));
            find.filters = vec![absent(kind, "site")?, absent(kind, "instanceOf")?];
            for model in self.find_resources(find).await? {
                view.upsert(&model);
            }
        }
        Ok(view)
    }

    /// Waits (briefly) until the change feed has handed the views every row the store has
    /// applied, so a write acknowledged before this request is seen by it.
    async fn wait_for_feed(&self) {
        const PATIENCE: Duration = Duration::from_millis(500);
        let target = self.store.applied_seq();
        let started = std::time::Instant::now();
        while self.recommender.seen_seq.load(Ordering::Acquire) < target {
            if started.elapsed() > PATIENCE {
                tracing::debug!(
                    target,
                    "the change feed is behind; answering from the view as it is"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Computes a recommendation for a checked context without storing it.
    pub async fn compute_recommendation(
        &self,
        tenant: &Tenant,
        ctx: &AppContext,
    ) -> Result<(Recommendation, Knowledge, f64), AppError> {
        let started = std::time::Instant::now();
        let (knowledge, view) = self.knowledge_and_view(tenant, ctx).await?;
        let settings = self.recommender.settings;
        let ctx_owned = ctx.clone();
        let (answer, knowledge) = tokio::task::spawn_blocking(move || {
            let view = view
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let answer =
                iotcane_recommender::recommend(&ctx_owned, &knowledge, &view.cases, &settings);
            (answer, knowledge)
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("recommender task: {e}")))?;
        Ok((answer, knowledge, started.elapsed().as_secs_f64() * 1e3))
    }

    /// Recommends configurations for a context (JSON, checked here) and keeps the answer.
    pub async fn recommend(
        &self,
        tenant: &Tenant,
        context: &Value,
        actor: &Actor,
    ) -> Result<StoredRecommendation, AppError> {
        let ctx = parse_context(context)?;
        let (answer, _, elapsed_ms) = self.compute_recommendation(tenant, &ctx).await?;
        let kept = Kept {
            supersedes: None,
            subscribed: false,
            margin: None,
        };
        self.keep_answer(tenant, &answer, elapsed_ms, context, kept, actor)
            .await
    }

    /// Stores an answer as a new recommendation.
    async fn keep_answer(
        &self,
        tenant: &Tenant,
        answer: &Recommendation,
        elapsed_ms: f64,
        context: &Value,
        kept: Kept,
        actor: &Actor,
    ) -> Result<StoredRecommendation, AppError> {
        let Kept {
            supersedes,
            subscribed,
            margin,
        } = kept;
        let mut result =
            serde_json::to_value(answer).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if let Some(map) = result.as_object_mut() {
            map.insert("elapsedMs".into(), json!(elapsed_ms));
        }
        let record = RecommendationRecord {
            tenant: tenant.to_string(),
            id: format!("rec-{}", crate::keys::random_hex::<12>()),
            created_ms: crate::now_ms(),
            actor: actor.name.clone(),
            context: context.to_string(),
            result: result.to_string(),
            supersedes,
            subscribed,
            margin,
            feedback: None,
            case_id: None,
        };
        self.store.insert_recommendation(&record).await?;
        StoredRecommendation::of(record)
    }

    /// A stored recommendation.
    pub async fn recommendation(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<StoredRecommendation, AppError> {
        let record = self
            .store
            .recommendation(tenant.as_str(), id)
            .await?
            .ok_or_else(|| AppError::NoRecommendation(id.to_owned()))?;
        StoredRecommendation::of(record)
    }

    /// A tenant's recommendations, newest first, created before `before_ms`.
    pub async fn recommendations(
        &self,
        tenant: &Tenant,
        before_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<StoredRecommendation>, AppError> {
        let limit = i64::try_from(limit.clamp(1, 500)).unwrap_or(500);
        self.store
            .recommendations(tenant.as_str(), before_ms.unwrap_or(i64::MAX), limit)
            .await?
            .into_iter()
            .map(StoredRecommendation::of)
            .collect()
    }

    /// Subscribes to a recommendation (or changes its margin); `None` ends it.
    pub async fn subscribe(
        &self,
        tenant: &Tenant,
        id: &str,
        margin: Option<Option<f64>>,
    ) -> Result<StoredRecommendation, AppError> {
        let (on, margin) = match margin {
            Some(m) => (true, Some(m.unwrap_or(DEFAULT_MARGIN))),
            None => (false, None),
        };
        if let Some(m) = margin
            && !(m.is_finite() && (0.0..=1.0).contains(&m))
        {
            return Err(Violations::one("/margin", "must be between 0 and 1").into());
        }
        if !self
            .store
            .set_subscription(tenant.as_str(), id, on, margin)
            .await?
        {
            return Err(AppError::NoRecommendation(id.to_owned()));
        }
        self.recommendation(tenant, id).await
    }

    /// Records feedback. An accepted configuration becomes (or updates) the case
    /// `case-{recommendation id}`, and the registered devices and edge nodes it binds get
    /// it as their desired configuration.
    pub async fn feedback(
        &self,
        tenant: &Tenant,
        id: &str,
        feedback: Feedback,
        actor: &Actor,
    ) -> Result<StoredRecommendation, AppError> {
        let rec = self.recommendation(tenant, id).await?;
        let Some(chosen) = rec.configuration(feedback.configuration).cloned() else {
            return Err(Violations::one(
                "/configuration",
                format!(
                    "recommendation {id} has no configuration of rank {}",
                    feedback.configuration
                ),
            )
            .into());
        };
        let mut case_id = None;
        if feedback.accepted {
            let case = case_of(id, &rec, &chosen, feedback.outcome.clone())?;
            let case_ref = case.id.clone();
            self.put(tenant, case.clone(), None, actor).await?;
            // The next recommendation sees the case even before the change feed does.
            if let Some(ViewSlot::Ready(view)) = lock(&self.recommender.views).get(tenant) {
                view.write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .upsert(&case);
            }
            case_id = Some(case_ref.to_string());
            if rec.case.is_none() {
                self.push_desired(tenant, id, &chosen, actor).await?;
            }
        }
        let record = json!({
            "status": if feedback.accepted { "accepted" } else { "rejected" },
            "configuration": feedback.configuration,
            "reason": feedback.reason,
            "outcome": feedback.outcome.as_ref().map(|o| serde_json::to_value(o).unwrap_or(Value::Null)),
            "by": actor.name,
            "at": iotcane_store::format_time_ms(crate::now_ms()),
        });
        self.store
            .set_feedback(tenant.as_str(), id, &record.to_string(), case_id.as_deref())
            .await?;
        self.recommendation(tenant, id).await
    }

    /// Gives each registered device and edge node of a configuration its part as desired
    /// configuration.
    async fn push_desired(
        &self,
        tenant: &Tenant,
        rec_id: &str,
        configuration: &Value,
        actor: &Actor,
    ) -> Result<(), AppError> {
        let bindings = configuration
            .get("bindings")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for b in bindings {
            if b.get("registered").and_then(Value::as_bool) != Some(true) {
                continue;
            }
            let Some(id) = b
                .get("resource")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<ResourceId>().ok())
            else {
                continue;
            };
            let mut desired = Map::new();
            desired.insert("recommendation".into(), json!(rec_id));
            desired.insert(
                "rank".into(),
                configuration.get("rank").cloned().unwrap_or(Value::Null),
            );
            desired.insert(
                "requirement".into(),
                b.get("requirement").cloned().unwrap_or(Value::Null),
            );
            desired.insert("role".into(), b.get("role").cloned().unwrap_or(Value::Null));
            if let Some(p) = b.get("protocol") {
                desired.insert("protocol".into(), p.clone());
            }
            desired.insert(
                "region".into(),
                configuration.get("region").cloned().unwrap_or(Value::Null),
            );
            match self
                .set_desired_config(tenant, &id, Some(desired), actor)
                .await
            {
                Ok(_) => {}
                // Removed since the recommendation was made: nothing to configure.
                Err(AppError::Store(StoreError::NotFound { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The cornerstone cases a rule would change, given the tenant's other rules.
    pub async fn rule_changes(
        &self,
        tenant: &Tenant,
        rule: &Resource,
    ) -> Result<Vec<ChangedCase>, AppError> {
        let existing = self
            .find_resources(Find::new(tenant.clone(), Some(Kind::Rule)))
            .await?;
        let cases = self
            .find_resources(Find::new(tenant.clone(), Some(Kind::Case)))
            .await?;
        let store = self.store.clone();
        let tenant = tenant.clone();
        let resolve =
            move |id: &ResourceId| store.get(&tenant, id).ok().flatten().map(|s| s.resource);
        Ok(iotcane_recommender::rules::changed_cases(
            rule, &existing, &cases, &resolve,
        ))
    }

    /// Writes a rule, checked against the cornerstone cases: one that would change a
    /// case's conclusion is refused unless `confirm`, and then stored with those cases
    /// among its cornerstones.
    pub async fn write_rule(
        &self,
        tenant: &Tenant,
        mut rule: Resource,
        expected_version: Option<i64>,
        create_only: bool,
        confirm: bool,
        actor: &Actor,
    ) -> Result<Written, AppError> {
        let changed = self.rule_changes(tenant, &rule).await?;
        if !changed.is_empty() {
            if !confirm {
                return Err(AppError::RuleChangesCases(changed));
            }
            if let ResourceBody::Rule(body) = &mut rule.body {
                for c in &changed {
                    if let Ok(id) = c.case.parse() {
                        body.cornerstones.insert(id);
                    }
                }
            }
        }
        Ok(self
            .store
            .write_one(
                iotcane_store::Change::Put {
                    tenant: tenant.clone(),
                    resource: Box::new(rule),
                    expected_version,
                    create_only,
                },
                &actor.name,
                actor.source,
            )
            .await?)
    }

    /// A receiver of recommendation events.
    pub fn recommendation_events(&self) -> broadcast::Receiver<Arc<RecommendationEvent>> {
        self.recommender.events.subscribe()
    }

    /// Keeps case indices current and re-evaluates subscribed recommendations when
    /// knowledge or live context changes, until `shutdown`.
    pub async fn run_recommendations(&self, shutdown: CancellationToken) {
        // The feed has its own task, so a long re-evaluation never holds views back.
        let feed = tokio::spawn({
            let app = self.clone();
            let shutdown = shutdown.clone();
            async move { app.follow_changes(shutdown).await }
        });
        let mut tick = tokio::time::interval(REEVALUATE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    let dirty = std::mem::take(&mut *lock(&self.recommender.dirty));
                    for tenant in dirty {
                        if let Err(e) = self.reevaluate(&tenant).await {
                            tracing::warn!(tenant = %tenant, error = %e, "re-evaluating subscriptions failed");
                        }
                    }
                }
            }
        }
        let _ = feed.await;
    }

    /// Hands every applied journal row to the views and marks its tenant dirty.
    async fn follow_changes(&self, shutdown: CancellationToken) {
        let mut changes = self.store.subscribe();
        // Rows applied before the subscription are in whatever a view loads from now on.
        lock(&self.recommender.views).clear();
        self.recommender
            .seen_seq
            .store(self.store.applied_seq(), Ordering::Release);
        self.recommender.following.store(true, Ordering::Release);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                received = changes.recv() => match received {
                    Ok(entry) => self.on_change(&entry),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Missed changes: rebuild every view on next use.
                        lock(&self.recommender.views).clear();
                        self.recommender
                            .seen_seq
                            .fetch_max(self.store.applied_seq(), Ordering::AcqRel);
                        let tenants = self.store.tenants().unwrap_or_default();
                        lock(&self.recommender.dirty).extend(tenants);
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        self.recommender.following.store(false, Ordering::Release);
        lock(&self.recommender.views).clear();
    }

    fn on_change(&self, entry: &Arc<JournalEntry>) {
        if let Ok(tenant) = entry.tenant.parse::<Tenant>() {
            if VIEW_KINDS.iter().any(|k| k.as_str() == entry.kind) {
                match lock(&self.recommender.views).get_mut(&tenant) {
                    Some(ViewSlot::Loading(pending)) => pending.push(entry.clone()),
                    Some(ViewSlot::Ready(view)) => view
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .apply(entry),
                    None => {}
                }
            }
            if entry.kind != Kind::Case.as_str() {
                lock(&self.recommender.dirty).insert(tenant);
            }
        }
        self.recommender
            .seen_seq
            .fetch_max(entry.seq, Ordering::AcqRel);
    }

    /// Re-evaluates a tenant's subscribed recommendations; returns the events sent.
    pub async fn reevaluate(
        &self,
        tenant: &Tenant,
    ) -> Result<Vec<Arc<RecommendationEvent>>, AppError> {
        let subscribed: Vec<RecommendationRecord> = self
            .store
            .subscribed_recommendations(tenant.as_str())
            .await?;
        let mut sent = Vec::new();
        for record in subscribed {
            // With several replicas, the one holding the lease re-evaluates: one
            // announcement per change, and a replica that dies hands over when its lease
            // runs out.
            let claimed = self
                .store
                .claim_subscription(
                    tenant.as_str(),
                    &record.id,
                    &self.recommender.owner,
                    crate::now_ms(),
                    SUBSCRIPTION_LEASE.as_millis() as i64,
                )
                .await?;
            if !claimed {
                continue;
            }
            let previous = StoredRecommendation::of(record.clone())?;
            let context: Value = serde_json::from_str(&record.context).unwrap_or(Value::Null);
            let Ok(ctx) = parse_context(&context) else {
                continue;
            };
            let (answer, knowledge, elapsed_ms) =
                match self.compute_recommendation(tenant, &ctx).await {
                    Ok(done) => done,
                    Err(AppError::Invalid(_)) => continue,
                    Err(e) => return Err(e),
                };
            let Some(best) = previous.configuration(1) else {
                continue;
            };
            let bindings: Vec<(String, String)> = best
                .get("bindings")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|b| {
                    Some((
                        b.get("requirement")?.as_str()?.to_owned(),
                        b.get("resource")?.as_str()?.to_owned(),
                    ))
                })
                .collect();
            let old_objective = best.get("objective").and_then(Value::as_f64);
            let view = self.view(tenant).await?;
            let assessment = {
                let view = view
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                iotcane_recommender::assess(&ctx, &knowledge, &view.cases, &bindings)
            };
            let new_best = answer.configurations.first().map(|c| c.objective);
            let margin = record.margin.unwrap_or(DEFAULT_MARGIN);
            let (reason, detail) = if !assessment.valid {
                ("constraintBroken", assessment.detail.clone())
            } else if let (Some(new), Some(old)) =
                (new_best, assessment.objective.or(old_objective))
                && new < old - margin
            {
                (
                    "betterFound",
                    format!(
                        "a configuration with objective {new:.4} beats the current {old:.4} by more than {margin}"
                    ),
                )
            } else {
                continue;
            };
            let actor = Actor {
                name: format!("subscription:{}", record.id),
                source: iotcane_store::ChangeSource::Http,
            };
            // The answer just computed is the new recommendation.
            let kept = Kept {
                supersedes: Some(record.id.clone()),
                subscribed: true,
                margin: record.margin,
            };
            let next = self
                .keep_answer(tenant, &answer, elapsed_ms, &context, kept, &actor)
                .await?;
            self.store
                .set_subscription(tenant.as_str(), &record.id, false, None)
                .await?;
            // An accepted recommendation stays accepted along its successors.
            if let (Some(feedback), Some(case)) = (&record.feedback, &record.case_id) {
                self.store
                    .set_feedback(tenant.as_str(), &next.id, feedback, Some(case))
                    .await?;
            }
            if previous.case.is_some()
                && let Some(best) = next.configuration(1).cloned()
            {
                self.push_desired(tenant, &next.id, &best, &actor).await?;
            }
            let event = Arc::new(RecommendationEvent {
                tenant: tenant.clone(),
                id: next.id.clone(),
                supersedes: record.id.clone(),
                reason: reason.to_owned(),
                detail,
                objective: new_best,
            });
            // No receiver is not an error: nobody is listening right now.
            let _ = self.recommender.events.send(event.clone());
            sent.push(event);
        }
        Ok(sent)
    }
}

/// How a new recommendation is kept: what it supersedes, and its subscription.
struct Kept {
    supersedes: Option<String>,
    subscribed: bool,
    margin: Option<f64>,
}

/// The case an accepted configuration becomes.
fn case_of(
    rec_id: &str,
    rec: &StoredRecommendation,
    chosen: &Value,
    outcome: Option<Outcome>,
) -> Result<Resource, AppError> {
    let ctx = rec.context.as_object().cloned().unwrap_or_default();
    let domain = ctx
        .get("domain")
        .and_then(Value::as_str)
        .unwrap_or("general")
        .to_owned();
    let bindings = chosen
        .get("bindings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|b| {
            Some(Binding {
                requirement: b.get("requirement")?.as_str()?.to_owned(),
                role: b.get("role")?.as_str()?.parse::<BindingRole>().ok()?,
                resource: b.get("resource")?.as_str()?.parse().ok()?,
                quantity: u32::try_from(b.get("quantity")?.as_u64()?).ok()?,
            })
        })
        .collect();
    let totals = chosen.get("totals");
    let number = |key: &str| totals.and_then(|t| t.get(key)).and_then(Value::as_f64);
    let qos = ctx.get("qos");
    let limit = |key: &str| qos.and_then(|q| q.get(key)).and_then(Value::as_f64);
    let mut requirements = Vec::new();
    if let Some(v) = limit("maxLatencyMs") {
        requirements.push(QosRequirement {
            metric: Metric::Latency,
            comparator: Comparator::Le,
            value: v,
            unit: Some("ms".into()),
        });
    }
    if let Some(v) = limit("minAvailability") {
        requirements.push(QosRequirement {
            metric: Metric::Availability,
            comparator: Comparator::Ge,
            value: v,
            unit: None,
        });
    }
    if let Some(v) = limit("maxMonthlyCost") {
        let currency = qos
            .and_then(|q| q.get("currency"))
            .and_then(Value::as_str)
            .unwrap_or("USD");
        requirements.push(QosRequirement {
            metric: Metric::MonthlyCost,
            comparator: Comparator::Le,
            value: v,
            unit: Some(format!("{currency}/month")),
        });
    }
    let mut resource = Resource {
        id: format!("case-{rec_id}")
            .parse()
            .map_err(|e: iotcane_model::IdError| StoreError::Corrupt(e.to_string()))?,
        name: format!(
            "{} (accepted recommendation {rec_id}, rank {})",
            ctx.get("name").and_then(Value::as_str).unwrap_or(&domain),
            chosen.get("rank").and_then(Value::as_u64).unwrap_or(1)
        ),
        description: None,
        tags: BTreeSet::from(["accepted-recommendation".to_owned()]),
        source: Some(format!("IoT-CANE recommendation {rec_id}")),
        body: ResourceBody::Case(Case {
            domain,
            context: ctx,
            configuration: ModelConfiguration {
                bindings,
                requirements,
                monthly_cost: number("monthlyCost"),
                latency_ms: number("latencyMs"),
                availability: number("availability"),
                energy_w: number("energyW"),
                objective: chosen.get("objective").and_then(Value::as_f64),
            },
            outcome,
        }),
    };
    resource.normalize();
    let violations = iotcane_model::validate::validate(&resource);
    if !violations.is_empty() {
        return Err(Violations(violations).into());
    }
    Ok(resource)
}
