//! A small, generic native JSON → RDF converter for the agreement test.
//!
//! Why it exists: an invalid fixture may not even parse into an `iotcane_model::Resource`
//! (a wrong enum value, a fractional count, …), so `iotcane_model::rdf::to_triples` cannot
//! give its RDF. The JSON-LD route (`schema/context.jsonld`) does not give the documented
//! RDF either (see the comment at the top of `shacl_agreement.rs`). So this module writes
//! the RDF of `schema/VOCABULARY.md` straight from the native JSON, driven by the key →
//! predicate tables below, and writes whatever it is given: a value of the wrong JSON type
//! becomes its natural RDF literal so that SHACL, not this converter, judges it.
//!
//! The tables are copied from `schema/VOCABULARY.md`, not from the crate's `vocab` module,
//! so that a wrong constant there would show up. The agreement test proves the converter
//! faithful: on every valid fixture its graph must be isomorphic to `to_triples`.
//!
//! Besides the graph, the converter records where each RDF node and each triple's object
//! came from, as a JSON pointer into the native form; that is how SHACL results are mapped
//! back to the paths the Rust validator reports.

use std::collections::{HashMap, HashSet};

use oxrdf::vocab::{rdf, xsd};
use oxrdf::{BlankNode, Graph, Literal, NamedNode, NamedOrBlankNode, Term, Triple};
use serde_json::{Map, Value};

pub const RESOURCE_BASE: &str = "https://w3id.org/iotcane/id/";
pub const PROPERTY_BASE: &str = "https://w3id.org/iotcane/property/";
const RDF_JSON: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#JSON";

/// Expands a prefixed name of `schema/VOCABULARY.md`.
pub fn expand(prefixed: &str) -> NamedNode {
    const PREFIXES: [(&str, &str); 10] = [
        ("ic:", "https://w3id.org/iotcane/ontology#"),
        ("sosa:", "http://www.w3.org/ns/sosa/"),
        ("td:", "https://www.w3.org/2019/wot/td#"),
        ("hctl:", "https://www.w3.org/2019/wot/hypermedia#"),
        ("prov:", "http://www.w3.org/ns/prov#"),
        ("schema:", "https://schema.org/"),
        ("dcterms:", "http://purl.org/dc/terms/"),
        ("geo:", "http://www.w3.org/2003/01/geo/wgs84_pos#"),
        ("xsd:", "http://www.w3.org/2001/XMLSchema#"),
        ("rdf:", "http://www.w3.org/1999/02/22-rdf-syntax-ns#"),
    ];
    for (prefix, ns) in PREFIXES {
        if let Some(local) = prefixed.strip_prefix(prefix) {
            return NamedNode::new(format!("{ns}{local}")).expect("a valid vocabulary IRI");
        }
    }
    panic!("unknown prefix in {prefixed}")
}

/// How a JSON value is written in RDF (the "type" column of VOCABULARY.md).
#[derive(Debug, Clone, Copy)]
enum V {
    /// `xsd:string`.
    Text,
    /// A JSON number, written as `xsd:double`.
    Number,
    /// A non-negative JSON integer, `xsd:integer`.
    Count,
    /// An RFC 3339 timestamp, `xsd:dateTime`.
    Time,
    /// `xsd:anyURI`.
    AnyUri,
    /// A JSON document, `rdf:JSON`.
    Json,
    /// A resource id (slug or absolute IRI) → the resource IRI.
    IdRef,
    /// A camelCase property name → `https://w3id.org/iotcane/property/{name}`.
    PropertyName,
    /// A nested object → a blank node described by the fields of the scope.
    Object(Scope),
    /// A map of property name → scalar (`live.properties`) → one blank node per entry, with
    /// `ic:propertyName` (the key) and `rdf:value` (the value: an integral number as
    /// `xsd:integer`, any other as `xsd:double`, a text, an `xsd:boolean`).
    PropertyValues,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Location,
    Affordance,
    Form,
    Live,
    Configuration,
    Binding,
    QosRequirement,
    Outcome,
}

/// One row of a VOCABULARY.md table: JSON key → predicate, value type, set or single.
#[derive(Debug)]
struct Field {
    key: &'static str,
    predicate: &'static str,
    value: V,
    set: bool,
}

const fn one(key: &'static str, predicate: &'static str, value: V) -> Field {
    Field {
        key,
        predicate,
        value,
        set: false,
    }
}

const fn set(key: &'static str, predicate: &'static str, value: V) -> Field {
    Field {
        key,
        predicate,
        value,
        set: true,
    }
}

// "Fields every kind has" (`id` and `kind` are handled on their own).
const COMMON: &[Field] = &[
    one("name", "schema:name", V::Text),
    one("description", "dcterms:description", V::Text),
    set("tags", "ic:tag", V::Text),
    one("source", "dcterms:source", V::Text),
];

// The fields devices and edge nodes share ("as for devices"); `affordances` is handled on
// its own because its predicate depends on each element's `affordanceKind`.
const PLACEMENT: &[Field] = &[
    one("price", "schema:price", V::Number),
    one("currency", "schema:priceCurrency", V::Text),
    one("availability", "ic:availability", V::Number),
    one("site", "ic:site", V::Text),
    one("location", "geo:location", V::Object(Scope::Location)),
    one("instanceOf", "ic:instanceOf", V::IdRef),
    one("live", "ic:liveContext", V::Object(Scope::Live)),
    one("td", "ic:thingDescription", V::Json),
    one("desiredConfig", "ic:desiredConfig", V::Json),
    one("reportedConfig", "ic:reportedConfig", V::Json),
];

const DEVICE: &[Field] = &[
    set("observes", "sosa:observes", V::PropertyName),
    set("actuates", "sosa:actsOnProperty", V::PropertyName),
    one("manufacturer", "schema:manufacturer", V::Text),
    one("model", "schema:model", V::Text),
    set("protocols", "ic:protocol", V::Text),
    one("samplingRateHz", "ic:maxSamplingRateHz", V::Number),
    one("powerSource", "ic:powerSource", V::Text),
    one("powerW", "ic:powerW", V::Number),
    one("batteryLifeDays", "ic:batteryLifeDays", V::Number),
];

const EDGE_NODE: &[Field] = &[
    one("manufacturer", "schema:manufacturer", V::Text),
    one("model", "schema:model", V::Text),
    one("cpuCores", "ic:cpuCores", V::Count),
    one("cpuGhz", "ic:cpuGhz", V::Number),
    one("memoryMb", "ic:memoryMb", V::Count),
    one("storageGb", "ic:storageGb", V::Number),
    one("accelerator", "ic:accelerator", V::Text),
    set("southboundProtocols", "ic:southboundProtocol", V::Text),
    set("northboundProtocols", "ic:northboundProtocol", V::Text),
    one("maxThroughputMsgs", "ic:maxThroughputMsgs", V::Number),
    one("powerW", "ic:powerW", V::Number),
];

const CLOUD_OFFERING: &[Field] = &[
    one("provider", "ic:provider", V::Text),
    one("region", "ic:region", V::Text),
    one("offeringKind", "ic:offeringKind", V::Text),
    one("vcpus", "ic:vcpus", V::Number),
    one("memoryGb", "ic:memoryGb", V::Number),
    one("storageGb", "ic:storageGb", V::Number),
    one("throughputMsgs", "ic:throughputMsgs", V::Number),
    one("pricePerMonth", "ic:pricePerMonth", V::Number),
    one("currency", "schema:priceCurrency", V::Text),
    one("availabilitySla", "ic:availabilitySla", V::Number),
    set("protocols", "ic:protocol", V::Text),
];

const NETWORK_LINK: &[Field] = &[
    one("from", "ic:fromEndpoint", V::Text),
    one("to", "ic:toEndpoint", V::Text),
    one("latencyMs", "ic:latencyMs", V::Number),
    one("bandwidthMbps", "ic:bandwidthMbps", V::Number),
    one("jitterMs", "ic:jitterMs", V::Number),
    one("technology", "ic:linkTechnology", V::Text),
    one("availability", "ic:availability", V::Number),
];

const SERVICE: &[Field] = &[
    one("serviceKind", "ic:serviceKind", V::Text),
    one("cpuCores", "ic:requiredCpuCores", V::Number),
    one("memoryMb", "ic:requiredMemoryMb", V::Number),
    one("storageGb", "ic:requiredStorageGb", V::Number),
    set("protocols", "ic:protocol", V::Text),
    set("deployableOn", "ic:deployableOn", V::Text),
    one("throughputMsgs", "ic:throughputMsgs", V::Number),
];

const CASE: &[Field] = &[
    one("domain", "ic:domain", V::Text),
    one("context", "ic:contextDocument", V::Json),
    one(
        "configuration",
        "ic:configuration",
        V::Object(Scope::Configuration),
    ),
    one("outcome", "ic:outcome", V::Object(Scope::Outcome)),
];

// `condition` and `target` are JSON objects kept whole, like a case's `context`.
const RULE: &[Field] = &[
    one("condition", "ic:ruleCondition", V::Json),
    one("action", "ic:ruleAction", V::Text),
    one("target", "ic:ruleTarget", V::Json),
    one("reason", "ic:ruleReason", V::Text),
    one("refines", "ic:refines", V::IdRef),
    set("cornerstones", "ic:cornerstoneCase", V::IdRef),
];

const LOCATION: &[Field] = &[
    one("lat", "geo:lat", V::Number),
    one("lon", "geo:long", V::Number),
    one("alt", "geo:alt", V::Number),
];

// `affordanceKind` chooses the parent's predicate and has no triple of its own.
const AFFORDANCE: &[Field] = &[
    one("name", "td:name", V::Text),
    one("title", "td:title", V::Text),
    set("forms", "td:hasForm", V::Object(Scope::Form)),
];

const FORM: &[Field] = &[
    one("href", "hctl:hasTarget", V::AnyUri),
    one("contentType", "hctl:forContentType", V::Text),
    one("protocol", "ic:protocol", V::Text),
];

const LIVE: &[Field] = &[
    one("status", "ic:status", V::Text),
    one("batteryPct", "ic:batteryPct", V::Number),
    one("loadPct", "ic:loadPct", V::Number),
    one("observedAt", "ic:observedAt", V::Time),
    one("location", "geo:location", V::Object(Scope::Location)),
    one("properties", "ic:propertyValue", V::PropertyValues),
];

const CONFIGURATION: &[Field] = &[
    set("bindings", "ic:binding", V::Object(Scope::Binding)),
    set(
        "requirements",
        "ic:qosRequirement",
        V::Object(Scope::QosRequirement),
    ),
    one("monthlyCost", "ic:totalMonthlyCost", V::Number),
    one("latencyMs", "ic:totalLatencyMs", V::Number),
    one("availability", "ic:totalAvailability", V::Number),
    one("energyW", "ic:totalEnergyW", V::Number),
    one("objective", "ic:objective", V::Number),
];

const BINDING: &[Field] = &[
    one("requirement", "ic:requirement", V::Text),
    one("role", "ic:role", V::Text),
    one("resource", "ic:resource", V::IdRef),
    one("quantity", "ic:quantity", V::Count),
];

const QOS_REQUIREMENT: &[Field] = &[
    one("metric", "ic:metric", V::Text),
    one("comparator", "ic:comparator", V::Text),
    one("value", "ic:value", V::Number),
    one("unit", "ic:unit", V::Text),
];

const OUTCOME: &[Field] = &[
    one("status", "ic:outcomeStatus", V::Text),
    one("rating", "ic:rating", V::Number),
    one("notes", "ic:notes", V::Text),
    one("measuredLatencyMs", "ic:measuredLatencyMs", V::Number),
    one("measuredMonthlyCost", "ic:measuredMonthlyCost", V::Number),
    one("measuredAvailability", "ic:measuredAvailability", V::Number),
];

/// The class of each kind, and the tables of its keys.
fn kind_tables(kind: &str) -> Option<(&'static str, Vec<&'static [Field]>)> {
    Some(match kind {
        "device" => ("ic:Device", vec![COMMON, DEVICE, PLACEMENT]),
        "edgeNode" => ("ic:EdgeNode", vec![COMMON, EDGE_NODE, PLACEMENT]),
        "cloudOffering" => ("ic:CloudOffering", vec![COMMON, CLOUD_OFFERING]),
        "networkLink" => ("ic:NetworkLink", vec![COMMON, NETWORK_LINK]),
        "service" => ("ic:SoftwareService", vec![COMMON, SERVICE]),
        "case" => ("ic:Case", vec![COMMON, CASE]),
        "rule" => ("ic:Rule", vec![COMMON, RULE]),
        _ => return None,
    })
}

fn scope_table(scope: Scope) -> &'static [Field] {
    match scope {
        Scope::Location => LOCATION,
        Scope::Affordance => AFFORDANCE,
        Scope::Form => FORM,
        Scope::Live => LIVE,
        Scope::Configuration => CONFIGURATION,
        Scope::Binding => BINDING,
        Scope::QosRequirement => QOS_REQUIREMENT,
        Scope::Outcome => OUTCOME,
    }
}

/// The class VOCABULARY.md / the Rust mapping put on a nested node, if any.
fn scope_class(scope: Scope) -> Option<&'static str> {
    match scope {
        Scope::Configuration => Some("ic:Configuration"),
        Scope::Live => Some("ic:LiveContext"),
        _ => None,
    }
}

/// The RDF of one native resource, with where each part came from.
#[derive(Debug, Default)]
pub struct Converted {
    pub graph: Graph,
    /// The JSON pointer of the object each RDF node (subject or nested blank node) stands for.
    pub nodes: HashMap<NamedOrBlankNode, String>,
    /// The JSON pointer of the value each triple's object was written from.
    pub values: HashMap<Triple, String>,
    /// The nodes that stand for one entry of a JSON map (`live.properties`): the entry's key
    /// and value are both at the node's own pointer, so SHACL results on them map there.
    pub entries: HashSet<NamedOrBlankNode>,
    /// Keys the tables do not know, by JSON pointer: SHACL (whose shapes are open) cannot
    /// see them, so the test reports them rather than pretend agreement.
    pub unknown_keys: Vec<String>,
}

impl Converted {
    fn add(&mut self, s: &NamedOrBlankNode, p: NamedNode, o: impl Into<Term>, pointer: String) {
        let triple = Triple::new(s.clone(), p, o);
        self.graph.insert(&triple);
        self.values.insert(triple, pointer);
    }

    fn new_node(&mut self, pointer: &str) -> NamedOrBlankNode {
        let node: NamedOrBlankNode = BlankNode::new(format!("n{}", self.nodes.len()))
            .expect("a valid blank node label")
            .into();
        self.nodes.insert(node.clone(), pointer.to_owned());
        node
    }
}

/// Converts a native resource (any JSON value) into the RDF of VOCABULARY.md.
pub fn native_to_rdf(resource: &Value) -> Converted {
    let mut out = Converted::default();
    let Value::Object(map) = resource else {
        return out;
    };
    let subject: NamedOrBlankNode = match map.get("id") {
        Some(Value::String(id)) => match id_iri(id) {
            Some(iri) => iri.into(),
            None => BlankNode::new("resource").expect("a valid label").into(),
        },
        _ => BlankNode::new("resource").expect("a valid label").into(),
    };
    out.nodes.insert(subject.clone(), String::new());
    if let Some(id) = map.get("id") {
        write_value(
            &mut out,
            &subject,
            expand("dcterms:identifier"),
            V::Text,
            id,
            "/id".into(),
        );
    }
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
    let Some((class, tables)) = kind_tables(kind) else {
        // No class, so no SHACL target: the test sees that SHACL conforms and says so.
        return out;
    };
    out.add(
        &subject,
        rdf::TYPE.into_owned(),
        expand(class),
        "/kind".into(),
    );
    match kind {
        "device" => {
            for (key, class) in [("observes", "sosa:Sensor"), ("actuates", "sosa:Actuator")] {
                if map
                    .get(key)
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty())
                {
                    out.add(
                        &subject,
                        rdf::TYPE.into_owned(),
                        expand(class),
                        format!("/{key}"),
                    );
                }
            }
        }
        "edgeNode" => out.add(
            &subject,
            rdf::TYPE.into_owned(),
            expand("sosa:Platform"),
            "/kind".into(),
        ),
        _ => {}
    }
    for (key, value) in map {
        let pointer = format!("/{}", escape(key));
        match key.as_str() {
            "id" | "kind" => {}
            "affordances" if matches!(kind, "device" | "edgeNode") => {
                write_affordances(&mut out, &subject, value, &pointer);
            }
            _ => match tables.iter().flat_map(|t| t.iter()).find(|f| f.key == key) {
                Some(field) => write_field(&mut out, &subject, field, value, pointer),
                None => out.unknown_keys.push(pointer),
            },
        }
    }
    out
}

fn write_affordances(
    out: &mut Converted,
    subject: &NamedOrBlankNode,
    value: &Value,
    pointer: &str,
) {
    let Value::Array(items) = value else {
        out.add(
            subject,
            expand("td:hasInteractionAffordance"),
            natural(value),
            pointer.to_owned(),
        );
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let item_pointer = format!("{pointer}/{i}");
        let predicate = match item.get("affordanceKind").and_then(Value::as_str) {
            Some("property") => "td:hasPropertyAffordance",
            Some("action") => "td:hasActionAffordance",
            Some("event") => "td:hasEventAffordance",
            // Not in VOCABULARY.md: the shapes target none of this, the test reports it.
            _ => "td:hasInteractionAffordance",
        };
        write_value(
            out,
            subject,
            expand(predicate),
            V::Object(Scope::Affordance),
            item,
            item_pointer,
        );
    }
}

fn write_field(
    out: &mut Converted,
    s: &NamedOrBlankNode,
    field: &Field,
    value: &Value,
    pointer: String,
) {
    let predicate = expand(field.predicate);
    match value {
        Value::Array(items) if field.set => {
            for (i, item) in items.iter().enumerate() {
                write_value(
                    out,
                    s,
                    predicate.clone(),
                    field.value,
                    item,
                    format!("{pointer}/{i}"),
                );
            }
        }
        _ => write_value(out, s, predicate, field.value, value, pointer),
    }
}

fn write_value(
    out: &mut Converted,
    s: &NamedOrBlankNode,
    p: NamedNode,
    v: V,
    value: &Value,
    pointer: String,
) {
    if value.is_null() {
        return;
    }
    let term: Term = match (v, value) {
        (V::Text, Value::String(text)) => Literal::new_simple_literal(text).into(),
        (V::Number, Value::Number(n)) => match n.as_f64() {
            Some(f) => Literal::from(f).into(),
            None => natural(value),
        },
        (V::Count, Value::Number(n)) if n.is_u64() || n.is_i64() => {
            Literal::new_typed_literal(n.to_string(), xsd::INTEGER).into()
        }
        (V::Count, Value::Number(n)) => match n.as_f64() {
            Some(f) => Literal::from(f).into(),
            None => natural(value),
        },
        (V::Time, Value::String(text)) => Literal::new_typed_literal(text, xsd::DATE_TIME).into(),
        (V::AnyUri, Value::String(text)) => Literal::new_typed_literal(text, xsd::ANY_URI).into(),
        (V::Json, _) => json_literal(value).into(),
        (V::IdRef, Value::String(id)) => match id_iri(id) {
            Some(iri) => iri.into(),
            None => Literal::new_simple_literal(id).into(),
        },
        (V::PropertyName, Value::String(name)) => {
            match NamedNode::new(format!("{PROPERTY_BASE}{name}")) {
                Ok(iri) => iri.into(),
                Err(_) => Literal::new_simple_literal(name).into(),
            }
        }
        (V::Object(scope), Value::Object(map)) => {
            let node = out.new_node(&pointer);
            out.add(s, p, node.clone(), pointer.clone());
            write_object(out, &node, scope, map, &pointer);
            return;
        }
        (V::PropertyValues, Value::Object(map)) => {
            for (name, value) in map {
                let entry_pointer = format!("{pointer}/{}", escape(name));
                let node = out.new_node(&entry_pointer);
                out.entries.insert(node.clone());
                out.add(s, p.clone(), node.clone(), entry_pointer.clone());
                out.add(
                    &node,
                    expand("ic:propertyName"),
                    Literal::new_simple_literal(name),
                    entry_pointer.clone(),
                );
                if !value.is_null() {
                    out.add(&node, expand("rdf:value"), scalar(value), entry_pointer);
                }
            }
            return;
        }
        _ => natural(value),
    };
    out.add(s, p, term, pointer);
}

/// A property value: like [`natural`], except that an integral number is an `xsd:integer`
/// whatever its JSON form (`21.0` is `21`), when a 64-bit integer holds it.
fn scalar(value: &Value) -> Term {
    if let Value::Number(n) = value
        && let Some(f) = n.as_f64()
        && n.is_f64()
        && f.fract() == 0.0
    {
        const I64_END: f64 = 9_223_372_036_854_775_808.0;
        const U64_END: f64 = 18_446_744_073_709_551_616.0;
        let integer = if (-I64_END..I64_END).contains(&f) {
            Some((f as i64).to_string())
        } else if (I64_END..U64_END).contains(&f) {
            Some((f as u64).to_string())
        } else {
            None
        };
        if let Some(integer) = integer {
            return Literal::new_typed_literal(integer, xsd::INTEGER).into();
        }
    }
    natural(value)
}

fn write_object(
    out: &mut Converted,
    node: &NamedOrBlankNode,
    scope: Scope,
    map: &Map<String, Value>,
    pointer: &str,
) {
    if let Some(class) = scope_class(scope) {
        out.add(
            node,
            rdf::TYPE.into_owned(),
            expand(class),
            pointer.to_owned(),
        );
    }
    let table = scope_table(scope);
    for (key, value) in map {
        let key_pointer = format!("{pointer}/{}", escape(key));
        if scope == Scope::Affordance && key == "affordanceKind" {
            continue;
        }
        match table.iter().find(|f| f.key == key) {
            Some(field) => write_field(out, node, field, value, key_pointer),
            None => out.unknown_keys.push(key_pointer),
        }
    }
}

/// The IRI a resource id names: an absolute IRI as it is, a slug under the id base.
fn id_iri(id: &str) -> Option<NamedNode> {
    if id.contains(':') {
        NamedNode::new(id).ok()
    } else {
        NamedNode::new(format!("{RESOURCE_BASE}{id}")).ok()
    }
}

/// A JSON value of the wrong type for its key, written as the literal JSON-LD would give it.
fn natural(value: &Value) -> Term {
    match value {
        Value::String(s) => Literal::new_simple_literal(s).into(),
        Value::Bool(b) => Literal::from(*b).into(),
        Value::Number(n) if n.is_u64() || n.is_i64() => {
            Literal::new_typed_literal(n.to_string(), xsd::INTEGER).into()
        }
        Value::Number(n) => Literal::from(n.as_f64().unwrap_or(f64::NAN)).into(),
        Value::Null | Value::Array(_) | Value::Object(_) => json_literal(value).into(),
    }
}

fn json_literal(value: &Value) -> Literal {
    let text = serde_json::to_string(value).expect("JSON serializes");
    Literal::new_typed_literal(text, NamedNode::new_unchecked(RDF_JSON))
}

/// RFC 6901 escaping of one pointer segment.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}
