//! The seed knowledge base, loaded the way the app layer retrieves candidates.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use iotcane_model::Resource;
use iotcane_model::formats::{self, Format};
use iotcane_recommender::{AppContext, CaseIndex, Knowledge};

pub const SCENARIOS: [&str; 5] = [
    "smart-healthcare",
    "smart-agriculture",
    "predictive-maintenance",
    "smart-parking",
    "air-quality",
];

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schema/examples");

pub struct Seed {
    pub resources: Vec<Resource>,
    pub cases: CaseIndex,
}

pub fn seed() -> Seed {
    let mut resources = Vec::new();
    for file in [
        "devices", "edge", "cloud", "links", "services", "cases", "rules",
    ] {
        let path = format!("{EXAMPLES}/{file}.ttl");
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        for item in formats::read(Format::Turtle, &bytes).unwrap() {
            resources.push(item.result.unwrap());
        }
    }
    let mut cases = CaseIndex::new();
    for r in &resources {
        cases.upsert(r);
    }
    Seed { resources, cases }
}

pub fn scenario(name: &str) -> AppContext {
    let text = std::fs::read_to_string(format!("{EXAMPLES}/scenarios/{name}.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

impl Seed {
    /// The candidates the app layer would retrieve for a context.
    pub fn knowledge(&self, ctx: &AppContext) -> Knowledge {
        Knowledge::from_resources(&self.resources, ctx)
    }
}
