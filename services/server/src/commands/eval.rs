//! `iotcane eval`: the recommender measured against references, without a store.
//!
//! 1. The example scenarios against the seed knowledge of `--examples`.
//! 2. Small generated instances: the exact search against brute force.
//! 3. Large generated instances: the anytime heuristic against the exact optimum.
//! 4. Case retrieval: precision@3 of held-out queries over clustered synthetic cases.
//! 5. The latency of `recommend` over every run above.
//!
//! Every configuration returned is audited against the knowledge it came from
//! ([`generate::audit`]). The command fails when one is invalid, when the exact search
//! disagrees with brute force, or when an answer claims better than the optimum.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use iotcane_model::BindingRole;
use iotcane_recommender::generate::{self, Size};
use iotcane_recommender::{
    AppContext, CaseIndex, Knowledge, OutBinding, Recommendation, Settings as SolverSettings,
    enumerate, recommend,
};
use serde::Serialize;

use super::read_file;
use crate::cli::EvalArgs;

/// Brute force checks an example scenario up to this many configurations.
const SCENARIO_BRUTE_FORCE_LIMIT: f64 = 2e6;
const CLUSTERS: usize = 20;
const QUERIES: usize = 100;
const K: usize = 3;

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    seed: u64,
    scenarios: Vec<ScenarioRow>,
    small: Small,
    large: Large,
    retrieval: Retrieval,
    latency: Latency,
    audited: usize,
    invalid: usize,
    passed: bool,
    failures: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct ScenarioRow {
    name: String,
    search_space: f64,
    method: &'static str,
    nodes: u64,
    configurations: usize,
    best_objective: Option<f64>,
    /// `None` when the space is beyond brute force.
    brute_force_agrees: Option<bool>,
    ms: f64,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Small {
    instances: usize,
    feasible: usize,
    exact: usize,
    agree: usize,
    max_objective_difference: f64,
    median_search_space: f64,
    max_search_space: f64,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Large {
    instances: usize,
    reference_budget: u64,
    min_search_space: f64,
    median_search_space: f64,
    max_search_space: f64,
    feasible: usize,
    /// Instances whose reference run completed (its answer is the optimum).
    reference_exact: usize,
    /// The reference's nodes: median and greatest.
    reference_median_nodes: u64,
    reference_max_nodes: u64,
    /// The heuristic with each node budget (0: the local search alone).
    heuristics: Vec<Heuristic>,
}

/// The anytime heuristic with one node budget against the exact optimum.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Heuristic {
    node_budget: u64,
    /// Runs whose budgeted branch and bound still completed (proved optimal).
    proved_exact: usize,
    /// Reference-exact instances with a valid configuration: where it is compared.
    compared: usize,
    /// Among those: where it found the optimum.
    optimal: usize,
    /// Feasible instances where it found nothing.
    missed: usize,
    mean_relative_gap: f64,
    max_relative_gap: f64,
    mean_absolute_gap: f64,
    max_absolute_gap: f64,
    /// The seed of the instance with the largest gap.
    worst_seed: Option<u64>,
    /// The mean gap it reports itself (best − lower bound).
    mean_reported_gap: f64,
    median_ms: f64,
    #[serde(skip)]
    relative: Vec<f64>,
    #[serde(skip)]
    absolute: Vec<f64>,
    #[serde(skip)]
    reported: Vec<f64>,
    #[serde(skip)]
    ms: Vec<f64>,
}

impl Heuristic {
    /// Compares its answer on one instance with the exact one (when the reference
    /// completed), recording failures: better than the optimum, or exact and not optimal.
    fn record(
        &mut self,
        label: &str,
        seed: u64,
        answer: &Recommendation,
        exact: Option<&Recommendation>,
        checks: &mut Checks,
    ) {
        self.proved_exact += usize::from(answer.solver.method == "exact");
        if let Some(gap) = answer.solver.gap {
            self.reported.push(gap);
        }
        let Some(exact) = exact else {
            return;
        };
        let label = format!("{label} (node budget {})", self.node_budget);
        self.compared += usize::from(!exact.configurations.is_empty());
        match (answer.configurations.first(), exact.configurations.first()) {
            (Some(h), Some(o)) => {
                let gap = h.objective - o.objective;
                if gap < -1e-9 {
                    checks.fail(format!(
                        "{label}: the heuristic's {} beats the exact optimum {}",
                        h.objective, o.objective
                    ));
                }
                if answer.solver.method == "exact" && gap > 1e-9 {
                    checks.fail(format!(
                        "{label}: claims exact at {} but the optimum is {}",
                        h.objective, o.objective
                    ));
                }
                if answer
                    .solver
                    .lower_bound
                    .is_some_and(|l| l > o.objective + 1e-9)
                {
                    checks.fail(format!(
                        "{label}: lower bound {:?} above the optimum {}",
                        answer.solver.lower_bound, o.objective
                    ));
                }
                let gap = gap.max(0.0);
                self.optimal += usize::from(gap <= 1e-9);
                if gap > self.absolute.iter().copied().fold(0.0, f64::max) {
                    self.worst_seed = Some(seed);
                }
                self.absolute.push(gap);
                self.relative.push(if o.objective.abs() > 1e-12 {
                    gap / o.objective.abs()
                } else {
                    0.0
                });
            }
            (None, Some(o)) => {
                self.missed += 1;
                if answer.solver.method == "exact" {
                    checks.fail(format!(
                        "{label}: claims exact with nothing found; the optimum is {}",
                        o.objective
                    ));
                }
            }
            (Some(h), None) => checks.fail(format!(
                "{label}: the exact run finds nothing, the heuristic finds {}",
                h.objective
            )),
            (None, None) => {}
        }
    }

    fn finish(&mut self) {
        let mean = |v: &[f64]| {
            if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        self.mean_relative_gap = mean(&self.relative);
        self.max_relative_gap = self.relative.iter().copied().fold(0.0, f64::max);
        self.mean_absolute_gap = mean(&self.absolute);
        self.max_absolute_gap = self.absolute.iter().copied().fold(0.0, f64::max);
        self.mean_reported_gap = mean(&self.reported);
        self.median_ms = percentile(&self.ms, 0.5);
    }
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Retrieval {
    cases: usize,
    clusters: usize,
    queries: usize,
    k: usize,
    /// Hits over k, a missing result counting as a miss.
    precision_at_k: f64,
    /// Hits over what was retrieved.
    precision_of_retrieved: f64,
    mean_retrieved: f64,
    random_baseline: f64,
    ms_per_query: f64,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Latency {
    runs: usize,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    small_p50_ms: f64,
    large_p50_ms: f64,
    large_p99_ms: f64,
}

/// Accumulates audits and failures across the sections.
#[derive(Debug, Default)]
struct Checks {
    audited: usize,
    invalid: usize,
    failures: Vec<String>,
}

impl Checks {
    fn audit(
        &mut self,
        label: &str,
        ctx: &AppContext,
        knowledge: &Knowledge,
        answer: &Recommendation,
    ) {
        for c in &answer.configurations {
            self.audited += 1;
            let broken = generate::audit(ctx, knowledge, c);
            if !broken.is_empty() {
                self.invalid += 1;
                self.fail(format!(
                    "{label}: configuration {} is invalid: {}",
                    c.rank,
                    broken.join("; ")
                ));
            }
        }
    }

    fn fail(&mut self, failure: String) {
        if self.failures.len() < 50 {
            self.failures.push(failure);
        }
    }
}

fn timed(
    ctx: &AppContext,
    knowledge: &Knowledge,
    cases: &CaseIndex,
    settings: &SolverSettings,
) -> (Recommendation, f64) {
    let start = Instant::now();
    let answer = recommend(ctx, knowledge, cases, settings);
    (answer, start.elapsed().as_secs_f64() * 1e3)
}

/// Whether the exact answer is brute force's: the same objectives and bindings, rank by
/// rank. `Ok` carries the largest objective difference.
fn compare(answer: &Recommendation, oracle: &[(f64, Vec<OutBinding>)]) -> Result<f64, String> {
    if answer.configurations.len() != oracle.len() {
        return Err(format!(
            "{} configurations, brute force {}",
            answer.configurations.len(),
            oracle.len()
        ));
    }
    let mut worst = 0.0_f64;
    for (c, (objective, bindings)) in answer.configurations.iter().zip(oracle) {
        let difference = (c.objective - objective).abs();
        worst = worst.max(difference);
        if difference > 1e-9 {
            return Err(format!(
                "rank {}: objective {} vs brute force {objective}",
                c.rank, c.objective
            ));
        }
        let found: Vec<&OutBinding> = c
            .bindings
            .iter()
            .map(|b| &b.binding)
            .filter(|b| b.role != BindingRole::Link)
            .collect();
        if found != bindings.iter().collect::<Vec<_>>() {
            return Err(format!(
                "rank {}: other bindings than brute force's",
                c.rank
            ));
        }
    }
    Ok(worst)
}

pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let mut report = Report {
        seed: args.seed,
        ..Report::default()
    };
    let mut checks = Checks::default();
    let mut all_ms = Vec::new();
    report.scenarios = scenarios(&args.examples, &mut checks, &mut all_ms)?;
    let (small, small_ms) = small(&args, &mut checks);
    report.small = small;
    let (large, large_ms) = large(&args, &mut checks);
    report.large = large;
    report.retrieval = retrieval(&args);
    all_ms.extend(&small_ms);
    all_ms.extend(&large_ms);
    report.latency = Latency {
        runs: all_ms.len(),
        p50_ms: percentile(&all_ms, 0.50),
        p95_ms: percentile(&all_ms, 0.95),
        p99_ms: percentile(&all_ms, 0.99),
        max_ms: percentile(&all_ms, 1.0),
        small_p50_ms: percentile(&small_ms, 0.50),
        large_p50_ms: percentile(&large_ms, 0.50),
        large_p99_ms: percentile(&large_ms, 0.99),
    };
    report.audited = checks.audited;
    report.invalid = checks.invalid;
    report.failures = checks.failures;
    report.passed = report.failures.is_empty();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report, &args);
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The example scenarios against the seed knowledge.
fn scenarios(
    dir: &Path,
    checks: &mut Checks,
    all_ms: &mut Vec<f64>,
) -> anyhow::Result<Vec<ScenarioRow>> {
    let mut resources = Vec::new();
    for path in files(dir, "ttl")? {
        let items = read_file(&path)?.with_context(|| format!("cannot read {}", path.display()))?;
        for item in items {
            match item.result {
                Ok(r) => resources.push(r),
                Err(e) => anyhow::bail!("{}: an invalid resource: {e}", path.display()),
            }
        }
    }
    let mut cases = CaseIndex::new();
    for r in &resources {
        cases.upsert(r);
    }
    let mut rows = Vec::new();
    for path in files(&dir.join("scenarios"), "json")? {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let ctx: AppContext = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a context", path.display()))?;
        if let Err(v) = ctx.check() {
            anyhow::bail!("{}: an invalid context: {v}", path.display());
        }
        let knowledge = Knowledge::from_resources(&resources, &ctx);
        let (answer, ms) = timed(&ctx, &knowledge, &cases, &SolverSettings::default());
        all_ms.push(ms);
        checks.audit(&format!("scenario {name}"), &ctx, &knowledge, &answer);
        if answer.configurations.is_empty() {
            checks.fail(format!("scenario {name}: no valid configuration"));
        }
        let space = answer.solver.search_space;
        let brute_force_agrees = (space <= SCENARIO_BRUTE_FORCE_LIMIT).then(|| {
            match compare(&answer, &enumerate(&ctx, &knowledge, &cases)) {
                Ok(_) => true,
                Err(e) => {
                    checks.fail(format!("scenario {name}: exact vs brute force: {e}"));
                    false
                }
            }
        });
        rows.push(ScenarioRow {
            name,
            search_space: space,
            method: answer.solver.method,
            nodes: answer.solver.nodes,
            configurations: answer.configurations.len(),
            best_objective: answer.configurations.first().map(|c| c.objective),
            brute_force_agrees,
            ms,
        });
    }
    if rows.is_empty() {
        anyhow::bail!("no scenario in {}", dir.join("scenarios").display());
    }
    Ok(rows)
}

/// The files of a folder with an extension, by name.
fn files(dir: &Path, extension: &str) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the folder {}", dir.display()))?;
    let mut out = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == extension) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn small_seed(seed: u64, i: usize) -> u64 {
    (seed << 32) | i as u64
}

fn large_seed(seed: u64, i: usize) -> u64 {
    (seed << 32) | (1 << 31) | i as u64
}

/// Small instances: exact against brute force.
fn small(args: &EvalArgs, checks: &mut Checks) -> (Small, Vec<f64>) {
    let mut out = Small {
        instances: args.instances,
        ..Small::default()
    };
    let mut ms = Vec::with_capacity(args.instances);
    let mut spaces = Vec::with_capacity(args.instances);
    for i in 0..args.instances {
        let seed = small_seed(args.seed, i);
        let (ctx, knowledge) = generate::instance(seed, Size::Small);
        let cases = generate::instance_cases(seed, &ctx, &knowledge);
        let (answer, t) = timed(&ctx, &knowledge, &cases, &SolverSettings::default());
        ms.push(t);
        spaces.push(answer.solver.search_space);
        let label = format!("small instance {seed}");
        checks.audit(&label, &ctx, &knowledge, &answer);
        out.feasible += usize::from(!answer.configurations.is_empty());
        if answer.solver.method == "exact" {
            out.exact += 1;
        } else {
            checks.fail(format!(
                "{label}: solved by the {} method",
                answer.solver.method
            ));
        }
        match compare(&answer, &enumerate(&ctx, &knowledge, &cases)) {
            Ok(d) => {
                out.agree += 1;
                out.max_objective_difference = out.max_objective_difference.max(d);
            }
            Err(e) => checks.fail(format!("{label}: exact vs brute force: {e}")),
        }
    }
    out.median_search_space = percentile(&spaces, 0.5);
    out.max_search_space = percentile(&spaces, 1.0);
    (out, ms)
}

/// Large instances: the heuristic (exact_limit 0) with no node budget and with
/// `--node-budget`, against a long exact run. Returns the latencies of the latter.
fn large(args: &EvalArgs, checks: &mut Checks) -> (Large, Vec<f64>) {
    let reference = SolverSettings {
        exact_limit: 0.0,
        node_budget: args.reference_budget,
        ..SolverSettings::default()
    };
    let mut budgets = vec![0, args.node_budget];
    budgets.dedup();
    let mut out = Large {
        instances: args.large,
        reference_budget: args.reference_budget,
        heuristics: budgets
            .iter()
            .map(|&node_budget| Heuristic {
                node_budget,
                ..Heuristic::default()
            })
            .collect(),
        ..Large::default()
    };
    let (mut spaces, mut nodes) = (Vec::new(), Vec::new());
    for i in 0..args.large {
        let seed = large_seed(args.seed, i);
        let (ctx, knowledge) = generate::instance(seed, Size::Large);
        let cases = generate::instance_cases(seed, &ctx, &knowledge);
        let label = format!("large instance {seed}");
        let exact = recommend(&ctx, &knowledge, &cases, &reference);
        checks.audit(&format!("{label} (reference)"), &ctx, &knowledge, &exact);
        spaces.push(exact.solver.search_space);
        nodes.push(exact.solver.nodes as f64);
        let complete = exact.solver.method == "exact";
        out.reference_exact += usize::from(complete);
        out.feasible += usize::from(!exact.configurations.is_empty());
        for h in &mut out.heuristics {
            let settings = SolverSettings {
                exact_limit: 0.0,
                node_budget: h.node_budget,
                ..SolverSettings::default()
            };
            let (answer, t) = timed(&ctx, &knowledge, &cases, &settings);
            h.ms.push(t);
            checks.audit(
                &format!("{label} (node budget {})", h.node_budget),
                &ctx,
                &knowledge,
                &answer,
            );
            h.record(&label, seed, &answer, complete.then_some(&exact), checks);
        }
    }
    for h in &mut out.heuristics {
        h.finish();
    }
    out.min_search_space = percentile(&spaces, 0.0);
    out.median_search_space = percentile(&spaces, 0.5);
    out.max_search_space = percentile(&spaces, 1.0);
    out.reference_median_nodes = percentile(&nodes, 0.5) as u64;
    out.reference_max_nodes = percentile(&nodes, 1.0) as u64;
    let ms = out
        .heuristics
        .last()
        .map(|h| h.ms.clone())
        .unwrap_or_default();
    (out, ms)
}

/// Precision@k of held-out queries over clustered cases.
fn retrieval(args: &EvalArgs) -> Retrieval {
    let cases = generate::cases(args.seed, args.cases, CLUSTERS);
    let mut index = CaseIndex::new();
    let mut cluster_of = std::collections::HashMap::new();
    for (case, cluster) in &cases {
        index.upsert(case);
        cluster_of.insert(case.id.clone(), *cluster);
    }
    let (mut hits, mut retrieved) = (0usize, 0usize);
    let start = Instant::now();
    for q in 0..QUERIES {
        let cluster = q % CLUSTERS;
        let query = generate::query_for(args.seed, cluster, q / CLUSTERS);
        let found = index.retrieve(&index.query_features(&query), K);
        retrieved += found.len();
        hits += found
            .iter()
            .filter(|(i, _)| cluster_of.get(&index.case(*i).id) == Some(&cluster))
            .count();
    }
    let elapsed = start.elapsed().as_secs_f64() * 1e3;
    Retrieval {
        cases: args.cases,
        clusters: CLUSTERS,
        queries: QUERIES,
        k: K,
        precision_at_k: hits as f64 / (QUERIES * K) as f64,
        precision_of_retrieved: if retrieved == 0 {
            0.0
        } else {
            hits as f64 / retrieved as f64
        },
        mean_retrieved: retrieved as f64 / QUERIES as f64,
        random_baseline: 1.0 / CLUSTERS as f64,
        ms_per_query: elapsed / QUERIES as f64,
    }
}

/// The nearest-rank percentile (0 for no values).
fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn print(r: &Report, args: &EvalArgs) {
    println!("iotcane eval (seed {})", r.seed);
    println!();
    println!(
        "Example scenarios ({}, seed knowledge, default settings)",
        args.examples.display()
    );
    println!(
        "  {:<24} {:>10} {:>7} {:>9} {:>7} {:>10} {:>12} {:>9}",
        "scenario", "space", "method", "nodes", "configs", "best", "brute force", "ms"
    );
    for s in &r.scenarios {
        println!(
            "  {:<24} {:>10.3e} {:>7} {:>9} {:>7} {:>10} {:>12} {:>9.2}",
            s.name,
            s.search_space,
            s.method,
            s.nodes,
            s.configurations,
            s.best_objective.map_or("-".into(), |o| format!("{o:.4}")),
            match s.brute_force_agrees {
                Some(true) => "agrees",
                Some(false) => "DISAGREES",
                None => "too large",
            },
            s.ms
        );
    }
    let s = &r.small;
    println!();
    println!("Small instances: exact search vs brute force");
    println!(
        "  {} instances (search space median {:.0}, max {:.0}); {} feasible",
        s.instances, s.median_search_space, s.max_search_space, s.feasible
    );
    println!(
        "  solved exactly {}/{}; top-k equal to brute force {}/{} (max |Δ objective| {:.1e})",
        s.exact, s.instances, s.agree, s.instances, s.max_objective_difference
    );
    let l = &r.large;
    println!();
    println!("Large instances: the anytime heuristic (exact_limit 0) vs the exact optimum");
    println!(
        "  {} instances (search space {:.1e} to {:.1e}, median {:.1e}); {} feasible",
        l.instances, l.min_search_space, l.max_search_space, l.median_search_space, l.feasible
    );
    println!(
        "  exact reference (≤ {} nodes) completed for {}/{}; its nodes: median {}, max {}",
        l.reference_budget,
        l.reference_exact,
        l.instances,
        l.reference_median_nodes,
        l.reference_max_nodes
    );
    for h in &l.heuristics {
        println!(
            "  node budget {:>7}: optimal {}/{}, missed {}, proved exact {}/{}; gap relative mean {:.3}% max {:.3}%, absolute mean {:.2e} max {:.2e}{}; reported gap mean {:.2e}; median {:.3} ms",
            h.node_budget,
            h.optimal,
            h.compared,
            h.missed,
            h.proved_exact,
            l.instances,
            h.mean_relative_gap * 100.0,
            h.max_relative_gap * 100.0,
            h.mean_absolute_gap,
            h.max_absolute_gap,
            h.worst_seed
                .map_or(String::new(), |s| format!(" (worst: seed {s})")),
            h.mean_reported_gap,
            h.median_ms
        );
    }
    let q = &r.retrieval;
    println!();
    println!(
        "Case retrieval: {} cases in {} clusters, {} held-out queries",
        q.cases, q.clusters, q.queries
    );
    println!(
        "  precision@{} {:.3} (of retrieved {:.3}; random {:.3}); mean retrieved {:.2}; {:.3} ms/query",
        q.k,
        q.precision_at_k,
        q.precision_of_retrieved,
        q.random_baseline,
        q.mean_retrieved,
        q.ms_per_query
    );
    let t = &r.latency;
    println!();
    println!(
        "Latency of recommend over {} runs (scenarios, small, large heuristic)",
        t.runs
    );
    println!(
        "  p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms, max {:.3} ms; small p50 {:.3} ms; large p50 {:.3} ms, p99 {:.3} ms",
        t.p50_ms, t.p95_ms, t.p99_ms, t.max_ms, t.small_p50_ms, t.large_p50_ms, t.large_p99_ms
    );
    println!();
    println!(
        "Validity: {} configurations audited, {} invalid",
        r.audited, r.invalid
    );
    if r.passed {
        println!("PASS");
    } else {
        println!("FAIL");
        for f in &r.failures {
            println!("  - {f}");
        }
    }
}
