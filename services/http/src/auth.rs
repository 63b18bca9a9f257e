//! Who is calling: the API key in `Authorization: Bearer …` or `X-API-Key`, checked
//! against the hashed keys in the database.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use iotcane_app::store::ChangeSource;
use iotcane_app::{Actor, Principal, Role};

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated caller of a request, and the key it presented (kept so that a
/// long-lived request, an event stream, can check the key again).
#[derive(Debug, Clone)]
pub struct Caller(pub Principal, Option<std::sync::Arc<str>>);

impl Caller {
    /// Fails unless the caller's role includes `needed`.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.0.may(needed) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                have: self.0.role.as_str(),
                need: needed.as_str(),
            })
        }
    }

    pub fn tenant(&self) -> &iotcane_model::Tenant {
        &self.0.tenant
    }

    /// Whether the key this caller presented still checks out (it may have been revoked
    /// since the request began). Always true with auth off.
    pub async fn still_valid(&self, keys: &iotcane_app::Keys) -> bool {
        match &self.1 {
            Some(token) => keys.check(token).await.is_ok(),
            None => true,
        }
    }

    /// The journal's actor for changes this caller makes: the key's id and name.
    pub fn actor(&self) -> Actor {
        Actor {
            name: format!("key:{} ({})", self.0.key_id, self.0.key_name),
            source: ChangeSource::Http,
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if !state.config.auth {
            return Ok(Caller(
                Principal {
                    key_id: "local".to_owned(),
                    key_name: "auth disabled".to_owned(),
                    tenant: state.config.local_tenant.clone(),
                    role: Role::Admin,
                },
                None,
            ));
        }
        let headers = &parts.headers;
        let token = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
            .map(str::trim)
            .ok_or(ApiError::MissingKey)?;
        let principal = state.app.keys().check(token).await?;
        Ok(Caller(principal, Some(std::sync::Arc::from(token))))
    }
}
