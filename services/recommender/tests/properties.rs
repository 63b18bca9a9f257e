//! Properties of the solver on generated instances: the exact search agrees with brute
//! force, no configuration breaks a hard constraint (re-derived from the knowledge, not
//! taken from the solver), answers are deterministic, and the anytime heuristic never
//! returns an invalid configuration nor claims better than the optimum.

use iotcane_model::BindingRole;
use iotcane_recommender::generate::{self, Size};
use iotcane_recommender::{
    AppContext, CaseIndex, Configuration, Knowledge, OutBinding, Recommendation, Settings,
    enumerate, recommend, search_space,
};
use proptest::prelude::*;

const CASES: u32 = 64;

fn small(seed: u64) -> (AppContext, Knowledge, CaseIndex) {
    let (ctx, knowledge) = generate::instance(seed, Size::Small);
    let cases = generate::instance_cases(seed, &ctx, &knowledge);
    (ctx, knowledge, cases)
}

/// A configuration's bindings as `enumerate` lists them: without the network links.
fn slot_bindings(c: &Configuration) -> Vec<OutBinding> {
    c.bindings
        .iter()
        .filter(|b| b.binding.role != BindingRole::Link)
        .map(|b| b.binding.clone())
        .collect()
}

fn assert_valid(
    ctx: &AppContext,
    knowledge: &Knowledge,
    answer: &Recommendation,
) -> Result<(), TestCaseError> {
    for c in &answer.configurations {
        let broken = generate::audit(ctx, knowledge, c);
        prop_assert!(
            broken.is_empty(),
            "rank {} breaks {broken:#?}\n{c:#?}",
            c.rank
        );
    }
    let objectives: Vec<f64> = answer.configurations.iter().map(|c| c.objective).collect();
    prop_assert!(
        objectives.windows(2).all(|w| w[0] <= w[1]),
        "not ranked: {objectives:?}"
    );
    prop_assert!(answer.configurations.len() <= ctx.alternatives as usize);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn generated_instances_are_valid_and_small(seed in any::<u64>()) {
        let (ctx, knowledge, _) = small(seed);
        prop_assert!(ctx.check().is_ok(), "{:?}", ctx.check());
        prop_assert_eq!(knowledge.devices.len(), ctx.requirements().len());
        prop_assert!(search_space(&ctx, &knowledge) <= Size::Small.space().1);
    }

    #[test]
    fn the_exact_search_agrees_with_brute_force(seed in any::<u64>()) {
        let (ctx, knowledge, cases) = small(seed);
        let answer = recommend(&ctx, &knowledge, &cases, &Settings::default());
        let oracle = enumerate(&ctx, &knowledge, &cases);
        prop_assert_eq!(answer.solver.method, "exact");
        prop_assert_eq!(answer.configurations.len(), oracle.len());
        for (c, (objective, bindings)) in answer.configurations.iter().zip(&oracle) {
            prop_assert!((c.objective - objective).abs() <= 1e-9, "rank {}: {} vs brute force {}", c.rank, c.objective, objective);
            prop_assert_eq!(&slot_bindings(c), bindings, "rank {}", c.rank);
        }
        prop_assert_eq!(answer.solver.gap.unwrap_or(0.0), 0.0);
    }

    #[test]
    fn no_configuration_breaks_a_hard_constraint(seed in any::<u64>()) {
        let (ctx, knowledge, cases) = small(seed);
        let answer = recommend(&ctx, &knowledge, &cases, &Settings::default());
        assert_valid(&ctx, &knowledge, &answer)?;
        prop_assert_eq!(answer.configurations.is_empty(), answer.conflict.is_some());
    }

    #[test]
    fn the_same_input_gives_the_same_answer(seed in any::<u64>()) {
        let (ctx, knowledge, cases) = small(seed);
        let (ctx2, knowledge2, cases2) = small(seed);
        prop_assert_eq!(&ctx, &ctx2);
        let once = serde_json::to_string(&recommend(&ctx, &knowledge, &cases, &Settings::default())).unwrap();
        let twice = serde_json::to_string(&recommend(&ctx2, &knowledge2, &cases2, &Settings::default())).unwrap();
        prop_assert_eq!(once, twice);
        let heuristic = Settings { exact_limit: 0.0, node_budget: 50, heuristic_passes: 5 };
        let once = serde_json::to_string(&recommend(&ctx, &knowledge, &cases, &heuristic)).unwrap();
        let twice = serde_json::to_string(&recommend(&ctx, &knowledge, &cases, &heuristic)).unwrap();
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn the_heuristic_is_valid_and_never_beats_the_optimum(seed in any::<u64>(), budget in 0u64..200) {
        let (ctx, knowledge, cases) = small(seed);
        let oracle = enumerate(&ctx, &knowledge, &cases);
        let settings = Settings { exact_limit: 0.0, node_budget: budget, heuristic_passes: 10 };
        let answer = recommend(&ctx, &knowledge, &cases, &settings);
        assert_valid(&ctx, &knowledge, &answer)?;
        match (answer.configurations.first(), oracle.first()) {
            (Some(best), Some((optimum, _))) => {
                prop_assert!(best.objective >= optimum - 1e-9, "{} beats the optimum {}", best.objective, optimum);
                if answer.solver.method == "exact" {
                    prop_assert!((best.objective - optimum).abs() <= 1e-9, "exact but {} ≠ {}", best.objective, optimum);
                    let objectives: Vec<f64> = answer.configurations.iter().map(|c| c.objective).collect();
                    let optimal: Vec<f64> = oracle.iter().map(|o| o.0).collect();
                    prop_assert_eq!(objectives.len(), optimal.len());
                    for (a, b) in objectives.iter().zip(&optimal) {
                        prop_assert!((a - b).abs() <= 1e-9, "exact top-k {objectives:?} vs {optimal:?}");
                    }
                }
                let lower = answer.solver.lower_bound.unwrap_or(f64::NEG_INFINITY);
                prop_assert!(lower <= optimum + 1e-9, "lower bound {lower} above the optimum {optimum}");
            }
            (Some(best), None) => prop_assert!(false, "the heuristic found {best:#?}; brute force found nothing"),
            (None, Some((optimum, _))) => prop_assert!(answer.solver.method != "exact", "claims exact, misses the optimum {optimum}"),
            (None, None) => {}
        }
    }
}

#[test]
fn case_clusters_are_valid_and_queries_are_near_their_cluster() {
    let cases = generate::cases(7, 200, 10);
    assert_eq!(cases.len(), 200);
    assert!(
        cases
            .iter()
            .enumerate()
            .all(|(i, (_, cluster))| *cluster == i % 10)
    );
    let mut index = CaseIndex::new();
    for (case, _) in &cases {
        index.upsert(case);
    }
    assert_eq!(index.len(), 200);
    let query = generate::query_for(7, 3, 0);
    assert_eq!(query, generate::query_for(7, 3, 0));
    assert_ne!(query, generate::query_for(7, 3, 1));
    let found = index.retrieve(&index.query_features(&query), 3);
    assert!(!found.is_empty(), "nothing retrieved for {query}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    /// The audit is not vacuous: a configuration with a doctored total, a device that
    /// serves another property, or an offering of another region is caught.
    #[test]
    fn the_audit_catches_tampered_configurations(seed in any::<u64>()) {
        let (ctx, knowledge, cases) = small(seed);
        let answer = recommend(&ctx, &knowledge, &cases, &Settings::default());
        let Some(best) = answer.configurations.first() else {
            return Ok(());
        };
        let mut c = best.clone();
        c.totals.monthly_cost += 1.0;
        prop_assert!(!generate::audit(&ctx, &knowledge, &c).is_empty());
        let mut c = best.clone();
        c.totals.latency_ms *= 1.5;
        c.totals.latency_ms += 1.0;
        prop_assert!(!generate::audit(&ctx, &knowledge, &c).is_empty());
        let other_region = knowledge.offerings.iter().find(|o| match &o.body {
            iotcane_model::ResourceBody::CloudOffering(x) => format!("{}/{}", x.provider, x.region) != best.region,
            _ => false,
        });
        if let Some(other) = other_region {
            let mut c = best.clone();
            if let Some(b) = c.bindings.iter_mut().find(|b| b.binding.requirement == "ingest") {
                b.binding.resource = other.id.to_string();
            }
            prop_assert!(!generate::audit(&ctx, &knowledge, &c).is_empty());
        }
        let mut c = best.clone();
        if let Some(b) = c.bindings.iter_mut().find(|b| b.binding.role == BindingRole::Device) {
            b.binding.quantity += 1;
        }
        prop_assert!(!generate::audit(&ctx, &knowledge, &c).is_empty());
    }
}
