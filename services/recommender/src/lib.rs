//! The context-aware recommender: from a declarative application context and a snapshot
//! of the knowledge that could serve it, the ranked configurations that meet every hard
//! constraint, with their totals, the result of each constraint and an explanation.
//!
//! Pure: no I/O, no clock, no randomness. The app layer retrieves the candidates
//! ([`Knowledge`]) and keeps the [`CaseIndex`]; the same input always gives the same
//! output. The configuration model (bindings, totals, constraints, objective) is
//! documented in the README's "Configuration model" section and in [`model`].

pub mod cases;
pub mod context;
pub mod generate;
pub mod model;
mod options;
pub mod rules;
mod search;

use std::collections::BTreeMap;

use iotcane_model::{BindingRole, Protocol};
use serde::Serialize;
use serde_json::Value;

pub use cases::{CaseIndex, Retrieved};
pub use context::{AppContext, Weights};
pub use options::{Knowledge, OutBinding, Rejection, serves};
pub use rules::{ChangedCase, ContextFacts};

use crate::model::{AMORTISATION_MONTHS, CASE_WEIGHT, PREFERENCE_WEIGHT, TIGHT_SLACK};
use crate::options::{Opt, Options, Placement};
use crate::search::{Found, Limits, Objective, Ranges, Scenario, SlotKind, Top};

/// How hard the solver works.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Up to this many configurations in all scenarios, the exact branch and bound runs
    /// to the end; beyond, the heuristic starts and the branch and bound stops after
    /// `node_budget` nodes, reporting its gap.
    pub exact_limit: f64,
    pub node_budget: u64,
    /// Improvement passes of the heuristic.
    pub heuristic_passes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            exact_limit: 1e7,
            node_budget: 200_000,
            heuristic_passes: 50,
        }
    }
}

/// The answer to a context.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// Best first; empty when nothing meets every hard constraint.
    pub configurations: Vec<Configuration>,
    pub objective: ObjectiveReport,
    pub solver: SolverReport,
    /// The past cases retrieved, and how each fares adapted to today's resources.
    pub cases: Vec<CaseUse>,
    /// The refinement rules whose conclusions held for this context.
    pub rules: Vec<RuleUse>,
    /// The most attractive candidates set aside, each with the constraint that ruled it
    /// out (at most five per requirement).
    pub rejected: Vec<Rejection>,
    /// When nothing is valid: the constraints that conflict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict: Option<Conflict>,
    pub summary: String,
}

/// One configuration: its bindings, totals, objective and constraint results.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Configuration {
    pub rank: usize,
    pub objective: f64,
    /// `{provider}/{region}` of its cloud offerings.
    pub region: String,
    /// Where processing runs: `edge`, `cloud` or `none`.
    pub processing: &'static str,
    pub bindings: Vec<Bound>,
    pub totals: Totals,
    /// The terms of the objective.
    pub scores: Scores,
    pub paths: Vec<SitePath>,
    pub constraints: Vec<ConstraintResult>,
    pub explanation: Vec<String>,
}

/// A binding with why it was chosen.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bound {
    #[serde(flatten)]
    pub binding: OutBinding,
    /// The protocol it talks to the next hop (devices to their edge, edges to the cloud).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Recurring cost per month: cloud offerings × quantity.
    pub monthly_cost: f64,
    pub currency: String,
    /// One-time cost of catalog devices and edge nodes to buy.
    pub hardware_cost: f64,
    /// Hardware priced in other currencies, by currency: not converted, not in the cost
    /// criterion.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub other_hardware_cost: BTreeMap<String, f64>,
    /// The cost criterion: monthlyCost + hardwareCost / 36.
    pub amortised_monthly_cost: f64,
    /// End to end: the slowest site's device hop plus its link to the region.
    pub latency_ms: f64,
    /// Along the chain: each site's edge node and link, the cloud ingest and (when in the
    /// cloud) the processing offering.
    pub availability: f64,
    /// Devices and edge nodes, × quantity.
    pub energy_w: f64,
    pub messages_per_second: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Scores {
    pub cost: f64,
    pub latency: f64,
    pub energy: f64,
    pub availability: f64,
    /// Share of slots not filled by a preferred vendor or a `prefer` rule.
    pub unpreferred: f64,
    /// Mean case affinity of the bindings.
    pub case_affinity: f64,
}

/// The latency of one site's path.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SitePath {
    pub site: String,
    pub link: String,
    pub hop_ms: f64,
    pub link_ms: f64,
    pub latency_ms: f64,
    pub link_availability: f64,
}

/// The result of one hard constraint for a configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConstraintResult {
    pub name: String,
    /// The requirement or slot it is about (`*` for the whole configuration).
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
    pub satisfied: bool,
    /// Satisfied with less than 10% of the limit to spare.
    pub tight: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectiveReport {
    /// The weights, scaled to sum to 1.
    pub weights: Weights,
    /// The normalisation range of each criterion: the least and greatest value any
    /// combination of the candidates could give.
    pub ranges: Ranges,
    pub preference_weight: f64,
    pub case_weight: f64,
    /// Slots counted in the preference and case terms.
    pub slots: f64,
    pub amortisation_months: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SolverReport {
    /// `exact` (every branch explored or cut by its bound) or `anytime` (stopped at the
    /// node budget; `gap` bounds how far from the optimum it may be).
    pub method: &'static str,
    pub search_space: f64,
    pub scenarios: usize,
    pub nodes: u64,
    /// The least objective any configuration could have (the best when exact).
    pub lower_bound: Option<f64>,
    /// best − lower bound (0 when exact).
    pub gap: Option<f64>,
    pub exact_limit: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseUse {
    #[serde(flatten)]
    pub retrieved: Retrieved,
    /// The case's configuration adapted to today's resources.
    pub adapted: Option<Adapted>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Adapted {
    /// How many of its slots kept the case's own resource.
    pub kept: usize,
    /// Slots whose case resource is no longer a valid candidate, with the replacement.
    pub replaced: Vec<String>,
    /// Its objective, when the adapted configuration meets every hard constraint.
    pub objective: Option<f64>,
    /// Its rank among the configurations returned, if it is one of them.
    pub rank: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleUse {
    pub rule: String,
    pub action: String,
    pub reason: String,
    /// Candidates it removed.
    pub excluded: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    /// The constraints that cannot all hold at once with the knowledge available.
    pub constraints: Vec<String>,
    pub detail: String,
}

/// Recommends configurations for a checked context.
pub fn recommend(
    ctx: &AppContext,
    knowledge: &Knowledge,
    cases: &CaseIndex,
    settings: &Settings,
) -> Recommendation {
    let context_json = serde_json::to_value(ctx).unwrap_or(Value::Null);
    let query = cases.query_features(&context_json);
    let retrieved: Vec<Retrieved> = cases
        .retrieve(&query, cases::CASE_K)
        .into_iter()
        .map(|(i, similarity)| {
            let case = cases.case(i);
            Retrieved {
                case: case.id.to_string(),
                name: case.name.clone(),
                similarity,
                outcome_factor: case.outcome_factor,
            }
        })
        .collect();
    let facts = ContextFacts::of_json(&context_json);
    let conclusions = rules::conclusions(&knowledge.rules, &facts);
    let mut options = options::build(ctx, knowledge, retrieved, cases, conclusions);
    sort_options(&mut options, ctx);
    let scenarios = search::scenarios(&options);
    let objective = objective_of(ctx, &options, &scenarios);
    let k = ctx.alternatives as usize;
    let space: f64 = scenarios.iter().map(Scenario::size).sum();
    let mut top = Top::new(k);
    let report = if space <= settings.exact_limit {
        search::branch_and_bound(&scenarios, &objective, Limits::ALL, &mut top, u64::MAX)
    } else {
        search::local_search(&scenarios, &objective, &mut top, settings.heuristic_passes);
        search::branch_and_bound(
            &scenarios,
            &objective,
            Limits::ALL,
            &mut top,
            settings.node_budget,
        )
    };
    let best = top.items.first().map(|f| f.objective);
    let lower_bound = if report.complete {
        best
    } else {
        Some(best.map_or(report.open_bound, |b| b.min(report.open_bound)))
    };
    let solver = SolverReport {
        method: if report.complete { "exact" } else { "anytime" },
        search_space: space,
        scenarios: scenarios.len(),
        nodes: report.nodes,
        lower_bound,
        gap: best.zip(lower_bound).map(|(b, l)| (b - l).max(0.0)),
        exact_limit: settings.exact_limit,
    };
    let configurations: Vec<Configuration> = top
        .items
        .iter()
        .enumerate()
        .map(|(i, found)| configuration(ctx, &options, &scenarios, &objective, found, i + 1))
        .collect();
    let conflict = if configurations.is_empty() {
        Some(conflict_of(ctx, &options, &scenarios, &objective))
    } else {
        None
    };
    let case_uses = options
        .retrieved
        .iter()
        .map(|r| CaseUse {
            retrieved: r.clone(),
            adapted: adapt(r, cases, &scenarios, &objective, &top),
        })
        .collect();
    let rules = options
        .conclusions
        .iter()
        .map(|c| RuleUse {
            rule: c.rule.to_string(),
            action: c.action.as_str().to_owned(),
            reason: c.reason.clone(),
            excluded: options
                .rule_effects
                .get(c.rule.as_str())
                .copied()
                .unwrap_or(0),
        })
        .collect();
    let summary = summary_of(&configurations, &conflict, &options);
    Recommendation {
        configurations,
        objective: ObjectiveReport {
            weights: objective.weights,
            ranges: objective.ranges,
            preference_weight: PREFERENCE_WEIGHT,
            case_weight: CASE_WEIGHT,
            slots: objective.slots,
            amortisation_months: AMORTISATION_MONTHS,
        },
        solver,
        cases: case_uses,
        rules,
        rejected: best_rejected(&options.rejected),
        conflict,
        summary,
    }
}

/// Every configuration of a context by brute force, best `k` first, for checking the
/// solver: the same objective, the same constraints, no bounds. Returns each
/// configuration's objective and bindings.
pub fn enumerate(
    ctx: &AppContext,
    knowledge: &Knowledge,
    cases: &CaseIndex,
) -> Vec<(f64, Vec<OutBinding>)> {
    let context_json = serde_json::to_value(ctx).unwrap_or(Value::Null);
    let query = cases.query_features(&context_json);
    let retrieved = cases
        .retrieve(&query, cases::CASE_K)
        .into_iter()
        .map(|(i, similarity)| Retrieved {
            case: cases.case(i).id.to_string(),
            name: cases.case(i).name.clone(),
            similarity,
            outcome_factor: cases.case(i).outcome_factor,
        })
        .collect();
    let conclusions = rules::conclusions(&knowledge.rules, &ContextFacts::of_json(&context_json));
    let mut options = options::build(ctx, knowledge, retrieved, cases, conclusions);
    sort_options(&mut options, ctx);
    let scenarios = search::scenarios(&options);
    let objective = objective_of(ctx, &options, &scenarios);
    let top = search::enumerate(&scenarios, &objective, ctx.alternatives as usize);
    top.items
        .iter()
        .map(|f| (f.objective, bindings_of(&scenarios[f.scenario], f)))
        .collect()
}

/// The search space of a context: how many configurations its scenarios hold.
pub fn search_space(ctx: &AppContext, knowledge: &Knowledge) -> f64 {
    let options = options::build(ctx, knowledge, Vec::new(), &CaseIndex::new(), Vec::new());
    search::scenarios(&options).iter().map(Scenario::size).sum()
}

/// Options in a fixed order: by their own contribution, then by id, so the search is
/// deterministic and meets good configurations early.
fn sort_options(options: &mut Options, ctx: &AppContext) {
    let w = ctx
        .preferences
        .weights
        .unwrap_or(Weights::EQUAL)
        .normalised();
    let order = |list: &mut Vec<Opt>| {
        list.sort_by(|a, b| {
            a.own_score(&w)
                .total_cmp(&b.own_score(&w))
                .then_with(|| a.resource.cmp(&b.resource))
        });
    };
    options.devices.iter_mut().for_each(order);
    options.edges_cloud.iter_mut().for_each(order);
    options.edges_hosting.iter_mut().for_each(order);
    for region in options.regions.values_mut() {
        order(&mut region.ingest);
        order(&mut region.storage);
        order(&mut region.processing);
    }
}

fn objective_of(ctx: &AppContext, options: &Options, scenarios: &[Scenario<'_>]) -> Objective {
    let mut ranges = Ranges {
        cost: (f64::INFINITY, f64::NEG_INFINITY),
        latency: (f64::INFINITY, f64::NEG_INFINITY),
        energy: (f64::INFINITY, f64::NEG_INFINITY),
        availability_loss: (f64::INFINITY, f64::NEG_INFINITY),
    };
    for s in scenarios.iter().filter(|s| !s.empty()) {
        let (lo, hi, lat_lo, lat_hi) = s.extremes();
        let widen = |r: &mut (f64, f64), lo: f64, hi: f64| {
            r.0 = r.0.min(lo);
            r.1 = r.1.max(hi);
        };
        widen(&mut ranges.cost, lo.cost_criterion(), hi.cost_criterion());
        widen(&mut ranges.latency, lat_lo, lat_hi);
        widen(&mut ranges.energy, lo.energy_w, hi.energy_w);
        widen(&mut ranges.availability_loss, lo.loss, hi.loss);
    }
    for r in [
        &mut ranges.cost,
        &mut ranges.latency,
        &mut ranges.energy,
        &mut ranges.availability_loss,
    ] {
        if !r.0.is_finite() || !r.1.is_finite() {
            *r = (0.0, 0.0);
        }
    }
    let slots = options.requirements.len()
        + options.sites.len()
        + 1
        + usize::from(options.storage)
        + usize::from(options.processing);
    Objective {
        weights: ctx
            .preferences
            .weights
            .unwrap_or(Weights::EQUAL)
            .normalised(),
        ranges,
        slots: slots as f64,
        max_latency: ctx.qos.max_latency_ms,
        min_loss: ctx.qos.min_availability.map(|a| -a.ln()),
        budget: ctx.qos.max_monthly_cost,
    }
}

fn bindings_of(scenario: &Scenario<'_>, found: &Found) -> Vec<OutBinding> {
    let mut out: Vec<OutBinding> = Vec::new();
    if let Some(p) = scenario.processing {
        out.extend(p.bindings.iter().cloned());
    }
    for (slot, &pick) in scenario.slots.iter().zip(&found.picks) {
        out.extend(slot.options[pick].bindings.iter().cloned());
    }
    out
}

fn region_name(scenario: &Scenario<'_>) -> String {
    format!("{}/{}", scenario.region.0, scenario.region.1)
}

fn tight(value: f64, limit: f64) -> bool {
    limit != 0.0 && ((limit - value).abs() / limit.abs()) < TIGHT_SLACK
}

fn check(
    name: &str,
    subject: &str,
    value: f64,
    limit: f64,
    at_most: bool,
    detail: String,
) -> ConstraintResult {
    let satisfied = if at_most {
        value <= limit + 1e-9
    } else {
        value + 1e-9 >= limit
    };
    ConstraintResult {
        name: name.to_owned(),
        subject: subject.to_owned(),
        value: Some(value),
        limit: Some(limit),
        satisfied,
        tight: satisfied && tight(value, limit),
        detail,
    }
}

fn holds(name: &str, subject: &str, detail: String) -> ConstraintResult {
    ConstraintResult {
        name: name.to_owned(),
        subject: subject.to_owned(),
        value: None,
        limit: None,
        satisfied: true,
        tight: false,
        detail,
    }
}

fn configuration(
    ctx: &AppContext,
    options: &Options,
    scenarios: &[Scenario<'_>],
    objective: &Objective,
    found: &Found,
    rank: usize,
) -> Configuration {
    let scenario = &scenarios[found.scenario];
    let region = region_name(scenario);
    let currency = ctx.currency().to_owned();
    let mut bindings = Vec::new();
    let mut constraints = Vec::new();
    let mut explanation = Vec::new();
    let mut paths = Vec::new();
    let ingest = &scenario.slots[0].options[found.picks[0]];
    if let Some(p) = scenario.processing {
        for b in &p.bindings {
            bindings.push(Bound {
                binding: b.clone(),
                protocol: None,
                why: p.why.clone(),
            });
        }
    }
    let mut other_hardware_cost: BTreeMap<String, f64> = BTreeMap::new();
    let mut site_hops = vec![0.0_f64; options.sites.len()];
    let mut edge_of = vec![None; options.groups.len()];
    for (slot, &pick) in scenario.slots.iter().zip(&found.picks) {
        let opt = &slot.options[pick];
        let mut why = opt.why.clone();
        if let Some(by) = &opt.preferred_by {
            why.push_str(&format!("; {by}"));
        }
        if let Some((case, weight)) = &opt.from_case {
            why.push_str(&format!(
                "; also chosen in case {case} (weight {weight:.2})"
            ));
        }
        if let Some((currency, amount)) = &opt.foreign_hardware {
            *other_hardware_cost.entry(currency.clone()).or_default() += amount;
        }
        let protocol = match slot.kind {
            SlotKind::Ingest | SlotKind::Storage => None,
            SlotKind::Edge { group } => {
                edge_of[group] = Some(opt);
                options::uplink(opt, ingest)
            }
            SlotKind::Device { group, site, .. } => edge_of[group]
                .and_then(|edge| options::hop(opt, edge))
                .map(|(ms, p)| {
                    site_hops[site] = site_hops[site].max(ms);
                    p
                }),
        };
        for b in &opt.bindings {
            bindings.push(Bound {
                binding: b.clone(),
                protocol,
                why: why.clone(),
            });
        }
        unary_constraints(ctx, options, slot.kind, opt, protocol, &mut constraints);
    }
    for (site_index, site) in options.sites.iter().enumerate() {
        let (link_ms, link_availability, link_id) =
            &options.regions[scenario.region].links[site_index];
        bindings.push(Bound {
            binding: OutBinding {
                requirement: format!("network:{site}"),
                role: BindingRole::Link,
                resource: link_id.to_string(),
                quantity: 1,
                registered: false,
            },
            protocol: None,
            why: format!("the known link from `{site}` to {region}: {link_ms} ms, availability {link_availability}"),
        });
        paths.push(SitePath {
            site: site.clone(),
            link: link_id.to_string(),
            hop_ms: site_hops[site_index],
            link_ms: *link_ms,
            latency_ms: site_hops[site_index] + link_ms,
            link_availability: *link_availability,
        });
    }
    let adds = found.adds;
    let availability = (-adds.loss).exp();
    let totals = Totals {
        monthly_cost: adds.monthly,
        currency: currency.clone(),
        hardware_cost: adds.hardware,
        other_hardware_cost,
        amortised_monthly_cost: adds.cost_criterion(),
        latency_ms: found.latency,
        availability,
        energy_w: adds.energy_w,
        messages_per_second: ctx.messages_per_second(),
    };
    let q = &ctx.qos;
    if let Some(max) = q.max_latency_ms {
        constraints.push(check(
            "latency",
            "*",
            found.latency,
            max,
            true,
            "the slowest site: device hop + link to the region (ms)".into(),
        ));
    }
    if let Some(min) = q.min_availability {
        constraints.push(check(
            "availability",
            "*",
            availability,
            min,
            false,
            "each site's edge node × its link × the ingest SLA × the processing SLA (in the cloud)"
                .into(),
        ));
    }
    if let Some(max) = q.max_monthly_cost {
        constraints.push(check(
            "budget",
            "*",
            adds.monthly,
            max,
            true,
            format!("recurring cloud cost per month, {currency}"),
        ));
    }
    let w = objective.weights;
    let r = objective.ranges;
    let scores = Scores {
        cost: search::norm(adds.cost_criterion(), r.cost),
        latency: search::norm(found.latency, r.latency),
        energy: search::norm(adds.energy_w, r.energy),
        availability: search::norm(adds.loss, r.availability_loss),
        unpreferred: adds.unpreferred / objective.slots,
        case_affinity: -adds.neg_affinity / objective.slots,
    };
    let tight_ones: Vec<String> = constraints
        .iter()
        .filter(|c| c.tight)
        .map(|c| format!("{} ({})", c.name, c.subject))
        .collect();
    explanation.push(format!(
        "objective {:.4} = {:.2}×cost {:.3} + {:.2}×latency {:.3} + {:.2}×energy {:.3} + {:.2}×availability {:.3} + {PREFERENCE_WEIGHT}×unpreferred {:.3} − {CASE_WEIGHT}×case affinity {:.3}",
        found.objective, w.cost, scores.cost, w.latency, scores.latency, w.energy, scores.energy,
        w.availability, scores.availability, scores.unpreferred, scores.case_affinity
    ));
    if tight_ones.is_empty() {
        explanation.push("no constraint is tight".into());
    } else {
        explanation.push(format!("tight constraints: {}", tight_ones.join(", ")));
    }
    let cases_used: BTreeMap<&str, f64> = scenario
        .slots
        .iter()
        .zip(&found.picks)
        .filter_map(|(s, &p)| s.options[p].from_case.as_ref())
        .map(|(c, w)| (c.as_str(), *w))
        .collect();
    for r in &options.retrieved {
        if cases_used.contains_key(r.case.as_str()) {
            explanation.push(format!(
                "reuses bindings of case {} ({}), similarity {:.2}",
                r.case, r.name, r.similarity
            ));
        }
    }
    for c in &options.conclusions {
        explanation.push(format!(
            "rule {} ({}): {}",
            c.rule,
            c.action.as_str(),
            c.reason
        ));
    }
    Configuration {
        rank,
        objective: found.objective,
        region,
        processing: match scenario.placement {
            Placement::None => "none",
            Placement::Edge => "edge",
            Placement::Cloud(_) => "cloud",
        },
        bindings,
        totals,
        scores,
        paths,
        constraints,
        explanation,
    }
}

/// The constraints a binding meets on its own, for the report.
fn unary_constraints(
    ctx: &AppContext,
    options: &Options,
    kind: SlotKind,
    opt: &Opt,
    protocol: Option<Protocol>,
    out: &mut Vec<ConstraintResult>,
) {
    match kind {
        SlotKind::Device { requirement, .. } => {
            let r = &options.requirements[requirement];
            out.push(holds(
                "capability",
                &r.key,
                format!(
                    "{} `{}`",
                    if r.min_rate_hz > 0.0 || r.key.starts_with("sensing") {
                        "observes"
                    } else {
                        "actuates"
                    },
                    r.property
                ),
            ));
            if r.min_rate_hz > 0.0 {
                match opt.rate_hz {
                    Some(hz) => out.push(check(
                        "samplingRate",
                        &r.key,
                        hz,
                        r.min_rate_hz,
                        false,
                        "Hz".into(),
                    )),
                    None => out.push(holds(
                        "samplingRate",
                        &r.key,
                        "the device states no maximum rate; assumed sufficient".into(),
                    )),
                }
            }
            out.push(holds(
                "protocol",
                &r.key,
                format!(
                    "speaks {} (allowed: {})",
                    options::names(&opt.protocols),
                    options::names(&r.protocols)
                ),
            ));
            out.push(holds(
                "hop:device-edge",
                &r.key,
                match protocol {
                    Some(p) => format!("{} to the edge node", p.as_str()),
                    None => "no common protocol".into(),
                },
            ));
            if opt.registered {
                out.push(holds(
                    "deviceOnline",
                    &r.key,
                    format!("{} registered devices online", r.count),
                ));
            }
        }
        SlotKind::Edge { group } => {
            let subject = options.groups[group].key.clone();
            if let Some((unit, needed, available)) = &opt.capacity {
                out.push(check(
                    "edgeCapacity",
                    &subject,
                    *needed,
                    *available,
                    true,
                    format!("{unit} needed vs available after current load"),
                ));
            }
            out.push(holds(
                "hop:edge-cloud",
                &subject,
                match protocol {
                    Some(p) => format!("{} to the cloud ingest", p.as_str()),
                    None => "no common protocol".into(),
                },
            ));
            if opt.registered {
                out.push(holds("edgeOnline", &subject, "reporting online".into()));
            }
        }
        SlotKind::Ingest | SlotKind::Storage => {
            let role = if kind == SlotKind::Ingest {
                "ingest"
            } else {
                "storage"
            };
            if let Some((unit, needed, available)) = &opt.capacity {
                out.push(check(
                    "cloudCapacity",
                    role,
                    *needed,
                    *available,
                    true,
                    unit.clone(),
                ));
            }
            let region = opt.region.clone().unwrap_or_default();
            out.push(holds(
                "region",
                role,
                format!(
                    "{}/{region} is allowed",
                    opt.provider.clone().unwrap_or_default()
                ),
            ));
            if let Some(residency) = &ctx.qos.data_residency {
                out.push(holds(
                    "residency",
                    role,
                    format!("{region} keeps data within {residency}"),
                ));
            }
        }
    }
}

/// The best rejected alternatives: per requirement, the first five set aside.
fn best_rejected(rejected: &[Rejection]) -> Vec<Rejection> {
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    rejected
        .iter()
        .filter(|r| {
            let n = per.entry(r.requirement.as_str()).or_default();
            *n += 1;
            *n <= 5
        })
        .cloned()
        .collect()
}

/// Why nothing is valid: a slot no candidate survives, or else the smallest set of the
/// global limits (latency, availability, budget, protocol hops) whose relaxation would
/// admit a configuration.
fn conflict_of(
    ctx: &AppContext,
    options: &Options,
    scenarios: &[Scenario<'_>],
    objective: &Objective,
) -> Conflict {
    for (i, devices) in options.devices.iter().enumerate() {
        if devices.is_empty() {
            let r = &options.requirements[i];
            return conflict_for_slot(
                &r.key,
                &format!(
                    "{} `{}` at `{}`",
                    if r.key.starts_with("sensing") {
                        "sensing"
                    } else {
                        "actuation"
                    },
                    r.property,
                    r.site
                ),
                &options.rejected,
            );
        }
    }
    for (i, group) in options.groups.iter().enumerate() {
        if options.edges_cloud[i].is_empty() {
            let site = &options.sites[group.site];
            return conflict_for_slot(
                &group.key,
                &format!("an edge node at `{site}`"),
                &options.rejected,
            );
        }
    }
    if scenarios.is_empty() {
        let mut constraints: Vec<String> = options
            .rejected
            .iter()
            .filter(|r| matches!(r.requirement.as_str(), "ingest" | "storage" | "processing"))
            .map(|r| r.constraint.clone())
            .collect();
        constraints.sort();
        constraints.dedup();
        if constraints.is_empty() {
            constraints.push("cloudOffering".into());
        }
        return Conflict {
            detail: format!(
                "no cloud region offers every role needed (ingest{}{}) within the allowed regions, providers and residency, with a link from every site",
                if options.storage { ", storage" } else { "" },
                if options.processing {
                    ", processing"
                } else {
                    ""
                }
            ),
            constraints,
        };
    }
    let names = ["latency", "availability", "budget", "hops"];
    let relaxations = (1u8..16).map(|mask| {
        let on = |bit: u8| mask & (1 << bit) == 0;
        (
            mask.count_ones(),
            mask,
            Limits {
                latency: on(0),
                availability: on(1),
                budget: on(2),
                hops: on(3),
            },
        )
    });
    let mut ordered: Vec<_> = relaxations.collect();
    ordered.sort_by_key(|(n, mask, _)| (*n, *mask));
    for (_, mask, limits) in ordered {
        if (mask & 1 != 0 && ctx.qos.max_latency_ms.is_none())
            || (mask & 2 != 0 && ctx.qos.min_availability.is_none())
            || (mask & 4 != 0 && ctx.qos.max_monthly_cost.is_none())
        {
            continue;
        }
        let mut top = Top::new(1);
        search::branch_and_bound(
            scenarios,
            objective,
            limits,
            &mut top,
            crate::model::CONFLICT_PROBE_NODES,
        );
        if let Some(found) = top.items.first() {
            let relaxed: Vec<String> = (0..4)
                .filter(|b| mask & (1 << b) != 0)
                .map(|b| names[b].to_owned())
                .collect();
            let availability = (-found.adds.loss).exp();
            return Conflict {
                detail: format!(
                    "no configuration meets {} together; relaxing them, the best reaches latency {:.1} ms, availability {:.5}, {:.2} {} a month",
                    relaxed.join(" and "),
                    found.latency,
                    availability,
                    found.adds.monthly,
                    ctx.currency()
                ),
                constraints: relaxed,
            };
        }
    }
    Conflict {
        constraints: names.iter().map(|n| (*n).to_owned()).collect(),
        detail: "no configuration meets the limits even with all of them relaxed".into(),
    }
}

fn conflict_for_slot(key: &str, what: &str, rejected: &[Rejection]) -> Conflict {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rejected.iter().filter(|r| r.requirement == key) {
        *counts.entry(r.constraint.as_str()).or_default() += 1;
    }
    let detail = if counts.is_empty() {
        format!("no candidate in the knowledge base can serve {what}")
    } else {
        format!(
            "every candidate for {what} is ruled out: {}",
            counts
                .iter()
                .map(|(c, n)| format!("{n} by {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut constraints: Vec<String> = counts.keys().map(|c| (*c).to_owned()).collect();
    if constraints.is_empty() {
        constraints.push("capability".into());
    }
    Conflict {
        constraints,
        detail,
    }
}

/// A retrieved case's configuration adapted to today's candidates: in the scenario that
/// holds most of its resources, each slot keeps the case's resource where it is still a
/// candidate, else takes the first candidate that keeps the configuration connected.
fn adapt(
    retrieved: &Retrieved,
    cases: &CaseIndex,
    scenarios: &[Scenario<'_>],
    objective: &Objective,
    top: &Top,
) -> Option<Adapted> {
    let id = retrieved.case.parse().ok()?;
    let case = cases.get(&id)?;
    let uses = |opt: &Opt, role: BindingRole| {
        case.bindings.iter().any(|(_, r, res)| {
            *r == role && (*res == opt.resource || opt.model.as_ref() == Some(res))
        })
    };
    let role_of = |kind: SlotKind| match kind {
        SlotKind::Ingest | SlotKind::Storage => BindingRole::Cloud,
        SlotKind::Edge { .. } => BindingRole::Edge,
        SlotKind::Device { .. } => BindingRole::Device,
    };
    let (index, scenario) = scenarios
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.empty())
        .max_by_key(|(i, s)| {
            let hits = s
                .slots
                .iter()
                .filter(|slot| slot.options.iter().any(|o| uses(o, role_of(slot.kind))))
                .count();
            (hits, std::cmp::Reverse(*i))
        })?;
    let mut picks = Vec::with_capacity(scenario.slots.len());
    let mut kept = 0;
    let mut replaced = Vec::new();
    for slot in &scenario.slots {
        let role = role_of(slot.kind);
        match slot.options.iter().position(|o| uses(o, role)) {
            Some(i) => {
                kept += 1;
                picks.push(i);
            }
            None => {
                picks.push(0);
                let name = match slot.kind {
                    SlotKind::Ingest => "ingest".to_owned(),
                    SlotKind::Storage => "storage".to_owned(),
                    SlotKind::Edge { group } => format!("edge group #{group}"),
                    SlotKind::Device { requirement, .. } => format!("requirement #{requirement}"),
                };
                replaced.push(format!("{name} → {}", slot.options[0].resource));
            }
        }
    }
    let value = scenario
        .evaluate(&picks, true)
        .filter(|(adds, latency)| {
            objective.max_latency.is_none_or(|m| *latency <= m + 1e-9)
                && objective.min_loss.is_none_or(|m| adds.loss <= m + 1e-9)
                && objective.budget.is_none_or(|b| adds.monthly <= b + 1e-9)
        })
        .map(|(adds, latency)| objective.value(adds, latency));
    let rank = top
        .items
        .iter()
        .position(|f| f.scenario == index && f.picks == picks)
        .map(|i| i + 1);
    Some(Adapted {
        kept,
        replaced,
        objective: value,
        rank,
    })
}

fn summary_of(
    configurations: &[Configuration],
    conflict: &Option<Conflict>,
    options: &Options,
) -> String {
    match (configurations.first(), conflict) {
        (Some(best), _) => {
            let t = &best.totals;
            format!(
                "{} valid configuration(s); the best runs in {} with processing on {}: {:.1} ms end to end, availability {:.5}, {:.2} {} a month plus {:.2} {} of hardware, {:.2} W; {} candidate(s) were set aside",
                configurations.len(),
                best.region,
                best.processing,
                t.latency_ms,
                t.availability,
                t.monthly_cost,
                t.currency,
                t.hardware_cost,
                t.currency,
                t.energy_w,
                options.rejected.len()
            )
        }
        (None, Some(c)) => format!("no valid configuration: {}", c.detail),
        (None, None) => "no valid configuration".into(),
    }
}

/// How a previously recommended configuration fares against today's knowledge.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assessment {
    /// Whether it still meets every hard constraint.
    pub valid: bool,
    /// Its objective under today's normalisation, when valid.
    pub objective: Option<f64>,
    /// What breaks, in words (empty when valid).
    pub detail: String,
}

/// Re-assesses a configuration, given as its (requirement, resource) bindings, against
/// today's knowledge: each binding must still be a candidate, and the whole must still
/// meet the limits.
pub fn assess(
    ctx: &AppContext,
    knowledge: &Knowledge,
    cases: &CaseIndex,
    bindings: &[(String, String)],
) -> Assessment {
    let context_json = serde_json::to_value(ctx).unwrap_or(Value::Null);
    let conclusions = rules::conclusions(&knowledge.rules, &ContextFacts::of_json(&context_json));
    let mut options = options::build(ctx, knowledge, Vec::new(), cases, conclusions);
    sort_options(&mut options, ctx);
    let scenarios = search::scenarios(&options);
    let objective = objective_of(ctx, &options, &scenarios);
    let wanted: std::collections::BTreeSet<(&str, &str)> = bindings
        .iter()
        .map(|(r, b)| (r.as_str(), b.as_str()))
        .collect();
    let matches = |opt: &Opt| {
        opt.bindings
            .iter()
            .all(|b| wanted.contains(&(b.requirement.as_str(), b.resource.as_str())))
    };
    let mut missing: Option<String> = None;
    for scenario in &scenarios {
        if scenario.processing.is_some_and(|p| !matches(p)) {
            continue;
        }
        let mut picks = Vec::with_capacity(scenario.slots.len());
        for slot in &scenario.slots {
            match slot.options.iter().position(&matches) {
                Some(i) => picks.push(i),
                None => break,
            }
        }
        if picks.len() < scenario.slots.len() {
            continue;
        }
        let Some((adds, latency)) = scenario.evaluate(&picks, true) else {
            missing = Some("two of its bindings no longer share a protocol".into());
            continue;
        };
        let availability = (-adds.loss).exp();
        let mut broken = Vec::new();
        if let Some(max) = ctx.qos.max_latency_ms
            && latency > max + 1e-9
        {
            broken.push(format!("latency {latency:.1} ms > {max} ms"));
        }
        if let Some(min) = ctx.qos.min_availability
            && availability + 1e-9 < min
        {
            broken.push(format!("availability {availability:.5} < {min}"));
        }
        if let Some(max) = ctx.qos.max_monthly_cost
            && adds.monthly > max + 1e-9
        {
            broken.push(format!("monthly cost {:.2} > {max}", adds.monthly));
        }
        return if broken.is_empty() {
            Assessment {
                valid: true,
                objective: Some(objective.value(adds, latency)),
                detail: String::new(),
            }
        } else {
            Assessment {
                valid: false,
                objective: None,
                detail: broken.join("; "),
            }
        };
    }
    // Some binding is no longer a candidate: say which, and why if it was set aside.
    let gone: Vec<String> = bindings
        .iter()
        .filter_map(|(requirement, resource)| {
            options
                .rejected
                .iter()
                .find(|r| r.requirement == *requirement && r.resource == *resource)
                .map(|r| {
                    format!(
                        "{requirement}: {resource} is ruled out by {} ({})",
                        r.constraint, r.detail
                    )
                })
        })
        .collect();
    let detail = if gone.is_empty() {
        missing.unwrap_or_else(|| "some of its resources are no longer candidates".into())
    } else {
        gone.join("; ")
    };
    Assessment {
        valid: false,
        objective: None,
        detail,
    }
}
