//! A SHACL Core subset evaluator: exactly the targets, paths and constraint components
//! `schema/shapes.ttl` uses, following the SHACL recommendation (W3C, 2017) section by
//! section. Any other `sh:` parameter on a shape makes [`Shapes::load`] panic, so a shapes
//! file that grows past this subset fails the test instead of being half-checked.
//!
//! - targets: `sh:targetClass` (with `rdfs:subClassOf*` in the data), `sh:targetObjectsOf`,
//!   `sh:targetSubjectsOf`, `sh:targetNode`;
//! - paths: predicate paths and `sh:alternativePath` of predicates;
//! - components: `sh:datatype` (with ill-formed literals violating), `sh:nodeKind`,
//!   `sh:minCount`, `sh:maxCount`, `sh:minLength`, `sh:maxLength`, `sh:pattern` (+`sh:flags`),
//!   `sh:in`, `sh:minInclusive`, `sh:minExclusive`, `sh:maxInclusive`, `sh:maxExclusive`,
//!   `sh:node`, `sh:or`, `sh:disjoint`.
//!
//! The comparisons SHACL defines by SPARQL (`sh:pattern` is SPARQL `REGEX`, the range
//! components are SPARQL `<`, `<=`, `>`, `>=` over any mix of numeric datatypes, and the
//! well-formedness of a literal is whether SPARQL can cast its lexical form) are run by
//! oxigraph's SPARQL engine on an in-memory oxigraph store, so they have SPARQL's
//! semantics, not an approximation of them.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::Path;

use iotcane_model::formats::parse_graph;
use oxigraph::io::RdfFormat;
use oxigraph::sparql::{QueryResults, SparqlEvaluator};
use oxigraph::store::Store;
use oxrdf::vocab::{rdf, rdfs, xsd};
use oxrdf::{Graph, NamedNode, NamedNodeRef, NamedOrBlankNode, Term, TermRef};

pub const SH: &str = "http://www.w3.org/ns/shacl#";

fn sh(local: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("{SH}{local}"))
}

/// Parameters that are not constraints: non-validating ones, paths, targets and
/// `sh:property`, handled where shapes are walked.
const NOT_CONSTRAINTS: [&str; 12] = [
    "alternativePath",
    "name",
    "description",
    "message",
    "path",
    "property",
    "targetClass",
    "targetObjectsOf",
    "targetSubjectsOf",
    "targetNode",
    "order",
    "group",
];

/// The constraint parameters this evaluator implements.
const CONSTRAINTS: [&str; 16] = [
    "datatype",
    "nodeKind",
    "minCount",
    "maxCount",
    "minLength",
    "maxLength",
    "pattern",
    "flags",
    "in",
    "minInclusive",
    "minExclusive",
    "maxInclusive",
    "maxExclusive",
    "node",
    "or",
    "disjoint",
];

/// A SHACL path of the subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShPath {
    Predicate(NamedNode),
    Alternative(Vec<NamedNode>),
}

impl ShPath {
    pub fn predicates(&self) -> &[NamedNode] {
        match self {
            ShPath::Predicate(p) => std::slice::from_ref(p),
            ShPath::Alternative(ps) => ps,
        }
    }
}

impl fmt::Display for ShPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShPath::Predicate(p) => write!(f, "{p}"),
            ShPath::Alternative(ps) => {
                let ps: Vec<String> = ps.iter().map(ToString::to_string).collect();
                write!(f, "[ sh:alternativePath ( {} ) ]", ps.join(" "))
            }
        }
    }
}

/// One validation result (`sh:ValidationResult`), all of severity `sh:Violation`.
#[derive(Debug, Clone)]
pub struct Finding {
    pub focus: Term,
    pub path: Option<ShPath>,
    pub value: Option<Term>,
    /// `sh:sourceShape`.
    pub source: NamedOrBlankNode,
    /// `sh:sourceConstraintComponent`.
    pub component: NamedNode,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = |t: &Term| {
            let s = t.to_string();
            if s.len() > 80 {
                format!("{}…", &s[..s.floor_char_boundary(80)])
            } else {
                s
            }
        };
        write!(f, "focus {} ", short(&self.focus))?;
        if let Some(p) = &self.path {
            write!(f, "path {p} ")?;
        }
        if let Some(v) = &self.value {
            write!(f, "value {} ", short(v))?;
        }
        write!(
            f,
            "shape {} {} \"{}\"",
            self.source,
            self.component.as_str().trim_start_matches(SH),
            self.message
        )
    }
}

/// The shapes graph, ready to validate data graphs.
pub struct Shapes {
    shapes: Graph,
    /// Shapes with at least one target, in a stable order.
    targeted: Vec<NamedOrBlankNode>,
    /// `sh:name` of each shape that has one.
    pub names: HashMap<NamedOrBlankNode, String>,
    /// Where SPARQL operators are evaluated (it holds no data).
    sparql: Store,
}

impl fmt::Debug for Shapes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shapes")
            .field("targeted", &self.targeted.len())
            .finish()
    }
}

const MAX_DEPTH: usize = 32;

impl Shapes {
    /// Reads a Turtle shapes graph, refusing any shape parameter outside the subset.
    pub fn load(path: &Path) -> Shapes {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Shapes::from_turtle(&text, &path.display().to_string())
    }

    /// Reads a Turtle shapes graph given as text; `origin` names it in panics.
    pub fn from_turtle(text: &str, origin: &str) -> Shapes {
        let shapes = parse_graph(RdfFormat::Turtle, text.as_bytes())
            .unwrap_or_else(|e| panic!("{origin}: {e}"));
        for triple in shapes.iter() {
            if let Some(local) = triple.predicate.as_str().strip_prefix(SH) {
                assert!(
                    NOT_CONSTRAINTS.contains(&local) || CONSTRAINTS.contains(&local),
                    "{origin}: sh:{local} (on {}) is outside the SHACL Core subset this evaluator implements",
                    triple.subject
                );
            }
        }
        let targets = [
            "targetClass",
            "targetObjectsOf",
            "targetSubjectsOf",
            "targetNode",
        ]
        .map(sh);
        let mut targeted: Vec<NamedOrBlankNode> = Vec::new();
        for target in &targets {
            for t in shapes.triples_for_predicate(target) {
                let shape = t.subject.into_owned();
                if !targeted.contains(&shape) {
                    targeted.push(shape);
                }
            }
        }
        targeted.sort_by_key(ToString::to_string);
        let names = shapes
            .triples_for_predicate(&sh("name"))
            .filter_map(|t| match t.object {
                TermRef::Literal(name) => Some((t.subject.into_owned(), name.value().to_owned())),
                _ => None,
            })
            .collect();
        Shapes {
            shapes,
            targeted,
            names,
            sparql: Store::new().expect("an in-memory oxigraph store"),
        }
    }

    /// Validates a data graph: whether it conforms, and every result.
    pub fn validate(&self, data: &Graph) -> (bool, Vec<Finding>) {
        let mut findings = Vec::new();
        for shape in &self.targeted {
            for focus in self.focus_nodes(shape, data) {
                self.check(shape, &focus, data, &mut findings, 0);
            }
        }
        (findings.is_empty(), findings)
    }

    fn objects(&self, shape: &NamedOrBlankNode, parameter: &str) -> Vec<Term> {
        self.shapes
            .objects_for_subject_predicate(shape, &sh(parameter))
            .map(TermRef::into_owned)
            .collect()
    }

    fn object(&self, shape: &NamedOrBlankNode, parameter: &str) -> Option<Term> {
        let mut all = self.objects(shape, parameter);
        assert!(all.len() <= 1, "{shape} has several sh:{parameter}");
        all.pop()
    }

    /// Section 2.1.3: the focus nodes of a shape's targets.
    fn focus_nodes(&self, shape: &NamedOrBlankNode, data: &Graph) -> Vec<Term> {
        let mut focus: BTreeSet<String> = BTreeSet::new();
        let mut out = Vec::new();
        let mut push = |t: Term| {
            if focus.insert(t.to_string()) {
                out.push(t);
            }
        };
        for node in self.objects(shape, "targetNode") {
            push(node);
        }
        for class in self.objects(shape, "targetClass") {
            let Term::NamedNode(class) = class else {
                continue;
            };
            for c in subclasses(data, class) {
                for s in data.subjects_for_predicate_object(rdf::TYPE, &c) {
                    push(s.into_owned().into());
                }
            }
        }
        for p in self.objects(shape, "targetSubjectsOf") {
            let Term::NamedNode(p) = p else { continue };
            for t in data.triples_for_predicate(&p) {
                push(t.subject.into_owned().into());
            }
        }
        for p in self.objects(shape, "targetObjectsOf") {
            let Term::NamedNode(p) = p else { continue };
            for t in data.triples_for_predicate(&p) {
                push(t.object.into_owned());
            }
        }
        out
    }

    fn path(&self, shape: &NamedOrBlankNode) -> Option<ShPath> {
        let path = self.object(shape, "path")?;
        Some(match path {
            Term::NamedNode(p) => ShPath::Predicate(p),
            Term::BlankNode(b) => {
                let b: NamedOrBlankNode = b.into();
                let list = self.object(&b, "alternativePath").unwrap_or_else(|| {
                    panic!("{shape}: only predicate paths and sh:alternativePath are implemented")
                });
                let members = rdf_list(&self.shapes, &list)
                    .into_iter()
                    .map(|m| match m {
                        Term::NamedNode(p) => p,
                        other => panic!("{shape}: sh:alternativePath of {other}: only predicates are implemented"),
                    })
                    .collect();
                ShPath::Alternative(members)
            }
            other => panic!("{shape}: sh:path {other}"),
        })
    }

    /// Whether `focus` conforms to `shape` (used by `sh:node` and `sh:or`).
    fn conforms(&self, shape: &NamedOrBlankNode, focus: &Term, data: &Graph, depth: usize) -> bool {
        let mut findings = Vec::new();
        self.check(shape, focus, data, &mut findings, depth + 1);
        findings.is_empty()
    }

    /// Validates one focus node against one shape (node shape or property shape).
    fn check(
        &self,
        shape: &NamedOrBlankNode,
        focus: &Term,
        data: &Graph,
        out: &mut Vec<Finding>,
        depth: usize,
    ) {
        assert!(
            depth < MAX_DEPTH,
            "shapes nested deeper than {MAX_DEPTH}: a recursive shape?"
        );
        let path = self.path(shape);
        let values: Vec<Term> = match &path {
            None => vec![focus.clone()],
            Some(path) => value_nodes(data, focus, path),
        };
        let message = self.object(shape, "message").map(|m| match m {
            Term::Literal(l) => l.value().to_owned(),
            other => other.to_string(),
        });
        let mut report = |component: &str, value: Option<&Term>| {
            out.push(Finding {
                focus: focus.clone(),
                path: path.clone(),
                value: value.cloned(),
                source: shape.clone(),
                component: sh(&format!("{component}ConstraintComponent")),
                message: message
                    .clone()
                    .unwrap_or_else(|| format!("sh:{component}ConstraintComponent")),
            });
        };

        // 4.1 Value type constraint components.
        for datatype in self.objects(shape, "datatype") {
            let Term::NamedNode(datatype) = datatype else {
                panic!("{shape}: sh:datatype {datatype}")
            };
            for v in &values {
                if !self.has_datatype(v, datatype.as_ref()) {
                    report("Datatype", Some(v));
                }
            }
        }
        for kind in self.objects(shape, "nodeKind") {
            let kind = kind.to_string();
            for v in &values {
                if !node_kind_matches(&kind, v) {
                    report("NodeKind", Some(v));
                }
            }
        }
        // 4.2 Cardinality constraint components.
        if let Some(min) = self.object(shape, "minCount").map(|n| integer(shape, &n))
            && values.len() < min
        {
            report("MinCount", None);
        }
        if let Some(max) = self.object(shape, "maxCount").map(|n| integer(shape, &n))
            && values.len() > max
        {
            report("MaxCount", None);
        }
        // 4.3 Value range constraint components (SPARQL comparisons).
        for (parameter, operator, component) in [
            ("minExclusive", ">", "MinExclusive"),
            ("minInclusive", ">=", "MinInclusive"),
            ("maxExclusive", "<", "MaxExclusive"),
            ("maxInclusive", "<=", "MaxInclusive"),
        ] {
            if let Some(bound) = self.object(shape, parameter) {
                for v in &values {
                    if !self.ask(
                        &format!("ASK {{ FILTER(?v {operator} ?b) }}"),
                        v,
                        Some(&bound),
                    ) {
                        report(component, Some(v));
                    }
                }
            }
        }
        // 4.4 String-based constraint components.
        for (parameter, component) in [("minLength", "MinLength"), ("maxLength", "MaxLength")] {
            if let Some(limit) = self.object(shape, parameter).map(|n| integer(shape, &n)) {
                for v in &values {
                    let ok = match v {
                        Term::BlankNode(_) => false,
                        Term::NamedNode(n) => within(n.as_str().chars().count(), limit, parameter),
                        Term::Literal(l) => within(l.value().chars().count(), limit, parameter),
                        #[allow(unreachable_patterns)]
                        _ => false,
                    };
                    if !ok {
                        report(component, Some(v));
                    }
                }
            }
        }
        if let Some(pattern) = self.object(shape, "pattern") {
            let query = match self.object(shape, "flags") {
                Some(flags) => format!("ASK {{ FILTER(REGEX(STR(?v), ?b, {flags})) }}"),
                None => "ASK { FILTER(REGEX(STR(?v), ?b)) }".to_owned(),
            };
            for v in &values {
                if matches!(v, Term::BlankNode(_)) || !self.ask(&query, v, Some(&pattern)) {
                    report("Pattern", Some(v));
                }
            }
        }
        // 4.5 Property pair constraint components.
        for other in self.objects(shape, "disjoint") {
            let Term::NamedNode(other) = other else {
                panic!("{shape}: sh:disjoint {other}")
            };
            let Ok(subject) = NamedOrBlankNode::try_from(focus.clone()) else {
                continue;
            };
            for v in &values {
                if data.contains(oxrdf::TripleRef::new(&subject, &other, v)) {
                    report("Disjoint", Some(v));
                }
            }
        }
        // 4.6 Logical constraint components.
        for list in self.objects(shape, "or") {
            let members: Vec<NamedOrBlankNode> = rdf_list(&self.shapes, &list)
                .into_iter()
                .map(|m| NamedOrBlankNode::try_from(m).expect("sh:or members are shapes"))
                .collect();
            for v in &values {
                if !members.iter().any(|m| self.conforms(m, v, data, depth)) {
                    report("Or", Some(v));
                }
            }
        }
        // 4.7 Shape-based constraint components.
        for node in self.objects(shape, "node") {
            let node = NamedOrBlankNode::try_from(node).expect("sh:node names a shape");
            for v in &values {
                if !self.conforms(&node, v, data, depth) {
                    report("Node", Some(v));
                }
            }
        }
        // 4.8 Other constraint components.
        for list in self.objects(shape, "in") {
            let allowed = rdf_list(&self.shapes, &list);
            for v in &values {
                if !allowed.contains(v) {
                    report("In", Some(v));
                }
            }
        }
        // Property shapes of a node shape (sh:property on a property shape applies the
        // same way, to each value node).
        for property in self.objects(shape, "property") {
            let property = NamedOrBlankNode::try_from(property).expect("sh:property names a shape");
            for v in &values {
                self.check(&property, v, data, out, depth + 1);
            }
        }
    }

    /// `sh:datatype`: a literal of that datatype whose lexical form is well-formed.
    fn has_datatype(&self, value: &Term, datatype: NamedNodeRef<'_>) -> bool {
        let Term::Literal(literal) = value else {
            return false;
        };
        if literal.datatype() != datatype {
            return false;
        }
        if datatype.as_str() == "http://www.w3.org/1999/02/22-rdf-syntax-ns#JSON" {
            return serde_json::from_str::<serde_json::Value>(literal.value()).is_ok();
        }
        let castable = [
            xsd::INTEGER,
            xsd::DECIMAL,
            xsd::DOUBLE,
            xsd::FLOAT,
            xsd::BOOLEAN,
            xsd::DATE_TIME,
        ];
        if castable.contains(&datatype) {
            // Well-formed iff SPARQL can cast the lexical form to the datatype.
            let query = format!(
                "ASK {{ BIND(<{}>(STR(?v)) AS ?x) FILTER(BOUND(?x)) }}",
                datatype.as_str()
            );
            return self.ask(&query, value, None);
        }
        true
    }

    /// Runs an `ASK` query with `?v` (and `?b`) bound by a `VALUES` clause; an evaluation
    /// error is `false`, and so is a blank node (SPARQL `VALUES` cannot hold one, and no
    /// operator used here accepts one).
    fn ask(&self, query: &str, v: &Term, b: Option<&Term>) -> bool {
        if matches!(v, Term::BlankNode(_)) || matches!(b, Some(Term::BlankNode(_))) {
            return false;
        }
        let values = match b {
            Some(b) => format!("VALUES (?v ?b) {{ ({v} {b}) }}"),
            None => format!("VALUES ?v {{ {v} }}"),
        };
        let query = query.replacen("ASK {", &format!("ASK {{ {values}"), 1);
        let prepared = SparqlEvaluator::new()
            .parse_query(&query)
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        match prepared.on_store(&self.sparql).execute() {
            Ok(QueryResults::Boolean(answer)) => answer,
            Ok(_) => panic!("{query} is not an ASK query"),
            Err(_) => false,
        }
    }
}

/// Section 2.3.1: the value nodes of a property shape.
fn value_nodes(data: &Graph, focus: &Term, path: &ShPath) -> Vec<Term> {
    let Ok(subject) = NamedOrBlankNode::try_from(focus.clone()) else {
        return Vec::new();
    };
    let mut seen = HashSet::new();
    path.predicates()
        .iter()
        .flat_map(|p| {
            data.objects_for_subject_predicate(&subject, p)
                .map(TermRef::into_owned)
                .collect::<Vec<_>>()
        })
        .filter(|t| seen.insert(t.clone()))
        .collect()
}

/// `C` and every class declared (in the data) as a subclass of it, transitively.
fn subclasses(data: &Graph, class: NamedNode) -> Vec<Term> {
    let mut all: Vec<Term> = vec![class.into()];
    let mut i = 0;
    while i < all.len() {
        let sub: Vec<Term> = data
            .subjects_for_predicate_object(rdfs::SUB_CLASS_OF, &all[i])
            .map(|s| s.into_owned().into())
            .filter(|s| !all.contains(s))
            .collect();
        all.extend(sub);
        i += 1;
    }
    all
}

fn node_kind_matches(kind: &str, v: &Term) -> bool {
    let (iri, blank, literal) = (
        matches!(v, Term::NamedNode(_)),
        matches!(v, Term::BlankNode(_)),
        matches!(v, Term::Literal(_)),
    );
    match kind
        .trim_start_matches('<')
        .trim_end_matches('>')
        .strip_prefix(SH)
    {
        Some("IRI") => iri,
        Some("BlankNode") => blank,
        Some("Literal") => literal,
        Some("BlankNodeOrIRI") => blank || iri,
        Some("BlankNodeOrLiteral") => blank || literal,
        Some("IRIOrLiteral") => iri || literal,
        _ => panic!("sh:nodeKind {kind}"),
    }
}

fn integer(shape: &NamedOrBlankNode, term: &Term) -> usize {
    match term {
        Term::Literal(l) => l
            .value()
            .parse()
            .unwrap_or_else(|_| panic!("{shape}: {term} is not a count")),
        _ => panic!("{shape}: {term} is not a count"),
    }
}

fn within(length: usize, limit: usize, parameter: &str) -> bool {
    if parameter == "minLength" {
        length >= limit
    } else {
        length <= limit
    }
}

/// The members of an RDF list.
fn rdf_list(graph: &Graph, head: &Term) -> Vec<Term> {
    let mut members = Vec::new();
    let mut node = head.clone();
    while node != Term::from(rdf::NIL) {
        let subject = NamedOrBlankNode::try_from(node.clone()).expect("an RDF list node");
        let first = graph
            .object_for_subject_predicate(&subject, rdf::FIRST)
            .unwrap_or_else(|| panic!("{subject} is not an RDF list node"));
        members.push(first.into_owned());
        node = graph
            .object_for_subject_predicate(&subject, rdf::REST)
            .unwrap_or_else(|| panic!("{subject} has no rdf:rest"))
            .into_owned();
    }
    members
}
