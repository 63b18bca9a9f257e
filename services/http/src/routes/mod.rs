//! The route modules; each owns its `router()`.

pub mod events;
pub mod keys;
pub mod live;
pub mod ops;
pub mod recommendations;
pub mod resources;
pub mod sparql;
pub mod things;
