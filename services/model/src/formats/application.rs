//! The declarative application context (the recommender's input) in RDF.
//!
//! The native form is JSON (`schema/json-schema/context.schema.json`). The same document
//! is RDF through the JSON-LD context `schema/application-context.jsonld`: add
//! `"@context": "https://w3id.org/iotcane/application-context.jsonld"` to it, or write the
//! same graph in Turtle or N-Triples. [`read_application_context`] reads such a graph back
//! into the native JSON, which is then checked like any other; the error pointers of those
//! checks name the native keys, which [`TERMS`] maps one to one onto predicates.
//!
//! Nothing in the graph is ignored: an unknown predicate, a second value of a single-valued
//! key, a literal where a node belongs (or the reverse) and triples that hang off no part of
//! the context are all refused, by pointer.

use std::collections::HashSet;

use oxigraph::io::{JsonLdProfileSet, RdfFormat};
use oxrdf::vocab::{rdf, xsd};
use oxrdf::{Graph, NamedNodeRef, NamedOrBlankNodeRef, TermRef, TripleRef};
use serde_json::{Map, Number, Value};

use super::{Format, FormatError};
use crate::ids::PROPERTY_BASE;
use crate::validate::{Violation, Violations, pointer_segment};

/// The public URL of `schema/application-context.jsonld`, served from the bundled copy.
pub const APPLICATION_CONTEXT_URL: &str = "https://w3id.org/iotcane/application-context.jsonld";

/// The class of the context's root node.
pub const APPLICATION_CONTEXT_CLASS: &str = "https://w3id.org/iotcane/ontology#ApplicationContext";

const IC: &str = "https://w3id.org/iotcane/ontology#";

/// How a key's values sit in the graph.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// One literal.
    Literal,
    /// One observable property: an IRI under the property namespace (or its name as text).
    Property,
    /// Literals, repeated: order carries no meaning and they are read sorted.
    LiteralSet,
    /// One node with keys of its own.
    Node(&'static [Term]),
    /// An RDF list of nodes: order is kept (requirements are reported by position).
    NodeList(&'static [Term]),
}

/// One native key and its predicate.
#[derive(Debug, Clone, Copy)]
struct Term {
    key: &'static str,
    /// The predicate: a local name in the IoT-CANE ontology, or a full IRI.
    predicate: &'static str,
    shape: Shape,
}

impl Term {
    fn predicate_iri(&self) -> String {
        if self.predicate.contains(':') {
            self.predicate.to_owned()
        } else {
            format!("{IC}{}", self.predicate)
        }
    }
}

const fn t(key: &'static str, predicate: &'static str, shape: Shape) -> Term {
    Term {
        key,
        predicate,
        shape,
    }
}

const SENSING: &[Term] = &[
    t("property", "requiredProperty", Shape::Property),
    t("count", "requiredCount", Shape::Literal),
    t("minSamplingRateHz", "minSamplingRateHz", Shape::Literal),
    t("site", "requiredAtSite", Shape::Literal),
    t("protocols", "allowedProtocol", Shape::LiteralSet),
];

/// Actuation requirements have the sensing keys but a sampling rate.
const ACTUATION: &[Term] = &[
    t("property", "requiredProperty", Shape::Property),
    t("count", "requiredCount", Shape::Literal),
    t("site", "requiredAtSite", Shape::Literal),
    t("protocols", "allowedProtocol", Shape::LiteralSet),
];

const PROCESSING: &[Term] = &[
    t("mode", "processingMode", Shape::Literal),
    t("messagesPerSecond", "messagesPerSecond", Shape::Literal),
    t("cpuCores", "neededCpuCores", Shape::Literal),
    t("memoryMb", "neededMemoryMb", Shape::Literal),
];

const STORAGE: &[Term] = &[
    t("volumeGb", "storageVolumeGb", Shape::Literal),
    t("retentionDays", "retentionDays", Shape::Literal),
];

const QOS: &[Term] = &[
    t("maxLatencyMs", "maxLatencyMs", Shape::Literal),
    t("minAvailability", "minAvailability", Shape::Literal),
    t("maxMonthlyCost", "maxMonthlyCost", Shape::Literal),
    t("currency", "budgetCurrency", Shape::Literal),
    t("allowedRegions", "allowedRegion", Shape::LiteralSet),
    t("allowedProviders", "allowedProvider", Shape::LiteralSet),
    t("dataResidency", "dataResidency", Shape::Literal),
];

const WEIGHTS: &[Term] = &[
    t("cost", "costWeight", Shape::Literal),
    t("latency", "latencyWeight", Shape::Literal),
    t("energy", "energyWeight", Shape::Literal),
    t("availability", "availabilityWeight", Shape::Literal),
];

const PREFERENCES: &[Term] = &[
    t("weights", "objectiveWeights", Shape::Node(WEIGHTS)),
    t("preferredVendors", "preferredVendor", Shape::LiteralSet),
];

/// Every key of the native context, with its predicate; `schema/VOCABULARY.md` lists them
/// and `schema/application-context.jsonld` says the same in JSON-LD.
const TERMS: &[Term] = &[
    t("name", "https://schema.org/name", Shape::Literal),
    t("domain", "applicationDomain", Shape::Literal),
    t("sensing", "sensingRequirements", Shape::NodeList(SENSING)),
    t(
        "actuation",
        "actuationRequirements",
        Shape::NodeList(ACTUATION),
    ),
    t("processing", "processingNeed", Shape::Node(PROCESSING)),
    t("storage", "storageNeed", Shape::Node(STORAGE)),
    t("qos", "qosBounds", Shape::Node(QOS)),
    t("preferences", "preferences", Shape::Node(PREFERENCES)),
    t("alternatives", "alternatives", Shape::Literal),
    t("use", "resourceUse", Shape::Literal),
];

/// Why an application context could not be read from RDF.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApplicationContextError {
    #[error(transparent)]
    Syntax(#[from] FormatError),
    #[error("{0}")]
    Shape(Violations),
}

/// The RDF formats a context can be read from.
pub fn is_rdf(format: Format) -> bool {
    matches!(
        format,
        Format::JsonLd | Format::Turtle | Format::NTriples | Format::NQuads
    )
}

/// Reads an application context written in RDF into its native JSON.
pub fn read_application_context(
    format: Format,
    bytes: &[u8],
) -> Result<Value, ApplicationContextError> {
    let rdf_format = match format {
        Format::JsonLd => RdfFormat::JsonLd {
            profile: JsonLdProfileSet::empty(),
        },
        Format::Turtle => RdfFormat::Turtle,
        Format::NTriples => RdfFormat::NTriples,
        Format::NQuads => RdfFormat::NQuads,
        Format::Json | Format::NdJson => {
            return Err(ApplicationContextError::Shape(Violations::one(
                "",
                format!("{} is not an RDF format", format.name()),
            )));
        }
    };
    let graph = super::parse_graph(rdf_format, bytes)?;
    application_context_from_graph(&graph).map_err(ApplicationContextError::Shape)
}

/// Reads the one application context of a graph into its native JSON.
pub fn application_context_from_graph(graph: &Graph) -> Result<Value, Violations> {
    let class = NamedNodeRef::new_unchecked(APPLICATION_CONTEXT_CLASS);
    let domain = format!("{IC}applicationDomain");
    let roots: HashSet<NamedOrBlankNodeRef<'_>> = graph
        .subjects_for_predicate_object(rdf::TYPE, class)
        .chain(
            graph
                .triples_for_predicate(NamedNodeRef::new_unchecked(&domain))
                .map(|t| t.subject),
        )
        .collect();
    let root = match roots.len() {
        1 => roots.into_iter().next(),
        0 => None,
        n => {
            return Err(Violations::one(
                "",
                format!(
                    "the graph holds {n} application contexts (nodes typed ic:ApplicationContext or with ic:applicationDomain); one is expected"
                ),
            ));
        }
    };
    let Some(root) = root else {
        return Err(Violations::one(
            "",
            "the graph holds no application context: no node is typed ic:ApplicationContext or has ic:applicationDomain",
        ));
    };
    let mut reader = Reader {
        graph,
        used: HashSet::new(),
        violations: Vec::new(),
    };
    if let Some(t) = graph.triple(root, rdf::TYPE, class) {
        reader.used.insert(t);
    }
    let value = reader.node(root, TERMS, "");
    let stray = graph.len() - reader.used.len();
    if stray > 0 {
        let example = graph.iter().find(|t| !reader.used.contains(t));
        reader.violations.push(Violation::new(
            "",
            format!(
                "{stray} triple(s) are not part of the application context{}",
                example.map_or(String::new(), |t| format!(", e.g. {t}"))
            ),
        ));
    }
    if reader.violations.is_empty() {
        Ok(value)
    } else {
        Err(Violations(reader.violations))
    }
}

trait GraphExt<'a> {
    fn triple(
        &'a self,
        s: NamedOrBlankNodeRef<'a>,
        p: NamedNodeRef<'a>,
        o: impl Into<TermRef<'a>>,
    ) -> Option<TripleRef<'a>>;
}

impl<'a> GraphExt<'a> for Graph {
    fn triple(
        &'a self,
        s: NamedOrBlankNodeRef<'a>,
        p: NamedNodeRef<'a>,
        o: impl Into<TermRef<'a>>,
    ) -> Option<TripleRef<'a>> {
        let triple = TripleRef::new(s, p, o.into());
        self.contains(triple).then_some(triple)
    }
}

struct Reader<'a> {
    graph: &'a Graph,
    /// The triples read so far; whatever is left over was not understood.
    used: HashSet<TripleRef<'a>>,
    violations: Vec<Violation>,
}

impl<'a> Reader<'a> {
    fn fail(&mut self, pointer: &str, message: impl Into<String>) {
        self.violations.push(Violation::new(pointer, message));
    }

    fn node(&mut self, node: NamedOrBlankNodeRef<'a>, terms: &[Term], pointer: &str) -> Value {
        let mut out = Map::new();
        for triple in self.graph.triples_for_subject(node) {
            let known = triple.predicate == rdf::TYPE && pointer.is_empty()
                || terms
                    .iter()
                    .any(|t| t.predicate_iri() == triple.predicate.as_str());
            if !known {
                // Reported here, so not again as a triple outside the context.
                self.used.insert(triple);
                self.fail(
                    pointer,
                    format!(
                        "unknown predicate {} (the keys here are {})",
                        triple.predicate,
                        terms.iter().map(|t| t.key).collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
        for term in terms {
            let iri = term.predicate_iri();
            let here = format!("{pointer}/{}", pointer_segment(term.key));
            let triples: Vec<TripleRef<'a>> = self
                .graph
                .triples_for_subject(node)
                .filter(|t| t.predicate.as_str() == iri)
                .collect();
            if triples.is_empty() {
                continue;
            }
            self.used.extend(triples.iter().copied());
            let objects: Vec<TermRef<'a>> = triples.iter().map(|t| t.object).collect();
            let value = match term.shape {
                Shape::LiteralSet => {
                    let mut values = Vec::new();
                    for (i, o) in objects.iter().enumerate() {
                        values.extend(self.literal(*o, &format!("{here}/{i}")));
                    }
                    values.sort_by_key(|v| v.to_string());
                    Some(Value::Array(values))
                }
                _ if objects.len() > 1 => {
                    self.fail(
                        &here,
                        format!(
                            "{} has {} values; one is expected",
                            term.predicate,
                            objects.len()
                        ),
                    );
                    None
                }
                Shape::Literal => self.literal(objects[0], &here),
                Shape::Property => self.property(objects[0], &here),
                Shape::Node(keys) => match objects[0] {
                    TermRef::NamedNode(n) => Some(self.node(n.into(), keys, &here)),
                    TermRef::BlankNode(b) => Some(self.node(b.into(), keys, &here)),
                    other => {
                        self.fail(&here, format!("expected a node, found {other}"));
                        None
                    }
                },
                Shape::NodeList(keys) => self.list(objects[0], keys, &here),
            };
            if let Some(value) = value {
                out.insert(term.key.to_owned(), value);
            }
        }
        Value::Object(out)
    }

    /// An RDF list of nodes, read in order.
    fn list(&mut self, head: TermRef<'a>, keys: &[Term], pointer: &str) -> Option<Value> {
        let mut items = Vec::new();
        let mut cell = head;
        let mut seen = HashSet::new();
        loop {
            let node: NamedOrBlankNodeRef<'a> = match cell {
                TermRef::NamedNode(n) if n == rdf::NIL => return Some(Value::Array(items)),
                TermRef::NamedNode(n) => n.into(),
                TermRef::BlankNode(b) => b.into(),
                other => {
                    self.fail(pointer, format!("expected an RDF list, found {other}"));
                    return None;
                }
            };
            if !seen.insert(node) {
                self.fail(pointer, "the RDF list is circular");
                return None;
            }
            let first: Vec<TermRef<'a>> = self
                .graph
                .objects_for_subject_predicate(node, rdf::FIRST)
                .collect();
            let rest: Vec<TermRef<'a>> = self
                .graph
                .objects_for_subject_predicate(node, rdf::REST)
                .collect();
            let ([first], [rest]) = (first.as_slice(), rest.as_slice()) else {
                self.fail(
                    pointer,
                    "expected an RDF list (one rdf:first and one rdf:rest per cell); write the requirements as ( [ … ] [ … ] )",
                );
                return None;
            };
            for (p, o) in [(rdf::FIRST, *first), (rdf::REST, *rest)] {
                if let Some(t) = self.graph.triple(node, p, o) {
                    self.used.insert(t);
                }
            }
            let here = format!("{pointer}/{}", items.len());
            match first {
                TermRef::NamedNode(n) => items.push(self.node((*n).into(), keys, &here)),
                TermRef::BlankNode(b) => items.push(self.node((*b).into(), keys, &here)),
                other => {
                    self.fail(&here, format!("expected a requirement node, found {other}"));
                    return None;
                }
            }
            cell = *rest;
        }
    }

    /// A literal as JSON: numbers as numbers, booleans as booleans, anything else as its
    /// text (the JSON Schema then says what was expected).
    fn literal(&mut self, term: TermRef<'a>, pointer: &str) -> Option<Value> {
        let TermRef::Literal(l) = term else {
            self.fail(pointer, format!("expected a literal, found {term}"));
            return None;
        };
        let text = l.value();
        let datatype = l.datatype();
        let number = if datatype == xsd::INTEGER
            || datatype == xsd::INT
            || datatype == xsd::LONG
            || datatype == xsd::SHORT
            || datatype == xsd::NON_NEGATIVE_INTEGER
            || datatype == xsd::POSITIVE_INTEGER
            || datatype == xsd::UNSIGNED_INT
            || datatype == xsd::UNSIGNED_LONG
        {
            text.trim().parse::<i64>().ok().map(Number::from)
        } else if datatype == xsd::DECIMAL || datatype == xsd::DOUBLE || datatype == xsd::FLOAT {
            text.trim().parse::<f64>().ok().and_then(Number::from_f64)
        } else {
            None
        };
        Some(match number {
            Some(n) => Value::Number(n),
            None if datatype == xsd::BOOLEAN && matches!(text, "true" | "1") => Value::Bool(true),
            None if datatype == xsd::BOOLEAN && matches!(text, "false" | "0") => Value::Bool(false),
            None => Value::String(text.to_owned()),
        })
    }

    /// An observable property: `prop:{name}`, or its name as text.
    fn property(&mut self, term: TermRef<'a>, pointer: &str) -> Option<Value> {
        match term {
            TermRef::NamedNode(n) => match n.as_str().strip_prefix(PROPERTY_BASE) {
                Some(name) => Some(Value::String(name.to_owned())),
                None => {
                    self.fail(
                        pointer,
                        format!("expected a property IRI under {PROPERTY_BASE}, found {n}"),
                    );
                    None
                }
            },
            other => self.literal(other, pointer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(format: Format, text: &str) -> Result<Value, ApplicationContextError> {
        read_application_context(format, text.as_bytes())
    }

    fn pointers(e: ApplicationContextError) -> Vec<String> {
        match e {
            ApplicationContextError::Shape(v) => v.0.into_iter().map(|v| v.path).collect(),
            ApplicationContextError::Syntax(e) => panic!("syntax error: {e}"),
        }
    }

    const TURTLE: &str = r#"
        @prefix ic: <https://w3id.org/iotcane/ontology#> .
        @prefix prop: <https://w3id.org/iotcane/property/> .
        [] a ic:ApplicationContext ;
           ic:applicationDomain "healthcare" ;
           ic:sensingRequirements (
             [ ic:requiredProperty prop:heartRate ; ic:requiredCount 4 ; ic:minSamplingRateHz 1.5 ;
               ic:requiredAtSite "ward-7" ; ic:allowedProtocol "ble", "wifi" ]
             [ ic:requiredProperty "ecg" ; ic:requiredCount 1 ; ic:requiredAtSite "ward-7" ]
           ) ;
           ic:qosBounds [ ic:maxLatencyMs 200 ; ic:allowedRegion "westeurope" ] ;
           ic:preferences [ ic:objectiveWeights [ ic:costWeight 1 ] ] .
    "#;

    #[test]
    fn turtle_reads_into_the_native_form_with_the_list_order_kept() {
        let value = read(Format::Turtle, TURTLE).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "domain": "healthcare",
                "sensing": [
                    {"property": "heartRate", "count": 4, "minSamplingRateHz": 1.5,
                     "site": "ward-7", "protocols": ["ble", "wifi"]},
                    {"property": "ecg", "count": 1, "site": "ward-7"}
                ],
                "qos": {"maxLatencyMs": 200, "allowedRegions": ["westeurope"]},
                "preferences": {"weights": {"cost": 1}}
            })
        );
    }

    #[test]
    fn unknown_predicates_second_values_and_stray_triples_are_refused() {
        let text = r#"
            @prefix ic: <https://w3id.org/iotcane/ontology#> .
            <urn:x:ctx> ic:applicationDomain "healthcare", "farming" ;
                ic:qosBounds [ ic:maxLatencyMs 200 ; ic:colour "red" ] ;
                ic:sensingRequirements [ ic:requiredCount 1 ] .
            <urn:x:other> ic:note "unrelated" .
        "#;
        let found = pointers(read(Format::Turtle, text).unwrap_err());
        assert!(found.contains(&"/domain".to_owned()), "{found:?}");
        assert!(found.contains(&"/qos".to_owned()), "{found:?}");
        assert!(found.contains(&"/sensing".to_owned()), "{found:?}");
        assert!(found.contains(&String::new()), "{found:?}");
        // The unknown predicate is reported once, at its node, not again as a stray.
        assert_eq!(
            found.iter().filter(|p| p.is_empty()).count(),
            1,
            "{found:?}"
        );
    }

    #[test]
    fn a_graph_without_or_with_two_contexts_is_refused() {
        let none = "<urn:x:a> <urn:x:b> \"c\" .";
        assert_eq!(pointers(read(Format::NTriples, none).unwrap_err()), [""]);
        let two = r#"
            @prefix ic: <https://w3id.org/iotcane/ontology#> .
            <urn:x:a> ic:applicationDomain "a" . <urn:x:b> ic:applicationDomain "b" .
        "#;
        assert_eq!(pointers(read(Format::Turtle, two).unwrap_err()), [""]);
    }

    #[test]
    fn syntax_errors_say_where() {
        let Err(ApplicationContextError::Syntax(e)) = read(Format::Turtle, "[] a ic:Nope") else {
            panic!("expected a syntax error");
        };
        assert_eq!(e.format, "Turtle");
    }

    #[test]
    fn the_native_scenarios_read_back_from_json_ld_unchanged() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../schema/examples/scenarios"
        );
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let native: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let mut document = native.clone();
            document["@context"] = Value::String(APPLICATION_CONTEXT_URL.to_owned());
            let read = read(Format::JsonLd, &document.to_string())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(normalised(read), normalised(native), "{}", path.display());
            seen += 1;
        }
        assert_eq!(seen, 5);
    }

    #[test]
    fn the_turtle_example_says_what_its_json_twin_says() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../schema/examples/scenarios"
        );
        let turtle = std::fs::read(format!("{dir}/smart-healthcare.ttl")).unwrap();
        let native: Value =
            serde_json::from_slice(&std::fs::read(format!("{dir}/smart-healthcare.json")).unwrap())
                .unwrap();
        let read = read_application_context(Format::Turtle, &turtle).unwrap();
        assert_eq!(normalised(read), normalised(native));
    }

    /// Sets read back sorted and empty lists are absent in RDF: both sides are compared
    /// with sets sorted and empty arrays dropped. Numbers compare by value.
    fn normalised(value: Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .filter(|(_, v)| !matches!(v, Value::Array(a) if a.is_empty()))
                    .map(|(k, v)| (k, normalised(v)))
                    .collect(),
            ),
            Value::Array(items) => {
                let mut items: Vec<Value> = items.into_iter().map(normalised).collect();
                if items.iter().all(Value::is_string) {
                    items.sort_by_key(|v| v.to_string());
                }
                Value::Array(items)
            }
            Value::Number(n) => n
                .as_f64()
                .and_then(Number::from_f64)
                .map_or(Value::Number(n), Value::Number),
            other => other,
        }
    }
}
