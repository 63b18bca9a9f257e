//! The gateway's shared state: one cheap `Clone` handle.

use std::sync::Arc;
use std::time::Duration;

use iotcane_app::App;
use iotcane_model::Tenant;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

/// Settings of the HTTP gateway.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `false` only for local use: every request then acts as an admin of `local_tenant`.
    pub auth: bool,
    /// The tenant requests act for when auth is off.
    pub local_tenant: Tenant,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    pub request_timeout: Duration,
    /// Origins allowed to call from a browser (`*` for any); empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// How often expired Thing Descriptions are removed.
    pub expiry_interval: Duration,
    /// The largest page a list returns.
    pub max_page: usize,
}

impl HttpConfig {
    pub fn new(local_tenant: Tenant) -> Self {
        Self {
            auth: true,
            local_tenant,
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
            expiry_interval: Duration::from_secs(10),
            max_page: 1000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AppState {
    pub app: App,
    pub config: Arc<HttpConfig>,
    pub metrics: PrometheusHandle,
    /// Cancelled when the server shuts down: ends event streams so connections drain.
    pub shutdown: CancellationToken,
}
