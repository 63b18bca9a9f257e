//! The native JSON form of a resource: `{"id", "kind", "name", ...kind fields}`.

use std::collections::BTreeSet;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::ids::ResourceId;
use crate::resource::{COMMON_KEYS, Kind, PLACEMENT_KEYS, Placement, Resource, ResourceBody};
use crate::validate::{Violation, Violations, validate};

impl Serialize for Resource {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let body = match &self.body {
            ResourceBody::Device(b) => serde_json::to_value(b),
            ResourceBody::EdgeNode(b) => serde_json::to_value(b),
            ResourceBody::CloudOffering(b) => serde_json::to_value(b),
            ResourceBody::NetworkLink(b) => serde_json::to_value(b),
            ResourceBody::Service(b) => serde_json::to_value(b),
            ResourceBody::Case(b) => serde_json::to_value(b),
            ResourceBody::Rule(b) => serde_json::to_value(b),
        }
        .map_err(serde::ser::Error::custom)?;
        let Value::Object(body) = body else {
            return Err(serde::ser::Error::custom("resource body is not an object"));
        };
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("kind", self.kind().as_str())?;
        map.serialize_entry("name", &self.name)?;
        if let Some(description) = &self.description {
            map.serialize_entry("description", description)?;
        }
        if !self.tags.is_empty() {
            map.serialize_entry("tags", &self.tags)?;
        }
        if let Some(source) = &self.source {
            map.serialize_entry("source", source)?;
        }
        for (key, value) in &body {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl Resource {
    /// The native JSON form.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Reads, normalizes and validates the native JSON form. Every violation found is
    /// returned, each with its JSON path.
    pub fn from_json(value: Value) -> Result<Resource, Violations> {
        let resource = parse(value)?;
        let violations = validate(&resource);
        if violations.is_empty() {
            Ok(resource)
        } else {
            Err(Violations(violations))
        }
    }

    /// Reads the native JSON form without validating it, for data that was valid when
    /// stored (the journal).
    pub fn from_trusted_json(value: Value) -> Result<Resource, Violations> {
        parse(value)
    }
}

fn parse(value: Value) -> Result<Resource, Violations> {
    let Value::Object(mut map) = value else {
        return Err(Violations::one("", "a resource must be a JSON object"));
    };
    let mut found = Vec::new();
    let id = take_string(&mut map, "id", true, &mut found).and_then(|s| {
        s.parse::<ResourceId>()
            .map_err(|e| found.push(Violation::new("/id", e.to_string())))
            .ok()
    });
    let kind = take_string(&mut map, "kind", true, &mut found).and_then(|s| {
        let kind = Kind::parse(&s);
        if kind.is_none() {
            found.push(Violation::new(
                "/kind",
                format!("unknown kind {s:?}, expected one of: {}", Kind::expected()),
            ));
        }
        kind
    });
    let name = take_string(&mut map, "name", true, &mut found);
    let description = take_string(&mut map, "description", false, &mut found);
    let source = take_string(&mut map, "source", false, &mut found);
    let tags = match map.remove("tags") {
        None | Some(Value::Null) => BTreeSet::new(),
        Some(Value::Array(items)) => {
            let mut tags = BTreeSet::new();
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    Value::String(s) => {
                        tags.insert(s);
                    }
                    _ => found.push(Violation::new(format!("/tags/{i}"), "must be a string")),
                }
            }
            tags
        }
        Some(_) => {
            found.push(Violation::new("/tags", "must be an array of strings"));
            BTreeSet::new()
        }
    };
    let body = kind.and_then(|kind| {
        let allowed = kind.keys();
        let unknown: Vec<_> = map
            .keys()
            .filter(|k| !allowed.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in &unknown {
            found.push(Violation::new(
                format!("/{key}"),
                format!(
                    "unknown field for kind {kind}; allowed: {}, {}",
                    COMMON_KEYS.join(", "),
                    allowed.join(", ")
                ),
            ));
        }
        let mut missing = false;
        for key in kind.required_keys() {
            if map.get(*key).is_none_or(serde_json::Value::is_null) {
                found.push(Violation::new(format!("/{key}"), "is required"));
                missing = true;
            }
        }
        if !unknown.is_empty() || missing {
            return None;
        }
        match body_from_map(kind, map) {
            Ok(body) => Some(body),
            Err(mut v) => {
                found.append(&mut v);
                None
            }
        }
    });
    match (id, name, body) {
        (Some(id), Some(name), Some(body)) if found.is_empty() => {
            let mut resource = Resource {
                id,
                name,
                description,
                tags,
                source,
                body,
            };
            resource.normalize();
            Ok(resource)
        }
        _ => {
            found.sort();
            Err(Violations(found))
        }
    }
}

fn take_string(
    map: &mut Map<String, Value>,
    key: &str,
    required: bool,
    found: &mut Vec<Violation>,
) -> Option<String> {
    match map.remove(key) {
        Some(Value::String(s)) => Some(s),
        None | Some(Value::Null) => {
            if required {
                found.push(Violation::new(format!("/{key}"), "is required"));
            }
            None
        }
        Some(_) => {
            found.push(Violation::new(format!("/{key}"), "must be a string"));
            None
        }
    }
}

fn body_from_map(kind: Kind, map: Map<String, Value>) -> Result<ResourceBody, Vec<Violation>> {
    if matches!(kind, Kind::Device | Kind::EdgeNode) {
        placement_errors(&map)?;
    }
    let value = Value::Object(map);
    let one = |v: Violation| vec![v];
    Ok(match kind {
        Kind::Device => ResourceBody::Device(typed(value).map_err(one)?),
        Kind::EdgeNode => ResourceBody::EdgeNode(typed(value).map_err(one)?),
        Kind::CloudOffering => ResourceBody::CloudOffering(typed(value).map_err(one)?),
        Kind::NetworkLink => ResourceBody::NetworkLink(typed(value).map_err(one)?),
        Kind::Service => ResourceBody::Service(typed(value).map_err(one)?),
        Kind::Case => ResourceBody::Case(typed(value).map_err(one)?),
        Kind::Rule => ResourceBody::Rule(typed(value).map_err(one)?),
    })
}

/// The shared placement fields are a flattened struct, through which serde loses the
/// error path; each is read on its own first so a type error names its full path.
fn placement_errors(map: &Map<String, Value>) -> Result<(), Vec<Violation>> {
    let mut found = Vec::new();
    for (key, value) in map {
        if !PLACEMENT_KEYS.contains(&key.as_str()) {
            continue;
        }
        let single: Map<String, Value> = [(key.clone(), value.clone())].into_iter().collect();
        if let Err(v) = typed::<Placement>(Value::Object(single)) {
            found.push(v);
        }
    }
    if found.is_empty() { Ok(()) } else { Err(found) }
}

/// Deserializes with the JSON pointer of the first type error.
pub fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Violation> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path = String::new();
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => {
                    path.push('/');
                    path.push_str(&index.to_string());
                }
                serde_path_to_error::Segment::Map { key } => {
                    path.push('/');
                    path.push_str(&crate::validate::pointer_segment(key));
                }
                serde_path_to_error::Segment::Enum { variant } => {
                    path.push('/');
                    path.push_str(variant);
                }
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        let message = e.into_inner().to_string();
        // serde reports a missing field at the enclosing object.
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            return Violation::new(format!("{path}/{field}"), "is required");
        }
        Violation::new(path, message)
    })
}
