//! The command line. Every setting flag has an `IOTCANE_*` environment equivalent read
//! through the layered settings (see `settings`), not through clap, so one precedence
//! rule applies to all of them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "iotcane",
    version,
    about = "IoT-CANE: configuration knowledge for IoT application systems"
)]
pub struct Cli {
    /// Settings file (default: ./iotcane.toml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory: the SQLite journal (by default) and graph snapshots. [IOTCANE_DATA_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Journal database: postgres://… or a SQLite file (default: DATA_DIR/iotcane.db). [IOTCANE_DATABASE_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Log format. [IOTCANE_LOG_FORMAT]
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// HTTP listen address (default 127.0.0.1:8080). [IOTCANE_HTTP_ADDR]
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub http_addr: Option<String>,
    /// Switch API keys off: every request acts as an admin of the local tenant. For local use only. [IOTCANE_AUTH=false]
    #[arg(long, global = true)]
    pub no_auth: bool,
    /// Do not run the MQTT gateway (nor the embedded broker). [IOTCANE_MQTT=false]
    #[arg(long, global = true)]
    pub no_mqtt: bool,
    /// An external MQTT broker, mqtt://[user:password@]host:port or mqtts://…; unset: the embedded broker. [IOTCANE_MQTT_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub mqtt_url: Option<String>,
    /// The embedded MQTT broker's address (default 127.0.0.1:1883). [IOTCANE_MQTT_LISTEN]
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub mqtt_listen: Option<String>,
    /// Log filter, e.g. info or iotcane_store=debug. [IOTCANE_LOG_LEVEL]
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Import knowledge files (native JSON, NDJSON, JSON-LD, Turtle, N-Triples, N-Quads, Thing Descriptions).
    Import(ImportArgs),
    /// Export the knowledge graph.
    Export(ExportArgs),
    /// Validate knowledge files without storing anything.
    Check(CheckArgs),
    /// Print the effective configuration, secrets hidden.
    Config,
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Inspect the messages the MQTT gateway refused.
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
    /// Compact the journal now: remove rows older than the retention that later versions replaced.
    Compact(CompactArgs),
    /// Recommend configurations for an application context (JSON or RDF) from the local store.
    Recommend(RecommendArgs),
    /// Measure the recommender: example scenarios, generated instances against brute force and the exact optimum, case retrieval, latency.
    Eval(EvalArgs),
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// History kept in full, hours (default: the `journal_retention_hours` setting).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub retention_hours: Option<u64>,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RecommendArgs {
    /// The context file: JSON (schema/json-schema/context.schema.json), or the same in RDF
    /// by extension (.jsonld with the application context, .ttl, .nt).
    pub context: PathBuf,
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// Print the whole answer as JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// List a tenant's dead letters, newest first.
    List {
        #[arg(long, default_value = "default")]
        tenant: String,
        /// How many to show.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
        /// Only those with an id below this one (to page back).
        #[arg(long)]
        before: Option<i64>,
        /// Print one JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once.
    Create {
        /// Tenant the key belongs to.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// read, write or admin.
        #[arg(long, default_value = "read")]
        role: String,
        /// A name to recognise the key by.
        #[arg(long)]
        name: String,
    },
    /// List keys (of one tenant, or all), without secrets.
    List {
        #[arg(long)]
        tenant: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by its id.
    Revoke {
        #[arg(long, default_value = "default")]
        tenant: String,
        key_id: String,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Files to import; the format follows the extension (.json .ndjson .jsonld .ttl .nt .nq).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Tenant the knowledge belongs to.
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// Resources per journal transaction.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,
    /// Who is importing, recorded in the journal.
    #[arg(long, default_value = "cli")]
    pub actor: String,
    /// Print one JSON line per committed batch and a JSON summary, instead of a progress bar.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "nquads")]
    pub format: ExportFormat,
    /// Only this tenant's knowledge (default: every tenant; needs a dataset format to keep them apart).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Write here instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Nquads,
    Trig,
    Turtle,
    Ntriples,
    Jsonld,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The seed knowledge (*.ttl) and its scenarios/ folder.
    #[arg(long, value_name = "DIR", default_value = "schema/examples")]
    pub examples: PathBuf,
    /// Small generated instances, each checked against brute force.
    #[arg(long, default_value_t = 200)]
    pub instances: usize,
    /// Large generated instances, the heuristic against the exact optimum.
    #[arg(long, default_value_t = 30)]
    pub large: usize,
    /// Node budget of the heuristic's branch and bound on large instances.
    #[arg(long, default_value_t = 20_000)]
    pub node_budget: u64,
    /// Node budget of the exact reference run on large instances.
    #[arg(long, default_value_t = 20_000_000)]
    pub reference_budget: u64,
    /// Synthetic cases for retrieval precision.
    #[arg(long, default_value_t = 2_000)]
    pub cases: usize,
    /// Seed of every generated instance and case.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}
