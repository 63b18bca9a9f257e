//! The HTTP error type: every failure leaves as `application/problem+json` (RFC 9457)
//! with a stable `type`. 5xx bodies never carry internals; the detail goes to the log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use iotcane_app::store::StoreError;
use iotcane_app::{AppError, KeyError};
use iotcane_model::Violations;
use serde::Serialize;
use utoipa::ToSchema;

/// The base of every problem type URI.
pub const PROBLEM_BASE: &str = "https://w3id.org/iotcane/problems/";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// Stable URI naming the kind of problem.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// For invalid input: each offending field's JSON pointer and what is wrong with it.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub errors: Vec<FieldError>,
}

/// One offending field.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct FieldError {
    /// JSON pointer into the request body (or the query parameter's name).
    pub pointer: String,
    pub detail: String,
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the request body is not valid {format}: {detail}")]
    MalformedBody {
        format: &'static str,
        detail: String,
    },
    #[error("the input is invalid")]
    Invalid(Violations),
    #[error("unsupported content type `{got}`; use {expected}")]
    UnsupportedMediaType { got: String, expected: String },
    #[error("none of the accepted media types can be produced; available: {available}")]
    NotAcceptable { available: &'static str },
    #[error("the request body is larger than the {limit} bytes allowed")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("bad query parameter `{parameter}`: {detail}")]
    BadParameter { parameter: String, detail: String },
    #[error("{0}")]
    BadSparql(String),
    #[error("SERVICE calls to other endpoints are refused")]
    ServiceRefused,
    #[error("{0}")]
    UpdateRefused(String),
    #[error("{0}")]
    QueryTimeout(String),
    #[error("{0}")]
    ResultLimit(String),
    #[error("an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`")]
    MissingKey,
    #[error("the API key is not valid (unknown, malformed or revoked)")]
    InvalidKey,
    #[error("this key's role `{have}` may not do this; it needs `{need}`")]
    Forbidden {
        have: &'static str,
        need: &'static str,
    },
    #[error("no route for {0}")]
    NoRoute(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the request took longer than the {0} ms allowed")]
    Timeout(u64),
    #[error("not ready: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON"),
            MalformedBody { .. } => (StatusCode::BAD_REQUEST, "malformed-body", "Malformed body"),
            Invalid(_) => (
                StatusCode::BAD_REQUEST,
                "validation-failed",
                "Validation failed",
            ),
            UnsupportedMediaType { .. } => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            NotAcceptable { .. } => (
                StatusCode::NOT_ACCEPTABLE,
                "not-acceptable",
                "Not acceptable",
            ),
            PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            PreconditionFailed(_) => (
                StatusCode::PRECONDITION_FAILED,
                "version-mismatch",
                "Version mismatch",
            ),
            BadParameter { .. } => (
                StatusCode::BAD_REQUEST,
                "bad-parameter",
                "Bad query parameter",
            ),
            BadSparql(_) => (StatusCode::BAD_REQUEST, "bad-sparql", "Bad SPARQL"),
            ServiceRefused => (
                StatusCode::BAD_REQUEST,
                "sparql-service-refused",
                "SERVICE refused",
            ),
            UpdateRefused(_) => (StatusCode::BAD_REQUEST, "update-refused", "Update refused"),
            QueryTimeout(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "query-timeout",
                "Query timeout",
            ),
            ResultLimit(_) => (StatusCode::BAD_REQUEST, "result-limit", "Too many results"),
            MissingKey => (
                StatusCode::UNAUTHORIZED,
                "missing-api-key",
                "API key required",
            ),
            InvalidKey => (
                StatusCode::UNAUTHORIZED,
                "invalid-api-key",
                "Invalid API key",
            ),
            Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            NoRoute(_) => (StatusCode::NOT_FOUND, "no-route", "No such route"),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Timeout(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "Request timeout",
            ),
            Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Not ready"),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }

    pub fn bad_parameter(parameter: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::BadParameter {
            parameter: parameter.into(),
            detail: detail.into(),
        }
    }

    pub fn problem(&self) -> Problem {
        let (status, slug, title) = self.parts();
        let errors = match self {
            ApiError::Invalid(v) => {
                v.0.iter()
                    .map(|v| FieldError {
                        pointer: v.path.clone(),
                        detail: v.message.clone(),
                    })
                    .collect()
            }
            ApiError::BadParameter { parameter, detail } => vec![FieldError {
                pointer: parameter.clone(),
                detail: detail.clone(),
            }],
            _ => Vec::new(),
        };
        let detail = match self {
            ApiError::Invalid(v) => format!(
                "{} problem{} in the input: {}",
                v.0.len(),
                if v.0.len() == 1 { "" } else { "s" },
                v
            ),
            // Never internals in a 5xx body.
            ApiError::Internal(_) => "the server failed; the incident is logged".to_owned(),
            other => other.to_string(),
        };
        Problem {
            problem_type: format!("{PROBLEM_BASE}{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            errors,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "request failed");
        }
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if matches!(self, ApiError::MissingKey | ApiError::InvalidKey) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"iotcane\""),
            );
        }
        response
    }
}

impl From<Violations> for ApiError {
    fn from(v: Violations) -> Self {
        ApiError::Invalid(v)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } | StoreError::NoLiveContext { .. } => {
                ApiError::NotFound(e.to_string())
            }
            StoreError::AlreadyExists { .. } | StoreError::Aborted(_) => {
                ApiError::Conflict(e.to_string())
            }
            StoreError::VersionMismatch { .. } => ApiError::PreconditionFailed(e.to_string()),
            StoreError::QuerySyntax(_) => ApiError::BadSparql(e.to_string()),
            StoreError::QueryEvaluation(_) => ApiError::BadSparql(e.to_string()),
            StoreError::QueryTimeout(_) => ApiError::QueryTimeout(e.to_string()),
            StoreError::ResultLimit(_) => ApiError::ResultLimit(e.to_string()),
            StoreError::ServiceRefused => ApiError::ServiceRefused,
            StoreError::UpdateRefused(_) => ApiError::UpdateRefused(e.to_string()),
            // Nothing was written; another replica (or this one restarted) can take it.
            StoreError::BehindCompaction { .. } => ApiError::Unavailable(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Invalid(v) => ApiError::Invalid(v),
            AppError::Store(s) => s.into(),
            AppError::NoRecommendation(id) => {
                ApiError::NotFound(format!("no recommendation `{id}`"))
            }
            AppError::RuleChangesCases(cases) => ApiError::Conflict(format!(
                "the rule would change the conclusion of cornerstone case(s): {}; repeat with `?confirm=true` to store it with them as cornerstones",
                cases
                    .iter()
                    .map(|c| format!(
                        "{} (excludes {})",
                        c.case,
                        c.bindings
                            .iter()
                            .map(|b| format!("{} for {}", b.resource, b.requirement))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Invalid => ApiError::InvalidKey,
            KeyError::BadName => ApiError::Invalid(Violations::one("/name", e.to_string())),
            KeyError::Store(s) => s.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
