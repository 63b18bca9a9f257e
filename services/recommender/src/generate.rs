//! Synthetic instances for checking and evaluating the recommender.
//!
//! * [`instance`]: a random but valid context and the knowledge that could serve it
//!   (catalog and registered devices, edge types and nodes, cloud offerings in known
//!   regions, network links), sized so brute force is cheap ([`Size::Small`]) or out of
//!   reach ([`Size::Large`]).
//! * [`cases`] and [`query_for`]: past cases in clusters around prototype contexts, and
//!   held-out queries from the same clusters, for retrieval precision.
//! * [`audit`]: a configuration's hard constraints re-derived from its bindings and the
//!   knowledge alone, without the solver's code, so tests and `iotcane eval` can check
//!   what the solver claims.
//!
//! Everything is a pure function of its seed: a small splitmix64 generator of its own
//! (no dependency, no global state), so the same seed gives the same instance on every
//! platform and in every release.

use std::collections::{BTreeMap, BTreeSet};

use iotcane_model::{BindingRole, DeviceStatus, Protocol, Resource, ResourceBody};
use serde_json::{Map, Value, json};

use crate::context::{
    ActuationRequirement, AppContext, Need, Preferences, Processing, ProcessingMode, Qos,
    SensingRequirement, Storage, Use, Weights,
};
use crate::model::{hop_latency_ms, jurisdiction_of_residency, region_within};
use crate::{CaseIndex, Configuration, Knowledge, Settings, recommend, search_space};

/// A splitmix64 generator: tiny, fast, and good enough for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The generator of one numbered stream of a seed.
    pub fn stream(seed: u64, stream: u64) -> Self {
        Self(mix(seed ^ mix(stream.wrapping_add(0x5851_F42D_4C95_7F2D))))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, (lo, hi): (usize, usize)) -> usize {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// `k` distinct items (all when `k` exceeds them), in their original order.
    pub fn subset<T: Clone>(&mut self, items: &[T], k: usize) -> Vec<T> {
        let mut chosen: BTreeSet<usize> = BTreeSet::new();
        let k = k.min(items.len());
        while chosen.len() < k {
            chosen.insert(self.below(items.len()));
        }
        chosen.into_iter().map(|i| items[i].clone()).collect()
    }
}

/// Rounds to `digits` decimals, so generated figures read like catalog figures.
fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// How large an instance's search space is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// At most 10⁴ configurations: brute force is cheap.
    Small,
    /// 10⁶ to 10⁹ configurations.
    Large,
}

impl Size {
    /// The least and greatest search space of an instance of this size.
    pub fn space(self) -> (f64, f64) {
        match self {
            Size::Small => (0.0, 1e4),
            Size::Large => (1e6, 1e9),
        }
    }
}

struct Params {
    requirements: (usize, usize),
    devices: (usize, usize),
    edges: (usize, usize),
    regions: (usize, usize),
    per_role: (usize, usize),
    count: (usize, usize),
}

fn params(size: Size) -> Params {
    match size {
        Size::Small => Params {
            requirements: (1, 4),
            devices: (2, 5),
            edges: (2, 4),
            regions: (1, 3),
            per_role: (1, 3),
            count: (1, 10),
        },
        Size::Large => Params {
            requirements: (3, 4),
            devices: (10, 24),
            edges: (5, 12),
            regions: (3, 6),
            per_role: (1, 3),
            count: (1, 30),
        },
    }
}

const SITES: [&str; 6] = [
    "site-a",
    "site-b",
    "plant-3",
    "ward-7",
    "farm-north",
    "depot",
];
const SENSED: [&str; 10] = [
    "temperature",
    "humidity",
    "pm25",
    "co2",
    "vibration",
    "soilMoisture",
    "heartRate",
    "pressure",
    "occupancy",
    "soundLevel",
];
const ACTUATED: [&str; 4] = ["valveState", "relayState", "lightLevel", "motorSpeed"];
const DEVICE_PROTOCOLS: [Protocol; 9] = [
    Protocol::Ble,
    Protocol::Zigbee,
    Protocol::Wifi,
    Protocol::Lorawan,
    Protocol::Modbus,
    Protocol::Ethernet,
    Protocol::Lte,
    Protocol::Thread,
    Protocol::Rs485,
];
/// Device protocols drawn more often.
const COMMON_PROTOCOLS: [Protocol; 4] = [
    Protocol::Ble,
    Protocol::Wifi,
    Protocol::Zigbee,
    Protocol::Modbus,
];
const UPLINK_PROTOCOLS: [Protocol; 4] = [
    Protocol::Mqtt,
    Protocol::Http,
    Protocol::Amqp,
    Protocol::Coap,
];
const VENDORS: [&str; 8] = [
    "Acme",
    "Bosch",
    "Siemens",
    "Milesight",
    "Dragino",
    "Sensirion",
    "Advantech",
    "Raspberry",
];
const DOMAINS: [&str; 6] = [
    "agriculture",
    "healthcare",
    "manufacturing",
    "smart-city",
    "energy",
    "logistics",
];
/// Regions of the model's jurisdiction table, by provider.
const REGIONS: [(&str, &str); 10] = [
    ("aws", "eu-central-1"),
    ("aws", "us-east-1"),
    ("aws", "eu-west-1"),
    ("aws", "ap-southeast-1"),
    ("azure", "westeurope"),
    ("azure", "eastus"),
    ("azure", "northeurope"),
    ("gcp", "europe-west1"),
    ("gcp", "us-central1"),
    ("gcp", "asia-southeast1"),
];

/// Protocols towards the cloud: MQTT most often, and now and then another.
fn uplinks(rng: &mut Rng) -> Vec<Protocol> {
    let mut out: BTreeSet<Protocol> = BTreeSet::new();
    if rng.chance(0.8) {
        out.insert(Protocol::Mqtt);
    }
    if out.is_empty() || rng.chance(0.4) {
        out.insert(*rng.pick(&UPLINK_PROTOCOLS));
    }
    out.into_iter().collect()
}

fn protocol_names(protocols: &[Protocol]) -> Vec<&'static str> {
    protocols.iter().map(|p| p.as_str()).collect()
}

/// A resource from its native JSON; the generator only writes valid ones.
fn resource(value: Value) -> Resource {
    match Resource::from_json(value) {
        Ok(r) => r,
        Err(e) => panic!("the generator wrote an invalid resource: {e}"),
    }
}

/// A context and the knowledge that could serve it, from `seed`, with a search space
/// within [`Size::space`] (the last draw is kept if 64 in a row miss the range).
///
/// Most QoS limits are loose; in about half the instances some are then tightened
/// around the solver's own answer without limits, so they bind. Nothing checks against
/// that answer: the checks compare with brute force and with [`audit`].
pub fn instance(seed: u64, size: Size) -> (AppContext, Knowledge) {
    let (lo, hi) = size.space();
    let mut last = None;
    for attempt in 0..64 {
        let mut rng = Rng::stream(seed, attempt);
        let (mut ctx, mut knowledge) = draw(&mut rng, size);
        let mut space = search_space(&ctx, &knowledge);
        while space > hi && trim(&mut rng, &mut knowledge) {
            space = search_space(&ctx, &knowledge);
        }
        if (lo..=hi).contains(&space) {
            if rng.chance(0.6) {
                tighten(&mut rng, &mut ctx, &knowledge);
            }
            return (ctx, knowledge);
        }
        last = Some((ctx, knowledge));
    }
    last.unwrap_or_else(|| draw(&mut Rng::new(seed), size))
}

/// Tightens some limits between the best configuration without limits and the best
/// value any configuration reaches on that criterion alone, so they bind: the solver has
/// to trade the criteria off across slots instead of taking each slot's best on its own.
fn tighten(rng: &mut Rng, ctx: &mut AppContext, knowledge: &Knowledge) {
    let mut loose = ctx.clone();
    loose.qos.max_latency_ms = None;
    loose.qos.min_availability = None;
    loose.qos.max_monthly_cost = None;
    let settings = Settings {
        exact_limit: 0.0,
        node_budget: 20_000,
        heuristic_passes: 10,
    };
    let best_with = |weights: Option<Weights>| {
        let mut c = loose.clone();
        if weights.is_some() {
            c.preferences.weights = weights;
        }
        let answer = recommend(&c, knowledge, &CaseIndex::new(), &settings);
        answer.configurations.first().map(|c| c.totals.clone())
    };
    let only = |cost, latency, availability| Weights {
        cost,
        latency,
        energy: 0.0,
        availability,
    };
    let Some(best) = best_with(None) else {
        return;
    };
    let between = |rng: &mut Rng, from: f64, to: f64| from + (to - from) * rng.uniform(0.2, 0.9);
    let q = &mut ctx.qos;
    if rng.chance(0.5)
        && let Some(t) = best_with(Some(only(0.0, 1.0, 0.0)))
        && t.latency_ms < best.latency_ms
    {
        q.max_latency_ms = Some(round(between(rng, best.latency_ms, t.latency_ms), 3));
    }
    if rng.chance(0.5)
        && let Some(t) = best_with(Some(only(0.0, 0.0, 1.0)))
        && t.availability > best.availability
    {
        q.min_availability = Some(round(between(rng, best.availability, t.availability), 7));
    }
    if rng.chance(0.5)
        && let Some(t) = best_with(Some(only(1.0, 0.0, 0.0)))
        && t.monthly_cost < best.monthly_cost
    {
        q.max_monthly_cost = Some(round(between(rng, best.monthly_cost, t.monthly_cost), 2));
        q.currency = Some("USD".to_owned());
    }
}

/// Removes one candidate from the longest list; `false` when every list is down to one.
pub fn trim(rng: &mut Rng, k: &mut Knowledge) -> bool {
    let mut lists: Vec<&mut Vec<Resource>> = k.devices.iter_mut().collect();
    lists.push(&mut k.edge_nodes);
    lists.push(&mut k.offerings);
    let longest = lists.iter().map(|l| l.len()).max().unwrap_or(0);
    if longest <= 1 {
        return false;
    }
    let candidates: Vec<usize> = (0..lists.len())
        .filter(|&i| lists[i].len() == longest)
        .collect();
    let list = &mut lists[*rng.pick(&candidates)];
    let at = rng.below(list.len());
    list.remove(at);
    true
}

fn draw(rng: &mut Rng, size: Size) -> (AppContext, Knowledge) {
    let p = params(size);
    let n_sites = if rng.chance(0.4) { 2 } else { 1 };
    let sites: Vec<String> = rng
        .subset(&SITES, n_sites)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let n_regions = rng.range(p.regions);
    let regions = rng.subset(&REGIONS, n_regions);
    let use_ = if rng.chance(0.8) {
        Use::Both
    } else if rng.chance(0.75) {
        Use::Catalog
    } else {
        Use::Registered
    };

    // Requirements: every site has one; keys (need, property, site) are distinct.
    let n = rng.range(p.requirements).max(sites.len());
    let mut sensing = Vec::new();
    let mut actuation = Vec::new();
    let mut keys: BTreeSet<(Need, &str, String)> = BTreeSet::new();
    for i in 0..n {
        let site = if i < sites.len() {
            sites[i].clone()
        } else {
            rng.pick(&sites).clone()
        };
        let need = if rng.chance(0.75) {
            Need::Sensing
        } else {
            Need::Actuation
        };
        let pool: &[&'static str] = if need == Need::Sensing {
            &SENSED
        } else {
            &ACTUATED
        };
        let Some(property) = (0..10)
            .map(|_| *rng.pick(pool))
            .find(|p| !keys.contains(&(need, *p, site.clone())))
        else {
            continue;
        };
        keys.insert((need, property, site.clone()));
        let count = rng.range(p.count) as u32;
        let protocols = if rng.chance(0.5) {
            let k = rng.range((1, 3));
            rng.subset(&DEVICE_PROTOCOLS, k)
        } else {
            Vec::new()
        };
        match need {
            Need::Sensing => sensing.push(SensingRequirement {
                property: property.to_owned(),
                count,
                min_sampling_rate_hz: rng.chance(0.8).then(|| round(rng.uniform(0.01, 2.0), 3)),
                site,
                protocols,
            }),
            Need::Actuation => actuation.push(ActuationRequirement {
                property: property.to_owned(),
                count,
                site,
                protocols,
            }),
        }
    }

    let processing = rng.chance(0.6).then(|| Processing {
        mode: *rng.pick(&[
            None,
            Some(ProcessingMode::Stream),
            Some(ProcessingMode::Batch),
        ]),
        messages_per_second: rng.chance(0.3).then(|| round(rng.uniform(1.0, 200.0), 1)),
        cpu_cores: Some(round(rng.uniform(0.25, 4.0), 2)),
        memory_mb: rng
            .chance(0.8)
            .then(|| *rng.pick(&[256.0, 512.0, 1024.0, 2048.0, 4096.0])),
    });
    let storage = rng.chance(0.6).then(|| Storage {
        volume_gb: Some(round(rng.uniform(5.0, 500.0), 0)),
        retention_days: Some(rng.range((30, 365)) as u32),
    });
    let budget = rng
        .chance(0.5)
        .then(|| round(rng.uniform(300.0, 3000.0), 0));
    let region_names: Vec<String> = regions.iter().map(|r| r.1.to_owned()).collect();
    let providers: Vec<String> = regions
        .iter()
        .map(|r| r.0.to_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let qos = Qos {
        max_latency_ms: rng.chance(0.6).then(|| {
            if rng.chance(0.15) {
                round(rng.uniform(100.0, 500.0), 0)
            } else {
                round(rng.uniform(2000.0, 5000.0), 0)
            }
        }),
        min_availability: rng.chance(0.5).then(|| *rng.pick(&[0.9, 0.95, 0.96, 0.97])),
        max_monthly_cost: budget,
        currency: (budget.is_some() || rng.chance(0.5)).then(|| "USD".to_owned()),
        allowed_regions: rng.chance(0.25).then(|| {
            let k = rng.range((1, region_names.len()));
            let mut allowed = rng.subset(&region_names, k);
            if rng.chance(0.3) {
                allowed.push("mars-north-1".to_owned());
            }
            allowed
        }),
        allowed_providers: rng.chance(0.2).then(|| {
            let k = rng.range((1, providers.len()));
            rng.subset(&providers, k)
        }),
        data_residency: rng.chance(0.15).then(|| {
            let region = rng.pick(&region_names);
            ["EU", "US", "SG"]
                .into_iter()
                .find(|j| region_within(region, j))
                .unwrap_or("EU")
                .to_owned()
        }),
    };
    let mut vendor_pool: Vec<String> = VENDORS.iter().map(|v| (*v).to_owned()).collect();
    vendor_pool.extend(providers.iter().cloned());
    let preferences = Preferences {
        weights: rng.chance(0.8).then(|| {
            let mut w = Weights {
                cost: round(rng.unit(), 2),
                latency: round(rng.unit(), 2),
                energy: round(rng.unit(), 2),
                availability: round(rng.unit(), 2),
            };
            if w.cost + w.latency + w.energy + w.availability <= 0.0 {
                w.cost = 1.0;
            }
            w
        }),
        preferred_vendors: if rng.chance(0.3) {
            vec![rng.pick(&vendor_pool).clone()]
        } else {
            Vec::new()
        },
    };
    let ctx = AppContext {
        name: Some("synthetic instance".to_owned()),
        domain: rng.pick(&DOMAINS).to_string(),
        sensing,
        actuation,
        processing,
        storage,
        qos,
        preferences,
        alternatives: rng.range((1, 5)) as u32,
        use_,
    };
    let knowledge = knowledge_for(rng, &p, &ctx, &sites, &regions);
    (ctx, knowledge)
}

fn knowledge_for(
    rng: &mut Rng,
    p: &Params,
    ctx: &AppContext,
    sites: &[String],
    regions: &[(&str, &str)],
) -> Knowledge {
    let requirements = ctx.requirements();
    // Protocols for a device or an edge: most often one the requirements allow, the
    // rest drawn with the common radios and buses likelier.
    let some_protocols = |rng: &mut Rng, wanted: &[Protocol], k: usize| -> Vec<Protocol> {
        let mut out: BTreeSet<Protocol> = BTreeSet::new();
        if !wanted.is_empty() && rng.chance(0.85) {
            out.insert(*rng.pick(wanted));
        }
        while out.len() < k {
            out.insert(if rng.chance(0.5) {
                *rng.pick(&COMMON_PROTOCOLS)
            } else {
                *rng.pick(&DEVICE_PROTOCOLS)
            });
        }
        out.into_iter().collect()
    };
    let all_wanted: Vec<Protocol> = requirements
        .iter()
        .flat_map(|r| r.protocols.iter().copied())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    // Catalog devices, per distinct (need, property).
    let mut catalog: Vec<Resource> = Vec::new();
    let needs: BTreeSet<(Need, String)> = requirements
        .iter()
        .map(|r| (r.need, r.property.clone()))
        .collect();
    for (need, property) in &needs {
        let wanted: Vec<Protocol> = requirements
            .iter()
            .filter(|r| r.need == *need && r.property == *property)
            .flat_map(|r| r.protocols.iter().copied())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for _ in 0..rng.range(p.devices) {
            let id = format!("dev-{}", catalog.len());
            let k = rng.range((1, 3));
            let protocols = some_protocols(rng, &wanted, k);
            let mut properties = vec![property.clone()];
            if rng.chance(0.2) {
                let pool: &[&str] = if *need == Need::Sensing {
                    &SENSED
                } else {
                    &ACTUATED
                };
                properties.push(rng.pick(pool).to_string());
            }
            let mut body = json!({
                "id": id,
                "kind": "device",
                "name": format!("Synthetic device {id}"),
                "manufacturer": rng.pick(&VENDORS),
                "protocols": protocol_names(&protocols),
                "price": round(rng.uniform(5.0, 250.0), 2),
                "currency": if rng.chance(0.05) { "EUR" } else { "USD" },
                "powerW": round(rng.uniform(0.01, 3.0), 3),
            });
            let key = if *need == Need::Sensing {
                "observes"
            } else {
                "actuates"
            };
            body[key] = json!(properties);
            if *need == Need::Sensing && rng.chance(0.85) {
                body["samplingRateHz"] = json!(round(rng.uniform(0.1, 10.0), 2));
            }
            catalog.push(resource(body));
        }
    }
    let serves = |d: &Resource, need: Need, property: &str| match &d.body {
        ResourceBody::Device(d) => match need {
            Need::Sensing => d.observes.contains(property),
            Need::Actuation => d.actuates.contains(property),
        },
        _ => false,
    };
    // Registered devices: instances of a catalog model at a requirement's site.
    let mut registered: Vec<Resource> = Vec::new();
    if ctx.use_.registered() {
        for r in &requirements {
            if r.count > 6 || !rng.chance(0.35) {
                continue;
            }
            let models: Vec<&Resource> = catalog
                .iter()
                .filter(|d| serves(d, r.need, &r.property))
                .collect();
            if models.is_empty() {
                continue;
            }
            let model = *rng.pick(&models);
            let ResourceBody::Device(d) = &model.body else {
                continue;
            };
            for j in 0..r.count as usize + rng.below(3) {
                let id = format!("{}-{}-{j}", model.id, r.site);
                let mut body = json!({
                    "id": id,
                    "kind": "device",
                    "name": format!("Registered {id}"),
                    "protocols": d.protocols.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                    "site": r.site,
                    "instanceOf": model.id.as_str(),
                    "live": {"status": if rng.chance(0.85) { "online" } else { "offline" }},
                });
                let key = if r.need == Need::Sensing {
                    "observes"
                } else {
                    "actuates"
                };
                body[key] = json!([r.property]);
                if let Some(hz) = d.sampling_rate_hz {
                    body["samplingRateHz"] = json!(hz);
                }
                if let Some(w) = d.power_w {
                    body["powerW"] = json!(w);
                }
                if let Some(m) = &d.manufacturer {
                    body["manufacturer"] = json!(m);
                }
                registered.push(resource(body));
            }
        }
    }
    let devices = requirements
        .iter()
        .map(|r| {
            catalog
                .iter()
                .filter(|d| serves(d, r.need, &r.property))
                .chain(registered.iter().filter(|d| match &d.body {
                    ResourceBody::Device(x) => {
                        serves(d, r.need, &r.property) && x.placement.site.as_ref() == Some(&r.site)
                    }
                    _ => false,
                }))
                .cloned()
                .collect()
        })
        .collect();

    // Edge types and registered edge nodes.
    let mut edge_nodes = Vec::new();
    let edge_body = |rng: &mut Rng, id: &str| -> Value {
        let k = rng.range((3, 6));
        let south = some_protocols(rng, &all_wanted, k);
        let north = uplinks(rng);
        let mut body = json!({
            "id": id,
            "kind": "edgeNode",
            "name": format!("Synthetic edge {id}"),
            "manufacturer": rng.pick(&VENDORS),
            "cpuCores": rng.range((1, 8)),
            "memoryMb": *rng.pick(&[512, 1024, 2048, 4096, 8192, 16384]),
            "southboundProtocols": protocol_names(&south),
            "northboundProtocols": protocol_names(&north),
            "powerW": round(rng.uniform(2.0, 30.0), 1),
        });
        if rng.chance(0.8) {
            body["maxThroughputMsgs"] = json!(round(rng.uniform(20.0, 2000.0), 0));
        }
        if rng.chance(0.6) {
            body["availability"] = json!(round(rng.uniform(0.99, 0.9999), 5));
        }
        body
    };
    for i in 0..rng.range(p.edges) {
        let mut body = edge_body(rng, &format!("edge-{i}"));
        body["price"] = json!(round(rng.uniform(30.0, 600.0), 2));
        body["currency"] = json!(if rng.chance(0.05) { "EUR" } else { "USD" });
        edge_nodes.push(resource(body));
    }
    if ctx.use_.registered() {
        for site in sites {
            if rng.chance(0.35) {
                let mut body = edge_body(rng, &format!("gw-{site}"));
                body["site"] = json!(site);
                body["live"] = json!({
                    "status": if rng.chance(0.85) { "online" } else { "offline" },
                    "loadPct": round(rng.uniform(0.0, 80.0), 0),
                });
                edge_nodes.push(resource(body));
            }
        }
    }

    // Cloud offerings in each region, every role.
    let mut offerings = Vec::new();
    for (provider, region) in regions {
        let mut offer = |rng: &mut Rng, short: &str, kind: &str, fields: Value| {
            let id = format!("{provider}-{short}-{region}-{}", offerings.len());
            let mut body = json!({
                "id": id,
                "kind": "cloudOffering",
                "name": format!("Synthetic {kind} {id}"),
                "provider": provider,
                "region": region,
                "offeringKind": kind,
                "currency": if rng.chance(0.03) { "EUR" } else { "USD" },
                "availabilitySla": round(rng.uniform(0.999, 0.99995), 5),
            });
            if let (Some(body), Value::Object(fields)) = (body.as_object_mut(), fields) {
                body.extend(fields);
            }
            offerings.push(resource(body));
        };
        for _ in 0..rng.range(p.per_role) {
            let protocols: Vec<&str> = if rng.chance(0.2) {
                Vec::new()
            } else {
                protocol_names(&uplinks(rng))
            };
            let mut fields = json!({
                "pricePerMonth": round(rng.uniform(5.0, 150.0), 2),
                "protocols": protocols,
            });
            if rng.chance(0.9) {
                fields["throughputMsgs"] = json!(round(rng.uniform(10.0, 1000.0), 0));
            }
            let (short, kind) = if rng.chance(0.7) {
                ("mqtt", "managedMqtt")
            } else {
                ("stream", "streamProcessing")
            };
            offer(rng, short, kind, fields);
        }
        for _ in 0..rng.range(p.per_role) {
            let mut fields = json!({"pricePerMonth": round(rng.uniform(1.0, 50.0), 2)});
            if rng.chance(0.9) {
                fields["storageGb"] = json!(round(rng.uniform(50.0, 1000.0), 0));
            }
            offer(rng, "store", "objectStorage", fields);
        }
        for _ in 0..rng.range(p.per_role) {
            if rng.chance(0.6) {
                let fields = json!({
                    "pricePerMonth": round(rng.uniform(10.0, 300.0), 2),
                    "vcpus": rng.range((1, 8)),
                    "memoryGb": *rng.pick(&[1, 2, 4, 8, 16, 32]),
                });
                offer(rng, "vm", "vm", fields);
            } else {
                let fields = json!({
                    "pricePerMonth": round(rng.uniform(5.0, 100.0), 2),
                    "throughputMsgs": round(rng.uniform(10.0, 1000.0), 0),
                });
                offer(rng, "fn", "serverless", fields);
            }
        }
    }

    // Links from every site to every region, a few missing.
    let mut links = Vec::new();
    for site in sites {
        for (provider, region) in regions {
            if rng.chance(0.07) {
                continue;
            }
            let (a, b) = (
                format!("site:{site}"),
                format!("region:{provider}/{region}"),
            );
            let (from, to) = if rng.chance(0.8) { (a, b) } else { (b, a) };
            let id = format!("link-{site}--{provider}-{region}");
            let mut body = json!({
                "id": id,
                "kind": "networkLink",
                "name": format!("Synthetic link {id}"),
                "from": from,
                "to": to,
                "latencyMs": round(rng.uniform(5.0, 150.0), 1),
            });
            if rng.chance(0.7) {
                body["availability"] = json!(round(rng.uniform(0.995, 0.99999), 5));
            }
            links.push(resource(body));
        }
    }
    Knowledge {
        devices,
        edge_nodes,
        offerings,
        links,
        rules: Vec::new(),
    }
}

/// Past cases similar to an instance's context, binding some of its candidates, so the
/// case term of the objective is exercised: 0 to 3 of them, from `seed`.
pub fn instance_cases(seed: u64, ctx: &AppContext, knowledge: &Knowledge) -> CaseIndex {
    let mut rng = Rng::stream(seed, 0xCA5E);
    let mut index = CaseIndex::new();
    let Ok(Value::Object(context)) = serde_json::to_value(ctx) else {
        return index;
    };
    for i in 0..rng.below(4) {
        let mut bindings = Vec::new();
        let mut bind = |rng: &mut Rng, role: BindingRole, list: &[Resource]| {
            if !list.is_empty() && rng.chance(0.7) {
                let r = rng.pick(list);
                bindings.push(json!({
                    "requirement": role.as_str(), "role": role.as_str(),
                    "resource": r.id.as_str(), "quantity": 1
                }));
            }
        };
        for list in &knowledge.devices {
            bind(&mut rng, BindingRole::Device, list);
        }
        bind(&mut rng, BindingRole::Edge, &knowledge.edge_nodes);
        bind(&mut rng, BindingRole::Cloud, &knowledge.offerings);
        if bindings.is_empty() {
            continue;
        }
        index.upsert(&resource(json!({
            "id": format!("case-{i}"),
            "kind": "case",
            "name": format!("Synthetic case {i}"),
            "domain": ctx.domain,
            "context": context.clone(),
            "configuration": {"bindings": bindings},
            "outcome": {
                "status": *rng.pick(&["success", "success", "partial"]),
                "rating": round(rng.uniform(2.0, 5.0), 1),
            },
        })));
    }
    index
}

/// The centre of a cluster of cases.
#[derive(Debug, Clone)]
struct Prototype {
    domain: &'static str,
    /// Property, site, protocols, count, rate.
    requirements: Vec<(&'static str, &'static str, Vec<Protocol>, f64, f64)>,
    latency_ms: f64,
    availability: f64,
    budget: f64,
    regions: Vec<&'static str>,
}

const CASE_PROPERTIES: [&str; 18] = [
    "temperature",
    "humidity",
    "pm25",
    "co2",
    "vibration",
    "soilMoisture",
    "heartRate",
    "pressure",
    "occupancy",
    "soundLevel",
    "oxygenSaturation",
    "ecg",
    "current",
    "voltage",
    "flowRate",
    "gpsPosition",
    "parkingOccupancy",
    "waterLevel",
];
const AVAILABILITIES: [f64; 4] = [0.99, 0.995, 0.999, 0.9999];

fn prototype(seed: u64, cluster: usize) -> Prototype {
    let mut rng = Rng::stream(seed, 0xC1_0000 + cluster as u64);
    let n_sites = rng.range((1, 2));
    let sites = rng.subset(&SITES, n_sites);
    let k = rng.range((2, 4));
    let requirements = rng
        .subset(&CASE_PROPERTIES, k)
        .into_iter()
        .map(|property| {
            let k = rng.range((1, 2));
            (
                property,
                *rng.pick(&sites),
                rng.subset(&DEVICE_PROTOCOLS, k),
                round(rng.uniform(5.0, 100.0), 0),
                round(rng.uniform(0.01, 2.0), 2),
            )
        })
        .collect();
    let k = rng.range((1, 2));
    Prototype {
        domain: DOMAINS[rng.below(DOMAINS.len())],
        requirements,
        latency_ms: *rng.pick(&[100.0, 200.0, 500.0, 1000.0, 5000.0]),
        availability: *rng.pick(&AVAILABILITIES),
        budget: round(rng.uniform(50.0, 2000.0), 0),
        regions: rng.subset(&REGIONS, k).into_iter().map(|r| r.1).collect(),
    }
}

/// A context near a prototype: requirements dropped, added or moved, figures scaled,
/// now and then another domain.
fn perturb(p: &Prototype, rng: &mut Rng) -> Value {
    let mut requirements = p.requirements.clone();
    if requirements.len() > 1 && rng.chance(0.4) {
        let at = rng.below(requirements.len());
        requirements.remove(at);
    }
    if rng.chance(0.4) {
        let site = requirements.first().map_or("site-a", |r| r.1);
        let k = rng.range((1, 2));
        requirements.push((
            *rng.pick(&CASE_PROPERTIES),
            site,
            rng.subset(&DEVICE_PROTOCOLS, k),
            round(rng.uniform(5.0, 100.0), 0),
            0.1,
        ));
    }
    if rng.chance(0.3) {
        let from = rng.pick(&requirements).1;
        let to = *rng.pick(&SITES);
        for r in &mut requirements {
            if r.1 == from {
                r.1 = to;
            }
        }
    }
    if rng.chance(0.3) {
        let at = rng.below(requirements.len());
        let k = rng.range((1, 2));
        requirements[at].2 = rng.subset(&DEVICE_PROTOCOLS, k);
    }
    let mut seen = BTreeSet::new();
    let sensing: Vec<Value> = requirements
        .iter()
        .filter(|r| seen.insert((r.0, r.1)))
        .map(|(property, site, protocols, count, rate)| {
            json!({
                "property": property,
                "site": site,
                "protocols": protocol_names(protocols),
                "count": (count * rng.uniform(0.6, 1.4)).round().max(1.0),
                "minSamplingRateHz": rate,
            })
        })
        .collect();
    let mut qos = Map::new();
    if rng.chance(0.9) {
        qos.insert(
            "maxLatencyMs".into(),
            json!(round(p.latency_ms * rng.uniform(0.7, 1.3), 0)),
        );
    }
    let availability = if rng.chance(0.2) {
        *rng.pick(&AVAILABILITIES)
    } else {
        p.availability
    };
    qos.insert("minAvailability".into(), json!(availability));
    if rng.chance(0.9) {
        qos.insert(
            "maxMonthlyCost".into(),
            json!(round(p.budget * rng.uniform(0.6, 1.5), 0)),
        );
        qos.insert("currency".into(), json!("USD"));
    }
    if rng.chance(0.85) {
        qos.insert("allowedRegions".into(), json!(p.regions));
    }
    let domain = if rng.chance(0.1) {
        *rng.pick(&DOMAINS)
    } else {
        p.domain
    };
    json!({"domain": domain, "sensing": sensing, "qos": qos})
}

/// `n` cases in `clusters` clusters (case `i` in cluster `i % clusters`), each with its
/// cluster. Their contexts scatter around one prototype per cluster; several clusters
/// share a domain and properties overlap, so retrieval has to weigh every feature.
pub fn cases(seed: u64, n: usize, clusters: usize) -> Vec<(Resource, usize)> {
    let clusters = clusters.max(1);
    let prototypes: Vec<Prototype> = (0..clusters).map(|c| prototype(seed, c)).collect();
    (0..n)
        .map(|i| {
            let cluster = i % clusters;
            let mut rng = Rng::stream(seed, 0xCA_0000_0000 + i as u64);
            let context = perturb(&prototypes[cluster], &mut rng);
            let status = *rng.pick(&["success", "success", "success", "partial", "failure"]);
            let case = resource(json!({
                "id": format!("case-{i:05}"),
                "kind": "case",
                "name": format!("Synthetic case {i} (cluster {cluster})"),
                "domain": context["domain"],
                "context": context,
                "configuration": {"bindings": [
                    {"requirement": "ingest", "role": "cloud", "resource": format!("offering-{}", rng.below(50)), "quantity": 1}
                ]},
                "outcome": {"status": status, "rating": round(rng.uniform(1.0, 5.0), 1)},
            }));
            (case, cluster)
        })
        .collect()
}

/// The `nth` held-out query context of a cluster of [`cases`] with the same `seed`:
/// drawn around the same prototype, from a stream no case uses.
pub fn query_for(seed: u64, cluster: usize, nth: usize) -> Value {
    let mut rng = Rng::stream(seed, 0x0E_0000_0000 + ((cluster as u64) << 20) + nth as u64);
    perturb(&prototype(seed, cluster), &mut rng)
}

/// Every hard constraint a configuration breaks, re-derived from its bindings and the
/// knowledge alone (empty when it is valid): each device serves its requirement at the
/// rate asked and in the number asked, talks to its edge, each edge to the ingest; the
/// cloud offerings are in one allowed region, within the residency and the context's
/// currency; the latency, availability and monthly cost computed from the resources meet
/// the limits and match the totals reported; every constraint reported is satisfied.
pub fn audit(ctx: &AppContext, knowledge: &Knowledge, c: &Configuration) -> Vec<String> {
    let mut out = Vec::new();
    for r in c.constraints.iter().filter(|r| !r.satisfied) {
        out.push(format!(
            "constraint {} ({}) is reported broken",
            r.name, r.subject
        ));
    }
    let bindings = |role: BindingRole| c.bindings.iter().filter(move |b| b.binding.role == role);
    let currency = ctx.currency();
    let mut hardware = 0.0;
    let mut energy = 0.0;

    // The cloud: one region, allowed, within the residency, in the context's currency.
    let mut monthly = 0.0;
    let mut loss = 0.0;
    let mut ingest_protocols: Option<BTreeSet<Protocol>> = None;
    let mut roles: BTreeSet<String> = BTreeSet::new();
    let q = &ctx.qos;
    for b in bindings(BindingRole::Cloud) {
        let b = &b.binding;
        let Some(ResourceBody::CloudOffering(o)) = knowledge
            .offerings
            .iter()
            .find(|r| r.id.as_str() == b.resource)
            .map(|r| &r.body)
        else {
            out.push(format!(
                "{}: {} is no cloud offering of the knowledge",
                b.requirement, b.resource
            ));
            continue;
        };
        roles.insert(b.requirement.clone());
        if format!("{}/{}", o.provider, o.region) != c.region {
            out.push(format!(
                "{}: {} is in {}/{}, not {}",
                b.requirement, b.resource, o.provider, o.region, c.region
            ));
        }
        if q.allowed_regions
            .as_ref()
            .is_some_and(|a| !a.contains(&o.region))
        {
            out.push(format!(
                "{}: region {} is not allowed",
                b.requirement, o.region
            ));
        }
        if q.allowed_providers
            .as_ref()
            .is_some_and(|a| !a.contains(&o.provider))
        {
            out.push(format!(
                "{}: provider {} is not allowed",
                b.requirement, o.provider
            ));
        }
        if let Some(j) = q
            .data_residency
            .as_deref()
            .and_then(jurisdiction_of_residency)
            && !region_within(&o.region, j)
        {
            out.push(format!(
                "{}: region {} is outside {j}",
                b.requirement, o.region
            ));
        }
        if o.currency != currency {
            out.push(format!(
                "{}: priced in {}, the context in {currency}",
                b.requirement, o.currency
            ));
        }
        monthly += o.price_per_month * f64::from(b.quantity);
        match b.requirement.as_str() {
            "ingest" => {
                loss += -o.availability_sla.ln();
                ingest_protocols = Some(o.protocols.clone());
            }
            "processing" => loss += -o.availability_sla.ln(),
            "storage" => {}
            other => out.push(format!("unknown cloud role {other}")),
        }
    }
    if !roles.contains("ingest") {
        out.push("no ingest offering".into());
    }
    let wants_storage = ctx
        .storage
        .as_ref()
        .and_then(|s| s.volume_gb)
        .is_some_and(|v| v > 0.0);
    if wants_storage != roles.contains("storage") {
        out.push(format!(
            "storage bound: {}, needed: {wants_storage}",
            roles.contains("storage")
        ));
    }
    let wants_processing = ctx
        .processing
        .as_ref()
        .is_some_and(|p| p.cpu_cores.is_some() || p.memory_mb.is_some());
    let placed = match c.processing {
        "edge" => wants_processing && !roles.contains("processing"),
        "cloud" => wants_processing && roles.contains("processing"),
        "none" => !wants_processing && !roles.contains("processing"),
        _ => false,
    };
    if !placed {
        out.push(format!(
            "processing placed on {} (needed: {wants_processing})",
            c.processing
        ));
    }

    // Edges: known, online when registered, speaking to the ingest.
    let mut edges: BTreeMap<&str, &iotcane_model::EdgeNode> = BTreeMap::new();
    for b in bindings(BindingRole::Edge) {
        let b = &b.binding;
        let Some(node) = knowledge
            .edge_nodes
            .iter()
            .find(|r| r.id.as_str() == b.resource)
        else {
            out.push(format!(
                "{}: {} is no edge node of the knowledge",
                b.requirement, b.resource
            ));
            continue;
        };
        let ResourceBody::EdgeNode(e) = &node.body else {
            continue;
        };
        let site = b.requirement.strip_prefix("edge:").unwrap_or_default();
        let site = site.split('[').next().unwrap_or_default();
        if b.registered {
            if e.placement.site.as_deref() != Some(site) {
                out.push(format!(
                    "{}: {} is not registered at {site}",
                    b.requirement, b.resource
                ));
            }
            if e.placement
                .live
                .as_ref()
                .is_none_or(|l| l.status != DeviceStatus::Online)
            {
                out.push(format!("{}: {} is not online", b.requirement, b.resource));
            }
        } else {
            if e.placement.site.is_some() {
                out.push(format!(
                    "{}: {} is registered, bound as catalog",
                    b.requirement, b.resource
                ));
            }
            if e.placement
                .currency
                .as_deref()
                .is_none_or(|x| x == currency)
            {
                hardware += e.placement.price.unwrap_or(0.0) * f64::from(b.quantity);
            }
        }
        if let Some(accepted) = &ingest_protocols
            && !accepted.is_empty()
            && accepted.is_disjoint(&e.northbound_protocols)
        {
            out.push(format!(
                "{}: {} shares no protocol with the ingest",
                b.requirement, b.resource
            ));
        }
        loss += -e.placement.availability.unwrap_or(1.0).ln();
        energy += e.power_w.unwrap_or(0.0) * f64::from(b.quantity);
        edges.insert(b.requirement.as_str(), e);
    }

    // Devices: serve the requirement, at its rate, in its number, talking to the edge.
    let mut site_hop: BTreeMap<String, f64> = ctx.sites().into_iter().map(|s| (s, 0.0)).collect();
    for (i, r) in ctx.requirements().iter().enumerate() {
        let candidates = knowledge.devices.get(i).map_or(&[][..], Vec::as_slice);
        let mut count = 0;
        let mut usable: Option<BTreeSet<Protocol>> = None;
        for b in bindings(BindingRole::Device).filter(|b| b.binding.requirement == r.key) {
            let b = &b.binding;
            let Some(ResourceBody::Device(d)) = candidates
                .iter()
                .find(|d| d.id.as_str() == b.resource)
                .map(|d| &d.body)
            else {
                out.push(format!("{}: {} is no candidate device", r.key, b.resource));
                continue;
            };
            let serves = match r.need {
                Need::Sensing => d.observes.contains(&r.property),
                Need::Actuation => d.actuates.contains(&r.property),
            };
            if !serves {
                out.push(format!(
                    "{}: {} does not serve {}",
                    r.key, b.resource, r.property
                ));
            }
            if r.min_rate_hz > 0.0 && d.sampling_rate_hz.is_some_and(|hz| hz < r.min_rate_hz) {
                out.push(format!(
                    "{}: {} samples below {} Hz",
                    r.key, b.resource, r.min_rate_hz
                ));
            }
            if b.registered {
                if d.placement.site.as_deref() != Some(r.site.as_str()) {
                    out.push(format!(
                        "{}: {} is not registered at {}",
                        r.key, b.resource, r.site
                    ));
                }
                if d.placement
                    .live
                    .as_ref()
                    .is_none_or(|l| l.status != DeviceStatus::Online)
                {
                    out.push(format!("{}: {} is not online", r.key, b.resource));
                }
            } else {
                if d.placement.site.is_some() {
                    out.push(format!(
                        "{}: {} is registered, bound as catalog",
                        r.key, b.resource
                    ));
                }
                if d.placement
                    .currency
                    .as_deref()
                    .is_none_or(|x| x == currency)
                {
                    hardware += d.placement.price.unwrap_or(0.0) * f64::from(b.quantity);
                }
            }
            energy += d.power_w.unwrap_or(0.0) * f64::from(b.quantity);
            count += b.quantity;
            usable = Some(match usable {
                None => d.protocols.clone(),
                Some(u) => u.intersection(&d.protocols).copied().collect(),
            });
        }
        if count != r.count {
            out.push(format!(
                "{}: {count} devices bound, {} needed",
                r.key, r.count
            ));
        }
        let mut usable = usable.unwrap_or_default();
        if !r.protocols.is_empty() {
            usable.retain(|p| r.protocols.contains(p));
        }
        let edge = edges.iter().find(|(key, _)| {
            let Some(rest) = key.strip_prefix(&format!("edge:{}", r.site)) else {
                return false;
            };
            match rest.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
                Some(list) => r
                    .protocols
                    .iter()
                    .all(|p| list.split('+').any(|n| n == p.as_str())),
                None => rest.is_empty(),
            }
        });
        let Some((_, edge)) = edge else {
            out.push(format!("{}: no edge binding at {}", r.key, r.site));
            continue;
        };
        let hop = usable
            .intersection(&edge.southbound_protocols)
            .map(|p| hop_latency_ms(*p))
            .reduce(f64::min);
        match hop {
            Some(ms) => {
                let h = site_hop.entry(r.site.clone()).or_default();
                *h = h.max(ms);
            }
            None => out.push(format!(
                "{}: its devices share no protocol with its edge",
                r.key
            )),
        }
    }

    // Links: one per site, to the configuration's region; the slowest path is the latency.
    let mut latency = 0.0_f64;
    for (site, hop) in &site_hop {
        let link = bindings(BindingRole::Link)
            .find(|b| b.binding.requirement == format!("network:{site}"))
            .and_then(|b| {
                knowledge
                    .links
                    .iter()
                    .find(|l| l.id.as_str() == b.binding.resource)
            });
        let Some(ResourceBody::NetworkLink(l)) = link.map(|l| &l.body) else {
            out.push(format!("no known link bound for site {site}"));
            continue;
        };
        let (a, b) = (format!("site:{site}"), format!("region:{}", c.region));
        if !((l.from == a && l.to == b) || (l.from == b && l.to == a)) {
            out.push(format!(
                "the link of {site} does not join it to {}",
                c.region
            ));
        }
        loss += -l.availability.unwrap_or(1.0).ln();
        latency = latency.max(hop + l.latency_ms);
    }
    let availability = (-loss).exp();

    let t = &c.totals;
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
    for (name, derived, reported) in [
        ("latency", latency, t.latency_ms),
        ("monthly cost", monthly, t.monthly_cost),
        ("availability", availability, t.availability),
        ("hardware cost", hardware, t.hardware_cost),
        ("energy", energy, t.energy_w),
    ] {
        if !close(derived, reported) {
            out.push(format!("{name}: derived {derived}, reported {reported}"));
        }
    }
    if let Some(max) = q.max_latency_ms
        && latency > max + 1e-9
    {
        out.push(format!("latency {latency} ms exceeds {max} ms"));
    }
    if let Some(max) = q.max_monthly_cost
        && monthly > max + 1e-9
    {
        out.push(format!("monthly cost {monthly} exceeds {max}"));
    }
    if let Some(min) = q.min_availability
        && availability + 1e-9 < min
    {
        out.push(format!("availability {availability} is below {min}"));
    }
    out
}
