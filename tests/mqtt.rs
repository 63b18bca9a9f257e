//! The MQTT gateway end to end: the real gateway and HTTP server, real MQTT clients on
//! real sockets, the embedded broker always, a private Mosquitto for the session and
//! restart tests, and the machine's Mosquitto when `IOTCANE_TEST_MQTT_URL` names it (then
//! it must be reachable: the test fails rather than skipping).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use helpers::{Backend, backends, export_lines};
use iotcane_app::{App, Role};
use iotcane_http::{HttpConfig, HttpServer};
use iotcane_model::{ResourceId, Tenant};
use iotcane_mqtt::{MqttConfig, MqttGateway};
use iotcane_store::KnowledgeStore;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, Publish, PublishProperties};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const MQTT_ENV: &str = "IOTCANE_TEST_MQTT_URL";
const WAIT: Duration = Duration::from_secs(20);

fn tenant(name: &str) -> Tenant {
    name.parse().unwrap()
}

fn rid(id: &str) -> ResourceId {
    id.parse().unwrap()
}

/// The service: HTTP and the MQTT gateway on one store.
struct Stack {
    base: String,
    http: reqwest::Client,
    app: App,
    store: KnowledgeStore,
    /// Keys of tenant `acme` (admin, write, read) and of tenant `globex` (write).
    admin: String,
    writer: String,
    reader: String,
    globex: String,
    /// `host:port` of the broker devices use.
    broker: String,
    prefix: String,
    shutdown: CancellationToken,
    gateway: MqttGateway,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

struct StackOptions {
    backend: Backend,
    /// An external broker; `None`: the embedded one on a free port.
    url: Option<String>,
    client_id: String,
    prefix: String,
    context_history: u32,
}

impl StackOptions {
    fn embedded(backend: &Backend) -> Self {
        Self {
            backend: backend.clone(),
            url: None,
            client_id: unique("gateway"),
            prefix: "iotcane".to_owned(),
            context_history: 100,
        }
    }

    fn external(backend: &Backend, url: &str) -> Self {
        Self {
            url: Some(url.to_owned()),
            // The machine's broker is shared: a topic tree of this test's own.
            prefix: unique("t"),
            ..Self::embedded(backend)
        }
    }
}

fn unique(stem: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{stem}{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

async fn start(dir: &std::path::Path, options: &StackOptions) -> Stack {
    // IOTCANE_TEST_LOG=iotcane_mqtt=debug shows the gateway's log when a test fails.
    if let Ok(filter) = std::env::var("IOTCANE_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
    let mut store_config = helpers::config(dir, &options.backend);
    store_config.context_history = options.context_history;
    let store = KnowledgeStore::open(store_config).await.unwrap();
    let app = App::new(store.clone());
    let key = |t: &str, role: Role| {
        let app = app.clone();
        let t = tenant(t);
        async move {
            // Keys survive a restart of the stack on the same journal: reuse by name.
            app.keys()
                .create(&t, role, &format!("{} key", role.as_str()))
                .await
                .unwrap()
                .token
        }
    };
    let (admin, writer, reader, globex) = (
        key("acme", Role::Admin).await,
        key("acme", Role::Write).await,
        key("acme", Role::Read).await,
        key("globex", Role::Write).await,
    );
    let shutdown = CancellationToken::new();
    let mut config = MqttConfig::new();
    config.url = options.url.clone();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.client_id = options.client_id.clone();
    config.prefix = options.prefix.clone();
    config.max_payload = 8 * 1024;
    config.session_expiry = Duration::from_secs(600);
    let gateway = MqttGateway::start(app.clone(), config, shutdown.clone())
        .await
        .unwrap();
    let broker = match (gateway.broker_addr(), &options.url) {
        (Some(addr), _) => addr.to_string(),
        (None, Some(url)) => url.trim_start_matches("mqtt://").to_owned(),
        (None, None) => unreachable!(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = HttpServer::new(
        listener,
        app.clone(),
        HttpConfig::new(tenant("acme")),
        shutdown.clone(),
    );
    let base = format!("http://{}", server.local_addr().unwrap());
    let server = tokio::spawn(server.run());
    Stack {
        base,
        http: reqwest::Client::new(),
        app,
        store,
        admin,
        writer,
        reader,
        globex,
        broker,
        prefix: options.prefix.clone(),
        shutdown,
        gateway,
        server,
    }
}

impl Stack {
    /// Stops like SIGTERM does: the gateway finishes and acknowledges what it holds.
    async fn stop(self) {
        self.shutdown.cancel();
        self.gateway.join().await;
        self.server.await.unwrap().unwrap();
        self.store.close().await;
    }

    fn topic(&self, tenant: &str, thing: &str, tail: &str) -> String {
        format!("{}/{tenant}/things/{thing}/{tail}", self.prefix)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn dead_letters(&self) -> Vec<Value> {
        let (status, body) = self.get("/api/v1/dead-letters?limit=1000").await;
        assert_eq!(status, 200, "{body}");
        body.as_array().unwrap().clone()
    }

    /// Waits until the gateway answers: registers a probe Thing and waits for its answer.
    async fn wait_ready(&self) {
        let mut device = Device::connect(&self.broker, &unique("probe"), Some(&self.writer), None)
            .await
            .unwrap();
        let accepted = self.topic("acme", "probe", "register/accepted");
        device.subscribe(&accepted).await;
        let deadline = Instant::now() + WAIT;
        loop {
            device
                .publish(
                    &self.topic("acme", "probe", "register"),
                    device_payload("probe").to_string(),
                    None,
                )
                .await;
            if device
                .next_on(&accepted, Duration::from_millis(500))
                .await
                .is_some()
            {
                break;
            }
            assert!(Instant::now() < deadline, "the gateway never answered");
        }
        device.disconnect().await;
    }
}

fn device_payload(id: &str) -> Value {
    json!({
        "id": id,
        "kind": "device",
        "name": format!("Sensor {id}"),
        "observes": ["temperature"],
        "protocols": ["mqtt"],
        "affordances": [{"name": "temp", "affordanceKind": "property"}],
    })
}

fn td(id: &str) -> Value {
    json!({
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "id": id,
        "title": format!("Lamp {id}"),
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
        "properties": {
            "brightness": {"type": "integer", "forms": [{"href": "mqtt://lamp/brightness"}]}
        }
    })
}

/// A device: a real MQTT 5 client on its own connection.
struct Device {
    client: AsyncClient,
    inbox: mpsc::UnboundedReceiver<Publish>,
    /// Messages that arrived while another topic was awaited.
    held: Vec<Publish>,
    acks: mpsc::UnboundedReceiver<u16>,
    task: tokio::task::JoinHandle<()>,
}

impl Device {
    async fn connect(
        broker: &str,
        client_id: &str,
        key: Option<&str>,
        will: Option<LastWill>,
    ) -> Result<Device, String> {
        Self::connect_with(broker, client_id, key, will, true).await
    }

    async fn connect_with(
        broker: &str,
        client_id: &str,
        key: Option<&str>,
        will: Option<LastWill>,
        clean: bool,
    ) -> Result<Device, String> {
        let addr: SocketAddr = broker.parse().unwrap();
        let mut options = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        options.set_keep_alive(Duration::from_secs(5));
        options.set_clean_start(clean);
        if !clean {
            options.set_session_expiry_interval(Some(600));
        }
        if let Some(key) = key {
            options.set_credentials("", key);
        }
        if let Some(will) = will {
            options.set_last_will(will);
        }
        let (client, mut eventloop) = AsyncClient::new(options, 4096);
        let (inbox_tx, inbox) = mpsc::unbounded_channel();
        let (acks_tx, acks) = mpsc::unbounded_channel();
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ready_tx = Some(ready_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(Ok(()));
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = inbox_tx.send(p);
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        let _ = acks_tx.send(ack.pkid);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(Err(e.to_string()));
                            return;
                        }
                        // Reconnect after a pause, like a real device.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        match tokio::time::timeout(WAIT, ready).await {
            Ok(Ok(Ok(()))) => Ok(Device {
                client,
                inbox,
                held: Vec::new(),
                acks,
                task,
            }),
            Ok(Ok(Err(e))) => {
                task.abort();
                Err(e)
            }
            _ => {
                task.abort();
                Err("no CONNACK".to_owned())
            }
        }
    }

    async fn subscribe(&mut self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        // Let the SUBACK land before anything is published to the filter.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    async fn publish(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        properties: Option<PublishProperties>,
    ) {
        self.client
            .publish_with_properties(
                topic,
                QoS::AtLeastOnce,
                false,
                payload.into(),
                properties.unwrap_or_default(),
            )
            .await
            .unwrap();
    }

    /// The next message on `topic`; others are held for later calls.
    async fn next_on(&mut self, topic: &str, within: Duration) -> Option<Publish> {
        if let Some(i) = self.held.iter().position(|m| m.topic == topic.as_bytes()) {
            return Some(self.held.remove(i));
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let message = tokio::time::timeout_at(deadline, self.inbox.recv())
                .await
                .ok()??;
            if message.topic == topic.as_bytes() {
                return Some(message);
            }
            self.held.push(message);
        }
    }

    async fn next_json(&mut self, topic: &str) -> Value {
        let message = self
            .next_on(topic, WAIT)
            .await
            .unwrap_or_else(|| panic!("nothing arrived on {topic}"));
        serde_json::from_slice(&message.payload).unwrap()
    }

    async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.task.abort();
    }

    /// Drops the connection without DISCONNECT, as a device that loses power.
    fn vanish(self) {
        self.task.abort();
    }
}

async fn wait_for<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_registration_over_mqtt_is_visible_over_http_and_sparql() {
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let stack = start(dir.path(), &StackOptions::embedded(&backend)).await;
        registration_scenario(&stack).await;
        stack.stop().await;
    }
}

/// Registration (TD with a response topic, native JSON from an MQTT 3.1.1 client),
/// live context, events: the same on every broker.
async fn registration_scenario(stack: &Stack) {
    let lamp = "urn:dev:lamp-1";
    let mut device = Device::connect(&stack.broker, &unique("lamp"), Some(&stack.writer), None)
        .await
        .unwrap();
    let accepted = stack.topic("acme", lamp, "register/accepted");
    let replies = format!("{}/acme/replies/lamp", stack.prefix);
    let events = format!("{}/acme/events/#", stack.prefix);
    device.subscribe(&accepted).await;
    device.subscribe(&replies).await;
    device.subscribe(&events).await;
    let properties = PublishProperties {
        response_topic: Some(replies.clone()),
        correlation_data: Some(Bytes::from_static(b"req-42")),
        ..Default::default()
    };
    device
        .publish(
            &stack.topic("acme", lamp, "register"),
            td(lamp).to_string(),
            Some(properties),
        )
        .await;
    let answer = device.next_json(&accepted).await;
    assert_eq!(answer["accepted"], true, "{answer}");
    assert_eq!(answer["result"]["id"], lamp);
    assert_eq!(answer["result"]["version"], 1);
    let reply = device
        .next_on(&replies, WAIT)
        .await
        .expect("response topic");
    assert_eq!(
        reply.properties.and_then(|p| p.correlation_data),
        Some(Bytes::from_static(b"req-42"))
    );
    let event: Value = serde_json::from_slice(
        &device
            .next_on(&format!("{}/acme/events/device/{lamp}", stack.prefix), WAIT)
            .await
            .expect("created event")
            .payload,
    )
    .unwrap();
    assert_eq!(event["event"], "created");
    assert_eq!(event["id"], lamp);

    // Over HTTP: the directory serves the TD, SPARQL finds it.
    let (status, thing) = stack.get(&format!("/things/{lamp}")).await;
    assert_eq!(status, 200, "{thing}");
    assert_eq!(thing["title"], "Lamp urn:dev:lamp-1");
    let ask = stack
        .http
        .post(format!("{}/sparql", stack.base))
        .bearer_auth(&stack.reader)
        .header("content-type", "application/sparql-query")
        .header("accept", "application/sparql-results+json")
        .body(format!(
            "ASK {{ <{lamp}> <https://schema.org/name> \"Lamp {lamp}\" }}"
        ))
        .send()
        .await
        .unwrap();
    let ask: Value = ask.json().await.unwrap();
    assert_eq!(ask["boolean"], true, "{ask}");

    // A live-context report reaches the graph and the history; the version stays.
    device
        .publish(
            &stack.topic("acme", lamp, "context"),
            json!({"status": "online", "batteryPct": 81.5, "properties": {"brightness": 40}})
                .to_string(),
            None,
        )
        .await;
    let live = wait_for("the live context", async || {
        let (_, body) = stack.get(&format!("/api/v1/devices/{lamp}")).await;
        (body["live"]["batteryPct"] == 81.5).then_some(body)
    })
    .await;
    assert_eq!(live["live"]["status"], "online");
    assert_eq!(live["live"]["properties"]["brightness"], 40);
    assert!(live["live"]["observedAt"].is_string(), "{live}");
    let (_, history) = stack.get(&format!("/api/v1/devices/{lamp}/context")).await;
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
    let (_, versions) = stack.get(&format!("/api/v1/devices/{lamp}/history")).await;
    assert_eq!(
        versions.as_array().unwrap().len(),
        1,
        "context is not a new version"
    );

    // An MQTT 3.1.1 client registers native JSON and gets its answer.
    let sensor = "sensor-7";
    let options = {
        let addr: SocketAddr = stack.broker.parse().unwrap();
        let mut o = rumqttc::MqttOptions::new(unique("v311"), addr.ip().to_string(), addr.port());
        o.set_credentials("acme", &stack.writer);
        o
    };
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 64);
    let sensor_accepted = stack.topic("acme", sensor, "register/accepted");
    client
        .subscribe(&sensor_accepted, rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    let mut published = false;
    let answer = tokio::time::timeout(WAIT, async {
        loop {
            match eventloop.poll().await.unwrap() {
                rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) if !published => {
                    published = true;
                    client
                        .publish(
                            stack.topic("acme", sensor, "register"),
                            rumqttc::QoS::AtLeastOnce,
                            false,
                            device_payload(sensor).to_string(),
                        )
                        .await
                        .unwrap();
                }
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))
                    if p.topic == sensor_accepted =>
                {
                    return serde_json::from_slice::<Value>(&p.payload).unwrap();
                }
                _ => {}
            }
        }
    })
    .await
    .expect("an answer for the 3.1.1 client");
    assert_eq!(answer["accepted"], true, "{answer}");
    let (status, body) = stack.get(&format!("/api/v1/devices/{sensor}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "Sensor sensor-7");

    // Deregistration deletes through the journal.
    device
        .publish(&stack.topic("acme", sensor, "deregister"), "", None)
        .await;
    wait_for("the deregistration", async || {
        let (status, _) = stack.get(&format!("/api/v1/devices/{sensor}")).await;
        (status == 404).then_some(())
    })
    .await;
    device.disconnect().await;
}

#[tokio::test]
async fn bad_payloads_are_rejected_dead_lettered_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for backend in &backends().await {
        let stack = start(dir.path(), &StackOptions::embedded(backend)).await;
        stack.wait_ready().await;
        let mut device = Device::connect(&stack.broker, &unique("bad"), Some(&stack.writer), None)
            .await
            .unwrap();
        device
            .subscribe(&format!("{}/acme/things/+/+/rejected", stack.prefix))
            .await;
        let before = export_lines(&stack.store);
        let big = json!({"status": "online", "properties": {"blob": "x".repeat(9000)}}).to_string();
        // (thing, action, payload, expected pointer, expected words in the detail)
        let cases: Vec<(&str, &str, String, &str, &str)> = vec![
            ("probe", "context", "{not json".into(), "", "not JSON"),
            (
                "probe",
                "context",
                json!({"status": "sleeping"}).to_string(),
                "/status",
                "sleeping",
            ),
            (
                "probe",
                "context",
                json!({"status": "online", "batteryPct": 140}).to_string(),
                "/batteryPct",
                "100",
            ),
            (
                "probe",
                "context",
                json!({"status": "online", "properties": {"humidity": 3}}).to_string(),
                "/properties/humidity",
                "not a property",
            ),
            ("probe", "context", big, "", "limit is 8192"),
            (
                "ghost",
                "context",
                json!({"status": "online"}).to_string(),
                "",
                "unknown Thing",
            ),
            (
                "probe",
                "register",
                json!({"id": "other", "kind": "device", "name": "x"}).to_string(),
                "/id",
                "topic is for",
            ),
            (
                "probe",
                "register",
                json!({"title": 7}).to_string(),
                "/title",
                "",
            ),
            (
                "probe",
                "register",
                json!([1, 2]).to_string(),
                "",
                "JSON object",
            ),
            ("ghost", "deregister", String::new(), "", "unknown Thing"),
        ];
        for (thing, action, payload, pointer, words) in &cases {
            device
                .publish(&stack.topic("acme", thing, action), payload.clone(), None)
                .await;
            let rejected = stack.topic("acme", thing, &format!("{action}/rejected"));
            let answer = device.next_json(&rejected).await;
            assert_eq!(answer["accepted"], false, "{answer}");
            let reasons = answer["reasons"].as_array().unwrap();
            assert!(
                reasons
                    .iter()
                    .any(|r| r["pointer"] == *pointer
                        && r["detail"].as_str().unwrap().contains(words)),
                "{action} {payload:.80}: expected {pointer:?} with {words:?}, got {answer}"
            );
        }
        // An unknown tenant: the rejection goes to the tenant's topic (nobody there), and the
        // dead letter is the unknown tenant's; the write key may not even publish there, so
        // the front moves it aside and it is filed under the client's own tenant.
        device
            .publish(
                &stack.topic("nosuch", "probe", "context"),
                json!({"status": "online"}).to_string(),
                None,
            )
            .await;
        let letters = wait_for("every dead letter", async || {
            let letters = stack.dead_letters().await;
            (letters.len() > cases.len()).then_some(letters)
        })
        .await;
        assert_eq!(letters.len(), cases.len() + 1, "{letters:#?}");
        let newest = &letters[0];
        assert_eq!(newest["topic"], stack.topic("nosuch", "probe", "context"));
        assert!(
            newest["reason"]
                .as_str()
                .unwrap()
                .contains("may not publish"),
            "{newest}"
        );
        let too_large = letters
            .iter()
            .find(|l| l["reason"].as_str().unwrap().contains("limit is 8192"))
            .expect("the oversized payload's dead letter");
        assert!(
            too_large["payloadBytes"].as_i64().unwrap() > 9000,
            "{too_large}"
        );
        assert_eq!(export_lines(&stack.store), before, "the store changed");
        let metrics = stack
            .http
            .get(format!("{}/metrics", stack.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("iotcane_mqtt_rejected_total{reason=\"invalid\"}"),
            "{metrics}"
        );
        device.disconnect().await;
        stack.stop().await;
    }
}

#[tokio::test]
async fn clients_publish_and_subscribe_only_within_their_tenant() {
    let dir = tempfile::tempdir().unwrap();
    for backend in &backends().await {
        let stack = start(dir.path(), &StackOptions::embedded(backend)).await;
        stack.wait_ready().await;
        // No key, a wrong key, and a will outside the tenant: refused at CONNECT.
        for (key, will) in [
            (None, None),
            (Some("ick_0000_ffff"), None),
            (
                Some(stack.writer.as_str()),
                Some(LastWill::new(
                    stack.topic("globex", "x", "context"),
                    "{}",
                    QoS::AtLeastOnce,
                    false,
                    None,
                )),
            ),
        ] {
            let refused = Device::connect(&stack.broker, &unique("intruder"), key, will).await;
            assert!(refused.is_err(), "a connection was let in");
        }
        let mut acme = Device::connect(&stack.broker, &unique("acme"), Some(&stack.writer), None)
            .await
            .unwrap();
        let mut globex =
            Device::connect(&stack.broker, &unique("globex"), Some(&stack.globex), None)
                .await
                .unwrap();
        // acme tries to read all of globex's events and to write into globex.
        acme.subscribe(&format!("{}/globex/#", stack.prefix)).await;
        acme.subscribe("#").await;
        globex
            .subscribe(&format!(
                "{}/globex/things/+/register/accepted",
                stack.prefix
            ))
            .await;
        acme.publish(
            &stack.topic("globex", "planted", "register"),
            device_payload("planted").to_string(),
            None,
        )
        .await;
        globex
            .publish(
                &stack.topic("globex", "own", "register"),
                device_payload("own").to_string(),
                None,
            )
            .await;
        let answer = globex
            .next_json(&stack.topic("globex", "own", "register/accepted"))
            .await;
        assert_eq!(answer["accepted"], true);
        // acme's wildcard subscriptions saw nothing of globex.
        tokio::time::sleep(Duration::from_millis(300)).await;
        while let Ok(message) = acme.inbox.try_recv() {
            let topic = String::from_utf8_lossy(&message.topic).into_owned();
            assert!(!topic.contains("/globex/"), "acme received {topic}");
        }
        let globex_tenant = tenant("globex");
        assert!(
            stack
                .app
                .get(&globex_tenant, &rid("planted"))
                .unwrap()
                .is_none()
        );
        let letters = stack.dead_letters().await;
        assert!(
            letters.iter().any(
                |l| l["topic"] == stack.topic("globex", "planted", "register")
                    && l["reason"].as_str().unwrap().contains("tenant `acme`")
            ),
            "{letters:#?}"
        );
        // A read key may connect and subscribe, not publish.
        let reader = Device::connect(&stack.broker, &unique("reader"), Some(&stack.reader), None)
            .await
            .unwrap();
        reader
            .publish(
                &stack.topic("acme", "by-reader", "register"),
                device_payload("by-reader").to_string(),
                None,
            )
            .await;
        wait_for("the reader's dead letter", async || {
            let letters = stack.dead_letters().await;
            letters
                .iter()
                .any(|l| l["topic"] == stack.topic("acme", "by-reader", "register"))
                .then_some(())
        })
        .await;
        assert!(
            stack
                .app
                .get(&tenant("acme"), &rid("by-reader"))
                .unwrap()
                .is_none()
        );
        // Nor can a key make the gateway publish for it: a response topic outside
        // `{prefix}/{tenant}/replies/` is ignored, and a refused publish gets no response.
        for (device, role) in [(&reader, "read"), (&acme, "write")] {
            device
                .publish(
                    &stack.topic("acme", "probe", "context"),
                    json!({"status": "online"}).to_string(),
                    Some(PublishProperties {
                        response_topic: Some(stack.topic("acme", "probe", "deregister")),
                        ..Default::default()
                    }),
                )
                .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(
                stack
                    .app
                    .get(&tenant("acme"), &rid("probe"))
                    .unwrap()
                    .is_some(),
                "a {role} key deregistered a Thing through a response topic"
            );
        }
        // Devices may not publish what only the service publishes.
        acme.publish(
            &stack.topic("acme", "probe", "config/desired"),
            json!({"hijacked": true}).to_string(),
            None,
        )
        .await;
        wait_for("the spoofed configuration's dead letter", async || {
            let letters = stack.dead_letters().await;
            letters
                .iter()
                .any(|l| l["topic"] == stack.topic("acme", "probe", "config/desired"))
                .then_some(())
        })
        .await;
        for d in [acme, globex, reader] {
            d.disconnect().await;
        }
        stack.stop().await;
    }
}

#[tokio::test]
async fn a_last_will_marks_the_device_offline() {
    let dir = tempfile::tempdir().unwrap();
    for backend in &backends().await {
        let stack = start(dir.path(), &StackOptions::embedded(backend)).await;
        stack.wait_ready().await;
        let context = stack.topic("acme", "probe", "context");
        let will = LastWill::new(
            context.clone(),
            json!({"status": "offline"}).to_string(),
            QoS::AtLeastOnce,
            false,
            None,
        );
        let device = Device::connect(
            &stack.broker,
            &unique("mortal"),
            Some(&stack.writer),
            Some(will),
        )
        .await
        .unwrap();
        device
            .publish(&context, json!({"status": "online"}).to_string(), None)
            .await;
        wait_for("online", async || {
            let (_, body) = stack.get("/api/v1/devices/probe").await;
            (body["live"]["status"] == "online").then_some(())
        })
        .await;
        device.vanish();
        wait_for("the last will", async || {
            let (_, body) = stack.get("/api/v1/devices/probe").await;
            (body["live"]["status"] == "offline").then_some(())
        })
        .await;
        stack.stop().await;
    }
}

#[tokio::test]
async fn the_desired_configuration_is_retained_and_the_delta_follows_reports() {
    let dir = tempfile::tempdir().unwrap();
    for backend in &backends().await {
        let stack = start(dir.path(), &StackOptions::embedded(backend)).await;
        stack.wait_ready().await;
        let desired = json!({"samplingHz": 2, "uplink": "edge-b"});
        let response = stack
            .http
            .put(format!(
                "{}/api/v1/devices/probe/config/desired",
                stack.base
            ))
            .bearer_auth(&stack.writer)
            .json(&desired)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        // A device that subscribes later still gets it: it is retained.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut device =
            Device::connect(&stack.broker, &unique("shadow"), Some(&stack.writer), None)
                .await
                .unwrap();
        device
            .subscribe(&stack.topic("acme", "probe", "config/+"))
            .await;
        let got = device
            .next_json(&stack.topic("acme", "probe", "config/desired"))
            .await;
        assert_eq!(got, desired);
        device
            .publish(
                &stack.topic("acme", "probe", "config/reported"),
                json!({"samplingHz": 2, "uplink": "edge-a"}).to_string(),
                None,
            )
            .await;
        let delta = device
            .next_json(&stack.topic("acme", "probe", "config/delta"))
            .await;
        assert_eq!(delta, json!({"uplink": "edge-b"}));
        let (_, config) = stack.get("/api/v1/devices/probe/config").await;
        assert_eq!(config["reported"]["uplink"], "edge-a");
        assert_eq!(config["delta"], json!({"uplink": "edge-b"}));
        device.disconnect().await;
        stack.stop().await;
    }
}

/// A private Mosquitto on a free port, with persistence, that a test may restart.
struct Mosquitto {
    port: u16,
    conf: std::path::PathBuf,
    child: Child,
}

impl Mosquitto {
    fn start(dir: &std::path::Path) -> Mosquitto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Started as root, mosquitto drops to its own user: that user must be able to
        // write its persistence file here.
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 persistence_location {}/\nautosave_interval 1\nmax_queued_messages 100000\n\
                 log_dest none\n",
                dir.display()
            ),
        )
        .unwrap();
        let child = Self::spawn(&conf, port);
        Mosquitto { port, conf, child }
    }

    fn spawn(conf: &std::path::Path, port: u16) -> Child {
        let binary = ["/usr/sbin/mosquitto", "mosquitto"]
            .into_iter()
            .find(|b| std::path::Path::new(b).exists() || *b == "mosquitto")
            .unwrap();
        let child = Command::new(binary)
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto must be installed for the session tests (Debian: mosquitto)");
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Stops it as an operator does (SIGTERM: it saves its state) and starts it again.
    fn restart(&mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap();
        self.child = Self::spawn(&self.conf, self.port);
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `loadPct` values of each device's stored context reports.
async fn reported_values(stack: &Stack, devices: usize) -> BTreeMap<usize, Vec<i64>> {
    let mut out = BTreeMap::new();
    for d in 0..devices {
        let history = stack
            .app
            .context_history(&tenant("acme"), &rid(&format!("d{d}")), 10_000)
            .await
            .unwrap();
        out.insert(
            d,
            history
                .iter()
                .map(|v| v.live.load_pct.unwrap() as i64)
                .collect(),
        );
    }
    out
}

async fn register_devices(stack: &Stack, devices: usize) {
    let resources = (0..devices)
        .map(|d| helpers::resource(device_payload(&format!("d{d}"))))
        .collect();
    let actor = iotcane_app::Actor {
        name: "test".to_owned(),
        source: iotcane_app::store::ChangeSource::Cli,
    };
    for result in stack
        .app
        .put_many(&tenant("acme"), resources, &actor)
        .await
        .unwrap()
    {
        result.unwrap();
    }
}

fn report(value: usize) -> String {
    json!({"status": "online", "loadPct": value}).to_string()
}

#[tokio::test]
async fn a_report_that_overtakes_its_registration_is_applied_once_the_thing_is_registered() {
    let dir = tempfile::tempdir().unwrap();
    for backend in &backends().await {
        let stack = start(dir.path(), &StackOptions::embedded(backend)).await;
        stack.wait_ready().await;
        let device = Device::connect(&stack.broker, &unique("late"), Some(&stack.writer), None)
            .await
            .unwrap();
        let thing = unique("late");
        // The report goes out first, and the registration reaches the journal a moment
        // later: as when another replica took the registration from the shared
        // subscription.
        device
            .publish(&stack.topic("acme", &thing, "context"), report(42), None)
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let actor = iotcane_app::Actor {
            name: "another replica".to_owned(),
            source: iotcane_app::store::ChangeSource::Mqtt,
        };
        stack
            .app
            .put_many(
                &tenant("acme"),
                vec![helpers::resource(device_payload(&thing))],
                &actor,
            )
            .await
            .unwrap()
            .remove(0)
            .unwrap();
        let path = format!("/api/v1/devices/{thing}");
        wait_for("the report to be applied", async || {
            let (status, body) = stack.get(&path).await;
            (status == 200 && body["live"]["loadPct"].as_f64() == Some(42.0)).then_some(())
        })
        .await;
        let letters = stack.dead_letters().await;
        assert!(
            letters
                .iter()
                .all(|l| !l["topic"].as_str().unwrap().contains(&thing)),
            "{}: {letters:?}",
            backend.name
        );
        device.disconnect().await;
        stack.stop().await;
    }
}

#[tokio::test]
async fn messages_published_while_the_service_is_down_are_applied_once_it_is_back() {
    const DEVICES: usize = 100;
    const PER_DEVICE: usize = 10;
    let broker_dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start(broker_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let backend = backends().await.pop().unwrap();
    let options = StackOptions::external(&backend, &mosquitto.url());
    let stack = start(dir.path(), &options).await;
    register_devices(&stack, DEVICES).await;
    stack.wait_ready().await;
    stack.stop().await;

    // The service is down: 1,000 reports wait in the broker, in the gateway's session.
    let publisher = Device::connect(
        &format!("127.0.0.1:{}", mosquitto.port),
        &unique("pub"),
        None,
        None,
    )
    .await
    .unwrap();
    let mut publisher = publisher;
    for k in 0..PER_DEVICE {
        for d in 0..DEVICES {
            publisher
                .publish(&options_topic(&options, d), report(k), None)
                .await;
        }
    }
    for _ in 0..DEVICES * PER_DEVICE {
        tokio::time::timeout(WAIT, publisher.acks.recv())
            .await
            .expect("the broker acknowledged every report")
            .unwrap();
    }
    publisher.disconnect().await;

    let stack = start(dir.path(), &options).await;
    let values = wait_for("all 1,000 reports", async || {
        let values = reported_values(&stack, DEVICES).await;
        let total: usize = values.values().map(Vec::len).sum();
        (total >= DEVICES * PER_DEVICE).then_some(values)
    })
    .await;
    // Nothing more trickles in: each was applied once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(reported_values(&stack, DEVICES).await, values);
    for (d, mut got) in values {
        got.sort_unstable();
        assert_eq!(
            got,
            (0..PER_DEVICE as i64).collect::<Vec<_>>(),
            "device d{d}"
        );
    }
    stack.stop().await;
}

fn options_topic(options: &StackOptions, device: usize) -> String {
    format!("{}/acme/things/d{device}/context", options.prefix)
}

#[tokio::test]
async fn a_broker_restart_mid_run_loses_nothing_acknowledged() {
    const DEVICES: usize = 20;
    const PER_DEVICE: usize = 100;
    let broker_dir = tempfile::tempdir().unwrap();
    let mut mosquitto = Mosquitto::start(broker_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let backend = backends().await.pop().unwrap();
    let mut options = StackOptions::external(&backend, &mosquitto.url());
    options.context_history = 10_000;
    let stack = start(dir.path(), &options).await;
    register_devices(&stack, DEVICES).await;
    stack.wait_ready().await;

    let broker = format!("127.0.0.1:{}", mosquitto.port);
    let mut publisher = Device::connect_with(&broker, &unique("pub"), None, None, false)
        .await
        .unwrap();
    // Each report is published until the broker acknowledges it; the broker restarts
    // half way through.
    for k in 0..PER_DEVICE {
        for d in 0..DEVICES {
            loop {
                while publisher.acks.try_recv().is_ok() {}
                publisher
                    .publish(&options_topic(&options, d), report(k), None)
                    .await;
                if let Ok(Some(_)) =
                    tokio::time::timeout(Duration::from_secs(2), publisher.acks.recv()).await
                {
                    break;
                }
            }
        }
        if k == PER_DEVICE / 2 {
            mosquitto.restart();
        }
    }
    publisher.disconnect().await;
    let deadline = Instant::now() + WAIT;
    let values = loop {
        let values = reported_values(&stack, DEVICES).await;
        let complete = values
            .values()
            .all(|v| v.iter().collect::<BTreeSet<_>>().len() == PER_DEVICE);
        if complete || Instant::now() > deadline {
            break values;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for (d, got) in values {
        let distinct: BTreeSet<i64> = got.into_iter().collect();
        let missing: Vec<i64> = (0..PER_DEVICE as i64)
            .filter(|v| !distinct.contains(v))
            .collect();
        assert!(
            missing.is_empty(),
            "device d{d} lost reports {missing:?}; dead letters: {:?}",
            stack.dead_letters().await
        );
    }
    stack.stop().await;
}

/// The machine's broker, when the environment names it.
fn machine_broker() -> Option<String> {
    let url = std::env::var(MQTT_ENV).ok().filter(|s| !s.is_empty())?;
    let hostport = url.trim_start_matches("mqtt://").to_owned();
    std::net::TcpStream::connect(&hostport)
        .unwrap_or_else(|e| panic!("{MQTT_ENV}={url} is set but unreachable: {e}"));
    Some(url)
}

#[tokio::test]
async fn the_gateway_works_the_same_on_the_machine_broker() {
    let Some(url) = machine_broker() else {
        eprintln!("{MQTT_ENV} is not set: the embedded-broker tests cover the gateway");
        return;
    };
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let stack = start(dir.path(), &StackOptions::external(&backend, &url)).await;
        stack.wait_ready().await;
        registration_scenario(&stack).await;
        // A bad payload is rejected and dead-lettered there too.
        let mut device = Device::connect(&stack.broker, &unique("bad"), None, None)
            .await
            .unwrap();
        let rejected = stack.topic("acme", "probe", "context/rejected");
        device.subscribe(&rejected).await;
        device
            .publish(&stack.topic("acme", "probe", "context"), "{oops", None)
            .await;
        let answer = device.next_json(&rejected).await;
        assert_eq!(answer["accepted"], false);
        assert_eq!(stack.dead_letters().await.len(), 1);
        device.disconnect().await;
        stack.stop().await;
    }
}

/// Runs a Mosquitto command-line client to completion.
fn mosquitto_client(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} must be installed for this test (Debian: mosquitto-clients): {e}")
        })
}

#[tokio::test]
async fn mosquitto_clients_register_through_the_binary_and_dead_letters_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let (child, base, stderr) = helpers::serve(dir.path(), &[]);
    let key = stderr
        .iter()
        .find_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("ick_"))
                .map(str::to_owned)
        })
        .expect("the first admin key");
    let serving: Value = serde_json::from_str(stderr.last().unwrap()).unwrap();
    let broker = serving["fields"]["mqtt"].as_str().unwrap().to_owned();
    let hostport = broker
        .trim_start_matches("mqtt://")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let (host, port) = hostport.rsplit_once(':').unwrap();
    let auth = ["-h", host, "-p", port, "-u", "default", "-P", key.as_str()];
    let lamp = "urn:dev:cli-lamp";
    let answers = std::thread::spawn({
        let auth: Vec<String> = auth.iter().map(|s| (*s).to_owned()).collect();
        move || {
            let mut args: Vec<&str> = auth.iter().map(String::as_str).collect();
            args.extend([
                "-t",
                "iotcane/default/things/+/register/+",
                "-C",
                "2",
                "-W",
                "20",
                "-v",
            ]);
            mosquitto_client("mosquitto_sub", &args)
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let topic = format!("iotcane/default/things/{lamp}/register");
    for payload in [td(lamp).to_string(), "not json".to_owned()] {
        let mut args = auth.to_vec();
        args.extend(["-q", "1", "-t", &topic, "-m", &payload]);
        let out = mosquitto_client("mosquitto_pub", &args);
        assert!(out.status.success(), "{out:?}");
    }
    let out = answers.join().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(&format!("{topic}/accepted"))
            && printed.contains(&format!("{topic}/rejected")),
        "{printed}"
    );
    let response = reqwest::Client::new()
        .get(format!("{base}/things/{lamp}"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let out = helpers::iotcane(dir.path())
        .args(["dead-letters", "list", "--tenant", "default", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let letters: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["topic"], topic);
    assert!(letters[0]["reason"].as_str().unwrap().contains("not JSON"));
    assert_eq!(letters[0]["payload"], "not json");
    helpers::stop(child);
}

#[test]
fn a_taken_broker_port_stops_serve_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = helpers::iotcane(dir.path())
        .args([
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--mqtt-listen",
            &addr,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&addr) && stderr.contains("--mqtt-listen") && stderr.contains("--mqtt-url"),
        "{stderr}"
    );
}

/// Imports the seed knowledge base (`schema/examples/*.ttl`) into `tenant_name`.
async fn import_seed(stack: &Stack, tenant_name: &str) {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/examples");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ttl"))
        .collect();
    files.sort();
    let mut items = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        items.extend(
            iotcane_model::formats::read(iotcane_model::formats::Format::Turtle, &bytes)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display())),
        );
    }
    let actor = iotcane_app::Actor {
        name: "test".to_owned(),
        source: iotcane_app::store::ChangeSource::Cli,
    };
    let report = stack
        .app
        .import(&tenant(tenant_name), "seed", items, &actor, 1000, |_| {})
        .await
        .unwrap();
    assert!(report.rejected.is_empty(), "{:#?}", report.rejected);
    assert!(report.accepted > 0);
}

/// An MQTT 5 client that takes packets of up to 1 MiB (and says so at CONNECT, so that the
/// broker sends it nothing larger): a recommendation is larger than rumqttc's 10 KiB
/// default.
async fn large_packet_device(broker: &str, key: &str) -> Device {
    let addr: SocketAddr = broker.parse().unwrap();
    let mut options = MqttOptions::new(unique("planner"), addr.ip().to_string(), addr.port());
    options
        .set_keep_alive(Duration::from_secs(5))
        .set_credentials("", key)
        .set_max_packet_size(Some(1 << 20));
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let (inbox_tx, inbox) = mpsc::unbounded_channel();
    let (_acks_tx, acks) = mpsc::unbounded_channel();
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut ready_tx = Some(ready_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = inbox_tx.send(p);
                }
                Ok(_) => {}
                // Disconnected: the test has what it came for, or times out waiting.
                Err(_) => return,
            }
        }
    });
    tokio::time::timeout(WAIT, ready).await.unwrap().unwrap();
    Device {
        client,
        inbox,
        held: Vec::new(),
        acks,
        task,
    }
}

#[tokio::test]
async fn recommendations_are_requested_and_replied_over_mqtt() {
    // The embedded broker always; the machine's broker too when the environment names it.
    let mut brokers = vec![None];
    brokers.extend(machine_broker().map(Some));
    for url in brokers {
        // Fresh journals per broker: the scenario counts its dead letters.
        for backend in &backends().await {
            let dir = tempfile::tempdir().unwrap();
            let options = match &url {
                None => StackOptions::embedded(backend),
                Some(url) => StackOptions::external(backend, url),
            };
            let stack = start(dir.path(), &options).await;
            import_seed(&stack, "acme").await;
            stack.wait_ready().await;
            recommendation_scenario(&stack, url.is_none()).await;
            stack.stop().await;
        }
    }
}

/// MQTT 5 request/reply, the MQTT 3.1.1 fallback, a malformed context; and, behind the
/// embedded broker's front, a read key's request moved aside.
async fn recommendation_scenario(stack: &Stack, embedded: bool) {
    let scenario: Value = serde_json::from_slice(
        &std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../schema/examples/scenarios/smart-healthcare.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let request = format!("{}/acme/recommendations/request", stack.prefix);

    // MQTT 5: the reply comes on the response topic, with the correlation data.
    let mut planner = large_packet_device(&stack.broker, &stack.writer).await;
    let replies = format!("{}/acme/replies/planner", stack.prefix);
    planner
        .subscribe(&format!("{}/acme/replies/#", stack.prefix))
        .await;
    let ask = |correlation: &'static [u8]| PublishProperties {
        response_topic: Some(replies.clone()),
        correlation_data: Some(Bytes::from_static(correlation)),
        ..Default::default()
    };
    planner
        .publish(&request, scenario.to_string(), Some(ask(b"plan-1")))
        .await;
    let reply = planner.next_on(&replies, WAIT).await.expect("a reply");
    assert_eq!(
        reply.properties.and_then(|p| p.correlation_data),
        Some(Bytes::from_static(b"plan-1"))
    );
    let recommendation: Value = serde_json::from_slice(&reply.payload).unwrap();
    let configurations = recommendation["configurations"]
        .as_array()
        .unwrap_or_else(|| panic!("no configurations: {recommendation}"));
    assert!(!configurations.is_empty(), "{recommendation}");
    assert_eq!(recommendation["context"], scenario);
    let id = recommendation["id"].as_str().unwrap();
    let stored = stack
        .app
        .recommendation(&tenant("acme"), id)
        .await
        .expect("the recommendation is stored");
    assert_eq!(stored.id, id);

    // MQTT 3.1.1: request/{request-id} is answered on reply/{request-id}.
    let reply_topic = format!("{}/acme/recommendations/reply/req-311", stack.prefix);
    let options = {
        let addr: SocketAddr = stack.broker.parse().unwrap();
        let mut o = rumqttc::MqttOptions::new(unique("v311"), addr.ip().to_string(), addr.port());
        o.set_credentials("acme", &stack.writer);
        o.set_max_packet_size(1 << 20, 1 << 20);
        o
    };
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 64);
    client
        .subscribe(
            format!("{}/acme/recommendations/reply/#", stack.prefix),
            rumqttc::QoS::AtLeastOnce,
        )
        .await
        .unwrap();
    let mut published = false;
    let answer = tokio::time::timeout(WAIT, async {
        loop {
            match eventloop.poll().await.unwrap() {
                rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) if !published => {
                    published = true;
                    client
                        .publish(
                            format!("{request}/req-311"),
                            rumqttc::QoS::AtLeastOnce,
                            false,
                            scenario.to_string(),
                        )
                        .await
                        .unwrap();
                }
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) if p.topic == reply_topic => {
                    return serde_json::from_slice::<Value>(&p.payload).unwrap();
                }
                _ => {}
            }
        }
    })
    .await
    .expect("a reply for the 3.1.1 client");
    assert!(
        !answer["configurations"].as_array().unwrap().is_empty(),
        "{answer}"
    );
    assert_ne!(answer["id"], recommendation["id"], "a new recommendation");

    // A malformed context: an error reply naming the fields, and a dead letter.
    let mut bad = scenario.clone();
    bad["alternatives"] = json!(0);
    bad["qos"]["maxLatencyMs"] = json!("fast");
    planner
        .publish(&request, bad.to_string(), Some(ask(b"plan-2")))
        .await;
    let reply = planner
        .next_on(&replies, WAIT)
        .await
        .expect("an error reply");
    assert_eq!(
        reply.properties.and_then(|p| p.correlation_data),
        Some(Bytes::from_static(b"plan-2"))
    );
    let error: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(error["error"]["status"], 400, "{error}");
    let pointers: BTreeSet<&str> = error["error"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert!(
        pointers.contains("/alternatives") && pointers.contains("/qos/maxLatencyMs"),
        "{error}"
    );
    let letters = wait_for("the bad context's dead letter", async || {
        let letters = stack.dead_letters().await;
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    assert_eq!(letters.len(), 1, "{letters:#?}");
    assert_eq!(letters[0]["topic"], request);
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .contains("/alternatives"),
        "{letters:#?}"
    );

    // A subscribed recommendation that loses a resource it binds is re-evaluated, and the
    // new one is announced as a recommendation event.
    let events = format!("{}/acme/events/recommendation/#", stack.prefix);
    planner.subscribe(&events).await;
    stack
        .app
        .subscribe(&tenant("acme"), id, Some(None))
        .await
        .unwrap();
    let bound = configurations[0]["bindings"]
        .as_array()
        .and_then(|b| b.last())
        .and_then(|b| b["resource"].as_str())
        .unwrap_or_else(|| panic!("no binding in {}", configurations[0]));
    let actor = iotcane_app::Actor {
        name: "test".to_owned(),
        source: iotcane_app::store::ChangeSource::Cli,
    };
    stack
        .app
        .delete(&tenant("acme"), &rid(bound), None, &actor)
        .await
        .unwrap();
    let sent = stack.app.reevaluate(&tenant("acme")).await.unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let event = planner
        .next_json(&format!(
            "{}/acme/events/recommendation/{}",
            stack.prefix, sent[0].id
        ))
        .await;
    assert_eq!(event["supersedes"], id, "{event}");
    assert_eq!(event["reason"], "constraintBroken", "{event}");

    let _ = client.disconnect().await;
    planner.disconnect().await;

    // A read key may not ask: recommendations are stored.
    if embedded {
        let reader = Device::connect(&stack.broker, &unique("reader"), Some(&stack.reader), None)
            .await
            .unwrap();
        reader
            .publish(&format!("{request}/by-reader"), scenario.to_string(), None)
            .await;
        wait_for("the reader's dead letter", async || {
            let letters = stack.dead_letters().await;
            letters
                .iter()
                .any(|l| {
                    l["topic"] == format!("{request}/by-reader")
                        && l["reason"].as_str().unwrap().contains("may not publish")
                })
                .then_some(())
        })
        .await;
        reader.disconnect().await;
    }
}
