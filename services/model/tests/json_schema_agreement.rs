//! `schema/json-schema/resource.schema.json` and the Rust validator agree: the schema
//! accepts every valid fixture and refuses every invalid one
//! (`tests/fixtures/{valid,invalid}/*.json`, the same fixtures the SHACL test uses).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::Value;

fn schema() -> jsonschema::Validator {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../schema/json-schema/resource.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("the resource schema compiles")
}

fn fixtures(dir: &str) -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty());
    paths
        .into_iter()
        .map(|p| {
            let value: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, value["resource"].clone())
        })
        .collect()
}

#[test]
fn the_schema_accepts_every_valid_fixture() {
    let schema = schema();
    for (name, resource) in fixtures("valid") {
        assert!(
            iotcane_model::Resource::from_json(resource.clone()).is_ok(),
            "{name}: the validator"
        );
        let errors: Vec<String> = schema
            .iter_errors(&resource)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
}

/// Invalid fixtures JSON Schema cannot refuse, each with the reason; the validator
/// refuses them, and the schema's descriptions state the rule in words.
const SCHEMA_CANNOT_SEE: &[(&str, &str)] = &[
    (
        "network-link-same-endpoints",
        "`from` differs from `to`: JSON Schema cannot compare two members",
    ),
    (
        "rule-refines-itself",
        "`refines` differs from `id`: JSON Schema cannot compare two members",
    ),
];

#[test]
fn the_schema_refuses_every_invalid_fixture() {
    let schema = schema();
    let mut accepted = Vec::new();
    for (name, resource) in fixtures("invalid") {
        assert!(
            iotcane_model::Resource::from_json(resource.clone()).is_err(),
            "{name}: the validator"
        );
        if schema.is_valid(&resource) {
            accepted.push(name);
        }
    }
    let known: Vec<&str> = SCHEMA_CANNOT_SEE.iter().map(|(name, _)| *name).collect();
    assert_eq!(accepted, known, "invalid fixtures the JSON Schema accepts");
}
