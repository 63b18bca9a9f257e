//! Mapping SHACL results back to JSON pointers into the native form.

use std::collections::BTreeSet;

use oxrdf::{NamedNode, NamedOrBlankNode, Term, Triple};

use super::native_rdf::Converted;
use super::shacl_core::{Finding, SH, Shapes};

const ICS: &str = "https://w3id.org/iotcane/shapes#";

/// Node-level results (a node shape's own constraint: no `sh:resultPath`) and the JSON key
/// each stands for. SHACL reports these on the focus node; the Rust validator reports them
/// on the key the shape's `sh:message` names. Every entry is a shape of `schema/shapes.ttl`:
///   * the `sh:or` shapes: "one of observes/actuates non-empty" is reported by the Rust
///     validator at `/observes`, "currency when price is present" at `/currency`, and
///     "protocols unless a TD describes it" at the protocol key;
///   * the `sh:nodeKind sh:IRI` of each kind's shape: a resource described on a blank
///     node is one whose `id` gave no IRI, which the Rust validator reports at `/id`.
const NODE_LEVEL: &[(&str, &str)] = &[
    ("DeviceObservesOrActuatesShape", "observes"),
    ("DeviceProtocolsShape", "protocols"),
    ("EdgeNodeSouthboundShape", "southboundProtocols"),
    ("EdgeNodeNorthboundShape", "northboundProtocols"),
    ("PriceNeedsCurrencyShape", "currency"),
    ("DeviceShape", "id"),
    ("EdgeNodeShape", "id"),
    ("CloudOfferingShape", "id"),
    ("NetworkLinkShape", "id"),
    ("SoftwareServiceShape", "id"),
    ("CaseShape", "id"),
    ("RuleShape", "id"),
];

/// The JSON pointers SHACL's findings point at, or why one of them cannot be mapped.
///
/// A finding on a property shape maps to the pointer the converter recorded for the value
/// it names (`/tags/0`, `/location`), or, with no value (`sh:minCount`, `sh:maxCount`),
/// to the focus node's pointer plus the shape's `sh:name` (the native JSON key). A finding
/// on a node shape maps through [`NODE_LEVEL`]. A finding on a node that stands for one
/// entry of a JSON map (a `live.properties` entry: its key is `ic:propertyName`, its value
/// `rdf:value`) maps to the entry's own pointer. An `sh:node` finding on a nested node that
/// has findings of its own (reported there too, because the nested shapes also have
/// `sh:targetObjectsOf`) is a duplicate and is dropped.
pub fn json_paths(
    shapes: &Shapes,
    converted: &Converted,
    findings: &[Finding],
) -> Result<BTreeSet<String>, String> {
    let node_constraint = format!("{SH}NodeConstraintComponent");
    let mut paths = BTreeSet::new();
    let mut node_findings = Vec::new();
    for finding in findings {
        let focus_pointer = node_pointer(converted, &finding.focus).ok_or_else(|| {
            format!("the focus node of [{finding}] is not a node of the resource")
        })?;
        let path = match &finding.path {
            Some(_) if is_entry(converted, &finding.focus) => focus_pointer,
            Some(path) => {
                let name = shapes
                    .names
                    .get(&finding.source)
                    .ok_or_else(|| format!("the shape of [{finding}] has no sh:name"))?;
                let by_name = format!("{focus_pointer}/{name}");
                let recorded = finding.value.as_ref().and_then(|v| {
                    path.predicates()
                        .iter()
                        .find_map(|p| value_pointer(converted, &finding.focus, p, v))
                });
                match recorded {
                    Some(pointer) => {
                        // The key the converter wrote the value from must be the shape's sh:name.
                        if pointer != by_name && !pointer.starts_with(&format!("{by_name}/")) {
                            return Err(format!(
                                "[{finding}]: the value comes from {pointer} but the shape's sh:name gives {by_name}"
                            ));
                        }
                        pointer
                    }
                    None => by_name,
                }
            }
            None => {
                let source = finding.source.to_string();
                let key = NODE_LEVEL
                    .iter()
                    .find(|(shape, _)| source == format!("<{ICS}{shape}>"))
                    .map(|(_, key)| *key)
                    .ok_or_else(|| {
                        format!("no JSON key is known for the node-level result [{finding}]")
                    })?;
                format!("{focus_pointer}/{key}")
            }
        };
        if finding.component.as_str() == node_constraint {
            node_findings.push(path);
        } else {
            paths.insert(path);
        }
    }
    for path in node_findings {
        let nested = paths.iter().any(|p| p.starts_with(&format!("{path}/")));
        if !nested {
            paths.insert(path);
        }
    }
    Ok(paths)
}

fn is_entry(converted: &Converted, term: &Term) -> bool {
    NamedOrBlankNode::try_from(term.clone()).is_ok_and(|node| converted.entries.contains(&node))
}

fn node_pointer(converted: &Converted, term: &Term) -> Option<String> {
    let node = NamedOrBlankNode::try_from(term.clone()).ok()?;
    converted.nodes.get(&node).cloned()
}

/// The pointer the converter recorded for the triple (focus, predicate, value).
fn value_pointer(
    converted: &Converted,
    focus: &Term,
    predicate: &NamedNode,
    value: &Term,
) -> Option<String> {
    let subject = NamedOrBlankNode::try_from(focus.clone()).ok()?;
    converted
        .values
        .get(&Triple::new(subject, predicate.clone(), value.clone()))
        .cloned()
}
