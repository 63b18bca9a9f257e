//! Layered settings: built-in defaults, then the settings file, then `IOTCANE_*`
//! environment variables, then command-line flags.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use iotcane_store::{SqliteDurability, StoreConfig, redact_url};
use serde::{Deserialize, Serialize};

use crate::cli::{Cli, LogFormat};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// `None`: SQLite in the data directory.
    pub database_url: Option<String>,
    pub log_format: LogFormat,
    pub log_level: String,
    /// `full` survives power loss; `normal` survives a process crash only.
    pub sqlite_durability: SqliteDurability,
    pub statement_timeout_ms: u64,
    pub snapshot_every_changes: u64,
    pub snapshot_interval_secs: u64,
    pub tail_interval_ms: u64,
    pub query_timeout_ms: u64,
    pub query_result_limit: usize,
    /// Resources kept decoded in memory for reads (0: none).
    pub resource_cache_entries: usize,
    /// History kept in full, hours; older superseded journal rows are compacted away
    /// (0: keep everything).
    pub journal_retention_hours: u64,
    /// How often one of the replicas compacts the journal, seconds.
    pub journal_compaction_interval_secs: u64,
    /// Where the HTTP gateway listens.
    pub http_addr: String,
    /// `false` switches API keys off (local use only; every request acts as an admin of
    /// `local_tenant`, and `serve` warns on every start).
    pub auth: bool,
    /// The tenant requests act for when `auth` is off, and the first admin key's tenant.
    pub local_tenant: String,
    /// An admin key (`ick_<id>_<secret>`) to create on start if it does not exist, for
    /// deployments that provision keys; without it, a new installation prints one.
    pub bootstrap_admin_key: Option<String>,
    /// Largest accepted request body, bytes.
    pub http_body_limit: usize,
    pub http_request_timeout_ms: u64,
    /// Browser origins allowed by CORS (`["*"]` for any); empty: none.
    pub cors_origins: Vec<String>,
    /// How often expired Thing Descriptions are removed, seconds.
    pub td_expiry_interval_secs: u64,
    /// The largest page a list returns.
    pub max_page: usize,
    /// Context reports kept per device or edge node (older ones are pruned).
    pub context_history: u32,
    /// Run the MQTT gateway.
    pub mqtt: bool,
    /// An external broker, `mqtt://[user:password@]host:port` or `mqtts://…`; unset: the
    /// embedded broker.
    pub mqtt_url: Option<String>,
    /// The embedded broker's address.
    pub mqtt_listen: String,
    pub mqtt_prefix: String,
    /// The gateway's client id: names its persistent session, so it must be stable and
    /// distinct per replica.
    pub mqtt_client_id: String,
    pub mqtt_username: Option<String>,
    pub mqtt_password: Option<String>,
    pub mqtt_ca_file: Option<PathBuf>,
    pub mqtt_client_cert: Option<PathBuf>,
    pub mqtt_client_key: Option<PathBuf>,
    /// Subscribe as `$share/{group}/…`, so that replicas split device traffic.
    pub mqtt_share_group: Option<String>,
    pub mqtt_session_expiry_secs: u64,
    /// Unacknowledged messages the broker may send at once (the gateway's queue).
    pub mqtt_inflight: u16,
    /// The largest payload accepted, bytes.
    pub mqtt_max_payload: usize,
    /// The most messages written in one journal transaction.
    pub mqtt_batch_max: usize,
    /// Publish change events on `{prefix}/{tenant}/events/…`.
    pub mqtt_events: bool,
    /// Also publish an event per live-context report.
    pub mqtt_context_events: bool,
    /// The embedded broker's connection limit.
    pub mqtt_max_connections: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            database_url: None,
            log_format: LogFormat::Pretty,
            log_level: "info".to_owned(),
            sqlite_durability: SqliteDurability::Full,
            statement_timeout_ms: 10_000,
            snapshot_every_changes: 50_000,
            snapshot_interval_secs: 300,
            tail_interval_ms: 500,
            query_timeout_ms: 10_000,
            query_result_limit: 100_000,
            resource_cache_entries: 200_000,
            journal_retention_hours: 30 * 24,
            journal_compaction_interval_secs: 3600,
            http_addr: "127.0.0.1:8080".to_owned(),
            auth: true,
            local_tenant: "default".to_owned(),
            bootstrap_admin_key: None,
            http_body_limit: 1024 * 1024,
            http_request_timeout_ms: 30_000,
            cors_origins: Vec::new(),
            td_expiry_interval_secs: 10,
            max_page: 1000,
            context_history: 100,
            mqtt: true,
            mqtt_url: None,
            mqtt_listen: "127.0.0.1:1883".to_owned(),
            mqtt_prefix: "iotcane".to_owned(),
            mqtt_client_id: "iotcane-gateway".to_owned(),
            mqtt_username: None,
            mqtt_password: None,
            mqtt_ca_file: None,
            mqtt_client_cert: None,
            mqtt_client_key: None,
            mqtt_share_group: None,
            mqtt_session_expiry_secs: 24 * 3600,
            mqtt_inflight: 1000,
            mqtt_max_payload: 256 * 1024,
            mqtt_batch_max: 1000,
            mqtt_events: true,
            mqtt_context_events: false,
            mqtt_max_connections: 100_000,
        }
    }
}

/// The flags that override settings; unset flags leave lower layers alone.
#[derive(Debug, Serialize)]
struct Flags {
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_format: Option<LogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mqtt: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mqtt_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mqtt_listen: Option<String>,
}

/// `IOTCANE_*` variables that are not settings (the test suite's).
const NOT_SETTINGS: &[&str] = &["test_postgres_url", "test_mqtt_url"];

/// The settings whose values are text (names, addresses, URLs, secrets, paths).
const TEXT_SETTINGS: &[&str] = &[
    "data_dir",
    "database_url",
    "log_level",
    "http_addr",
    "local_tenant",
    "bootstrap_admin_key",
    "mqtt_url",
    "mqtt_listen",
    "mqtt_prefix",
    "mqtt_client_id",
    "mqtt_username",
    "mqtt_password",
    "mqtt_ca_file",
    "mqtt_client_cert",
    "mqtt_client_key",
    "mqtt_share_group",
];

impl Settings {
    pub fn load(cli: &Cli) -> Result<Settings, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match &cli.config {
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => figment = figment.merge(Toml::file("iotcane.toml")),
        }
        // Figment reads a variable's value as TOML, so `0042` would become the number 42:
        // settings that are text are taken from the environment verbatim.
        let verbatim: BTreeMap<&str, String> = TEXT_SETTINGS
            .iter()
            .filter_map(|key| {
                let value = std::env::var(format!("IOTCANE_{}", key.to_uppercase())).ok()?;
                Some((*key, value))
            })
            .collect();
        let mut ignored = NOT_SETTINGS.to_vec();
        ignored.extend(TEXT_SETTINGS);
        figment = figment
            .merge(Env::prefixed("IOTCANE_").ignore(&ignored))
            .merge(Serialized::defaults(verbatim))
            .merge(Serialized::defaults(Flags {
                data_dir: cli.data_dir.clone(),
                database_url: cli.database_url.clone(),
                log_format: cli.log_format,
                log_level: cli.log_level.clone(),
                http_addr: cli.http_addr.clone(),
                auth: cli.no_auth.then_some(false),
                mqtt: cli.no_mqtt.then_some(false),
                mqtt_url: cli.mqtt_url.clone(),
                mqtt_listen: cli.mqtt_listen.clone(),
            }));
        figment.extract().map_err(Box::new)
    }

    /// The journal URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| self.data_dir.join("iotcane.db").display().to_string())
    }

    /// The HTTP gateway's settings.
    pub fn http_config(&self) -> Result<iotcane_http::HttpConfig, String> {
        let tenant = self
            .local_tenant
            .parse()
            .map_err(|e| format!("local_tenant: {e}"))?;
        let mut config = iotcane_http::HttpConfig::new(tenant);
        config.auth = self.auth;
        config.body_limit = self.http_body_limit;
        config.request_timeout = Duration::from_millis(self.http_request_timeout_ms);
        config.cors_origins = self.cors_origins.clone();
        config.expiry_interval = Duration::from_secs(self.td_expiry_interval_secs.max(1));
        config.max_page = self.max_page.max(1);
        Ok(config)
    }

    /// The MQTT gateway's settings.
    pub fn mqtt_config(&self) -> Result<iotcane_mqtt::MqttConfig, String> {
        let mut config = iotcane_mqtt::MqttConfig::new();
        config.url = self.mqtt_url.clone().filter(|u| !u.is_empty());
        config.listen = self.mqtt_listen.parse().map_err(|e| {
            format!(
                "mqtt_listen `{}`: {e} (expected HOST:PORT)",
                self.mqtt_listen
            )
        })?;
        if self.mqtt_prefix.is_empty() || self.mqtt_prefix.contains(['+', '#']) {
            return Err("mqtt_prefix must be a non-empty topic without wildcards".to_owned());
        }
        config.prefix = self.mqtt_prefix.trim_end_matches('/').to_owned();
        config.client_id = self.mqtt_client_id.clone();
        config.username = self.mqtt_username.clone();
        config.password = self.mqtt_password.clone().map(iotcane_mqtt::Secret);
        config.ca_file = self.mqtt_ca_file.clone();
        config.client_cert = self.mqtt_client_cert.clone();
        config.client_key = self.mqtt_client_key.clone();
        config.share_group = self.mqtt_share_group.clone().filter(|g| !g.is_empty());
        config.session_expiry = Duration::from_secs(self.mqtt_session_expiry_secs);
        config.inflight = self.mqtt_inflight.max(1);
        config.max_payload = self.mqtt_max_payload.max(1);
        config.batch_max = self.mqtt_batch_max.max(1);
        config.publish_events = self.mqtt_events;
        config.context_events = self.mqtt_context_events;
        config.check_keys = self.auth;
        config.max_connections = self.mqtt_max_connections.max(1);
        Ok(config)
    }

    pub fn store_config(&self) -> StoreConfig {
        let mut config = StoreConfig::new(&self.data_dir);
        config.database_url = self.database_url();
        config.sqlite_durability = self.sqlite_durability;
        config.statement_timeout = Duration::from_millis(self.statement_timeout_ms);
        config.snapshot_every_changes = self.snapshot_every_changes;
        config.snapshot_interval = Duration::from_secs(self.snapshot_interval_secs);
        config.tail_interval = Duration::from_millis(self.tail_interval_ms);
        config.query_timeout = Duration::from_millis(self.query_timeout_ms);
        config.query_result_limit = self.query_result_limit;
        config.context_history = self.context_history.max(1);
        config.resource_cache_entries = self.resource_cache_entries;
        config.journal_retention = (self.journal_retention_hours > 0)
            .then(|| Duration::from_secs(self.journal_retention_hours.saturating_mul(3600)));
        config.compaction_interval =
            Duration::from_secs(self.journal_compaction_interval_secs.max(1));
        config
    }

    /// The settings with secrets replaced, for display.
    pub fn redacted(&self) -> Settings {
        let mut shown = self.clone();
        shown.database_url = Some(redact_url(&self.database_url()));
        if shown.bootstrap_admin_key.is_some() {
            shown.bootstrap_admin_key = Some("***".to_owned());
        }
        if shown.mqtt_password.is_some() {
            shown.mqtt_password = Some("***".to_owned());
        }
        shown.mqtt_url = self.mqtt_url.as_deref().map(redact_url);
        shown
    }
}
