//! W3C WoT Thing Descriptions (TD 1.1) onto the model.
//!
//! A TD becomes a device, or an edge node when its `@type` names `ic:EdgeNode` (or
//! `iotcane:EdgeNode`). Its `title` is the name, its property, action and event affordances
//! with their forms become affordances, and the protocols are read from the forms' URI
//! schemes. Model fields a TD has no member for come from extension members named
//! `iotcane:{native key}` (e.g. `"iotcane:site": "ward-7"`, `"iotcane:observes":
//! ["heartRate"]`, `"iotcane:cpuCores": 4`). Without `iotcane:observes`/`iotcane:actuates`,
//! a device observes its property affordances and actuates its action affordances (names
//! made camelCase). The original TD is kept verbatim in `td`.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::enums::Protocol;
use crate::ids::{ResourceId, check_property_name};
use crate::resource::Resource;
use crate::validate::{MAX_JSON_DOCUMENT_BYTES, Violations};

/// The prefix of extension members carrying native fields.
pub const EXTENSION_PREFIX: &str = "iotcane:";

/// Whether a JSON object looks like a Thing Description rather than a native resource.
pub fn looks_like_td(object: &Map<String, Value>) -> bool {
    let td_context = |v: &Value| {
        v.as_str().is_some_and(|s| {
            s.starts_with("https://www.w3.org/2019/wot/td")
                || s.starts_with("https://www.w3.org/2022/wot/td")
        })
    };
    match object.get("@context") {
        Some(Value::String(_)) => object.get("@context").is_some_and(td_context),
        Some(Value::Array(items)) => items.iter().any(td_context),
        _ => false,
    }
}

/// Maps a TD to a resource. `id` names a TD that has no `id` of its own (an anonymous TD).
pub fn resource_from_td(
    td: Map<String, Value>,
    id: Option<ResourceId>,
) -> Result<Resource, Violations> {
    let size = serde_json::to_vec(&td).map_or(usize::MAX, |v| v.len());
    if size > MAX_JSON_DOCUMENT_BYTES {
        return Err(Violations::one(
            "",
            format!("a Thing Description must be at most {MAX_JSON_DOCUMENT_BYTES} bytes"),
        ));
    }
    let id = match (td.get("id"), id) {
        (Some(Value::String(s)), _) => Value::String(s.clone()),
        (Some(_), _) => return Err(Violations::one("/id", "must be a string")),
        (None, Some(id)) => Value::String(id.to_string()),
        (None, None) => return Err(Violations::one("/id", "is required (the TD has no id)")),
    };
    let title = td.get("title").cloned().unwrap_or(Value::Null);
    let is_edge = types_of(&td)
        .iter()
        .any(|t| t == "ic:EdgeNode" || t == "iotcane:EdgeNode");
    let base = td.get("base").and_then(Value::as_str).map(str::to_owned);

    let mut affordances = Vec::new();
    let mut protocols: BTreeSet<Protocol> = BTreeSet::new();
    let mut property_names = BTreeSet::new();
    let mut action_names = BTreeSet::new();
    for (member, kind) in [
        ("properties", "property"),
        ("actions", "action"),
        ("events", "event"),
    ] {
        let Some(Value::Object(map)) = td.get(member) else {
            continue;
        };
        for (name, affordance) in map {
            let mut forms = Vec::new();
            for form in affordance
                .get("forms")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(href) = form.get("href").and_then(Value::as_str) else {
                    continue;
                };
                let protocol = scheme_of(href)
                    .or_else(|| base.as_deref().and_then(scheme_of))
                    .and_then(Protocol::from_uri_scheme);
                if let Some(p) = protocol {
                    protocols.insert(p);
                }
                let mut f = json!({ "href": href });
                if let Some(ct) = form.get("contentType").and_then(Value::as_str) {
                    f["contentType"] = json!(ct);
                }
                if let Some(p) = protocol {
                    f["protocol"] = json!(p.as_str());
                }
                forms.push(f);
            }
            let mut a = json!({ "name": name, "affordanceKind": kind, "forms": forms });
            if let Some(title) = affordance.get("title").and_then(Value::as_str) {
                a["title"] = json!(title);
            }
            affordances.push(a);
            let camel = camel_case(name);
            if check_property_name(&camel).is_ok() {
                match kind {
                    "property" => {
                        property_names.insert(camel);
                    }
                    "action" => {
                        action_names.insert(camel);
                    }
                    _ => {}
                }
            }
        }
    }

    let mut native = Map::new();
    native.insert("id".into(), id);
    native.insert(
        "kind".into(),
        json!(if is_edge { "edgeNode" } else { "device" }),
    );
    native.insert("name".into(), title);
    if let Some(description) = td.get("description") {
        native.insert("description".into(), description.clone());
    }
    if !affordances.is_empty() {
        native.insert("affordances".into(), Value::Array(affordances));
    }
    for (key, value) in &td {
        if let Some(native_key) = key.strip_prefix(EXTENSION_PREFIX) {
            native.insert(native_key.to_owned(), value.clone());
        }
    }
    let protocol_list = json!(protocols.iter().map(|p| p.as_str()).collect::<Vec<_>>());
    if is_edge {
        native.entry("northboundProtocols").or_insert(protocol_list);
    } else {
        native.entry("protocols").or_insert(protocol_list);
        if !native.contains_key("observes") && !native.contains_key("actuates") {
            native.insert("observes".into(), json!(property_names));
            native.insert("actuates".into(), json!(action_names));
        }
    }
    native.insert("td".into(), Value::Object(td));
    Resource::from_json(Value::Object(native))
}

fn types_of(td: &Map<String, Value>) -> Vec<String> {
    match td.get("@type") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn scheme_of(href: &str) -> Option<&str> {
    let (scheme, _) = href.split_once(':')?;
    let valid = !scheme.is_empty()
        && scheme.as_bytes()[0].is_ascii_alphabetic()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    valid.then_some(scheme)
}

/// `heart_rate`, `heart-rate`, `HeartRate` → `heartRate`.
fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper_next = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if out.is_empty() {
                if c.is_ascii_digit() {
                    continue;
                }
                out.push(c.to_ascii_lowercase());
            } else if upper_next {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
            upper_next = false;
        } else {
            upper_next = !out.is_empty();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_names() {
        assert_eq!(camel_case("heart_rate"), "heartRate");
        assert_eq!(camel_case("Heart-Rate"), "heartRate");
        assert_eq!(camel_case("temperature"), "temperature");
    }
}
