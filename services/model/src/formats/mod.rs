//! Reading the formats users bring: native JSON (an object, an array, or NDJSON), JSON-LD,
//! Turtle, N-Triples, N-Quads and W3C WoT Thing Descriptions.
//!
//! A file that cannot be read at all (a syntax error in Turtle, say) is a [`FormatError`]
//! with its position. A file that can be read yields one [`Item`] per resource, each
//! either a valid [`Resource`] or the [`Violations`] that keep it out.

mod application;
mod json;

use std::fmt;

use oxigraph::io::{JsonLdProfileSet, LoadedDocument, RdfFormat, RdfParser};
use oxrdf::{Graph, NamedOrBlankNode};
use serde_json::Value;

pub use application::{
    APPLICATION_CONTEXT_CLASS, APPLICATION_CONTEXT_URL, ApplicationContextError,
    application_context_from_graph, is_rdf, read_application_context,
};

use crate::resource::Resource;
use crate::td::{looks_like_td, resource_from_td};
use crate::validate::Violations;

/// The public URL of `schema/context.jsonld`; documents may reference it and it is
/// served from the bundled copy, never fetched.
pub const CONTEXT_URL: &str = "https://w3id.org/iotcane/context.jsonld";

/// The JSON-LD contexts this crate resolves offline.
const BUNDLED_CONTEXTS: [(&str, &str); 6] = [
    (
        CONTEXT_URL,
        include_str!("../../../../schema/context.jsonld"),
    ),
    (
        APPLICATION_CONTEXT_URL,
        include_str!("../../../../schema/application-context.jsonld"),
    ),
    (
        "https://www.w3.org/2022/wot/td/v1.1",
        include_str!("../../../../schema/w3c/td-context-1.1.jsonld"),
    ),
    (
        "https://www.w3.org/2019/wot/td/v1",
        include_str!("../../../../schema/w3c/td-context-1.1.jsonld"),
    ),
    (
        "https://www.w3.org/2022/wot/discovery",
        include_str!("../../../../schema/w3c/discovery-core.jsonld"),
    ),
    (
        "https://www.w3.org/2019/wot/td/v1.1",
        include_str!("../../../../schema/w3c/td-context-1.1.jsonld"),
    ),
];

/// The bundled text of a JSON-LD context, by URL.
pub fn bundled_context(url: &str) -> Option<&'static str> {
    BUNDLED_CONTEXTS
        .iter()
        .find(|(u, _)| *u == url)
        .map(|(_, text)| *text)
}

/// The input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// A native resource, a JSON array of them, or a Thing Description (told apart by content).
    Json,
    /// One native resource or Thing Description per line.
    NdJson,
    JsonLd,
    Turtle,
    NTriples,
    NQuads,
}

impl Format {
    /// The format a file name's extension names.
    pub fn from_path(path: &str) -> Option<Format> {
        let lower = path.to_ascii_lowercase();
        let ext = lower.rsplit('.').next()?;
        Some(match ext {
            "json" => Format::Json,
            "ndjson" | "jsonl" => Format::NdJson,
            "jsonld" => Format::JsonLd,
            "ttl" => Format::Turtle,
            "nt" => Format::NTriples,
            "nq" => Format::NQuads,
            _ => return None,
        })
    }

    /// The format a media type names.
    pub fn from_media_type(media_type: &str) -> Option<Format> {
        let essence = media_type.split(';').next()?.trim().to_ascii_lowercase();
        Some(match essence.as_str() {
            "application/json" | "application/td+json" => Format::Json,
            "application/x-ndjson" | "application/ndjson" => Format::NdJson,
            "application/ld+json" => Format::JsonLd,
            "text/turtle" => Format::Turtle,
            "application/n-triples" => Format::NTriples,
            "application/n-quads" => Format::NQuads,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::NdJson => "NDJSON",
            Format::JsonLd => "JSON-LD",
            Format::Turtle => "Turtle",
            Format::NTriples => "N-Triples",
            Format::NQuads => "N-Quads",
        }
    }
}

/// A file that could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{format} syntax error: {message}")]
pub struct FormatError {
    pub format: &'static str,
    /// `line L, column C` where known (the message says it too).
    pub position: Option<String>,
    pub message: String,
}

/// One resource read from an input, or why it was refused.
#[derive(Debug, Clone)]
pub struct Item {
    /// Where in the input: `#3` for the fourth JSON element or line, or the RDF subject.
    pub origin: Origin,
    pub result: Result<Resource, Violations>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The position in a JSON array or NDJSON file (0-based), or 0 for a lone object.
    Index(usize),
    /// The RDF subject the resource was read from.
    Subject(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Index(i) => write!(f, "item {i}"),
            Origin::Subject(s) => f.write_str(s),
        }
    }
}

/// Reads every resource in `bytes`.
pub fn read(format: Format, bytes: &[u8]) -> Result<Vec<Item>, FormatError> {
    match format {
        Format::Json => json::read_json(bytes),
        Format::NdJson => Ok(json::read_ndjson(bytes)),
        Format::JsonLd => read_rdf(
            RdfFormat::JsonLd {
                profile: JsonLdProfileSet::empty(),
            },
            bytes,
        ),
        Format::Turtle => read_rdf(RdfFormat::Turtle, bytes),
        Format::NTriples => read_rdf(RdfFormat::NTriples, bytes),
        Format::NQuads => read_rdf(RdfFormat::NQuads, bytes),
    }
}

/// The media types one resource can be written in, preferred first.
pub const RESOURCE_MEDIA_TYPES: &[&str] = &[
    "application/json",
    "application/ld+json",
    "text/turtle",
    "application/n-triples",
];

/// Writes one resource in a media type of [`RESOURCE_MEDIA_TYPES`] (anything else is
/// native JSON). JSON-LD is the native form with the IoT-CANE context.
pub fn write_resource(resource: &Resource, media_type: &str) -> Result<Vec<u8>, FormatError> {
    let format = match media_type {
        "text/turtle" => RdfFormat::Turtle,
        "application/n-triples" => RdfFormat::NTriples,
        "application/ld+json" => {
            let mut json = resource.to_json();
            if let Value::Object(map) = &mut json {
                map.insert("@context".into(), Value::String(CONTEXT_URL.to_owned()));
            }
            return Ok(json.to_string().into_bytes());
        }
        _ => return Ok(resource.to_json().to_string().into_bytes()),
    };
    let fail = |e: std::io::Error| FormatError {
        format: format.name(),
        position: None,
        message: e.to_string(),
    };
    let mut serializer = oxigraph::io::RdfSerializer::from_format(format)
        .with_prefix("ic", crate::vocab::ic::NS)
        .map_err(|e| FormatError {
            format: format.name(),
            position: None,
            message: e.to_string(),
        })?
        .for_writer(Vec::new());
    for triple in crate::rdf::to_triples(resource) {
        serializer.serialize_triple(&triple).map_err(fail)?;
    }
    serializer.finish().map_err(fail)
}

/// Reads one JSON value that is a native resource or a Thing Description.
pub fn read_json_value(value: Value) -> Result<Resource, Violations> {
    match value {
        Value::Object(object) if looks_like_td(&object) => resource_from_td(object, None),
        other => Resource::from_json(other),
    }
}

/// Parses RDF into one graph (named graphs merged) and reads every typed resource.
pub fn read_rdf(format: RdfFormat, bytes: &[u8]) -> Result<Vec<Item>, FormatError> {
    let graph = parse_graph(format, bytes)?;
    Ok(crate::rdf::read_resources(&graph)
        .into_iter()
        .map(|(subject, result)| Item {
            origin: Origin::Subject(subject_label(&subject)),
            result,
        })
        .collect())
}

fn subject_label(subject: &NamedOrBlankNode) -> String {
    subject.to_string()
}

/// Parses RDF of any supported syntax into one graph; contexts resolve offline only.
pub fn parse_graph(format: RdfFormat, bytes: &[u8]) -> Result<Graph, FormatError> {
    let mut graph = Graph::new();
    // Relative IRIs (a JSON-LD document's slug ids among them: JSON-LD ignores an @base
    // set in a referenced context) resolve by the minting rule.
    let parser = RdfParser::from_format(format)
        .with_base_iri(crate::ids::RESOURCE_BASE)
        .map_err(|e| FormatError {
            format: format.name(),
            position: None,
            message: e.to_string(),
        })?
        .for_slice(bytes)
        .with_document_loader(|url| {
        match bundled_context(url) {
            Some(text) => Ok(LoadedDocument {
                url: url.to_owned(),
                content: text.as_bytes().to_vec(),
                format: RdfFormat::JsonLd { profile: JsonLdProfileSet::empty() },
            }),
            None => Err(format!(
                "remote JSON-LD context {url} is not fetched; only the bundled contexts ({}) resolve",
                BUNDLED_CONTEXTS.map(|(u, _)| u).join(", ")
            )
            .into()),
        }
    });
    for quad in parser {
        let quad = quad.map_err(|e| rdf_error(format, &e))?;
        graph.insert(quad.as_ref());
    }
    Ok(graph)
}

fn rdf_error(format: RdfFormat, error: &oxigraph::io::RdfSyntaxError) -> FormatError {
    FormatError {
        format: format.name(),
        position: error
            .location()
            .map(|l| format!("line {}, column {}", l.start.line + 1, l.start.column + 1)),
        message: error.to_string(),
    }
}
