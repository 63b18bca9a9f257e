use iotcane_model::{ResourceId, Tenant};

/// What can go wrong in the knowledge store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("resource {id} not found in tenant {tenant}")]
    NotFound { tenant: Tenant, id: ResourceId },
    #[error("resource {id} already exists in tenant {tenant} (version {version})")]
    AlreadyExists {
        tenant: Tenant,
        id: ResourceId,
        version: i64,
    },
    #[error("resource {id} is at version {actual}, not the expected version {expected}")]
    VersionMismatch {
        id: ResourceId,
        expected: i64,
        actual: i64,
    },
    #[error("{0} was not written: another change of the same all-or-nothing batch was refused")]
    Aborted(ResourceId),
    #[error("{id} is a {kind}; only devices and edge nodes have a live context")]
    NoLiveContext { id: ResourceId, kind: String },
    #[error("the journal write this change was grouped with failed: {0}")]
    GroupWrite(String),
    #[error("journal database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("journal migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("graph storage error: {0}")]
    Graph(#[from] oxigraph::store::StorageError),
    #[error("SPARQL syntax error: {0}")]
    QuerySyntax(String),
    #[error("SPARQL evaluation failed: {0}")]
    QueryEvaluation(String),
    #[error("the query ran longer than the {0} ms limit")]
    QueryTimeout(u64),
    #[error("the query returned more than the {0} results allowed; add a LIMIT")]
    ResultLimit(usize),
    #[error("the update is refused: {0}")]
    UpdateRefused(String),
    #[error("SERVICE calls to other endpoints are refused")]
    ServiceRefused,
    #[error("data directory: {0}")]
    DataDir(String),
    #[error("snapshot error: {0}")]
    Snapshot(String),
    #[error("export failed: {0}")]
    Export(String),
    #[error("journal is inconsistent: {0}")]
    Corrupt(String),
    #[error(
        "this graph is at journal position {applied}, but compaction removed deletions up to \
         position {removed_through} that it had not applied; restart to rebuild it from the journal"
    )]
    BehindCompaction { applied: i64, removed_through: i64 },
    #[error(
        "history before {history_from} was compacted away (journal retention); asked for {asked}"
    )]
    HistoryCompacted { asked: String, history_from: String },
}
