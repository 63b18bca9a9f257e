//! Helpers of the SHACL agreement test (`tests/shacl_agreement.rs`).

pub mod native_rdf;
pub mod paths;
pub mod shacl_core;
