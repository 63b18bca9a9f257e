//! What running devices report, seen over HTTP: the live-context history of a device or
//! edge node, its configuration shadow (desired, reported, delta), and the messages the
//! MQTT gateway refused.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use iotcane_app::Role;
use iotcane_app::live::{config_delta, placement_of};
use iotcane_model::ResourceId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::body::Body;
use crate::error::{ApiError, ApiResult, Problem};
use crate::routes::resources::{Collection, collection, resource_id};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(context_history))
        .routes(routes!(get_config))
        .routes(routes!(put_desired_config, delete_desired_config))
        .routes(routes!(list_dead_letters))
}

/// The collection and id of a device or edge node (other kinds have no live state).
fn live_target(raw: &str, id: &str) -> ApiResult<(Collection, ResourceId)> {
    let collection = collection(raw)?;
    if !matches!(collection, Collection::Devices | Collection::EdgeNodes) {
        return Err(ApiError::NoRoute(format!(
            "/api/v1/{raw}/…: only devices and edge-nodes have live context and configuration"
        )));
    }
    Ok((collection, resource_id(id)?))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct HistoryParams {
    /// How many reports, newest first (default 100, at most 10,000).
    pub limit: Option<u32>,
}

/// One live-context report.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ContextView {
    /// The journal position.
    pub seq: i64,
    /// When it was written, RFC 3339.
    pub at: String,
    /// The live context as reported (see VOCABULARY.md, "Live context").
    #[schema(value_type = Object)]
    pub live: Value,
}

/// The newest live-context reports of a device or edge node, newest first. The service
/// keeps the last `context_history` reports of each.
#[utoipa::path(get, path = "/api/v1/{collection}/{id}/context", tag = "live",
    params(("collection" = Collection, Path, description = "devices or edge-nodes"),
           ("id" = String, Path, description = "The resource's id"), HistoryParams),
    responses(
        (status = 200, body = Vec<ContextView>, content_type = "application/json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn context_history(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw, id)): Path<(String, String)>,
    Query(params): Query<HistoryParams>,
) -> ApiResult<axum::Json<Vec<ContextView>>> {
    caller.require(Role::Read)?;
    let (collection, id) = live_target(&raw, &id)?;
    existing(&state, &caller, collection, &id)?;
    let limit = i64::from(params.limit.unwrap_or(100).clamp(1, 10_000));
    let history = state
        .app
        .context_history(caller.tenant(), &id, limit)
        .await?;
    Ok(axum::Json(
        history
            .into_iter()
            .map(|v| ContextView {
                seq: v.seq,
                at: iotcane_app::store::format_time_ms(v.at_ms),
                live: serde_json::to_value(v.live).unwrap_or_default(),
            })
            .collect(),
    ))
}

/// A device's configuration shadow.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConfigView {
    /// What the device is to run (published retained on `…/config/desired`).
    #[schema(value_type = Option<Object>)]
    pub desired: Option<Map<String, Value>>,
    /// What the device last reported it runs (from `…/config/reported`).
    #[schema(value_type = Option<Object>)]
    pub reported: Option<Map<String, Value>>,
    /// The desired keys whose values the device has not reported yet.
    #[schema(value_type = Object)]
    pub delta: Map<String, Value>,
    /// The description's version.
    pub version: i64,
}

fn existing(
    state: &AppState,
    caller: &Caller,
    collection: Collection,
    id: &ResourceId,
) -> ApiResult<iotcane_app::store::Stored> {
    state
        .app
        .get(caller.tenant(), id)?
        .filter(|s| s.resource.kind() == collection.kind())
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no {} `{id}` in this tenant",
                collection.kind().as_str()
            ))
        })
}

/// The desired and reported configuration of a device or edge node, and their delta.
#[utoipa::path(get, path = "/api/v1/{collection}/{id}/config", tag = "live",
    params(("collection" = Collection, Path, description = "devices or edge-nodes"),
           ("id" = String, Path, description = "The resource's id")),
    responses(
        (status = 200, body = ConfigView, content_type = "application/json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn get_config(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<ConfigView>> {
    caller.require(Role::Read)?;
    let (collection, id) = live_target(&raw, &id)?;
    let stored = existing(&state, &caller, collection, &id)?;
    Ok(axum::Json(config_view(&stored)))
}

fn config_view(stored: &iotcane_app::store::Stored) -> ConfigView {
    let (desired, reported) = placement_of(&stored.resource).map_or((None, None), |p| {
        (p.desired_config.clone(), p.reported_config.clone())
    });
    let delta = desired
        .as_ref()
        .map(|d| config_delta(d, &reported.clone().unwrap_or_default()))
        .unwrap_or_default();
    ConfigView {
        desired,
        reported,
        delta,
        version: stored.meta.version,
    }
}

/// Sets the configuration a device or edge node is to run. It becomes part of the
/// description (a new version), and the MQTT gateway publishes it, retained, on
/// `{prefix}/{tenant}/things/{id}/config/desired`.
#[utoipa::path(put, path = "/api/v1/{collection}/{id}/config/desired", tag = "live",
    params(("collection" = Collection, Path, description = "devices or edge-nodes"),
           ("id" = String, Path, description = "The resource's id")),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, body = ConfigView, content_type = "application/json"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn put_desired_config(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw, id)): Path<(String, String)>,
    body: Body,
) -> ApiResult<axum::Json<ConfigView>> {
    caller.require(Role::Write)?;
    let (collection, id) = live_target(&raw, &id)?;
    let Value::Object(desired) = body.json(&["application/json"])? else {
        return Err(ApiError::Invalid(iotcane_model::Violations::one(
            "",
            "the desired configuration must be a JSON object",
        )));
    };
    existing(&state, &caller, collection, &id)?;
    state
        .app
        .set_desired_config(caller.tenant(), &id, Some(desired), &caller.actor())
        .await?;
    let stored = existing(&state, &caller, collection, &id)?;
    Ok(axum::Json(config_view(&stored)))
}

/// Clears the desired configuration (the retained message is cleared too).
#[utoipa::path(delete, path = "/api/v1/{collection}/{id}/config/desired", tag = "live",
    params(("collection" = Collection, Path, description = "devices or edge-nodes"),
           ("id" = String, Path, description = "The resource's id")),
    responses(
        (status = 204),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn delete_desired_config(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Write)?;
    let (collection, id) = live_target(&raw, &id)?;
    existing(&state, &caller, collection, &id)?;
    state
        .app
        .set_desired_config(caller.tenant(), &id, None, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DeadLetterParams {
    /// How many, newest first (default 100, at most 1,000).
    pub limit: Option<u32>,
    /// Only those with an id below this one: pass the last id seen to page back.
    pub before: Option<i64>,
}

/// A message the MQTT gateway refused.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterView {
    pub id: i64,
    /// The topic as the client published it.
    pub topic: String,
    /// Every problem found, `pointer: detail` separated by `; `.
    pub reason: String,
    /// The payload as received (UTF-8, lossy), cut to 16 KiB.
    pub payload: String,
    /// The whole payload's size.
    #[serde(rename = "payloadBytes")]
    pub payload_bytes: i64,
    /// When, RFC 3339.
    pub at: String,
}

/// The messages the MQTT gateway refused for this tenant (bad payloads, unknown Things,
/// publishes outside the client's rights), newest first.
#[utoipa::path(get, path = "/api/v1/dead-letters", tag = "live",
    params(DeadLetterParams),
    responses(
        (status = 200, body = Vec<DeadLetterView>, content_type = "application/json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn list_dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<DeadLetterParams>,
) -> ApiResult<axum::Json<Vec<DeadLetterView>>> {
    // Payloads are whatever devices sent, secrets included: for admins only.
    caller.require(Role::Admin)?;
    let limit = i64::from(params.limit.unwrap_or(100).clamp(1, 1000));
    let letters = state
        .app
        .dead_letters(caller.tenant(), params.before, limit)
        .await?;
    Ok(axum::Json(
        letters
            .into_iter()
            .map(|l| DeadLetterView {
                id: l.id,
                topic: l.topic,
                reason: l.reason,
                payload: String::from_utf8_lossy(&l.payload).into_owned(),
                payload_bytes: l.payload_len,
                at: iotcane_app::store::format_time_ms(l.at_ms),
            })
            .collect(),
    ))
}
