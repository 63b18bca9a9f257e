//! Validation: every violation of a resource, each with the JSON path of the offending
//! field and the reason. The rules are those of `schema/VOCABULARY.md`, and agree with
//! `schema/shapes.ttl` (a test runs both over the same fixtures).

use std::collections::BTreeSet;
use std::fmt;

use crate::enums::{AffordanceKind, BindingRole};
use crate::ids::{ResourceId, check_property_name, is_slug};
use crate::resource::{
    Affordance, Case, CloudOffering, Configuration, Device, EdgeNode, LiveContext, Location,
    NetworkLink, Placement, Resource, ResourceBody, Rule, RuleTarget, Service,
};

pub const MAX_TEXT: usize = 200;
pub const MAX_LONG_TEXT: usize = 4000;
pub const MAX_SOURCE: usize = 500;
pub const MAX_TAGS: usize = 32;
pub const MAX_TAG: usize = 64;
pub const MAX_AFFORDANCES: usize = 256;
pub const MAX_FORMS: usize = 32;
pub const MAX_HREF: usize = 2000;
pub const MAX_BINDINGS: usize = 1024;
/// The most property values a live context reports.
pub const MAX_LIVE_PROPERTIES: usize = 256;
/// The longest reason a rule gives.
pub const MAX_REASON: usize = 2000;
/// The most members of each set of a rule (sites, properties, cornerstones).
pub const MAX_RULE_SET: usize = 64;
/// A Thing Description or a case context larger than this is refused.
pub const MAX_JSON_DOCUMENT_BYTES: usize = 256 * 1024;

/// One segment of a JSON pointer (RFC 6901): `~` becomes `~0` and `/` becomes `~1`.
pub fn pointer_segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// One thing wrong with an input: where (a JSON pointer into the native form) and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Violation {
    pub path: String,
    pub message: String,
}

impl Violation {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// All the violations found in one input; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Violations(pub Vec<Violation>);

impl Violations {
    pub fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self(vec![Violation::new(path, message)])
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

/// Collects violations under a path prefix.
struct Checker {
    found: Vec<Violation>,
}

impl Checker {
    fn fail(&mut self, path: &str, message: impl Into<String>) {
        self.found.push(Violation::new(path, message));
    }

    fn text(&mut self, path: &str, value: &str, max: usize) {
        if value.is_empty() {
            self.fail(path, "must not be empty");
        } else if value.chars().count() > max {
            self.fail(path, format!("must be at most {max} characters"));
        }
    }

    fn opt_text(&mut self, path: &str, value: Option<&String>, max: usize) {
        if let Some(value) = value {
            self.text(path, value, max);
        }
    }

    fn range(&mut self, path: &str, value: f64, min: Bound, max: Bound) {
        if !value.is_finite() {
            self.fail(path, "must be a finite number");
            return;
        }
        let low_ok = match min {
            Bound::Incl(m) => value >= m,
            Bound::Excl(m) => value > m,
            Bound::None => true,
        };
        let high_ok = match max {
            Bound::Incl(m) => value <= m,
            Bound::Excl(m) => value < m,
            Bound::None => true,
        };
        if !(low_ok && high_ok) {
            self.fail(path, format!("must be {}", describe(min, max)));
        }
    }

    fn opt_range(&mut self, path: &str, value: Option<f64>, min: Bound, max: Bound) {
        if let Some(value) = value {
            self.range(path, value, min, max);
        }
    }

    fn slug(&mut self, path: &str, value: &str) {
        if !is_slug(value) {
            self.fail(
                path,
                "must be a slug matching ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
            );
        }
    }

    fn currency(&mut self, path: &str, value: &str) {
        if !(value.len() == 3 && value.bytes().all(|b| b.is_ascii_uppercase())) {
            self.fail(path, "must be an ISO 4217 currency code such as EUR or USD");
        }
    }

    fn timestamp(&mut self, path: &str, value: &str) {
        if time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
            .is_err()
        {
            self.fail(
                path,
                "must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z",
            );
        }
    }

    fn json_size(&mut self, path: &str, value: &serde_json::Map<String, serde_json::Value>) {
        let size = serde_json::to_vec(value).map_or(usize::MAX, |v| v.len());
        if size > MAX_JSON_DOCUMENT_BYTES {
            self.fail(
                path,
                format!("must be at most {MAX_JSON_DOCUMENT_BYTES} bytes of JSON"),
            );
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Bound {
    Incl(f64),
    Excl(f64),
    None,
}

use Bound::{Excl, Incl};

fn describe(min: Bound, max: Bound) -> String {
    let low = match min {
        Incl(m) => Some(format!("≥ {m}")),
        Excl(m) => Some(format!("> {m}")),
        Bound::None => None,
    };
    let high = match max {
        Incl(m) => Some(format!("≤ {m}")),
        Excl(m) => Some(format!("< {m}")),
        Bound::None => None,
    };
    match (low, high) {
        (Some(l), Some(h)) => format!("{l} and {h}"),
        (Some(l), None) => l,
        (None, Some(h)) => h,
        (None, None) => "a number".to_owned(),
    }
}

/// Every violation of `resource`, in path order. Empty means valid.
pub fn validate(resource: &Resource) -> Vec<Violation> {
    let mut c = Checker { found: Vec::new() };
    c.text("/name", &resource.name, MAX_TEXT);
    c.opt_text("/description", resource.description.as_ref(), MAX_LONG_TEXT);
    c.opt_text("/source", resource.source.as_ref(), MAX_SOURCE);
    if resource.tags.len() > MAX_TAGS {
        c.fail("/tags", format!("must have at most {MAX_TAGS} tags"));
    }
    for (i, tag) in resource.tags.iter().enumerate() {
        c.text(&format!("/tags/{i}"), tag, MAX_TAG);
    }
    match &resource.body {
        ResourceBody::Device(d) => device(&mut c, d),
        ResourceBody::EdgeNode(e) => edge_node(&mut c, e),
        ResourceBody::CloudOffering(o) => cloud_offering(&mut c, o),
        ResourceBody::NetworkLink(l) => network_link(&mut c, l),
        ResourceBody::Service(s) => service(&mut c, s),
        ResourceBody::Case(k) => case(&mut c, k),
        ResourceBody::Rule(r) => rule(&mut c, &resource.id, r),
    }
    c.found.sort();
    c.found
}

/// Property names at the JSON pointer `/{key}`.
fn property_names(c: &mut Checker, key: &str, names: &BTreeSet<String>) {
    for (i, name) in names.iter().enumerate() {
        if let Err(e) = check_property_name(name) {
            c.fail(&format!("/{key}/{i}"), e.to_string());
        }
    }
}

/// A set of a rule at the JSON pointer `path`: at most [`MAX_RULE_SET`] members.
fn rule_set<T>(c: &mut Checker, path: &str, set: &BTreeSet<T>) {
    if set.len() > MAX_RULE_SET {
        c.fail(path, format!("must have at most {MAX_RULE_SET} members"));
    }
}

fn device(c: &mut Checker, d: &Device) {
    // A device registered with a Thing Description may describe no affordance or protocol
    // yet (a minimal TD is valid); it is kept, but cannot be bound in a configuration.
    let described_by_td = d.placement.td.is_some();
    if d.observes.is_empty() && d.actuates.is_empty() && !described_by_td {
        c.fail(
            "/observes",
            "a device must observe or actuate at least one property (observes or actuates)",
        );
    }
    property_names(c, "observes", &d.observes);
    property_names(c, "actuates", &d.actuates);
    c.opt_text("/manufacturer", d.manufacturer.as_ref(), MAX_TEXT);
    c.opt_text("/model", d.model.as_ref(), MAX_TEXT);
    if d.protocols.is_empty() && !described_by_td {
        c.fail("/protocols", "must name at least one protocol");
    }
    c.opt_range("/samplingRateHz", d.sampling_rate_hz, Excl(0.0), Incl(1e9));
    c.opt_range("/powerW", d.power_w, Incl(0.0), Incl(1e6));
    c.opt_range(
        "/batteryLifeDays",
        d.battery_life_days,
        Excl(0.0),
        Bound::None,
    );
    placement(c, &d.placement);
}

fn edge_node(c: &mut Checker, e: &EdgeNode) {
    c.opt_text("/manufacturer", e.manufacturer.as_ref(), MAX_TEXT);
    c.opt_text("/model", e.model.as_ref(), MAX_TEXT);
    c.range("/cpuCores", f64::from(e.cpu_cores), Incl(1.0), Incl(1024.0));
    c.opt_range("/cpuGhz", e.cpu_ghz, Excl(0.0), Incl(10.0));
    if e.memory_mb < 1 {
        c.fail("/memoryMb", "must be ≥ 1");
    }
    c.opt_range("/storageGb", e.storage_gb, Incl(0.0), Bound::None);
    c.opt_text("/accelerator", e.accelerator.as_ref(), MAX_TEXT);
    let described_by_td = e.placement.td.is_some();
    if e.southbound_protocols.is_empty() && !described_by_td {
        c.fail("/southboundProtocols", "must name at least one protocol");
    }
    if e.northbound_protocols.is_empty() && !described_by_td {
        c.fail("/northboundProtocols", "must name at least one protocol");
    }
    c.opt_range(
        "/maxThroughputMsgs",
        e.max_throughput_msgs,
        Excl(0.0),
        Bound::None,
    );
    c.opt_range("/powerW", e.power_w, Incl(0.0), Incl(1e6));
    placement(c, &e.placement);
}

fn placement(c: &mut Checker, p: &Placement) {
    c.opt_range("/price", p.price, Incl(0.0), Bound::None);
    match (&p.price, &p.currency) {
        (Some(_), None) => c.fail("/currency", "is required when price is given"),
        (_, Some(currency)) => c.currency("/currency", currency),
        (None, None) => {}
    }
    c.opt_range("/availability", p.availability, Excl(0.0), Incl(1.0));
    if let Some(site) = &p.site {
        c.slug("/site", site);
    }
    if let Some(location) = &p.location {
        self::location(c, "/location", location);
    }
    if p.affordances.len() > MAX_AFFORDANCES {
        c.fail(
            "/affordances",
            format!("must have at most {MAX_AFFORDANCES} affordances"),
        );
    }
    let mut seen: BTreeSet<(AffordanceKind, &str)> = BTreeSet::new();
    for (i, a) in p.affordances.iter().enumerate() {
        affordance(c, &format!("/affordances/{i}"), a);
        if !seen.insert((a.kind, a.name.as_str())) {
            c.fail(
                &format!("/affordances/{i}/name"),
                format!("duplicate {} affordance {:?}", a.kind, a.name),
            );
        }
    }
    if let Some(live) = &p.live {
        live_context(c, "/live", live);
    }
    if let Some(td) = &p.td {
        c.json_size("/td", td);
    }
    if let Some(desired) = &p.desired_config {
        c.json_size("/desiredConfig", desired);
    }
    if let Some(reported) = &p.reported_config {
        c.json_size("/reportedConfig", reported);
    }
}

/// A location at the JSON pointer `path`.
fn location(c: &mut Checker, path: &str, l: &Location) {
    c.range(&format!("{path}/lat"), l.lat, Incl(-90.0), Incl(90.0));
    c.range(&format!("{path}/lon"), l.lon, Incl(-180.0), Incl(180.0));
    c.opt_range(
        &format!("{path}/alt"),
        l.alt,
        Incl(-12_000.0),
        Incl(100_000.0),
    );
}

fn affordance(c: &mut Checker, path: &str, a: &Affordance) {
    c.text(&format!("{path}/name"), &a.name, MAX_TEXT);
    c.opt_text(&format!("{path}/title"), a.title.as_ref(), MAX_TEXT);
    if a.forms.len() > MAX_FORMS {
        c.fail(
            &format!("{path}/forms"),
            format!("must have at most {MAX_FORMS} forms"),
        );
    }
    for (j, form) in a.forms.iter().enumerate() {
        c.text(&format!("{path}/forms/{j}/href"), &form.href, MAX_HREF);
        c.opt_text(
            &format!("{path}/forms/{j}/contentType"),
            form.content_type.as_ref(),
            MAX_TEXT,
        );
    }
}

/// Every violation of a live context on its own (a context report), in path order, each
/// path relative to the live object (`/batteryPct`, `/properties/{name}`); in a resource
/// the same violations are under `/live`.
pub fn validate_live(live: &LiveContext) -> Vec<Violation> {
    let mut c = Checker { found: Vec::new() };
    live_context(&mut c, "", live);
    c.found.sort();
    c.found
}

/// A live context at the JSON pointer `path`.
fn live_context(c: &mut Checker, path: &str, live: &LiveContext) {
    c.opt_range(
        &format!("{path}/batteryPct"),
        live.battery_pct,
        Incl(0.0),
        Incl(100.0),
    );
    c.opt_range(
        &format!("{path}/loadPct"),
        live.load_pct,
        Incl(0.0),
        Incl(100.0),
    );
    if let Some(at) = &live.observed_at {
        c.timestamp(&format!("{path}/observedAt"), at);
    }
    if let Some(l) = &live.location {
        location(c, &format!("{path}/location"), l);
    }
    if live.properties.len() > MAX_LIVE_PROPERTIES {
        c.fail(
            &format!("{path}/properties"),
            format!("must have at most {MAX_LIVE_PROPERTIES} property values"),
        );
    }
    for (name, value) in &live.properties {
        let entry = format!("{path}/properties/{}", pointer_segment(name));
        if name.is_empty() {
            c.fail(&entry, "a property name must not be empty");
        } else if name.chars().count() > MAX_TEXT {
            c.fail(
                &entry,
                format!("a property name must be at most {MAX_TEXT} characters"),
            );
        }
        match value {
            serde_json::Value::Number(_)
            | serde_json::Value::String(_)
            | serde_json::Value::Bool(_) => {}
            serde_json::Value::Null
            | serde_json::Value::Array(_)
            | serde_json::Value::Object(_) => {
                c.fail(&entry, "must be a number, a string or a boolean");
            }
        }
    }
}

fn cloud_offering(c: &mut Checker, o: &CloudOffering) {
    c.slug("/provider", &o.provider);
    c.slug("/region", &o.region);
    c.opt_range("/vcpus", o.vcpus, Excl(0.0), Bound::None);
    c.opt_range("/memoryGb", o.memory_gb, Excl(0.0), Bound::None);
    c.opt_range("/storageGb", o.storage_gb, Incl(0.0), Bound::None);
    c.opt_range("/throughputMsgs", o.throughput_msgs, Excl(0.0), Bound::None);
    c.range("/pricePerMonth", o.price_per_month, Incl(0.0), Bound::None);
    c.currency("/currency", &o.currency);
    c.range("/availabilitySla", o.availability_sla, Excl(0.0), Incl(1.0));
}

/// Checks `site:{slug}` or `region:{provider}/{region}`.
pub fn is_endpoint(endpoint: &str) -> bool {
    if let Some(site) = endpoint.strip_prefix("site:") {
        return is_slug(site);
    }
    if let Some(region) = endpoint.strip_prefix("region:") {
        return region
            .split_once('/')
            .is_some_and(|(provider, region)| is_slug(provider) && is_slug(region));
    }
    false
}

fn network_link(c: &mut Checker, l: &NetworkLink) {
    const ENDPOINT: &str = "must be site:{slug} or region:{provider}/{region}";
    if !is_endpoint(&l.from) {
        c.fail("/from", ENDPOINT);
    }
    if !is_endpoint(&l.to) {
        c.fail("/to", ENDPOINT);
    }
    if l.from == l.to {
        c.fail("/to", "must differ from from");
    }
    c.range("/latencyMs", l.latency_ms, Incl(0.0), Bound::None);
    c.opt_range("/bandwidthMbps", l.bandwidth_mbps, Excl(0.0), Bound::None);
    c.opt_range("/jitterMs", l.jitter_ms, Incl(0.0), Bound::None);
    c.opt_text("/technology", l.technology.as_ref(), MAX_TEXT);
    c.opt_range("/availability", l.availability, Excl(0.0), Incl(1.0));
}

fn service(c: &mut Checker, s: &Service) {
    c.range("/cpuCores", s.cpu_cores, Excl(0.0), Bound::None);
    c.range("/memoryMb", s.memory_mb, Excl(0.0), Bound::None);
    c.opt_range("/storageGb", s.storage_gb, Incl(0.0), Bound::None);
    if s.deployable_on.is_empty() {
        c.fail("/deployableOn", "must name at least one of edge, cloud");
    }
    c.opt_range("/throughputMsgs", s.throughput_msgs, Excl(0.0), Bound::None);
}

fn case(c: &mut Checker, k: &Case) {
    c.slug("/domain", &k.domain);
    c.json_size("/context", &k.context);
    configuration(c, "/configuration", &k.configuration);
    if let Some(o) = &k.outcome {
        c.opt_range("/outcome/rating", o.rating, Incl(0.0), Incl(5.0));
        c.opt_text("/outcome/notes", o.notes.as_ref(), MAX_LONG_TEXT);
        c.opt_range(
            "/outcome/measuredLatencyMs",
            o.measured_latency_ms,
            Incl(0.0),
            Bound::None,
        );
        c.opt_range(
            "/outcome/measuredMonthlyCost",
            o.measured_monthly_cost,
            Incl(0.0),
            Bound::None,
        );
        c.opt_range(
            "/outcome/measuredAvailability",
            o.measured_availability,
            Excl(0.0),
            Incl(1.0),
        );
    }
}

fn rule(c: &mut Checker, id: &ResourceId, r: &Rule) {
    let condition = &r.condition;
    if let Some(domain) = &condition.domain {
        c.slug("/condition/domain", domain);
    }
    rule_set(c, "/condition/sites", &condition.sites);
    for (i, site) in condition.sites.iter().enumerate() {
        c.slug(&format!("/condition/sites/{i}"), site);
    }
    rule_set(c, "/condition/properties", &condition.properties);
    property_names(c, "condition/properties", &condition.properties);

    let target = &r.target;
    if *target == RuleTarget::default() {
        c.fail(
            "/target",
            "must state at least one of role, resource, manufacturer, protocol, provider, region",
        );
    }
    if let Some(role) = target.role
        && !matches!(
            role,
            BindingRole::Device | BindingRole::Edge | BindingRole::Cloud
        )
    {
        c.fail("/target/role", "must be one of device, edge, cloud");
    }
    c.opt_text(
        "/target/manufacturer",
        target.manufacturer.as_ref(),
        MAX_TEXT,
    );
    if let Some(provider) = &target.provider {
        c.slug("/target/provider", provider);
    }
    if let Some(region) = &target.region {
        c.slug("/target/region", region);
    }

    c.text("/reason", &r.reason, MAX_REASON);
    // A slug and the absolute IRI it mints name the same rule.
    if r.refines
        .as_ref()
        .is_some_and(|parent| parent.iri() == id.iri())
    {
        c.fail("/refines", "a rule cannot refine itself");
    }
    rule_set(c, "/cornerstones", &r.cornerstones);
}

fn configuration(c: &mut Checker, path: &str, cfg: &Configuration) {
    if cfg.bindings.is_empty() {
        c.fail(
            &format!("{path}/bindings"),
            "must have at least one binding",
        );
    }
    if cfg.bindings.len() > MAX_BINDINGS {
        c.fail(
            &format!("{path}/bindings"),
            format!("must have at most {MAX_BINDINGS} bindings"),
        );
    }
    for (i, b) in cfg.bindings.iter().enumerate() {
        c.text(
            &format!("{path}/bindings/{i}/requirement"),
            &b.requirement,
            MAX_TEXT,
        );
        if b.quantity < 1 {
            c.fail(&format!("{path}/bindings/{i}/quantity"), "must be ≥ 1");
        }
    }
    for (i, q) in cfg.requirements.iter().enumerate() {
        c.range(
            &format!("{path}/requirements/{i}/value"),
            q.value,
            Bound::None,
            Bound::None,
        );
        c.opt_text(
            &format!("{path}/requirements/{i}/unit"),
            q.unit.as_ref(),
            MAX_TEXT,
        );
    }
    c.opt_range(
        &format!("{path}/monthlyCost"),
        cfg.monthly_cost,
        Incl(0.0),
        Bound::None,
    );
    c.opt_range(
        &format!("{path}/latencyMs"),
        cfg.latency_ms,
        Incl(0.0),
        Bound::None,
    );
    c.opt_range(
        &format!("{path}/availability"),
        cfg.availability,
        Excl(0.0),
        Incl(1.0),
    );
    c.opt_range(
        &format!("{path}/energyW"),
        cfg.energy_w,
        Incl(0.0),
        Bound::None,
    );
    c.opt_range(
        &format!("{path}/objective"),
        cfg.objective,
        Bound::None,
        Bound::None,
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use crate::Resource;

    fn live_paths(live: serde_json::Value) -> Vec<String> {
        let err = Resource::from_json(json!({
            "id": "d", "kind": "device", "name": "d", "observes": ["t"], "protocols": ["ble"],
            "live": live
        }))
        .unwrap_err();
        err.0.into_iter().map(|v| v.path).collect()
    }

    #[test]
    fn live_property_values_are_scalars_with_short_names() {
        assert_eq!(
            live_paths(json!({"status": "online", "properties": {
                "ok": 1, "obj": {"a": 1}, "list": [1], "nothing": null, "a/b~c": [], "": 2,
                "x".repeat(201): true, "y".repeat(200): "fine"
            }})),
            [
                "/live/properties/".to_owned(),
                "/live/properties/a~1b~0c".to_owned(),
                "/live/properties/list".to_owned(),
                "/live/properties/nothing".to_owned(),
                "/live/properties/obj".to_owned(),
                format!("/live/properties/{}", "x".repeat(201)),
            ]
        );
        let many: serde_json::Map<String, serde_json::Value> =
            (0..257).map(|i| (format!("p{i}"), json!(i))).collect();
        assert_eq!(
            live_paths(json!({"status": "online", "properties": many})),
            ["/live/properties"]
        );
    }

    #[test]
    fn a_live_context_alone_is_checked_with_paths_relative_to_it() {
        let live: crate::LiveContext = serde_json::from_value(json!({
            "status": "online", "batteryPct": 101, "location": {"lat": 0, "lon": 181},
            "properties": {"ok": "yes", "x/y": {"a": 1}}
        }))
        .unwrap();
        let paths: Vec<String> = super::validate_live(&live)
            .into_iter()
            .map(|v| v.path)
            .collect();
        assert_eq!(paths, ["/batteryPct", "/location/lon", "/properties/x~1y"]);
    }

    #[test]
    fn a_rule_refining_the_iri_of_its_own_slug_refines_itself() {
        let rule = |refines: &str| {
            Resource::from_json(json!({
                "id": "r", "kind": "rule", "name": "r", "action": "exclude",
                "target": {"role": "device"}, "reason": "why", "refines": refines
            }))
        };
        for own in ["r", "https://w3id.org/iotcane/id/r"] {
            let err = rule(own).unwrap_err();
            let paths: Vec<&str> = err.0.iter().map(|v| v.path.as_str()).collect();
            assert_eq!(paths, ["/refines"], "{own}: {err}");
        }
        assert!(rule("https://w3id.org/iotcane/id/parent").is_ok());
    }

    #[test]
    fn the_live_location_follows_the_location_rules() {
        assert_eq!(
            live_paths(
                json!({"status": "online", "location": {"lat": 91, "lon": 0, "alt": -20000}})
            ),
            ["/live/location/alt", "/live/location/lat"]
        );
        assert_eq!(
            live_paths(json!({"status": "online", "location": {"lat": 1}})),
            ["/live/location/lon"]
        );
        assert_eq!(
            live_paths(json!({"status": "online", "properties": [1]})),
            ["/live/properties"]
        );
    }
}
