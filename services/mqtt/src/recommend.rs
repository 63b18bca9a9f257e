//! Recommendations over MQTT: a client publishes a context on
//! `{prefix}/{tenant}/recommendations/request` (MQTT 5, with a response topic under
//! `{prefix}/{tenant}/replies/`) or on `…/recommendations/request/{request-id}` (MQTT
//! 3.1.1, answered on `…/recommendations/reply/{request-id}`), and gets back the stored
//! recommendation, or an error naming every problem of the context.
//!
//! Requests leave the journal batches: a recommendation writes no knowledge, and it may
//! take far longer than a batch. The batch checks the topic, the size, the tenant and the
//! JSON, and hands the request to a worker that computes [`AT_ONCE`] at a time, with up to
//! [`QUEUED`] waiting (more are refused as busy, 503).
//!
//! Acknowledgement: a request is acknowledged once handed over, not once answered.
//! PUBACKs leave strictly in arrival order, so a request acknowledged only after its reply
//! would hold back the acknowledgements of every message behind it — device traffic would
//! stall whenever the broker's in-flight window (rumqttd: 100) filled behind one slow
//! recommendation. The price is that a request in the worker when the process crashes is
//! lost; its client, which waits for a reply, times out and asks again, as it must for
//! any request whose reply does not come. On a graceful stop the worker answers what it
//! holds before the gateway disconnects.

use std::sync::Arc;
use std::time::Instant;

use iotcane_app::AppError;
use rumqttc::v5::mqttbytes::v5::Publish;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::gateway::{Context, Plan, Refusal, publish_answer, record, refuse, respond};
use crate::topics::{RecommendationRequest, Request};

/// Recommendations computed at once: each reads the graph and then searches on a
/// blocking thread.
const AT_ONCE: usize = 2;
/// Requests waiting for the worker; beyond, a request is refused as busy.
pub(crate) const QUEUED: usize = 64;

/// A request handed to the worker.
#[derive(Debug)]
pub(crate) struct Job {
    request: RecommendationRequest,
    /// The topic as the client sent it.
    topic: String,
    publish: Publish,
    context: Value,
}

/// Plans a recommendation request whose topic, size and tenant are checked: a job, or a
/// refusal.
pub(crate) fn plan(
    context: &Context,
    publish: &Publish,
    topic: &str,
    request: RecommendationRequest,
) -> Plan {
    let refused = |request: RecommendationRequest, refusal| Plan::Refuse {
        tenant: Some(request.tenant.to_string()),
        topic: topic.to_owned(),
        request: Some(Request::Recommendation(request)),
        refusal,
    };
    if request.request_id.is_none() && !has_response_topic(context, publish, &request) {
        let prefix = context.topics.prefix();
        let tenant = &request.tenant;
        let detail = format!(
            "nowhere to reply: give an MQTT 5 response topic under `{prefix}/{tenant}/replies/`, \
             or publish on `{prefix}/{tenant}/recommendations/request/{{request-id}}` and \
             subscribe to `{prefix}/{tenant}/recommendations/reply/{{request-id}}`"
        );
        return refused(request, Refusal::new("no_reply_topic", detail));
    }
    match serde_json::from_slice(&publish.payload) {
        Ok(value) => Plan::Recommend(Job {
            request,
            topic: topic.to_owned(),
            publish: publish.clone(),
            context: value,
        }),
        Err(e) => refused(
            request,
            Refusal::new("not_json", format!("the payload is not JSON: {e}")),
        ),
    }
}

/// Whether the message names a response topic the gateway answers on.
fn has_response_topic(
    context: &Context,
    publish: &Publish,
    request: &RecommendationRequest,
) -> bool {
    publish
        .properties
        .as_ref()
        .and_then(|p| p.response_topic.as_deref())
        .is_some_and(|t| context.topics.is_reply_topic(t, request.tenant.as_str()))
}

/// Hands a request to the worker, or refuses it as busy when too many are waiting.
pub(crate) async fn hand_over(context: &Context, jobs: &mpsc::Sender<Job>, job: Job) {
    let job = match jobs.try_send(job) {
        Ok(()) => {
            metrics::gauge!("iotcane_mqtt_recommendations_waiting")
                .set((jobs.max_capacity() - jobs.capacity()) as f64);
            return;
        }
        Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) => job,
    };
    let refusal = Refusal::new(
        "busy",
        format!("{QUEUED} recommendation requests are waiting already: ask again later"),
    );
    let tenant = job.request.tenant.to_string();
    refuse(
        context,
        &job.publish,
        Some(&tenant),
        &job.topic,
        Some(&Request::Recommendation(job.request)),
        &refusal,
    )
    .await;
}

/// Answers the requests handed over, [`AT_ONCE`] at a time, until the sender is gone and
/// every request taken is answered.
pub(crate) async fn run(context: Arc<Context>, mut jobs: mpsc::Receiver<Job>) {
    let limit = Arc::new(Semaphore::new(AT_ONCE));
    let mut running = JoinSet::new();
    loop {
        // A permit first: requests wait in the bounded channel, not here.
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        let Some(job) = jobs.recv().await else {
            break;
        };
        metrics::gauge!("iotcane_mqtt_recommendations_waiting").set(jobs.len() as f64);
        let context = context.clone();
        running.spawn(async move {
            answer(&context, job).await;
            drop(permit);
        });
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}

#[tracing::instrument(skip_all, fields(tenant = %job.request.tenant))]
async fn answer(context: &Context, job: Job) {
    let started = Instant::now();
    let Job {
        request,
        topic,
        publish,
        context: value,
    } = job;
    let stored = context
        .app
        .recommend(&request.tenant, &value, &context.actor)
        .await
        .and_then(|stored| {
            serde_json::to_value(&stored).map_err(|e| {
                AppError::Store(iotcane_app::store::StoreError::Corrupt(e.to_string()))
            })
        });
    let refusal = match stored {
        Ok(body) => {
            record("recommend", "accepted");
            let elapsed = started.elapsed().as_secs_f64();
            metrics::histogram!("iotcane_mqtt_recommendation_seconds").record(elapsed);
            tracing::debug!(%topic, elapsed, id = %body["id"], "recommendation answered");
            reply(context, &publish, &request, &body).await;
            return;
        }
        Err(AppError::Invalid(violations)) => Refusal::invalid(violations),
        Err(e) => {
            tracing::error!(error = %e, %topic, "recommendation failed");
            Refusal::new("error", e.to_string())
        }
    };
    let tenant = request.tenant.to_string();
    refuse(
        context,
        &publish,
        Some(&tenant),
        &topic,
        Some(&Request::Recommendation(request)),
        &refusal,
    )
    .await;
}

/// Publishes a reply: on `recommendations/reply/{request-id}` when the topic has one, and
/// on the MQTT 5 response topic when it lies under the tenant's `replies/`; with the
/// request's correlation data.
pub(crate) async fn reply(
    context: &Context,
    publish: &Publish,
    request: &RecommendationRequest,
    body: &Value,
) {
    if let Some(request_id) = &request.request_id {
        let correlation = publish
            .properties
            .as_ref()
            .and_then(|p| p.correlation_data.clone());
        let topic = context
            .topics
            .recommendation_reply(&request.tenant, request_id);
        publish_answer(context, topic, body, correlation).await;
    }
    respond(context, publish, request.tenant.as_str(), body).await;
}

/// The HTTP status a refusal stands for.
fn status(refusal: &Refusal) -> u16 {
    match refusal.label {
        "too_large" => 413,
        "unknown_tenant" => 404,
        "busy" => 503,
        "error" | "refused" => 500,
        _ => 400,
    }
}

/// The reply to a refused request: `{"error": {status, detail, errors: [{pointer,
/// detail}]}}`, the problems named as in the gateway's other refusals. A 5xx reply carries
/// no internals (the dead letter and the log have them).
pub(crate) fn error_body(refusal: &Refusal) -> Value {
    let status = status(refusal);
    let (detail, errors) = if status >= 500 && status != 503 {
        (
            "the recommendation failed; the incident is logged".to_owned(),
            Vec::new(),
        )
    } else if refusal.label == "invalid" {
        let n = refusal.reasons.len();
        let detail = format!(
            "{n} problem{} in the context: {}",
            if n == 1 { "" } else { "s" },
            refusal.text()
        );
        let errors = refusal
            .reasons
            .iter()
            .map(|(pointer, detail)| json!({ "pointer": pointer, "detail": detail }))
            .collect();
        (detail, errors)
    } else {
        (refusal.text(), Vec::new())
    };
    json!({ "error": { "status": status, "detail": detail, "errors": errors } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_become_error_replies_without_internals() {
        let invalid = Refusal::invalid(iotcane_model::Violations(vec![
            iotcane_model::Violation::new("/qos/maxLatencyMs", "must be positive"),
            iotcane_model::Violation::new("/sensing/0/property", "unknown property"),
        ]));
        let body = error_body(&invalid);
        assert_eq!(body["error"]["status"], 400);
        assert_eq!(
            body["error"]["errors"][0],
            json!({"pointer": "/qos/maxLatencyMs", "detail": "must be positive"})
        );
        assert!(
            body["error"]["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("2 problems in the context")),
            "{body}"
        );
        for (label, code) in [
            ("not_json", 400),
            ("no_reply_topic", 400),
            ("too_large", 413),
            ("unknown_tenant", 404),
            ("busy", 503),
        ] {
            let body = error_body(&Refusal::new(label, "why"));
            assert_eq!(body["error"]["status"], code, "{label}");
            assert_eq!(body["error"]["detail"], "why", "{label}");
            assert_eq!(body["error"]["errors"], json!([]), "{label}");
        }
        let internal = error_body(&Refusal::new("error", "database at 10.0.0.3 is down"));
        assert_eq!(internal["error"]["status"], 500);
        assert!(
            !internal.to_string().contains("10.0.0.3"),
            "internals leaked: {internal}"
        );
    }
}
