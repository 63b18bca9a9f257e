//! The unified model of IoT configuration knowledge.
//!
//! Devices, edge nodes, cloud offerings, network links, software services, cases and the
//! refinement rules learnt from them are [`Resource`]s. This crate gives them one identity
//! rule ([`ids`]), one validation ([`validate`]), one RDF mapping ([`rdf`]) and readers for
//! the formats users bring ([`formats`]: native JSON, JSON-LD, Turtle, N-Triples, N-Quads
//! and W3C WoT Thing Descriptions). It does no I/O: callers hand it bytes and get values
//! back.
//!
//! The mapping between the native JSON keys and RDF terms is documented in
//! `schema/VOCABULARY.md`; `schema/shapes.ttl` states the same constraints as SHACL.

pub mod fields;
pub mod formats;
pub mod ids;
mod native;
pub mod rdf;
pub mod resource;
pub mod td;
pub mod validate;
pub mod vocab;

mod enums;

pub use enums::{
    AffordanceKind, BindingRole, Comparator, DeployTarget, DeviceStatus, Metric, OfferingKind,
    OutcomeStatus, PowerSource, Protocol, RuleAction, ServiceKind,
};
pub use ids::{IdError, ResourceId, Tenant};
pub use native::typed;
pub use resource::{
    Affordance, Binding, Case, CloudOffering, Configuration, Device, EdgeNode, Form, Kind,
    LiveContext, Location, NetworkLink, Outcome, Placement, QosRequirement, Resource, ResourceBody,
    Rule, RuleCondition, RuleTarget, Service,
};
pub use validate::{Violation, Violations};
