//! Shared set-up for the end-to-end tests: fresh journals on every backend the
//! environment provides, and stores opened on them.
//!
//! SQLite always runs. PostgreSQL runs when `IOTCANE_TEST_POSTGRES_URL` is set, and then
//! it must be reachable: a test fails rather than skipping silently.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use iotcane_store::{KnowledgeStore, StoreConfig};
use serde_json::Value;
use sqlx::Connection;

pub const POSTGRES_ENV: &str = "IOTCANE_TEST_POSTGRES_URL";

/// A journal database for one test.
#[derive(Debug, Clone)]
pub struct Backend {
    pub name: &'static str,
    /// `None`: SQLite in the data directory.
    pub database_url: Option<String>,
}

/// SQLite, plus a fresh PostgreSQL database when the environment names a server.
pub async fn backends() -> Vec<Backend> {
    let mut out = vec![Backend {
        name: "sqlite",
        database_url: None,
    }];
    if let Some(url) = postgres_url() {
        out.push(Backend {
            name: "postgres",
            database_url: Some(fresh_postgres_database(&url).await),
        });
    }
    out
}

pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_ENV).ok().filter(|s| !s.is_empty())
}

/// Creates an empty database on the server of `base_url` and returns its URL.
pub async fn fresh_postgres_database(base_url: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut conn = sqlx::PgConnection::connect(base_url)
        .await
        .unwrap_or_else(|e| panic!("{POSTGRES_ENV}={base_url} is set but unreachable: {e}"));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!(
        "iotcane_t_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    );
    // The name is made here from digits and letters only.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let (server, _) = base_url
        .rsplit_once('/')
        .expect("a postgres URL ends with /database");
    format!("{server}/{name}")
}

/// A store configuration for `data_dir` on `backend`, with fast background timers.
pub fn config(data_dir: &Path, backend: &Backend) -> StoreConfig {
    let mut config = StoreConfig::new(data_dir);
    if let Some(url) = &backend.database_url {
        config.database_url = url.clone();
    }
    config.tail_interval = Duration::from_millis(50);
    config
}

pub async fn open(data_dir: &Path, backend: &Backend) -> KnowledgeStore {
    KnowledgeStore::open(config(data_dir, backend))
        .await
        .unwrap_or_else(|e| panic!("open store on {}: {e}", backend.name))
}

/// The store's whole graph as sorted N-Quads lines: equal exports mean equal graphs.
pub fn export_lines(store: &KnowledgeStore) -> Vec<String> {
    let bytes = store
        .export(None, oxigraph::io::RdfFormat::NQuads, Vec::new())
        .unwrap();
    let mut lines: Vec<String> = String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

pub fn device_json(id: &str, name: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "kind": "device",
        "name": name,
        "observes": ["heartRate"],
        "protocols": ["ble"],
        "samplingRateHz": 1.0,
        "site": "ward-7",
        "live": {"status": "online", "batteryPct": 80.0}
    })
}

pub fn edge_json(id: &str, cores: u32) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "kind": "edgeNode",
        "name": format!("gateway {id}"),
        "cpuCores": cores,
        "memoryMb": 4096,
        "southboundProtocols": ["ble", "zigbee"],
        "northboundProtocols": ["mqtt"],
        "site": "ward-7"
    })
}

pub fn resource(value: serde_json::Value) -> iotcane_model::Resource {
    iotcane_model::Resource::from_json(value).expect("valid test resource")
}

/// The `iotcane` binary, as an operator runs it.
pub fn iotcane(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iotcane"));
    cmd.env_remove("IOTCANE_DATABASE_URL")
        .env_remove("IOTCANE_DATA_DIR")
        .env_remove("IOTCANE_AUTH")
        .env("IOTCANE_LOG_FORMAT", "json")
        .env("IOTCANE_LOG_LEVEL", "info")
        .current_dir(dir)
        .arg("--data-dir")
        .arg(dir);
    cmd
}

/// Starts `iotcane serve` on a free port; returns the child, its base URL, and what it
/// wrote to standard error up to the serving line.
pub fn serve(dir: &std::path::Path, extra: &[&str]) -> (std::process::Child, String, Vec<String>) {
    serve_command(iotcane(dir), extra)
}

/// Starts `serve` from a prepared [`iotcane`] command (extra environment, say).
pub fn serve_command(
    mut cmd: Command,
    extra: &[&str],
) -> (std::process::Child, String, Vec<String>) {
    let mut child = cmd
        .args([
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--mqtt-listen",
            "127.0.0.1:0",
        ])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("iotcane is serving") {
            let value: Value = serde_json::from_str(&line).unwrap();
            let addr = value["fields"]["http"].as_str().unwrap().to_owned();
            // Keep draining stderr so the server never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return (child, format!("http://{addr}"), seen);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("serve never said it was serving: {seen:?}");
}

pub fn stop(mut child: std::process::Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

/// Milliseconds since the epoch, now (the journal's clock).
pub fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}
