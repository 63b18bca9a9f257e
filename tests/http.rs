//! The HTTP gateway end to end: the real server on port 0, a real HTTP client, a real
//! journal (SQLite, and PostgreSQL where the environment provides it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use helpers::{Backend, backends, device_json, export_lines, iotcane, now_ms, serve, stop};
use iotcane_app::{App, Role};
use iotcane_http::{HttpConfig, HttpServer};
use iotcane_model::{ResourceId, Tenant};
use iotcane_store::KnowledgeStore;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const BODY_LIMIT: usize = 64 * 1024;

struct TestApp {
    base: String,
    client: reqwest::Client,
    store: KnowledgeStore,
    app: App,
    /// An admin key of tenant `acme`.
    admin: String,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn spawn_app(backend: &Backend) -> TestApp {
    spawn_app_with(backend, |_, _| {}).await
}

async fn spawn_app_with(
    backend: &Backend,
    configure: impl FnOnce(&mut iotcane_store::StoreConfig, &mut HttpConfig),
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut store_config = helpers::config(dir.path(), backend);
    let mut config = HttpConfig::new(tenant("acme"));
    config.body_limit = BODY_LIMIT;
    config.expiry_interval = Duration::from_millis(200);
    config.max_page = 500;
    configure(&mut store_config, &mut config);
    let store = KnowledgeStore::open(store_config).await.unwrap();
    let app = App::new(store.clone());
    let admin = app
        .keys()
        .create(&tenant("acme"), Role::Admin, "test admin")
        .await
        .unwrap()
        .token;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let server = HttpServer::new(listener, app.clone(), config, shutdown.clone());
    let base = format!("http://{}", server.local_addr().unwrap());
    let server = tokio::spawn(server.run());
    TestApp {
        base,
        client: reqwest::Client::new(),
        store,
        app,
        admin,
        shutdown,
        server,
        _dir: dir,
    }
}

fn tenant(name: &str) -> Tenant {
    name.parse().unwrap()
}

fn rid(id: &str) -> ResourceId {
    id.parse().unwrap()
}

impl TestApp {
    fn req(&self, method: Method, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key)
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.req(Method::GET, path, &self.admin)
    }

    async fn put_td(&self, key: &str, td: &Value) -> reqwest::Response {
        let id = td["id"].as_str().unwrap();
        self.req(Method::PUT, &format!("/things/{}", enc(id)), key)
            .header(header::CONTENT_TYPE, "application/td+json")
            .body(td.to_string())
            .send()
            .await
            .unwrap()
    }

    async fn key(&self, tenant_name: &str, role: Role) -> String {
        self.app
            .keys()
            .create(&tenant(tenant_name), role, "test key")
            .await
            .unwrap()
            .token
    }

    /// What the store holds: equal fingerprints mean nothing changed.
    async fn fingerprint(&self) -> (Vec<String>, i64) {
        (
            export_lines(&self.store),
            self.store.journal_head().await.unwrap(),
        )
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.server.await.unwrap().unwrap();
        self.store.close().await;
    }
}

fn enc(id: &str) -> String {
    id.replace(':', "%3A").replace('/', "%2F")
}

/// Checks a problem response: its status, media type and `type` slug. Returns its body.
async fn problem(response: reqwest::Response, status: u16, slug: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "{:?}", response.url());
    let media = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(media, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["type"],
        format!("https://w3id.org/iotcane/problems/{slug}"),
        "{body}"
    );
    assert_eq!(body["status"], status);
    assert!(!body["detail"].as_str().unwrap().is_empty());
    body
}

fn td(id: &str, title: &str) -> Value {
    json!({
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "id": id,
        "title": title,
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
        "properties": {
            "heart_rate": {"type": "number", "forms": [{"href": "https://hr.example.com/rate"}]}
        }
    })
}

/// TDs of the shapes the directory must take: minimal, with security schemes, with
/// links, with many affordances, and an edge node.
fn td_shapes() -> Vec<Value> {
    let mut many = td("urn:dev:many", "Many affordances");
    let mut properties = serde_json::Map::new();
    for i in 0..40 {
        properties.insert(
            format!("reading_{i}"),
            json!({"type": "number", "forms": [{"href": format!("coap://many.example.com/r{i}")}]}),
        );
    }
    many["properties"] = Value::Object(properties);
    many["actions"] = json!({
        "reset": {"forms": [{"href": "coap://many.example.com/reset"}]},
        "calibrate": {"forms": [{"href": "coap://many.example.com/cal"}]}
    });
    many["events"] = json!({"overheat": {"data": {"type": "number"}, "forms": [{"href": "mqtt://broker.example.com/overheat"}]}});
    vec![
        json!({
            "@context": "https://www.w3.org/2022/wot/td/v1.1",
            "id": "urn:dev:minimal",
            "title": "Minimal",
            "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
            "security": "nosec_sc"
        }),
        json!({
            "@context": "https://www.w3.org/2022/wot/td/v1.1",
            "id": "urn:dev:secured",
            "title": "Secured",
            "securityDefinitions": {
                "basic_sc": {"scheme": "basic", "in": "header"},
                "bearer_sc": {"scheme": "bearer", "format": "jwt", "alg": "ES256"},
                "combo_sc": {"scheme": "combo", "oneOf": ["basic_sc", "bearer_sc"]}
            },
            "security": ["combo_sc"],
            "properties": {"temp": {"type": "number", "forms": [{"href": "https://secured.example.com/temp"}]}}
        }),
        json!({
            "@context": ["https://www.w3.org/2022/wot/td/v1.1", {"saref": "https://w3id.org/saref#"}],
            "id": "urn:dev:linked",
            "@type": "saref:LightSwitch",
            "title": "Linked",
            "links": [
                {"href": "https://example.com/manual.pdf", "rel": "service-doc", "type": "application/pdf"},
                {"href": "urn:dev:secured", "rel": "controlledBy"}
            ],
            "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
            "security": "nosec_sc",
            "actions": {"toggle": {"forms": [{"href": "https://linked.example.com/toggle"}]}}
        }),
        many,
        json!({
            "@context": ["https://www.w3.org/2022/wot/td/v1.1", {"iotcane": "https://w3id.org/iotcane/ontology#"}],
            "id": "urn:dev:gateway-b",
            "@type": "iotcane:EdgeNode",
            "title": "Gateway B",
            "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
            "security": "nosec_sc",
            "iotcane:cpuCores": 4,
            "iotcane:memoryMb": 2048,
            "iotcane:southboundProtocols": ["ble"],
            "iotcane:site": "ward-7",
            "properties": {"load": {"type": "number", "forms": [{"href": "mqtt://gw-b.example.com/load"}]}}
        }),
    ]
}

fn without_registration(mut td: Value) -> Value {
    td.as_object_mut().unwrap().remove("registration");
    td
}

#[tokio::test]
async fn the_directory_stores_serves_patches_and_deletes_tds_of_every_shape() {
    for backend in &backends().await {
        let t = spawn_app(backend).await;
        for shape in td_shapes() {
            let id = shape["id"].as_str().unwrap();
            let created = t.put_td(&t.admin, &shape).await;
            assert_eq!(created.status(), StatusCode::CREATED, "{id}");
            assert_eq!(created.headers()[header::ETAG], "\"v1\"");

            let got = t.get(&format!("/things/{}", enc(id))).send().await.unwrap();
            assert_eq!(got.status(), StatusCode::OK);
            assert_eq!(got.headers()[header::CONTENT_TYPE], "application/td+json");
            let body: Value = got.json().await.unwrap();
            let registration = body["registration"].clone();
            assert!(registration["created"].is_string() && registration["modified"].is_string());
            assert_eq!(
                without_registration(body),
                shape,
                "{id} comes back as it went in"
            );

            let mut changed = shape.clone();
            changed["title"] = json!("Renamed");
            let replaced = t.put_td(&t.admin, &changed).await;
            assert_eq!(replaced.status(), StatusCode::NO_CONTENT, "{id}");
            assert_eq!(replaced.headers()[header::ETAG], "\"v2\"");
        }
        // The TD → edge node path: the native API sees the gateway with its extension members.
        let gateway: Value = t
            .get("/api/v1/edge-nodes/urn%3Adev%3Agateway-b")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(gateway["kind"], "edgeNode");
        assert_eq!(gateway["cpuCores"], 4);
        assert_eq!(gateway["site"], "ward-7");
        let many: Value = t
            .get("/api/v1/devices/urn%3Adev%3Amany")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(many["affordances"].as_array().unwrap().len(), 43);

        // Merge patch: a member changes, a member goes, the rest stays.
        let patched = t
            .req(Method::PATCH, "/things/urn%3Adev%3Alinked", &t.admin)
            .header(header::CONTENT_TYPE, "application/merge-patch+json")
            .body(json!({"description": "patched", "links": null}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(patched.status(), StatusCode::NO_CONTENT);
        let linked: Value = t
            .get("/things/urn%3Adev%3Alinked")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(linked["description"], "patched");
        assert!(linked.get("links").is_none());
        assert_eq!(linked["title"], "Renamed");

        // An anonymous TD gets an id and a Location.
        let mut anonymous = td("x", "Anonymous");
        anonymous.as_object_mut().unwrap().remove("id");
        let posted = t
            .req(Method::POST, "/things", &t.admin)
            .header(header::CONTENT_TYPE, "application/td+json")
            .body(anonymous.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), StatusCode::CREATED);
        let location = posted.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(location.starts_with("/things/urn%3Auuid%3A"), "{location}");
        let fetched: Value = t.get(&location).send().await.unwrap().json().await.unwrap();
        assert_eq!(fetched["title"], "Anonymous");
        assert!(fetched["id"].as_str().unwrap().starts_with("urn:uuid:"));

        // Listing: array and collection forms.
        let listed: Value = t.get("/things").send().await.unwrap().json().await.unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 6);
        let collection: Value = t
            .get("/things?format=collection&limit=2")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(collection["@type"], "ThingCollection");
        assert_eq!(collection["total"], 6);
        assert_eq!(collection["members"].as_array().unwrap().len(), 2);
        assert!(collection["next"].is_string());

        // JSONPath over the TDs.
        let titles: Value = t
            .get("/search/jsonpath")
            .query(&[("query", "$[?@.title == 'Minimal'].id")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(titles, json!([]), "Minimal was renamed");
        let renamed: Value = t
            .get("/search/jsonpath")
            .query(&[("query", "$[?@.title == 'Renamed'].id")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(renamed.as_array().unwrap().len(), 5);

        // The directory's own description.
        let own: Value = t
            .get("/.well-known/wot")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(own["@type"], "ThingDirectory");

        // Delete: gone from the directory and from the graph, kept in the history.
        let deleted = t
            .req(Method::DELETE, "/things/urn%3Adev%3Aminimal", &t.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        let gone = t.get("/things/urn%3Adev%3Aminimal").send().await.unwrap();
        problem(gone, 404, "not-found").await;
        assert!(
            t.store
                .get(&tenant("acme"), &rid("urn:dev:minimal"))
                .unwrap()
                .is_none()
        );
        let history: Value = t
            .get("/api/v1/devices/urn%3Adev%3Aminimal/history")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ops: Vec<&str> = history
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["op"].as_str().unwrap())
            .collect();
        assert_eq!(ops, ["create", "update", "delete"]);
        t.stop().await;
    }
}

/// Reads server-sent events from a streaming response.
struct Sse {
    response: reqwest::Response,
    buffer: String,
}

#[derive(Debug, Clone)]
struct SseEvent {
    id: i64,
    name: String,
    data: Value,
}

impl Sse {
    async fn open(t: &TestApp, path: &str, key: &str, last_id: Option<i64>) -> Sse {
        let mut request = t.req(Method::GET, path, key);
        if let Some(id) = last_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Sse {
            response,
            buffer: String::new(),
        }
    }

    async fn next(&mut self) -> SseEvent {
        let deadline = Duration::from_secs(15);
        tokio::time::timeout(deadline, async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let mut event = SseEvent {
                        id: -1,
                        name: String::new(),
                        data: Value::Null,
                    };
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("id:") {
                            event.id = v.trim().parse().unwrap();
                        } else if let Some(v) = line.strip_prefix("event:") {
                            event.name = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            event.data = serde_json::from_str(v.trim()).unwrap();
                        }
                    }
                    if !event.name.is_empty() {
                        return event;
                    }
                    continue;
                }
                let chunk = self.response.chunk().await.unwrap().expect("stream ended");
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .expect("an event within the deadline")
    }
}

#[tokio::test]
async fn events_arrive_in_order_and_resume_after_last_event_id() {
    for backend in &backends().await {
        let t = spawn_app(backend).await;
        let mut stream = Sse::open(&t, "/events?diff=true", &t.admin, None).await;
        let mut deletes = Sse::open(&t, "/events/thing_deleted", &t.admin, None).await;

        let first = td("urn:dev:ev-1", "First");
        assert_eq!(
            t.put_td(&t.admin, &first).await.status(),
            StatusCode::CREATED
        );
        let mut second = first.clone();
        second["title"] = json!("Second");
        assert_eq!(
            t.put_td(&t.admin, &second).await.status(),
            StatusCode::NO_CONTENT
        );
        // A change to a resource that is not a Thing is not a directory event.
        let offering = json!({"id": "vm-1", "kind": "cloudOffering", "name": "vm", "provider": "aws",
        "region": "eu-central-1", "offeringKind": "vm", "pricePerMonth": 10.0, "currency": "EUR",
        "availabilitySla": 0.999});
        let put = t
            .req(Method::PUT, "/api/v1/cloud-offerings/vm-1", &t.admin)
            .json(&offering)
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), StatusCode::CREATED, "{:?}", put.text().await);
        let deleted = t
            .req(Method::DELETE, "/things/urn%3Adev%3Aev-1", &t.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

        let created = stream.next().await;
        assert_eq!(created.name, "thing_created");
        assert_eq!(created.data["title"], "First", "diff=true carries the TD");
        let updated = stream.next().await;
        assert_eq!(updated.name, "thing_updated");
        assert_eq!(
            updated.data,
            json!({"id": "urn:dev:ev-1", "title": "Second"}),
            "the update carries only what changed"
        );
        let removed = stream.next().await;
        assert_eq!(removed.name, "thing_deleted");
        assert_eq!(removed.data, json!({"id": "urn:dev:ev-1"}));
        assert!(created.id < updated.id && updated.id < removed.id);
        assert_eq!(
            deletes.next().await.id,
            removed.id,
            "the typed stream has only deletes"
        );

        // Reconnecting after the first event replays exactly what followed it.
        let mut resumed = Sse::open(&t, "/events", &t.admin, Some(created.id)).await;
        let replayed = [resumed.next().await, resumed.next().await];
        assert_eq!(
            replayed
                .iter()
                .map(|e| (e.id, e.name.as_str()))
                .collect::<Vec<_>>(),
            [(updated.id, "thing_updated"), (removed.id, "thing_deleted")]
        );
        // ...and then goes on live.
        assert_eq!(
            t.put_td(&t.admin, &td("urn:dev:ev-2", "Live"))
                .await
                .status(),
            StatusCode::CREATED
        );
        let live = resumed.next().await;
        assert_eq!(
            (live.name.as_str(), live.data["id"].as_str()),
            ("thing_created", Some("urn:dev:ev-2"))
        );

        // The native stream sees every kind.
        let mut native = Sse::open(&t, "/api/v1/events", &t.admin, Some(created.id)).await;
        let kinds: Vec<String> = [
            native.next().await,
            native.next().await,
            native.next().await,
        ]
        .iter()
        .map(|e| format!("{}:{}", e.name, e.data["kind"].as_str().unwrap()))
        .collect();
        assert_eq!(
            kinds,
            ["updated:device", "created:cloudOffering", "deleted:device"]
        );
        drop((stream, deletes, resumed, native));
        t.stop().await;
    }
}

#[tokio::test]
async fn a_revoked_key_loses_its_open_event_stream() {
    for backend in &backends().await {
        let t = spawn_app(backend).await;
        let reader = t.key("acme", Role::Read).await;
        let mut stream = Sse::open(&t, "/events", &reader, None).await;
        let key_id = reader.split('_').nth(1).unwrap().to_owned();
        assert!(t.app.keys().revoke(&tenant("acme"), &key_id).await.unwrap());
        let ended = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match stream.response.chunk().await {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => return,
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "the stream outlived its key");
        t.stop().await;
    }
}

#[tokio::test]
async fn pagination_visits_every_item_exactly_once_while_items_are_added() {
    for backend in &backends().await {
        let t = spawn_app(backend).await;
        let originals: BTreeSet<String> = (0..40)
            .step_by(2)
            .map(|i| format!("urn:dev:p-{i:03}"))
            .collect();
        for id in &originals {
            assert_eq!(
                t.put_td(&t.admin, &td(id, "page")).await.status(),
                StatusCode::CREATED
            );
        }
        // The directory, following Link headers.
        let mut seen: Vec<String> = Vec::new();
        let mut next = Some("/things?limit=6".to_owned());
        let mut added = 0;
        while let Some(path) = next {
            let response = t.get(&path).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            next = response.headers().get(header::LINK).map(|link| {
                let link = link.to_str().unwrap();
                link[link.find('<').unwrap() + 1..link.find('>').unwrap()].to_owned()
            });
            let page: Value = response.json().await.unwrap();
            seen.extend(
                page.as_array()
                    .unwrap()
                    .iter()
                    .map(|td| td["id"].as_str().unwrap().to_owned()),
            );
            // New Things on both sides of the cursor while the client pages.
            for id in [
                format!("urn:dev:p-{added:03}a"),
                format!("urn:dev:p-{:03}a", 39 - added),
            ] {
                assert_eq!(
                    t.put_td(&t.admin, &td(&id, "added")).await.status(),
                    StatusCode::CREATED
                );
            }
            added += 1;
        }
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "no Thing is visited twice: {seen:?}"
        );
        for id in &originals {
            assert!(unique.contains(id), "{id} was skipped");
        }

        // The native API, sorted by a field, with cursors.
        for i in 0..30 {
            let mut d = device_json(&format!("sorted-{i:02}"), "sorted");
            d["live"]["batteryPct"] = json!(f64::from(i % 10) * 10.0);
            t.app
                .put(&tenant("acme"), helpers::resource(d), None, &actor())
                .await
                .unwrap();
        }
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut round = 0;
        loop {
            let mut query = vec![
                ("name", "sorted".to_owned()),
                ("sort", "-live.batteryPct".to_owned()),
                ("limit", "4".to_owned()),
            ];
            if let Some(c) = &cursor {
                query.push(("cursor", c.clone()));
            }
            let page: Value = t
                .get("/api/v1/devices")
                .query(&query)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for item in page["items"].as_array().unwrap() {
                seen.push((
                    item["live"]["batteryPct"].as_f64().unwrap(),
                    item["id"].as_str().unwrap().to_owned(),
                ));
            }
            let mut d = device_json(&format!("sorted-new-{round}"), "sorted");
            d["live"]["batteryPct"] = json!(95.0 - f64::from(round) * 10.0);
            t.app
                .put(&tenant("acme"), helpers::resource(d), None, &actor())
                .await
                .unwrap();
            round += 1;
            match page["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        let ids: BTreeSet<&str> = seen.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(ids.len(), seen.len(), "no device twice");
        for i in 0..30 {
            assert!(
                ids.contains(format!("sorted-{i:02}").as_str()),
                "sorted-{i:02} skipped"
            );
        }
        assert!(
            seen.windows(2)
                .all(|w| w[0].0 > w[1].0 || (w[0].0 == w[1].0 && w[0].1 < w[1].1)),
            "descending by battery, then by id: {seen:?}"
        );
        t.stop().await;
    }
}

fn actor() -> iotcane_app::Actor {
    iotcane_app::Actor {
        name: "test".to_owned(),
        source: iotcane_app::store::ChangeSource::Cli,
    }
}

#[tokio::test]
async fn a_td_with_a_ttl_expires_and_is_removed_through_the_journal() {
    for backend in &backends().await {
        let t = spawn_app(backend).await;
        let mut short = td("urn:dev:short-lived", "Short");
        short["registration"] = json!({"ttl": 1});
        let lasting = td("urn:dev:lasting", "Lasting");
        assert_eq!(
            t.put_td(&t.admin, &short).await.status(),
            StatusCode::CREATED
        );
        assert_eq!(
            t.put_td(&t.admin, &lasting).await.status(),
            StatusCode::CREATED
        );
        let fresh: Value = t
            .get("/things/urn%3Adev%3Ashort-lived")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(fresh["registration"]["ttl"], 1);
        assert!(fresh["registration"]["expires"].is_string());

        let deadline = Instant::now() + Duration::from_secs(20);
        while t
            .store
            .get(&tenant("acme"), &rid("urn:dev:short-lived"))
            .unwrap()
            .is_some()
        {
            assert!(
                Instant::now() < deadline,
                "the expired TD was never removed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        problem(
            t.get("/things/urn%3Adev%3Ashort-lived")
                .send()
                .await
                .unwrap(),
            404,
            "not-found",
        )
        .await;
        let history = t
            .app
            .history(&tenant("acme"), &rid("urn:dev:short-lived"))
            .await
            .unwrap();
        let last = history.last().unwrap();
        assert_eq!(last.entry.op.as_str(), "delete");
        assert_eq!(last.entry.actor, "directory expiry");
        assert_eq!(
            t.get("/things/urn%3Adev%3Alasting")
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        t.stop().await;
    }
}

#[tokio::test]
async fn tds_that_expire_while_no_server_runs_are_removed_after_the_next_start() {
    for backend in &backends().await {
        let t = spawn_app(backend).await;
        t.shutdown.cancel();
        t.server.await.unwrap().unwrap();
        let mut short = td("urn:dev:offline-ttl", "Short");
        short["registration"] = json!({"ttl": 1});
        t.app
            .put_thing(
                &tenant("acme"),
                &rid("urn:dev:offline-ttl"),
                short,
                None,
                &actor(),
            )
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = HttpConfig::new(tenant("acme"));
        config.expiry_interval = Duration::from_millis(200);
        let shutdown = CancellationToken::new();
        let server =
            tokio::spawn(HttpServer::new(listener, t.app.clone(), config, shutdown.clone()).run());
        let deadline = Instant::now() + Duration::from_secs(20);
        while t
            .store
            .get(&tenant("acme"), &rid("urn:dev:offline-ttl"))
            .unwrap()
            .is_some()
        {
            assert!(
                Instant::now() < deadline,
                "the expired TD was never removed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        shutdown.cancel();
        server.await.unwrap().unwrap();
        t.store.close().await;
    }
}

#[tokio::test]
async fn sparql_protocol_answers_in_every_encoding_and_format() {
    for backend in &backends().await {
        let t = spawn_app(backend).await;
        for i in 0..3 {
            t.app
                .put(
                    &tenant("acme"),
                    helpers::resource(device_json(&format!("hr-{i}"), "pulse")),
                    None,
                    &actor(),
                )
                .await
                .unwrap();
        }
        let select = "PREFIX ic: <https://w3id.org/iotcane/ontology#> SELECT ?s WHERE { ?s a ic:Device } ORDER BY ?s";
        let by_get: Value = t
            .get("/sparql")
            .query(&[("query", select)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(by_get["results"]["bindings"].as_array().unwrap().len(), 3);

        let form = t
            .req(Method::POST, "/sparql", &t.admin)
            .header(header::ACCEPT, "application/sparql-results+xml")
            .form(&[("query", select)])
            .send()
            .await
            .unwrap();
        assert_eq!(
            form.headers()[header::CONTENT_TYPE],
            "application/sparql-results+xml"
        );
        assert_eq!(form.text().await.unwrap().matches("<result>").count(), 3);

        for (accept, lines) in [("text/csv", 4), ("text/tab-separated-values", 4)] {
            let raw = t
                .req(Method::POST, "/search/sparql", &t.admin)
                .header(header::CONTENT_TYPE, "application/sparql-query")
                .header(header::ACCEPT, accept)
                .body(select)
                .send()
                .await
                .unwrap();
            assert_eq!(raw.headers()[header::CONTENT_TYPE], accept);
            assert_eq!(
                raw.text().await.unwrap().trim_end().lines().count(),
                lines,
                "{accept}"
            );
        }
        let ask: Value = t
            .get("/search/sparql")
            .query(&[("query", "ASK { ?s ?p ?o }")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ask["boolean"], true);
        let construct =
            "CONSTRUCT { ?s <urn:x:named> ?n } WHERE { ?s <https://schema.org/name> ?n }";
        for (accept, needle) in [
            ("text/turtle", "<urn:x:named>"),
            ("application/n-triples", "<urn:x:named> \"pulse\" ."),
        ] {
            let graph = t
                .get("/sparql")
                .query(&[("query", construct)])
                .header(header::ACCEPT, accept)
                .send()
                .await
                .unwrap();
            assert_eq!(graph.headers()[header::CONTENT_TYPE], accept);
            assert!(graph.text().await.unwrap().contains(needle), "{accept}");
        }

        // Updates: admin keys only, and through the journal.
        let graph = tenant("acme").graph_of(&rid("hr-0")).as_str().to_owned();
        let update = format!(
            "INSERT DATA {{ GRAPH <{graph}> {{ <https://w3id.org/iotcane/id/hr-0> <http://purl.org/dc/terms/description> \"checked\" }} }}"
        );
        let writer = t.key("acme", Role::Write).await;
        let before = t.fingerprint().await;
        let refused = t
            .req(Method::POST, "/sparql", &writer)
            .header(header::CONTENT_TYPE, "application/sparql-update")
            .body(update.clone())
            .send()
            .await
            .unwrap();
        problem(refused, 403, "forbidden").await;
        assert_eq!(t.fingerprint().await, before);
        let report: Value = t
            .req(Method::POST, "/sparql", &t.admin)
            .form(&[("update", update.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(report["changed"], json!(["hr-0"]));
        let stored = t.store.get(&tenant("acme"), &rid("hr-0")).unwrap().unwrap();
        assert_eq!(stored.resource.description.as_deref(), Some("checked"));
        assert_eq!(stored.meta.version, 2);
        // An update that would break a resource is refused whole.
        let breaking = format!(
            "DELETE WHERE {{ GRAPH <{graph}> {{ <https://w3id.org/iotcane/id/hr-0> <https://schema.org/name> ?n }} }}"
        );
        let before = t.fingerprint().await;
        let refused = t
            .req(Method::POST, "/sparql", &t.admin)
            .header(header::CONTENT_TYPE, "application/sparql-update")
            .body(breaking)
            .send()
            .await
            .unwrap();
        problem(refused, 400, "update-refused").await;
        assert_eq!(t.fingerprint().await, before);
        t.stop().await;
    }
}

#[tokio::test]
async fn tenants_never_see_or_change_each_others_data() {
    for backend in backends().await {
        let t = spawn_app(&backend).await;
        let other = t.key("other", Role::Admin).await;
        assert_eq!(
            t.put_td(&t.admin, &td("urn:dev:secret", "Acme secret"))
                .await
                .status(),
            StatusCode::CREATED
        );
        let mut theirs = Sse::open(&t, "/events", &other, None).await;
        let before = t.fingerprint().await;
        let a_graph = tenant("acme").graph_of(&rid("urn:dev:secret"));

        problem(
            t.req(Method::GET, "/things/urn%3Adev%3Asecret", &other)
                .send()
                .await
                .unwrap(),
            404,
            "not-found",
        )
        .await;
        problem(
            t.req(Method::GET, "/api/v1/devices/urn%3Adev%3Asecret", &other)
                .send()
                .await
                .unwrap(),
            404,
            "not-found",
        )
        .await;
        problem(
            t.req(
                Method::GET,
                "/api/v1/devices/urn%3Adev%3Asecret/history",
                &other,
            )
            .send()
            .await
            .unwrap(),
            404,
            "not-found",
        )
        .await;
        problem(
            t.req(Method::DELETE, "/things/urn%3Adev%3Asecret", &other)
                .send()
                .await
                .unwrap(),
            404,
            "not-found",
        )
        .await;
        let patch = t
            .req(Method::PATCH, "/things/urn%3Adev%3Asecret", &other)
            .header(header::CONTENT_TYPE, "application/merge-patch+json")
            .body(r#"{"title":"stolen"}"#)
            .send()
            .await
            .unwrap();
        problem(patch, 404, "not-found").await;
        let listed: Value = t
            .req(Method::GET, "/things", &other)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed, json!([]));
        let devices: Value = t
            .req(Method::GET, "/api/v1/devices", &other)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(devices["items"], json!([]));
        for query in [
            "SELECT * WHERE { ?s ?p ?o }".to_owned(),
            "SELECT * WHERE { GRAPH ?g { ?s ?p ?o } }".to_owned(),
            format!("SELECT * FROM <{}> WHERE {{ ?s ?p ?o }}", a_graph.as_str()),
            format!(
                "SELECT * FROM NAMED <{}> WHERE {{ GRAPH ?g {{ ?s ?p ?o }} }}",
                a_graph.as_str()
            ),
        ] {
            let answer: Value = t
                .req(Method::GET, "/sparql", &other)
                .query(&[("query", &query)])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(answer["results"]["bindings"], json!([]), "{query}");
        }
        let jsonpath: Value = t
            .req(Method::GET, "/search/jsonpath", &other)
            .query(&[("query", "$..title")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(jsonpath, json!([]));
        let update = format!(
            "DELETE WHERE {{ GRAPH <{}> {{ ?s ?p ?o }} }}",
            a_graph.as_str()
        );
        let report: Value = t
            .req(Method::POST, "/sparql", &other)
            .form(&[("update", update.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            report["changed"],
            json!([]),
            "another tenant's graph is not even visible"
        );
        let smuggle = format!(
            "INSERT DATA {{ GRAPH <{}> {{ <urn:x> <urn:y> <urn:z> }} }}",
            a_graph.as_str()
        );
        let refused = t
            .req(Method::POST, "/sparql", &other)
            .form(&[("update", smuggle.as_str())])
            .send()
            .await
            .unwrap();
        problem(refused, 400, "update-refused").await;
        assert_eq!(t.fingerprint().await, before, "{}", backend.name);

        // The other tenant's stream shows its own change, never acme's.
        assert_eq!(
            t.put_td(&t.admin, &td("urn:dev:secret-2", "Acme"))
                .await
                .status(),
            StatusCode::CREATED
        );
        assert_eq!(
            t.put_td(&other, &td("urn:dev:theirs", "Theirs"))
                .await
                .status(),
            StatusCode::CREATED
        );
        assert_eq!(theirs.next().await.data["id"], "urn:dev:theirs");
        drop(theirs);
        t.stop().await;
    }
}

#[tokio::test]
async fn native_rest_negotiates_versions_filters_and_bulk_writes() {
    for backend in &backends().await {
        let t = spawn_app(backend).await;
        let device = device_json("hr-a", "pulse A");
        let created = t
            .req(Method::POST, "/api/v1/devices", &t.admin)
            .json(&device)
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        assert_eq!(
            created.headers()[header::LOCATION],
            "/api/v1/devices/hr%2Da"
        );
        problem(
            t.req(Method::POST, "/api/v1/devices", &t.admin)
                .json(&device)
                .send()
                .await
                .unwrap(),
            409,
            "conflict",
        )
        .await;

        for (accept, needle) in [
            ("application/json", "\"kind\":\"device\""),
            (
                "application/ld+json",
                "\"@context\":\"https://w3id.org/iotcane/context.jsonld\"",
            ),
            ("text/turtle", "ic:Device"),
            (
                "application/n-triples",
                "<https://w3id.org/iotcane/id/hr-a> <https://schema.org/name> \"pulse A\" .",
            ),
        ] {
            let got = t
                .get("/api/v1/devices/hr-a")
                .header(header::ACCEPT, accept)
                .send()
                .await
                .unwrap();
            assert_eq!(got.headers()[header::CONTENT_TYPE], accept);
            assert_eq!(got.headers()[header::ETAG], "\"v1\"");
            assert!(got.text().await.unwrap().contains(needle), "{accept}");
        }
        // A Turtle body is read like JSON.
        let turtle = t
            .get("/api/v1/devices/hr-a")
            .header(header::ACCEPT, "text/turtle")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let replaced = t
            .req(Method::PUT, "/api/v1/devices/hr-a", &t.admin)
            .header(header::CONTENT_TYPE, "text/turtle")
            .header(header::IF_MATCH, "\"v1\"")
            .body(turtle)
            .send()
            .await
            .unwrap();
        assert_eq!(replaced.status(), StatusCode::OK);
        assert_eq!(replaced.headers()[header::ETAG], "\"v2\"");
        // If-Match: * needs an existing resource.
        let absent = t
            .req(Method::PUT, "/api/v1/devices/hr-absent", &t.admin)
            .header(header::IF_MATCH, "*")
            .json(&device_json("hr-absent", "absent"))
            .send()
            .await
            .unwrap();
        problem(absent, 412, "version-mismatch").await;
        // Stale If-Match loses.
        let before = t.fingerprint().await;
        let stale = t
            .req(Method::PATCH, "/api/v1/devices/hr-a", &t.admin)
            .header(header::CONTENT_TYPE, "application/merge-patch+json")
            .header(header::IF_MATCH, "\"v1\"")
            .body(r#"{"name":"late"}"#)
            .send()
            .await
            .unwrap();
        problem(stale, 412, "version-mismatch").await;
        assert_eq!(t.fingerprint().await, before);
        let patched: Value = t
            .req(Method::PATCH, "/api/v1/devices/hr-a", &t.admin)
            .header(header::CONTENT_TYPE, "application/merge-patch+json")
            .header(header::IF_MATCH, "\"v2\"")
            .body(r#"{"name":"pulse A2","live":{"batteryPct":15}}"#)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(patched["name"], "pulse A2");
        assert_eq!(
            patched["live"],
            json!({"status": "online", "batteryPct": 15.0})
        );

        // Bulk: NDJSON with one bad line; one result per item.
        let mut lines: Vec<String> = Vec::new();
        let sites = ["ward-7", "ward-7", "ward-7", "ward-8", "ward-7"];
        let statuses = ["online", "online", "offline", "online", "online"];
        let batteries = [55.0, 25.0, 90.0, 70.0, 10.0];
        let places = [
            (52.5200, 13.4050),
            (52.5210, 13.4100),
            (52.53, 13.40),
            (48.85, 2.35),
            (52.52, 13.406),
        ];
        for i in 0..5 {
            let mut d = device_json(&format!("hr-{i}"), &format!("pulse {i}"));
            d["site"] = json!(sites[i]);
            d["live"] = json!({"status": statuses[i], "batteryPct": batteries[i]});
            d["location"] = json!({"lat": places[i].0, "lon": places[i].1});
            lines.push(d.to_string());
        }
        lines.insert(2, json!({"id": "broken", "kind": "device"}).to_string());
        let edge = helpers::edge_json("gw-1", 4);
        lines.push(edge.to_string());
        let results: Value = t
            .req(Method::POST, "/api/v1/bulk", &t.admin)
            .header(header::CONTENT_TYPE, "application/x-ndjson")
            .body(lines.join("\n"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let statuses: Vec<u64> = results
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["status"].as_u64().unwrap())
            .collect();
        assert_eq!(statuses, [201, 201, 400, 201, 201, 201, 201]);
        assert!(
            results[2]["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e.as_str().unwrap().contains("/name"))
        );

        // "Online heart-rate sensors in ward-7 with battery above 20 %".
        let ids = |page: Value| -> Vec<String> {
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned())
                .collect()
        };
        let query = [
            ("observes", "heartRate"),
            ("live.status", "online"),
            ("site", "ward-7"),
            ("live.batteryPct[gt]", "20"),
        ];
        let page: Value = t
            .get("/api/v1/devices")
            .query(&query)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ids(page), ["hr-0", "hr-1"]);
        let page: Value = t
            .get("/api/v1/devices")
            .query(&[
                ("live.batteryPct[ge]", "25"),
                ("live.batteryPct[le]", "70"),
                ("sort", "live.batteryPct"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ids(page), ["hr-1", "hr-0", "hr-3"]);
        let page: Value = t
            .get("/api/v1/devices")
            .query(&[("site[in]", "ward-8,ward-9"), ("name[prefix]", "pulse")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ids(page), ["hr-3"]);
        let page: Value = t
            .get("/api/v1/devices")
            .query(&[("near", "52.52,13.405,1km"), ("sort", "distance")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ids(page), ["hr-0", "hr-4", "hr-1"]);
        let edges: Value = t
            .get("/api/v1/edge-nodes")
            .query(&[("cpuCores[ge]", "4")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ids(edges), ["gw-1"]);

        // History from the journal.
        let history: Value = t
            .get("/api/v1/devices/hr-a/history")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let versions: Vec<(i64, &str)> = history
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["version"].as_i64().unwrap(), v["op"].as_str().unwrap()))
            .collect();
        assert_eq!(versions, [(1, "create"), (2, "update"), (3, "update")]);
        assert_eq!(history[2]["resource"]["name"], "pulse A2");
        assert!(history[0]["actor"].as_str().unwrap().starts_with("key:"));
        t.stop().await;
    }
}

#[tokio::test]
async fn bad_input_gets_a_precise_problem_and_changes_nothing() {
    for backend in &backends().await {
        let t = spawn_app(backend).await;
        assert_eq!(
            t.put_td(&t.admin, &td("urn:dev:kept", "Kept"))
                .await
                .status(),
            StatusCode::CREATED
        );
        t.app
            .put(
                &tenant("acme"),
                helpers::resource(device_json("hr-kept", "kept")),
                None,
                &actor(),
            )
            .await
            .unwrap();
        let reader = t.key("acme", Role::Read).await;
        let revoked = t.key("acme", Role::Write).await;
        let revoked_id = revoked.split('_').nth(1).unwrap().to_owned();
        assert!(
            t.app
                .keys()
                .revoke(&tenant("acme"), &revoked_id)
                .await
                .unwrap()
        );
        let before = t.fingerprint().await;

        let td_put = |key: &str, body: String, media: &str| {
            t.req(Method::PUT, "/things/urn%3Adev%3Akept", key)
                .header(header::CONTENT_TYPE, media.to_owned())
                .body(body)
        };
        let mut invalid_td = td("urn:dev:kept", "x");
        invalid_td["title"] = json!(5);
        invalid_td["properties"]["heart_rate"]["forms"] = json!("not a list");
        let oversize = json!({"@context": "https://www.w3.org/2022/wot/td/v1.1", "id": "urn:dev:kept", "title": "x".repeat(BODY_LIMIT)});
        let mut long_ttl = td("urn:dev:kept", "Kept");
        long_ttl["registration"] = json!({"ttl": 1e300});
        let update_service = "SELECT * WHERE { SERVICE <http://example.com/sparql> { ?s ?p ?o } }";

        let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
            (
                "malformed JSON",
                td_put(&t.admin, "{\"title\": ".into(), "application/td+json"),
                400,
                "malformed-json",
            ),
            (
                "invalid TD",
                td_put(&t.admin, invalid_td.to_string(), "application/td+json"),
                400,
                "validation-failed",
            ),
            (
                "wrong content type",
                td_put(&t.admin, td("urn:dev:kept", "x").to_string(), "text/plain"),
                415,
                "unsupported-media-type",
            ),
            (
                "oversize body",
                td_put(&t.admin, oversize.to_string(), "application/td+json"),
                413,
                "payload-too-large",
            ),
            (
                "id mismatch",
                td_put(
                    &t.admin,
                    td("urn:dev:other", "x").to_string(),
                    "application/td+json",
                ),
                400,
                "validation-failed",
            ),
            (
                "unknown Thing",
                t.get("/things/urn%3Adev%3Anope"),
                404,
                "not-found",
            ),
            (
                "unknown resource",
                t.get("/api/v1/devices/nope"),
                404,
                "not-found",
            ),
            (
                "unknown collection",
                t.get("/api/v1/gadgets"),
                404,
                "no-route",
            ),
            ("no such route", t.get("/nowhere"), 404, "no-route"),
            (
                "method not allowed",
                t.req(Method::DELETE, "/things", &t.admin),
                405,
                "method-not-allowed",
            ),
            (
                "bad filter value",
                t.get("/api/v1/devices?live.batteryPct[gt]=lots"),
                400,
                "bad-parameter",
            ),
            (
                "unknown filter field",
                t.get("/api/v1/devices?battery=20"),
                400,
                "bad-parameter",
            ),
            (
                "unknown operator",
                t.get("/api/v1/devices?live.batteryPct[around]=2"),
                400,
                "bad-parameter",
            ),
            (
                "bad cursor",
                t.get("/api/v1/devices?cursor=%21%21"),
                400,
                "bad-parameter",
            ),
            (
                "bad JSONPath",
                t.get("/search/jsonpath?query=%24%5B"),
                400,
                "bad-parameter",
            ),
            (
                "bad SPARQL",
                t.get("/sparql?query=SELEKT%20*"),
                400,
                "bad-sparql",
            ),
            (
                "SPARQL with SERVICE",
                t.get("/sparql").query(&[("query", update_service)]),
                400,
                "sparql-service-refused",
            ),
            (
                "update on the read-only search",
                t.req(Method::POST, "/search/sparql", &t.admin)
                    .form(&[("update", "CLEAR ALL")]),
                400,
                "bad-parameter",
            ),
            (
                "stale If-Match",
                t.req(Method::DELETE, "/api/v1/devices/hr-kept", &t.admin)
                    .header(header::IF_MATCH, "\"v7\""),
                412,
                "version-mismatch",
            ),
            (
                "foreign If-Match",
                t.req(Method::DELETE, "/api/v1/devices/hr-kept", &t.admin)
                    .header(header::IF_MATCH, "\"abc\""),
                412,
                "version-mismatch",
            ),
            (
                "patch as plain text",
                t.req(Method::PATCH, "/things/urn%3Adev%3Akept", &t.admin)
                    .header(header::CONTENT_TYPE, "text/plain")
                    .body("{}"),
                415,
                "unsupported-media-type",
            ),
            (
                "wrong kind for the collection",
                t.req(Method::PUT, "/api/v1/edge-nodes/hr-kept", &t.admin)
                    .json(&device_json("hr-kept", "k")),
                400,
                "validation-failed",
            ),
            (
                "nothing acceptable",
                t.get("/api/v1/devices/hr-kept")
                    .header(header::ACCEPT, "image/png"),
                406,
                "not-acceptable",
            ),
            (
                "missing key",
                t.client.get(format!("{}/things", t.base)),
                401,
                "missing-api-key",
            ),
            (
                "garbage key",
                t.req(Method::GET, "/things", "ick_zz_top"),
                401,
                "invalid-api-key",
            ),
            (
                "revoked key",
                t.req(Method::GET, "/things", &revoked),
                401,
                "invalid-api-key",
            ),
            (
                "read key writing",
                td_put(
                    &reader,
                    td("urn:dev:kept", "x").to_string(),
                    "application/td+json",
                ),
                403,
                "forbidden",
            ),
            (
                "read key managing keys",
                t.req(Method::GET, "/api/v1/keys", &reader),
                403,
                "forbidden",
            ),
            (
                "bad Last-Event-ID",
                t.get("/events").header("Last-Event-ID", "yesterday"),
                400,
                "bad-parameter",
            ),
            (
                "offset past the cap",
                t.get("/things?offset=10001"),
                400,
                "bad-parameter",
            ),
            (
                "a TTL past a century",
                td_put(&t.admin, long_ttl.to_string(), "application/td+json"),
                400,
                "validation-failed",
            ),
        ];
        for (name, request, status, slug) in cases {
            let response = request.send().await.unwrap();
            let got = response.status().as_u16();
            assert_eq!(got, status, "{name}");
            let body = problem(response, status, slug).await;
            if slug == "validation-failed" {
                assert!(
                    !body["errors"].as_array().unwrap().is_empty(),
                    "{name}: {body}"
                );
            }
            if name == "invalid TD" {
                let pointers: Vec<&str> = body["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["pointer"].as_str().unwrap())
                    .collect();
                assert!(pointers.contains(&"/title"), "{pointers:?}");
                assert!(
                    pointers
                        .iter()
                        .any(|p| p.starts_with("/properties/heart_rate/forms")),
                    "{pointers:?}"
                );
            }
        }
        // A hostile filter value is only ever a value.
        let hostile: Value = t
            .get("/api/v1/devices")
            .query(&[("name", "\") } } DELETE WHERE { ?s ?p ?o } #")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(hostile["items"], json!([]));
        assert_eq!(t.fingerprint().await, before, "nothing stored changed");
        t.stop().await;
    }
}

#[tokio::test]
async fn admins_manage_their_tenants_keys_over_http() {
    for backend in backends().await {
        let t = spawn_app(&backend).await;
        let created = t
            .req(Method::POST, "/api/v1/keys", &t.admin)
            .json(&json!({"name": "dashboard", "role": "read"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        let created: Value = created.json().await.unwrap();
        let token = created["token"].as_str().unwrap().to_owned();
        assert_eq!(created["tenant"], "acme");
        assert_eq!(
            t.req(Method::GET, "/things", &token)
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        let listed: Value = t
            .get("/api/v1/keys")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let names: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["test admin", "dashboard"]);
        assert!(
            !listed.to_string().contains(&token[20..]),
            "no secret is ever listed"
        );
        // Another tenant's admin cannot revoke it.
        let other = t.key("other", Role::Admin).await;
        let key_id = created["key_id"].as_str().unwrap();
        problem(
            t.req(Method::DELETE, &format!("/api/v1/keys/{key_id}"), &other)
                .send()
                .await
                .unwrap(),
            404,
            "not-found",
        )
        .await;
        let revoked = t
            .req(Method::DELETE, &format!("/api/v1/keys/{key_id}"), &t.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
        problem(
            t.req(Method::GET, "/things", &token).send().await.unwrap(),
            401,
            "invalid-api-key",
        )
        .await;
        let bad = t
            .req(Method::POST, "/api/v1/keys", &t.admin)
            .json(&json!({"name": "x", "role": "root"}))
            .send()
            .await
            .unwrap();
        let body = problem(bad, 400, "validation-failed").await;
        assert_eq!(body["errors"][0]["pointer"], "/role");
        t.stop().await;
    }
}

#[tokio::test]
async fn a_replica_that_missed_a_compacted_deletion_fails_its_health_checks() {
    for backend in &backends().await {
        let t = spawn_app(backend).await;
        // Another replica on the same journal writes, deletes and compacts.
        let other_dir = tempfile::tempdir().unwrap();
        let mut config = t.store.config().clone();
        config.data_dir = other_dir.path().to_path_buf();
        let other = KnowledgeStore::open(config).await.unwrap();
        let acme = tenant("acme");
        let write = |change| other.write_one(change, "other", iotcane_store::ChangeSource::Cli);
        let device = |id: &str| {
            iotcane_store::Change::put(acme.clone(), helpers::resource(device_json(id, "a device")))
        };
        write(device("d-1")).await.unwrap();
        t.store.catch_up().await.unwrap();
        write(iotcane_store::Change::Delete {
            tenant: acme.clone(),
            id: rid("d-1"),
            expected_version: None,
        })
        .await
        .unwrap();
        let cutoff = now_ms() + 1;
        while now_ms() <= cutoff {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let compacted = other.compact(cutoff).await.unwrap();
        assert!(compacted.rows_removed >= 2, "{compacted:?}");
        write(device("d-2")).await.unwrap();

        // This replica still holds d-1, and cannot learn that it is gone.
        assert!(matches!(
            t.store.catch_up().await,
            Err(iotcane_store::StoreError::BehindCompaction { .. })
        ));
        for path in ["/healthz", "/readyz"] {
            let response = t
                .client
                .get(format!("{}{path}", t.base))
                .send()
                .await
                .unwrap();
            let body = problem(response, 503, "unavailable").await;
            assert!(
                body["detail"].as_str().unwrap().contains("restart"),
                "{path}: {body}"
            );
        }
        other.close().await;
        t.stop().await;
    }
}

#[tokio::test]
async fn operations_endpoints_report_health_readiness_and_metrics() {
    for backend in &backends().await {
        let t = spawn_app(backend).await;
        assert_eq!(
            t.client
                .get(format!("{}/healthz", t.base))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        let ready: Value = t
            .client
            .get(format!("{}/readyz", t.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ready["status"], "ready");
        assert_eq!(
            t.put_td(&t.admin, &td("urn:dev:m", "m")).await.status(),
            StatusCode::CREATED
        );
        let metrics = t
            .client
            .get(format!("{}/metrics", t.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains(
                "iotcane_http_requests_total{method=\"PUT\",route=\"/things/{id}\",status=\"201\"}"
            ),
            "{metrics}"
        );
        assert!(metrics.contains("iotcane_http_request_duration_seconds_bucket"));
        assert!(metrics.contains("iotcane_journal_lag"));
        assert!(metrics.contains("iotcane_graph_resources"));
        let docs = t
            .client
            .get(format!("{}/docs/", t.base))
            .send()
            .await
            .unwrap();
        assert_eq!(docs.status(), StatusCode::OK);
        assert!(docs.text().await.unwrap().contains("swagger"));
        t.stop().await;
    }
}

#[tokio::test]
async fn limits_cors_and_compression_follow_the_configuration() {
    for backend in &backends().await {
        let t = spawn_app_with(backend, |store, http| {
            store.query_result_limit = 2;
            http.cors_origins = vec!["https://dash.example.com".to_owned()];
        })
        .await;
        for i in 0..3 {
            t.app
                .put(
                    &tenant("acme"),
                    helpers::resource(device_json(&format!("hr-{i}"), "pulse")),
                    None,
                    &actor(),
                )
                .await
                .unwrap();
        }
        let too_many = t
            .get("/sparql")
            .query(&[(
                "query",
                "SELECT ?s WHERE { ?s a <https://w3id.org/iotcane/ontology#Device> }",
            )])
            .send()
            .await
            .unwrap();
        let body = problem(too_many, 400, "result-limit").await;
        assert!(body["detail"].as_str().unwrap().contains("LIMIT"));
        let limited = t
            .get("/sparql")
            .query(&[(
                "query",
                "SELECT ?s WHERE { ?s a <https://w3id.org/iotcane/ontology#Device> } LIMIT 2",
            )])
            .send()
            .await
            .unwrap();
        assert_eq!(limited.status(), StatusCode::OK);

        let preflight = t
            .client
            .request(Method::OPTIONS, format!("{}/api/v1/devices", t.base))
            .header(header::ORIGIN, "https://dash.example.com")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "PUT")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization,if-match",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            preflight.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://dash.example.com"
        );
        let stranger = t
            .get("/api/v1/devices")
            .header(header::ORIGIN, "https://evil.example.com")
            .send()
            .await
            .unwrap();
        assert!(
            stranger
                .headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .is_none()
        );

        let compressed = t
            .get("/api/v1/devices")
            .header(header::ACCEPT_ENCODING, "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(compressed.headers()[header::CONTENT_ENCODING], "gzip");
        t.stop().await;
    }
}

/// Validates a response body against the schema the OpenAPI document gives for it.
fn check_against_openapi(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let operation = &doc["paths"][path][method];
    assert!(operation.is_object(), "{method} {path} is not documented");
    let response = &operation["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path} does not document status {status}"
    );
    let content = response["content"].as_object().expect("documented content");
    let (_, media) = content.iter().next().unwrap();
    let mut schema = media["schema"].clone();
    if let Value::Object(map) = &mut schema {
        map.insert("components".into(), doc["components"].clone());
    }
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: {errors:?}\n{body}"
    );
}

#[tokio::test]
async fn every_route_is_in_the_openapi_document_and_responses_match_it() {
    for backend in &backends().await {
        let t = spawn_app(backend).await;
        let doc: Value = t
            .client
            .get(format!("{}/openapi.json", t.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let documented: BTreeMap<String, BTreeSet<String>> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(path, ops)| {
                (
                    path.clone(),
                    ops.as_object().unwrap().keys().cloned().collect(),
                )
            })
            .collect();
        // Every route the router serves (the documentation pages themselves aside).
        let routes = [
            ("/things", "get"),
            ("/things", "post"),
            ("/things/{id}", "get"),
            ("/things/{id}", "put"),
            ("/things/{id}", "patch"),
            ("/things/{id}", "delete"),
            ("/search/sparql", "get"),
            ("/search/sparql", "post"),
            ("/search/jsonpath", "get"),
            ("/events", "get"),
            ("/events/{event_type}", "get"),
            ("/.well-known/wot", "get"),
            ("/api/v1/{collection}", "get"),
            ("/api/v1/{collection}", "post"),
            ("/api/v1/{collection}/{id}", "get"),
            ("/api/v1/{collection}/{id}", "put"),
            ("/api/v1/{collection}/{id}", "patch"),
            ("/api/v1/{collection}/{id}", "delete"),
            ("/api/v1/{collection}/{id}/history", "get"),
            ("/api/v1/{collection}/{id}/context", "get"),
            ("/api/v1/{collection}/{id}/config", "get"),
            ("/api/v1/{collection}/{id}/config/desired", "put"),
            ("/api/v1/{collection}/{id}/config/desired", "delete"),
            ("/api/v1/dead-letters", "get"),
            ("/api/v1/recommendations", "get"),
            ("/api/v1/recommendations", "post"),
            ("/api/v1/recommendations/{id}", "get"),
            ("/api/v1/recommendations/{id}/feedback", "post"),
            ("/api/v1/recommendations/{id}/subscription", "put"),
            ("/api/v1/recommendations/{id}/subscription", "delete"),
            ("/api/v1/bulk", "post"),
            ("/api/v1/events", "get"),
            ("/api/v1/keys", "get"),
            ("/api/v1/keys", "post"),
            ("/api/v1/keys/{key_id}", "delete"),
            ("/sparql", "get"),
            ("/sparql", "post"),
            ("/healthz", "get"),
            ("/readyz", "get"),
            ("/metrics", "get"),
        ];
        for (path, method) in routes {
            assert!(
                documented.get(path).is_some_and(|m| m.contains(method)),
                "{method} {path} missing"
            );
        }
        let served: usize = documented.values().map(BTreeSet::len).sum();
        assert_eq!(
            served,
            routes.len(),
            "the document lists exactly the routes: {documented:?}"
        );

        // Responses seen on the wire match their documented schemas.
        assert_eq!(
            t.put_td(&t.admin, &td("urn:dev:o", "o")).await.status(),
            StatusCode::CREATED
        );
        let mut samples: Vec<(&str, &str, reqwest::RequestBuilder)> = vec![
        ("get", "/things/{id}", t.get("/things/urn%3Adev%3Ao")),
        ("get", "/things", t.get("/things")),
        ("get", "/things/{id}", t.get("/things/urn%3Adev%3Anope")),
        ("get", "/api/v1/{collection}", t.get("/api/v1/devices?limit=5")),
        ("get", "/api/v1/{collection}", t.get("/api/v1/devices?limit=0")),
        ("get", "/api/v1/{collection}/{id}/history", t.get("/api/v1/devices/urn%3Adev%3Ao/history")),
        ("get", "/api/v1/keys", t.get("/api/v1/keys")),
        ("post", "/api/v1/keys", t.req(Method::POST, "/api/v1/keys", &t.admin).json(&json!({"name": "n", "role": "read"}))),
        ("post", "/api/v1/bulk", t.req(Method::POST, "/api/v1/bulk", &t.admin).json(&json!([device_json("b-1", "b")]))),
        ("get", "/readyz", t.get("/readyz")),
        ("get", "/search/jsonpath", t.get("/search/jsonpath?query=%24%5B*%5D.id")),
        ("get", "/sparql", t.get("/sparql?query=SELEKT")),
        ("post", "/sparql", t.req(Method::POST, "/sparql", &t.admin).form(&[("update", "INSERT DATA { GRAPH <https://w3id.org/iotcane/tenant/acme/graph/x> { <urn:a> <urn:b> <urn:c> } }")])),
        ("get", "/things", t.client.get(format!("{}/things", t.base))),
    ];
        for (method, path, request) in samples.drain(..) {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            check_against_openapi(&doc, method, path, status, &body);
        }
        t.stop().await;
    }
}

#[tokio::test]
async fn a_new_installation_prints_one_admin_key_and_keys_are_managed_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (child, base, stderr) = serve(dir.path(), &[]);
    let token = stderr
        .iter()
        .find_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("ick_"))
                .map(str::to_owned)
        })
        .expect("the first admin key is shown");
    assert!(
        !stderr
            .iter()
            .any(|l| l.contains("\"level\"") && l.contains(&token)),
        "the key is printed, never logged"
    );
    let client = reqwest::Client::new();
    let ok = client
        .get(format!("{base}/api/v1/keys"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    stop(child);

    // keys create / list / revoke on the same data directory.
    let out = iotcane(dir.path())
        .args([
            "keys", "create", "--tenant", "acme", "--role", "write", "--name", "ci",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let write_key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(write_key.starts_with("ick_"));
    let out = iotcane(dir.path())
        .args(["keys", "list", "--json"])
        .output()
        .unwrap();
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&write_key[20..]));

    // A second start keeps the keys and prints none.
    let (child, base, stderr) = serve(dir.path(), &[]);
    assert!(!stderr.iter().any(|l| l.contains("ick_")), "{stderr:?}");
    let put = client
        .put(format!("{base}/things/urn%3Adev%3Acli"))
        .bearer_auth(&write_key)
        .header(header::CONTENT_TYPE, "application/td+json")
        .body(td("urn:dev:cli", "cli").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    let key_id = write_key.split('_').nth(1).unwrap();
    let out = iotcane(dir.path())
        .args(["keys", "revoke", "--tenant", "acme", key_id])
        .output()
        .unwrap();
    assert!(out.status.success());
    // Another process revoked it: this server stops accepting it once its short key cache lapses.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = client
            .get(format!("{base}/things"))
            .bearer_auth(&write_key)
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(Instant::now() < deadline, "revoked key still accepted");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop(child);

    // Auth off: every start warns, and requests need no key.
    let (child, base, stderr) = serve(dir.path(), &["--no-auth"]);
    assert!(
        stderr.iter().any(|l| l.contains("API keys are OFF")),
        "{stderr:?}"
    );
    assert_eq!(
        client
            .get(format!("{base}/things"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    stop(child);
}

#[tokio::test]
async fn serve_names_the_fix_when_its_port_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = iotcane(dir.path())
        .args(["serve", "--http-addr", &addr])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&addr) && stderr.contains("--http-addr"),
        "{stderr}"
    );
}
