//! The search for the best configurations: scenarios (a cloud region and where processing
//! runs), then a depth-first branch and bound over the binding slots of each scenario.
//!
//! The bound of a partial configuration adds, for every slot still open, the least each
//! additive total could grow by, and takes the latency of every site as at least its
//! link plus the fastest hop its devices could make; a branch whose bound breaks a hard
//! limit, or cannot beat the k-th configuration found so far, is cut. Slots are tried in
//! a fixed order and options in their slot's order, so the same input always gives the
//! same answer; ties in the objective go to the configuration whose choices come first in
//! that order.

use crate::context::Weights;
use crate::model::{CASE_WEIGHT, PREFERENCE_WEIGHT};
use crate::options::{Adds, Opt, Options, Placement, RegionKey, hop, min_hop, uplink};

/// What a slot is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    Ingest,
    Storage,
    Edge {
        group: usize,
    },
    Device {
        requirement: usize,
        group: usize,
        site: usize,
    },
}

#[derive(Debug)]
pub struct Slot<'o> {
    pub kind: SlotKind,
    pub options: &'o [Opt],
}

/// One cloud region with one processing placement: the frame every configuration of it
/// shares.
#[derive(Debug)]
pub struct Scenario<'o> {
    pub region: &'o RegionKey,
    pub placement: Placement,
    pub processing: Option<&'o Opt>,
    /// What the links and the processing offering add.
    pub constant: Adds,
    pub link_latency: Vec<f64>,
    pub slots: Vec<Slot<'o>>,
    /// Per site: the least hop its devices could make (the latency bound's floor).
    pub site_min_hop: Vec<f64>,
    /// Suffix sums of each slot's least additions: `floor[i]` bounds slots `i..`.
    floor: Vec<Adds>,
    /// Per edge group: the index of its edge slot.
    pub edge_slot: Vec<usize>,
}

/// Which hard limits the search enforces; relaxing some finds conflicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub latency: bool,
    pub availability: bool,
    pub budget: bool,
    pub hops: bool,
}

impl Limits {
    pub const ALL: Limits = Limits {
        latency: true,
        availability: true,
        budget: true,
        hops: true,
    };
}

/// The normalisation ranges of the four criteria.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ranges {
    pub cost: (f64, f64),
    pub latency: (f64, f64),
    pub energy: (f64, f64),
    /// Of −ln(availability).
    pub availability_loss: (f64, f64),
}

/// Everything the objective needs besides a configuration's totals.
#[derive(Debug, Clone, Copy)]
pub struct Objective {
    pub weights: Weights,
    pub ranges: Ranges,
    /// Slots counted in the preference and case terms.
    pub slots: f64,
    pub max_latency: Option<f64>,
    pub min_loss: Option<f64>,
    pub budget: Option<f64>,
}

/// `x` scaled to 0..1 over its range (0 when the range is a point).
pub(crate) fn norm(x: f64, (lo, hi): (f64, f64)) -> f64 {
    if hi > lo { (x - lo) / (hi - lo) } else { 0.0 }
}

impl Objective {
    /// The documented objective (lower is better).
    pub fn value(&self, adds: Adds, latency: f64) -> f64 {
        let w = self.weights;
        w.cost * norm(adds.cost_criterion(), self.ranges.cost)
            + w.latency * norm(latency, self.ranges.latency)
            + w.energy * norm(adds.energy_w, self.ranges.energy)
            + w.availability * norm(adds.loss, self.ranges.availability_loss)
            + PREFERENCE_WEIGHT * adds.unpreferred / self.slots
            + CASE_WEIGHT * adds.neg_affinity / self.slots
    }

    /// Whether totals meet the enforced limits.
    fn admits(&self, adds: Adds, latency: f64, limits: Limits) -> bool {
        const EPS: f64 = 1e-9;
        !(limits.latency && self.max_latency.is_some_and(|m| latency > m + EPS)
            || limits.availability && self.min_loss.is_some_and(|m| adds.loss > m + EPS)
            || limits.budget && self.budget.is_some_and(|b| adds.monthly > b + EPS))
    }
}

/// A configuration found: its scenario and the option picked for each slot.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub objective: f64,
    pub scenario: usize,
    pub picks: Vec<usize>,
    pub adds: Adds,
    pub latency: f64,
}

impl Found {
    fn before(&self, other: &Found) -> bool {
        match self.objective.total_cmp(&other.objective) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Greater => false,
            std::cmp::Ordering::Equal => {
                (self.scenario, &self.picks) < (other.scenario, &other.picks)
            }
        }
    }
}

/// The best `k` configurations seen, best first.
#[derive(Debug, Clone)]
pub struct Top {
    k: usize,
    pub items: Vec<Found>,
}

impl Top {
    pub fn new(k: usize) -> Self {
        Self {
            k: k.max(1),
            items: Vec::new(),
        }
    }

    pub fn offer(&mut self, found: Found) {
        if self
            .items
            .iter()
            .any(|f| f.scenario == found.scenario && f.picks == found.picks)
        {
            return;
        }
        let at = self.items.partition_point(|f| f.before(&found));
        if at < self.k {
            self.items.insert(at, found);
            self.items.truncate(self.k);
        }
    }

    /// The objective a branch must reach to matter, once `k` are known.
    fn cutoff(&self) -> Option<f64> {
        (self.items.len() == self.k).then(|| self.items[self.k - 1].objective)
    }
}

/// Builds the scenarios of a set of options, in region order, then placement order.
pub fn scenarios(o: &Options) -> Vec<Scenario<'_>> {
    let mut out = Vec::new();
    for (key, region) in &o.regions {
        if region.ingest.is_empty() || (o.storage && region.storage.is_empty()) {
            continue;
        }
        let mut placements: Vec<(Placement, Option<&Opt>)> = Vec::new();
        if !o.processing {
            placements.push((Placement::None, None));
        } else {
            if o.edges_hosting.iter().all(|e| !e.is_empty()) {
                placements.push((Placement::Edge, None));
            }
            for (i, p) in region.processing.iter().enumerate() {
                placements.push((Placement::Cloud(i), Some(p)));
            }
        }
        for (placement, processing) in placements {
            let edges = if placement == Placement::Edge {
                &o.edges_hosting
            } else {
                &o.edges_cloud
            };
            let mut slots = vec![Slot {
                kind: SlotKind::Ingest,
                options: &region.ingest,
            }];
            if o.storage {
                slots.push(Slot {
                    kind: SlotKind::Storage,
                    options: &region.storage,
                });
            }
            for (g, group) in o.groups.iter().enumerate() {
                slots.push(Slot {
                    kind: SlotKind::Edge { group: g },
                    options: &edges[g],
                });
                for &r in &group.requirements {
                    slots.push(Slot {
                        kind: SlotKind::Device {
                            requirement: r,
                            group: g,
                            site: group.site,
                        },
                        options: &o.devices[r],
                    });
                }
            }
            let mut constant = processing.map_or(Adds::default(), |p| p.adds);
            for (_, availability, _) in &region.links {
                constant.loss += -availability.ln();
            }
            let mut site_min_hop = vec![0.0_f64; o.sites.len()];
            for slot in &slots {
                if let SlotKind::Device { site, .. } = slot.kind {
                    let least = slot
                        .options
                        .iter()
                        .map(min_hop)
                        .fold(f64::INFINITY, f64::min);
                    site_min_hop[site] = site_min_hop[site].max(least);
                }
            }
            let mut floor = vec![Adds::default(); slots.len() + 1];
            for i in (0..slots.len()).rev() {
                let least = slots[i]
                    .options
                    .iter()
                    .map(|o| o.adds)
                    .reduce(Adds::min)
                    .unwrap_or_default();
                floor[i] = floor[i + 1].plus(least);
            }
            let edge_slot = (0..o.groups.len())
                .map(|group| {
                    slots
                        .iter()
                        .position(|s| s.kind == SlotKind::Edge { group })
                        .unwrap_or(0)
                })
                .collect();
            out.push(Scenario {
                edge_slot,
                region: key,
                placement,
                processing,
                constant,
                link_latency: region.links.iter().map(|l| l.0).collect(),
                slots,
                site_min_hop,
                floor,
            });
        }
    }
    out
}

impl Scenario<'_> {
    /// The number of configurations it holds.
    pub fn size(&self) -> f64 {
        self.slots.iter().map(|s| s.options.len() as f64).product()
    }

    /// Whether some slot has no option at all.
    pub fn empty(&self) -> bool {
        self.slots.iter().any(|s| s.options.is_empty())
    }

    /// The least and greatest totals any configuration of it could have.
    pub fn extremes(&self) -> (Adds, Adds, f64, f64) {
        let mut hi = self.constant;
        for slot in &self.slots {
            hi = hi.plus(
                slot.options
                    .iter()
                    .map(|o| o.adds)
                    .reduce(Adds::max)
                    .unwrap_or_default(),
            );
        }
        let lo = self.constant.plus(self.floor[0]);
        let lat_lo = self.latency_bound(&vec![0.0; self.link_latency.len()]);
        let mut worst = vec![0.0_f64; self.link_latency.len()];
        for slot in &self.slots {
            if let SlotKind::Device { site, .. } = slot.kind {
                let most = slot
                    .options
                    .iter()
                    .flat_map(|o| o.protocols.iter().map(|p| crate::model::hop_latency_ms(*p)))
                    .fold(0.0_f64, f64::max);
                worst[site] = worst[site].max(most);
            }
        }
        let lat_hi = worst
            .iter()
            .zip(&self.link_latency)
            .map(|(h, l)| h + l)
            .fold(0.0_f64, f64::max);
        (lo, hi, lat_lo, lat_hi)
    }

    fn latency_bound(&self, site_hop: &[f64]) -> f64 {
        site_hop
            .iter()
            .zip(&self.site_min_hop)
            .zip(&self.link_latency)
            .map(|((h, m), l)| h.max(*m) + l)
            .fold(0.0_f64, f64::max)
    }

    /// Evaluates a whole configuration: its totals and latency, or `None` when two of its
    /// bindings cannot talk to each other (and hops are enforced).
    pub fn evaluate(&self, picks: &[usize], hops: bool) -> Option<(Adds, f64)> {
        let mut adds = self.constant;
        let mut site_hop = vec![0.0_f64; self.link_latency.len()];
        let mut ingest = None;
        let mut edges = vec![None; self.edge_slot.len()];
        for (slot, &pick) in self.slots.iter().zip(picks) {
            let opt = &slot.options[pick];
            adds = adds.plus(opt.adds);
            match slot.kind {
                SlotKind::Ingest => ingest = Some(opt),
                SlotKind::Storage => {}
                SlotKind::Edge { group } => {
                    if hops && ingest.is_some_and(|i| uplink(opt, i).is_none()) {
                        return None;
                    }
                    edges[group] = Some(opt);
                }
                SlotKind::Device { group, site, .. } => {
                    let edge = edges[group]?;
                    match hop(opt, edge) {
                        Some((ms, _)) => site_hop[site] = site_hop[site].max(ms),
                        None if hops => return None,
                        None => site_hop[site] = site_hop[site].max(min_hop(opt)),
                    }
                }
            }
        }
        let latency = site_hop
            .iter()
            .zip(&self.link_latency)
            .map(|(h, l)| h + l)
            .fold(0.0_f64, f64::max);
        Some((adds, latency))
    }
}

/// How a search went.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Nodes expanded.
    pub nodes: u64,
    /// Whether every branch was explored or cut by its bound (the answer is exact).
    pub complete: bool,
    /// The least objective any unexplored branch could reach (when not complete).
    pub open_bound: f64,
}

struct Dfs<'a, 's> {
    scenario: &'a Scenario<'s>,
    index: usize,
    objective: &'a Objective,
    limits: Limits,
    top: &'a mut Top,
    budget: u64,
    report: &'a mut Report,
    picks: Vec<usize>,
    site_hop: Vec<f64>,
    edges: Vec<Option<usize>>,
}

impl Dfs<'_, '_> {
    fn bound(&self, depth: usize, adds: Adds) -> (Adds, f64, f64) {
        let lower = adds.plus(self.scenario.floor[depth]);
        let latency = self.scenario.latency_bound(&self.site_hop);
        (lower, latency, self.objective.value(lower, latency))
    }

    fn visit(&mut self, depth: usize, adds: Adds) {
        let (lower, latency, value) = self.bound(depth, adds);
        if !self.objective.admits(lower, latency, self.limits) {
            return;
        }
        if self.top.cutoff().is_some_and(|c| value > c + 1e-12) {
            return;
        }
        if self.report.nodes >= self.budget {
            self.report.complete = false;
            self.report.open_bound = self.report.open_bound.min(value);
            return;
        }
        self.report.nodes += 1;
        let Some(slot) = self.scenario.slots.get(depth) else {
            let latency = self
                .site_hop
                .iter()
                .zip(&self.scenario.link_latency)
                .map(|(h, l)| h + l)
                .fold(0.0_f64, f64::max);
            if self.objective.admits(adds, latency, self.limits) {
                self.top.offer(Found {
                    objective: self.objective.value(adds, latency),
                    scenario: self.index,
                    picks: self.picks.clone(),
                    adds,
                    latency,
                });
            }
            return;
        };
        for (i, opt) in slot.options.iter().enumerate() {
            let saved_hop;
            match slot.kind {
                SlotKind::Ingest | SlotKind::Storage => saved_hop = None,
                SlotKind::Edge { group } => {
                    if self.limits.hops {
                        let ingest = &self.scenario.slots[0].options[self.picks[0]];
                        if uplink(opt, ingest).is_none() {
                            continue;
                        }
                    }
                    self.edges[group] = Some(i);
                    saved_hop = None;
                }
                SlotKind::Device { group, site, .. } => {
                    let edge_slot = self.scenario.edge_slot[group];
                    let edge =
                        &self.scenario.slots[edge_slot].options[self.edges[group].unwrap_or(0)];
                    let ms = match hop(opt, edge) {
                        Some((ms, _)) => ms,
                        None if self.limits.hops => continue,
                        None => min_hop(opt),
                    };
                    saved_hop = Some((site, self.site_hop[site]));
                    self.site_hop[site] = self.site_hop[site].max(ms);
                }
            }
            self.picks.push(i);
            self.visit(depth + 1, adds.plus(opt.adds));
            self.picks.pop();
            if let Some((site, before)) = saved_hop {
                self.site_hop[site] = before;
            }
        }
    }
}

/// Branch and bound over every scenario, best bound first, until `budget` nodes.
pub fn branch_and_bound(
    scenarios: &[Scenario<'_>],
    objective: &Objective,
    limits: Limits,
    top: &mut Top,
    budget: u64,
) -> Report {
    let mut report = Report {
        nodes: 0,
        complete: true,
        open_bound: f64::INFINITY,
    };
    let mut order: Vec<(f64, usize)> = scenarios
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.empty())
        .map(|(i, s)| {
            let lower = s.constant.plus(s.floor[0]);
            let latency = s.latency_bound(&vec![0.0; s.link_latency.len()]);
            (objective.value(lower, latency), i)
        })
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for (_, index) in order {
        let scenario = &scenarios[index];
        let mut dfs = Dfs {
            scenario,
            index,
            objective,
            limits,
            top,
            budget,
            report: &mut report,
            picks: Vec::with_capacity(scenario.slots.len()),
            site_hop: vec![0.0; scenario.link_latency.len()],
            edges: vec![None; scenario.edge_slot.len()],
        };
        dfs.visit(0, scenario.constant);
    }
    report
}

/// Every configuration, evaluated one by one: the reference the branch and bound is
/// checked against. Only for small instances.
pub fn enumerate(scenarios: &[Scenario<'_>], objective: &Objective, k: usize) -> Top {
    let mut top = Top::new(k);
    for (index, scenario) in scenarios.iter().enumerate() {
        if scenario.empty() {
            continue;
        }
        let mut picks = vec![0usize; scenario.slots.len()];
        'combinations: loop {
            if let Some((adds, latency)) = scenario.evaluate(&picks, true)
                && objective.admits(adds, latency, Limits::ALL)
            {
                top.offer(Found {
                    objective: objective.value(adds, latency),
                    scenario: index,
                    picks: picks.clone(),
                    adds,
                    latency,
                });
            }
            // The next combination, last slot fastest.
            let mut i = picks.len();
            loop {
                if i == 0 {
                    break 'combinations;
                }
                i -= 1;
                picks[i] += 1;
                if picks[i] < scenario.slots[i].options.len() {
                    continue 'combinations;
                }
                picks[i] = 0;
            }
        }
    }
    top
}

/// The anytime heuristic: in each scenario, a greedy start (each slot's first option
/// that fits) improved by single-slot moves until none helps. Every valid configuration
/// it meets is offered to `top`.
pub fn local_search(
    scenarios: &[Scenario<'_>],
    objective: &Objective,
    top: &mut Top,
    max_passes: usize,
) {
    for (index, scenario) in scenarios.iter().enumerate() {
        if scenario.empty() {
            continue;
        }
        let mut picks = vec![0usize; scenario.slots.len()];
        // Greedy: the first option of each slot that keeps the configuration connected.
        for depth in 0..picks.len() {
            let fits = (0..scenario.slots[depth].options.len()).find(|&i| {
                picks[depth] = i;
                connected_prefix(scenario, &picks[..=depth])
            });
            picks[depth] = fits.unwrap_or(0);
        }
        let score = |picks: &[usize]| -> Option<(f64, Adds, f64)> {
            let (adds, latency) = scenario.evaluate(picks, true)?;
            objective
                .admits(adds, latency, Limits::ALL)
                .then(|| (objective.value(adds, latency), adds, latency))
        };
        let mut current = score(&picks);
        for _ in 0..max_passes {
            let mut improved = false;
            for depth in 0..picks.len() {
                let keep = picks[depth];
                let mut moved = false;
                for i in 0..scenario.slots[depth].options.len() {
                    if i == keep {
                        continue;
                    }
                    picks[depth] = i;
                    if let Some((value, adds, latency)) = score(&picks) {
                        top.offer(Found {
                            objective: value,
                            scenario: index,
                            picks: picks.clone(),
                            adds,
                            latency,
                        });
                        if current.is_none_or(|c| value < c.0 - 1e-12) {
                            current = Some((value, adds, latency));
                            moved = true;
                            break;
                        }
                    }
                }
                if moved {
                    improved = true;
                } else {
                    picks[depth] = keep;
                }
            }
            if let Some((value, adds, latency)) = current {
                top.offer(Found {
                    objective: value,
                    scenario: index,
                    picks: picks.clone(),
                    adds,
                    latency,
                });
            }
            if !improved {
                break;
            }
        }
    }
}

/// Whether the slots chosen so far can talk to each other.
fn connected_prefix(scenario: &Scenario<'_>, picks: &[usize]) -> bool {
    let mut ingest = None;
    let mut edges = vec![None; scenario.edge_slot.len()];
    for (slot, &pick) in scenario.slots.iter().zip(picks) {
        let opt = &slot.options[pick];
        match slot.kind {
            SlotKind::Ingest => ingest = Some(opt),
            SlotKind::Storage => {}
            SlotKind::Edge { group } => {
                if ingest.is_some_and(|i| uplink(opt, i).is_none()) {
                    return false;
                }
                edges[group] = Some(opt);
            }
            SlotKind::Device { group, .. } => {
                if edges[group].is_none_or(|e| hop(opt, e).is_none()) {
                    return false;
                }
            }
        }
    }
    true
}
