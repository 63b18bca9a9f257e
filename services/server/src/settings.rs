//! Layered settings: built-in defaults, then the settings file, then `IOTCANE_*`
//! environment variables, then command-line flags.

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
}

impl Settings {
    pub fn load(cli: &Cli) -> Result<Settings, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match &cli.config {
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => figment = figment.merge(Toml::file("iotcane.toml")),
        }
        figment = figment
            .merge(Env::prefixed("IOTCANE_").ignore(&["test_postgres_url", "test_mqtt_url"]))
            .merge(Serialized::defaults(Flags {
                data_dir: cli.data_dir.clone(),
                database_url: cli.database_url.clone(),
                log_format: cli.log_format,
                log_level: cli.log_level.clone(),
            }));
        figment.extract().map_err(Box::new)
    }

    /// The journal URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| self.data_dir.join("iotcane.db").display().to_string())
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
        config
    }

    /// The settings with secrets replaced, for display.
    pub fn redacted(&self) -> Settings {
        let mut shown = self.clone();
        shown.database_url = Some(redact_url(&self.database_url()));
        shown
    }
}
