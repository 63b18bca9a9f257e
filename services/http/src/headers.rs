//! Versions as entity tags: `ETag: "v{version}"` out, `If-Match` in.

use axum::http::{HeaderMap, HeaderValue, header};

use crate::error::ApiError;

pub fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"v{version}\"")).unwrap_or(HeaderValue::from_static("\"v0\""))
}

/// The version an `If-Match` header demands (`None` without one). `*` demands that the
/// resource exists: it stands for the current version, and a missing resource fails it.
pub fn expected_version(
    headers: &HeaderMap,
    app: &iotcane_app::App,
    tenant: &iotcane_model::Tenant,
    id: &iotcane_model::ResourceId,
) -> Result<Option<i64>, ApiError> {
    if headers
        .get(header::IF_MATCH)
        .is_none_or(|v| v.as_bytes() != b"*")
    {
        return if_match(headers);
    }
    match app.get(tenant, id)? {
        Some(stored) => Ok(Some(stored.meta.version)),
        None => Err(ApiError::PreconditionFailed(format!(
            "If-Match: * needs an existing resource, and `{id}` does not exist"
        ))),
    }
}

/// The version an `If-Match` header names: `None` without the header (or with `*`, which
/// [`expected_version`] resolves).
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    let tag = text.strip_prefix("W/").unwrap_or(text);
    tag.strip_prefix("\"v")
        .and_then(|t| t.strip_suffix('"'))
        .and_then(|v| v.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::PreconditionFailed(format!(
                "If-Match `{text}` is not an entity tag of this service (they read \"v<version>\")"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_reads_our_tags() {
        let mut h = HeaderMap::new();
        assert_eq!(if_match(&h).unwrap(), None);
        h.insert(header::IF_MATCH, etag(7));
        assert_eq!(if_match(&h).unwrap(), Some(7));
        h.insert(header::IF_MATCH, HeaderValue::from_static("W/\"v3\""));
        assert_eq!(if_match(&h).unwrap(), Some(3));
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"abc\""));
        assert!(if_match(&h).is_err());
    }
}
