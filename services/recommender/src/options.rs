//! Candidate options: each binding slot of a configuration (a device requirement, a
//! site's edge, a cloud role) and the resources that could fill it, with everything a
//! candidate adds to the totals. Candidates breaking a constraint of their own (sampling
//! rate, protocol, region, residency, capacity after load, online status, a rule) are
//! set aside here with the constraint that ruled them out.

use std::collections::{BTreeMap, BTreeSet};

use iotcane_model::{
    BindingRole, DeviceStatus, OfferingKind, Protocol, Resource, ResourceBody, ResourceId,
    RuleAction,
};
use serde::Serialize;

use crate::cases::{CaseIndex, Retrieved};
use crate::context::{AppContext, Need, ProcessingMode, Requirement};
use crate::model::{
    AMORTISATION_MONTHS, CASE_WEIGHT, MAX_QUANTITY, PREFERENCE_WEIGHT, UNSTATED_AVAILABILITY,
    hop_latency_ms, jurisdiction_of_residency, region_within,
};
use crate::rules::{Conclusion, Subject, targets};

/// What one option adds to the additive totals.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Adds {
    /// Recurring cost per month (cloud offerings).
    pub monthly: f64,
    /// One-time hardware cost (catalog devices and edge nodes to buy).
    pub hardware: f64,
    pub energy_w: f64,
    /// −ln(availability): availabilities multiply, so their logarithms add.
    pub loss: f64,
    /// 1 when a preference exists for the slot and this option is not preferred.
    pub unpreferred: f64,
    /// −(case affinity): minus how strongly similar cases chose this resource.
    pub neg_affinity: f64,
}

impl Adds {
    pub fn plus(self, o: Adds) -> Adds {
        Adds {
            monthly: self.monthly + o.monthly,
            hardware: self.hardware + o.hardware,
            energy_w: self.energy_w + o.energy_w,
            loss: self.loss + o.loss,
            unpreferred: self.unpreferred + o.unpreferred,
            neg_affinity: self.neg_affinity + o.neg_affinity,
        }
    }

    pub fn min(self, o: Adds) -> Adds {
        Adds {
            monthly: self.monthly.min(o.monthly),
            hardware: self.hardware.min(o.hardware),
            energy_w: self.energy_w.min(o.energy_w),
            loss: self.loss.min(o.loss),
            unpreferred: self.unpreferred.min(o.unpreferred),
            neg_affinity: self.neg_affinity.min(o.neg_affinity),
        }
    }

    pub fn max(self, o: Adds) -> Adds {
        Adds {
            monthly: self.monthly.max(o.monthly),
            hardware: self.hardware.max(o.hardware),
            energy_w: self.energy_w.max(o.energy_w),
            loss: self.loss.max(o.loss),
            unpreferred: self.unpreferred.max(o.unpreferred),
            neg_affinity: self.neg_affinity.max(o.neg_affinity),
        }
    }

    /// The cost criterion: recurring cost plus hardware amortised over
    /// [`AMORTISATION_MONTHS`].
    pub fn cost_criterion(self) -> f64 {
        self.monthly + self.hardware / AMORTISATION_MONTHS
    }
}

/// A binding in the output: a requirement served by a resource, in a quantity.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutBinding {
    pub requirement: String,
    pub role: BindingRole,
    pub resource: String,
    pub quantity: u32,
    /// Already registered by the tenant (nothing to buy).
    pub registered: bool,
}

/// One candidate for a slot.
#[derive(Debug, Clone)]
pub struct Opt {
    /// The resource (for a group of registered devices: the first of them).
    pub resource: ResourceId,
    /// The catalog model of a registered resource.
    pub model: Option<ResourceId>,
    pub manufacturer: Option<String>,
    pub provider: Option<String>,
    pub region: Option<String>,
    pub bindings: Vec<OutBinding>,
    pub registered: bool,
    /// Devices: the protocols usable for the requirement; edges: southbound; cloud: the
    /// protocols it accepts (empty = any).
    pub protocols: BTreeSet<Protocol>,
    /// Edges: northbound protocols.
    pub north: BTreeSet<Protocol>,
    pub adds: Adds,
    /// Devices: the sampling rate reached.
    pub rate_hz: Option<f64>,
    /// Hardware priced in another currency than the context's: not converted, so kept out
    /// of the cost criterion and reported apart.
    pub foreign_hardware: Option<(String, f64)>,
    /// Capacity figures for the constraint report: needed and available.
    pub capacity: Option<(String, f64, f64)>,
    /// Why it is a candidate at all, in words.
    pub why: String,
    /// The preferred vendor or `prefer` rule that makes it preferred.
    pub preferred_by: Option<String>,
    /// The case whose binding it reuses, and that case's weight.
    pub from_case: Option<(String, f64)>,
}

impl Opt {
    /// Its rank inside its slot: the weighted contribution it makes on its own.
    pub fn own_score(&self, w: &crate::context::Weights) -> f64 {
        // Only an order for trying candidates, not the objective: the availability loss
        // (−ln A, about 0.001 for three nines) is scaled up to weigh like the others.
        const LOSS_SCALE: f64 = 1_000.0;
        w.cost * self.adds.cost_criterion()
            + w.energy * self.adds.energy_w
            + w.availability * self.adds.loss * LOSS_SCALE
            + PREFERENCE_WEIGHT * self.adds.unpreferred
            + CASE_WEIGHT * self.adds.neg_affinity
    }
}

/// A candidate set aside, with the constraint that ruled it out.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    pub requirement: String,
    pub resource: String,
    pub constraint: String,
    pub detail: String,
}

/// Where processing runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Placement {
    /// No processing to place.
    None,
    /// On the sites' edge nodes.
    Edge,
    /// On a cloud offering (index into the region's processing options).
    Cloud(usize),
}

/// Requirements at one site served by one edge binding.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeGroup {
    /// Index into `Options::sites`.
    pub site: usize,
    /// The binding's requirement name: `edge:{site}`, or `edge:{site}[{protocols}]` when
    /// the site has several groups.
    pub key: String,
    pub requirements: Vec<usize>,
}

/// Groups each site's requirements: two share an edge binding when their allowed
/// protocols overlap (or either allows any).
fn edge_groups(requirements: &[Requirement], sites: &[String]) -> Vec<EdgeGroup> {
    let mut out = Vec::new();
    for (site_index, site) in sites.iter().enumerate() {
        let mut groups: Vec<(Vec<usize>, BTreeSet<Protocol>, bool)> = Vec::new();
        for (i, r) in requirements
            .iter()
            .enumerate()
            .filter(|(_, r)| r.site == *site)
        {
            let any = r.protocols.is_empty();
            let joins: Vec<usize> = groups
                .iter()
                .enumerate()
                .filter(|(_, g)| any || g.2 || !g.1.is_disjoint(&r.protocols))
                .map(|(j, _)| j)
                .collect();
            let mut merged = (vec![i], r.protocols.clone(), any);
            for j in joins.into_iter().rev() {
                let g = groups.remove(j);
                merged.0.extend(g.0);
                merged.1.extend(g.1);
                merged.2 |= g.2;
            }
            merged.0.sort_unstable();
            groups.push(merged);
        }
        groups.sort_by_key(|g| g.0[0]);
        let several = groups.len() > 1;
        for (members, protocols, _) in groups {
            out.push(EdgeGroup {
                site: site_index,
                key: if several {
                    format!(
                        "edge:{site}[{}]",
                        protocols
                            .iter()
                            .map(|p| p.as_str())
                            .collect::<Vec<_>>()
                            .join("+")
                    )
                } else {
                    format!("edge:{site}")
                },
                requirements: members,
            });
        }
    }
    out
}

/// A cloud region: provider and region name.
pub type RegionKey = (String, String);

/// Everything the search needs, built once per recommendation.
#[derive(Debug)]
pub struct Options {
    pub requirements: Vec<Requirement>,
    pub sites: Vec<String>,
    /// The edge bindings: one per site, or one per group of requirements at a site whose
    /// allowed protocols no single set of devices could share.
    pub groups: Vec<EdgeGroup>,
    /// Per requirement: its device options.
    pub devices: Vec<Vec<Opt>>,
    /// Per edge group: edge options when processing runs in the cloud (or nowhere) and
    /// when it runs on the edge.
    pub edges_cloud: Vec<Vec<Opt>>,
    pub edges_hosting: Vec<Vec<Opt>>,
    /// Per allowed region with a link from every site: the cloud options by role, and
    /// the link of each site.
    pub regions: BTreeMap<RegionKey, RegionOptions>,
    pub rejected: Vec<Rejection>,
    /// Whether processing must be placed.
    pub processing: bool,
    pub storage: bool,
    pub retrieved: Vec<Retrieved>,
    pub conclusions: Vec<Conclusion>,
    /// Rules that removed candidates, with how many.
    pub rule_effects: BTreeMap<String, usize>,
}

#[derive(Debug, Default)]
pub struct RegionOptions {
    pub ingest: Vec<Opt>,
    pub storage: Vec<Opt>,
    pub processing: Vec<Opt>,
    /// Per site (same order as `Options::sites`): the link's latency, availability and id.
    pub links: Vec<(f64, f64, ResourceId)>,
}

/// The knowledge a recommendation is computed from: candidates the app layer retrieved.
#[derive(Debug, Clone, Default)]
pub struct Knowledge {
    /// Per requirement (in [`AppContext::requirements`] order): devices that observe or
    /// actuate its property, catalog models and registered devices at its site.
    pub devices: Vec<Vec<Resource>>,
    /// Catalog edge types and registered edge nodes at the context's sites.
    pub edge_nodes: Vec<Resource>,
    pub offerings: Vec<Resource>,
    /// Links from the context's sites.
    pub links: Vec<Resource>,
    pub rules: Vec<Resource>,
}

/// Whether a device observes (sensing) or actuates (actuation) a property.
pub fn serves(device: &Resource, need: Need, property: &str) -> bool {
    match (&device.body, need) {
        (ResourceBody::Device(d), Need::Sensing) => d.observes.contains(property),
        (ResourceBody::Device(d), Need::Actuation) => d.actuates.contains(property),
        _ => false,
    }
}

impl Knowledge {
    /// The candidates of a context among a list of resources, chosen as the app layer's
    /// retrieval chooses them from the graph (for evaluation and tests, which have no
    /// graph).
    pub fn from_resources(resources: &[Resource], ctx: &AppContext) -> Knowledge {
        let sites = ctx.sites();
        let devices = ctx
            .requirements()
            .iter()
            .map(|r| {
                resources
                    .iter()
                    .filter(|res| match &res.body {
                        ResourceBody::Device(d) => {
                            serves(res, r.need, &r.property)
                                && d.placement.site.as_ref().is_none_or(|s| *s == r.site)
                        }
                        _ => false,
                    })
                    .cloned()
                    .collect()
            })
            .collect();
        let of = |pick: &dyn Fn(&Resource) -> bool| -> Vec<Resource> {
            resources.iter().filter(|r| pick(r)).cloned().collect()
        };
        Knowledge {
            devices,
            edge_nodes: of(&|r| match &r.body {
                ResourceBody::EdgeNode(e) => {
                    e.placement.site.as_ref().is_none_or(|s| sites.contains(s))
                }
                _ => false,
            }),
            offerings: of(&|r| matches!(r.body, ResourceBody::CloudOffering(_))),
            links: of(&|r| match &r.body {
                ResourceBody::NetworkLink(l) => sites
                    .iter()
                    .any(|s| l.from == format!("site:{s}") || l.to == format!("site:{s}")),
                _ => false,
            }),
            rules: of(&|r| matches!(r.body, ResourceBody::Rule(_))),
        }
    }
}

struct Builder<'a> {
    ctx: &'a AppContext,
    conclusions: &'a [Conclusion],
    affinity: BTreeMap<(BindingRole, String), (f64, String)>,
    vendors: Vec<String>,
    rejected: Vec<Rejection>,
    rule_effects: BTreeMap<String, usize>,
}

impl Builder<'_> {
    fn reject(
        &mut self,
        requirement: &str,
        resource: &ResourceId,
        constraint: &str,
        detail: String,
    ) {
        self.rejected.push(Rejection {
            requirement: requirement.to_owned(),
            resource: resource.to_string(),
            constraint: constraint.to_owned(),
            detail,
        });
    }

    /// The exclusion rule that rules the subject out, if any.
    fn excluded_by(&self, subject: &Subject<'_>) -> Option<&Conclusion> {
        self.conclusions
            .iter()
            .find(|c| c.action == RuleAction::Exclude && targets(&c.target, subject))
    }

    /// Applies preferences, cases and exclusions to a candidate; `None` when excluded.
    fn finish(&mut self, requirement: &str, role: BindingRole, mut opt: Opt) -> Option<Opt> {
        let subject = Subject {
            role,
            id: &opt.resource,
            model: opt.model.as_ref(),
            manufacturer: opt.manufacturer.as_deref(),
            protocols: &opt.protocols,
            provider: opt.provider.as_deref(),
            region: opt.region.as_deref(),
        };
        if let Some(rule) = self.excluded_by(&subject) {
            let (rule_id, reason) = (rule.rule.to_string(), rule.reason.clone());
            *self.rule_effects.entry(rule_id.clone()).or_default() += 1;
            let resource = opt.resource.clone();
            self.reject(requirement, &resource, &format!("rule:{rule_id}"), reason);
            return None;
        }
        let prefer_rule = self
            .conclusions
            .iter()
            .find(|c| c.action == RuleAction::Prefer && targets(&c.target, &subject))
            .map(|c| format!("rule {}", c.rule));
        let vendor = [opt.manufacturer.as_deref(), opt.provider.as_deref()]
            .into_iter()
            .flatten()
            .find(|v| self.vendors.iter().any(|p| p.eq_ignore_ascii_case(v)))
            .map(|v| format!("preferred vendor {v}"));
        opt.preferred_by = prefer_rule.or(vendor);
        let has_preferences = !self.vendors.is_empty()
            || self
                .conclusions
                .iter()
                .any(|c| c.action == RuleAction::Prefer);
        opt.adds.unpreferred = if has_preferences && opt.preferred_by.is_none() {
            1.0
        } else {
            0.0
        };
        let own = self.affinity.get(&(role, opt.resource.to_string()));
        let model = opt
            .model
            .as_ref()
            .and_then(|m| self.affinity.get(&(role, m.to_string())));
        if let Some((weight, case)) = [own, model]
            .into_iter()
            .flatten()
            .max_by(|a, b| a.0.total_cmp(&b.0))
        {
            opt.adds.neg_affinity = -weight;
            opt.from_case = Some((case.clone(), *weight));
        }
        Some(opt)
    }
}

/// Builds the options of a context from the retrieved knowledge.
pub fn build(
    ctx: &AppContext,
    knowledge: &Knowledge,
    retrieved: Vec<Retrieved>,
    cases: &CaseIndex,
    conclusions: Vec<Conclusion>,
) -> Options {
    let requirements = ctx.requirements();
    let sites = ctx.sites();
    let mut affinity: BTreeMap<(BindingRole, String), (f64, String)> = BTreeMap::new();
    for r in &retrieved {
        let Some(case) = r
            .case
            .parse::<ResourceId>()
            .ok()
            .and_then(|id| cases.get(&id))
        else {
            continue;
        };
        let weight = r.similarity * r.outcome_factor;
        for (_, role, resource) in &case.bindings {
            let entry = affinity
                .entry((*role, resource.to_string()))
                .or_insert((0.0, r.case.clone()));
            if weight > entry.0 {
                *entry = (weight, r.case.clone());
            }
        }
    }
    let mut b = Builder {
        ctx,
        conclusions: &conclusions,
        affinity,
        vendors: ctx.preferences.preferred_vendors.clone(),
        rejected: Vec::new(),
        rule_effects: BTreeMap::new(),
    };
    let devices = requirements
        .iter()
        .enumerate()
        .map(|(i, r)| {
            device_options(
                &mut b,
                r,
                knowledge.devices.get(i).map_or(&[][..], Vec::as_slice),
            )
        })
        .collect();
    let processing = ctx
        .processing
        .as_ref()
        .is_some_and(|p| p.cpu_cores.is_some() || p.memory_mb.is_some());
    let storage = ctx
        .storage
        .as_ref()
        .is_some_and(|s| s.volume_gb.is_some_and(|v| v > 0.0));
    let groups = edge_groups(&requirements, &sites);
    let mut edges_cloud = Vec::new();
    let mut edges_hosting = Vec::new();
    for group in &groups {
        let site = &sites[group.site];
        edges_cloud.push(edge_options(
            &mut b,
            &requirements,
            group,
            site,
            false,
            &knowledge.edge_nodes,
            true,
        ));
        edges_hosting.push(if processing {
            edge_options(
                &mut b,
                &requirements,
                group,
                site,
                true,
                &knowledge.edge_nodes,
                false,
            )
        } else {
            Vec::new()
        });
    }
    let regions = region_options(&mut b, &sites, knowledge, processing, storage);
    Options {
        requirements,
        sites,
        groups,
        devices,
        edges_cloud,
        edges_hosting,
        regions,
        rejected: b.rejected,
        processing,
        storage,
        retrieved,
        rule_effects: b.rule_effects,
        conclusions,
    }
}

fn power(resource: &Resource) -> f64 {
    match &resource.body {
        ResourceBody::Device(d) => d.power_w.unwrap_or(0.0),
        ResourceBody::EdgeNode(e) => e.power_w.unwrap_or(0.0),
        _ => 0.0,
    }
}

fn online(resource: &Resource) -> bool {
    let live = match &resource.body {
        ResourceBody::Device(d) => d.placement.live.as_ref(),
        ResourceBody::EdgeNode(e) => e.placement.live.as_ref(),
        _ => None,
    };
    live.is_some_and(|l| l.status == DeviceStatus::Online)
}

fn device_options(b: &mut Builder<'_>, r: &Requirement, candidates: &[Resource]) -> Vec<Opt> {
    let currency = b.ctx.currency().to_owned();
    let mut out = Vec::new();
    // Registered devices, grouped by the model they are instances of.
    let mut groups: BTreeMap<ResourceId, Vec<&Resource>> = BTreeMap::new();
    for resource in candidates {
        let ResourceBody::Device(d) = &resource.body else {
            continue;
        };
        let serves = match r.need {
            Need::Sensing => d.observes.contains(&r.property),
            Need::Actuation => d.actuates.contains(&r.property),
        };
        if !serves {
            b.reject(
                &r.key,
                &resource.id,
                "capability",
                format!("does not {} `{}`", verb(r.need), r.property),
            );
            continue;
        }
        let usable: BTreeSet<Protocol> = if r.protocols.is_empty() {
            d.protocols.clone()
        } else {
            d.protocols.intersection(&r.protocols).copied().collect()
        };
        if usable.is_empty() {
            b.reject(
                &r.key,
                &resource.id,
                "protocol",
                format!(
                    "speaks {} but the requirement allows {}",
                    names(&d.protocols),
                    names(&r.protocols)
                ),
            );
            continue;
        }
        if r.min_rate_hz > 0.0 && d.sampling_rate_hz.is_some_and(|hz| hz < r.min_rate_hz) {
            b.reject(
                &r.key,
                &resource.id,
                "samplingRate",
                format!(
                    "samples at {} Hz, below the {} Hz required",
                    d.sampling_rate_hz.unwrap_or(0.0),
                    r.min_rate_hz
                ),
            );
            continue;
        }
        match &d.placement.site {
            Some(site) if *site == r.site && b.ctx.use_.registered() => {
                let model = d
                    .placement
                    .instance_of
                    .clone()
                    .unwrap_or_else(|| resource.id.clone());
                groups.entry(model).or_default().push(resource);
            }
            Some(_) => {}
            None if d.placement.instance_of.is_none() && b.ctx.use_.catalog() => {
                let qty = r.count;
                let price = d.placement.price.unwrap_or(0.0) * f64::from(qty);
                let foreign = d.placement.currency.as_ref().filter(|c| **c != currency);
                let opt = Opt {
                    resource: resource.id.clone(),
                    model: None,
                    manufacturer: d.manufacturer.clone(),
                    provider: None,
                    region: None,
                    bindings: vec![OutBinding {
                        requirement: r.key.clone(),
                        role: BindingRole::Device,
                        resource: resource.id.to_string(),
                        quantity: qty,
                        registered: false,
                    }],
                    registered: false,
                    protocols: usable,
                    north: BTreeSet::new(),
                    adds: Adds {
                        hardware: if foreign.is_some() { 0.0 } else { price },
                        energy_w: power(resource) * f64::from(qty),
                        ..Adds::default()
                    },
                    foreign_hardware: foreign.map(|c| (c.clone(), price)),
                    rate_hz: d.sampling_rate_hz,
                    capacity: None,
                    why: format!(
                        "catalog model that {} `{}`{}; {qty} to buy at {} {} each{}",
                        verbs(r.need),
                        r.property,
                        d.sampling_rate_hz
                            .map(|hz| format!(" at up to {hz} Hz"))
                            .unwrap_or_default(),
                        d.placement.price.unwrap_or(0.0),
                        foreign.map_or(currency.as_str(), String::as_str),
                        if foreign.is_some() {
                            " (another currency: not in the cost criterion)"
                        } else {
                            ""
                        }
                    ),
                    preferred_by: None,
                    from_case: None,
                };
                if let Some(opt) = b.finish(&r.key, BindingRole::Device, opt) {
                    out.push(opt);
                }
            }
            None => {}
        }
    }
    for (model, members) in groups {
        let (up, down): (Vec<&Resource>, Vec<&Resource>) = members.iter().partition(|m| online(m));
        let needed = r.count as usize;
        if up.len() < needed {
            b.reject(
                &r.key,
                &model,
                "deviceOnline",
                format!(
                    "{} registered at `{}` ({} online, {} offline or not reporting), {} needed",
                    members.len(),
                    r.site,
                    up.len(),
                    down.len(),
                    needed
                ),
            );
            continue;
        }
        let chosen = &up[..needed];
        let usable: BTreeSet<Protocol> = chosen
            .iter()
            .filter_map(|m| match &m.body {
                ResourceBody::Device(d) => Some(&d.protocols),
                _ => None,
            })
            .fold(None::<BTreeSet<Protocol>>, |acc, p| {
                Some(match acc {
                    None => p.clone(),
                    Some(a) => a.intersection(p).copied().collect(),
                })
            })
            .unwrap_or_default()
            .into_iter()
            .filter(|p| r.protocols.is_empty() || r.protocols.contains(p))
            .collect();
        let rate = chosen
            .iter()
            .filter_map(|m| match &m.body {
                ResourceBody::Device(d) => d.sampling_rate_hz,
                _ => None,
            })
            .reduce(f64::min);
        let first = chosen[0];
        let manufacturer = match &first.body {
            ResourceBody::Device(d) => d.manufacturer.clone(),
            _ => None,
        };
        let opt = Opt {
            resource: first.id.clone(),
            model: Some(model.clone()),
            manufacturer,
            provider: None,
            region: None,
            bindings: chosen
                .iter()
                .map(|m| OutBinding {
                    requirement: r.key.clone(),
                    role: BindingRole::Device,
                    resource: m.id.to_string(),
                    quantity: 1,
                    registered: true,
                })
                .collect(),
            registered: true,
            protocols: usable,
            north: BTreeSet::new(),
            adds: Adds {
                energy_w: chosen.iter().map(|m| power(m)).sum(),
                ..Adds::default()
            },
            rate_hz: rate,
            foreign_hardware: None,
            capacity: None,
            why: format!(
                "{needed} of the {} registered `{model}` devices at `{}` that are online (nothing to buy)",
                up.len(),
                r.site
            ),
            preferred_by: None,
            from_case: None,
        };
        if opt.protocols.is_empty() {
            b.reject(
                &r.key,
                &model,
                "protocol",
                "the registered devices share no allowed protocol".into(),
            );
            continue;
        }
        if let Some(opt) = b.finish(&r.key, BindingRole::Device, opt) {
            out.push(opt);
        }
    }
    out
}

fn verb(need: Need) -> &'static str {
    match need {
        Need::Sensing => "observe",
        Need::Actuation => "actuate",
    }
}

fn verbs(need: Need) -> &'static str {
    match need {
        Need::Sensing => "observes",
        Need::Actuation => "actuates",
    }
}

pub fn names(protocols: &BTreeSet<Protocol>) -> String {
    if protocols.is_empty() {
        return "any protocol".into();
    }
    protocols
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an edge group must carry: the messages its devices send and, when processing
/// runs on the edge, the group's share of the processing (by message share).
fn group_load(
    ctx: &AppContext,
    requirements: &[Requirement],
    group: &EdgeGroup,
    hosting: bool,
) -> (f64, f64, f64) {
    let site_msgs: f64 = group
        .requirements
        .iter()
        .map(|&i| requirements[i].messages_per_second())
        .sum();
    if !hosting {
        return (site_msgs, 0.0, 0.0);
    }
    let all: f64 = requirements
        .iter()
        .map(Requirement::messages_per_second)
        .sum();
    let members = group.requirements.len() as f64 / requirements.len().max(1) as f64;
    let share = if all > 0.0 { site_msgs / all } else { members };
    let p = ctx.processing.as_ref();
    (
        site_msgs,
        p.and_then(|p| p.cpu_cores).unwrap_or(0.0) * share,
        p.and_then(|p| p.memory_mb).unwrap_or(0.0) * share,
    )
}

fn edge_options(
    b: &mut Builder<'_>,
    requirements: &[Requirement],
    group: &EdgeGroup,
    site: &str,
    hosting: bool,
    nodes: &[Resource],
    report: bool,
) -> Vec<Opt> {
    let key = group.key.clone();
    let currency = b.ctx.currency().to_owned();
    let (msgs, cpu, mem) = group_load(b.ctx, requirements, group, hosting);
    let mut out = Vec::new();
    for node in nodes {
        let ResourceBody::EdgeNode(e) = &node.body else {
            continue;
        };
        let registered = match &e.placement.site {
            Some(s) if s == site => true,
            Some(_) => continue,
            None if e.placement.instance_of.is_none() => false,
            None => continue,
        };
        if (registered && !b.ctx.use_.registered()) || (!registered && !b.ctx.use_.catalog()) {
            continue;
        }
        let load = e
            .placement
            .live
            .as_ref()
            .and_then(|l| l.load_pct)
            .unwrap_or(0.0)
            / 100.0;
        let free = (1.0 - load).max(0.0);
        let throughput = e.max_throughput_msgs;
        let cores = f64::from(e.cpu_cores);
        let memory = e.memory_mb as f64;
        let quantity;
        let capacity;
        if registered {
            if !online(node) {
                if report {
                    b.reject(
                        &key,
                        &node.id,
                        "edgeOnline",
                        "is not reporting online".into(),
                    );
                }
                continue;
            }
            let free_msgs = throughput.map(|t| t * free);
            let short =
                free_msgs.is_some_and(|f| f < msgs) || cores * free < cpu || memory * free < mem;
            if short {
                if report || hosting {
                    b.reject(&key, &node.id, "edgeCapacity", format!(
                        "at {:.0}% load it has {} msg/s, {:.2} cores and {:.0} MB free; the site needs {msgs} msg/s{}",
                        load * 100.0,
                        free_msgs.map_or("unbounded".into(), |f| format!("{f:.1}")),
                        cores * free,
                        memory * free,
                        if hosting { format!(", {cpu:.2} cores and {mem:.0} MB for processing") } else { String::new() }
                    ));
                }
                continue;
            }
            quantity = 1;
            capacity = Some((
                "messages/s".to_owned(),
                msgs,
                free_msgs.unwrap_or(f64::INFINITY),
            ));
        } else {
            let by_msgs = throughput.map_or(1.0, |t| {
                if t > 0.0 {
                    (msgs / t).ceil()
                } else {
                    f64::INFINITY
                }
            });
            let by_cpu = if cpu > 0.0 {
                (cpu / cores.max(f64::MIN_POSITIVE)).ceil()
            } else {
                1.0
            };
            let by_mem = if mem > 0.0 {
                (mem / memory.max(f64::MIN_POSITIVE)).ceil()
            } else {
                1.0
            };
            let n = by_msgs.max(by_cpu).max(by_mem).max(1.0);
            if n > MAX_QUANTITY {
                if report || hosting {
                    b.reject(&key, &node.id, "edgeCapacity", format!(
                        "would take {n} units for the site's {msgs} msg/s, more than {MAX_QUANTITY}"
                    ));
                }
                continue;
            }
            quantity = n as u32;
            capacity = Some((
                "messages/s".to_owned(),
                msgs,
                throughput.map_or(f64::INFINITY, |t| t * n),
            ));
        }
        let availability = e.placement.availability.unwrap_or(UNSTATED_AVAILABILITY);
        let price = e.placement.price.unwrap_or(0.0) * f64::from(quantity);
        let foreign = e
            .placement
            .currency
            .as_ref()
            .filter(|c| !registered && **c != currency);
        let opt = Opt {
            resource: node.id.clone(),
            model: e.placement.instance_of.clone(),
            manufacturer: e.manufacturer.clone(),
            provider: None,
            region: None,
            bindings: vec![OutBinding {
                requirement: key.clone(),
                role: BindingRole::Edge,
                resource: node.id.to_string(),
                quantity,
                registered,
            }],
            registered,
            protocols: e.southbound_protocols.clone(),
            north: e.northbound_protocols.clone(),
            adds: Adds {
                hardware: if registered || foreign.is_some() {
                    0.0
                } else {
                    price
                },
                energy_w: e.power_w.unwrap_or(0.0) * f64::from(quantity),
                loss: -availability.ln(),
                ..Adds::default()
            },
            rate_hz: None,
            foreign_hardware: foreign.map(|c| (c.clone(), price)),
            capacity,
            why: if registered {
                format!(
                    "registered at `{site}`, online at {:.0}% load, with room for the site's {msgs} msg/s",
                    load * 100.0
                )
            } else {
                format!(
                    "catalog edge type; {quantity} unit(s) carry the site's {msgs} msg/s{}",
                    if hosting {
                        format!(" and {cpu:.2} cores / {mem:.0} MB of processing")
                    } else {
                        String::new()
                    }
                )
            },
            preferred_by: None,
            from_case: None,
        };
        if let Some(opt) = b.finish(&key, BindingRole::Edge, opt) {
            out.push(opt);
        }
    }
    out
}

/// Whether an offering of `kind` can fill a cloud role.
fn fits_role(role: &str, kind: OfferingKind, mode: Option<ProcessingMode>) -> bool {
    match role {
        "ingest" => matches!(
            kind,
            OfferingKind::ManagedMqtt | OfferingKind::StreamProcessing
        ),
        "storage" => matches!(
            kind,
            OfferingKind::ObjectStorage | OfferingKind::TimeSeriesDatabase | OfferingKind::Database
        ),
        "processing" => match kind {
            OfferingKind::Vm => true,
            OfferingKind::StreamProcessing => mode != Some(ProcessingMode::Batch),
            OfferingKind::Serverless => mode != Some(ProcessingMode::Stream),
            _ => false,
        },
        _ => false,
    }
}

fn region_options(
    b: &mut Builder<'_>,
    sites: &[String],
    knowledge: &Knowledge,
    processing: bool,
    storage: bool,
) -> BTreeMap<RegionKey, RegionOptions> {
    let ctx = b.ctx;
    let q = &ctx.qos;
    let currency = ctx.currency().to_owned();
    let residency = q
        .data_residency
        .as_deref()
        .and_then(jurisdiction_of_residency);
    let mps = ctx.messages_per_second();
    let cpu = ctx
        .processing
        .as_ref()
        .and_then(|p| p.cpu_cores)
        .unwrap_or(0.0);
    let mem_gb = ctx
        .processing
        .as_ref()
        .and_then(|p| p.memory_mb)
        .unwrap_or(0.0)
        / 1024.0;
    let mode = ctx.processing.as_ref().and_then(|p| p.mode);
    let volume = ctx
        .storage
        .as_ref()
        .and_then(|s| s.volume_gb)
        .unwrap_or(0.0);
    let mut regions: BTreeMap<RegionKey, RegionOptions> = BTreeMap::new();
    let mut refused_regions: BTreeSet<RegionKey> = BTreeSet::new();
    for offering in &knowledge.offerings {
        let ResourceBody::CloudOffering(c) = &offering.body else {
            continue;
        };
        let role = ["ingest", "storage", "processing"]
            .into_iter()
            .find(|role| {
                fits_role(role, c.offering_kind, mode)
                    && match *role {
                        "storage" => storage,
                        "processing" => processing,
                        _ => true,
                    }
            });
        let Some(role) = role else {
            continue;
        };
        let key: RegionKey = (c.provider.clone(), c.region.clone());
        if let Some(allowed) = &q.allowed_providers
            && !allowed.contains(&c.provider)
        {
            b.reject(
                role,
                &offering.id,
                "provider",
                format!("provider `{}` is not among those allowed", c.provider),
            );
            continue;
        }
        if let Some(allowed) = &q.allowed_regions
            && !allowed.contains(&c.region)
        {
            b.reject(
                role,
                &offering.id,
                "region",
                format!("region `{}` is not among those allowed", c.region),
            );
            continue;
        }
        if let Some(j) = residency
            && !region_within(&c.region, j)
        {
            b.reject(
                role,
                &offering.id,
                "residency",
                format!("region `{}` is not within {j}", c.region),
            );
            continue;
        }
        if c.currency != currency {
            b.reject(
                role,
                &offering.id,
                "currency",
                format!("is priced in {}, the context in {currency}", c.currency),
            );
            continue;
        }
        if refused_regions.contains(&key) {
            continue;
        }
        if !regions.contains_key(&key) {
            let mut links = Vec::new();
            for site in sites {
                match link_between(&knowledge.links, site, &c.provider, &c.region) {
                    Some(link) => links.push(link),
                    None => break,
                }
            }
            if links.len() < sites.len() {
                let site = &sites[links.len()];
                b.reject(
                    role,
                    &offering.id,
                    "networkLink",
                    format!(
                        "no network link is known from site `{site}` to region {}/{}",
                        c.provider, c.region
                    ),
                );
                refused_regions.insert(key);
                continue;
            }
            regions.insert(
                key.clone(),
                RegionOptions {
                    links,
                    ..RegionOptions::default()
                },
            );
        }
        let (needed, unit, per_unit) = match role {
            "ingest" => (mps, "messages/s", c.throughput_msgs),
            "storage" => (volume, "GB", c.storage_gb),
            _ if c.offering_kind == OfferingKind::Vm => {
                let by_cpu = c.vcpus.map_or(1.0, |v| cpu / v);
                let by_mem = c.memory_gb.map_or(1.0, |m| mem_gb / m);
                (by_cpu.max(by_mem), "units", Some(1.0))
            }
            _ => (mps, "messages/s", c.throughput_msgs),
        };
        let n = match per_unit {
            Some(per) if per > 0.0 => (needed / per).ceil().max(1.0),
            Some(_) => f64::INFINITY,
            None => 1.0,
        };
        if n > MAX_QUANTITY {
            b.reject(
                role,
                &offering.id,
                "cloudCapacity",
                format!("would take {n} units for {needed} {unit}, more than {MAX_QUANTITY}"),
            );
            continue;
        }
        let quantity = n as u32;
        let capacity = per_unit.map(|per| (unit.to_owned(), needed, per * n));
        let opt = Opt {
            resource: offering.id.clone(),
            model: None,
            manufacturer: None,
            provider: Some(c.provider.clone()),
            region: Some(c.region.clone()),
            bindings: vec![OutBinding {
                requirement: role.to_owned(),
                role: BindingRole::Cloud,
                resource: offering.id.to_string(),
                quantity,
                registered: false,
            }],
            registered: false,
            protocols: c.protocols.clone(),
            north: BTreeSet::new(),
            adds: Adds {
                monthly: c.price_per_month * f64::from(quantity),
                // Storage is off the path from sensor to processed result.
                loss: if role == "storage" {
                    0.0
                } else {
                    -c.availability_sla.ln()
                },
                ..Adds::default()
            },
            rate_hz: None,
            foreign_hardware: None,
            capacity,
            why: format!(
                "{} in {}/{}: {quantity} × {} {currency}/month for {needed} {unit}, SLA {}",
                c.offering_kind.as_str(),
                c.provider,
                c.region,
                c.price_per_month,
                c.availability_sla
            ),
            preferred_by: None,
            from_case: None,
        };
        let Some(opt) = b.finish(role, BindingRole::Cloud, opt) else {
            continue;
        };
        if let Some(region) = regions.get_mut(&key) {
            match role {
                "ingest" => region.ingest.push(opt),
                "storage" => region.storage.push(opt),
                _ => region.processing.push(opt),
            }
        }
    }
    regions
}

/// The link between a site and a region, stored in either direction: its latency,
/// availability and id. The fastest wins when several are known.
fn link_between(
    links: &[Resource],
    site: &str,
    provider: &str,
    region: &str,
) -> Option<(f64, f64, ResourceId)> {
    let from = format!("site:{site}");
    let to = format!("region:{provider}/{region}");
    links
        .iter()
        .filter_map(|l| match &l.body {
            ResourceBody::NetworkLink(n)
                if (n.from == from && n.to == to) || (n.from == to && n.to == from) =>
            {
                Some((
                    n.latency_ms,
                    n.availability.unwrap_or(UNSTATED_AVAILABILITY),
                    l.id.clone(),
                ))
            }
            _ => None,
        })
        .min_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.2.cmp(&b.2)))
}

/// The hop latency from a device option to an edge option: the fastest protocol both
/// speak, or `None` when they share none.
pub fn hop(device: &Opt, edge: &Opt) -> Option<(f64, Protocol)> {
    device
        .protocols
        .intersection(&edge.protocols)
        .map(|p| (hop_latency_ms(*p), *p))
        .min_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)))
}

/// The fastest hop a device option could make with any edge.
pub fn min_hop(device: &Opt) -> f64 {
    device
        .protocols
        .iter()
        .map(|p| hop_latency_ms(*p))
        .fold(f64::INFINITY, f64::min)
}

/// Whether an edge option and a cloud ingest option share a protocol (an offering that
/// states none accepts any).
pub fn uplink(edge: &Opt, ingest: &Opt) -> Option<Protocol> {
    if ingest.protocols.is_empty() {
        return edge.north.iter().next().copied().or(Some(Protocol::Mqtt));
    }
    edge.north.intersection(&ingest.protocols).next().copied()
}
