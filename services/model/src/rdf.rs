//! The RDF form of a resource and back, losslessly for everything the model holds.
//!
//! Writing: [`to_quads`] puts a resource into its tenant's named graph; nested objects are
//! blank nodes labelled from the graph IRI and their position, so the same resource always
//! gives the same quads. Reading: [`read_resource`] turns the description of one subject in
//! an [`oxrdf::Graph`] back into a [`Resource`], collecting every violation with the path of
//! the native JSON key it concerns.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use oxrdf::vocab::{rdf, xsd};
use oxrdf::{
    BlankNode, Graph, GraphName, Literal, NamedNode, NamedNodeRef, NamedOrBlankNode,
    NamedOrBlankNodeRef, Quad, Term, TermRef, Triple,
};

use crate::enums::{AffordanceKind, DeployTarget};
use crate::ids::{PROPERTY_BASE, ResourceId, Tenant, property_iri};
use crate::resource::{
    Affordance, Binding, Case, CloudOffering, Configuration, Device, EdgeNode, Form, Kind,
    LiveContext, Location, NetworkLink, Outcome, Placement, QosRequirement, Resource, ResourceBody,
    Rule, RuleCondition, RuleTarget, Service,
};
use crate::validate::{Violation, Violations, pointer_segment, validate};
use crate::vocab::{RDF_JSON, dcterms, geo, hctl, ic, schema, sosa, td};

/// The class of each kind.
pub fn class_of(kind: Kind) -> NamedNodeRef<'static> {
    match kind {
        Kind::Device => ic::DEVICE,
        Kind::EdgeNode => ic::EDGE_NODE,
        Kind::CloudOffering => ic::CLOUD_OFFERING,
        Kind::NetworkLink => ic::NETWORK_LINK,
        Kind::Service => ic::SOFTWARE_SERVICE,
        Kind::Case => ic::CASE,
        Kind::Rule => ic::RULE,
    }
}

/// The kind whose class this is.
pub fn kind_of_class(class: NamedNodeRef<'_>) -> Option<Kind> {
    Kind::ALL.into_iter().find(|k| class_of(*k) == class)
}

/// The quads of `resource` in its tenant's graph for it.
pub fn to_quads(tenant: &Tenant, resource: &Resource) -> Vec<Quad> {
    let graph = tenant.graph_of(&resource.id);
    to_triples_seeded(resource, graph_seed(&graph))
        .into_iter()
        .map(|t| t.in_graph(GraphName::NamedNode(graph.clone())))
        .collect()
}

/// The triples of `resource`, outside any graph (for single-resource documents).
pub fn to_triples(resource: &Resource) -> Vec<Triple> {
    to_triples_seeded(resource, triples_seed(&resource.id))
}

/// The node [`to_triples`] gives the live context of the resource `id` (the object of its
/// `ic:liveContext`). Every node under it has a label that extends this node's label.
pub fn live_node(id: &ResourceId) -> BlankNode {
    Writer::new(triples_seed(id)).blank(LIVE_PATH)
}

/// Exactly the triples [`to_triples`] gives for the live part of a resource `id` whose live
/// context is `live`: the `ic:liveContext` link from the resource, the [`live_node`] and
/// everything under it (its location and property value nodes), with the same labels.
pub fn live_triples(id: &ResourceId, live: &LiveContext) -> Vec<Triple> {
    let mut w = Writer::new(triples_seed(id));
    write_live(&mut w, &NamedOrBlankNode::from(id.iri()), live);
    w.triples
}

/// The node [`to_quads`] gives the live context of the resource `id` in `tenant`'s graph
/// for it (the labels of [`to_quads`] are seeded by the graph IRI, not the resource IRI).
pub fn live_graph_node(tenant: &Tenant, id: &ResourceId) -> BlankNode {
    Writer::new(graph_seed(&tenant.graph_of(id))).blank(LIVE_PATH)
}

/// Exactly the quads [`to_quads`] gives for the live part of the resource `id` (as
/// [`live_triples`], in the resource's graph, labelled like [`to_quads`]): what replaces the
/// live part of a stored resource.
pub fn live_quads(tenant: &Tenant, id: &ResourceId, live: &LiveContext) -> Vec<Quad> {
    let graph = tenant.graph_of(id);
    let mut w = Writer::new(graph_seed(&graph));
    write_live(&mut w, &NamedOrBlankNode::from(id.iri()), live);
    w.triples
        .into_iter()
        .map(|t| t.in_graph(GraphName::NamedNode(graph.clone())))
        .collect()
}

/// The blank node label seed of [`to_triples`].
fn triples_seed(id: &ResourceId) -> u64 {
    fnv1a(id.iri().as_str().as_bytes())
}

/// The blank node label seed of [`to_quads`].
fn graph_seed(graph: &NamedNode) -> u64 {
    fnv1a(graph.as_str().as_bytes())
}

/// The label path of the live context node; its location and property value nodes extend
/// it (`liveloc`, `livep{i}`), and no other node's path starts with it.
const LIVE_PATH: &str = "live";

fn to_triples_seeded(resource: &Resource, seed: u64) -> Vec<Triple> {
    let subject = resource.id.iri();
    let mut w = Writer::new(seed);
    let s: NamedOrBlankNode = subject.clone().into();
    w.iri(&s, rdf::TYPE, class_of(resource.kind()).into_owned());
    w.text(&s, dcterms::IDENTIFIER, resource.id.as_str());
    w.text(&s, schema::NAME, &resource.name);
    w.opt_text(&s, dcterms::DESCRIPTION, resource.description.as_deref());
    for tag in &resource.tags {
        w.text(&s, ic::TAG, tag);
    }
    w.opt_text(&s, dcterms::SOURCE, resource.source.as_deref());
    match &resource.body {
        ResourceBody::Device(d) => write_device(&mut w, &s, d),
        ResourceBody::EdgeNode(e) => write_edge_node(&mut w, &s, e),
        ResourceBody::CloudOffering(o) => write_cloud_offering(&mut w, &s, o),
        ResourceBody::NetworkLink(l) => write_network_link(&mut w, &s, l),
        ResourceBody::Service(v) => write_service(&mut w, &s, v),
        ResourceBody::Case(c) => write_case(&mut w, &s, c),
        ResourceBody::Rule(r) => write_rule(&mut w, &s, r),
    }
    w.triples
}

/// 64-bit FNV-1a: a stable hash for blank node labels (std's hasher may change).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

struct Writer {
    triples: Vec<Triple>,
    seed: u64,
}

impl Writer {
    fn new(seed: u64) -> Self {
        Self {
            triples: Vec::with_capacity(32),
            seed,
        }
    }

    fn blank(&self, path: &str) -> BlankNode {
        BlankNode::new_unchecked(format!("n{:016x}{path}", self.seed))
    }

    fn node(&self, path: &str) -> NamedOrBlankNode {
        self.blank(path).into()
    }

    fn push(&mut self, s: &NamedOrBlankNode, p: NamedNodeRef<'_>, o: impl Into<Term>) {
        self.triples.push(Triple::new(s.clone(), p, o));
    }

    fn iri(&mut self, s: &NamedOrBlankNode, p: NamedNodeRef<'_>, o: NamedNode) {
        self.push(s, p, o);
    }

    fn text(&mut self, s: &NamedOrBlankNode, p: NamedNodeRef<'_>, value: &str) {
        self.push(s, p, Literal::new_simple_literal(value));
    }

    fn opt_text(&mut self, s: &NamedOrBlankNode, p: NamedNodeRef<'_>, value: Option<&str>) {
        if let Some(value) = value {
            self.text(s, p, value);
        }
    }

    fn number(&mut self, s: &NamedOrBlankNode, p: NamedNodeRef<'_>, value: f64) {
        self.push(s, p, Literal::from(value));
    }

    fn opt_number(&mut self, s: &NamedOrBlankNode, p: NamedNodeRef<'_>, value: Option<f64>) {
        if let Some(value) = value {
            self.number(s, p, value);
        }
    }

    fn count(&mut self, s: &NamedOrBlankNode, p: NamedNodeRef<'_>, value: u64) {
        self.push(
            s,
            p,
            Literal::new_typed_literal(value.to_string(), xsd::INTEGER),
        );
    }

    fn json(
        &mut self,
        s: &NamedOrBlankNode,
        p: NamedNodeRef<'_>,
        value: &serde_json::Map<String, serde_json::Value>,
    ) {
        let text = serde_json::to_string(value).unwrap_or_default();
        self.push(s, p, Literal::new_typed_literal(text, RDF_JSON));
    }

    /// A value serialized as an `rdf:JSON` literal: canonical JSON, object keys sorted
    /// (serde_json's map is ordered) and sets in their sorted order.
    fn json_of<T: serde::Serialize>(
        &mut self,
        s: &NamedOrBlankNode,
        p: NamedNodeRef<'_>,
        value: &T,
    ) {
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(value) {
            self.json(s, p, &map);
        }
    }

    /// A `geo:location` node labelled by `path`.
    fn location(&mut self, s: &NamedOrBlankNode, path: &str, location: &Location) {
        let node = self.node(path);
        self.push(s, geo::LOCATION, node.clone());
        self.number(&node, geo::LAT, location.lat);
        self.number(&node, geo::LONG, location.lon);
        self.opt_number(&node, geo::ALT, location.alt);
    }

    fn texts<'a>(
        &mut self,
        s: &NamedOrBlankNode,
        p: NamedNodeRef<'_>,
        values: impl IntoIterator<Item = &'a str>,
    ) {
        for value in values {
            self.text(s, p, value);
        }
    }
}

fn write_device(w: &mut Writer, s: &NamedOrBlankNode, d: &Device) {
    if !d.observes.is_empty() {
        w.iri(s, rdf::TYPE, sosa::SENSOR.into_owned());
    }
    if !d.actuates.is_empty() {
        w.iri(s, rdf::TYPE, sosa::ACTUATOR.into_owned());
    }
    for name in &d.observes {
        w.iri(s, sosa::OBSERVES, property_iri(name));
    }
    for name in &d.actuates {
        w.iri(s, sosa::ACTS_ON_PROPERTY, property_iri(name));
    }
    w.opt_text(s, schema::MANUFACTURER, d.manufacturer.as_deref());
    w.opt_text(s, schema::MODEL, d.model.as_deref());
    w.texts(s, ic::PROTOCOL, d.protocols.iter().map(|p| p.as_str()));
    w.opt_number(s, ic::MAX_SAMPLING_RATE_HZ, d.sampling_rate_hz);
    w.opt_text(s, ic::POWER_SOURCE, d.power_source.map(|p| p.as_str()));
    w.opt_number(s, ic::POWER_W, d.power_w);
    w.opt_number(s, ic::BATTERY_LIFE_DAYS, d.battery_life_days);
    write_placement(w, s, &d.placement);
}

fn write_edge_node(w: &mut Writer, s: &NamedOrBlankNode, e: &EdgeNode) {
    w.iri(s, rdf::TYPE, sosa::PLATFORM.into_owned());
    w.opt_text(s, schema::MANUFACTURER, e.manufacturer.as_deref());
    w.opt_text(s, schema::MODEL, e.model.as_deref());
    w.count(s, ic::CPU_CORES, u64::from(e.cpu_cores));
    w.opt_number(s, ic::CPU_GHZ, e.cpu_ghz);
    w.count(s, ic::MEMORY_MB, e.memory_mb);
    w.opt_number(s, ic::STORAGE_GB, e.storage_gb);
    w.opt_text(s, ic::ACCELERATOR, e.accelerator.as_deref());
    w.texts(
        s,
        ic::SOUTHBOUND_PROTOCOL,
        e.southbound_protocols.iter().map(|p| p.as_str()),
    );
    w.texts(
        s,
        ic::NORTHBOUND_PROTOCOL,
        e.northbound_protocols.iter().map(|p| p.as_str()),
    );
    w.opt_number(s, ic::MAX_THROUGHPUT_MSGS, e.max_throughput_msgs);
    w.opt_number(s, ic::POWER_W, e.power_w);
    write_placement(w, s, &e.placement);
}

fn write_placement(w: &mut Writer, s: &NamedOrBlankNode, p: &Placement) {
    w.opt_number(s, schema::PRICE, p.price);
    w.opt_text(s, schema::PRICE_CURRENCY, p.currency.as_deref());
    w.opt_number(s, ic::AVAILABILITY, p.availability);
    w.opt_text(s, ic::SITE, p.site.as_deref());
    if let Some(location) = &p.location {
        w.location(s, "loc", location);
    }
    if let Some(model) = &p.instance_of {
        w.iri(s, ic::INSTANCE_OF, model.iri());
    }
    for (i, a) in p.affordances.iter().enumerate() {
        let node = w.node(&format!("a{i}"));
        let predicate = match a.kind {
            AffordanceKind::Property => td::HAS_PROPERTY_AFFORDANCE,
            AffordanceKind::Action => td::HAS_ACTION_AFFORDANCE,
            AffordanceKind::Event => td::HAS_EVENT_AFFORDANCE,
        };
        w.push(s, predicate, node.clone());
        w.text(&node, td::NAME, &a.name);
        w.opt_text(&node, td::TITLE, a.title.as_deref());
        for (j, form) in a.forms.iter().enumerate() {
            let form_node = w.node(&format!("a{i}f{j}"));
            w.push(&node, td::HAS_FORM, form_node.clone());
            w.push(
                &form_node,
                hctl::HAS_TARGET,
                Literal::new_typed_literal(form.href.as_str(), xsd::ANY_URI),
            );
            w.opt_text(
                &form_node,
                hctl::FOR_CONTENT_TYPE,
                form.content_type.as_deref(),
            );
            w.opt_text(&form_node, ic::PROTOCOL, form.protocol.map(|p| p.as_str()));
        }
    }
    if let Some(live) = &p.live {
        write_live(w, s, live);
    }
    if let Some(td) = &p.td {
        w.json(s, ic::THING_DESCRIPTION, td);
    }
    if let Some(desired) = &p.desired_config {
        w.json(s, ic::DESIRED_CONFIG, desired);
    }
    if let Some(reported) = &p.reported_config {
        w.json(s, ic::REPORTED_CONFIG, reported);
    }
}

/// The live part of a device or edge node `s`: the only writer of nodes under [`LIVE_PATH`].
fn write_live(w: &mut Writer, s: &NamedOrBlankNode, live: &LiveContext) {
    let node = w.node(LIVE_PATH);
    w.push(s, ic::LIVE, node.clone());
    w.iri(&node, rdf::TYPE, ic::LIVE_CONTEXT.into_owned());
    w.text(&node, ic::STATUS, live.status.as_str());
    w.opt_number(&node, ic::BATTERY_PCT, live.battery_pct);
    w.opt_number(&node, ic::LOAD_PCT, live.load_pct);
    if let Some(at) = &live.observed_at {
        w.push(
            &node,
            ic::OBSERVED_AT,
            Literal::new_typed_literal(at.as_str(), xsd::DATE_TIME),
        );
    }
    if let Some(location) = &live.location {
        w.location(&node, &format!("{LIVE_PATH}loc"), location);
    }
    for (i, (name, value)) in live.properties.iter().enumerate() {
        let property = w.node(&format!("{LIVE_PATH}p{i}"));
        w.push(&node, ic::PROPERTY_VALUE, property.clone());
        w.text(&property, ic::PROPERTY_NAME, name);
        w.push(&property, rdf::VALUE, property_value_literal(value));
    }
}

/// A property value as a literal: an integer as `xsd:integer`, any other number as
/// `xsd:double`, a string as a plain literal, a boolean as `xsd:boolean`. Anything else
/// (not valid, but written all the same) is its `rdf:JSON` text.
fn property_value_literal(value: &serde_json::Value) -> Literal {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            Literal::new_typed_literal(n.to_string(), xsd::INTEGER)
        }
        Value::Number(n) => match n.as_f64() {
            Some(f) => Literal::from(f),
            None => Literal::new_typed_literal(n.to_string(), xsd::DOUBLE),
        },
        Value::String(text) => Literal::new_simple_literal(text),
        Value::Bool(b) => Literal::from(*b),
        Value::Null | Value::Array(_) | Value::Object(_) => {
            Literal::new_typed_literal(serde_json::to_string(value).unwrap_or_default(), RDF_JSON)
        }
    }
}

fn write_cloud_offering(w: &mut Writer, s: &NamedOrBlankNode, o: &CloudOffering) {
    w.text(s, ic::PROVIDER, &o.provider);
    w.text(s, ic::REGION, &o.region);
    w.text(s, ic::OFFERING_KIND, o.offering_kind.as_str());
    w.opt_number(s, ic::VCPUS, o.vcpus);
    w.opt_number(s, ic::MEMORY_GB, o.memory_gb);
    w.opt_number(s, ic::STORAGE_GB, o.storage_gb);
    w.opt_number(s, ic::THROUGHPUT_MSGS, o.throughput_msgs);
    w.number(s, ic::PRICE_PER_MONTH, o.price_per_month);
    w.text(s, schema::PRICE_CURRENCY, &o.currency);
    w.number(s, ic::AVAILABILITY_SLA, o.availability_sla);
    w.texts(s, ic::PROTOCOL, o.protocols.iter().map(|p| p.as_str()));
}

fn write_network_link(w: &mut Writer, s: &NamedOrBlankNode, l: &NetworkLink) {
    w.text(s, ic::FROM_ENDPOINT, &l.from);
    w.text(s, ic::TO_ENDPOINT, &l.to);
    w.number(s, ic::LATENCY_MS, l.latency_ms);
    w.opt_number(s, ic::BANDWIDTH_MBPS, l.bandwidth_mbps);
    w.opt_number(s, ic::JITTER_MS, l.jitter_ms);
    w.opt_text(s, ic::LINK_TECHNOLOGY, l.technology.as_deref());
    w.opt_number(s, ic::AVAILABILITY, l.availability);
}

fn write_service(w: &mut Writer, s: &NamedOrBlankNode, v: &Service) {
    w.text(s, ic::SERVICE_KIND, v.service_kind.as_str());
    w.number(s, ic::REQUIRED_CPU_CORES, v.cpu_cores);
    w.number(s, ic::REQUIRED_MEMORY_MB, v.memory_mb);
    w.opt_number(s, ic::REQUIRED_STORAGE_GB, v.storage_gb);
    w.texts(s, ic::PROTOCOL, v.protocols.iter().map(|p| p.as_str()));
    w.texts(
        s,
        ic::DEPLOYABLE_ON,
        v.deployable_on.iter().map(|p| p.as_str()),
    );
    w.opt_number(s, ic::THROUGHPUT_MSGS, v.throughput_msgs);
}

fn write_case(w: &mut Writer, s: &NamedOrBlankNode, c: &Case) {
    w.text(s, ic::DOMAIN, &c.domain);
    w.json(s, ic::CONTEXT_DOCUMENT, &c.context);
    let cfg_node = w.node("cfg");
    w.push(s, ic::CONFIGURATION_PROP, cfg_node.clone());
    let cfg = &c.configuration;
    w.iri(&cfg_node, rdf::TYPE, ic::CONFIGURATION.into_owned());
    for (i, b) in cfg.bindings.iter().enumerate() {
        let node = w.node(&format!("b{i}"));
        w.push(&cfg_node, ic::BINDING_PROP, node.clone());
        w.text(&node, ic::REQUIREMENT, &b.requirement);
        w.text(&node, ic::ROLE, b.role.as_str());
        w.iri(&node, ic::RESOURCE, b.resource.iri());
        w.count(&node, ic::QUANTITY, u64::from(b.quantity));
    }
    for (i, q) in cfg.requirements.iter().enumerate() {
        let node = w.node(&format!("q{i}"));
        w.push(&cfg_node, ic::QOS_REQUIREMENT_PROP, node.clone());
        w.text(&node, ic::METRIC, q.metric.as_str());
        w.text(&node, ic::COMPARATOR, q.comparator.as_str());
        w.number(&node, ic::VALUE, q.value);
        w.opt_text(&node, ic::UNIT, q.unit.as_deref());
    }
    w.opt_number(&cfg_node, ic::TOTAL_MONTHLY_COST, cfg.monthly_cost);
    w.opt_number(&cfg_node, ic::TOTAL_LATENCY_MS, cfg.latency_ms);
    w.opt_number(&cfg_node, ic::TOTAL_AVAILABILITY, cfg.availability);
    w.opt_number(&cfg_node, ic::TOTAL_ENERGY_W, cfg.energy_w);
    w.opt_number(&cfg_node, ic::OBJECTIVE, cfg.objective);
    if let Some(o) = &c.outcome {
        let node = w.node("out");
        w.push(s, ic::OUTCOME_PROP, node.clone());
        w.text(&node, ic::OUTCOME_STATUS, o.status.as_str());
        w.opt_number(&node, ic::RATING, o.rating);
        w.opt_text(&node, ic::NOTES, o.notes.as_deref());
        w.opt_number(&node, ic::MEASURED_LATENCY_MS, o.measured_latency_ms);
        w.opt_number(&node, ic::MEASURED_MONTHLY_COST, o.measured_monthly_cost);
        w.opt_number(&node, ic::MEASURED_AVAILABILITY, o.measured_availability);
    }
}

/// A rule: its condition (only when it states something: an empty condition holds
/// everywhere, as no condition does) and its target as `rdf:JSON` objects, its action and
/// reason as texts, its parent and its cornerstone cases as resource IRIs.
fn write_rule(w: &mut Writer, s: &NamedOrBlankNode, r: &Rule) {
    if r.condition != RuleCondition::default() {
        w.json_of(s, ic::RULE_CONDITION, &r.condition);
    }
    w.text(s, ic::RULE_ACTION, r.action.as_str());
    w.json_of(s, ic::RULE_TARGET, &r.target);
    w.text(s, ic::RULE_REASON, &r.reason);
    if let Some(parent) = &r.refines {
        w.iri(s, ic::REFINES, parent.iri());
    }
    for case in &r.cornerstones {
        w.iri(s, ic::CORNERSTONE_CASE, case.iri());
    }
}

// ---------------------------------------------------------------------------------------
// Reading

/// Every subject of `graph` typed with a kind's class, with the resource read from it.
pub fn read_resources(graph: &Graph) -> Vec<(NamedOrBlankNode, Result<Resource, Violations>)> {
    let mut subjects: Vec<NamedOrBlankNode> = Vec::new();
    let mut seen = BTreeSet::new();
    for kind in Kind::ALL {
        for subject in graph.subjects_for_predicate_object(rdf::TYPE, class_of(kind)) {
            let subject = subject.into_owned();
            if seen.insert(subject.to_string()) {
                subjects.push(subject);
            }
        }
    }
    subjects
        .into_iter()
        .map(|s| {
            let result = read_resource(graph, s.as_ref());
            (s, result)
        })
        .collect()
}

/// Reads and validates the resource described by `subject`.
pub fn read_resource(
    graph: &Graph,
    subject: NamedOrBlankNodeRef<'_>,
) -> Result<Resource, Violations> {
    let mut r = Reader {
        graph,
        found: Vec::new(),
    };
    let resource = r.resource(subject);
    match resource {
        Some(mut resource) if r.found.is_empty() => {
            resource.normalize();
            let violations = validate(&resource);
            if violations.is_empty() {
                Ok(resource)
            } else {
                Err(Violations(violations))
            }
        }
        _ => {
            r.found.sort();
            r.found.dedup();
            if r.found.is_empty() {
                r.found
                    .push(Violation::new("", "not a resource description"));
            }
            Err(Violations(r.found))
        }
    }
}

struct Reader<'g> {
    graph: &'g Graph,
    found: Vec<Violation>,
}

impl<'g> Reader<'g> {
    fn fail(&mut self, path: &str, message: impl Into<String>) {
        self.found.push(Violation::new(path, message));
    }

    fn objects(&self, s: NamedOrBlankNodeRef<'_>, p: NamedNodeRef<'_>) -> Vec<TermRef<'g>> {
        self.graph.objects_for_subject_predicate(s, p).collect()
    }

    /// At most one value.
    fn single(
        &mut self,
        s: NamedOrBlankNodeRef<'_>,
        p: NamedNodeRef<'_>,
        path: &str,
    ) -> Option<TermRef<'g>> {
        let mut values = self.objects(s, p);
        if values.len() > 1 {
            self.fail(
                path,
                format!("has {} values, at most one is allowed", values.len()),
            );
            return None;
        }
        values.pop()
    }

    fn opt_text(
        &mut self,
        s: NamedOrBlankNodeRef<'_>,
        p: NamedNodeRef<'_>,
        path: &str,
    ) -> Option<String> {
        let term = self.single(s, p, path)?;
        self.as_text(term, path)
    }

    /// Reports a missing value of a required field (a present but bad value was reported
    /// by the reader already).
    fn required<T>(
        &mut self,
        value: Option<T>,
        s: NamedOrBlankNodeRef<'_>,
        p: NamedNodeRef<'_>,
        path: &str,
    ) -> Option<T> {
        if value.is_none() && self.objects(s, p).is_empty() {
            self.fail(path, "is required");
        }
        value
    }

    fn text(
        &mut self,
        s: NamedOrBlankNodeRef<'_>,
        p: NamedNodeRef<'_>,
        path: &str,
    ) -> Option<String> {
        let value = self.opt_text(s, p, path);
        self.required(value, s, p, path)
    }

    fn as_text(&mut self, term: TermRef<'_>, path: &str) -> Option<String> {
        match term {
            TermRef::Literal(l)
                if l.datatype() == xsd::STRING
                    || l.language().is_some()
                    || l.datatype() == xsd::ANY_URI
                    || l.datatype() == xsd::TOKEN
                    || l.datatype() == xsd::NORMALIZED_STRING =>
            {
                Some(l.value().to_owned())
            }
            _ => {
                self.fail(path, format!("must be a string literal, got {term}"));
                None
            }
        }
    }

    fn texts(
        &mut self,
        s: NamedOrBlankNodeRef<'_>,
        p: NamedNodeRef<'_>,
        path: &str,
    ) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for term in self.objects(s, p) {
            if let Some(text) = self.as_text(term, path) {
                out.insert(text);
            }
        }
        out
    }

    fn parsed_set<T: FromStr<Err = String> + Ord>(
        &mut self,
        s: NamedOrBlankNodeRef<'_>,
        p: NamedNodeRef<'_>,
        path: &str,
    ) -> BTreeSet<T> {
        let mut out = BTreeSet::new();
        for text in self.texts(s, p, path) {
            match text.parse() {
                Ok(v) => {
                    out.insert(v);
                }
                Err(e) => self.fail(path, e),
            }
        }
        out
    }

    fn opt_parsed<T: FromStr<Err = String>>(
        &mut self,
        s: NamedOrBlankNodeRef<'_>,
        p: NamedNodeRef<'_>,
        path: &str,
    ) -> Option<T> {
        let text = self.opt_text(s, p, path)?;
        match text.parse() {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(path, e);
                None
            }
        }
    }

    fn parsed<T: FromStr<Err = String>>(
        &mut self,
        s: NamedOrBlankNodeRef<'_>,
        p: NamedNodeRef<'_>,
        path: &str,
    ) -> Option<T> {
        let value = self.opt_parsed(s, p, path);
        self.required(value, s, p, path)
    }

    fn opt_number(
        &mut self,
        s: NamedOrBlankNodeRef<'_>,
        p: NamedNodeRef<'_>,
        path: &str,
    ) -> Option<f64> {
        let term = self.single(s, p, path)?;
        if let TermRef::Literal(l) = term
            && is_numeric(l.datatype())
            && let Ok(v) = parse_xsd_number(l.value())
        {
            return Some(v);
        }
        self.fail(path, format!("must be a number, got {term}"));
        None
    }

    fn number(
        &mut self,
        s: NamedOrBlankNodeRef<'_>,
        p: NamedNodeRef<'_>,
        path: &str,
    ) -> Option<f64> {
        let value = self.opt_number(s, p, path);
        self.required(value, s, p, path)
    }

    fn count(
        &mut self,
        s: NamedOrBlankNodeRef<'_>,
        p: NamedNodeRef<'_>,
        path: &str,
    ) -> Option<u64> {
        let value = self.number(s, p, path)?;
        if value.fract() == 0.0 && (0.0..=9.0e15).contains(&value) {
            // Integral and in range, checked above.
            return Some(value as u64);
        }
        self.fail(path, "must be a non-negative integer");
        None
    }

    fn json(
        &mut self,
        s: NamedOrBlankNodeRef<'_>,
        p: NamedNodeRef<'_>,
        path: &str,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        let term = self.single(s, p, path)?;
        if let TermRef::Literal(l) = term
            && (l.datatype() == RDF_JSON || l.datatype() == xsd::STRING)
        {
            match serde_json::from_str(l.value()) {
                Ok(serde_json::Value::Object(map)) => return Some(map),
                Ok(_) => {
                    self.fail(path, "must be a JSON object");
                    return None;
                }
                Err(e) => {
                    self.fail(path, format!("is not valid JSON: {e}"));
                    return None;
                }
            }
        }
        self.fail(path, "must be a JSON literal (rdf:JSON)");
        None
    }

    fn reference(&mut self, term: TermRef<'_>, path: &str) -> Option<ResourceId> {
        match term {
            TermRef::NamedNode(n) => match ResourceId::from_iri(n.as_str()) {
                Ok(id) => Some(id),
                Err(e) => {
                    self.fail(path, e.to_string());
                    None
                }
            },
            _ => {
                self.fail(path, "must be the IRI of a resource");
                None
            }
        }
    }

    fn properties(
        &mut self,
        s: NamedOrBlankNodeRef<'_>,
        p: NamedNodeRef<'_>,
        path: &str,
    ) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for term in self.objects(s, p) {
            match term {
                TermRef::NamedNode(n) if n.as_str().starts_with(PROPERTY_BASE) => {
                    out.insert(n.as_str()[PROPERTY_BASE.len()..].to_owned());
                }
                _ => self.fail(
                    path,
                    format!("must be a property IRI under {PROPERTY_BASE}, got {term}"),
                ),
            }
        }
        out
    }

    fn nodes(
        &mut self,
        s: NamedOrBlankNodeRef<'_>,
        p: NamedNodeRef<'_>,
        path: &str,
    ) -> Vec<NamedOrBlankNode> {
        let mut out = Vec::new();
        for term in self.objects(s, p) {
            match term {
                TermRef::NamedNode(n) => out.push(n.into_owned().into()),
                TermRef::BlankNode(b) => out.push(b.into_owned().into()),
                _ => self.fail(path, "must be a node, not a literal"),
            }
        }
        out
    }

    fn opt_node(
        &mut self,
        s: NamedOrBlankNodeRef<'_>,
        p: NamedNodeRef<'_>,
        path: &str,
    ) -> Option<NamedOrBlankNode> {
        let mut nodes = self.nodes(s, p, path);
        if nodes.len() > 1 {
            self.fail(path, "has more than one value");
            return None;
        }
        nodes.pop()
    }

    fn resource(&mut self, s: NamedOrBlankNodeRef<'_>) -> Option<Resource> {
        let kinds: Vec<Kind> = self
            .graph
            .objects_for_subject_predicate(s, rdf::TYPE)
            .filter_map(|t| match t {
                TermRef::NamedNode(n) => kind_of_class(n),
                _ => None,
            })
            .collect();
        let kind = match kinds.as_slice() {
            [kind] => *kind,
            [] => {
                self.fail(
                    "/kind",
                    format!("no rdf:type naming a kind ({})", Kind::expected()),
                );
                return None;
            }
            _ => {
                self.fail("/kind", "more than one kind");
                return None;
            }
        };
        let id = match self.opt_text(s, dcterms::IDENTIFIER, "/id") {
            Some(text) => text
                .parse::<ResourceId>()
                .map_err(|e| self.fail("/id", e.to_string()))
                .ok(),
            None => match s {
                NamedOrBlankNodeRef::NamedNode(n) => ResourceId::from_iri(n.as_str())
                    .map_err(|e| self.fail("/id", e.to_string()))
                    .ok(),
                NamedOrBlankNodeRef::BlankNode(_) => {
                    self.fail("/id", "a blank node needs a dcterms:identifier");
                    None
                }
            },
        };
        let name = self.text(s, schema::NAME, "/name");
        let description = self.opt_text(s, dcterms::DESCRIPTION, "/description");
        let tags = self.texts(s, ic::TAG, "/tags");
        let source = self.opt_text(s, dcterms::SOURCE, "/source");
        let body = match kind {
            Kind::Device => self.device(s).map(ResourceBody::Device),
            Kind::EdgeNode => self.edge_node(s).map(ResourceBody::EdgeNode),
            Kind::CloudOffering => self.cloud_offering(s).map(ResourceBody::CloudOffering),
            Kind::NetworkLink => self.network_link(s).map(ResourceBody::NetworkLink),
            Kind::Service => self.service(s).map(ResourceBody::Service),
            Kind::Case => self.case(s).map(ResourceBody::Case),
            Kind::Rule => self.rule(s).map(ResourceBody::Rule),
        };
        Some(Resource {
            id: id?,
            name: name?,
            description,
            tags,
            source,
            body: body?,
        })
    }

    fn device(&mut self, s: NamedOrBlankNodeRef<'_>) -> Option<Device> {
        Some(Device {
            observes: self.properties(s, sosa::OBSERVES, "/observes"),
            actuates: self.properties(s, sosa::ACTS_ON_PROPERTY, "/actuates"),
            manufacturer: self.opt_text(s, schema::MANUFACTURER, "/manufacturer"),
            model: self.opt_text(s, schema::MODEL, "/model"),
            protocols: self.parsed_set(s, ic::PROTOCOL, "/protocols"),
            sampling_rate_hz: self.opt_number(s, ic::MAX_SAMPLING_RATE_HZ, "/samplingRateHz"),
            power_source: self.opt_parsed(s, ic::POWER_SOURCE, "/powerSource"),
            power_w: self.opt_number(s, ic::POWER_W, "/powerW"),
            battery_life_days: self.opt_number(s, ic::BATTERY_LIFE_DAYS, "/batteryLifeDays"),
            placement: self.placement(s),
        })
    }

    fn edge_node(&mut self, s: NamedOrBlankNodeRef<'_>) -> Option<EdgeNode> {
        let cpu_cores = self.count(s, ic::CPU_CORES, "/cpuCores");
        let memory_mb = self.count(s, ic::MEMORY_MB, "/memoryMb");
        let node = EdgeNode {
            manufacturer: self.opt_text(s, schema::MANUFACTURER, "/manufacturer"),
            model: self.opt_text(s, schema::MODEL, "/model"),
            cpu_cores: 0,
            cpu_ghz: self.opt_number(s, ic::CPU_GHZ, "/cpuGhz"),
            memory_mb: 0,
            storage_gb: self.opt_number(s, ic::STORAGE_GB, "/storageGb"),
            accelerator: self.opt_text(s, ic::ACCELERATOR, "/accelerator"),
            southbound_protocols: self.parsed_set(
                s,
                ic::SOUTHBOUND_PROTOCOL,
                "/southboundProtocols",
            ),
            northbound_protocols: self.parsed_set(
                s,
                ic::NORTHBOUND_PROTOCOL,
                "/northboundProtocols",
            ),
            max_throughput_msgs: self.opt_number(s, ic::MAX_THROUGHPUT_MSGS, "/maxThroughputMsgs"),
            power_w: self.opt_number(s, ic::POWER_W, "/powerW"),
            placement: self.placement(s),
        };
        let cpu_cores = match u32::try_from(cpu_cores?) {
            Ok(v) => v,
            Err(_) => {
                self.fail("/cpuCores", "is out of range");
                return None;
            }
        };
        Some(EdgeNode {
            cpu_cores,
            memory_mb: memory_mb?,
            ..node
        })
    }

    /// The `geo:location` of `s`, whose JSON pointer is `{prefix}/location`.
    fn location(&mut self, s: NamedOrBlankNodeRef<'_>, prefix: &str) -> Option<Location> {
        let path = format!("{prefix}/location");
        let node = self.opt_node(s, geo::LOCATION, &path)?;
        let n = node.as_ref();
        let lat = self.number(n, geo::LAT, &format!("{path}/lat"));
        let lon = self.number(n, geo::LONG, &format!("{path}/lon"));
        let alt = self.opt_number(n, geo::ALT, &format!("{path}/alt"));
        Some(Location {
            lat: lat?,
            lon: lon?,
            alt,
        })
    }

    fn placement(&mut self, s: NamedOrBlankNodeRef<'_>) -> Placement {
        let location = self.location(s, "");
        let instance_of = self
            .single(s, ic::INSTANCE_OF, "/instanceOf")
            .and_then(|t| self.reference(t, "/instanceOf"));
        let mut affordances = Vec::new();
        for (kind, predicate) in [
            (AffordanceKind::Property, td::HAS_PROPERTY_AFFORDANCE),
            (AffordanceKind::Action, td::HAS_ACTION_AFFORDANCE),
            (AffordanceKind::Event, td::HAS_EVENT_AFFORDANCE),
        ] {
            for node in self.nodes(s, predicate, "/affordances") {
                if let Some(a) = self.affordance(node.as_ref(), kind) {
                    affordances.push(a);
                }
            }
        }
        // The JSON-LD reading of the native form links affordances generically and types
        // them instead (see schema/context.jsonld).
        for node in self.nodes(s, td::HAS_INTERACTION_AFFORDANCE, "/affordances") {
            let types: Vec<_> = self.objects(node.as_ref(), rdf::TYPE);
            let kind = types.iter().find_map(|t| match t {
                TermRef::NamedNode(n) if *n == td::PROPERTY_AFFORDANCE => {
                    Some(AffordanceKind::Property)
                }
                TermRef::NamedNode(n) if *n == td::ACTION_AFFORDANCE => {
                    Some(AffordanceKind::Action)
                }
                TermRef::NamedNode(n) if *n == td::EVENT_AFFORDANCE => Some(AffordanceKind::Event),
                _ => None,
            });
            match kind {
                Some(kind) => {
                    if let Some(a) = self.affordance(node.as_ref(), kind) {
                        affordances.push(a);
                    }
                }
                None => self.fail(
                    "/affordances/affordanceKind",
                    "an interaction affordance must be typed td:PropertyAffordance, td:ActionAffordance or td:EventAffordance",
                ),
            }
        }
        let live = self
            .opt_node(s, ic::LIVE, "/live")
            .and_then(|node| self.live(node.as_ref()));
        Placement {
            price: self.opt_number(s, schema::PRICE, "/price"),
            currency: self.opt_text(s, schema::PRICE_CURRENCY, "/currency"),
            availability: self.opt_number(s, ic::AVAILABILITY, "/availability"),
            site: self.opt_text(s, ic::SITE, "/site"),
            location,
            instance_of,
            affordances,
            live,
            td: self.json(s, ic::THING_DESCRIPTION, "/td"),
            desired_config: self.json(s, ic::DESIRED_CONFIG, "/desiredConfig"),
            reported_config: self.json(s, ic::REPORTED_CONFIG, "/reportedConfig"),
        }
    }

    fn live(&mut self, n: NamedOrBlankNodeRef<'_>) -> Option<LiveContext> {
        let status = self.parsed(n, ic::STATUS, "/live/status");
        let observed_at = self
            .single(n, ic::OBSERVED_AT, "/live/observedAt")
            .and_then(|t| match t {
                TermRef::Literal(l) if l.datatype() == xsd::DATE_TIME => Some(l.value().to_owned()),
                _ => {
                    self.fail("/live/observedAt", "must be an xsd:dateTime");
                    None
                }
            });
        let battery_pct = self.opt_number(n, ic::BATTERY_PCT, "/live/batteryPct");
        let load_pct = self.opt_number(n, ic::LOAD_PCT, "/live/loadPct");
        let location = self.location(n, "/live");
        let properties = self.live_properties(n);
        Some(LiveContext {
            status: status?,
            battery_pct,
            load_pct,
            observed_at,
            location,
            properties,
        })
    }

    /// The `ic:propertyValue` nodes of a live context, each with its `ic:propertyName` and
    /// `rdf:value`. The JSON-LD reading of the native form (see `schema/context.jsonld`)
    /// gives the whole map as one `rdf:JSON` literal instead, which is read as the map.
    fn live_properties(
        &mut self,
        n: NamedOrBlankNodeRef<'_>,
    ) -> BTreeMap<String, serde_json::Value> {
        const P: &str = "/live/properties";
        let mut out = BTreeMap::new();
        for term in self.objects(n, ic::PROPERTY_VALUE) {
            let node: NamedOrBlankNode = match term {
                TermRef::NamedNode(node) => node.into_owned().into(),
                TermRef::BlankNode(node) => node.into_owned().into(),
                TermRef::Literal(l) if l.datatype() == RDF_JSON => {
                    match serde_json::from_str(l.value()) {
                        Ok(serde_json::Value::Object(map)) => {
                            for (name, value) in map {
                                self.add_property(&mut out, name, from_canonical_json(value));
                            }
                        }
                        Ok(_) => self.fail(P, "must be a JSON object"),
                        Err(e) => self.fail(P, format!("is not valid JSON: {e}")),
                    }
                    continue;
                }
                _ => {
                    self.fail(P, format!("must be a property value node, got {term}"));
                    continue;
                }
            };
            let p = node.as_ref();
            let Some(name) = self.text(p, ic::PROPERTY_NAME, P) else {
                continue;
            };
            let path = format!("{P}/{}", pointer_segment(&name));
            let value = match self.single(p, rdf::VALUE, &path) {
                Some(term) => self.property_value(term, &path),
                None => {
                    if self.objects(p, rdf::VALUE).is_empty() {
                        self.fail(&path, "is required (rdf:value)");
                    }
                    None
                }
            };
            if let Some(value) = value {
                self.add_property(&mut out, name, value);
            }
        }
        out
    }

    fn add_property(
        &mut self,
        properties: &mut BTreeMap<String, serde_json::Value>,
        name: String,
        value: serde_json::Value,
    ) {
        let path = format!("/live/properties/{}", pointer_segment(&name));
        if properties.insert(name, value).is_some() {
            self.fail(&path, "has more than one value");
        }
    }

    /// The JSON value of a property value literal: integers (any XSD integer type) as JSON
    /// integers, other numbers as JSON numbers, strings, booleans, and `rdf:JSON` as it is
    /// (validation then refuses anything but a scalar).
    fn property_value(&mut self, term: TermRef<'_>, path: &str) -> Option<serde_json::Value> {
        use serde_json::Value;
        let TermRef::Literal(l) = term else {
            self.fail(path, format!("must be a literal, got {term}"));
            return None;
        };
        let datatype = l.datatype();
        let lexical = l.value().trim();
        let value = if is_integer(datatype) {
            // An integer beyond 64 bits is read as the nearest double.
            let digits = lexical.strip_prefix(['+', '-']).unwrap_or(lexical);
            let well_formed = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
            lexical
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| lexical.parse::<u64>().map(Value::from))
                .ok()
                .or_else(|| {
                    parse_xsd_number(lexical)
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map(Value::Number)
                })
                .filter(|_| well_formed)
        } else if is_numeric(datatype) {
            parse_xsd_number(lexical)
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
        } else if datatype == xsd::BOOLEAN {
            match lexical {
                "true" | "1" => Some(Value::Bool(true)),
                "false" | "0" => Some(Value::Bool(false)),
                _ => None,
            }
        } else if datatype == RDF_JSON {
            serde_json::from_str(l.value()).ok()
        } else if datatype == xsd::STRING || l.language().is_some() {
            Some(Value::String(l.value().to_owned()))
        } else {
            self.fail(
                path,
                format!("must be a number, a string or a boolean literal, got {term}"),
            );
            return None;
        };
        if value.is_none() {
            self.fail(path, format!("is not a well-formed {datatype} literal"));
        }
        value
    }

    fn affordance(
        &mut self,
        n: NamedOrBlankNodeRef<'_>,
        kind: AffordanceKind,
    ) -> Option<Affordance> {
        let name = self.text(n, td::NAME, "/affordances/name");
        let title = self.opt_text(n, td::TITLE, "/affordances/title");
        let mut forms = Vec::new();
        for form in self.nodes(n, td::HAS_FORM, "/affordances/forms") {
            let f = form.as_ref();
            let href = self.text(f, hctl::HAS_TARGET, "/affordances/forms/href");
            let content_type =
                self.opt_text(f, hctl::FOR_CONTENT_TYPE, "/affordances/forms/contentType");
            let protocol = self.opt_parsed(f, ic::PROTOCOL, "/affordances/forms/protocol");
            if let Some(href) = href {
                forms.push(Form {
                    href,
                    content_type,
                    protocol,
                });
            }
        }
        Some(Affordance {
            name: name?,
            kind,
            title,
            forms,
        })
    }

    fn cloud_offering(&mut self, s: NamedOrBlankNodeRef<'_>) -> Option<CloudOffering> {
        let provider = self.text(s, ic::PROVIDER, "/provider");
        let region = self.text(s, ic::REGION, "/region");
        let offering_kind = self.parsed(s, ic::OFFERING_KIND, "/offeringKind");
        let price_per_month = self.number(s, ic::PRICE_PER_MONTH, "/pricePerMonth");
        let currency = self.text(s, schema::PRICE_CURRENCY, "/currency");
        let availability_sla = self.number(s, ic::AVAILABILITY_SLA, "/availabilitySla");
        Some(CloudOffering {
            provider: provider?,
            region: region?,
            offering_kind: offering_kind?,
            vcpus: self.opt_number(s, ic::VCPUS, "/vcpus"),
            memory_gb: self.opt_number(s, ic::MEMORY_GB, "/memoryGb"),
            storage_gb: self.opt_number(s, ic::STORAGE_GB, "/storageGb"),
            throughput_msgs: self.opt_number(s, ic::THROUGHPUT_MSGS, "/throughputMsgs"),
            price_per_month: price_per_month?,
            currency: currency?,
            availability_sla: availability_sla?,
            protocols: self.parsed_set(s, ic::PROTOCOL, "/protocols"),
        })
    }

    fn network_link(&mut self, s: NamedOrBlankNodeRef<'_>) -> Option<NetworkLink> {
        let from = self.text(s, ic::FROM_ENDPOINT, "/from");
        let to = self.text(s, ic::TO_ENDPOINT, "/to");
        let latency_ms = self.number(s, ic::LATENCY_MS, "/latencyMs");
        Some(NetworkLink {
            from: from?,
            to: to?,
            latency_ms: latency_ms?,
            bandwidth_mbps: self.opt_number(s, ic::BANDWIDTH_MBPS, "/bandwidthMbps"),
            jitter_ms: self.opt_number(s, ic::JITTER_MS, "/jitterMs"),
            technology: self.opt_text(s, ic::LINK_TECHNOLOGY, "/technology"),
            availability: self.opt_number(s, ic::AVAILABILITY, "/availability"),
        })
    }

    fn service(&mut self, s: NamedOrBlankNodeRef<'_>) -> Option<Service> {
        let service_kind = self.parsed(s, ic::SERVICE_KIND, "/serviceKind");
        let cpu_cores = self.number(s, ic::REQUIRED_CPU_CORES, "/cpuCores");
        let memory_mb = self.number(s, ic::REQUIRED_MEMORY_MB, "/memoryMb");
        Some(Service {
            service_kind: service_kind?,
            cpu_cores: cpu_cores?,
            memory_mb: memory_mb?,
            storage_gb: self.opt_number(s, ic::REQUIRED_STORAGE_GB, "/storageGb"),
            protocols: self.parsed_set(s, ic::PROTOCOL, "/protocols"),
            deployable_on: self.parsed_set::<DeployTarget>(s, ic::DEPLOYABLE_ON, "/deployableOn"),
            throughput_msgs: self.opt_number(s, ic::THROUGHPUT_MSGS, "/throughputMsgs"),
        })
    }

    fn case(&mut self, s: NamedOrBlankNodeRef<'_>) -> Option<Case> {
        let domain = self.text(s, ic::DOMAIN, "/domain");
        let context = self.json(s, ic::CONTEXT_DOCUMENT, "/context");
        if context.is_none() && self.objects(s, ic::CONTEXT_DOCUMENT).is_empty() {
            self.fail("/context", "is required");
        }
        let configuration = match self.opt_node(s, ic::CONFIGURATION_PROP, "/configuration") {
            Some(node) => self.configuration(node.as_ref()),
            None => {
                self.fail("/configuration", "is required");
                None
            }
        };
        let outcome = self
            .opt_node(s, ic::OUTCOME_PROP, "/outcome")
            .and_then(|node| {
                let n = node.as_ref();
                let status = self.parsed(n, ic::OUTCOME_STATUS, "/outcome/status");
                Some(Outcome {
                    status: status?,
                    rating: self.opt_number(n, ic::RATING, "/outcome/rating"),
                    notes: self.opt_text(n, ic::NOTES, "/outcome/notes"),
                    measured_latency_ms: self.opt_number(
                        n,
                        ic::MEASURED_LATENCY_MS,
                        "/outcome/measuredLatencyMs",
                    ),
                    measured_monthly_cost: self.opt_number(
                        n,
                        ic::MEASURED_MONTHLY_COST,
                        "/outcome/measuredMonthlyCost",
                    ),
                    measured_availability: self.opt_number(
                        n,
                        ic::MEASURED_AVAILABILITY,
                        "/outcome/measuredAvailability",
                    ),
                })
            });
        Some(Case {
            domain: domain?,
            context: context?,
            configuration: configuration?,
            outcome,
        })
    }

    fn rule(&mut self, s: NamedOrBlankNodeRef<'_>) -> Option<Rule> {
        let condition = match self.json(s, ic::RULE_CONDITION, "/condition") {
            Some(map) => self.json_typed::<RuleCondition>(map, "/condition"),
            // No condition holds everywhere; a bad one was reported by the reader.
            None if self.objects(s, ic::RULE_CONDITION).is_empty() => {
                Some(RuleCondition::default())
            }
            None => None,
        };
        let action = self.parsed(s, ic::RULE_ACTION, "/action");
        let target = match self.json(s, ic::RULE_TARGET, "/target") {
            Some(map) => self.json_typed::<RuleTarget>(map, "/target"),
            None => {
                if self.objects(s, ic::RULE_TARGET).is_empty() {
                    self.fail("/target", "is required");
                }
                None
            }
        };
        let reason = self.text(s, ic::RULE_REASON, "/reason");
        let refines = self
            .single(s, ic::REFINES, "/refines")
            .and_then(|t| self.reference(t, "/refines"));
        let mut cornerstones = BTreeSet::new();
        for term in self.objects(s, ic::CORNERSTONE_CASE) {
            if let Some(case) = self.reference(term, "/cornerstones") {
                cornerstones.insert(case);
            }
        }
        Some(Rule {
            condition: condition?,
            action: action?,
            target: target?,
            reason: reason?,
            refines,
            cornerstones,
        })
    }

    /// The typed value of an `rdf:JSON` object at the JSON pointer `path`, with the type
    /// error's own path under it.
    fn json_typed<T: serde::de::DeserializeOwned>(
        &mut self,
        map: serde_json::Map<String, serde_json::Value>,
        path: &str,
    ) -> Option<T> {
        match crate::native::typed(serde_json::Value::Object(map)) {
            Ok(value) => Some(value),
            Err(v) => {
                self.fail(&format!("{path}{}", v.path), v.message);
                None
            }
        }
    }

    fn configuration(&mut self, n: NamedOrBlankNodeRef<'_>) -> Option<Configuration> {
        const P: &str = "/configuration";
        let mut bindings = Vec::new();
        for node in self.nodes(n, ic::BINDING_PROP, "/configuration/bindings") {
            let b = node.as_ref();
            let requirement = self.text(b, ic::REQUIREMENT, "/configuration/bindings/requirement");
            let role = self.parsed(b, ic::ROLE, "/configuration/bindings/role");
            let resource = match self.single(b, ic::RESOURCE, "/configuration/bindings/resource") {
                Some(t) => self.reference(t, "/configuration/bindings/resource"),
                None => {
                    self.fail("/configuration/bindings/resource", "is required");
                    None
                }
            };
            let quantity = self
                .count(b, ic::QUANTITY, "/configuration/bindings/quantity")
                .and_then(|q| u32::try_from(q).ok());
            if let (Some(requirement), Some(role), Some(resource), Some(quantity)) =
                (requirement, role, resource, quantity)
            {
                bindings.push(Binding {
                    requirement,
                    role,
                    resource,
                    quantity,
                });
            }
        }
        let mut requirements = Vec::new();
        for node in self.nodes(n, ic::QOS_REQUIREMENT_PROP, "/configuration/requirements") {
            let q = node.as_ref();
            let metric = self.parsed(q, ic::METRIC, "/configuration/requirements/metric");
            let comparator =
                self.parsed(q, ic::COMPARATOR, "/configuration/requirements/comparator");
            let value = self.number(q, ic::VALUE, "/configuration/requirements/value");
            let unit = self.opt_text(q, ic::UNIT, "/configuration/requirements/unit");
            if let (Some(metric), Some(comparator), Some(value)) = (metric, comparator, value) {
                requirements.push(QosRequirement {
                    metric,
                    comparator,
                    value,
                    unit,
                });
            }
        }
        Some(Configuration {
            bindings,
            requirements,
            monthly_cost: self.opt_number(n, ic::TOTAL_MONTHLY_COST, &format!("{P}/monthlyCost")),
            latency_ms: self.opt_number(n, ic::TOTAL_LATENCY_MS, &format!("{P}/latencyMs")),
            availability: self.opt_number(n, ic::TOTAL_AVAILABILITY, &format!("{P}/availability")),
            energy_w: self.opt_number(n, ic::TOTAL_ENERGY_W, &format!("{P}/energyW")),
            objective: self.opt_number(n, ic::OBJECTIVE, &format!("{P}/objective")),
        })
    }
}

/// Whether a literal has a numeric XSD datatype.
pub fn is_numeric_literal(literal: oxrdf::LiteralRef<'_>) -> bool {
    is_numeric(literal.datatype())
}

/// A number of JSON-LD's canonical JSON (`@json`) is an IEEE double written in its
/// shortest form, so an integer beyond ±2^53 there stands for the double it rounds to
/// (`-250712147127961856` is written `-250712147127961860`); normalizing then gives the
/// integer the double holds exactly.
fn from_canonical_json(value: serde_json::Value) -> serde_json::Value {
    const EXACT: u64 = 1 << 53;
    match &value {
        serde_json::Value::Number(n)
            if n.as_i64()
                .map_or_else(|| n.is_u64(), |i| i.unsigned_abs() > EXACT) =>
        {
            n.as_f64()
                .and_then(serde_json::Number::from_f64)
                .map_or(value, serde_json::Value::Number)
        }
        _ => value,
    }
}

fn is_integer(datatype: NamedNodeRef<'_>) -> bool {
    [
        xsd::INTEGER,
        xsd::INT,
        xsd::LONG,
        xsd::SHORT,
        xsd::NON_NEGATIVE_INTEGER,
        xsd::POSITIVE_INTEGER,
        xsd::UNSIGNED_INT,
        xsd::UNSIGNED_LONG,
    ]
    .contains(&datatype)
}

fn is_numeric(datatype: NamedNodeRef<'_>) -> bool {
    [
        xsd::DOUBLE,
        xsd::FLOAT,
        xsd::DECIMAL,
        xsd::INTEGER,
        xsd::INT,
        xsd::LONG,
        xsd::SHORT,
        xsd::NON_NEGATIVE_INTEGER,
        xsd::POSITIVE_INTEGER,
        xsd::UNSIGNED_INT,
        xsd::UNSIGNED_LONG,
    ]
    .contains(&datatype)
}

fn parse_xsd_number(lexical: &str) -> Result<f64, std::num::ParseFloatError> {
    lexical.trim().parse::<f64>()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashSet;

    use serde_json::json;

    use super::*;

    fn device_with_live() -> Resource {
        Resource::from_json(json!({
            "id": "hr7-0042", "kind": "device", "name": "Chest strap",
            "observes": ["heartRate"], "protocols": ["ble"],
            "location": {"lat": 48.1, "lon": 11.5},
            "affordances": [{"name": "heartRate", "affordanceKind": "property",
                             "forms": [{"href": "coap://10.0.3.17/hr"}]}],
            "live": {
                "status": "online", "batteryPct": 82, "observedAt": "2025-03-14T09:26:53Z",
                "location": {"lat": 48.2, "lon": 11.6, "alt": 519},
                "properties": {"heartRate": 72, "spo2": 97.5, "mode": "rest", "worn": true,
                               "a/b~c": -3}
            }
        }))
        .unwrap()
    }

    fn live_of(resource: &Resource) -> &LiveContext {
        match &resource.body {
            ResourceBody::Device(d) => d.placement.live.as_ref().unwrap(),
            ResourceBody::EdgeNode(e) => e.placement.live.as_ref().unwrap(),
            _ => panic!("no live context"),
        }
    }

    /// The live node and every blank node reachable from it in `triples`.
    fn under(triples: &[Triple], root: &BlankNode) -> HashSet<BlankNode> {
        let mut found = HashSet::from([root.clone()]);
        loop {
            let before = found.len();
            for t in triples {
                if let (NamedOrBlankNode::BlankNode(s), Term::BlankNode(o)) =
                    (&t.subject, &t.object)
                    && found.contains(s)
                {
                    found.insert(o.clone());
                }
            }
            if found.len() == before {
                return found;
            }
        }
    }

    fn mentions(t: &Triple, nodes: &HashSet<BlankNode>) -> bool {
        matches!(&t.subject, NamedOrBlankNode::BlankNode(b) if nodes.contains(b))
            || matches!(&t.object, Term::BlankNode(b) if nodes.contains(b))
    }

    #[test]
    fn live_triples_are_exactly_the_live_part_of_to_triples() {
        let resource = device_with_live();
        let live = live_of(&resource);
        let all = to_triples(&resource);
        let part = live_triples(&resource.id, live);
        let node = live_node(&resource.id);
        // The link, the live node's type, status, battery and time, its location (link + 3)
        // and 5 property values (link + name + value each).
        assert_eq!(part.len(), 1 + 4 + 4 + 5 * 3);
        assert!(part.contains(&Triple::new(resource.id.iri(), ic::LIVE, node.clone())));
        for t in &part {
            assert!(all.contains(t), "{t} is not written by to_triples");
        }
        let nodes = under(&all, &node);
        assert_eq!(nodes.len(), 1 + 1 + 5, "{nodes:?}");
        assert_eq!(under(&part, &node), nodes);
        let prefix = node.as_str();
        for t in &all {
            let in_part = part.contains(t);
            assert_eq!(
                in_part,
                mentions(t, &nodes),
                "{t}: in live_triples = {in_part}"
            );
            // Every live node's label extends the live node's, and no other node's does.
            if let NamedOrBlankNode::BlankNode(b) = &t.subject {
                assert_eq!(nodes.contains(b), b.as_str().starts_with(prefix), "{b}");
            }
        }
    }

    #[test]
    fn live_quads_are_exactly_the_live_part_of_to_quads() {
        let tenant: Tenant = "acme".parse().unwrap();
        let resource = device_with_live();
        let all = to_quads(&tenant, &resource);
        let part = live_quads(&tenant, &resource.id, live_of(&resource));
        let node = live_graph_node(&tenant, &resource.id);
        assert_ne!(node, live_node(&resource.id));
        let all_triples: Vec<Triple> = all.iter().map(|q| Triple::from(q.clone())).collect();
        let nodes = under(&all_triples, &node);
        assert_eq!(nodes.len(), 7);
        for q in &part {
            assert!(all.contains(q), "{q} is not written by to_quads");
        }
        for (q, t) in all.iter().zip(&all_triples) {
            assert_eq!(part.contains(q), mentions(t, &nodes), "{q}");
        }
    }

    #[test]
    fn property_values_keep_their_json_type_through_rdf() {
        let resource = device_with_live();
        let part = live_triples(&resource.id, live_of(&resource));
        let value_of = |name: &str| {
            let node = part
                .iter()
                .find(|t| {
                    t.predicate == ic::PROPERTY_NAME && t.object == Literal::from(name).into()
                })
                .map(|t| t.subject.clone())
                .unwrap();
            part.iter()
                .find(|t| t.subject == node && t.predicate == rdf::VALUE)
                .map(|t| t.object.clone())
                .unwrap()
        };
        assert_eq!(
            value_of("heartRate"),
            Literal::new_typed_literal("72", xsd::INTEGER).into()
        );
        assert_eq!(
            value_of("a/b~c"),
            Literal::new_typed_literal("-3", xsd::INTEGER).into()
        );
        assert_eq!(value_of("spo2"), Literal::from(97.5).into());
        assert_eq!(value_of("mode"), Literal::from("rest").into());
        assert_eq!(value_of("worn"), Literal::from(true).into());

        let graph: Graph = to_triples(&resource).iter().collect();
        let back = read_resource(&graph, resource.id.iri().as_ref().into()).unwrap();
        assert_eq!(back, resource);
        assert_eq!(live_of(&back).properties["heartRate"], json!(72));
        assert!(live_of(&back).properties["heartRate"].is_u64());
        assert_eq!(live_of(&back).properties["spo2"], json!(97.5));
    }

    #[test]
    fn integral_numbers_are_one_value_whatever_their_form() {
        let resource = Resource::from_json(json!({
            "id": "d", "kind": "device", "name": "d", "observes": ["t"], "protocols": ["ble"],
            "live": {"status": "online", "properties": {
                "a": 21.0, "b": -4.0, "c": 1e300, "d": 18446744073709551615u64, "e": 0.5
            }}
        }))
        .unwrap();
        let properties = &live_of(&resource).properties;
        assert!(properties["a"].is_u64() && properties["a"] == json!(21));
        assert!(properties["b"].is_i64() && properties["b"] == json!(-4));
        assert!(properties["c"].is_f64());
        assert!(properties["d"].is_u64());
        assert!(properties["e"].is_f64());
        let graph: Graph = to_triples(&resource).iter().collect();
        let back = read_resource(&graph, resource.id.iri().as_ref().into()).unwrap();
        assert_eq!(back, resource);
    }

    #[test]
    fn property_values_are_read_from_other_literal_forms() {
        let turtle = br#"
            @prefix ic: <https://w3id.org/iotcane/ontology#> .
            @prefix schema: <https://schema.org/> .
            @prefix sosa: <http://www.w3.org/ns/sosa/> .
            @prefix rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> .
            @prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
            <https://w3id.org/iotcane/id/d> a ic:Device ; schema:name "d" ;
                sosa:observes <https://w3id.org/iotcane/property/t> ; ic:protocol "ble" ;
                ic:liveContext [ ic:status "online" ;
                    ic:propertyValue [ ic:propertyName "dec" ; rdf:value 21.0 ] ,
                                     [ ic:propertyName "int" ; rdf:value "7"^^xsd:int ] ,
                                     [ ic:propertyName "flag" ; rdf:value "0"^^xsd:boolean ] ,
                                     "{\"fromJsonLd\":1.5}"^^rdf:JSON ] .
        "#;
        let items = crate::formats::read(crate::formats::Format::Turtle, turtle).unwrap();
        let resource = items[0].result.clone().unwrap();
        let properties = &live_of(&resource).properties;
        assert_eq!(properties["dec"], json!(21));
        assert_eq!(properties["int"], json!(7));
        assert_eq!(properties["flag"], json!(false));
        assert_eq!(properties["fromJsonLd"], json!(1.5));

        let bad = br#"
            @prefix ic: <https://w3id.org/iotcane/ontology#> .
            @prefix schema: <https://schema.org/> .
            @prefix sosa: <http://www.w3.org/ns/sosa/> .
            @prefix rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> .
            @prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
            <https://w3id.org/iotcane/id/d> a ic:Device ; schema:name "d" ;
                sosa:observes <https://w3id.org/iotcane/property/t> ; ic:protocol "ble" ;
                ic:liveContext [ ic:status "online" ;
                    ic:propertyValue [ ic:propertyName "x/y" ; rdf:value "[1]"^^rdf:JSON ] ,
                                     [ ic:propertyName "none" ] ,
                                     [ ic:propertyName "when" ; rdf:value "2020-01-01"^^xsd:date ] ,
                                     [ rdf:value 1 ] ] .
        "#;
        let items = crate::formats::read(crate::formats::Format::Turtle, bad).unwrap();
        let err = items[0].result.clone().unwrap_err();
        let paths: Vec<&str> = err.0.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/live/properties",
                "/live/properties/none",
                "/live/properties/when"
            ],
            "{err}"
        );
    }
}
