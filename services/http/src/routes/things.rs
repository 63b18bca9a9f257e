//! The W3C WoT Thing Description Directory API (WoT Discovery, "Things" and "Search").
//!
//! TDs are stored as devices or edge nodes of the model with the original TD kept, so the
//! directory and the native API show the same knowledge. Devices and edge nodes stored
//! without a TD are listed too, with a TD made from the model.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use iotcane_app::Role;
use iotcane_app::directory::Thing;
use iotcane_model::ResourceId;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::body::Body;
use crate::error::{ApiError, ApiResult, Problem};
use crate::headers::{etag, expected_version};
use crate::state::AppState;

pub const TD_MEDIA_TYPES: &[&str] = &[
    "application/td+json",
    "application/json",
    "application/ld+json",
];
const MERGE_PATCH: &[&str] = &["application/merge-patch+json"];
const DISCOVERY_CONTEXT: &str = "https://www.w3.org/2022/wot/discovery";
/// Offsets cost a walk over every Thing before them; beyond this, clients page by cursor.
const MAX_OFFSET: usize = 10_000;
/// The most nodes a JSONPath search returns.
const MAX_JSONPATH_NODES: usize = 10_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_things, create_thing))
        .routes(routes!(get_thing, put_thing, patch_thing, delete_thing))
        .routes(routes!(search_jsonpath))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Skip this many Things (in id order).
    offset: Option<usize>,
    /// At most this many Things (default and maximum: the configured page size).
    limit: Option<usize>,
    /// `array` (default) or `collection` (a ThingCollection object).
    format: Option<String>,
    /// Start after this id: the cursor the `next` links use, stable while Things are added.
    after: Option<String>,
}

/// List Things.
#[utoipa::path(get, path = "/things", tag = "directory", params(ListParams),
    responses(
        (status = 200, description = "Thing Descriptions, in id order; `Link: rel=next` names the next page", body = Value, content_type = "application/ld+json"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn list_things(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> ApiResult<Response> {
    caller.require(Role::Read)?;
    let max = state.config.max_page;
    let limit = params.limit.unwrap_or(max);
    if limit == 0 || limit > max {
        return Err(ApiError::bad_parameter(
            "limit",
            format!("must be 1 to {max}"),
        ));
    }
    let collection = match params.format.as_deref() {
        None | Some("array") => false,
        Some("collection") => true,
        Some(other) => {
            return Err(ApiError::bad_parameter(
                "format",
                format!("`{other}` is neither `array` nor `collection`"),
            ));
        }
    };
    let after = params
        .after
        .as_deref()
        .map(|a| a.parse::<ResourceId>())
        .transpose()
        .map_err(|e| ApiError::bad_parameter("after", e.to_string()))?;
    let tenant = caller.tenant().clone();
    let offset = params.offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::bad_parameter(
            "offset",
            format!(
                "must be at most {MAX_OFFSET}; follow the `next` links (they use `after`) to go further"
            ),
        ));
    }
    if after.is_some() && offset > 0 {
        return Err(ApiError::bad_parameter(
            "offset",
            "cannot be combined with `after`",
        ));
    }
    let app = state.app.clone();
    let (page, total) = tokio::task::spawn_blocking(move || -> ApiResult<(Vec<Thing>, usize)> {
        let mut page = app.things(&tenant, after.as_ref(), offset.saturating_add(limit + 1))?;
        let page: Vec<Thing> = page.drain(offset.min(page.len())..).collect();
        Ok((page, app.thing_count(&tenant)?))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let has_next = page.len() > limit;
    let page: Vec<Thing> = page.into_iter().take(limit).collect();
    let next = match (has_next, page.last()) {
        (true, Some(last)) => Some(format!(
            "/things?after={}&limit={limit}{}",
            encode(last.id.as_str()),
            if collection { "&format=collection" } else { "" }
        )),
        _ => None,
    };
    let tds: Vec<Value> = page.into_iter().map(|t| Value::Object(t.td)).collect();
    let body = if collection {
        let mut c = json!({
            "@context": DISCOVERY_CONTEXT,
            "@type": "ThingCollection",
            "total": total,
            "members": tds,
        });
        if let Some(next) = &next {
            c["next"] = json!(next);
        }
        c
    } else {
        Value::Array(tds)
    };
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/ld+json"),
    );
    if let Some(next) = next
        && let Ok(v) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\""))
    {
        h.insert(header::LINK, v);
    }
    Ok(response)
}

/// Register an anonymous Thing Description (one without `id`); the directory names it.
#[utoipa::path(post, path = "/things", tag = "directory",
    request_body(content = Value, content_type = "application/td+json"),
    responses(
        (status = 201, description = "Registered; `Location` names the new Thing"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn create_thing(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> ApiResult<Response> {
    caller.require(Role::Write)?;
    let td = body.json(TD_MEDIA_TYPES)?;
    let written = state
        .app
        .create_thing(caller.tenant(), td, &caller.actor())
        .await?;
    let location = format!("/things/{}", encode(written.id.as_str()));
    let mut response = StatusCode::CREATED.into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    h.insert(header::ETAG, etag(written.version));
    Ok(response)
}

/// Retrieve a Thing Description.
#[utoipa::path(get, path = "/things/{id}", tag = "directory",
    params(("id" = String, Path, description = "The Thing's id")),
    responses(
        (status = 200, description = "The TD with its registration information", body = Value, content_type = "application/td+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn get_thing(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.require(Role::Read)?;
    let id = thing_id(&id)?;
    let thing = state
        .app
        .thing(caller.tenant(), &id)?
        .ok_or_else(|| ApiError::NotFound(format!("no Thing `{id}`")))?;
    let mut response = (StatusCode::OK, Value::Object(thing.td).to_string()).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/td+json"),
    );
    h.insert(header::ETAG, etag(thing.meta.version));
    Ok(response)
}

/// Create or replace a Thing Description.
#[utoipa::path(put, path = "/things/{id}", tag = "directory",
    params(("id" = String, Path, description = "The Thing's id")),
    request_body(content = Value, content_type = "application/td+json"),
    responses(
        (status = 201, description = "Created"),
        (status = 204, description = "Replaced"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn put_thing(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    caller.require(Role::Write)?;
    let id = thing_id(&id)?;
    let expected = expected_version(&headers, &state.app, caller.tenant(), &id)?;
    let td = body.json(TD_MEDIA_TYPES)?;
    let written = state
        .app
        .put_thing(caller.tenant(), &id, td, expected, &caller.actor())
        .await?;
    let status = if written.op == iotcane_app::store::Op::Create {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    };
    let mut response = status.into_response();
    response
        .headers_mut()
        .insert(header::ETAG, etag(written.version));
    Ok(response)
}

/// Change part of a Thing Description with a JSON merge patch (RFC 7396).
#[utoipa::path(patch, path = "/things/{id}", tag = "directory",
    params(("id" = String, Path, description = "The Thing's id")),
    request_body(content = Value, content_type = "application/merge-patch+json"),
    responses(
        (status = 204, description = "Patched"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn patch_thing(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    caller.require(Role::Write)?;
    let id = thing_id(&id)?;
    let expected = expected_version(&headers, &state.app, caller.tenant(), &id)?;
    let patch = body.json(MERGE_PATCH)?;
    if patch
        .get("id")
        .is_some_and(|v| v.as_str() != Some(id.as_str()))
    {
        return Err(iotcane_model::Violations::one("/id", "cannot be changed by a patch").into());
    }
    let written = state
        .app
        .patch_thing(caller.tenant(), &id, &patch, expected, &caller.actor())
        .await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::ETAG, etag(written.version));
    Ok(response)
}

/// Delete a Thing Description.
#[utoipa::path(delete, path = "/things/{id}", tag = "directory",
    params(("id" = String, Path, description = "The Thing's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn delete_thing(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    caller.require(Role::Write)?;
    let id = thing_id(&id)?;
    let expected = expected_version(&headers, &state.app, caller.tenant(), &id)?;
    let Some(thing) = state.app.thing(caller.tenant(), &id)? else {
        return Err(ApiError::NotFound(format!("no Thing `{id}`")));
    };
    // At the version just checked to be a Thing, unless the client named one.
    let version = expected.unwrap_or(thing.meta.version);
    state
        .app
        .delete(caller.tenant(), &id, Some(version), &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JsonPathParams {
    /// A JSONPath expression (RFC 9535), applied to the array of the tenant's TDs.
    query: String,
}

/// Search Thing Descriptions with JSONPath (RFC 9535).
#[utoipa::path(get, path = "/search/jsonpath", tag = "directory", params(JsonPathParams),
    responses(
        (status = 200, description = "The nodes the expression selects", body = Vec<Value>, content_type = "application/json"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn search_jsonpath(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<JsonPathParams>,
) -> ApiResult<Response> {
    caller.require(Role::Read)?;
    let path = serde_json_path::JsonPath::parse(&params.query)
        .map_err(|e| ApiError::bad_parameter("query", e.to_string()))?;
    let tenant = caller.tenant().clone();
    let app = state.app.clone();
    let selected = tokio::task::spawn_blocking(move || -> ApiResult<Value> {
        let tds: Vec<Value> = app
            .things(&tenant, None, usize::MAX)?
            .into_iter()
            .map(|t| Value::Object(t.td))
            .collect();
        let all = Value::Array(tds);
        let nodes = path.query(&all).all();
        if nodes.len() > MAX_JSONPATH_NODES {
            return Err(ApiError::ResultLimit(format!(
                "the expression selects {} nodes, more than the {MAX_JSONPATH_NODES} allowed; make it narrower",
                nodes.len()
            )));
        }
        Ok(Value::Array(nodes.into_iter().cloned().collect()))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let mut response = (StatusCode::OK, selected.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

pub fn thing_id(raw: &str) -> ApiResult<ResourceId> {
    raw.parse::<ResourceId>()
        .map_err(|e| ApiError::NotFound(format!("no Thing `{raw}`: {e}")))
}

/// Percent-encodes an id for use in a path or query.
pub fn encode(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string()
}
