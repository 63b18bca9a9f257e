//! Queries over the graph: SPARQL with a timeout and a result limit, scoped to a tenant's
//! graphs, and a typed query API that binds user values as RDF terms — never as text.

use std::time::Duration;

use iotcane_model::rdf::class_of;
use iotcane_model::{Kind, ResourceId, Tenant};
use oxigraph::model::{GraphName, NamedNode, NamedOrBlankNode, Term, Triple, Variable};
use oxigraph::sparql::{CancellationToken, QueryEvaluationError, QueryResults, SparqlEvaluator};
use oxigraph::store::Store;

use crate::error::StoreError;

/// The answer to a SPARQL query, fully materialized within the result limit.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryOutput {
    Solutions {
        variables: Vec<Variable>,
        rows: Vec<Vec<Option<Term>>>,
    },
    Boolean(bool),
    Graph(Vec<Triple>),
}

/// Which graphs a query sees.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Every graph of the store (administration and export only).
    All,
    /// Exactly these graphs: one tenant's.
    Graphs(Vec<NamedNode>),
}

/// Runs a SPARQL query. Blocking: call it from `spawn_blocking`.
pub(crate) fn run_sparql(
    store: &Store,
    scope: Scope,
    query: &str,
    cancel: CancellationToken,
    limit: usize,
) -> Result<QueryOutput, StoreError> {
    let parsed = spargebra::SparqlParser::new()
        .parse_query(query)
        .map_err(|e| StoreError::QuerySyntax(e.to_string()))?;
    // SERVICE would let a query reach other endpoints: refused before evaluation.
    if uses_service(&parsed.to_sse()) {
        return Err(StoreError::ServiceRefused);
    }
    let mut prepared = SparqlEvaluator::new()
        .with_cancellation_token(cancel)
        .for_query(parsed);
    let dataset = prepared.dataset_mut();
    match scope {
        Scope::All => {
            if dataset.is_default_dataset() {
                dataset.set_default_graph_as_union();
            }
        }
        Scope::Graphs(graphs) => {
            // FROM / FROM NAMED may only narrow the tenant's graphs, never reach past them.
            let allowed: std::collections::HashSet<&NamedNode> = graphs.iter().collect();
            let own = !dataset.is_default_dataset();
            let default: Vec<GraphName> = match dataset.default_graph_graphs() {
                Some(asked) if own => asked
                    .iter()
                    .filter(|g| matches!(g, GraphName::NamedNode(n) if allowed.contains(&n)))
                    .cloned()
                    .collect(),
                _ => graphs.iter().cloned().map(GraphName::NamedNode).collect(),
            };
            let named: Vec<NamedOrBlankNode> = match dataset.available_named_graphs() {
                Some(asked) if own => asked
                    .iter()
                    .filter(|g| matches!(g, NamedOrBlankNode::NamedNode(n) if allowed.contains(&n)))
                    .cloned()
                    .collect(),
                _ if own => Vec::new(),
                _ => graphs
                    .iter()
                    .cloned()
                    .map(NamedOrBlankNode::NamedNode)
                    .collect(),
            };
            dataset.set_default_graph(default);
            dataset.set_available_named_graphs(named);
        }
    }
    let results = prepared
        .on_store(store)
        .execute()
        .map_err(evaluation_error)?;
    materialize(results, limit)
}

/// Whether the algebra (as S-expression) has a service pattern. Outside string literals the
/// S-expression spells `(service ` only for one; IRIs and variables cannot hold a space.
fn uses_service(sse: &str) -> bool {
    let mut outside = String::with_capacity(sse.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in sse.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else {
            outside.push(c);
        }
    }
    outside.contains("(service ")
}

fn evaluation_error(e: QueryEvaluationError) -> StoreError {
    match e {
        QueryEvaluationError::Cancelled => StoreError::QueryTimeout(0),
        QueryEvaluationError::Service(_)
        | QueryEvaluationError::UnsupportedService(_)
        | QueryEvaluationError::UnboundService => StoreError::ServiceRefused,
        other => StoreError::QueryEvaluation(other.to_string()),
    }
}

fn materialize(results: QueryResults<'_>, limit: usize) -> Result<QueryOutput, StoreError> {
    match results {
        QueryResults::Boolean(b) => Ok(QueryOutput::Boolean(b)),
        QueryResults::Solutions(solutions) => {
            let variables = solutions.variables().to_vec();
            let mut rows = Vec::new();
            for solution in solutions {
                let solution = solution.map_err(evaluation_error)?;
                if rows.len() == limit {
                    return Err(StoreError::ResultLimit(limit));
                }
                rows.push(variables.iter().map(|v| solution.get(v).cloned()).collect());
            }
            Ok(QueryOutput::Solutions { variables, rows })
        }
        QueryResults::Graph(triples) => {
            let mut out = Vec::new();
            for triple in triples {
                let triple = triple.map_err(evaluation_error)?;
                if out.len() == limit {
                    return Err(StoreError::ResultLimit(limit));
                }
                out.push(triple);
            }
            Ok(QueryOutput::Graph(out))
        }
    }
}

/// A comparison in a typed filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// Text prefix.
    StartsWith,
}

impl Cmp {
    fn sparql(self, o: &str, v: &str) -> String {
        match self {
            Cmp::Eq => format!("FILTER({o} = {v})"),
            Cmp::Ne => format!("FILTER({o} != {v})"),
            Cmp::Lt => format!("FILTER({o} < {v})"),
            Cmp::Le => format!("FILTER({o} <= {v})"),
            Cmp::Gt => format!("FILTER({o} > {v})"),
            Cmp::Ge => format!("FILTER({o} >= {v})"),
            Cmp::StartsWith => format!("FILTER(STRSTARTS(STR({o}), STR({v})))"),
        }
    }
}

/// "The value reached from a resource by `path` compares so to `value`."
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// One or more predicates, followed from the resource (e.g. live context, then status).
    pub path: Vec<NamedNode>,
    pub cmp: Cmp,
    pub value: Term,
}

/// A typed query: one tenant's resources of a kind that pass every filter, in id order.
#[derive(Debug, Clone)]
pub struct Find {
    pub tenant: Tenant,
    pub kind: Option<Kind>,
    pub filters: Vec<Filter>,
    pub after: Option<ResourceId>,
    pub limit: usize,
}

/// Builds the SPARQL of a [`Find`] from fixed fragments, with every user value bound to a
/// variable as a term. Returns the text and the bindings.
pub(crate) fn find_query(find: &Find) -> (String, Vec<(Variable, Term)>) {
    let mut text = String::new();
    let mut bindings = Vec::new();
    if let Some(kind) = find.kind {
        text.push_str("?s a ?class . ");
        bindings.push((var("class"), class_of(kind).into_owned().into()));
    } else {
        text.push_str("?s <http://purl.org/dc/terms/identifier> ?id . ");
    }
    for (i, filter) in find.filters.iter().enumerate() {
        let mut subject = "?s".to_owned();
        for (j, predicate) in filter.path.iter().enumerate() {
            let object = if j + 1 == filter.path.len() {
                format!("?o{i}")
            } else {
                format!("?n{i}_{j}")
            };
            text.push_str(&format!("{subject} ?p{i}_{j} {object} . "));
            bindings.push((var(&format!("p{i}_{j}")), predicate.clone().into()));
            subject = object;
        }
        text.push_str(&filter.cmp.sparql(&format!("?o{i}"), &format!("?v{i}")));
        text.push(' ');
        bindings.push((var(&format!("v{i}")), filter.value.clone()));
    }
    text.push_str("} }");
    // Oxigraph substitutes only projected variables, so every bound one is projected.
    let projection: Vec<String> = bindings.iter().map(|(v, _)| v.to_string()).collect();
    let text = format!(
        "SELECT DISTINCT ?s {} WHERE {{ GRAPH ?g {{ {text}",
        projection.join(" ")
    );
    (text, bindings)
}

fn var(name: &str) -> Variable {
    Variable::new_unchecked(name)
}

/// Runs a [`Find`] over the tenant's graphs. Blocking.
pub(crate) fn run_find(
    store: &Store,
    graphs: Vec<NamedNode>,
    find: &Find,
    cancel: CancellationToken,
) -> Result<Vec<ResourceId>, StoreError> {
    let (text, bindings) = find_query(find);
    let mut prepared = SparqlEvaluator::new()
        .with_cancellation_token(cancel)
        .parse_query(&text)
        .map_err(|e| StoreError::QuerySyntax(e.to_string()))?;
    for (variable, term) in bindings {
        prepared = prepared.substitute_variable(variable, term);
    }
    prepared
        .dataset_mut()
        .set_available_named_graphs(graphs.into_iter().map(Into::into).collect());
    let QueryResults::Solutions(solutions) = prepared
        .on_store(store)
        .execute()
        .map_err(evaluation_error)?
    else {
        return Err(StoreError::QueryEvaluation("expected solutions".to_owned()));
    };
    let mut ids = Vec::new();
    for solution in solutions {
        let solution = solution.map_err(evaluation_error)?;
        if let Some(Term::NamedNode(s)) = solution.get("s")
            && let Ok(id) = ResourceId::from_iri(s.as_str())
        {
            ids.push(id);
        }
    }
    ids.sort();
    ids.dedup();
    if let Some(after) = &find.after {
        ids.retain(|id| id > after);
    }
    ids.truncate(find.limit);
    Ok(ids)
}

/// A timer that cancels a query when its time is up.
pub(crate) fn deadline(timeout: Duration) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let token = CancellationToken::new();
    let cancel = token.clone();
    let timer = tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        cancel.cancel();
    });
    (token, timer)
}
