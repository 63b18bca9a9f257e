//! Recommendations: a declarative context in, ranked valid configurations out; feedback
//! that turns accepted configurations into cases; subscriptions that re-evaluate a
//! recommendation as knowledge and live context change.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use iotcane_app::Role;
use iotcane_app::recommend::{Feedback, StoredRecommendation};
use iotcane_model::formats::{self, ApplicationContextError, Format};
use iotcane_model::{Outcome, OutcomeStatus, Violations};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::body::Body;
use crate::error::{ApiError, ApiResult, Problem};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_recommendation, list_recommendations))
        .routes(routes!(get_recommendation))
        .routes(routes!(post_feedback))
        .routes(routes!(subscribe, unsubscribe))
}

/// The media types a context can be posted in: native JSON, or the same context in RDF
/// (JSON-LD with the application context, Turtle, N-Triples).
const CONTEXT_TYPES: &[&str] = &[
    "application/json",
    "application/ld+json",
    "text/turtle",
    "application/n-triples",
];

/// Recommend configurations for an application context.
///
/// The body is a declarative context (`schema/json-schema/context.schema.json`), as JSON or
/// in RDF (`application/ld+json` with the context
/// `https://w3id.org/iotcane/application-context.jsonld`, `text/turtle`,
/// `application/n-triples`; see `schema/VOCABULARY.md`). The answer ranks the configurations that meet every hard constraint, best first, each with
/// its bindings, totals, objective, constraint results and explanation; when none is
/// valid, `conflict` names the constraints that conflict. The answer is kept under its
/// `id` for feedback and subscriptions.
#[utoipa::path(post, path = "/api/v1/recommendations", tag = "recommendations",
    request_body(content = Object, description = "The application context, as native JSON, JSON-LD, Turtle or N-Triples", content_type = "application/json"),
    responses(
        (status = 201, description = "The recommendation; `Location` names it", body = Object, content_type = "application/json"),
        (status = 400, description = "The context is invalid; `errors` name each field", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is in none of the accepted media types", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn create_recommendation(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> ApiResult<Response> {
    caller.require(Role::Write)?;
    let context = context_of(&body)?;
    let rec = state
        .app
        .recommend(caller.tenant(), &context, &caller.actor())
        .await?;
    Ok(created(rec))
}

/// The context of a request body, read into its native JSON whatever it was written in.
fn context_of(body: &Body) -> ApiResult<Value> {
    let media = body.expect(CONTEXT_TYPES)?;
    match Format::from_media_type(media) {
        Some(format) if formats::is_rdf(format) => {
            formats::read_application_context(format, &body.bytes).map_err(|e| match e {
                ApplicationContextError::Syntax(e) => ApiError::MalformedBody {
                    format: e.format,
                    detail: e.message,
                },
                ApplicationContextError::Shape(v) => v.into(),
            })
        }
        _ => crate::body::parse_json(&body.bytes),
    }
}

fn created(rec: StoredRecommendation) -> Response {
    let location = format!("/api/v1/recommendations/{}", rec.id);
    let mut response = (StatusCode::CREATED, axum::Json(rec)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListParams {
    /// How many, newest first (default 50, at most 500).
    pub limit: Option<usize>,
    /// Only those created before this instant (epoch ms): pass the last one's to page.
    pub before: Option<i64>,
}

/// List the tenant's recommendations, newest first.
#[utoipa::path(get, path = "/api/v1/recommendations", tag = "recommendations",
    params(ListParams),
    responses((status = 200, body = Object, content_type = "application/json")),
    security(("api_key" = [])))]
async fn list_recommendations(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> ApiResult<axum::Json<Value>> {
    caller.require(Role::Read)?;
    let items = state
        .app
        .recommendations(caller.tenant(), params.before, params.limit.unwrap_or(50))
        .await?;
    Ok(axum::Json(serde_json::json!({ "items": items })))
}

/// Read a recommendation.
#[utoipa::path(get, path = "/api/v1/recommendations/{id}", tag = "recommendations",
    params(("id" = String, Path, description = "The recommendation's id")),
    responses(
        (status = 200, body = Object, content_type = "application/json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn get_recommendation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<StoredRecommendation>> {
    caller.require(Role::Read)?;
    Ok(axum::Json(
        state.app.recommendation(caller.tenant(), &id).await?,
    ))
}

/// Feedback on a recommendation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeedbackBody {
    /// `accepted` or `rejected`.
    pub status: FeedbackStatus,
    /// The configuration it is about, by rank (default 1).
    pub configuration: Option<usize>,
    /// Why, in words.
    pub reason: Option<String>,
    /// How the accepted configuration went (may come later, in another feedback).
    pub outcome: Option<OutcomeBody>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum FeedbackStatus {
    Accepted,
    Rejected,
}

/// How a configuration went in operation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutcomeBody {
    /// `success`, `partial` or `failure`.
    pub status: String,
    /// 0 to 5.
    pub rating: Option<f64>,
    pub notes: Option<String>,
    pub measured_latency_ms: Option<f64>,
    pub measured_monthly_cost: Option<f64>,
    pub measured_availability: Option<f64>,
}

impl TryFrom<FeedbackBody> for Feedback {
    type Error = ApiError;

    fn try_from(body: FeedbackBody) -> Result<Self, ApiError> {
        let mut problems = Vec::new();
        if body
            .reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > 2000)
        {
            problems.push(("/reason", "at most 2000 characters".to_owned()));
        }
        if body.configuration == Some(0) {
            problems.push(("/configuration", "ranks start at 1".to_owned()));
        }
        let outcome = match body.outcome {
            None => None,
            Some(o) => {
                let status = o.status.parse::<OutcomeStatus>().map_err(|_| {
                    ApiError::Invalid(Violations::one(
                        "/outcome/status",
                        format!("must be one of {}", OutcomeStatus::expected()),
                    ))
                })?;
                if o.rating.is_some_and(|r| !(0.0..=5.0).contains(&r)) {
                    problems.push(("/outcome/rating", "must be between 0 and 5".to_owned()));
                }
                if o.measured_availability
                    .is_some_and(|a| !(0.0..=1.0).contains(&a))
                {
                    problems.push((
                        "/outcome/measuredAvailability",
                        "must be a fraction in [0, 1]".to_owned(),
                    ));
                }
                for (pointer, value) in [
                    ("/outcome/measuredLatencyMs", o.measured_latency_ms),
                    ("/outcome/measuredMonthlyCost", o.measured_monthly_cost),
                ] {
                    if value.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                        problems.push((pointer, "must be a non-negative number".to_owned()));
                    }
                }
                Some(Outcome {
                    status,
                    rating: o.rating,
                    notes: o.notes,
                    measured_latency_ms: o.measured_latency_ms,
                    measured_monthly_cost: o.measured_monthly_cost,
                    measured_availability: o.measured_availability,
                })
            }
        };
        if !problems.is_empty() {
            return Err(ApiError::Invalid(Violations(
                problems
                    .into_iter()
                    .map(|(p, m)| iotcane_model::Violation::new(p, m))
                    .collect(),
            )));
        }
        if outcome.is_some() && matches!(body.status, FeedbackStatus::Rejected) {
            return Err(ApiError::Invalid(Violations::one(
                "/outcome",
                "an outcome is reported for an accepted configuration",
            )));
        }
        Ok(Feedback {
            accepted: matches!(body.status, FeedbackStatus::Accepted),
            configuration: body.configuration.unwrap_or(1),
            reason: body.reason,
            outcome,
        })
    }
}

/// Give feedback on a recommendation.
///
/// `accepted` turns the configuration into the case `case-{id}` (journaled, versioned,
/// in the graph; later feedback with an `outcome` updates it), and gives each registered
/// device and edge node it binds its part as desired configuration (published over
/// MQTT). `rejected` keeps the reason.
#[utoipa::path(post, path = "/api/v1/recommendations/{id}/feedback", tag = "recommendations",
    params(("id" = String, Path, description = "The recommendation's id")),
    request_body(content = FeedbackBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The recommendation with its feedback", body = Object, content_type = "application/json"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn post_feedback(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<axum::Json<StoredRecommendation>> {
    caller.require(Role::Write)?;
    let value = body.json(&["application/json"])?;
    let parsed: FeedbackBody =
        iotcane_model::typed(value).map_err(|v| ApiError::Invalid(Violations(vec![v])))?;
    let feedback = Feedback::try_from(parsed)?;
    Ok(axum::Json(
        state
            .app
            .feedback(caller.tenant(), &id, feedback, &caller.actor())
            .await?,
    ))
}

/// A subscription's settings.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionBody {
    /// How much lower (better) a new configuration's objective must be to be announced
    /// (default 0.05, between 0 and 1).
    pub margin: Option<f64>,
}

/// Subscribe to a recommendation.
///
/// While subscribed, the recommendation is re-evaluated when knowledge or live context
/// changes; when its best configuration breaks a constraint, or a better one appears by
/// more than `margin`, a new recommendation (superseding this one, and subscribed in its
/// place) is made and announced: a `recommendation` event on `/api/v1/events`, an MQTT
/// event, and — for an accepted recommendation — the desired configuration of the
/// devices concerned.
#[utoipa::path(put, path = "/api/v1/recommendations/{id}/subscription", tag = "recommendations",
    params(("id" = String, Path, description = "The recommendation's id")),
    request_body(content = SubscriptionBody, content_type = "application/json"),
    responses(
        (status = 200, body = Object, content_type = "application/json"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn subscribe(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<axum::Json<StoredRecommendation>> {
    caller.require(Role::Write)?;
    let settings: SubscriptionBody = if body.bytes.is_empty() {
        SubscriptionBody::default()
    } else {
        iotcane_model::typed(body.json(&["application/json"])?)
            .map_err(|v| ApiError::Invalid(Violations(vec![v])))?
    };
    Ok(axum::Json(
        state
            .app
            .subscribe(caller.tenant(), &id, Some(settings.margin))
            .await?,
    ))
}

/// End the subscription to a recommendation.
#[utoipa::path(delete, path = "/api/v1/recommendations/{id}/subscription", tag = "recommendations",
    params(("id" = String, Path, description = "The recommendation's id")),
    responses(
        (status = 204),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn unsubscribe(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Write)?;
    state.app.subscribe(caller.tenant(), &id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
