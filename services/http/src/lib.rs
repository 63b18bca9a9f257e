//! IoT-CANE's HTTP gateway.
//!
//! - the W3C WoT Thing Description Directory API (`/things`, `/search/*`, `/events`,
//!   `/.well-known/wot`),
//! - the native REST API for every kind of the model (`/api/v1/...`),
//! - the SPARQL 1.1 Protocol (`/sparql`),
//! - operations endpoints (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`).
//!
//! Every route is declared with its OpenAPI description (utoipa), so the published
//! document lists exactly the routes the router serves. Handlers call the app layer; every
//! write reaches the journal before the response is sent. Errors are
//! `application/problem+json`.

mod auth;
mod body;
mod error;
mod filters;
mod headers;
mod routes;
mod state;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use iotcane_app::{Actor, App};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

pub use error::{ApiError, FieldError, PROBLEM_BASE, Problem};
pub use state::{AppState, HttpConfig};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "IoT-CANE",
        description = "Configuration knowledge for IoT application systems: a WoT Thing Description Directory, a native REST API over the unified model, and a SPARQL endpoint. Authenticate with `Authorization: Bearer <API key>`.",
    ),
    modifiers(&Security),
    tags(
        (name = "directory", description = "W3C WoT Thing Description Directory (WoT Discovery)"),
        (name = "resources", description = "The native REST API over every kind of the model"),
        (name = "live", description = "Live context, device configuration and MQTT dead letters"),
        (name = "recommendations", description = "Recommendations: declarative contexts in, ranked valid configurations out; feedback and subscriptions"),
        (name = "sparql", description = "SPARQL 1.1 Protocol"),
        (name = "keys", description = "API keys of the caller's tenant (admin)"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("ick_<key id>_<secret>")
                    .build(),
            ),
        );
    }
}

/// The router and its OpenAPI document, built from the same route declarations.
pub fn router(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let (api_router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::things::router())
        .merge(routes::events::router())
        .merge(routes::resources::router())
        .merge(routes::live::router())
        .merge(routes::recommendations::router())
        .merge(routes::sparql::router())
        .merge(routes::keys::router())
        .merge(routes::ops::router())
        .split_for_parts();
    let config = state.config.clone();
    let router = api_router
        .merge(SwaggerUi::new("/docs").url("/openapi.json", api.clone()))
        .fallback(|request: Request| async move {
            ApiError::NoRoute(format!("{} {}", request.method(), request.uri().path()))
        })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(CompressionLayer::new())
        .layer(cors(&config))
        .with_state(state);
    (router, api)
}

/// Times each request, counts it by route and status, limits its time, and gives
/// extractors the body limit so their errors can name it.
async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    request
        .extensions_mut()
        .insert(body::BodyLimit(state.config.body_limit));
    let timeout = state.config.request_timeout;
    let response = match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))
            .into_response(),
    };
    let status = response.status().as_u16().to_string();
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status),
    ];
    metrics::counter!("iotcane_http_requests_total", &labels).increment(1);
    metrics::histogram!("iotcane_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

fn cors(config: &HttpConfig) -> CorsLayer {
    if config.cors_origins.is_empty() {
        return CorsLayer::new();
    }
    let origin = if config.cors_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            config
                .cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::ACCEPT,
            header::HeaderName::from_static("last-event-id"),
            header::HeaderName::from_static("x-api-key"),
        ])
        .expose_headers([header::ETAG, header::LOCATION, header::LINK])
        .max_age(Duration::from_secs(3600))
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets_for_metric(
                Matcher::Suffix("duration_seconds".to_owned()),
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                ],
            );
            let recorder = match builder {
                Ok(b) => b.build_recorder(),
                Err(_) => PrometheusBuilder::new().build_recorder(),
            };
            let handle = recorder.handle();
            // Another recorder already installed (an embedding program's) keeps its place.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The HTTP gateway, built and bound but not yet serving.
#[derive(Debug)]
pub struct HttpServer {
    listener: TcpListener,
    state: AppState,
}

impl HttpServer {
    /// Binds the gateway's state to a listener (bind port 0 in tests).
    pub fn new(
        listener: TcpListener,
        app: App,
        config: HttpConfig,
        shutdown: CancellationToken,
    ) -> Self {
        let state = AppState {
            app,
            config: Arc::new(config),
            metrics: metrics_handle(),
            shutdown,
        };
        Self { listener, state }
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the shutdown token is cancelled, then lets in-flight requests finish.
    /// Expired Thing Descriptions are removed in the background meanwhile.
    pub async fn run(self) -> std::io::Result<()> {
        let state = self.state;
        let expiry = tokio::spawn(expire_things(
            state.app.clone(),
            state.config.expiry_interval,
            state.shutdown.clone(),
        ));
        let (router, _) = router(state.clone());
        let shutdown = state.shutdown.clone();
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        let _ = expiry.await;
        served
    }
}

/// Deletes expired Thing Descriptions (through the journal), checking every `interval`.
async fn expire_things(app: App, interval: Duration, shutdown: CancellationToken) {
    let actor = Actor {
        name: "directory expiry".to_owned(),
        source: iotcane_app::store::ChangeSource::Http,
    };
    app.run_expiry(interval, shutdown, &actor).await;
}
