//! The kinds of knowledge IoT-CANE keeps, as plain values.
//!
//! The serde form of these types is the native JSON form documented in
//! `schema/VOCABULARY.md`. Sets are `BTreeSet`s or vectors kept sorted by
//! [`Resource::normalize`], so equal knowledge has one representation.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::enums::{
    AffordanceKind, BindingRole, Comparator, DeployTarget, DeviceStatus, Metric, OfferingKind,
    OutcomeStatus, PowerSource, Protocol, RuleAction, ServiceKind,
};
use crate::ids::ResourceId;

/// The kind of a resource: which table of VOCABULARY.md applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Device,
    EdgeNode,
    CloudOffering,
    NetworkLink,
    Service,
    Case,
    Rule,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Device,
        Kind::EdgeNode,
        Kind::CloudOffering,
        Kind::NetworkLink,
        Kind::Service,
        Kind::Case,
        Kind::Rule,
    ];

    /// The native JSON spelling (`kind` field).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Device => "device",
            Kind::EdgeNode => "edgeNode",
            Kind::CloudOffering => "cloudOffering",
            Kind::NetworkLink => "networkLink",
            Kind::Service => "service",
            Kind::Case => "case",
            Kind::Rule => "rule",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn expected() -> String {
        Kind::ALL.map(Kind::as_str).join(", ")
    }

    /// The native JSON keys a resource of this kind may carry, besides the common ones.
    pub fn keys(self) -> &'static [&'static str] {
        const PLACEMENT: [&str; 11] = PLACEMENT_KEYS;
        const DEVICE: [&str; 20] = concat_keys(
            [
                "observes",
                "actuates",
                "manufacturer",
                "model",
                "protocols",
                "samplingRateHz",
                "powerSource",
                "powerW",
                "batteryLifeDays",
            ],
            PLACEMENT,
        );
        const EDGE: [&str; 22] = concat_keys(
            [
                "manufacturer",
                "model",
                "cpuCores",
                "cpuGhz",
                "memoryMb",
                "storageGb",
                "accelerator",
                "southboundProtocols",
                "northboundProtocols",
                "maxThroughputMsgs",
                "powerW",
            ],
            PLACEMENT,
        );
        const CLOUD: [&str; 11] = [
            "provider",
            "region",
            "offeringKind",
            "vcpus",
            "memoryGb",
            "storageGb",
            "throughputMsgs",
            "pricePerMonth",
            "currency",
            "availabilitySla",
            "protocols",
        ];
        const LINK: [&str; 7] = [
            "from",
            "to",
            "latencyMs",
            "bandwidthMbps",
            "jitterMs",
            "technology",
            "availability",
        ];
        const SERVICE: [&str; 7] = [
            "serviceKind",
            "cpuCores",
            "memoryMb",
            "storageGb",
            "protocols",
            "deployableOn",
            "throughputMsgs",
        ];
        const CASE: [&str; 4] = ["domain", "context", "configuration", "outcome"];
        const RULE: [&str; 6] = [
            "condition",
            "action",
            "target",
            "reason",
            "refines",
            "cornerstones",
        ];
        match self {
            Kind::Device => &DEVICE,
            Kind::EdgeNode => &EDGE,
            Kind::CloudOffering => &CLOUD,
            Kind::NetworkLink => &LINK,
            Kind::Service => &SERVICE,
            Kind::Case => &CASE,
            Kind::Rule => &RULE,
        }
    }
}

impl Kind {
    /// The kind-specific keys that must be present (value checks come later).
    pub fn required_keys(self) -> &'static [&'static str] {
        match self {
            Kind::Device => &[],
            Kind::EdgeNode => &["cpuCores", "memoryMb"],
            Kind::CloudOffering => &[
                "provider",
                "region",
                "offeringKind",
                "pricePerMonth",
                "currency",
                "availabilitySla",
            ],
            Kind::NetworkLink => &["from", "to", "latencyMs"],
            Kind::Service => &["serviceKind", "cpuCores", "memoryMb"],
            Kind::Case => &["domain", "context", "configuration"],
            Kind::Rule => &["action", "target", "reason"],
        }
    }
}

/// The keys of [`Placement`], shared by devices and edge nodes.
pub const PLACEMENT_KEYS: [&str; 11] = [
    "price",
    "currency",
    "availability",
    "site",
    "location",
    "instanceOf",
    "affordances",
    "live",
    "td",
    "desiredConfig",
    "reportedConfig",
];

/// The keys every kind has.
pub const COMMON_KEYS: [&str; 6] = ["id", "kind", "name", "description", "tags", "source"];

const fn concat_keys<const A: usize, const B: usize, const N: usize>(
    a: [&'static str; A],
    b: [&'static str; B],
) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    while i < N {
        out[i] = b[i - A];
        i += 1;
    }
    out
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One piece of configuration knowledge: the fields every kind has, and its kind's body.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub id: ResourceId,
    pub name: String,
    pub description: Option<String>,
    pub tags: BTreeSet<String>,
    pub source: Option<String>,
    pub body: ResourceBody,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResourceBody {
    Device(Device),
    EdgeNode(EdgeNode),
    CloudOffering(CloudOffering),
    NetworkLink(NetworkLink),
    Service(Service),
    Case(Case),
    Rule(Rule),
}

impl ResourceBody {
    pub fn kind(&self) -> Kind {
        match self {
            ResourceBody::Device(_) => Kind::Device,
            ResourceBody::EdgeNode(_) => Kind::EdgeNode,
            ResourceBody::CloudOffering(_) => Kind::CloudOffering,
            ResourceBody::NetworkLink(_) => Kind::NetworkLink,
            ResourceBody::Service(_) => Kind::Service,
            ResourceBody::Case(_) => Kind::Case,
            ResourceBody::Rule(_) => Kind::Rule,
        }
    }
}

impl Resource {
    pub fn kind(&self) -> Kind {
        self.body.kind()
    }

    /// Puts every set-valued list into its canonical order, without duplicates.
    pub fn normalize(&mut self) {
        match &mut self.body {
            ResourceBody::Device(d) => normalize_placement(&mut d.placement),
            ResourceBody::EdgeNode(e) => normalize_placement(&mut e.placement),
            ResourceBody::Case(c) => {
                sort_canonically(&mut c.configuration.bindings);
                sort_canonically(&mut c.configuration.requirements);
            }
            ResourceBody::CloudOffering(_)
            | ResourceBody::NetworkLink(_)
            | ResourceBody::Service(_)
            | ResourceBody::Rule(_) => {}
        }
    }
}

fn normalize_placement(placement: &mut Placement) {
    sort_affordances(&mut placement.affordances);
    if let Some(live) = &mut placement.live {
        live.normalize();
    }
}

fn sort_affordances(affordances: &mut [Affordance]) {
    for affordance in affordances.iter_mut() {
        sort_canonically(&mut affordance.forms);
    }
    affordances.sort_by(|a, b| {
        (a.kind, &a.name)
            .cmp(&(b.kind, &b.name))
            .then_with(|| canonical_key(a).cmp(&canonical_key(b)))
    });
}

/// Sorts by the canonical JSON text and drops exact duplicates: sets have no order.
fn sort_canonically<T: Serialize + PartialEq>(items: &mut Vec<T>) {
    items.sort_by_cached_key(canonical_key);
    items.dedup();
}

fn canonical_key<T: Serialize>(item: &T) -> String {
    serde_json::to_string(item).unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Form {
    pub href: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
}

/// A WoT interaction affordance: a property, action or event a thing offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Affordance {
    pub name: String,
    #[serde(rename = "affordanceKind")]
    pub kind: AffordanceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forms: Vec<Form>,
}

/// The latest live state of a device or edge node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LiveContext {
    pub status: DeviceStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_pct: Option<f64>,
    /// RFC 3339 timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<String>,
    /// The reported position (same shape and rules as [`Placement::location`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// The latest value of each declared property of the Thing, by property name. Each
    /// value is a JSON scalar (number, string or boolean); [`Resource::normalize`] writes
    /// an integral number as an integer, so `21.0` and `21` are one value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, serde_json::Value>,
}

impl LiveContext {
    /// Writes every integral number among the property values as a JSON integer.
    pub fn normalize(&mut self) {
        for value in self.properties.values_mut() {
            normalize_number(value);
        }
    }
}

/// An integral floating-point number becomes the equal integer (when one can hold it):
/// JSON does not tell `21.0` from `21`, and neither do JSON-LD nor RDF once read back.
fn normalize_number(value: &mut serde_json::Value) {
    // 2^63 and 2^64, exactly representable as f64.
    const I64_END: f64 = 9_223_372_036_854_775_808.0;
    const U64_END: f64 = 18_446_744_073_709_551_616.0;
    let serde_json::Value::Number(n) = value else {
        return;
    };
    if !n.is_f64() {
        return;
    }
    let Some(f) = n.as_f64() else {
        return;
    };
    if f.fract() != 0.0 {
        return;
    }
    // The casts are exact: `f` is integral and within the target's range.
    if (-I64_END..I64_END).contains(&f) {
        *value = serde_json::Value::from(f as i64);
    } else if (I64_END..U64_END).contains(&f) {
        *value = serde_json::Value::from(f as u64);
    }
}

/// A sensor, an actuator, or both: a catalog model or a registered device.
///
/// Unknown keys are refused by the reader against [`Kind::keys`] (serde cannot deny them
/// through a flattened field).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub observes: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub actuates: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default)]
    pub protocols: BTreeSet<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling_rate_hz: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_source: Option<PowerSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_w: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_life_days: Option<f64>,
    #[serde(flatten)]
    pub placement: Placement,
}

/// What devices and edge nodes share: price, site, location, TD, live state, and the
/// device shadow (desired and reported configuration).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_of: Option<ResourceId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub affordances: Vec<Affordance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveContext>,
    /// The original Thing Description, kept verbatim to be served back unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub td: Option<serde_json::Map<String, serde_json::Value>>,
    /// The configuration the device is to run (the device shadow's desired state), set by
    /// operators over HTTP or by the recommender; the MQTT gateway publishes it, retained,
    /// to the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_config: Option<serde_json::Map<String, serde_json::Value>>,
    /// The configuration the device last reported it runs (the device shadow's reported
    /// state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_config: Option<serde_json::Map<String, serde_json::Value>>,
}

/// An edge node or gateway: a catalog type or a registered node.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeNode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub cpu_cores: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ghz: Option<f64>,
    pub memory_mb: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_gb: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<String>,
    #[serde(default)]
    pub southbound_protocols: BTreeSet<Protocol>,
    #[serde(default)]
    pub northbound_protocols: BTreeSet<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_throughput_msgs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_w: Option<f64>,
    #[serde(flatten)]
    pub placement: Placement,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudOffering {
    pub provider: String,
    pub region: String,
    pub offering_kind: OfferingKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_gb: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_gb: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_msgs: Option<f64>,
    pub price_per_month: f64,
    pub currency: String,
    pub availability_sla: f64,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub protocols: BTreeSet<Protocol>,
}

/// A measured network path between an edge site and a cloud region (or two sites).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkLink {
    /// `site:{slug}` or `region:{provider}/{region}`.
    pub from: String,
    pub to: String,
    pub latency_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_mbps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technology: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<f64>,
}

/// A software service a configuration must host somewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    pub service_kind: ServiceKind,
    pub cpu_cores: f64,
    pub memory_mb: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_gb: Option<f64>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub protocols: BTreeSet<Protocol>,
    #[serde(default)]
    pub deployable_on: BTreeSet<DeployTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_msgs: Option<f64>,
}

/// A past application context, the configuration accepted for it, and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Case {
    pub domain: String,
    pub context: serde_json::Map<String, serde_json::Value>,
    pub configuration: Configuration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// Requirements bound to resources, with the totals of the whole chain.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Configuration {
    #[serde(default)]
    pub bindings: Vec<Binding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<QosRequirement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_cost: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_w: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Binding {
    pub requirement: String,
    pub role: BindingRole,
    pub resource: ResourceId,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QosRequirement {
    pub metric: Metric,
    pub comparator: Comparator,
    pub value: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Outcome {
    pub status: OutcomeStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_monthly_cost: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_availability: Option<f64>,
}

/// A ripple-down refinement rule an expert adds: in application contexts matching
/// `condition`, `action` the candidates matching `target`, because of `reason`.
///
/// A rule that `refines` another is an exception to it: it is considered only where its
/// parent's condition holds too, and when it fires its conclusion replaces the parent's.
/// `cornerstones` are the cases whose conclusions the rule was checked against (and, when
/// confirmed, knowingly changes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    #[serde(default)]
    pub condition: RuleCondition,
    pub action: RuleAction,
    pub target: RuleTarget,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refines: Option<ResourceId>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub cornerstones: BTreeSet<ResourceId>,
}

/// When a rule applies: every stated part must hold for the application context (an empty
/// condition holds everywhere).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleCondition {
    /// The context's domain equals this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The context has a sensing or actuation requirement at one of these sites.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub sites: BTreeSet<String>,
    /// The context senses or actuates one of these properties.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub properties: BTreeSet<String>,
}

/// Which candidates a rule's conclusion is about: every stated part must match.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleTarget {
    /// Only bindings of this role (device, edge, cloud).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<BindingRole>,
    /// This resource, or a registered resource that is an instance of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceId>,
    /// Devices and edge nodes of this manufacturer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Devices speaking this protocol to their edge node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Cloud offerings of this provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Cloud offerings in this region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}
