//! Server-sent events: the directory's `thing_created` / `thing_updated` /
//! `thing_deleted` stream (WoT Discovery), and the native API's stream of every change.
//!
//! Each event's id is its journal position, so a client that reconnects with
//! `Last-Event-ID` gets exactly the changes it missed, read back from the journal, and
//! then the live ones. Streams end when the server shuts down.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use iotcane_app::Role;
use iotcane_app::directory::{THING_KINDS, thing_of};
use iotcane_app::store::{JournalEntry, Meta, Op, decode_body};
use iotcane_model::{Kind, Tenant};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(thing_events))
        .routes(routes!(thing_events_of_type))
        .routes(routes!(resource_events))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Include the TD (created) or the merge patch from the previous TD (updated).
    diff: Option<bool>,
}

/// Which stream a subscriber asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    /// Directory events of these types (created, updated, deleted).
    Things { types: [bool; 3], diff: bool },
    /// Every change to any resource.
    Resources,
}

/// Directory events: every Thing created, updated or deleted.
#[utoipa::path(get, path = "/events", tag = "directory", params(EventParams,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    responses(
        (status = 200, description = "An event stream: `thing_created`, `thing_updated`, `thing_deleted`", content_type = "text/event-stream", body = String),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn thing_events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(params): Query<EventParams>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    caller.require(Role::Read)?;
    let feed = Feed::Things {
        types: [true; 3],
        diff: params.diff.unwrap_or(false),
    };
    Ok(stream(state, caller, feed, last_event_id(&headers)?))
}

/// Directory events of one type.
#[utoipa::path(get, path = "/events/{event_type}", tag = "directory", params(
        ("event_type" = String, Path, description = "thing_created, thing_updated or thing_deleted"),
        EventParams,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    responses(
        (status = 200, description = "An event stream of one type", content_type = "text/event-stream", body = String),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn thing_events_of_type(
    State(state): State<AppState>,
    caller: Caller,
    Path(event_type): Path<String>,
    headers: HeaderMap,
    Query(params): Query<EventParams>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    caller.require(Role::Read)?;
    let types = match event_type.as_str() {
        "thing_created" => [true, false, false],
        "thing_updated" => [false, true, false],
        "thing_deleted" => [false, false, true],
        other => return Err(ApiError::NotFound(format!("no event type `{other}`"))),
    };
    let feed = Feed::Things {
        types,
        diff: params.diff.unwrap_or(false),
    };
    Ok(stream(state, caller, feed, last_event_id(&headers)?))
}

/// Every change to the tenant's resources (`created`, `updated`, `deleted`), with the
/// kind, id, version and journal position.
#[utoipa::path(get, path = "/api/v1/events", tag = "resources", params(
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    responses(
        (status = 200, description = "An event stream of changes", content_type = "text/event-stream", body = String),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
async fn resource_events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    caller.require(Role::Read)?;
    Ok(stream(
        state,
        caller,
        Feed::Resources,
        last_event_id(&headers)?,
    ))
}

fn last_event_id(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    ApiError::bad_parameter("Last-Event-ID", "must be an event id this stream sent")
                })
        })
        .transpose()
}

/// Streams events until the client goes away, its key is revoked, or the server shuts
/// down.
fn stream(
    state: AppState,
    caller: Caller,
    feed: Feed,
    resume_after: Option<i64>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::channel::<Event>(256);
    // Subscribe before reading the backlog, so nothing falls between the two.
    let live = state.app.store().subscribe();
    let recommendations = state.app.recommendation_events();
    tokio::spawn(async move {
        let shutdown = state.shutdown.clone();
        let tenant = caller.tenant().clone();
        tokio::select! {
            () = shutdown.cancelled() => {}
            // A quiet stream never sends, so a departed client is noticed here.
            () = tx.closed() => {}
            () = until_revoked(&state, &caller) => {}
            () = pump(&state, &tenant, feed, resume_after, live, &tx) => {}
            () = forward_recommendations(&tenant, feed, recommendations, &tx) => {}
        }
    });
    let events = ReceiverStream::new(rx);
    Sse::new(futures_util::StreamExt::map(events, Ok)).keep_alive(KeepAlive::default())
}

/// Sends the tenant's `recommendation` events (re-evaluated subscriptions) on the
/// resources feed. They are not journal rows, so they carry no event id and are not
/// replayed.
async fn forward_recommendations(
    tenant: &Tenant,
    feed: Feed,
    mut events: broadcast::Receiver<Arc<iotcane_app::recommend::RecommendationEvent>>,
    tx: &mpsc::Sender<Event>,
) {
    if !matches!(feed, Feed::Resources) {
        return std::future::pending().await;
    }
    loop {
        match events.recv().await {
            Ok(event) if event.tenant == *tenant => {
                let Ok(data) = serde_json::to_string(&*event) else {
                    continue;
                };
                if tx
                    .send(Event::default().event("recommendation").data(data))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
        }
    }
}

/// Returns once the caller's key no longer checks out (checked as often as keys are
/// cached, so a revoked key loses its streams as soon as it loses everything else).
async fn until_revoked(state: &AppState, caller: &Caller) {
    let mut tick = tokio::time::interval(iotcane_app::keys::KEY_CACHE_TTL);
    tick.tick().await;
    loop {
        tick.tick().await;
        if !caller.still_valid(state.app.keys()).await {
            return;
        }
    }
}

/// Sends the backlog after `resume_after`, then live events, until the client goes away.
async fn pump(
    state: &AppState,
    tenant: &Tenant,
    feed: Feed,
    resume_after: Option<i64>,
    mut live: broadcast::Receiver<Arc<JournalEntry>>,
    tx: &mpsc::Sender<Event>,
) {
    let mut sent = resume_after.unwrap_or_else(|| state.app.store().applied_seq());
    if resume_after.is_some() && !replay(state, tenant, feed, &mut sent, tx).await {
        return;
    }
    loop {
        match live.recv().await {
            Ok(entry) => {
                if entry.seq <= sent {
                    continue;
                }
                sent = entry.seq;
                if let Some(event) = event_of(state, tenant, feed, &entry).await
                    && tx.send(event).await.is_err()
                {
                    return;
                }
            }
            // Too slow to keep up with the live feed: catch up from the journal instead.
            Err(broadcast::error::RecvError::Lagged(_)) => {
                if !replay(state, tenant, feed, &mut sent, tx).await {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Sends journal rows after `sent` up to what the graph has applied. False when the
/// client has gone away (or the journal failed, which ends the stream).
async fn replay(
    state: &AppState,
    tenant: &Tenant,
    feed: Feed,
    sent: &mut i64,
    tx: &mpsc::Sender<Event>,
) -> bool {
    let up_to = state.app.store().applied_seq();
    while *sent < up_to {
        let rows = match state.app.store().changes_after(*sent, 1000).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "event replay failed");
                return false;
            }
        };
        if rows.is_empty() {
            break;
        }
        for entry in rows {
            if entry.seq > up_to {
                return true;
            }
            *sent = entry.seq;
            if let Some(event) = event_of(state, tenant, feed, &entry).await
                && tx.send(event).await.is_err()
            {
                return false;
            }
        }
    }
    true
}

async fn event_of(
    state: &AppState,
    tenant: &Tenant,
    feed: Feed,
    entry: &JournalEntry,
) -> Option<Event> {
    if entry.tenant != tenant.as_str() {
        return None;
    }
    let kind = Kind::parse(&entry.kind)?;
    match feed {
        Feed::Resources => {
            let (name, data) = iotcane_app::events::change_event(entry)?;
            Some(
                Event::default()
                    .event(name)
                    .id(entry.seq.to_string())
                    .data(data.to_string()),
            )
        }
        Feed::Things { types, diff } => {
            if !THING_KINDS.contains(&kind) {
                return None;
            }
            let (slot, name) = match entry.op {
                Op::Create => (0, "thing_created"),
                Op::Update => (1, "thing_updated"),
                Op::Delete => (2, "thing_deleted"),
                // The TD did not change: live context is on the native stream.
                Op::Context => return None,
            };
            if !types[slot] {
                return None;
            }
            let data = if diff && entry.op != Op::Delete {
                let td = td_of(entry)?;
                if entry.op == Op::Create {
                    Value::Object(td)
                } else {
                    let previous = previous_td(state, tenant, entry).await.unwrap_or_default();
                    let mut patch = merge_diff(&previous, &td);
                    patch.insert("id".into(), json!(entry.resource_id));
                    Value::Object(patch)
                }
            } else {
                json!({ "id": entry.resource_id })
            };
            Some(
                Event::default()
                    .event(name)
                    .id(entry.seq.to_string())
                    .data(data.to_string()),
            )
        }
    }
}

/// The TD a journal row's body describes (registration times from the row).
fn td_of(entry: &JournalEntry) -> Option<Map<String, Value>> {
    let resource = decode_body(entry.seq, entry.body.as_deref()?).ok()?;
    let meta = Meta {
        version: entry.version,
        created_ms: entry.at_ms,
        modified_ms: entry.at_ms,
        actor: entry.actor.clone(),
        source: entry.source,
    };
    let mut td = thing_of(iotcane_app::store::Stored { resource, meta })?.td;
    // Times of retrieval would make every diff differ; events carry the content only.
    td.remove("registration");
    Some(td)
}

async fn previous_td(
    state: &AppState,
    tenant: &Tenant,
    entry: &JournalEntry,
) -> Option<Map<String, Value>> {
    let id = entry.resource_id.parse().ok()?;
    let history = state.app.store().history(tenant, &id).await.ok()?;
    let previous = history.iter().rev().find(|e| e.seq < entry.seq)?;
    td_of(previous)
}

/// The JSON merge patch (RFC 7396) that turns `old` into `new`.
pub fn merge_diff(old: &Map<String, Value>, new: &Map<String, Value>) -> Map<String, Value> {
    let mut patch = Map::new();
    for (key, old_value) in old {
        match new.get(key) {
            None => {
                patch.insert(key.clone(), Value::Null);
            }
            Some(new_value) if new_value != old_value => {
                let value = match (old_value, new_value) {
                    (Value::Object(o), Value::Object(n)) => Value::Object(merge_diff(o, n)),
                    _ => new_value.clone(),
                };
                patch.insert(key.clone(), value);
            }
            Some(_) => {}
        }
    }
    for (key, new_value) in new {
        if !old.contains_key(key) {
            patch.insert(key.clone(), new_value.clone());
        }
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_diff_round_trips_through_merge() {
        let old = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        let new = json!({"a": 1, "b": {"c": 5}, "e": [2], "f": true});
        let patch = merge_diff(old.as_object().unwrap(), new.as_object().unwrap());
        assert_eq!(
            Value::Object(patch.clone()),
            json!({"b": {"c": 5, "d": null}, "e": [2], "f": true})
        );
        let mut merged = old.clone();
        json_merge(&mut merged, &Value::Object(patch));
        assert_eq!(merged, new);
    }

    fn json_merge(doc: &mut Value, patch: &Value) {
        if let (Value::Object(d), Value::Object(p)) = (&mut *doc, patch) {
            for (k, v) in p {
                if v.is_null() {
                    d.remove(k);
                } else {
                    json_merge(d.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        } else {
            *doc = patch.clone();
        }
    }
}
