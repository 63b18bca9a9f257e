//! SPARQL Update, journal first: the update runs on a scratch copy of the tenant's graphs,
//! and every resource graph it changed becomes an ordinary journal change (validated like
//! any other write) at the version the copy was taken from. The live graph is never
//! updated directly, so the journal stays the one source of truth.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use iotcane_model::{ResourceId, Tenant};
use oxigraph::model::vocab::rdf;
use oxigraph::model::{GraphName, NamedNode, NamedOrBlankNodeRef, Quad, Triple};
use oxigraph::sparql::{CancellationToken, SparqlEvaluator};
use oxigraph::store::Store;

use crate::Change;
use crate::error::StoreError;
use crate::graph::meta_of;

/// Plans the changes an update makes to a tenant's resources. Blocking.
pub(crate) fn plan_update(
    live: &Store,
    tenant: &Tenant,
    update: &str,
    cancel: CancellationToken,
) -> Result<Vec<Change>, StoreError> {
    let parsed = spargebra::SparqlParser::new()
        .parse_update(update)
        .map_err(|e| StoreError::QuerySyntax(e.to_string()))?;
    let sse = parsed.to_sse();
    if crate::query::uses_service(&sse) {
        return Err(StoreError::ServiceRefused);
    }
    // The copy, and the version each resource had when it was taken.
    let scratch = Store::new()?;
    let mut before: BTreeMap<NamedNode, HashSet<Quad>> = BTreeMap::new();
    let mut versions: BTreeMap<NamedNode, i64> = BTreeMap::new();
    for quad in live.iter() {
        let quad = quad?;
        if let GraphName::NamedNode(graph) = &quad.graph_name {
            before.entry(graph.clone()).or_default().insert(quad);
        }
    }
    for (graph, quads) in &before {
        let quads: Vec<Quad> = quads.iter().cloned().collect();
        if let Some(meta) = meta_of(graph, &quads) {
            versions.insert(graph.clone(), meta.version);
        }
        scratch.extend(quads)?;
    }
    SparqlEvaluator::new()
        .with_cancellation_token(cancel)
        .for_update(parsed)
        .on_store(&scratch)
        .execute()
        .map_err(|e| StoreError::UpdateRefused(e.to_string()))?;

    let mut after: BTreeMap<NamedNode, HashSet<Quad>> = BTreeMap::new();
    for quad in scratch.iter() {
        let quad = quad?;
        match &quad.graph_name {
            GraphName::NamedNode(g) => {
                after.entry(g.clone()).or_default().insert(quad);
            }
            _ => {
                return Err(StoreError::UpdateRefused(
                    "the update leaves triples outside any resource graph; name the resource's \
                     graph with GRAPH <…> or WITH <…>"
                        .to_owned(),
                ));
            }
        }
    }
    let empty = HashSet::new();
    let touched: BTreeSet<&NamedNode> = before.keys().chain(after.keys()).collect();
    let mut changes = Vec::new();
    for graph in touched {
        let old = before.get(graph).unwrap_or(&empty);
        let new = after.get(graph).unwrap_or(&empty);
        if old == new {
            continue;
        }
        let Some((owner, id)) = Tenant::parse_graph(graph.as_str()) else {
            return Err(StoreError::UpdateRefused(format!(
                "<{graph}> is not a resource graph of this tenant; resource graphs are named {}…",
                tenant.graph_prefix()
            )));
        };
        if &owner != tenant {
            return Err(StoreError::UpdateRefused(format!(
                "<{graph}> is not a resource graph of this tenant"
            )));
        }
        let expected_version = Some(versions.get(graph).copied().unwrap_or(0));
        changes.push(change_for(tenant, &id, new, expected_version)?);
    }
    Ok(changes)
}

/// The change that makes a resource what its graph now says: gone when its subject lost
/// its type, otherwise the resource read (and validated) from the graph.
fn change_for(
    tenant: &Tenant,
    id: &ResourceId,
    quads: &HashSet<Quad>,
    expected_version: Option<i64>,
) -> Result<Change, StoreError> {
    let subject = id.iri();
    let mut graph = oxigraph::model::Graph::new();
    for quad in quads {
        graph.insert(&Triple::new(
            quad.subject.clone(),
            quad.predicate.clone(),
            quad.object.clone(),
        ));
    }
    let typed = graph
        .objects_for_subject_predicate(NamedOrBlankNodeRef::NamedNode(subject.as_ref()), rdf::TYPE)
        .next()
        .is_some();
    if !typed {
        if expected_version == Some(0) {
            return Err(StoreError::UpdateRefused(format!(
                "the update writes into the graph of {id}, but describes no resource {id} there (it needs an rdf:type of a kind)"
            )));
        }
        return Ok(Change::Delete {
            tenant: tenant.clone(),
            id: id.clone(),
            expected_version,
        });
    }
    let resource =
        iotcane_model::rdf::read_resource(&graph, subject.as_ref().into()).map_err(|v| {
            StoreError::UpdateRefused(format!("the update would make {id} invalid: {v}"))
        })?;
    Ok(Change::Put {
        tenant: tenant.clone(),
        resource: Box::new(resource),
        expected_version,
        create_only: false,
    })
}
