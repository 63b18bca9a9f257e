//! The knowledge graph: one in-memory oxigraph store per tenant, one named graph per
//! resource.
//!
//! It is a view of the journal. Only [`Graph::apply`] changes it, always in journal order,
//! from the one writer that holds the store's write lock.
//!
//! Why a store per tenant: a tenant's queries then run over its own store with the union
//! of its graphs as the default graph, which oxigraph answers from its indexes. Scoping
//! one shared store to a tenant instead means naming the tenant's graphs one by one,
//! and oxigraph then visits each of them for every pattern (a lookup among 100,000
//! resources took seconds that way, and takes microseconds this way). It also makes
//! isolation structural: another tenant's data is not in the store a query runs on.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use iotcane_model::rdf::{live_quads, to_quads};
use iotcane_model::vocab::{ic, prov};
use iotcane_model::{Kind, LiveContext, Resource, ResourceBody, ResourceId, Tenant};
use oxigraph::model::vocab::xsd;
use oxigraph::model::{GraphNameRef, Literal, NamedNode, NamedNodeRef, Quad, Term};
use oxigraph::store::Store;

use crate::error::StoreError;
use crate::journal::JournalEntry;
use crate::{ChangeSource, Op};

/// Version metadata of one stored resource, kept in its graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub version: i64,
    pub created_ms: i64,
    pub modified_ms: i64,
    pub actor: String,
    pub source: ChangeSource,
}

/// Which resources each tenant has, by kind: the tenant's graphs for query scoping.
type TenantIndex = HashMap<Tenant, BTreeMap<ResourceId, Kind>>;

#[derive(Clone)]
pub struct Graph {
    stores: Arc<RwLock<HashMap<Tenant, Store>>>,
    index: Arc<RwLock<TenantIndex>>,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph").finish_non_exhaustive()
    }
}

const DCTERMS_CREATED: NamedNodeRef<'static> =
    NamedNodeRef::new_unchecked("http://purl.org/dc/terms/created");

impl Graph {
    pub fn new() -> Result<Self, StoreError> {
        Ok(Self {
            stores: Arc::default(),
            index: Arc::default(),
        })
    }

    /// A tenant's store (an empty one for a tenant with no data yet). Stores are cheap
    /// `Clone` handles on shared data.
    pub fn store(&self, tenant: &Tenant) -> Result<Store, StoreError> {
        if let Some(store) = self.stores.read().map_err(|_| poisoned())?.get(tenant) {
            return Ok(store.clone());
        }
        let mut stores = self.stores.write().map_err(|_| poisoned())?;
        match stores.get(tenant) {
            Some(store) => Ok(store.clone()),
            None => {
                let store = Store::new()?;
                stores.insert(tenant.clone(), store.clone());
                Ok(store)
            }
        }
    }

    /// Every tenant's store, in tenant order.
    pub fn stores(&self) -> Result<Vec<(Tenant, Store)>, StoreError> {
        let mut all: Vec<(Tenant, Store)> = self
            .stores
            .read()
            .map_err(|_| poisoned())?
            .iter()
            .map(|(t, s)| (t.clone(), s.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    /// Applies journal rows, in order, as one oxigraph transaction. `known` is empty, or
    /// holds for each row the resource its body describes (a local write), which spares
    /// decoding the body again.
    pub fn apply(
        &self,
        entries: &[JournalEntry],
        known: Vec<Option<Resource>>,
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut known = known.into_iter();
        let mut prepared = Vec::with_capacity(entries.len());
        for entry in entries {
            prepared.push(Prepared::from_entry(entry, known.next().flatten())?);
        }
        // One transaction per tenant, in journal order within each.
        let mut tenants: Vec<&Tenant> = Vec::new();
        for p in &prepared {
            if !tenants.contains(&&p.tenant) {
                tenants.push(&p.tenant);
            }
        }
        for tenant in tenants {
            let store = self.store(tenant)?;
            let mut tx = store.start_transaction()?;
            for p in prepared.iter().filter(|p| &p.tenant == tenant) {
                let graph = p.tenant.graph_of(&p.id);
                if let Some(live) = &p.live {
                    replace_live(&mut tx, &graph, &p.id, live)?;
                    continue;
                }
                let existed = tx.contains_named_graph(&graph)?;
                // A compacted journal may start a resource at an update: its row carries the
                // creation time the missing create row would have given.
                let created_ms = match p.created_ms {
                    _ if p.entry_op == Op::Create => p.at_ms,
                    Some(created_ms) => created_ms,
                    None if existed => created_of(&tx, &graph)?.unwrap_or(p.at_ms),
                    None => p.at_ms,
                };
                // Live context belongs to the reports: a description written without one
                // keeps the current one.
                // A create starts afresh: a graph can hold the resource only if compaction
                // removed its deletion, and its live context went with it.
                let kept_live = if existed && p.keeps_live && p.entry_op != Op::Create {
                    live_part(&tx, &graph, &p.id)?
                } else {
                    Vec::new()
                };
                if existed {
                    tx.remove_named_graph(&graph)?;
                }
                if let Some(quads) = &p.quads {
                    tx.extend(quads.iter());
                    tx.extend(kept_live.iter());
                    tx.extend(p.meta_quads(&graph, created_ms).iter());
                }
            }
            tx.commit()?;
        }
        let mut index = self.index.write().map_err(|_| poisoned())?;
        for p in prepared.into_iter().filter(|p| p.live.is_none()) {
            let resources = index.entry(p.tenant).or_default();
            match p.kind {
                Some(kind) => {
                    resources.insert(p.id, kind);
                }
                None => {
                    resources.remove(&p.id);
                }
            }
        }
        Ok(())
    }

    /// Loads a snapshot (N-Quads) into the empty store and rebuilds the tenant index.
    pub fn load_snapshot(&self, path: &std::path::Path) -> Result<(), StoreError> {
        let file = std::fs::File::open(path).map_err(|e| StoreError::Snapshot(e.to_string()))?;
        // The store's own loaders rename blank nodes; a snapshot must keep its labels so
        // that later journal rows address the same nodes.
        // Lenient: the snapshot is this store's own output, and strict IRI checks cost a
        // third of the parse.
        let quads = oxigraph::io::RdfParser::from_format(oxigraph::io::RdfFormat::NQuads)
            .lenient()
            .for_reader(std::io::BufReader::with_capacity(1 << 20, file));
        // Snapshots are written tenant by tenant, so each tenant's quads come together:
        // they are bulk-loaded in batches into that tenant's store, the tenant read from
        // the first graph name of each run.
        const BATCH: usize = 100_000;
        let mut current: Option<(String, Store)> = None;
        let mut batch: Vec<Quad> = Vec::with_capacity(BATCH);
        let flush = |store: &Store, batch: &mut Vec<Quad>| -> Result<(), StoreError> {
            let mut loader = store.bulk_loader();
            loader
                .load_quads(batch.drain(..))
                .map_err(|e| StoreError::Snapshot(e.to_string()))?;
            loader
                .commit()
                .map_err(|e| StoreError::Snapshot(e.to_string()))
        };
        for quad in quads {
            let quad = quad.map_err(|e| StoreError::Snapshot(e.to_string()))?;
            let oxigraph::model::GraphName::NamedNode(graph) = &quad.graph_name else {
                return Err(StoreError::Snapshot(format!(
                    "a quad outside a resource graph: {quad}"
                )));
            };
            let not_a_resource_graph =
                || StoreError::Snapshot(format!("<{graph}> is not a resource graph"));
            let prefix = tenant_prefix(graph.as_str()).ok_or_else(not_a_resource_graph)?;
            if current.as_ref().is_none_or(|(p, _)| p != prefix) {
                if let Some((_, store)) = &current {
                    flush(store, &mut batch)?;
                }
                let (tenant, _) =
                    Tenant::parse_graph(graph.as_str()).ok_or_else(not_a_resource_graph)?;
                current = Some((prefix.to_owned(), self.store(&tenant)?));
            }
            batch.push(quad);
            if batch.len() >= BATCH
                && let Some((_, store)) = &current
            {
                flush(store, &mut batch)?;
            }
        }
        if let Some((_, store)) = &current {
            flush(store, &mut batch)?;
        }
        self.rebuild_index()
    }

    fn rebuild_index(&self) -> Result<(), StoreError> {
        let mut index = TenantIndex::new();
        let stores = self.stores()?;
        for quad in stores.iter().flat_map(|(_, store)| {
            store.quads_for_pattern(None, Some(oxigraph::model::vocab::rdf::TYPE), None, None)
        }) {
            let quad = quad?;
            let (Term::NamedNode(class), oxigraph::model::GraphName::NamedNode(graph)) =
                (&quad.object, &quad.graph_name)
            else {
                continue;
            };
            let Some(kind) = iotcane_model::rdf::kind_of_class(class.as_ref()) else {
                continue;
            };
            if let Some((tenant, id)) = Tenant::parse_graph(graph.as_str()) {
                index.entry(tenant).or_default().insert(id, kind);
            }
        }
        *self.index.write().map_err(|_| poisoned())? = index;
        Ok(())
    }

    /// The ids and kinds of a tenant's resources (of one kind, or all), in id order,
    /// after `after`.
    pub fn list(
        &self,
        tenant: &Tenant,
        kind: Option<Kind>,
        after: Option<&ResourceId>,
        limit: usize,
    ) -> Result<Vec<(ResourceId, Kind)>, StoreError> {
        match kind {
            Some(kind) => self.list_kinds(tenant, &[kind], after, limit),
            None => self.list_kinds(tenant, &Kind::ALL, after, limit),
        }
    }

    /// The ids and kinds of a tenant's resources of any of `kinds`, in id order.
    pub fn list_kinds(
        &self,
        tenant: &Tenant,
        kinds: &[Kind],
        after: Option<&ResourceId>,
        limit: usize,
    ) -> Result<Vec<(ResourceId, Kind)>, StoreError> {
        let index = self.index.read().map_err(|_| poisoned())?;
        let Some(resources) = index.get(tenant) else {
            return Ok(Vec::new());
        };
        let range = match after {
            Some(after) => resources.range::<ResourceId, _>((
                std::ops::Bound::Excluded(after),
                std::ops::Bound::Unbounded,
            )),
            None => resources.range::<ResourceId, _>(..),
        };
        Ok(range
            .filter(|(_, k)| kinds.contains(k))
            .take(limit)
            .map(|(id, k)| (id.clone(), *k))
            .collect())
    }

    /// How many resources of any of `kinds` a tenant has.
    pub fn count_kinds(&self, tenant: &Tenant, kinds: &[Kind]) -> Result<usize, StoreError> {
        let index = self.index.read().map_err(|_| poisoned())?;
        Ok(index.get(tenant).map_or(0, |resources| {
            resources.values().filter(|k| kinds.contains(k)).count()
        }))
    }

    /// How many resources a tenant has (of one kind, or all).
    pub fn count(&self, tenant: &Tenant, kind: Option<Kind>) -> Result<usize, StoreError> {
        match kind {
            Some(kind) => self.count_kinds(tenant, &[kind]),
            None => self.count_kinds(tenant, &Kind::ALL),
        }
    }

    /// Every tenant that has data.
    pub fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let index = self.index.read().map_err(|_| poisoned())?;
        let mut tenants: Vec<Tenant> = index
            .iter()
            .filter(|(_, r)| !r.is_empty())
            .map(|(t, _)| t.clone())
            .collect();
        tenants.sort();
        Ok(tenants)
    }

    /// The quads of one resource's graph (description and metadata).
    pub fn quads_of(&self, tenant: &Tenant, id: &ResourceId) -> Result<Vec<Quad>, StoreError> {
        let graph = tenant.graph_of(id);
        let Some(store) = self
            .stores
            .read()
            .map_err(|_| poisoned())?
            .get(tenant)
            .cloned()
        else {
            return Ok(Vec::new());
        };
        Ok(store
            .quads_for_pattern(
                None,
                None,
                None,
                Some(GraphNameRef::NamedNode(graph.as_ref())),
            )
            .collect::<Result<_, _>>()?)
    }

    /// The number of quads in every tenant's store.
    pub fn len(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        for (_, store) in self.stores()? {
            total += store.len()?;
        }
        Ok(total)
    }
}

/// `https://w3id.org/iotcane/tenant/{t}/graph/` of a resource graph IRI.
fn tenant_prefix(graph: &str) -> Option<&str> {
    let end = graph.find("/graph/")? + "/graph/".len();
    Some(&graph[..end])
}

/// Reads the version metadata out of a resource graph's quads.
pub fn meta_of(graph: &NamedNode, quads: &[Quad]) -> Option<Meta> {
    let mut version = None;
    let mut created_ms = None;
    let mut modified_ms = None;
    let mut actor = None;
    let mut source = None;
    for q in quads {
        if q.subject.as_ref() != graph.as_ref().into() {
            continue;
        }
        let Term::Literal(l) = &q.object else {
            continue;
        };
        let p = q.predicate.as_ref();
        if p == ic::VERSION {
            version = l.value().parse().ok();
        } else if p == DCTERMS_CREATED {
            created_ms = parse_time_ms(l.value());
        } else if p == prov::GENERATED_AT_TIME {
            modified_ms = parse_time_ms(l.value());
        } else if p == ic::CHANGED_BY {
            actor = Some(l.value().to_owned());
        } else if p == ic::CHANGE_SOURCE {
            source = ChangeSource::parse(l.value());
        }
    }
    Some(Meta {
        version: version?,
        created_ms: created_ms?,
        modified_ms: modified_ms?,
        actor: actor?,
        source: source?,
    })
}

fn created_of(
    tx: &oxigraph::store::Transaction<'_>,
    graph: &NamedNode,
) -> Result<Option<i64>, StoreError> {
    for quad in tx.quads_for_pattern(
        Some(graph.as_ref().into()),
        Some(DCTERMS_CREATED),
        None,
        Some(GraphNameRef::NamedNode(graph.as_ref())),
    ) {
        if let Term::Literal(l) = quad?.object {
            return Ok(parse_time_ms(l.value()));
        }
    }
    Ok(None)
}

/// A journal row turned into quads, outside the store's write transaction.
struct Prepared {
    tenant: Tenant,
    id: ResourceId,
    /// `None` for a delete.
    kind: Option<Kind>,
    quads: Option<Vec<Quad>>,
    /// For a context row: the new live part of the resource's graph.
    live: Option<Vec<Quad>>,
    /// A device or edge node written without a live context: it keeps the current one.
    keeps_live: bool,
    entry_op: Op,
    version: i64,
    at_ms: i64,
    /// Set on a row whose create row was compacted away.
    created_ms: Option<i64>,
    actor: String,
    source: ChangeSource,
}

impl Prepared {
    fn from_entry(entry: &JournalEntry, known: Option<Resource>) -> Result<Self, StoreError> {
        let tenant: Tenant = entry
            .tenant
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("journal row {}: {e}", entry.seq)))?;
        let id: ResourceId = entry
            .resource_id
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("journal row {}: {e}", entry.seq)))?;
        let mut live = None;
        let mut keeps_live = false;
        let (kind, quads) = match &entry.body {
            Some(body) if entry.op == Op::Context => {
                let context: LiveContext = serde_json::from_str(body).map_err(|e| {
                    StoreError::Corrupt(format!("journal row {}: live context: {e}", entry.seq))
                })?;
                live = Some(live_quads(&tenant, &id, &context));
                (None, None)
            }
            Some(body) => {
                let resource = match known {
                    Some(resource) => resource,
                    None => decode_body(entry.seq, body)?,
                };
                let quads = to_quads(&tenant, &resource);
                keeps_live = match &resource.body {
                    ResourceBody::Device(d) => d.placement.live.is_none(),
                    ResourceBody::EdgeNode(e) => e.placement.live.is_none(),
                    _ => false,
                };
                (Some(resource.kind()), Some(quads))
            }
            None => (None, None),
        };
        Ok(Self {
            tenant,
            id,
            kind,
            quads,
            live,
            keeps_live,
            entry_op: entry.op,
            version: entry.version,
            at_ms: entry.at_ms,
            created_ms: entry.created_ms,
            actor: entry.actor.clone(),
            source: entry.source,
        })
    }

    fn meta_quads(&self, graph: &NamedNode, created_ms: i64) -> Vec<Quad> {
        let g = graph.clone();
        let meta = |p: NamedNodeRef<'_>, o: Literal| Quad::new(g.clone(), p, o, g.clone());
        vec![
            meta(
                ic::VERSION,
                Literal::new_typed_literal(self.version.to_string(), xsd::INTEGER),
            ),
            meta(
                DCTERMS_CREATED,
                Literal::new_typed_literal(format_time_ms(created_ms), xsd::DATE_TIME),
            ),
            meta(
                prov::GENERATED_AT_TIME,
                Literal::new_typed_literal(format_time_ms(self.at_ms), xsd::DATE_TIME),
            ),
            meta(ic::CHANGED_BY, Literal::new_simple_literal(&self.actor)),
            meta(
                ic::CHANGE_SOURCE,
                Literal::new_simple_literal(self.source.as_str()),
            ),
        ]
    }
}

/// Replaces the live-context part of a resource's graph: the `ic:live` link, the live
/// node and the nodes under it. The rest of the graph, its metadata included, stays.
fn replace_live(
    tx: &mut oxigraph::store::Transaction<'_>,
    graph: &NamedNode,
    id: &ResourceId,
    live: &[Quad],
) -> Result<(), StoreError> {
    for quad in &live_part(tx, graph, id)? {
        tx.remove(quad);
    }
    tx.extend(live.iter());
    Ok(())
}

/// The live-context part of a resource's graph: the `ic:live` link, the live node and
/// the nodes under it.
fn live_part(
    tx: &oxigraph::store::Transaction<'_>,
    graph: &NamedNode,
    id: &ResourceId,
) -> Result<Vec<Quad>, StoreError> {
    let g: GraphNameRef<'_> = graph.into();
    let subject = id.iri();
    let mut part: Vec<Quad> = Vec::new();
    let mut nodes: Vec<Term> = Vec::new();
    for quad in tx.quads_for_pattern(Some(subject.as_ref().into()), Some(ic::LIVE), None, Some(g)) {
        let quad = quad?;
        nodes.push(quad.object.clone());
        part.push(quad);
    }
    // The live node, then the nodes under it (position, property values).
    while let Some(node) = nodes.pop() {
        let Term::BlankNode(blank) = node else {
            continue;
        };
        for quad in tx.quads_for_pattern(Some(blank.as_ref().into()), None, None, Some(g)) {
            let quad = quad?;
            if let Term::BlankNode(_) = &quad.object {
                nodes.push(quad.object.clone());
            }
            part.push(quad);
        }
    }
    Ok(part)
}

/// Reads a journal body; it was validated when written.
pub fn decode_body(seq: i64, body: &str) -> Result<Resource, StoreError> {
    let value: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| StoreError::Corrupt(format!("journal row {seq}: {e}")))?;
    Resource::from_trusted_json(value)
        .map_err(|e| StoreError::Corrupt(format!("journal row {seq}: {e}")))
}

/// Milliseconds since the epoch as an xsd:dateTime in UTC.
pub fn format_time_ms(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn parse_time_ms(text: &str) -> Option<i64> {
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

fn poisoned() -> StoreError {
    StoreError::Corrupt("tenant index lock poisoned".to_owned())
}
