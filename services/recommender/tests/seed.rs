//! The five example scenarios against the seed knowledge base in schema/examples.

mod support;

use iotcane_recommender::{Settings, recommend};
use support::{scenario, seed};

#[test]
fn every_example_scenario_gets_valid_ranked_configurations() {
    let seed = seed();
    for name in support::SCENARIOS {
        let ctx = scenario(name);
        ctx.check().unwrap();
        let knowledge = seed.knowledge(&ctx);
        let answer = recommend(&ctx, &knowledge, &seed.cases, &Settings::default());
        println!("{name}: {}", answer.summary);
        assert!(
            !answer.configurations.is_empty(),
            "{name}: {:#?}",
            answer.conflict
        );
        assert_eq!(answer.solver.method, "exact");
        for c in &answer.configurations {
            assert!(c.constraints.iter().all(|r| r.satisfied), "{name}: {c:#?}");
        }
        let objectives: Vec<f64> = answer.configurations.iter().map(|c| c.objective).collect();
        assert!(
            objectives.windows(2).all(|w| w[0] <= w[1]),
            "{name}: not ranked: {objectives:?}"
        );
        assert!(answer.configurations.len() <= ctx.alternatives as usize);
    }
}
