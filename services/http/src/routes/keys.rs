//! Key management for a tenant's admins: list, create, revoke.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use iotcane_app::Role;
use iotcane_app::keys::KeyInfo;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::body::Body;
use crate::error::{ApiError, ApiResult, Problem};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
}

/// An API key, without its secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyView {
    pub key_id: String,
    pub tenant: String,
    /// `read`, `write` or `admin`.
    pub role: String,
    pub name: String,
    pub created_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_ms: Option<i64>,
}

impl From<KeyInfo> for KeyView {
    fn from(k: KeyInfo) -> Self {
        Self {
            key_id: k.key_id,
            tenant: k.tenant,
            role: k.role,
            name: k.name,
            created_ms: k.created_ms,
            revoked_ms: k.revoked_ms,
        }
    }
}

/// A request for a new key in the caller's tenant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyRequest {
    pub name: String,
    /// `read`, `write` or `admin`.
    pub role: String,
}

/// A new key: the only response that ever shows its secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewKeyView {
    #[serde(flatten)]
    pub key: KeyView,
    /// The whole key, to send as `Authorization: Bearer <token>`. Shown once.
    pub token: String,
}

/// The tenant's API keys, revoked ones included.
#[utoipa::path(get, path = "/api/v1/keys", tag = "keys",
    responses(
        (status = 200, body = Vec<KeyView>, content_type = "application/json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<KeyView>>> {
    caller.require(Role::Admin)?;
    let keys = state.app.keys().list(Some(caller.tenant())).await?;
    Ok(axum::Json(keys.into_iter().map(KeyView::from).collect()))
}

/// Create a key in the caller's tenant.
#[utoipa::path(post, path = "/api/v1/keys", tag = "keys",
    request_body(content = NewKeyRequest, content_type = "application/json"),
    responses(
        (status = 201, body = NewKeyView, content_type = "application/json"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> ApiResult<(StatusCode, axum::Json<NewKeyView>)> {
    caller.require(Role::Admin)?;
    let value = body.json(&["application/json"])?;
    let request: NewKeyRequest = serde_path_to_error::deserialize(value).map_err(|e| {
        ApiError::Invalid(iotcane_model::Violations::one(
            format!("/{}", e.path().to_string().replace('.', "/")).replace("//", "/"),
            e.inner().to_string(),
        ))
    })?;
    let role: Role = request
        .role
        .parse()
        .map_err(|e: String| ApiError::Invalid(iotcane_model::Violations::one("/role", e)))?;
    let created = state
        .app
        .keys()
        .create(caller.tenant(), role, &request.name)
        .await?;
    tracing::info!(key_id = %created.info.key_id, role = role.as_str(), by = %caller.0.key_id, "API key created");
    Ok((
        StatusCode::CREATED,
        axum::Json(NewKeyView {
            key: created.info.into(),
            token: created.token,
        }),
    ))
}

/// Revoke one of the tenant's keys.
#[utoipa::path(delete, path = "/api/v1/keys/{key_id}", tag = "keys",
    params(("key_id" = String, Path, description = "The key's public id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(key_id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    if state.app.keys().revoke(caller.tenant(), &key_id).await? {
        tracing::info!(key_id = %key_id, by = %caller.0.key_id, "API key revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "no live key `{key_id}` in this tenant"
        )))
    }
}
