//! Identity: tenants, resource ids, and the one rule that mints IRIs from them.
//!
//! - A resource id is either an absolute IRI (it contains `:`, e.g. `urn:uuid:…`), used as
//!   it is, or a slug (`^[A-Za-z0-9][A-Za-z0-9._~-]{0,199}$`) that becomes
//!   `https://w3id.org/iotcane/id/{slug}` — JSON-LD's own resolution against that base.
//! - Each resource's description lives in the named graph
//!   `https://w3id.org/iotcane/tenant/{tenant}/graph/{percent-encoded id}`.
//!
//! ```
//! use iotcane_model::{ResourceId, Tenant};
//! let tenant: Tenant = "acme".parse().unwrap();
//! let id: ResourceId = "rpi-4b".parse().unwrap();
//! assert_eq!(id.iri().as_str(), "https://w3id.org/iotcane/id/rpi-4b");
//! assert_eq!(
//!     tenant.graph_of(&id).as_str(),
//!     "https://w3id.org/iotcane/tenant/acme/graph/rpi-4b"
//! );
//! ```

use std::fmt;
use std::str::FromStr;

use oxrdf::NamedNode;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Base IRI that slugs resolve against.
pub const RESOURCE_BASE: &str = "https://w3id.org/iotcane/id/";
/// Prefix of every tenant's named graphs.
pub const TENANT_BASE: &str = "https://w3id.org/iotcane/tenant/";
/// Namespace of observable and actuatable properties.
pub const PROPERTY_BASE: &str = "https://w3id.org/iotcane/property/";

const MAX_ID_LEN: usize = 200;
const MAX_IRI_ID_LEN: usize = 1000;

/// Characters kept as they are when a resource id is put into a graph IRI.
const GRAPH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    #[error("tenant must match ^[a-z0-9][a-z0-9-]{{0,62}}$, got {0:?}")]
    Tenant(String),
    #[error(
        "id must be a slug matching ^[A-Za-z0-9][A-Za-z0-9._~-]{{0,199}}$ or an absolute IRI, got {0:?}"
    )]
    Slug(String),
    #[error("id looks like an IRI but is not a valid absolute IRI: {0}")]
    Iri(String),
    #[error("property name must be camelCase matching ^[a-z][A-Za-z0-9]{{0,63}}$, got {0:?}")]
    Property(String),
}

/// A tenant: the unit of isolation. Every resource belongs to exactly one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tenant(String);

impl Tenant {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The prefix shared by all of this tenant's graph IRIs.
    pub fn graph_prefix(&self) -> String {
        format!("{TENANT_BASE}{}/graph/", self.0)
    }

    /// The named graph holding one resource's description.
    pub fn graph_of(&self, id: &ResourceId) -> NamedNode {
        let encoded = utf8_percent_encode(id.as_str(), GRAPH_SEGMENT);
        NamedNode::new_unchecked(format!("{}{encoded}", self.graph_prefix()))
    }

    /// The inverse of [`Tenant::graph_of`]: which tenant and id a graph IRI names.
    pub fn parse_graph(graph: &str) -> Option<(Tenant, ResourceId)> {
        let rest = graph.strip_prefix(TENANT_BASE)?;
        let (tenant, encoded) = rest.split_once("/graph/")?;
        let id = percent_decode_str(encoded).decode_utf8().ok()?;
        Some((tenant.parse().ok()?, id.parse().ok()?))
    }
}

impl FromStr for Tenant {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= 63
            && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::Tenant(s.to_owned()))
        }
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A resource id, unique within a tenant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceId(String);

impl ResourceId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The IRI that names the resource in RDF.
    pub fn iri(&self) -> NamedNode {
        if self.is_iri() {
            NamedNode::new_unchecked(self.0.clone())
        } else {
            NamedNode::new_unchecked(format!("{RESOURCE_BASE}{}", self.0))
        }
    }

    fn is_iri(&self) -> bool {
        self.0.contains(':')
    }

    /// The inverse of [`ResourceId::iri`].
    pub fn from_iri(iri: &str) -> Result<Self, IdError> {
        match iri.strip_prefix(RESOURCE_BASE) {
            Some(slug) => slug.parse(),
            None => iri.parse(),
        }
    }
}

impl FromStr for ResourceId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(':') {
            if s.len() > MAX_IRI_ID_LEN {
                return Err(IdError::Iri(format!(
                    "longer than {MAX_IRI_ID_LEN} characters"
                )));
            }
            // A slug-based IRI must come back as its slug, so there is one spelling per id.
            if let Some(slug) = s.strip_prefix(RESOURCE_BASE) {
                return slug.parse();
            }
            NamedNode::new(s).map_err(|e| IdError::Iri(e.to_string()))?;
            return Ok(Self(s.to_owned()));
        }
        let bytes = s.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= MAX_ID_LEN
            && bytes[0].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'));
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::Slug(s.to_owned()))
        }
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for ResourceId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ResourceId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Checks a camelCase observable/actuatable property name.
pub fn check_property_name(name: &str) -> Result<(), IdError> {
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_lowercase()
        && bytes.iter().all(u8::is_ascii_alphanumeric);
    if valid {
        Ok(())
    } else {
        Err(IdError::Property(name.to_owned()))
    }
}

/// The IRI of an observable or actuatable property.
pub fn property_iri(name: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("{PROPERTY_BASE}{name}"))
}

/// Checks a slug used for sites, providers, regions and domains.
pub fn is_slug(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_and_iri_ids_mint_distinct_iris() {
        let slug: ResourceId = "pi-5".parse().unwrap();
        let iri: ResourceId = "urn:uuid:0804d572-cce8-422a-bb7c-4412fcd56f06"
            .parse()
            .unwrap();
        assert_eq!(slug.iri().as_str(), "https://w3id.org/iotcane/id/pi-5");
        assert_eq!(iri.iri().as_str(), iri.as_str());
        assert_eq!(ResourceId::from_iri(slug.iri().as_str()).unwrap(), slug);
        assert_eq!(ResourceId::from_iri(iri.iri().as_str()).unwrap(), iri);
    }

    #[test]
    fn graph_iri_round_trips_every_id() {
        let tenant: Tenant = "t-1".parse().unwrap();
        for raw in ["a", "urn:x:y/z?q=1#f", "http://example.com/a b"] {
            let Ok(id) = raw.parse::<ResourceId>() else {
                continue;
            };
            let graph = tenant.graph_of(&id);
            assert_eq!(
                Tenant::parse_graph(graph.as_str()),
                Some((tenant.clone(), id))
            );
        }
    }

    #[test]
    fn bad_ids_are_named() {
        assert!(matches!("".parse::<ResourceId>(), Err(IdError::Slug(_))));
        assert!(matches!("a/b".parse::<ResourceId>(), Err(IdError::Slug(_))));
        assert!(matches!("-a".parse::<ResourceId>(), Err(IdError::Slug(_))));
        assert!(matches!(
            "a b:c".parse::<ResourceId>(),
            Err(IdError::Iri(_))
        ));
        assert!(matches!("Acme".parse::<Tenant>(), Err(IdError::Tenant(_))));
        // A base-prefixed IRI is the same id as its slug.
        let via_iri: ResourceId = "https://w3id.org/iotcane/id/x".parse().unwrap();
        assert_eq!(via_iri.as_str(), "x");
    }
}
