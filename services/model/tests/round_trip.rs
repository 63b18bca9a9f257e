//! Property tests: native JSON ⇄ model ⇄ RDF is lossless, and readers never panic.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use iotcane_model::formats::{self, Format};
use iotcane_model::rdf::{read_resource, to_quads, to_triples};
use iotcane_model::resource::Placement;
use iotcane_model::{
    Affordance, AffordanceKind, Binding, BindingRole, Case, CloudOffering, Comparator,
    Configuration, DeployTarget, Device, DeviceStatus, EdgeNode, Form, LiveContext, Location,
    Metric, NetworkLink, OfferingKind, Outcome, OutcomeStatus, PowerSource, Protocol,
    QosRequirement, Resource, ResourceBody, ResourceId, Rule, RuleAction, RuleCondition,
    RuleTarget, Service, ServiceKind, Tenant,
};
use oxrdf::Graph;
use proptest::collection::{btree_set, vec};
use proptest::option;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9 ,.'()\"\\\\é-]{1,40}"
}

fn slug() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9-]{0,20}"
}

fn id() -> impl Strategy<Value = ResourceId> {
    prop_oneof![
        "[A-Za-z0-9][A-Za-z0-9._~-]{0,30}",
        "urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}",
        "https://example\\.org/things/[a-z0-9]{1,10}",
    ]
    .prop_map(|s| s.parse().expect("generated ids are valid"))
}

fn number(low: f64, high: f64) -> impl Strategy<Value = f64> {
    // Integral values too: they take other lexical forms in RDF.
    prop_oneof![
        low..high,
        (low..high).prop_map(move |v| if v.floor() >= low { v.floor() } else { v })
    ]
}

fn pick<T: Copy + std::fmt::Debug + 'static>(all: &'static [T]) -> impl Strategy<Value = T> {
    proptest::sample::select(all)
}

fn protocols(min: usize) -> impl Strategy<Value = BTreeSet<Protocol>> {
    btree_set(pick(Protocol::ALL), min..4)
}

fn properties() -> impl Strategy<Value = BTreeSet<String>> {
    btree_set("[a-z][A-Za-z0-9]{0,12}", 0..3)
}

fn json_object() -> impl Strategy<Value = serde_json::Map<String, serde_json::Value>> {
    proptest::collection::btree_map(
        "[a-z]{1,8}",
        prop_oneof![
            any::<i32>().prop_map(serde_json::Value::from),
            text().prop_map(serde_json::Value::from),
            any::<bool>().prop_map(serde_json::Value::from),
        ],
        0..4,
    )
    .prop_map(|m| m.into_iter().collect())
}

fn location() -> impl Strategy<Value = Location> {
    (
        number(-90.0, 90.0),
        number(-180.0, 180.0),
        option::of(number(-100.0, 3000.0)),
    )
        .prop_map(|(lat, lon, alt)| Location { lat, lon, alt })
}

/// Live property values: integers (within ±2^53, which JSON-LD's canonical JSON keeps
/// exact), any finite float (integral ones become integers when normalized), texts and
/// booleans, under names with characters JSON pointers and IRIs escape.
fn live_properties() -> impl Strategy<Value = BTreeMap<String, serde_json::Value>> {
    use proptest::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    proptest::collection::btree_map(
        "[A-Za-z0-9 /~._:-]{1,20}",
        prop_oneof![
            (-(1i64 << 53)..(1i64 << 53)).prop_map(serde_json::Value::from),
            (POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO).prop_map(serde_json::Value::from),
            number(-1e6, 1e6).prop_map(serde_json::Value::from),
            text().prop_map(serde_json::Value::from),
            any::<bool>().prop_map(serde_json::Value::from),
        ],
        0..5,
    )
}

fn placement() -> impl Strategy<Value = Placement> {
    let affordance = (
        "[A-Za-z0-9_-]{1,12}",
        pick(AffordanceKind::ALL),
        option::of(text()),
        vec(
            (
                "[a-z]{1,5}://[a-z0-9./]{1,20}",
                option::of("application/[a-z]{1,8}"),
                option::of(pick(Protocol::ALL)),
            )
                .prop_map(|(href, content_type, protocol)| Form {
                    href,
                    content_type,
                    protocol,
                }),
            0..3,
        ),
    )
        .prop_map(|(name, kind, title, forms)| Affordance {
            name,
            kind,
            title,
            forms,
        });
    let live = (
        pick(DeviceStatus::ALL),
        option::of(number(0.0, 100.0)),
        option::of(number(0.0, 100.0)),
        option::of(Just("2026-11-26T10:15:30Z".to_owned())),
        option::of(location()),
        live_properties(),
    )
        .prop_map(
            |(status, battery_pct, load_pct, observed_at, location, properties)| LiveContext {
                status,
                battery_pct,
                load_pct,
                observed_at,
                location,
                properties,
            },
        );
    (
        option::of(number(0.0, 5000.0)),
        option::of(number(0.5, 1.0)),
        option::of(slug()),
        option::of(location()),
        option::of(id()),
        vec(affordance, 0..4),
        option::of(live),
        option::of(json_object()),
        option::of(json_object()),
        option::of(json_object()),
    )
        .prop_map(
            |(
                price,
                availability,
                site,
                location,
                instance_of,
                affordances,
                live,
                td,
                desired_config,
                reported_config,
            )| {
                // Affordance names are unique per kind.
                let mut seen = BTreeSet::new();
                let affordances = affordances
                    .into_iter()
                    .filter(|a| seen.insert((a.kind, a.name.clone())))
                    .collect();
                Placement {
                    currency: price.map(|_| "EUR".to_owned()),
                    price,
                    availability,
                    site,
                    location,
                    instance_of,
                    affordances,
                    live,
                    td,
                    desired_config,
                    reported_config,
                }
            },
        )
}

fn device() -> impl Strategy<Value = ResourceBody> {
    (
        properties(),
        properties(),
        option::of(text()),
        protocols(1),
        option::of(number(0.001, 1e6)),
        option::of(pick(PowerSource::ALL)),
        option::of(number(0.0, 100.0)),
        placement(),
    )
        .prop_map(
            |(
                observes,
                actuates,
                manufacturer,
                protocols,
                rate,
                power_source,
                power_w,
                placement,
            )| {
                let observes = if observes.is_empty() && actuates.is_empty() {
                    BTreeSet::from(["temperature".to_owned()])
                } else {
                    observes
                };
                ResourceBody::Device(Device {
                    observes,
                    actuates,
                    manufacturer,
                    model: None,
                    protocols,
                    sampling_rate_hz: rate,
                    power_source,
                    power_w,
                    battery_life_days: None,
                    placement,
                })
            },
        )
}

fn edge_node() -> impl Strategy<Value = ResourceBody> {
    (
        1u32..=64,
        1u64..65_536,
        option::of(number(0.1, 5.0)),
        protocols(1),
        protocols(1),
        option::of(text()),
        placement(),
    )
        .prop_map(
            |(cpu_cores, memory_mb, cpu_ghz, south, north, accelerator, placement)| {
                ResourceBody::EdgeNode(EdgeNode {
                    manufacturer: None,
                    model: Some("model".into()),
                    cpu_cores,
                    cpu_ghz,
                    memory_mb,
                    storage_gb: Some(32.0),
                    accelerator,
                    southbound_protocols: south,
                    northbound_protocols: north,
                    max_throughput_msgs: Some(1500.5),
                    power_w: Some(6.4),
                    placement,
                })
            },
        )
}

fn cloud() -> impl Strategy<Value = ResourceBody> {
    (
        slug(),
        slug(),
        pick(OfferingKind::ALL),
        option::of(number(0.5, 96.0)),
        number(0.0, 10_000.0),
        number(0.9, 1.0),
        protocols(0),
    )
        .prop_map(
            |(provider, region, offering_kind, vcpus, price, sla, protocols)| {
                ResourceBody::CloudOffering(CloudOffering {
                    provider,
                    region,
                    offering_kind,
                    vcpus,
                    memory_gb: vcpus.map(|v| v * 4.0),
                    storage_gb: None,
                    throughput_msgs: Some(1000.0),
                    price_per_month: price,
                    currency: "USD".into(),
                    availability_sla: sla,
                    protocols,
                })
            },
        )
}

fn link() -> impl Strategy<Value = ResourceBody> {
    (
        slug(),
        slug(),
        slug(),
        number(0.0, 500.0),
        option::of(number(0.1, 10_000.0)),
    )
        .prop_map(|(site, provider, region, latency_ms, bandwidth_mbps)| {
            ResourceBody::NetworkLink(NetworkLink {
                from: format!("site:{site}"),
                to: format!("region:{provider}/{region}"),
                latency_ms,
                bandwidth_mbps,
                jitter_ms: None,
                technology: Some("fiber".into()),
                availability: Some(0.999),
            })
        })
}

fn service() -> impl Strategy<Value = ResourceBody> {
    (
        pick(ServiceKind::ALL),
        number(0.01, 64.0),
        number(1.0, 65_536.0),
        protocols(0),
        btree_set(pick(DeployTarget::ALL), 1..3),
    )
        .prop_map(
            |(service_kind, cpu_cores, memory_mb, protocols, deployable_on)| {
                ResourceBody::Service(Service {
                    service_kind,
                    cpu_cores,
                    memory_mb,
                    storage_gb: None,
                    protocols,
                    deployable_on,
                    throughput_msgs: None,
                })
            },
        )
}

fn case() -> impl Strategy<Value = ResourceBody> {
    let binding = (text(), pick(BindingRole::ALL), id(), 1u32..100).prop_map(
        |(requirement, role, resource, quantity)| Binding {
            requirement,
            role,
            resource,
            quantity,
        },
    );
    let requirement = (
        pick(Metric::ALL),
        pick(Comparator::ALL),
        number(-10.0, 1000.0),
        option::of(Just("ms".to_owned())),
    )
        .prop_map(|(metric, comparator, value, unit)| QosRequirement {
            metric,
            comparator,
            value,
            unit,
        });
    let outcome = (
        pick(OutcomeStatus::ALL),
        option::of(number(0.0, 5.0)),
        option::of(text()),
    )
        .prop_map(|(status, rating, notes)| Outcome {
            status,
            rating,
            notes,
            measured_latency_ms: Some(120.0),
            measured_monthly_cost: None,
            measured_availability: Some(0.9995),
        });
    (
        slug(),
        json_object(),
        vec(binding, 1..4),
        vec(requirement, 0..3),
        option::of(number(0.0, 1000.0)),
        option::of(outcome),
    )
        .prop_map(
            |(domain, context, bindings, requirements, monthly_cost, outcome)| {
                ResourceBody::Case(Case {
                    domain,
                    context,
                    configuration: Configuration {
                        bindings,
                        requirements,
                        monthly_cost,
                        latency_ms: Some(140.0),
                        availability: Some(0.9993),
                        energy_w: None,
                        objective: Some(-0.25),
                    },
                    outcome,
                })
            },
        )
}

/// The roles a rule may target.
const RULE_ROLES: &[BindingRole] = &[BindingRole::Device, BindingRole::Edge, BindingRole::Cloud];

fn rule() -> impl Strategy<Value = ResourceBody> {
    let condition = (option::of(slug()), btree_set(slug(), 0..3), properties()).prop_map(
        |(domain, sites, properties)| RuleCondition {
            domain,
            sites,
            properties,
        },
    );
    let target = (
        option::of(pick(RULE_ROLES)),
        option::of(id()),
        option::of(text()),
        option::of(pick(Protocol::ALL)),
        option::of(slug()),
        option::of(slug()),
    )
        .prop_map(
            |(role, resource, manufacturer, protocol, provider, region)| {
                let target = RuleTarget {
                    role,
                    resource,
                    manufacturer,
                    protocol,
                    provider,
                    region,
                };
                // A target states at least one part.
                if target == RuleTarget::default() {
                    RuleTarget {
                        role: Some(BindingRole::Device),
                        ..target
                    }
                } else {
                    target
                }
            },
        );
    (
        condition,
        pick(RuleAction::ALL),
        target,
        text(),
        option::of(id()),
        btree_set(id(), 0..3),
    )
        .prop_map(
            |(condition, action, target, reason, refines, cornerstones)| {
                ResourceBody::Rule(Rule {
                    condition,
                    action,
                    target,
                    reason,
                    refines,
                    cornerstones,
                })
            },
        )
}

fn resource() -> impl Strategy<Value = Resource> {
    (
        id(),
        text(),
        option::of(text()),
        btree_set("[a-z]{1,10}", 0..3),
        option::of(text()),
        prop_oneof![
            device(),
            edge_node(),
            cloud(),
            link(),
            service(),
            case(),
            rule()
        ],
    )
        .prop_map(|(id, name, description, tags, source, body)| {
            let mut resource = Resource {
                id,
                name,
                description,
                tags,
                source,
                body,
            };
            // A rule does not refine itself.
            if let ResourceBody::Rule(rule) = &mut resource.body
                && rule.refines.as_ref().map(ResourceId::iri) == Some(resource.id.iri())
            {
                rule.refines = None;
            }
            resource.normalize();
            resource
        })
}

fn graph_of(resource: &Resource) -> Graph {
    let mut graph = Graph::new();
    for triple in to_triples(resource) {
        graph.insert(&triple);
    }
    graph
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_resources_are_valid(resource in resource()) {
        prop_assert_eq!(iotcane_model::validate::validate(&resource), vec![]);
    }

    #[test]
    fn json_round_trip_is_lossless(resource in resource()) {
        let back = Resource::from_json(resource.to_json()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, resource);
    }

    #[test]
    fn rdf_round_trip_is_lossless(resource in resource()) {
        let graph = graph_of(&resource);
        let iri = resource.id.iri();
        let back = read_resource(&graph, iri.as_ref().into()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, resource);
    }

    #[test]
    fn quads_are_deterministic_and_in_the_tenant_graph(resource in resource()) {
        let tenant: Tenant = "acme".parse().unwrap();
        let first = to_quads(&tenant, &resource);
        prop_assert_eq!(&first, &to_quads(&tenant, &resource));
        let graph = tenant.graph_of(&resource.id);
        prop_assert!(first.iter().all(|q| q.graph_name == graph.clone().into()));
    }

    #[test]
    fn turtle_and_ntriples_round_trip(resource in resource()) {
        use oxigraph::io::{RdfFormat, RdfSerializer};
        for (format, reader) in [(RdfFormat::Turtle, Format::Turtle), (RdfFormat::NTriples, Format::NTriples)] {
            let mut serializer = RdfSerializer::from_format(format).for_writer(Vec::new());
            for triple in to_triples(&resource) {
                serializer.serialize_triple(&triple).unwrap();
            }
            let bytes = serializer.finish().unwrap();
            let items = formats::read(reader, &bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(items.len(), 1);
            let back = items.into_iter().next().unwrap().result.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&back, &resource);
        }
    }

    #[test]
    fn the_native_form_read_as_json_ld_is_the_same_resource(resource in resource()) {
        let mut document = resource.to_json();
        document["@context"] = formats::CONTEXT_URL.into();
        let items = formats::read(Format::JsonLd, document.to_string().as_bytes())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(items.len(), 1);
        let back = items.into_iter().next().unwrap().result.map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &resource);
    }

    #[test]
    fn readers_never_panic_on_garbage(bytes in vec(any::<u8>(), 0..400)) {
        for format in [Format::Json, Format::NdJson, Format::JsonLd, Format::Turtle, Format::NTriples, Format::NQuads] {
            let _ = formats::read(format, &bytes);
        }
    }
}

#[test]
fn a_thing_description_becomes_a_device_and_keeps_its_json() {
    let td = serde_json::json!({
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "id": "urn:uuid:3f1d0c1e-0000-4000-8000-000000000001",
        "title": "Ward 7 pulse oximeter",
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
        "base": "mqtt://gateway-b.local:1883",
        "iotcane:site": "ward-7",
        "properties": {
            "oxygen_saturation": {"type": "number", "forms": [{"href": "ward7/spo2", "contentType": "application/json"}]},
            "heart-rate": {"type": "number", "forms": [{"href": "https://gw.local/hr"}]}
        },
        "actions": {"calibrate": {"forms": [{"href": "coap://gw.local/cal"}]}}
    });
    let items = formats::read(Format::Json, td.to_string().as_bytes()).unwrap();
    let resource = items.into_iter().next().unwrap().result.unwrap();
    let ResourceBody::Device(device) = &resource.body else {
        panic!("expected a device")
    };
    assert_eq!(
        resource.id.as_str(),
        "urn:uuid:3f1d0c1e-0000-4000-8000-000000000001"
    );
    assert_eq!(resource.name, "Ward 7 pulse oximeter");
    assert_eq!(
        device.observes,
        BTreeSet::from(["heartRate".to_owned(), "oxygenSaturation".to_owned()])
    );
    assert_eq!(device.actuates, BTreeSet::from(["calibrate".to_owned()]));
    assert_eq!(
        device.protocols,
        BTreeSet::from([Protocol::Coap, Protocol::Http, Protocol::Mqtt])
    );
    assert_eq!(device.placement.site.as_deref(), Some("ward-7"));
    assert_eq!(device.placement.affordances.len(), 3);
    assert_eq!(
        serde_json::Value::Object(device.placement.td.clone().unwrap()),
        td
    );
}

#[test]
fn invalid_json_reports_every_violation_with_its_path() {
    let bad = serde_json::json!({
        "id": "edge 1", "kind": "edgeNode", "name": "",
        "cpuCores": 0, "memoryMb": 512, "southboundProtocols": [], "northboundProtocols": ["mqtt"],
        "price": 10.0, "location": {"lat": 91.0, "lon": 0.0}
    });
    let err = Resource::from_json(bad).unwrap_err();
    let paths: Vec<&str> = err.0.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/id"],
        "a bad id stops the read before the body: {err}"
    );

    let bad = serde_json::json!({
        "id": "edge-1", "kind": "edgeNode", "name": "",
        "cpuCores": 0, "memoryMb": 512, "southboundProtocols": [], "northboundProtocols": ["mqtt"],
        "price": 10.0, "location": {"lat": 91.0, "lon": 0.0}
    });
    let err = Resource::from_json(bad).unwrap_err();
    let paths: Vec<&str> = err.0.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/cpuCores",
            "/currency",
            "/location/lat",
            "/name",
            "/southboundProtocols"
        ]
    );
}

#[test]
fn wrong_types_and_unknown_fields_are_named() {
    let err = Resource::from_json(serde_json::json!({
        "id": "d", "kind": "device", "name": "x", "protocols": ["ble"], "observes": ["t"], "colour": "red"
    }))
    .unwrap_err();
    assert_eq!(err.0[0].path, "/colour");
    let err = Resource::from_json(serde_json::json!({
        "id": "d", "kind": "edgeNode", "name": "x", "cpuCores": "four", "memoryMb": 1,
        "southboundProtocols": ["ble"], "northboundProtocols": ["mqtt"]
    }))
    .unwrap_err();
    assert_eq!(err.0[0].path, "/cpuCores");
    let err = Resource::from_json(serde_json::json!({
        "id": "d", "kind": "device", "name": "x", "protocols": ["carrier-pigeon"], "observes": ["t"]
    }))
    .unwrap_err();
    assert_eq!(err.0[0].path, "/protocols/0");
    assert!(err.0[0].message.contains("carrier-pigeon"));
    let err = Resource::from_json(serde_json::json!({"id": "d", "kind": "spaceship", "name": "x"}))
        .unwrap_err();
    assert_eq!(err.0[0].path, "/kind");
}

#[test]
fn huge_literals_are_refused() {
    let err = Resource::from_json(serde_json::json!({
        "id": "d", "kind": "device", "name": "x".repeat(10_000), "protocols": ["ble"], "observes": ["t"]
    }))
    .unwrap_err();
    assert_eq!(err.0[0].path, "/name");
    let big: serde_json::Map<String, serde_json::Value> = [(
        "blob".to_owned(),
        serde_json::Value::from("y".repeat(300 * 1024)),
    )]
    .into_iter()
    .collect();
    let err = Resource::from_json(serde_json::json!({
        "id": "d", "kind": "device", "name": "x", "protocols": ["ble"], "observes": ["t"], "td": big
    }))
    .unwrap_err();
    assert_eq!(err.0[0].path, "/td");
}

#[test]
fn the_example_rules_are_valid_and_written_as_the_model_writes_them() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/examples/rules.ttl");
    let bytes = std::fs::read(path).unwrap();
    let file = formats::parse_graph(oxigraph::io::RdfFormat::Turtle, &bytes).unwrap();
    let items = formats::read(Format::Turtle, &bytes).unwrap();
    assert!(!items.is_empty());
    for item in items {
        let resource = item.result.unwrap();
        let ResourceBody::Rule(rule) = &resource.body else {
            panic!("{} is not a rule", resource.id)
        };
        assert!(!rule.cornerstones.is_empty(), "{}", resource.id);
        // A rule has no blank nodes: the file holds exactly the triples the model writes,
        // its JSON literals in canonical form included.
        let written: Graph = to_triples(&resource).iter().collect();
        let iri = resource.id.iri();
        let in_file: Graph = file
            .triples_for_subject(iri.as_ref())
            .map(oxrdf::TripleRef::into_owned)
            .collect();
        assert_eq!(in_file, written, "{}", resource.id);
    }
}

#[test]
fn rule_errors_inside_condition_and_target_name_the_member() {
    let turtle = br#"
        @prefix ic: <https://w3id.org/iotcane/ontology#> .
        @prefix schema: <https://schema.org/> .
        @prefix rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> .
        <https://w3id.org/iotcane/id/r> a ic:Rule ; schema:name "r" ;
            ic:ruleCondition '{"sites":["icu-3",7]}'^^rdf:JSON ;
            ic:ruleAction "exclude" ;
            ic:ruleTarget '{"protocol":"pigeon"}'^^rdf:JSON ;
            ic:ruleReason "why" ;
            ic:refines <https://w3id.org/iotcane/id/r> .
    "#;
    let items = formats::read(Format::Turtle, turtle).unwrap();
    let err = items[0].result.clone().unwrap_err();
    let paths: Vec<&str> = err.0.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(paths, ["/condition/sites/1", "/target/protocol"], "{err}");

    let no_target = br#"
        @prefix ic: <https://w3id.org/iotcane/ontology#> .
        @prefix schema: <https://schema.org/> .
        <https://w3id.org/iotcane/id/r> a ic:Rule ; schema:name "r" ;
            ic:ruleAction "exclude" ; ic:ruleReason "why" ;
            ic:refines <https://w3id.org/iotcane/id/r> .
    "#;
    let items = formats::read(Format::Turtle, no_target).unwrap();
    let err = items[0].result.clone().unwrap_err();
    let paths: Vec<&str> = err.0.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(paths, ["/target"], "{err}");

    let refines_itself = br#"
        @prefix ic: <https://w3id.org/iotcane/ontology#> .
        @prefix schema: <https://schema.org/> .
        @prefix rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> .
        <https://w3id.org/iotcane/id/r> a ic:Rule ; schema:name "r" ;
            ic:ruleAction "exclude" ; ic:ruleReason "why" ;
            ic:ruleTarget '{"role":"device"}'^^rdf:JSON ;
            ic:refines <https://w3id.org/iotcane/id/r> .
    "#;
    let items = formats::read(Format::Turtle, refines_itself).unwrap();
    let err = items[0].result.clone().unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(err.0[0].path, "/refines");
}

#[test]
fn rdf_errors_name_the_json_path() {
    let turtle = br#"
        @prefix ic: <https://w3id.org/iotcane/ontology#> .
        @prefix schema: <https://schema.org/> .
        <https://w3id.org/iotcane/id/gw> a ic:EdgeNode ; schema:name "gw" ;
            ic:cpuCores "many" ; ic:memoryMb 1024 ;
            ic:southboundProtocol "ble" ; ic:northboundProtocol "pigeon" .
    "#;
    let items = formats::read(Format::Turtle, turtle).unwrap();
    let err = items[0].result.clone().unwrap_err();
    let paths: Vec<&str> = err.0.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(paths, ["/cpuCores", "/northboundProtocols"]);
    let broken = formats::read(Format::Turtle, b"<a> <b> .").unwrap_err();
    assert!(broken.position.is_some(), "{broken}");
}
