//! Request bodies and content negotiation.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use serde_json::Value;

use crate::error::ApiError;

/// A request body with its media type (parameters dropped, lower case).
#[derive(Debug)]
pub struct Body {
    pub media_type: Option<String>,
    pub bytes: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let media_type = media_type(req.headers());
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(usize::MAX, |l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit }
            } else {
                ApiError::MalformedBody {
                    format: "body",
                    detail: rejection.body_text(),
                }
            }
        })?;
        Ok(Body { media_type, bytes })
    }
}

/// The configured body limit, put on each request so errors can name it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

impl Body {
    /// Fails unless the body's media type is one of `accepted`.
    pub fn expect(&self, accepted: &'static [&'static str]) -> Result<&str, ApiError> {
        match self.media_type.as_deref() {
            Some(m) if accepted.contains(&m) => Ok(m),
            got => Err(ApiError::UnsupportedMediaType {
                got: got.unwrap_or("(none)").to_owned(),
                expected: accepted.join(", "),
            }),
        }
    }

    /// The body as JSON, when its media type is one of `accepted`.
    pub fn json(&self, accepted: &'static [&'static str]) -> Result<Value, ApiError> {
        self.expect(accepted)?;
        parse_json(&self.bytes)
    }
}

pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::MalformedJson(e.to_string()))
}

/// The media type of a request, without parameters, in lower case.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    (!essence.is_empty()).then_some(essence)
}

/// The best of `offers` for the request's `Accept` header (the first offer when there is
/// none, or when it accepts anything). `None`: nothing acceptable.
pub fn negotiate(headers: &HeaderMap, offers: &[&'static str]) -> Option<&'static str> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return offers.first().copied();
    };
    let mut ranges: Vec<(f32, usize, String)> = Vec::new();
    for (i, part) in accept.split(',').enumerate() {
        let mut pieces = part.split(';');
        let range = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        if range.is_empty() {
            continue;
        }
        let q = pieces
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if q > 0.0 {
            ranges.push((q, i, range));
        }
    }
    // Highest q first; among equals, the more specific range, then the earlier one.
    ranges.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| specificity(&b.2).cmp(&specificity(&a.2)))
            .then(a.1.cmp(&b.1))
    });
    for (_, _, range) in &ranges {
        if let Some(offer) = offers.iter().find(|o| matches_range(range, o)) {
            return Some(offer);
        }
    }
    None
}

fn specificity(range: &str) -> u8 {
    match range {
        "*/*" => 0,
        r if r.ends_with("/*") => 1,
        _ => 2,
    }
}

fn matches_range(range: &str, offer: &str) -> bool {
    range == "*/*"
        || range == offer
        || range
            .strip_suffix("/*")
            .is_some_and(|top| offer.split('/').next() == Some(top))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, v.parse().unwrap());
        h
    }

    #[test]
    fn negotiation_follows_q_values_and_specificity() {
        let offers = ["application/json", "text/turtle", "application/n-triples"];
        assert_eq!(
            negotiate(&HeaderMap::new(), &offers),
            Some("application/json")
        );
        assert_eq!(
            negotiate(&accept("text/turtle"), &offers),
            Some("text/turtle")
        );
        assert_eq!(
            negotiate(&accept("application/json;q=0.5, text/turtle"), &offers),
            Some("text/turtle")
        );
        assert_eq!(negotiate(&accept("text/*"), &offers), Some("text/turtle"));
        assert_eq!(negotiate(&accept("*/*"), &offers), Some("application/json"));
        assert_eq!(negotiate(&accept("image/png"), &offers), None);
        assert_eq!(negotiate(&accept("text/turtle;q=0"), &offers), None);
    }
}
