//! Operations: liveness, readiness, Prometheus metrics, and the directory's own TD.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, Problem};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(well_known_wot))
}

/// The process is alive, and its graph can still follow the journal (503 otherwise: it
/// must be restarted).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses(
        (status = 200, description = "Alive", body = String, content_type = "text/plain"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
async fn healthz(State(state): State<AppState>) -> ApiResult<&'static str> {
    if state.app.store().is_stale() {
        return Err(ApiError::Unavailable(STALE.to_owned()));
    }
    Ok("ok\n")
}

const STALE: &str = "journal compaction removed deletions this replica's graph had not \
                     applied; it must restart to rebuild the graph";

/// Readiness: the journal answers and the graph is loaded.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    pub status: String,
    /// The last journal position committed (by any replica).
    pub journal_head: i64,
    /// The last journal position applied to this replica's graph.
    pub applied_seq: i64,
}

/// Ready to serve: the journal answers and the graph is loaded.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, body = Readiness, content_type = "application/json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
async fn readyz(State(state): State<AppState>) -> ApiResult<axum::Json<Readiness>> {
    let store = state.app.store();
    if store.is_stale() {
        return Err(ApiError::Unavailable(STALE.to_owned()));
    }
    let journal_head = store.journal_head().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness: the journal does not answer");
        ApiError::Unavailable("the journal does not answer".to_owned())
    })?;
    Ok(axum::Json(Readiness {
        status: "ready".to_owned(),
        journal_head,
        applied_seq: store.applied_seq(),
    }))
}

/// Prometheus metrics: requests and latency by route and status, journal lag, graph size.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, body = String, content_type = "text/plain; version=0.0.4")))]
async fn metrics(State(state): State<AppState>) -> Response {
    let store = state.app.store();
    let applied = store.applied_seq();
    metrics::gauge!("iotcane_journal_applied_seq").set(applied as f64);
    if let Ok(head) = store.journal_head().await {
        metrics::gauge!("iotcane_journal_head_seq").set(head as f64);
        metrics::gauge!("iotcane_journal_lag").set((head - applied).max(0) as f64);
    }
    if let Ok(tenants) = store.tenants() {
        let mut resources = 0;
        for t in &tenants {
            resources += store.count(t, None).unwrap_or(0);
        }
        metrics::gauge!("iotcane_graph_resources").set(resources as f64);
        metrics::gauge!("iotcane_tenants").set(tenants.len() as f64);
    }
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// The directory's own Thing Description (WoT Discovery).
#[utoipa::path(get, path = "/.well-known/wot", tag = "directory",
    responses((status = 200, body = serde_json::Value, content_type = "application/td+json")))]
async fn well_known_wot() -> Response {
    let td = json!({
        "@context": ["https://www.w3.org/2022/wot/td/v1.1", "https://www.w3.org/2022/wot/discovery"],
        "@type": "ThingDirectory",
        "id": "urn:iotcane:directory",
        "title": "IoT-CANE Thing Description Directory",
        "description": "W3C WoT Thing Description Directory of IoT-CANE: every device and edge node of the tenant's knowledge base, searchable with SPARQL and JSONPath.",
        "version": {"instance": env!("CARGO_PKG_VERSION")},
        "securityDefinitions": {
            "bearer_sc": {"scheme": "bearer", "in": "header", "name": "Authorization", "format": "opaque"}
        },
        "security": "bearer_sc",
        "base": "/",
        "properties": {
            "things": {
                "description": "Thing Descriptions, paginated",
                "uriVariables": {
                    "offset": {"type": "number", "minimum": 0},
                    "limit": {"type": "number", "minimum": 1},
                    "format": {"type": "string", "enum": ["array", "collection"]}
                },
                "readOnly": true,
                "forms": [{"href": "things{?offset,limit,format}", "htv:methodName": "GET", "contentType": "application/ld+json"}]
            }
        },
        "actions": {
            "createThing": {"forms": [{"href": "things/{id}", "htv:methodName": "PUT", "contentType": "application/td+json"}],
                "uriVariables": {"id": {"type": "string", "format": "iri-reference"}}},
            "createAnonymousThing": {"forms": [{"href": "things", "htv:methodName": "POST", "contentType": "application/td+json"}]},
            "retrieveThing": {"safe": true, "idempotent": true,
                "uriVariables": {"id": {"type": "string", "format": "iri-reference"}},
                "forms": [{"href": "things/{id}", "htv:methodName": "GET", "response": {"contentType": "application/td+json"}}]},
            "updateThing": {"uriVariables": {"id": {"type": "string", "format": "iri-reference"}},
                "forms": [{"href": "things/{id}", "htv:methodName": "PUT", "contentType": "application/td+json"}]},
            "partiallyUpdateThing": {"uriVariables": {"id": {"type": "string", "format": "iri-reference"}},
                "forms": [{"href": "things/{id}", "htv:methodName": "PATCH", "contentType": "application/merge-patch+json"}]},
            "deleteThing": {"uriVariables": {"id": {"type": "string", "format": "iri-reference"}},
                "forms": [{"href": "things/{id}", "htv:methodName": "DELETE"}]},
            "searchJSONPath": {"safe": true, "idempotent": true,
                "uriVariables": {"query": {"type": "string"}},
                "forms": [{"href": "search/jsonpath?query={query}", "htv:methodName": "GET", "response": {"contentType": "application/json"}}]},
            "searchSPARQL": {"safe": true, "idempotent": true,
                "uriVariables": {"query": {"type": "string"}},
                "forms": [
                    {"href": "search/sparql?query={query}", "htv:methodName": "GET", "response": {"contentType": "application/sparql-results+json"}},
                    {"href": "search/sparql", "htv:methodName": "POST", "contentType": "application/sparql-query", "response": {"contentType": "application/sparql-results+json"}}
                ]}
        },
        "events": {
            "thingCreated": {"data": {"type": "object"}, "forms": [{"op": "subscribeevent", "href": "events/thing_created{?diff}", "subprotocol": "sse", "contentType": "text/event-stream"}]},
            "thingUpdated": {"data": {"type": "object"}, "forms": [{"op": "subscribeevent", "href": "events/thing_updated{?diff}", "subprotocol": "sse", "contentType": "text/event-stream"}]},
            "thingDeleted": {"data": {"type": "object"}, "forms": [{"op": "subscribeevent", "href": "events/thing_deleted", "subprotocol": "sse", "contentType": "text/event-stream"}]}
        }
    });
    let mut response = (StatusCode::OK, td.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/td+json"),
    );
    response
}
