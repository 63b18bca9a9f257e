//! The `iotcane` binary end to end: import, check, export, config, serve, and crash
//! safety, each run as a real process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use iotcane_model::{Resource, ResourceId, Tenant};
use iotcane_store::{KnowledgeStore, StoreConfig};

const BIN: &str = env!("CARGO_BIN_EXE_iotcane");

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/examples")
}

/// `iotcane` with a clean environment apart from what the test sets.
fn iotcane(data_dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("IOTCANE_DATABASE_URL")
        .env_remove("IOTCANE_DATA_DIR")
        .env("IOTCANE_LOG_LEVEL", "warn")
        .current_dir(data_dir)
        .arg("--data-dir")
        .arg(data_dir);
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run iotcane")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn seed_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ttl"))
        .collect();
    files.sort();
    files
}

fn summary(output: &Output) -> serde_json::Value {
    let text = stdout(output);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("{\"summary\""))
        .unwrap_or_else(|| panic!("no summary in {text}"));
    serde_json::from_str::<serde_json::Value>(line).unwrap()["summary"].clone()
}

fn export(data_dir: &Path, args: &[&str]) -> String {
    let output = run(iotcane(data_dir).arg("export").args(args));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(&output)
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

#[test]
fn the_seed_knowledge_base_imports_cleanly_and_round_trips_through_export() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(iotcane(dir.path())
        .args(["import", "--tenant", "seed", "--json"])
        .args(seed_files()));
    assert!(output.status.success(), "{}", stdout(&output));
    let report = summary(&output);
    assert_eq!(report["rejected"], serde_json::json!([]));
    let accepted = report["accepted"].as_u64().unwrap();
    assert!(accepted >= 190, "seed holds {accepted} resources");

    // Export, import the export elsewhere, export again: the same graph.
    let nquads = export(dir.path(), &["--tenant", "seed", "--format", "nquads"]);
    let copy = tempfile::tempdir().unwrap();
    let file = copy.path().join("seed.nq");
    std::fs::write(&file, &nquads).unwrap();
    let output = run(iotcane(copy.path())
        .args(["import", "--tenant", "seed", "--json"])
        .arg(&file));
    assert!(output.status.success(), "{}", stdout(&output));
    assert_eq!(summary(&output)["accepted"].as_u64().unwrap(), accepted);
    let again = export(copy.path(), &["--tenant", "seed", "--format", "nquads"]);
    let description = |text: &str| -> Vec<String> {
        // Version metadata differs (times, actors); the descriptions must not.
        sorted_lines(text)
            .into_iter()
            .filter(|l| {
                !l.contains("/graph/") || !l.starts_with("<https://w3id.org/iotcane/tenant/")
            })
            .collect()
    };
    assert_eq!(description(&again), description(&nquads));

    // Every other export format is readable RDF holding the same resources.
    for format in ["turtle", "ntriples", "trig", "jsonld"] {
        let text = export(dir.path(), &["--tenant", "seed", "--format", format]);
        let ext = match format {
            "turtle" => "ttl",
            "ntriples" => "nt",
            "trig" => continue, // TriG is written for people; N-Quads covers datasets above.
            _ => "jsonld",
        };
        let path = copy.path().join(format!("again.{ext}"));
        std::fs::write(&path, text).unwrap();
        let output = run(iotcane(copy.path()).args(["check", "--json"]).arg(&path));
        assert!(output.status.success(), "{format}: {}", stdout(&output));
        assert_eq!(
            summary(&output)["accepted"].as_u64().unwrap(),
            accepted,
            "{format}"
        );
    }
}

#[test]
fn broken_inputs_are_reported_precisely_and_store_nothing_of_the_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("in");
    std::fs::create_dir(&files).unwrap();
    let write = |name: &str, text: &str| {
        let path = files.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let syntax = write(
        "syntax.ttl",
        "@prefix ic: <https://w3id.org/iotcane/ontology#> .\n<urn:x:a> ic:name \"x\" .\n<urn:x:b> ic:name \"unterminated .\n",
    );
    let wrong_json = write("broken.json", "{\"id\": \"x\", \"kind\": ");
    let huge = "x".repeat(5000);
    let mixed = write(
        "mixed.ndjson",
        &[
            helpers::device_json("good-1", "good").to_string(),
            "{not json".to_owned(),
            serde_json::json!({"id": "bad-kind", "kind": "teleporter", "name": "x"}).to_string(),
            serde_json::json!({"id": "bad-type", "kind": "edgeNode", "name": "x", "cpuCores": "four", "memoryMb": 1, "southboundProtocols": ["ble"], "northboundProtocols": ["mqtt"]}).to_string(),
            serde_json::json!({"id": "missing", "kind": "cloudOffering", "name": "x", "provider": "aws"}).to_string(),
            serde_json::json!({"id": "huge", "kind": "device", "name": huge, "observes": ["t"], "protocols": ["ble"]}).to_string(),
            helpers::device_json("good-2", "good").to_string(),
        ]
        .join("\n"),
    );
    let output =
        run(iotcane(dir.path())
            .args(["import", "--json"])
            .args([&syntax, &wrong_json, &mixed]));
    assert_eq!(output.status.code(), Some(1), "rejections exit 1");
    let report = summary(&output);
    assert_eq!(report["accepted"], 2);
    let rejected = report["rejected"].as_array().unwrap();
    let reason_of = |needle: &str| -> String {
        rejected
            .iter()
            .find(|r| r.to_string().contains(needle))
            .unwrap_or_else(|| panic!("no rejection mentioning {needle}: {report}"))
            .to_string()
    };
    assert!(
        reason_of("syntax.ttl").contains("line 3"),
        "{}",
        reason_of("syntax.ttl")
    );
    assert!(reason_of("broken.json").contains("line 1, column"));
    assert!(reason_of("item 1").contains("not JSON"));
    assert!(reason_of("teleporter").contains("/kind"));
    assert!(reason_of("item 3").contains("/cpuCores"));
    let missing = reason_of("item 4");
    for field in ["/region", "/offeringKind"] {
        assert!(missing.contains(field), "{missing}");
    }
    assert!(reason_of("item 5").contains("/name: must be at most 200 characters"));
    assert_eq!(rejected.len(), 7);

    let nquads = export(dir.path(), &["--tenant", "default"]);
    let subjects: std::collections::BTreeSet<&str> = nquads
        .lines()
        .filter(|l| l.starts_with("<https://w3id.org/iotcane/id/"))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert_eq!(
        subjects.into_iter().collect::<Vec<_>>(),
        [
            "<https://w3id.org/iotcane/id/good-1>",
            "<https://w3id.org/iotcane/id/good-2>"
        ]
    );
}

#[test]
fn every_format_names_what_is_wrong_in_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, String, &str); 6] = [
        (
            "bad.nt",
            "<urn:x:a> <urn:x:b> \"unterminated .\n".to_owned(),
            "line 1",
        ),
        (
            "bad.nq",
            "<urn:x:a> <urn:x:b> <urn:x:c> <urn:x:g> <urn:x:extra> .\n".to_owned(),
            "line 1",
        ),
        (
            "remote.jsonld",
            serde_json::json!({"@context": "https://example.com/ctx.jsonld", "@id": "urn:x:a"})
                .to_string(),
            "not fetched",
        ),
        (
            "typed.jsonld",
            serde_json::json!({
                "@context": "https://w3id.org/iotcane/context.jsonld",
                "id": "gw", "kind": "edgeNode", "name": "gw", "cpuCores": 4,
                "southboundProtocols": ["ble"], "northboundProtocols": ["mqtt"]
            })
            .to_string(),
            "/memoryMb: is required",
        ),
        (
            "td.json",
            serde_json::json!({
                "@context": "https://www.w3.org/2022/wot/td/v1.1",
                "id": "urn:dev:no-title",
                "properties": {"temp": {"forms": [{"href": "mqtt://b/t"}]}}
            })
            .to_string(),
            "/name: is required",
        ),
        (
            "huge.ttl",
            format!(
                "@prefix ic: <https://w3id.org/iotcane/ontology#> .\n<urn:x:s> a ic:NetworkLink ; <https://schema.org/name> \"{}\" ; ic:fromEndpoint \"site:a\" ; ic:toEndpoint \"site:b\" ; ic:latencyMs 3 .\n",
                "n".repeat(100_000)
            ),
            "/name: must be at most 200 characters",
        ),
    ];
    for (name, text, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let output = run(iotcane(dir.path()).args(["import", "--json"]).arg(&path));
        assert_eq!(output.status.code(), Some(1), "{name}: {}", stdout(&output));
        let report = summary(&output);
        assert_eq!(report["accepted"], 0, "{name}");
        let reasons = report["rejected"].to_string();
        assert!(
            reasons.contains(expected),
            "{name}: expected {expected:?} in {reasons}"
        );
    }
    // Nothing of any of them was stored.
    assert_eq!(export(dir.path(), &["--format", "nquads"]), "");
}

#[test]
fn a_new_data_directory_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("not/yet/there");
    let output = run(Command::new(BIN)
        .current_dir(dir.path())
        .env("IOTCANE_DATA_DIR", &data)
        .args(["import", "--json"])
        .arg(examples().join("services.ttl")));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(data.join("iotcane.db").exists());
}

#[test]
fn check_validates_without_touching_any_store() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(iotcane(dir.path())
        .args(["check", "--json"])
        .args(seed_files()));
    assert!(output.status.success(), "{}", stdout(&output));
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, serde_json::json!([{"id": "x", "kind": "device", "name": "x", "observes": [], "protocols": []}]).to_string()).unwrap();
    let output = run(iotcane(dir.path()).arg("check").arg(&bad));
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains("/observes") && text.contains("/protocols"),
        "{text}"
    );
    assert!(
        !dir.path().join("iotcane.db").exists(),
        "check must not create a journal"
    );
    let unknown = dir.path().join("notes.txt");
    std::fs::write(&unknown, "hello").unwrap();
    let output = run(iotcane(dir.path()).arg("check").arg(&unknown));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown file extension"));
}

#[test]
fn settings_layer_file_then_environment_then_flags_and_hide_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("iotcane.toml"),
        "database_url = \"postgres://iot:s3cret@db.example:5432/iotcane\"\nlog_level = \"debug\"\nsnapshot_every_changes = 7\nquery_timeout_ms = 1234\n",
    )
    .unwrap();
    let output = run(Command::new(BIN)
        .current_dir(dir.path())
        .env("IOTCANE_LOG_LEVEL", "warn")
        .env("IOTCANE_QUERY_TIMEOUT_MS", "999")
        .env("IOTCANE_MQTT_PASSWORD", "br0ker-pw")
        .env("IOTCANE_MQTT_CLIENT_ID", "0042")
        .env("IOTCANE_MQTT_PREFIX", "true")
        .args([
            "--log-level",
            "error",
            "--mqtt-url",
            "mqtts://gw:url-pw@broker.example:8883",
            "config",
        ]));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = stdout(&output);
    let config: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(
        config["database_url"].as_str(),
        Some("postgres://iot:***@db.example:5432/iotcane")
    );
    assert!(!text.contains("s3cret"));
    assert_eq!(
        config["mqtt_url"].as_str(),
        Some("mqtts://gw:***@broker.example:8883"),
        "a flag, shown without its password"
    );
    assert!(
        !text.contains("url-pw") && !text.contains("br0ker-pw"),
        "{text}"
    );
    assert_eq!(
        config["snapshot_every_changes"].as_integer(),
        Some(7),
        "from the file"
    );
    assert_eq!(
        config["query_timeout_ms"].as_integer(),
        Some(999),
        "environment over file"
    );
    assert_eq!(
        config["log_level"].as_str(),
        Some("error"),
        "flag over environment"
    );
    // Text settings are taken as written, not as TOML values.
    assert_eq!(config["mqtt_client_id"].as_str(), Some("0042"));
    assert_eq!(config["mqtt_prefix"].as_str(), Some("true"));

    std::fs::write(
        dir.path().join("iotcane.toml"),
        "snapshot_evry_changes = 7\n",
    )
    .unwrap();
    let output = run(Command::new(BIN).current_dir(dir.path()).arg("config"));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("snapshot_evry_changes"));
}

#[test]
fn serve_says_where_the_data_lives_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = iotcane(dir.path())
        .env("IOTCANE_LOG_LEVEL", "info")
        .env("IOTCANE_LOG_FORMAT", "json")
        .args([
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--mqtt-listen",
            "127.0.0.1:0",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let serving = lines
        .by_ref()
        .map(Result::unwrap)
        .find(|l| l.contains("iotcane is serving"))
        .expect("serving log line");
    assert!(
        serving.contains(&dir.path().display().to_string()),
        "{serving}"
    );
    assert!(serving.contains("sqlite"), "{serving}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
}

/// The generated devices of the crash test, in file order.
fn crash_devices(n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| {
            let mut d = helpers::device_json(&format!("dev-{i:05}"), &format!("device {i}"));
            d["samplingRateHz"] = serde_json::json!(1.0 + (i % 50) as f64);
            d
        })
        .collect()
}

#[tokio::test]
async fn sigkill_during_a_large_import_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let devices = crash_devices(30_000);
    let file = dir.path().join("devices.ndjson");
    let body: Vec<String> = devices.iter().map(ToString::to_string).collect();
    std::fs::write(&file, body.join("\n")).unwrap();

    let mut child = iotcane(dir.path())
        .args([
            "import",
            "--json",
            "--batch-size",
            "250",
            "--tenant",
            "crash",
        ])
        .arg(&file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut acknowledged = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while acknowledged.len() < 2_000 {
        let line = lines.next().expect("import ended before the kill").unwrap();
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        for id in value["committed"]["ids"].as_array().unwrap() {
            acknowledged.push(id.as_str().unwrap().to_owned());
        }
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up.
    child.wait().unwrap();

    let store = KnowledgeStore::open(StoreConfig::new(dir.path()))
        .await
        .unwrap();
    let tenant: Tenant = "crash".parse().unwrap();
    let expected: BTreeMap<String, Resource> = devices
        .into_iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().to_owned(),
                Resource::from_json(d).unwrap(),
            )
        })
        .collect();
    for id in &acknowledged {
        let stored = store
            .get(&tenant, &id.parse::<ResourceId>().unwrap())
            .unwrap();
        assert_eq!(
            stored.map(|s| s.resource).as_ref(),
            expected.get(id),
            "acknowledged {id}"
        );
    }
    // Whatever else made it is whole, and whole batches only: a prefix of the file.
    let present = store.list(&tenant, None, None, usize::MAX).unwrap();
    assert!(present.len() >= acknowledged.len());
    assert_eq!(present.len() % 250, 0, "a batch was half applied");
    for (i, (id, _)) in present.iter().enumerate() {
        assert_eq!(id.as_str(), format!("dev-{i:05}"));
        let stored = store.get(&tenant, id).unwrap().unwrap();
        assert_eq!(Some(&stored.resource), expected.get(id.as_str()));
    }
    // The journal agrees with the graph.
    assert_eq!(store.applied_seq(), store.journal_head().await.unwrap());
}

#[tokio::test]
async fn an_import_process_and_a_tailing_store_converge_on_one_journal() {
    for backend in helpers::backends().await {
        let dir = tempfile::tempdir().unwrap();
        let url = backend
            .database_url
            .clone()
            .unwrap_or_else(|| dir.path().join("shared.db").display().to_string());
        let watcher_dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::new(watcher_dir.path());
        config.database_url = url.clone();
        config.tail_interval = Duration::from_millis(50);
        let watcher = KnowledgeStore::open(config).await.unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let tailer = tokio::spawn({
            let watcher = watcher.clone();
            let shutdown = shutdown.clone();
            async move { watcher.run_background(shutdown).await }
        });

        let output = run(iotcane(dir.path())
            .env("IOTCANE_DATABASE_URL", &url)
            .args(["import", "--tenant", "seed", "--json"])
            .args(seed_files()));
        assert!(output.status.success(), "{}", stdout(&output));
        let accepted = summary(&output)["accepted"].as_u64().unwrap() as usize;
        let tenant: Tenant = "seed".parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while watcher.count(&tenant, None).unwrap() < accepted {
            assert!(
                Instant::now() < deadline,
                "{}: the tailer fell behind",
                backend.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        shutdown.cancel();
        tailer.await.unwrap();
        let mine = helpers::export_lines(&watcher);
        let theirs = sorted_lines(&export(dir.path(), &["--database-url", &url]));
        assert_eq!(mine, theirs, "{}: the replicas differ", backend.name);
    }
}

#[test]
fn compact_runs_by_hand_and_keeps_the_retention_window() {
    let dir = tempfile::tempdir().unwrap();
    let device = |name: &str| {
        serde_json::json!({"id": "d-1", "kind": "device", "name": name, "observes": ["heartRate"],
            "protocols": ["ble"], "samplingRateHz": 1, "site": "ward-7"})
        .to_string()
    };
    for name in ["first", "second"] {
        let file = dir.path().join("d.json");
        std::fs::write(&file, device(name)).unwrap();
        let imported = run(iotcane(dir.path()).arg("import").arg(&file));
        assert!(imported.status.success(), "{imported:?}");
    }
    let compacted = run(iotcane(dir.path()).args(["compact", "--retention-hours", "1", "--json"]));
    assert!(compacted.status.success(), "{compacted:?}");
    let outcome: serde_json::Value = serde_json::from_str(stdout(&compacted).trim()).unwrap();
    assert_eq!(
        outcome["rowsRemoved"], 0,
        "both versions are within the hour: {outcome}"
    );
    assert!(outcome["historyFrom"].as_str().unwrap().ends_with('Z'));

    // Both versions are still there.
    let history = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = KnowledgeStore::open(StoreConfig::new(dir.path()))
            .await
            .unwrap();
        let tenant: Tenant = "default".parse().unwrap();
        let id: ResourceId = "d-1".parse().unwrap();
        let history = store.history(&tenant, &id).await.unwrap();
        store.close().await;
        history
    });
    assert_eq!(history.len(), 2);

    // A retention of 0 keeps everything: there is nothing to run.
    let refused = run(iotcane(dir.path())
        .arg("compact")
        .env("IOTCANE_JOURNAL_RETENTION_HOURS", "0"));
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("journal_retention_hours is 0"),
        "{refused:?}"
    );
    let zero = run(iotcane(dir.path()).args(["compact", "--retention-hours", "0"]));
    assert!(!zero.status.success());
}
