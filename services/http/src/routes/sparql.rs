//! The SPARQL 1.1 Protocol at `/sparql` (queries for every key, updates for admin keys),
//! and the directory's read-only `/search/sparql`. Queries see only the caller's tenant.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use iotcane_app::Role;
use iotcane_app::store::GRAPH_MEDIA_TYPES;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::body::{Body, negotiate};
use crate::error::{ApiError, ApiResult, Problem};
use crate::state::AppState;

const REQUEST_TYPES: &[&str] = &[
    "application/x-www-form-urlencoded",
    "application/sparql-query",
    "application/sparql-update",
];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sparql_get, sparql_post))
        .routes(routes!(search_get, search_post))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueryParams {
    /// The SPARQL query.
    query: Option<String>,
    #[serde(rename = "default-graph-uri")]
    #[param(rename = "default-graph-uri")]
    default_graph_uri: Option<String>,
    #[serde(rename = "named-graph-uri")]
    #[param(rename = "named-graph-uri")]
    named_graph_uri: Option<String>,
}

/// What an update did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UpdateReport {
    /// The resources the update changed, each written to the journal.
    pub changed: Vec<String>,
}

/// SPARQL query by GET.
#[utoipa::path(get, path = "/sparql", tag = "sparql", params(QueryParams),
    responses(
        (status = 200, description = "Results as SPARQL JSON/XML, CSV/TSV (SELECT, ASK) or Turtle/N-Triples/RDF-XML (CONSTRUCT, DESCRIBE), by `Accept`", body = String, content_type = "application/sparql-results+json"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 406, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn sparql_get(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(params): Query<QueryParams>,
) -> ApiResult<Response> {
    query_from_get(&state, &caller, &headers, params).await
}

/// SPARQL query or update by POST (form-encoded, or as `application/sparql-query` /
/// `application/sparql-update`). Updates need an admin key.
#[utoipa::path(post, path = "/sparql", tag = "sparql",
    request_body(content = String, content_type = "application/sparql-query"),
    responses(
        (status = 200, description = "Query results, or the update's report", body = UpdateReport, content_type = "application/json"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn sparql_post(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    match read_post(&body)? {
        Operation::Query(q) => run_query(&state, &caller, &headers, &q).await,
        Operation::Update(u) => {
            caller.require(Role::Admin)?;
            let written = state
                .app
                .sparql_update(caller.tenant(), &u, &caller.actor())
                .await?;
            Ok(axum::Json(UpdateReport {
                changed: written.into_iter().map(|w| w.id.to_string()).collect(),
            })
            .into_response())
        }
    }
}

/// Directory search with SPARQL, by GET (read-only).
#[utoipa::path(get, path = "/search/sparql", tag = "directory", params(QueryParams),
    responses(
        (status = 200, body = String, content_type = "application/sparql-results+json"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn search_get(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(params): Query<QueryParams>,
) -> ApiResult<Response> {
    query_from_get(&state, &caller, &headers, params).await
}

/// Directory search with SPARQL, by POST (read-only).
#[utoipa::path(post, path = "/search/sparql", tag = "directory",
    request_body(content = String, content_type = "application/sparql-query"),
    responses(
        (status = 200, body = String, content_type = "application/sparql-results+json"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn search_post(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    match read_post(&body)? {
        Operation::Query(q) => run_query(&state, &caller, &headers, &q).await,
        Operation::Update(_) => Err(ApiError::bad_parameter(
            "update",
            "the directory's search is read-only; send updates to /sparql",
        )),
    }
}

async fn query_from_get(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    params: QueryParams,
) -> ApiResult<Response> {
    refuse_dataset_parameters(
        params.default_graph_uri.is_some(),
        params.named_graph_uri.is_some(),
    )?;
    let query = params
        .query
        .ok_or_else(|| ApiError::bad_parameter("query", "is required"))?;
    run_query(state, caller, headers, &query).await
}

enum Operation {
    Query(String),
    Update(String),
}

fn read_post(body: &Body) -> ApiResult<Operation> {
    let media = body.expect(REQUEST_TYPES)?;
    let text = || {
        std::str::from_utf8(&body.bytes)
            .map(str::to_owned)
            .map_err(|_| ApiError::MalformedBody {
                format: "SPARQL",
                detail: "the body is not UTF-8".to_owned(),
            })
    };
    match media {
        "application/sparql-query" => Ok(Operation::Query(text()?)),
        "application/sparql-update" => Ok(Operation::Update(text()?)),
        _ => {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&body.bytes).map_err(|e| ApiError::MalformedBody {
                    format: "form",
                    detail: e.to_string(),
                })?;
            let has = |name: &str| pairs.iter().any(|(k, _)| k == name);
            refuse_dataset_parameters(
                has("default-graph-uri") || has("using-graph-uri"),
                has("named-graph-uri") || has("using-named-graph-uri"),
            )?;
            let find = |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            };
            match (find("query"), find("update")) {
                (Some(q), None) => Ok(Operation::Query(q)),
                (None, Some(u)) => Ok(Operation::Update(u)),
                (Some(_), Some(_)) => Err(ApiError::bad_parameter(
                    "update",
                    "send either `query` or `update`, not both",
                )),
                (None, None) => Err(ApiError::bad_parameter(
                    "query",
                    "is required (or `update`)",
                )),
            }
        }
    }
}

fn refuse_dataset_parameters(default: bool, named: bool) -> ApiResult<()> {
    let name = match (default, named) {
        (true, _) => "default-graph-uri",
        (_, true) => "named-graph-uri",
        _ => return Ok(()),
    };
    Err(ApiError::bad_parameter(
        name,
        "is not supported; name graphs with FROM / FROM NAMED in the query (they can only narrow your tenant's graphs)",
    ))
}

async fn run_query(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    query: &str,
) -> ApiResult<Response> {
    caller.require(Role::Read)?;
    let output = state.app.store().sparql(caller.tenant(), query).await?;
    let offers = output.media_types();
    let asked = negotiate(headers, offers).ok_or(ApiError::NotAcceptable {
        available: if offers == GRAPH_MEDIA_TYPES {
            "text/turtle, application/n-triples, application/rdf+xml"
        } else {
            "application/sparql-results+json, application/sparql-results+xml, text/csv, text/tab-separated-values"
        },
    })?;
    let (media, bytes) = output.serialize(asked)?;
    let mut response = (StatusCode::OK, bytes).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    Ok(response)
}
