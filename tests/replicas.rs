//! Scale-out end to end: three `iotcane serve` processes on one journal (PostgreSQL when
//! the environment names a server, else one SQLite file) and one broker (the machine's
//! Mosquitto), splitting device traffic with an MQTT shared subscription. Devices register
//! and report over MQTT, operators write over HTTP to different replicas, one replica is
//! killed with SIGKILL mid-load and started again; every replica's graph must end up the
//! same, with every report and every write in it once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

use std::collections::BTreeSet;
use std::process::Child;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

const MQTT_ENV: &str = "IOTCANE_TEST_MQTT_URL";
const DEVICES: usize = 30;
const ROUNDS: usize = 20;
const CONVERGE_WITHIN: Duration = Duration::from_secs(90);

/// One replica: its process, data directory and base URL.
struct Replica {
    name: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
    base: String,
}

struct Cluster {
    database_url: String,
    broker_url: String,
    prefix: String,
    group: String,
}

impl Cluster {
    fn start(&self, name: &str, dir: tempfile::TempDir) -> Replica {
        let mut cmd = helpers::iotcane(dir.path());
        cmd.env("IOTCANE_DATABASE_URL", &self.database_url)
            .env("IOTCANE_MQTT_PREFIX", &self.prefix)
            .env("IOTCANE_MQTT_SHARE_GROUP", &self.group)
            // The client id names the replica's persistent session: stable across restarts.
            .env("IOTCANE_MQTT_CLIENT_ID", format!("{}-{name}", self.group))
            .env("IOTCANE_TAIL_INTERVAL_MS", "50")
            .env("IOTCANE_CONTEXT_HISTORY", "10000");
        let (child, base, _) =
            helpers::serve_command(cmd, &["--no-auth", "--mqtt-url", &self.broker_url]);
        Replica {
            name: name.to_owned(),
            dir,
            child: Some(child),
            base,
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The distinct `loadPct` values of a device's stored context reports.
async fn reported(client: &reqwest::Client, base: &str, device: usize) -> BTreeSet<i64> {
    let (status, history) = get(
        client,
        &format!("{base}/api/v1/devices/d{device}/context?limit=10000"),
    )
    .await;
    assert_eq!(status, 200, "d{device}: {history}");
    history
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["live"]["loadPct"].as_f64().map(|v| v as i64))
        .collect()
}

/// Every quad of a replica's graph, sorted: equal dumps mean equal graphs.
async fn dump(client: &reqwest::Client, base: &str) -> Vec<String> {
    let response = client
        .get(format!("{base}/sparql"))
        .query(&[(
            "query",
            "SELECT ?g ?s ?p ?o WHERE { GRAPH ?g { ?s ?p ?o } }",
        )])
        .header("Accept", "text/tab-separated-values")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut lines: Vec<String> = response
        .text()
        .await
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// A client that waits for the broker's acknowledgement of every message it publishes,
/// and collects the messages of its subscriptions.
struct Publisher {
    client: AsyncClient,
    acks: tokio::sync::mpsc::UnboundedReceiver<()>,
    inbox: tokio::sync::mpsc::UnboundedReceiver<rumqttc::Publish>,
}

impl Publisher {
    async fn connect(broker: &str, id: &str) -> Publisher {
        let hostport = broker.trim_start_matches("mqtt://");
        let (host, port) = hostport.rsplit_once(':').unwrap();
        let mut options = MqttOptions::new(id, host, port.parse().unwrap());
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(options, 1024);
        let (tx, acks) = tokio::sync::mpsc::unbounded_channel();
        let (inbox_tx, inbox) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        let _ = tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let _ = inbox_tx.send(publish);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Publisher {
            client,
            acks,
            inbox,
        }
    }

    async fn subscribe(&mut self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        // The subscription is in place once the broker has answered it: a message
        // published after that reaches us.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    /// Publishes at QoS 1 and waits until the broker has acknowledged it.
    async fn publish(&mut self, topic: &str, payload: Value) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.to_string())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.acks.recv())
            .await
            .expect("the broker acknowledges a publish")
            .unwrap();
    }
}

#[tokio::test]
async fn replicas_on_one_journal_and_one_broker_converge_and_survive_a_sigkill() {
    let Some(broker_url) = std::env::var(MQTT_ENV).ok().filter(|s| !s.is_empty()) else {
        eprintln!("{MQTT_ENV} is not set: the replica test needs a shared broker");
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let database_url = match helpers::postgres_url() {
        Some(url) => helpers::fresh_postgres_database(&url).await,
        None => shared.path().join("journal.db").display().to_string(),
    };
    let unique = format!(
        "t{}x{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let cluster = Cluster {
        database_url,
        broker_url: broker_url.clone(),
        prefix: format!("iotcane-{unique}"),
        group: format!("iotcane-{unique}"),
    };
    let mut replicas: Vec<Replica> = ["a", "b", "c"]
        .iter()
        .map(|name| cluster.start(name, tempfile::tempdir().unwrap()))
        .collect();
    let http = reqwest::Client::new();
    let topic =
        |device: usize, tail: &str| format!("{}/default/things/d{device}/{tail}", cluster.prefix);
    let mut publisher = Publisher::connect(&broker_url, &format!("pub-{unique}")).await;
    let mut watcher = Publisher::connect(&broker_url, &format!("watch-{unique}")).await;
    watcher
        .subscribe(&format!("{}/default/events/#", cluster.prefix))
        .await;

    // The tenant exists once something is written to it: a first write over HTTP, seen by
    // every replica before devices speak.
    let edge = |id: &str| {
        json!({"id": id, "kind": "edgeNode", "name": format!("gateway {id}"),
               "cpuCores": 4, "memoryMb": 4096, "site": "plant-a",
               "southboundProtocols": ["mqtt"], "northboundProtocols": ["mqtt"]})
    };
    let response = http
        .put(format!("{}/api/v1/edge-nodes/e-first", replicas[0].base))
        .json(&edge("e-first"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    for r in &replicas {
        let started = Instant::now();
        while get(&http, &format!("{}/api/v1/edge-nodes/e-first", r.base))
            .await
            .0
            != 200
        {
            assert!(
                started.elapsed() < CONVERGE_WITHIN,
                "{} never saw the first write",
                r.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Registrations over MQTT. A replica's gateway may still be subscribing: the first
    // device is registered again until some replica has taken it.
    let device = |d: usize| {
        json!({"id": format!("d{d}"), "kind": "device", "name": format!("Sensor d{d}"),
               "observes": ["temperature"], "protocols": ["mqtt"], "site": "plant-a"})
    };
    let started = Instant::now();
    loop {
        publisher.publish(&topic(0, "register"), device(0)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if get(&http, &format!("{}/api/v1/devices/d0", replicas[0].base))
            .await
            .0
            == 200
        {
            break;
        }
        assert!(
            started.elapsed() < CONVERGE_WITHIN,
            "no replica takes registrations"
        );
    }
    for d in 1..DEVICES {
        publisher.publish(&topic(d, "register"), device(d)).await;
    }
    // Every replica must know every device before reports flow: a report taken by one
    // replica before it has applied the registration another replica wrote is refused as
    // an unknown Thing (shared subscriptions do not keep one device's messages on one
    // replica).
    let started = Instant::now();
    for r in &replicas {
        for d in 0..DEVICES {
            while get(&http, &format!("{}/api/v1/devices/d{d}", r.base))
                .await
                .0
                != 200
            {
                assert!(
                    started.elapsed() < CONVERGE_WITHIN,
                    "{} never saw d{d} registered",
                    r.name
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    // Context reports over MQTT, round by round; HTTP writes to each replica in turn;
    // replica c is killed half way and started again at the end.
    let mut written = Vec::new();
    let mut killed_dir = None;
    for round in 0..ROUNDS {
        for d in 0..DEVICES {
            let report = json!({"status": "online", "loadPct": round,
                                "observedAt": format!("2026-12-01T10:{:02}:{:02}Z", round, d)});
            publisher.publish(&topic(d, "context"), report).await;
        }
        let live: Vec<&Replica> = replicas.iter().filter(|r| r.child.is_some()).collect();
        let target = live[round % live.len()];
        let id = format!("e{round}");
        let response = http
            .put(format!("{}/api/v1/edge-nodes/{id}", target.base))
            .json(&edge(&id))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            201,
            "PUT {id} on {}",
            target.name
        );
        written.push(id);
        if round == ROUNDS / 2 {
            let mut c = replicas.pop().unwrap();
            let mut child = c.child.take().unwrap();
            child.kill().unwrap(); // SIGKILL: no shutdown, no flush, no disconnect
            child.wait().unwrap();
            killed_dir = Some(std::mem::replace(&mut c.dir, tempfile::tempdir().unwrap()));
            replicas.push(c);
        }
    }
    // While c is down, a and b go on with their share. The broker keeps routing some
    // messages to c's persistent session (Mosquitto, like EMQX and VerneMQ, queues for a
    // disconnected member until its session expires): those wait for c to come back.
    let after_kill: Vec<i64> = (ROUNDS / 2 + 1..ROUNDS).map(|v| v as i64).collect();
    let published = after_kill.len() * DEVICES;
    let started = Instant::now();
    let mut applied = 0;
    loop {
        let mut now = 0;
        for d in 0..DEVICES {
            let values = reported(&http, &replicas[0].base, d).await;
            now += after_kill.iter().filter(|v| values.contains(v)).count();
        }
        // Settled: nothing more arrived over the last round of reads.
        if now == published || (now == applied && now > 0) {
            applied = now;
            break;
        }
        applied = now;
        assert!(
            started.elapsed() < CONVERGE_WITHIN,
            "a and b stopped applying reports"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    eprintln!(
        "while c was down, a and b applied {applied} of the {published} reports published after the kill"
    );
    assert!(
        applied * 2 >= published,
        "a and b applied only {applied} of {published} reports while c was down"
    );

    // The killed replica comes back with its data directory and its session, and takes
    // what the broker kept for it (messages it had received but not acknowledged).
    let restarted = cluster.start("c", killed_dir.unwrap());
    replicas.pop();
    replicas.push(restarted);

    // Convergence: every replica has applied the whole journal, and all graphs are equal.
    let started = Instant::now();
    let complete = loop {
        let mut heads = BTreeSet::new();
        for r in &replicas {
            let (status, ready) = get(&http, &format!("{}/readyz", r.base)).await;
            assert_eq!(status, 200, "{}: {ready}", r.name);
            heads.insert((
                ready["journal_head"].as_i64(),
                ready["applied_seq"].as_i64(),
            ));
        }
        let caught_up = heads.len() == 1 && heads.iter().all(|(h, a)| h == a);
        let mut reports_complete = true;
        for d in 0..DEVICES {
            reports_complete &= reported(&http, &replicas[0].base, d).await.len() == ROUNDS;
        }
        if caught_up && reports_complete {
            break true;
        }
        if started.elapsed() > CONVERGE_WITHIN {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!("converged after {:?}", started.elapsed());
    for d in 0..DEVICES {
        let values = reported(&http, &replicas[0].base, d).await;
        let missing: Vec<usize> = (0..ROUNDS)
            .filter(|v| !values.contains(&(*v as i64)))
            .collect();
        assert!(
            missing.is_empty(),
            "d{d} lost the reports of rounds {missing:?}"
        );
    }
    assert!(
        complete,
        "the replicas did not converge within {CONVERGE_WITHIN:?}"
    );
    let reference = dump(&http, &replicas[0].base).await;
    assert!(reference.len() > DEVICES * 10, "{} quads", reference.len());
    for r in &replicas[1..] {
        let other = dump(&http, &r.base).await;
        let only_a: Vec<&String> = reference
            .iter()
            .filter(|l| !other.contains(l))
            .take(3)
            .collect();
        let only_r: Vec<&String> = other
            .iter()
            .filter(|l| !reference.contains(l))
            .take(3)
            .collect();
        assert!(
            only_a.is_empty() && only_r.is_empty(),
            "replica {} differs from a: only in a {only_a:?}, only in {} {only_r:?}",
            r.name,
            r.name
        );
    }
    // Every acknowledged HTTP write is there, applied once.
    for id in &written {
        for r in &replicas {
            let (status, history) =
                get(&http, &format!("{}/api/v1/edge-nodes/{id}/history", r.base)).await;
            assert_eq!(status, 200, "{id} on {}: {history}", r.name);
            let versions: Vec<(i64, &str)> = history
                .as_array()
                .unwrap()
                .iter()
                .map(|v| (v["version"].as_i64().unwrap(), v["op"].as_str().unwrap()))
                .collect();
            assert_eq!(versions, [(1, "create")], "{id} on {}", r.name);
        }
    }
    // Each change is announced once, by the replica that wrote it, not once per replica.
    let mut announced: std::collections::BTreeMap<String, usize> = Default::default();
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(500), watcher.inbox.recv()).await
    {
        let event: Value = serde_json::from_slice(&event.payload).unwrap();
        if event["event"] == json!("created") && event["kind"] == json!("edgeNode") {
            *announced
                .entry(event["id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    for id in &written {
        assert_eq!(announced.get(id), Some(&1), "events of {id}: {announced:?}");
    }
    for r in replicas {
        let mut r = r;
        helpers::stop(r.child.take().unwrap());
    }
}
