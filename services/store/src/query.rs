//! Queries over the graph: SPARQL with a timeout and a result limit, scoped to a tenant's
//! graphs, and a typed query API that binds user values as RDF terms — never as text.

use std::time::Duration;

use iotcane_model::rdf::class_of;
use iotcane_model::{Kind, ResourceId, Tenant};
use oxigraph::model::{NamedNode, Term, Triple, Variable};
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

/// The media types solutions (SELECT, ASK) can be written in, preferred first.
pub const SOLUTION_MEDIA_TYPES: &[&str] = &[
    "application/sparql-results+json",
    "application/json",
    "application/sparql-results+xml",
    "text/csv",
    "text/tab-separated-values",
];

/// The media types graphs (CONSTRUCT, DESCRIBE) can be written in, preferred first.
pub const GRAPH_MEDIA_TYPES: &[&str] = &[
    "text/turtle",
    "application/n-triples",
    "application/rdf+xml",
];

impl QueryOutput {
    /// The media types this output can be written in, preferred first.
    pub fn media_types(&self) -> &'static [&'static str] {
        match self {
            QueryOutput::Graph(_) => GRAPH_MEDIA_TYPES,
            _ => SOLUTION_MEDIA_TYPES,
        }
    }

    /// Writes the output in one of [`Self::media_types`]; returns the media type written
    /// (`application/json` is answered as SPARQL JSON results) and the bytes.
    pub fn serialize(&self, media_type: &str) -> Result<(&'static str, Vec<u8>), StoreError> {
        use oxigraph::io::{RdfFormat, RdfSerializer};
        use oxigraph::sparql::results::{QueryResultsFormat, QueryResultsSerializer};
        let fail = |e: std::io::Error| StoreError::Export(e.to_string());
        let results_format = |media: &str| match media {
            "application/sparql-results+xml" => {
                ("application/sparql-results+xml", QueryResultsFormat::Xml)
            }
            "text/csv" => ("text/csv", QueryResultsFormat::Csv),
            "text/tab-separated-values" => ("text/tab-separated-values", QueryResultsFormat::Tsv),
            _ => ("application/sparql-results+json", QueryResultsFormat::Json),
        };
        match self {
            QueryOutput::Boolean(value) => {
                let (media, format) = results_format(media_type);
                let bytes = QueryResultsSerializer::from_format(format)
                    .serialize_boolean_to_writer(Vec::new(), *value)
                    .map_err(fail)?;
                Ok((media, bytes))
            }
            QueryOutput::Solutions { variables, rows } => {
                let (media, format) = results_format(media_type);
                let mut serializer = QueryResultsSerializer::from_format(format)
                    .serialize_solutions_to_writer(Vec::new(), variables.clone())
                    .map_err(fail)?;
                for row in rows {
                    serializer
                        .serialize(
                            variables
                                .iter()
                                .zip(row)
                                .filter_map(|(v, t)| t.as_ref().map(|t| (v.as_ref(), t.as_ref()))),
                        )
                        .map_err(fail)?;
                }
                Ok((media, serializer.finish().map_err(fail)?))
            }
            QueryOutput::Graph(triples) => {
                let (media, format) = match media_type {
                    "application/n-triples" => ("application/n-triples", RdfFormat::NTriples),
                    "application/rdf+xml" => ("application/rdf+xml", RdfFormat::RdfXml),
                    _ => ("text/turtle", RdfFormat::Turtle),
                };
                let mut serializer = RdfSerializer::from_format(format).for_writer(Vec::new());
                for triple in triples {
                    serializer.serialize_triple(triple).map_err(fail)?;
                }
                Ok((media, serializer.finish().map_err(fail)?))
            }
        }
    }
}

/// Runs a SPARQL query over one tenant's store. Blocking: call it from `spawn_blocking`.
///
/// The default graph is the union of the tenant's graphs; `FROM` / `FROM NAMED` choose
/// among them (graphs of other tenants are not in this store).
pub(crate) fn run_sparql(
    store: &Store,
    query: &str,
    cancel: CancellationToken,
    limit: usize,
) -> Result<QueryOutput, StoreError> {
    let mut parsed = spargebra::SparqlParser::new()
        .parse_query(query)
        .map_err(|e| StoreError::QuerySyntax(e.to_string()))?;
    // SERVICE would let a query reach other endpoints: refused before evaluation.
    if uses_service(&parsed.to_sse()) {
        return Err(StoreError::ServiceRefused);
    }
    crate::rewrite::bind_equality_filters(&mut parsed);
    let mut prepared = SparqlEvaluator::new()
        .with_cancellation_token(cancel)
        .for_query(parsed);
    let dataset = prepared.dataset_mut();
    if dataset.is_default_dataset() {
        dataset.set_default_graph_as_union();
    }
    let results = prepared
        .on_store(store)
        .execute()
        .map_err(evaluation_error)?;
    materialize(results, limit)
}

/// Whether the algebra (as S-expression) has a service pattern. Outside string literals the
/// S-expression spells `(service ` only for one; IRIs and variables cannot hold a space.
pub(crate) fn uses_service(sse: &str) -> bool {
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

/// What a filtered value must satisfy.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Compare with one value.
    Cmp(Cmp, Term),
    /// Equal to one of these values.
    OneOf(Vec<Term>),
    /// The resource has no value at the path (catalog models have no site).
    Absent,
}

/// "The value reached from a resource by `path` satisfies `condition`."
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// One or more predicates, followed from the resource (e.g. live context, then status).
    pub path: Vec<NamedNode>,
    pub condition: Condition,
}

impl Filter {
    /// A comparison filter.
    pub fn cmp(path: Vec<NamedNode>, cmp: Cmp, value: impl Into<Term>) -> Self {
        Self {
            path,
            condition: Condition::Cmp(cmp, value.into()),
        }
    }
}

/// A circle on the map: resources whose `geo:location` lies within it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Near {
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
}

/// The order of a typed query's results; ties are broken by id.
#[derive(Debug, Clone, PartialEq)]
pub enum Order {
    Id,
    /// By the value at a predicate path; resources without one come last.
    Field {
        path: Vec<NamedNode>,
        descending: bool,
    },
    /// Nearest first (needs [`Find::near`]).
    Distance,
}

/// The sort key of one result.
#[derive(Debug, Clone, PartialEq)]
pub enum SortKey {
    Number(f64),
    Text(String),
    Missing,
}

impl SortKey {
    fn of(term: Option<&Term>) -> SortKey {
        match term {
            // Date-times sort by the instant they name, whatever offset they were written in.
            Some(Term::Literal(l))
                if l.datatype() == oxigraph::model::vocab::xsd::DATE_TIME
                    && crate::graph::parse_time_ms(l.value()).is_some() =>
            {
                SortKey::Number(crate::graph::parse_time_ms(l.value()).unwrap_or(0) as f64)
            }
            Some(Term::Literal(l)) => {
                if iotcane_model::rdf::is_numeric_literal(l.as_ref()) {
                    l.value()
                        .parse()
                        .map_or_else(|_| SortKey::Text(l.value().to_owned()), SortKey::Number)
                } else {
                    SortKey::Text(l.value().to_owned())
                }
            }
            Some(Term::NamedNode(n)) => SortKey::Text(n.as_str().to_owned()),
            Some(other) => SortKey::Text(other.to_string()),
            None => SortKey::Missing,
        }
    }

    /// Ascending order: numbers, then texts, then missing values.
    fn compare(&self, other: &SortKey) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (self, other) {
            (SortKey::Number(a), SortKey::Number(b)) => a.total_cmp(b),
            (SortKey::Text(a), SortKey::Text(b)) => a.cmp(b),
            (SortKey::Missing, SortKey::Missing) => Ordering::Equal,
            (SortKey::Number(_), _) | (SortKey::Text(_), SortKey::Missing) => Ordering::Less,
            _ => Ordering::Greater,
        }
    }
}

/// Where the previous page ended: the last result's sort key and id.
#[derive(Debug, Clone, PartialEq)]
pub struct After {
    pub key: SortKey,
    pub id: ResourceId,
}

/// A typed query: one tenant's resources of a kind that pass every filter, in a stable
/// order, after a cursor.
#[derive(Debug, Clone)]
pub struct Find {
    pub tenant: Tenant,
    pub kind: Option<Kind>,
    pub filters: Vec<Filter>,
    pub near: Option<Near>,
    pub order: Order,
    pub after: Option<After>,
    pub limit: usize,
}

impl Find {
    /// Every resource of `kind` in `tenant`, in id order.
    pub fn new(tenant: Tenant, kind: Option<Kind>) -> Self {
        Self {
            tenant,
            kind,
            filters: Vec::new(),
            near: None,
            order: Order::Id,
            after: None,
            limit: usize::MAX,
        }
    }
}

/// One result of a [`Find`].
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub id: ResourceId,
    /// The value the results are ordered by (`Missing` in id order).
    pub key: SortKey,
    /// Metres from the [`Find::near`] point.
    pub distance_m: Option<f64>,
}

/// Builds the SPARQL algebra of a [`Find`] directly, never as text: classes, predicates
/// and user values go into the patterns as RDF terms. Constants in the patterns let the
/// evaluator use its indexes ("devices that observe P at site S" is an index probe, not a
/// scan of every device).
fn find_pattern(find: &Find) -> Result<spargebra::algebra::GraphPattern, StoreError> {
    use spargebra::algebra::{Expression, Function, GraphPattern};
    use spargebra::term::{NamedNodePattern, TermPattern, TriplePattern};

    let subject = TermPattern::Variable(var("s"));
    let mut patterns = Vec::new();
    let mut values = Vec::new();
    let mut conditions = Vec::new();
    // The filters' patterns come first, in the order given, and the class last: the
    // evaluator keeps the order of equally selective-looking patterns, and a filter on a
    // rare value (a site) narrows far more than the class does.
    let class_pattern = match find.kind {
        Some(kind) => TriplePattern {
            subject: subject.clone(),
            predicate: oxigraph::model::vocab::rdf::TYPE.into_owned().into(),
            object: TermPattern::NamedNode(class_of(kind).into_owned()),
        },
        None => TriplePattern {
            subject: subject.clone(),
            predicate: NamedNode::new_unchecked("http://purl.org/dc/terms/identifier").into(),
            object: TermPattern::Variable(var("id")),
        },
    };
    for (i, filter) in find.filters.iter().enumerate() {
        let name = format!("f{i}");
        match &filter.condition {
            Condition::Absent => {
                let mut inner = Vec::new();
                path_patterns(&mut inner, &name, &filter.path, None);
                conditions.push(Expression::Not(Box::new(Expression::Exists(Box::new(
                    GraphPattern::Bgp { patterns: inner },
                )))));
            }
            Condition::Cmp(Cmp::Eq, value) if same_term_is_equality(value) => {
                path_patterns(&mut patterns, &name, &filter.path, Some(value));
            }
            Condition::OneOf(list) if list.len() == 1 && same_term_is_equality(&list[0]) => {
                path_patterns(&mut patterns, &name, &filter.path, Some(&list[0]));
            }
            Condition::OneOf(list) if list.iter().all(same_term_is_equality) => {
                let object = path_patterns(&mut patterns, &name, &filter.path, None);
                values.push(GraphPattern::Values {
                    variables: vec![object],
                    bindings: list
                        .iter()
                        .map(|t| ground_term(t).map(|t| vec![Some(t)]))
                        .collect::<Result<_, _>>()?,
                });
            }
            Condition::Cmp(cmp, value) => {
                let object = path_patterns(&mut patterns, &name, &filter.path, None);
                let (o, v) = (Expression::Variable(object), expression(value)?);
                conditions.push(match cmp {
                    Cmp::Eq => Expression::Equal(Box::new(o), Box::new(v)),
                    Cmp::Ne => {
                        Expression::Not(Box::new(Expression::Equal(Box::new(o), Box::new(v))))
                    }
                    Cmp::Lt => Expression::Less(Box::new(o), Box::new(v)),
                    Cmp::Le => Expression::LessOrEqual(Box::new(o), Box::new(v)),
                    Cmp::Gt => Expression::Greater(Box::new(o), Box::new(v)),
                    Cmp::Ge => Expression::GreaterOrEqual(Box::new(o), Box::new(v)),
                    Cmp::StartsWith => Expression::FunctionCall(
                        Function::StrStarts,
                        vec![
                            Expression::FunctionCall(Function::Str, vec![o]),
                            Expression::FunctionCall(Function::Str, vec![v]),
                        ],
                    ),
                });
            }
            Condition::OneOf(list) => {
                let object = path_patterns(&mut patterns, &name, &filter.path, None);
                conditions.push(Expression::In(
                    Box::new(Expression::Variable(object)),
                    list.iter().map(expression).collect::<Result<_, _>>()?,
                ));
            }
        }
    }
    patterns.push(class_pattern);
    let mut projection = vec![var("s")];
    if find.near.is_some() {
        let geo = |local: &str| {
            NamedNode::new_unchecked(format!("http://www.w3.org/2003/01/geo/wgs84_pos#{local}"))
        };
        let location = TermPattern::Variable(var("loc"));
        for (s, p, o) in [
            (subject.clone(), geo("location"), location.clone()),
            (
                location.clone(),
                geo("lat"),
                TermPattern::Variable(var("lat")),
            ),
            (location, geo("long"), TermPattern::Variable(var("lon"))),
        ] {
            patterns.push(TriplePattern {
                subject: s,
                predicate: NamedNodePattern::NamedNode(p),
                object: o,
            });
        }
        projection.extend([var("lat"), var("lon")]);
    }
    let mut pattern = GraphPattern::Bgp { patterns };
    for v in values {
        pattern = GraphPattern::Join {
            left: Box::new(v),
            right: Box::new(pattern),
        };
    }
    if let Some(expr) = conditions
        .into_iter()
        .reduce(|a, b| Expression::And(Box::new(a), Box::new(b)))
    {
        pattern = GraphPattern::Filter {
            expr,
            inner: Box::new(pattern),
        };
    }
    if let Order::Field { path, .. } = &find.order {
        let mut optional = Vec::new();
        projection.push(path_patterns(&mut optional, "k", path, None));
        pattern = GraphPattern::LeftJoin {
            left: Box::new(pattern),
            right: Box::new(GraphPattern::Bgp { patterns: optional }),
            expression: None,
        };
    }
    Ok(GraphPattern::Distinct {
        inner: Box::new(GraphPattern::Project {
            inner: Box::new(GraphPattern::Graph {
                name: NamedNodePattern::Variable(var("g")),
                inner: Box::new(pattern),
            }),
            variables: projection,
        }),
    })
}

/// Whether `=` holds between this term and another exactly when they are the same term,
/// so the term can stand in a pattern in place of an equality filter: IRIs, plain and
/// language-tagged strings. (Numbers are not: `1` equals `1.0`.)
fn same_term_is_equality(term: &Term) -> bool {
    match term {
        Term::NamedNode(_) => true,
        Term::Literal(l) => {
            l.datatype() == oxigraph::model::vocab::xsd::STRING || l.language().is_some()
        }
        _ => false,
    }
}

fn ground_term(term: &Term) -> Result<spargebra::term::GroundTerm, StoreError> {
    match term {
        Term::NamedNode(n) => Ok(n.clone().into()),
        Term::Literal(l) => Ok(l.clone().into()),
        other => Err(StoreError::QuerySyntax(format!(
            "a filter value must be an IRI or a literal, not {other}"
        ))),
    }
}

fn expression(term: &Term) -> Result<spargebra::algebra::Expression, StoreError> {
    use spargebra::algebra::Expression;
    match term {
        Term::NamedNode(n) => Ok(Expression::NamedNode(n.clone())),
        Term::Literal(l) => Ok(Expression::Literal(l.clone())),
        other => Err(StoreError::QuerySyntax(format!(
            "a filter value must be an IRI or a literal, not {other}"
        ))),
    }
}

/// Appends the triple patterns that follow `path` from `?s`; the value reached is `end`
/// when given, else a fresh variable, which is returned.
fn path_patterns(
    patterns: &mut Vec<spargebra::term::TriplePattern>,
    name: &str,
    path: &[NamedNode],
    end: Option<&Term>,
) -> Variable {
    use spargebra::term::{TermPattern, TriplePattern};
    let object_variable = var(&format!("o{name}"));
    let mut subject = TermPattern::Variable(var("s"));
    for (j, predicate) in path.iter().enumerate() {
        let object = match (j + 1 == path.len(), end) {
            (true, Some(Term::NamedNode(n))) => TermPattern::NamedNode(n.clone()),
            (true, Some(Term::Literal(l))) => TermPattern::Literal(l.clone()),
            (true, _) => TermPattern::Variable(object_variable.clone()),
            (false, _) => TermPattern::Variable(var(&format!("n{name}_{j}"))),
        };
        patterns.push(TriplePattern {
            subject,
            predicate: predicate.clone().into(),
            object: object.clone(),
        });
        subject = object;
    }
    object_variable
}

fn var(name: &str) -> Variable {
    Variable::new_unchecked(name)
}

/// Runs a [`Find`] over the tenant's store. Blocking.
pub(crate) fn run_find(
    store: &Store,
    find: &Find,
    cancel: CancellationToken,
) -> Result<Vec<Found>, StoreError> {
    let QueryResults::Solutions(solutions) = SparqlEvaluator::new()
        .with_cancellation_token(cancel)
        .for_query(spargebra::Query::Select {
            dataset: None,
            pattern: find_pattern(find)?,
            base_iri: None,
        })
        .on_store(store)
        .execute()
        .map_err(evaluation_error)?
    else {
        return Err(StoreError::QueryEvaluation("expected solutions".to_owned()));
    };
    let descending = matches!(
        find.order,
        Order::Field {
            descending: true,
            ..
        }
    );
    let mut found: std::collections::HashMap<ResourceId, Found> = std::collections::HashMap::new();
    for solution in solutions {
        let solution = solution.map_err(evaluation_error)?;
        let Some(Term::NamedNode(s)) = solution.get("s") else {
            continue;
        };
        let Ok(id) = ResourceId::from_iri(s.as_str()) else {
            continue;
        };
        let distance_m = match find.near {
            Some(near) => {
                let coordinate = |name: &str| match solution.get(name) {
                    Some(Term::Literal(l)) => l.value().parse::<f64>().ok(),
                    _ => None,
                };
                let (Some(lat), Some(lon)) = (coordinate("lat"), coordinate("lon")) else {
                    continue;
                };
                let d = haversine_m(near.lat, near.lon, lat, lon);
                if d > near.radius_m {
                    continue;
                }
                Some(d)
            }
            None => None,
        };
        let key = match find.order {
            Order::Id => SortKey::Missing,
            Order::Field { .. } => SortKey::of(solution.get("ok")),
            Order::Distance => distance_m.map_or(SortKey::Missing, SortKey::Number),
        };
        let candidate = Found {
            id: id.clone(),
            key,
            distance_m,
        };
        // A multi-valued sort field sorts by its first value in the chosen direction.
        match found.entry(id) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(candidate);
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                let better = candidate.key.compare(&o.get().key);
                let better = if descending { better.reverse() } else { better };
                if better.is_lt() {
                    o.insert(candidate);
                }
            }
        }
    }
    let order = |a: &SortKey, a_id: &ResourceId, b: &SortKey, b_id: &ResourceId| {
        let by_key = match (a, b) {
            // Missing values come last in either direction.
            (SortKey::Missing, SortKey::Missing) => std::cmp::Ordering::Equal,
            (SortKey::Missing, _) => std::cmp::Ordering::Greater,
            (_, SortKey::Missing) => std::cmp::Ordering::Less,
            _ if descending => b.compare(a),
            _ => a.compare(b),
        };
        by_key.then_with(|| a_id.cmp(b_id))
    };
    let mut results: Vec<Found> = found.into_values().collect();
    results.sort_by(|a, b| order(&a.key, &a.id, &b.key, &b.id));
    if let Some(after) = &find.after {
        results.retain(|f| order(&f.key, &f.id, &after.key, &after.id).is_gt());
    }
    results.truncate(find.limit);
    Ok(results)
}

/// Whether any resource passes a [`Find`]'s filters (order, cursor and limit aside): an
/// ASK, which stops at the first match. Blocking.
pub(crate) fn run_exists(
    store: &Store,
    find: &Find,
    cancel: CancellationToken,
) -> Result<bool, StoreError> {
    let ask = spargebra::Query::Ask {
        dataset: None,
        pattern: find_pattern(find)?,
        base_iri: None,
    };
    match SparqlEvaluator::new()
        .with_cancellation_token(cancel)
        .for_query(ask)
        .on_store(store)
        .execute()
        .map_err(evaluation_error)?
    {
        QueryResults::Boolean(b) => Ok(b),
        _ => Err(StoreError::QueryEvaluation("expected a boolean".to_owned())),
    }
}

/// Great-circle distance in metres.
fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    const EARTH_RADIUS_M: f64 = 6_371_008.8;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haversine_matches_a_known_distance() {
        // Berlin to Paris is about 878 km.
        let d = haversine_m(52.5200, 13.4050, 48.8566, 2.3522);
        assert!((d - 878_000.0).abs() < 5_000.0, "{d}");
    }

    #[test]
    fn date_times_sort_by_instant() {
        use oxigraph::model::Literal;
        let at = |s: &str| {
            SortKey::of(Some(&Term::from(Literal::new_typed_literal(
                s,
                oxigraph::model::vocab::xsd::DATE_TIME,
            ))))
        };
        let later = at("2026-12-01T10:00:00+02:00"); // 08:00Z
        let earlier = at("2026-12-01T09:00:00Z");
        assert!(later.compare(&earlier).is_lt());
    }

    #[test]
    fn sort_keys_put_numbers_before_texts_before_missing() {
        let keys = [
            SortKey::Missing,
            SortKey::Text("a".into()),
            SortKey::Number(2.0),
            SortKey::Number(-1.0),
        ];
        let mut sorted = keys.to_vec();
        sorted.sort_by(SortKey::compare);
        assert_eq!(
            sorted,
            [
                SortKey::Number(-1.0),
                SortKey::Number(2.0),
                SortKey::Text("a".into()),
                SortKey::Missing
            ]
        );
    }
}
