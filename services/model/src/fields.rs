//! The queryable fields of each kind: a native JSON key path (`live.batteryPct`) and the
//! RDF predicate path it is stored under, with the type its values have in the graph.
//!
//! Declarative filters and sorting name fields by their native key paths; this table turns
//! them into predicate paths and typed RDF terms, so no user text ever reaches query text.

use oxrdf::vocab::xsd;
use oxrdf::{Literal, NamedNode, NamedNodeRef, Term};

use crate::ids::{ResourceId, check_property_name, property_iri};
use crate::resource::Kind;
use crate::vocab::{dcterms, geo, ic, schema, sosa};

/// How a field's values are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// A plain string literal (names, enum values, protocols).
    Text,
    /// A number (`xsd:double`, or `xsd:integer` for counts; SPARQL compares them by value).
    Number,
    /// An `xsd:dateTime`.
    DateTime,
    /// A property of interest: the value is its name, stored as a property IRI.
    Property,
    /// Another resource: the value is its id, stored as its IRI.
    Reference,
}

/// One queryable field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The native key path, e.g. `live.batteryPct`.
    pub key: &'static str,
    /// The predicates followed from the resource to the value.
    pub path: Vec<NamedNode>,
    pub value_type: ValueType,
}

impl Field {
    /// The RDF term a user value stands for in this field, or why it cannot be one.
    pub fn term(&self, raw: &str) -> Result<Term, String> {
        match self.value_type {
            ValueType::Text => Ok(Literal::new_simple_literal(raw).into()),
            ValueType::Number => raw
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(|n| Literal::from(n).into())
                .ok_or_else(|| format!("`{raw}` is not a number")),
            ValueType::DateTime => {
                time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
                    .map(|_| Literal::new_typed_literal(raw, xsd::DATE_TIME).into())
                    .map_err(|_| format!("`{raw}` is not an RFC 3339 date-time"))
            }
            ValueType::Property => check_property_name(raw)
                .map(|()| property_iri(raw).into())
                .map_err(|e| e.to_string()),
            ValueType::Reference => raw
                .parse::<ResourceId>()
                .map(|id| id.iri().into())
                .map_err(|e| e.to_string()),
        }
    }
}

/// The field at `key` for resources of `kind` (any kind when `None`: common fields only).
pub fn field(kind: Option<Kind>, key: &str) -> Option<Field> {
    fields(kind).into_iter().find(|f| f.key == key)
}

/// Every queryable field of `kind` (the common ones when `None`).
pub fn fields(kind: Option<Kind>) -> Vec<Field> {
    use ValueType::{DateTime, Number, Property, Reference, Text};
    let mut out: Vec<(&'static str, Vec<NamedNodeRef<'static>>, ValueType)> = vec![
        ("id", vec![dcterms::IDENTIFIER], Text),
        ("name", vec![schema::NAME], Text),
        ("description", vec![dcterms::DESCRIPTION], Text),
        ("tags", vec![ic::TAG], Text),
        ("source", vec![dcterms::SOURCE], Text),
    ];
    let placement = [
        ("price", vec![schema::PRICE], Number),
        ("currency", vec![schema::PRICE_CURRENCY], Text),
        ("availability", vec![ic::AVAILABILITY], Number),
        ("site", vec![ic::SITE], Text),
        ("location.lat", vec![geo::LOCATION, geo::LAT], Number),
        ("location.lon", vec![geo::LOCATION, geo::LONG], Number),
        ("instanceOf", vec![ic::INSTANCE_OF], Reference),
        ("live.status", vec![ic::LIVE, ic::STATUS], Text),
        ("live.batteryPct", vec![ic::LIVE, ic::BATTERY_PCT], Number),
        ("live.loadPct", vec![ic::LIVE, ic::LOAD_PCT], Number),
        ("live.observedAt", vec![ic::LIVE, ic::OBSERVED_AT], DateTime),
    ];
    match kind {
        None => {}
        Some(Kind::Device) => {
            out.extend([
                ("observes", vec![sosa::OBSERVES], Property),
                ("actuates", vec![sosa::ACTS_ON_PROPERTY], Property),
                ("manufacturer", vec![schema::MANUFACTURER], Text),
                ("model", vec![schema::MODEL], Text),
                ("protocols", vec![ic::PROTOCOL], Text),
                ("samplingRateHz", vec![ic::MAX_SAMPLING_RATE_HZ], Number),
                ("powerSource", vec![ic::POWER_SOURCE], Text),
                ("powerW", vec![ic::POWER_W], Number),
                ("batteryLifeDays", vec![ic::BATTERY_LIFE_DAYS], Number),
            ]);
            out.extend(placement);
        }
        Some(Kind::EdgeNode) => {
            out.extend([
                ("manufacturer", vec![schema::MANUFACTURER], Text),
                ("model", vec![schema::MODEL], Text),
                ("cpuCores", vec![ic::CPU_CORES], Number),
                ("cpuGhz", vec![ic::CPU_GHZ], Number),
                ("memoryMb", vec![ic::MEMORY_MB], Number),
                ("storageGb", vec![ic::STORAGE_GB], Number),
                ("accelerator", vec![ic::ACCELERATOR], Text),
                ("southboundProtocols", vec![ic::SOUTHBOUND_PROTOCOL], Text),
                ("northboundProtocols", vec![ic::NORTHBOUND_PROTOCOL], Text),
                ("maxThroughputMsgs", vec![ic::MAX_THROUGHPUT_MSGS], Number),
                ("powerW", vec![ic::POWER_W], Number),
            ]);
            out.extend(placement);
        }
        Some(Kind::CloudOffering) => out.extend([
            ("provider", vec![ic::PROVIDER], Text),
            ("region", vec![ic::REGION], Text),
            ("offeringKind", vec![ic::OFFERING_KIND], Text),
            ("vcpus", vec![ic::VCPUS], Number),
            ("memoryGb", vec![ic::MEMORY_GB], Number),
            ("storageGb", vec![ic::STORAGE_GB], Number),
            ("throughputMsgs", vec![ic::THROUGHPUT_MSGS], Number),
            ("pricePerMonth", vec![ic::PRICE_PER_MONTH], Number),
            ("currency", vec![schema::PRICE_CURRENCY], Text),
            ("availabilitySla", vec![ic::AVAILABILITY_SLA], Number),
            ("protocols", vec![ic::PROTOCOL], Text),
        ]),
        Some(Kind::NetworkLink) => out.extend([
            ("from", vec![ic::FROM_ENDPOINT], Text),
            ("to", vec![ic::TO_ENDPOINT], Text),
            ("latencyMs", vec![ic::LATENCY_MS], Number),
            ("bandwidthMbps", vec![ic::BANDWIDTH_MBPS], Number),
            ("jitterMs", vec![ic::JITTER_MS], Number),
            ("technology", vec![ic::LINK_TECHNOLOGY], Text),
            ("availability", vec![ic::AVAILABILITY], Number),
        ]),
        Some(Kind::Service) => out.extend([
            ("serviceKind", vec![ic::SERVICE_KIND], Text),
            ("cpuCores", vec![ic::REQUIRED_CPU_CORES], Number),
            ("memoryMb", vec![ic::REQUIRED_MEMORY_MB], Number),
            ("storageGb", vec![ic::REQUIRED_STORAGE_GB], Number),
            ("protocols", vec![ic::PROTOCOL], Text),
            ("deployableOn", vec![ic::DEPLOYABLE_ON], Text),
            ("throughputMsgs", vec![ic::THROUGHPUT_MSGS], Number),
        ]),
        Some(Kind::Case) => out.extend([
            ("domain", vec![ic::DOMAIN], Text),
            (
                "configuration.monthlyCost",
                vec![ic::CONFIGURATION_PROP, ic::TOTAL_MONTHLY_COST],
                Number,
            ),
            (
                "configuration.latencyMs",
                vec![ic::CONFIGURATION_PROP, ic::TOTAL_LATENCY_MS],
                Number,
            ),
            (
                "configuration.availability",
                vec![ic::CONFIGURATION_PROP, ic::TOTAL_AVAILABILITY],
                Number,
            ),
            (
                "configuration.bindings.resource",
                vec![ic::CONFIGURATION_PROP, ic::BINDING_PROP, ic::RESOURCE],
                Reference,
            ),
            (
                "outcome.status",
                vec![ic::OUTCOME_PROP, ic::OUTCOME_STATUS],
                Text,
            ),
            ("outcome.rating", vec![ic::OUTCOME_PROP, ic::RATING], Number),
        ]),
        Some(Kind::Rule) => out.extend([
            ("action", vec![ic::RULE_ACTION], Text),
            ("refines", vec![ic::REFINES], Reference),
            ("cornerstones", vec![ic::CORNERSTONE_CASE], Reference),
            ("reason", vec![ic::RULE_REASON], Text),
        ]),
    }
    out.into_iter()
        .map(|(key, path, value_type)| Field {
            key,
            path: path.into_iter().map(NamedNodeRef::into_owned).collect(),
            value_type,
        })
        .collect()
}

/// Whether resources of `kind` can have a location (for "near a point" filters).
pub fn has_location(kind: Option<Kind>) -> bool {
    matches!(kind, Some(Kind::Device | Kind::EdgeNode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_fields_once() {
        for kind in Kind::ALL {
            let all = fields(Some(kind));
            let mut keys: Vec<_> = all.iter().map(|f| f.key).collect();
            keys.sort_unstable();
            let before = keys.len();
            keys.dedup();
            assert_eq!(before, keys.len(), "duplicate field in {kind:?}");
        }
    }

    #[test]
    fn values_become_typed_terms() {
        let battery = field(Some(Kind::Device), "live.batteryPct").unwrap();
        assert!(battery.term("20").is_ok());
        assert!(battery.term("twenty").unwrap_err().contains("not a number"));
        let observes = field(Some(Kind::Device), "observes").unwrap();
        assert_eq!(
            observes.term("heartRate").unwrap(),
            Term::from(property_iri("heartRate"))
        );
        assert!(field(Some(Kind::CloudOffering), "live.status").is_none());
        let cornerstones = field(Some(Kind::Rule), "cornerstones").unwrap();
        assert_eq!(
            cornerstones.term("case-icu-3").unwrap(),
            Term::from("case-icu-3".parse::<ResourceId>().unwrap().iri())
        );
        assert_eq!(
            field(Some(Kind::Rule), "action").unwrap().path,
            [ic::RULE_ACTION.into_owned()]
        );
    }
}
