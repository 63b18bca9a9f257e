//! The native REST API: every kind of the model under `/api/v1/{collection}`, with
//! content negotiation, versions as entity tags, history, bulk upsert, and declarative
//! filters with cursor pagination.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use iotcane_app::Role;
use iotcane_app::store::{Change, Op};
use iotcane_model::formats::{self, Format};
use iotcane_model::{Kind, Resource, ResourceId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::body::{Body, negotiate};
use crate::error::{ApiError, ApiResult, Problem};
use crate::filters::{ListParams, ListQuery, Page};
use crate::headers::{etag, expected_version};
use crate::routes::things::encode;
use crate::state::AppState;

/// The media types a resource can be read and written in.
const RESOURCE_TYPES: &[&str] = formats::RESOURCE_MEDIA_TYPES;
const BULK_TYPES: &[&str] = &[
    "application/json",
    "application/x-ndjson",
    "application/ndjson",
];
const MERGE_PATCH: &[&str] = &["application/merge-patch+json", "application/json"];
const RULES_ONE_AT_A_TIME: &str = "rules are written one at a time at /api/v1/rules/{id}, where they are checked against the cornerstone cases";

/// Writing a rule that changes a cornerstone case's conclusion needs `confirm=true`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct ConfirmParams {
    /// For rules: store it even though it changes the conclusion of stored cases (they
    /// become its cornerstones).
    #[serde(default)]
    pub confirm: bool,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_resources, create_resource))
        .routes(routes!(
            get_resource,
            put_resource,
            patch_resource,
            delete_resource
        ))
        .routes(routes!(resource_history))
        .routes(routes!(bulk_upsert))
}

/// A collection of the native API: one per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Collection {
    Devices,
    EdgeNodes,
    CloudOfferings,
    NetworkLinks,
    Services,
    Cases,
    Rules,
}

impl Collection {
    pub fn kind(self) -> Kind {
        match self {
            Collection::Devices => Kind::Device,
            Collection::EdgeNodes => Kind::EdgeNode,
            Collection::CloudOfferings => Kind::CloudOffering,
            Collection::NetworkLinks => Kind::NetworkLink,
            Collection::Services => Kind::Service,
            Collection::Cases => Kind::Case,
            Collection::Rules => Kind::Rule,
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Collection::Devices => "devices",
            Collection::EdgeNodes => "edge-nodes",
            Collection::CloudOfferings => "cloud-offerings",
            Collection::NetworkLinks => "network-links",
            Collection::Services => "services",
            Collection::Cases => "cases",
            Collection::Rules => "rules",
        }
    }
}

pub(crate) fn collection(raw: &str) -> ApiResult<Collection> {
    serde_json::from_value(Value::String(raw.to_owned())).map_err(|_| {
        ApiError::NoRoute(format!(
            "/api/v1/{raw}: collections are devices, edge-nodes, cloud-offerings, network-links, services, cases and rules"
        ))
    })
}

pub(crate) fn resource_id(raw: &str) -> ApiResult<ResourceId> {
    raw.parse::<ResourceId>()
        .map_err(|e| ApiError::NotFound(format!("no resource `{raw}`: {e}")))
}

/// A page of resources.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ResourcePage {
    /// Native JSON descriptions, in the requested order.
    pub items: Vec<Value>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(rename = "nextCursor", skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// The next page's URL; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// List or search resources of a collection.
///
/// Every query parameter other than `limit`, `cursor`, `sort` and `near` is a filter on a
/// field, named by its native key path: `field=value` (equal), or `field[op]=value` with
/// `op` one of `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `in` (comma-separated values) and
/// `prefix`. `near=lat,lon,radius` (radius in m, or with `m`/`km`) keeps resources within
/// the circle. `sort=field` or `sort=-field` (descending) or `sort=distance` orders them;
/// ties and the default follow the id. Pages are cursor-based and stable while resources
/// are added.
#[utoipa::path(get, path = "/api/v1/{collection}", tag = "resources",
    params(("collection" = Collection, Path, description = "The kind of resource"), ListParams),
    responses(
        (status = 200, body = ResourcePage, content_type = "application/json"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn list_resources(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    caller.require(Role::Read)?;
    let collection = collection(&raw)?;
    let query = ListQuery::parse(
        caller.tenant(),
        collection.kind(),
        &pairs,
        state.config.max_page,
    )?;
    let Page { items, next_cursor } = query.run(&state.app).await?;
    let next = next_cursor.as_ref().map(|c| {
        let mut url = format!("/api/v1/{}?", collection.path());
        for (k, v) in pairs.iter().filter(|(k, _)| k != "cursor") {
            url.push_str(&format!("{}={}&", encode(k), encode(v)));
        }
        url.push_str(&format!("cursor={}", encode(c)));
        url
    });
    let page = ResourcePage {
        items: items.iter().map(Resource::to_json).collect(),
        next_cursor,
        next: next.clone(),
    };
    let mut response = axum::Json(page).into_response();
    if let Some(next) = next
        && let Ok(v) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\""))
    {
        response.headers_mut().insert(header::LINK, v);
    }
    Ok(response)
}

/// Create a resource (refused if its id exists).
#[utoipa::path(post, path = "/api/v1/{collection}", tag = "resources",
    params(("collection" = Collection, Path, description = "The kind of resource"), ConfirmParams),
    request_body(content = Value, description = "The resource, as native JSON, JSON-LD, Turtle or N-Triples", content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `Location` names it", body = Value, content_type = "application/json"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn create_resource(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Query(confirm): Query<ConfirmParams>,
    body: Body,
) -> ApiResult<Response> {
    caller.require(Role::Write)?;
    let collection = collection(&raw)?;
    let resource = one_resource(&body, collection, None)?;
    let written = if collection == Collection::Rules {
        state
            .app
            .write_rule(
                caller.tenant(),
                resource.clone(),
                None,
                true,
                confirm.confirm,
                &caller.actor(),
            )
            .await?
    } else {
        state
            .app
            .store()
            .write_one(
                Change::Put {
                    tenant: caller.tenant().clone(),
                    resource: Box::new(resource.clone()),
                    expected_version: None,
                    create_only: true,
                },
                &caller.actor().name,
                caller.actor().source,
            )
            .await?
    };
    let mut response = (StatusCode::CREATED, axum::Json(resource.to_json())).into_response();
    let h = response.headers_mut();
    h.insert(header::ETAG, etag(written.version));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "/api/v1/{}/{}",
        collection.path(),
        encode(written.id.as_str())
    )) {
        h.insert(header::LOCATION, v);
    }
    Ok(response)
}

/// Read a resource as JSON, JSON-LD, Turtle or N-Triples (by `Accept`).
#[utoipa::path(get, path = "/api/v1/{collection}/{id}", tag = "resources",
    params(("collection" = Collection, Path, description = "The kind of resource"),
           ("id" = String, Path, description = "The resource's id")),
    responses(
        (status = 200, body = Value, content_type = "application/json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 406, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn get_resource(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.require(Role::Read)?;
    let collection = collection(&raw)?;
    let id = resource_id(&id)?;
    let media = negotiate(&headers, RESOURCE_TYPES).ok_or(ApiError::NotAcceptable {
        available: "application/json, application/ld+json, text/turtle, application/n-triples",
    })?;
    let stored = state
        .app
        .get(caller.tenant(), &id)?
        .filter(|s| s.resource.kind() == collection.kind())
        .ok_or_else(|| ApiError::NotFound(format!("no {} `{id}`", collection.kind().as_str())))?;
    let body = formats::write_resource(&stored.resource, media)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    h.insert(header::ETAG, etag(stored.meta.version));
    h.insert(header::VARY, HeaderValue::from_static("accept"));
    Ok(response)
}

/// Create or replace a resource.
#[utoipa::path(put, path = "/api/v1/{collection}/{id}", tag = "resources",
    params(("collection" = Collection, Path, description = "The kind of resource"),
           ("id" = String, Path, description = "The resource's id"),
           ConfirmParams,
           ("If-Match" = Option<String>, Header, description = "Only if the resource is at this version (its ETag)")),
    request_body(content = Value, content_type = "application/json"),
    responses(
        (status = 200, description = "Replaced", body = Value, content_type = "application/json"),
        (status = 201, description = "Created", body = Value, content_type = "application/json"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn put_resource(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw, id)): Path<(String, String)>,
    Query(confirm): Query<ConfirmParams>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    caller.require(Role::Write)?;
    let collection = collection(&raw)?;
    let id = resource_id(&id)?;
    let expected = expected_version(&headers, &state.app, caller.tenant(), &id)?;
    let resource = one_resource(&body, collection, Some(&id))?;
    let json = resource.to_json();
    let written = state
        .app
        .write_rule_or_put(
            caller.tenant(),
            resource,
            expected,
            confirm.confirm,
            &caller.actor(),
        )
        .await?;
    let status = if written.op == Op::Create {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = (status, axum::Json(json)).into_response();
    response
        .headers_mut()
        .insert(header::ETAG, etag(written.version));
    Ok(response)
}

/// Change part of a resource with a JSON merge patch (RFC 7396).
#[utoipa::path(patch, path = "/api/v1/{collection}/{id}", tag = "resources",
    params(("collection" = Collection, Path, description = "The kind of resource"),
           ("id" = String, Path, description = "The resource's id"),
           ConfirmParams,
           ("If-Match" = Option<String>, Header, description = "Only if the resource is at this version (its ETag)")),
    request_body(content = Value, content_type = "application/merge-patch+json"),
    responses(
        (status = 200, description = "The patched resource", body = Value, content_type = "application/json"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn patch_resource(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw, id)): Path<(String, String)>,
    Query(confirm): Query<ConfirmParams>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    caller.require(Role::Write)?;
    let collection = collection(&raw)?;
    let id = resource_id(&id)?;
    let expected = expected_version(&headers, &state.app, caller.tenant(), &id)?;
    let patch = body.json(MERGE_PATCH)?;
    ensure_kind(&state, caller.tenant(), &id, collection)?;
    let written = state
        .app
        .patch(
            caller.tenant(),
            &id,
            &patch,
            expected,
            confirm.confirm,
            &caller.actor(),
        )
        .await?;
    let stored = state
        .app
        .get(caller.tenant(), &id)?
        .ok_or_else(|| ApiError::NotFound(format!("no resource `{id}`")))?;
    let mut response = axum::Json(stored.resource.to_json()).into_response();
    response
        .headers_mut()
        .insert(header::ETAG, etag(written.version));
    Ok(response)
}

/// Delete a resource.
#[utoipa::path(delete, path = "/api/v1/{collection}/{id}", tag = "resources",
    params(("collection" = Collection, Path, description = "The kind of resource"),
           ("id" = String, Path, description = "The resource's id"),
           ("If-Match" = Option<String>, Header, description = "Only if the resource is at this version (its ETag)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn delete_resource(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    caller.require(Role::Write)?;
    let collection = collection(&raw)?;
    let id = resource_id(&id)?;
    let expected = expected_version(&headers, &state.app, caller.tenant(), &id)?;
    ensure_kind(&state, caller.tenant(), &id, collection)?;
    state
        .app
        .delete(caller.tenant(), &id, expected, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One version of a resource.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionView {
    pub version: i64,
    /// `create`, `update` or `delete`.
    pub op: String,
    /// The journal position.
    pub seq: i64,
    /// When, RFC 3339.
    pub at: String,
    /// Who (the API key, or the importing user).
    pub actor: String,
    /// Through which interface: `http`, `mqtt` or `cli`.
    pub source: String,
    /// The description at this version; absent for a delete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<Value>,
}

/// Every version of a resource, oldest first, from the journal.
#[utoipa::path(get, path = "/api/v1/{collection}/{id}/history", tag = "resources",
    params(("collection" = Collection, Path, description = "The kind of resource"),
           ("id" = String, Path, description = "The resource's id")),
    responses(
        (status = 200, body = Vec<VersionView>, content_type = "application/json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn resource_history(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<Vec<VersionView>>> {
    caller.require(Role::Read)?;
    let collection = collection(&raw)?;
    let id = resource_id(&id)?;
    let versions = state.app.history(caller.tenant(), &id).await?;
    if versions.is_empty()
        || versions
            .iter()
            .any(|v| v.entry.kind != collection.kind().as_str())
    {
        return Err(ApiError::NotFound(format!(
            "no {} `{id}` in the journal",
            collection.kind().as_str()
        )));
    }
    Ok(axum::Json(
        versions
            .into_iter()
            .map(|v| VersionView {
                version: v.entry.version,
                op: v.entry.op.as_str().to_owned(),
                seq: v.entry.seq,
                at: iotcane_app::store::format_time_ms(v.entry.at_ms),
                actor: v.entry.actor,
                source: v.entry.source.as_str().to_owned(),
                resource: v.resource.map(|r| r.to_json()),
            })
            .collect(),
    ))
}

/// The outcome of one item of a bulk upsert.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkResult {
    /// The item's position in the input (0-based).
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The HTTP status this item alone would have had: 201, 200, 400 or 409.
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Why the item was refused.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub errors: Vec<String>,
}

/// Create or replace many resources of any kinds in one journal transaction.
#[utoipa::path(post, path = "/api/v1/bulk", tag = "resources",
    request_body(content = Vec<Value>, description = "A JSON array of native resources, or NDJSON", content_type = "application/json"),
    responses(
        (status = 200, description = "One result per item, in input order", body = Vec<BulkResult>, content_type = "application/json"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn bulk_upsert(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> ApiResult<axum::Json<Vec<BulkResult>>> {
    caller.require(Role::Write)?;
    let format = match body.expect(BULK_TYPES)? {
        "application/json" => Format::Json,
        _ => Format::NdJson,
    };
    if format == Format::Json {
        // Reading the array gives a precise syntax error first.
        crate::body::parse_json(&body.bytes)?;
    }
    let items = formats::read(format, &body.bytes).map_err(|e| ApiError::MalformedBody {
        format: e.format,
        detail: e.message,
    })?;
    let mut results: Vec<BulkResult> = Vec::with_capacity(items.len());
    let mut accepted = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match item.result {
            Ok(resource) if resource.kind() == Kind::Rule => results.push(BulkResult {
                index,
                id: Some(resource.id.to_string()),
                status: 400,
                version: None,
                errors: vec![RULES_ONE_AT_A_TIME.to_owned()],
            }),
            Ok(resource) => {
                results.push(BulkResult {
                    index,
                    id: Some(resource.id.to_string()),
                    status: 0,
                    version: None,
                    errors: Vec::new(),
                });
                accepted.push((index, resource));
            }
            Err(violations) => results.push(BulkResult {
                index,
                id: None,
                status: 400,
                version: None,
                errors: violations.0.iter().map(ToString::to_string).collect(),
            }),
        }
    }
    let (indexes, resources): (Vec<usize>, Vec<Resource>) = accepted.into_iter().unzip();
    let written = state
        .app
        .put_many(caller.tenant(), resources, &caller.actor())
        .await?;
    for (index, outcome) in indexes.into_iter().zip(written) {
        let result = &mut results[index];
        match outcome {
            Ok(w) => {
                result.status = if w.op == Op::Create { 201 } else { 200 };
                result.version = Some(w.version);
            }
            Err(e) => {
                result.errors = vec![e.to_string()];
                result.status = ApiError::from(e).problem().status;
            }
        }
    }
    Ok(axum::Json(results))
}

fn ensure_kind(
    state: &AppState,
    tenant: &iotcane_model::Tenant,
    id: &ResourceId,
    collection: Collection,
) -> ApiResult<()> {
    match state.app.get(tenant, id)? {
        Some(s) if s.resource.kind() == collection.kind() => Ok(()),
        _ => Err(ApiError::NotFound(format!(
            "no {} `{id}`",
            collection.kind().as_str()
        ))),
    }
}

/// Reads exactly one resource of the collection's kind from a request body.
fn one_resource(
    body: &Body,
    collection: Collection,
    id: Option<&ResourceId>,
) -> ApiResult<Resource> {
    let media = body.expect(RESOURCE_TYPES)?;
    let format = Format::from_media_type(media).unwrap_or(Format::Json);
    let resource = if format == Format::Json {
        let value = crate::body::parse_json(&body.bytes)?;
        if !value.is_object() {
            return Err(
                iotcane_model::Violations::one("", "must be a JSON object (one resource)").into(),
            );
        }
        formats::read_json_value(value)?
    } else {
        let mut items =
            formats::read(format, &body.bytes).map_err(|e| ApiError::MalformedBody {
                format: e.format,
                detail: e.message,
            })?;
        if items.len() != 1 {
            return Err(iotcane_model::Violations::one(
                "",
                format!("must describe exactly one resource, not {}", items.len()),
            )
            .into());
        }
        items.remove(0).result?
    };
    if resource.kind() != collection.kind() {
        return Err(iotcane_model::Violations::one(
            "/kind",
            format!(
                "is `{}`, but /api/v1/{} holds `{}`",
                resource.kind().as_str(),
                collection.path(),
                collection.kind().as_str()
            ),
        )
        .into());
    }
    if let Some(id) = id
        && &resource.id != id
    {
        return Err(iotcane_model::Violations::one(
            "/id",
            format!("is `{}`, but the request is for `{id}`", resource.id),
        )
        .into());
    }
    Ok(resource)
}
