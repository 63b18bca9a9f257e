//! Recommendations end to end: the real server on port 0, a real HTTP client, the seed
//! knowledge base, a real journal (SQLite, and PostgreSQL where the environment provides
//! it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

use std::time::{Duration, Instant};

use helpers::{Backend, backends};
use iotcane_app::{Actor, App, Role};
use iotcane_http::{HttpConfig, HttpServer};
use iotcane_model::Tenant;
use iotcane_store::KnowledgeStore;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const SCENARIOS: [&str; 5] = [
    "smart-healthcare",
    "smart-agriculture",
    "predictive-maintenance",
    "smart-parking",
    "air-quality",
];

struct TestApp {
    base: String,
    client: reqwest::Client,
    app: App,
    key: String,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

fn tenant(name: &str) -> Tenant {
    name.parse().unwrap()
}

fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/examples")
}

fn scenario(name: &str) -> Value {
    let text = std::fs::read_to_string(examples().join(format!("scenarios/{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The server with the seed knowledge base in tenant `acme`, and a write key.
async fn spawn_app(backend: &Backend) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let store = KnowledgeStore::open(helpers::config(dir.path(), backend))
        .await
        .unwrap();
    let app = App::new(store.clone());
    let mut items = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(examples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ttl"))
        .collect();
    files.sort();
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        items.extend(
            iotcane_model::formats::read(iotcane_model::formats::Format::Turtle, &bytes).unwrap(),
        );
    }
    let actor = Actor {
        name: "test".into(),
        source: iotcane_store::ChangeSource::Cli,
    };
    let report = app
        .import(&tenant("acme"), "seed", items, &actor, 1000, |_| {})
        .await
        .unwrap();
    assert!(report.rejected.is_empty(), "{:#?}", report.rejected);
    let key = app
        .keys()
        .create(&tenant("acme"), Role::Write, "test")
        .await
        .unwrap()
        .token;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let mut config = HttpConfig::new(tenant("acme"));
    config.body_limit = 64 * 1024;
    let server = HttpServer::new(listener, app.clone(), config, shutdown.clone());
    let base = format!("http://{}", server.local_addr().unwrap());
    tokio::spawn(server.run());
    tokio::spawn({
        let app = app.clone();
        let shutdown = shutdown.clone();
        async move { app.run_recommendations(shutdown).await }
    });
    TestApp {
        base,
        client: reqwest::Client::new(),
        app,
        key,
        shutdown,
        _dir: dir,
    }
}

impl TestApp {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn count(&self) -> usize {
        let (status, list) = self.get("/api/v1/recommendations?limit=500").await;
        assert_eq!(status, StatusCode::OK);
        list["items"].as_array().unwrap().len()
    }
}

fn pointers(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| e["pointer"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn every_example_scenario_is_answered_with_valid_ranked_configurations() {
    for backend in &backends().await {
        let t = spawn_app(backend).await;
        for name in SCENARIOS {
            let context = scenario(name);
            let response = t
                .client
                .post(format!("{}/api/v1/recommendations", t.base))
                .bearer_auth(&t.key)
                .json(&context)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::CREATED, "{name}");
            let location = response.headers()[header::LOCATION]
                .to_str()
                .unwrap()
                .to_owned();
            let answer: Value = response.json().await.unwrap();
            let configurations = answer["configurations"].as_array().unwrap();
            assert!(
                !configurations.is_empty(),
                "{name} ({}): {answer:#}",
                backend.name
            );
            assert!(configurations.len() <= context["alternatives"].as_u64().unwrap() as usize);
            let mut previous = f64::NEG_INFINITY;
            for c in configurations {
                let objective = c["objective"].as_f64().unwrap();
                assert!(objective >= previous, "{name}: ranked best first");
                previous = objective;
                for result in c["constraints"].as_array().unwrap() {
                    assert_eq!(result["satisfied"], json!(true), "{name}: {result}");
                }
                let totals = &c["totals"];
                let qos = &context["qos"];
                assert!(
                    totals["latencyMs"].as_f64().unwrap() <= qos["maxLatencyMs"].as_f64().unwrap()
                );
                assert!(
                    totals["availability"].as_f64().unwrap()
                        >= qos["minAvailability"].as_f64().unwrap()
                );
                assert!(
                    totals["monthlyCost"].as_f64().unwrap()
                        <= qos["maxMonthlyCost"].as_f64().unwrap()
                );
                // Every requirement of the context is bound.
                for need in ["sensing", "actuation"] {
                    for r in context[need].as_array().into_iter().flatten() {
                        let key = format!(
                            "{need}:{}@{}",
                            r["property"].as_str().unwrap(),
                            r["site"].as_str().unwrap()
                        );
                        assert!(
                            c["bindings"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .any(|b| b["requirement"] == json!(key)),
                            "{name}: {key} unbound"
                        );
                    }
                }
            }
            assert_eq!(answer["solver"]["method"], json!("exact"));
            assert_eq!(answer["solver"]["gap"], json!(0.0));
            let (status, again) = t.get(&location).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                again["configurations"], answer["configurations"],
                "{name}: stored as answered"
            );
        }
        assert_eq!(t.count().await, SCENARIOS.len());
        // The seed cases are retrieved for the scenario they were made from.
        let (_, answer) = t
            .post("/api/v1/recommendations", &scenario("smart-healthcare"))
            .await;
        let cases: Vec<&str> = answer["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["case"].as_str().unwrap())
            .collect();
        assert!(cases.contains(&"case-ward-7-vitals-2024"), "{cases:?}");
        t.shutdown.cancel();
    }
}

impl TestApp {
    /// Posts a context in a media type of its own; the answer as JSON.
    async fn post_context(&self, media_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}/api/v1/recommendations", self.base))
            .bearer_auth(&self.key)
            .header(header::CONTENT_TYPE, media_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }
}

#[tokio::test]
async fn a_context_written_in_rdf_gets_the_answer_its_json_gets() {
    for backend in &backends().await {
        let t = spawn_app(backend).await;
        let native = scenario("smart-healthcare");
        let (status, from_json) = t.post("/api/v1/recommendations", &native).await;
        assert_eq!(status, StatusCode::CREATED, "{from_json:#}");
        let turtle = std::fs::read(examples().join("scenarios/smart-healthcare.ttl")).unwrap();
        let (status, from_turtle) = t.post_context("text/turtle", turtle).await;
        assert_eq!(status, StatusCode::CREATED, "{from_turtle:#}");
        assert_eq!(from_turtle["configurations"], from_json["configurations"]);
        let mut json_ld = native.clone();
        json_ld["@context"] = json!("https://w3id.org/iotcane/application-context.jsonld");
        let (status, from_json_ld) = t
            .post_context("application/ld+json", json_ld.to_string().into_bytes())
            .await;
        assert_eq!(status, StatusCode::CREATED, "{from_json_ld:#}");
        assert_eq!(from_json_ld["configurations"], from_json["configurations"]);
        // The context kept with the answer is the native form, whatever it arrived in.
        assert_eq!(from_turtle["context"]["domain"], json!("healthcare"));
        assert_eq!(
            from_turtle["context"]["sensing"][1]["property"],
            json!("oxygenSaturation")
        );

        // Bad RDF: refused with the problem named, and nothing stored.
        let before = t.count().await;
        let (status, problem) = t
            .post_context("text/turtle", b"[] a ic:ApplicationContext".to_vec())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem:#}");
        assert!(
            problem["detail"].as_str().unwrap().contains("Turtle"),
            "{problem:#}"
        );
        let unknown = r#"@prefix ic: <https://w3id.org/iotcane/ontology#> .
            [] ic:applicationDomain "healthcare" ;
               ic:sensingRequirements ( [ ic:requiredProperty "heartRate" ; ic:requiredCount 0 ;
                                          ic:requiredAtSite "ward-7" ] ) ;
               ic:qosBounds [ ic:maxLatencyMs 200 ; ic:colour "red" ] ."#;
        let (status, problem) = t.post_context("text/turtle", unknown.into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem:#}");
        assert_eq!(pointers(&problem), ["/qos"], "{problem:#}");
        // Well-formed RDF of an invalid context fails the same checks as JSON, by pointer.
        let zero = unknown.replace(" ; ic:colour \"red\"", "");
        let (status, problem) = t.post_context("text/turtle", zero.into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem:#}");
        assert_eq!(pointers(&problem), ["/sensing/0/count"], "{problem:#}");
        let (status, problem) = t.post_context("text/plain", b"domain: x".to_vec()).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{problem:#}");
        assert_eq!(t.count().await, before);
        t.shutdown.cancel();
    }
}

#[tokio::test]
async fn catalog_changes_are_seen_by_the_next_recommendation() {
    for backend in &backends().await {
        let t = spawn_app(backend).await;
        let context = json!({
            "domain": "healthcare",
            "sensing": [{"property": "radonLevel", "count": 2, "site": "ward-7", "protocols": ["ble"]}],
            "qos": {"maxLatencyMs": 60000},
            "alternatives": 1
        });
        let (status, problem) = t.post("/api/v1/recommendations", &context).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem:#}");
        assert_eq!(pointers(&problem), ["/sensing/0/property"]);

        // A new catalog model that observes the property: the very next request binds it.
        let (status, mut model) = t.get("/api/v1/devices/polar-h10").await;
        assert_eq!(status, StatusCode::OK);
        model["id"] = json!("radon-probe");
        model["name"] = json!("Radon probe");
        model["observes"] = json!(["radonLevel"]);
        for key in ["version", "createdAt", "modifiedAt", "links"] {
            model.as_object_mut().unwrap().remove(key);
        }
        let (status, body) = t.put("/api/v1/devices/radon-probe", &model).await;
        assert_eq!(status, StatusCode::CREATED, "{body:#}");
        let (status, answer) = t.post("/api/v1/recommendations", &context).await;
        assert_eq!(status, StatusCode::CREATED, "{answer:#}");
        let bound: Vec<&Value> = answer["configurations"][0]["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["requirement"] == json!("sensing:radonLevel@ward-7"))
            .collect();
        assert_eq!(bound.len(), 1, "{answer:#}");
        assert_eq!(bound[0]["resource"], json!("radon-probe"));

        // Registered elsewhere, it is no longer a catalog model: nothing can fill the slot.
        model["site"] = json!("farm-north");
        let (status, body) = t.put("/api/v1/devices/radon-probe", &model).await;
        assert_eq!(status, StatusCode::OK, "{body:#}");
        let (status, answer) = t.post("/api/v1/recommendations", &context).await;
        assert_eq!(status, StatusCode::CREATED, "{answer:#}");
        assert_eq!(answer["configurations"], json!([]), "{answer:#}");
        assert!(
            !answer.to_string().contains("\"resource\":\"radon-probe\""),
            "{answer:#}"
        );
        t.shutdown.cancel();
    }
}

#[tokio::test]
async fn bad_contexts_get_a_precise_4xx_and_nothing_is_stored() {
    for backend in &backends().await {
        let t = spawn_app(backend).await;
        let good = scenario("smart-healthcare");
        let with = |pointer: &str, value: Value| {
            let mut context = good.clone();
            *context.pointer_mut(pointer).unwrap() = value;
            context
        };
        let mut unknown_field = good.clone();
        unknown_field["colour"] = json!("blue");
        let mut no_currency = good.clone();
        no_currency["qos"]
            .as_object_mut()
            .unwrap()
            .remove("currency");
        let mut duplicate = good.clone();
        let first = duplicate["sensing"][0].clone();
        duplicate["sensing"].as_array_mut().unwrap().push(first);
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "missing domain",
                {
                    let mut c = good.clone();
                    c.as_object_mut().unwrap().remove("domain");
                    c
                },
                "",
            ),
            ("unknown field", unknown_field, ""),
            (
                "bad protocol",
                with("/sensing/0/protocols/0", json!("carrier-pigeon")),
                "/sensing/0/protocols/0",
            ),
            (
                "zero count",
                with("/sensing/0/count", json!(0)),
                "/sensing/0/count",
            ),
            (
                "wrong type",
                with("/sensing/0/count", json!("forty")),
                "/sensing/0/count",
            ),
            (
                "availability over 1",
                with("/qos/minAvailability", json!(1.5)),
                "/qos/minAvailability",
            ),
            ("budget without currency", no_currency, "/qos"),
            (
                "unknown property",
                with("/sensing/0/property", json!("unicornDensity")),
                "/sensing/0/property",
            ),
            (
                "unknown site",
                with("/sensing/0/site", json!("atlantis")),
                "/sensing/0/site",
            ),
            (
                "unknown region",
                with("/qos/allowedRegions/0", json!("moon-base-1")),
                "/qos/allowedRegions/0",
            ),
            ("duplicate requirement", duplicate, "/sensing/2"),
            (
                "all weights zero",
                with("/preferences/weights", json!({"cost": 0, "latency": 0})),
                "/preferences/weights",
            ),
            (
                "empty regions",
                with("/qos/allowedRegions", json!([])),
                "/qos/allowedRegions",
            ),
            (
                "unknown residency",
                with("/qos/dataResidency", json!("Mars")),
                "/qos/dataResidency",
            ),
            ("not an object", json!([1, 2, 3]), ""),
        ];
        for (what, context, pointer) in cases {
            let (status, problem) = t.post("/api/v1/recommendations", &context).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {problem}");
            assert!(
                pointers(&problem).iter().any(|p| p == pointer),
                "{what}: expected {pointer:?} in {problem:#}"
            );
        }
        let malformed = t
            .client
            .post(format!("{}/api/v1/recommendations", t.base))
            .bearer_auth(&t.key)
            .header(header::CONTENT_TYPE, "application/json")
            .body("{\"domain\": ")
            .send()
            .await
            .unwrap();
        assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
        let huge = t
            .client
            .post(format!("{}/api/v1/recommendations", t.base))
            .bearer_auth(&t.key)
            .header(header::CONTENT_TYPE, "application/json")
            .body(format!("{{\"domain\": \"{}\"}}", "x".repeat(100 * 1024)))
            .send()
            .await
            .unwrap();
        assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(t.count().await, 0, "a refused context stores nothing");
        let (status, _) = t.get("/api/v1/recommendations/rec-nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // An impossible but well-formed context is answered, with the conflict named.
        let impossible = with("/qos/maxLatencyMs", json!(0.5));
        let (status, answer) = t.post("/api/v1/recommendations", &impossible).await;
        assert_eq!(status, StatusCode::CREATED);
        assert!(answer["configurations"].as_array().unwrap().is_empty());
        assert_eq!(
            answer["conflict"]["constraints"],
            json!(["latency"]),
            "{answer:#}"
        );
        t.shutdown.cancel();
    }
}

#[tokio::test]
async fn accepted_feedback_becomes_a_case_and_later_outcomes_update_it() {
    for backend in &backends().await {
        let t = spawn_app(backend).await;
        let (_, rec) = t
            .post("/api/v1/recommendations", &scenario("smart-agriculture"))
            .await;
        let id = rec["id"].as_str().unwrap();
        let (status, problem) = t
            .post(
                &format!("/api/v1/recommendations/{id}/feedback"),
                &json!({"status": "accepted", "configuration": 9}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(pointers(&problem), ["/configuration"]);
        let (status, problem) = t
            .post(
                &format!("/api/v1/recommendations/{id}/feedback"),
                &json!({"status": "maybe"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        let (status, after) = t
            .post(&format!("/api/v1/recommendations/{id}/feedback"), &json!({"status": "accepted", "configuration": 2, "reason": "cheaper gateway stock"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{after}");
        let case_id = format!("case-{id}");
        assert_eq!(after["case"], json!(case_id));
        let (status, case) = t.get(&format!("/api/v1/cases/{case_id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(case["domain"], json!("agriculture"));
        let chosen = &rec["configurations"][1];
        let bound: Vec<&str> = case["configuration"]["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["resource"].as_str().unwrap())
            .collect();
        for b in chosen["bindings"].as_array().unwrap() {
            assert!(bound.contains(&b["resource"].as_str().unwrap()));
        }
        assert_eq!(
            case["configuration"]["monthlyCost"],
            chosen["totals"]["monthlyCost"]
        );
        // A later outcome updates the same case: a new version.
        let (status, _) = t
            .post(
                &format!("/api/v1/recommendations/{id}/feedback"),
                &json!({"status": "accepted", "configuration": 2, "outcome": {"status": "success", "rating": 4.5, "measuredLatencyMs": 1700}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (_, case) = t.get(&format!("/api/v1/cases/{case_id}")).await;
        assert_eq!(case["outcome"]["rating"], json!(4.5));
        let (_, history) = t.get(&format!("/api/v1/cases/{case_id}/history")).await;
        assert_eq!(history.as_array().map_or(0, Vec::len), 2, "{history}");
        // The new case is retrieved for the same context next time, fully similar.
        let (_, next) = t
            .post("/api/v1/recommendations", &scenario("smart-agriculture"))
            .await;
        let retrieved = next["cases"].as_array().unwrap();
        let mine = retrieved.iter().find(|c| c["case"] == json!(case_id));
        assert!(
            mine.is_some_and(|c| (c["similarity"].as_f64().unwrap() - 1.0).abs() < 1e-9),
            "{retrieved:#?}"
        );
        let (status, _) = t
            .post(
                "/api/v1/recommendations/rec-unknown/feedback",
                &json!({"status": "rejected"}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        t.shutdown.cancel();
    }
}

#[tokio::test]
async fn a_rule_that_changes_a_cornerstone_case_needs_confirming_and_then_shapes_answers() {
    for backend in &backends().await {
        let t = spawn_app(backend).await;
        let rule = json!({
            "id": "no-polar-in-healthcare", "kind": "rule", "name": "No Polar chest straps in healthcare",
            "condition": {"domain": "healthcare"}, "action": "exclude",
            "target": {"role": "device", "manufacturer": "Polar Electro"},
            "reason": "chest straps are not tolerated by bed-bound patients"
        });
        let (status, problem) = t.put("/api/v1/rules/no-polar-in-healthcare", &rule).await;
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("case-ward-7-vitals-2024"),
            "{problem}"
        );
        let (status, _) = t.get("/api/v1/rules/no-polar-in-healthcare").await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "a refused rule is not stored"
        );
        let (status, stored) = t
            .put("/api/v1/rules/no-polar-in-healthcare?confirm=true", &rule)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{stored}");
        let (_, stored) = t.get("/api/v1/rules/no-polar-in-healthcare").await;
        assert!(
            stored["cornerstones"]
                .as_array()
                .unwrap()
                .contains(&json!("case-ward-7-vitals-2024")),
            "{stored}"
        );
        let (_, answer) = t
            .post("/api/v1/recommendations", &scenario("smart-healthcare"))
            .await;
        assert!(
            !answer["configurations"].as_array().unwrap().is_empty(),
            "{answer:#}"
        );
        for c in answer["configurations"].as_array().unwrap() {
            for b in c["bindings"].as_array().unwrap() {
                assert_ne!(b["resource"], json!("polar-h10"), "excluded by the rule");
            }
        }
        assert!(
            answer["rules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["rule"] == json!("no-polar-in-healthcare"))
        );
        assert!(
            answer["rejected"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["constraint"] == json!("rule:no-polar-in-healthcare"))
        );
        // A refinement for ward 7 withdraws the exclusion there.
        let refinement = json!({
            "id": "polar-ok-in-ward-7", "kind": "rule", "name": "Ward 7 patients are mobile",
            "refines": "no-polar-in-healthcare", "condition": {"sites": ["ward-7"]}, "action": "allow",
            "target": {"role": "device", "manufacturer": "Polar Electro"}, "reason": "ward 7 patients walk around"
        });
        let (status, body) = t.put("/api/v1/rules/polar-ok-in-ward-7", &refinement).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (_, answer) = t
            .post("/api/v1/recommendations", &scenario("smart-healthcare"))
            .await;
        assert!(
            answer["rules"].as_array().unwrap().is_empty(),
            "{:#}",
            answer["rules"]
        );
        // Rules are not written in bulk or by SPARQL update, where they would skip the check.
        let response = t
            .client
            .post(format!("{}/api/v1/bulk", t.base))
            .bearer_auth(&t.key)
            .json(&json!([rule]))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::OK {
            let results: Value = response.json().await.unwrap();
            assert_eq!(results[0]["status"], json!(400), "{results}");
        }
        t.shutdown.cancel();
    }
}

/// Reads a server-sent event stream until an event of `name`, for at most `wait`.
async fn next_event(response: &mut reqwest::Response, name: &str, wait: Duration) -> Option<Value> {
    let deadline = Instant::now() + wait;
    let mut buffer = String::new();
    while Instant::now() < deadline {
        let chunk = tokio::time::timeout(deadline - Instant::now(), response.chunk())
            .await
            .ok()?
            .ok()??;
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if block.lines().any(|l| l == format!("event: {name}")) {
                let data: String = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                return serde_json::from_str(&data).ok();
            }
        }
    }
    None
}

#[tokio::test]
async fn a_subscription_announces_a_new_recommendation_when_live_context_breaks_the_best() {
    for backend in &backends().await {
        let t = spawn_app(backend).await;
        for (id, power) in [("ward-7-gw-a", 5.0), ("ward-7-gw-b", 10.0)] {
            let (status, body) = t
                .put(
                    &format!("/api/v1/edge-nodes/{id}"),
                    &json!({"id": id, "kind": "edgeNode", "name": id, "cpuCores": 4, "memoryMb": 4096,
                            "southboundProtocols": ["ble"], "northboundProtocols": ["mqtt"], "maxThroughputMsgs": 100,
                            "powerW": power, "site": "ward-7", "live": {"status": "online", "loadPct": 10}}),
                )
                .await;
            assert!(status.is_success(), "{body}");
        }
        for n in 1..=2 {
            let id = format!("ward-7-hr-{n}");
            let (status, body) = t
                .put(
                    &format!("/api/v1/devices/{id}"),
                    &json!({"id": id, "kind": "device", "name": id, "observes": ["heartRate"], "protocols": ["ble"],
                            "samplingRateHz": 1, "site": "ward-7", "instanceOf": "polar-h10", "live": {"status": "online"}}),
                )
                .await;
            assert!(status.is_success(), "{body}");
        }
        let context = json!({
            "domain": "healthcare", "use": "registered", "alternatives": 2,
            "sensing": [{"property": "heartRate", "count": 2, "minSamplingRateHz": 1, "site": "ward-7", "protocols": ["ble"]}],
            "qos": {"maxLatencyMs": 500, "allowedRegions": ["eu-central-1"]},
            "preferences": {"weights": {"energy": 1}}
        });
        let (status, rec) = t.post("/api/v1/recommendations", &context).await;
        assert_eq!(status, StatusCode::CREATED, "{rec}");
        let first = rec["id"].as_str().unwrap().to_owned();
        let edge_of = |rec: &Value| -> String {
            rec["configurations"][0]["bindings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["role"] == json!("edge"))
                .map(|b| b["resource"].as_str().unwrap().to_owned())
                .unwrap()
        };
        assert_eq!(edge_of(&rec), "ward-7-gw-a", "the frugal gateway first");
        let (status, body) = t
            .post(
                &format!("/api/v1/recommendations/{first}/feedback"),
                &json!({"status": "accepted"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = t
            .put(
                &format!("/api/v1/recommendations/{first}/subscription"),
                &json!({"margin": 0.05}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["subscribed"], json!(true));
        // The chosen gateway got its part of the configuration as desired configuration.
        let (_, config) = t.get("/api/v1/edge-nodes/ward-7-gw-a/config").await;
        assert_eq!(
            config["desired"]["recommendation"],
            json!(first),
            "{config}"
        );
        let mut events = t
            .client
            .get(format!("{}/api/v1/events", t.base))
            .bearer_auth(&t.key)
            .send()
            .await
            .unwrap();
        assert_eq!(events.status(), StatusCode::OK);
        // Gateway A becomes almost fully loaded: it can no longer carry the site.
        let (status, body) = t
            .put(
                "/api/v1/edge-nodes/ward-7-gw-a",
                &json!({"id": "ward-7-gw-a", "kind": "edgeNode", "name": "ward-7-gw-a", "cpuCores": 4, "memoryMb": 4096,
                        "southboundProtocols": ["ble"], "northboundProtocols": ["mqtt"], "maxThroughputMsgs": 100,
                        "powerW": 5.0, "site": "ward-7", "live": {"status": "online", "loadPct": 99.5}}),
            )
            .await;
        assert!(status.is_success(), "{body}");
        let event = next_event(&mut events, "recommendation", Duration::from_secs(20))
            .await
            .expect("a recommendation event");
        assert_eq!(event["supersedes"], json!(first));
        assert_eq!(event["reason"], json!("constraintBroken"));
        assert!(
            event["detail"].as_str().unwrap().contains("edgeCapacity"),
            "{event}"
        );
        let (_, next) = t
            .get(&format!(
                "/api/v1/recommendations/{}",
                event["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(next["supersedes"], json!(first));
        assert_eq!(next["subscribed"], json!(true));
        assert_eq!(edge_of(&next), "ward-7-gw-b");
        let (_, old) = t.get(&format!("/api/v1/recommendations/{first}")).await;
        assert_eq!(old["subscribed"], json!(false));
        // The accepted recommendation's devices now get the new configuration.
        let (_, config) = t.get("/api/v1/edge-nodes/ward-7-gw-b/config").await;
        assert_eq!(config["desired"]["recommendation"], next["id"], "{config}");
        let _ = &t.app;
        t.shutdown.cancel();
    }
}
