//! The journal-first knowledge store.
//!
//! Every accepted change is appended to the journal (SQLite or PostgreSQL, through sqlx)
//! inside a transaction, and only then applied to the in-memory oxigraph graph and
//! acknowledged. On open, the graph is rebuilt from the newest snapshot plus the journal
//! tail. A background task tails the journal (rows written by other processes sharing
//! the database) and writes snapshots every N changes or T seconds.
//!
//! [`KnowledgeStore`] is a cheap `Clone` handle over shared state.

mod error;
mod graph;
mod journal;
mod keys;
mod query;
mod recommendations;
mod rewrite;
mod snapshot;
mod update;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use iotcane_model::{Kind, LiveContext, Resource, ResourceId, Tenant};
use oxigraph::io::{RdfFormat, RdfSerializer};
use oxigraph::model::Quad;
use tokio::sync::{Mutex, broadcast};
use tokio_util::sync::CancellationToken;

pub use error::StoreError;
pub use graph::{Meta, decode_body, format_time_ms, parse_time_ms};
pub use journal::{
    Compacted, CompactionState, DeadLetter, JournalEntry, NewDeadLetter, SqliteDurability,
};
pub use keys::KeyRecord;
pub use query::{
    After, Cmp, Condition, Filter, Find, Found, GRAPH_MEDIA_TYPES, Near, Order, QueryOutput,
    SOLUTION_MEDIA_TYPES, SortKey,
};
pub use recommendations::RecommendationRecord;
pub use snapshot::SnapshotFile;

use graph::Graph;
use journal::{Journal, NewEntry, Refusal};

/// Compacts the journal `config` names without building a graph (for `iotcane compact`,
/// which may run beside the replicas): see [`KnowledgeStore::compact`].
pub async fn compact_journal(
    config: &StoreConfig,
    before_ms: i64,
) -> Result<(Compacted, CompactionState), StoreError> {
    let journal = Journal::connect(
        &config.database_url,
        config.sqlite_durability,
        config.statement_timeout,
    )
    .await?;
    let compacted = journal.compact(before_ms, COMPACTION_BATCH).await;
    let state = journal.compaction_state().await;
    journal.close().await;
    Ok((compacted?, state?))
}

/// Journal rows per compaction transaction.
const COMPACTION_BATCH: i64 = 10_000;

/// Where a change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeSource {
    Http,
    Mqtt,
    Cli,
}

impl ChangeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeSource::Http => "http",
            ChangeSource::Mqtt => "mqtt",
            ChangeSource::Cli => "cli",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "http" => Some(Self::Http),
            "mqtt" => Some(Self::Mqtt),
            "cli" => Some(Self::Cli),
            _ => None,
        }
    }
}

/// What a journal row did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Create,
    Update,
    Delete,
    /// A live-context report: the resource's live state changed, its description did not.
    Context,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Context => "context",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "create" => Some(Self::Create),
            "update" => Some(Self::Update),
            "delete" => Some(Self::Delete),
            "context" => Some(Self::Context),
            _ => None,
        }
    }
}

/// Settings of the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `postgres://…` or a SQLite URL / file path.
    pub database_url: String,
    /// Where snapshots are kept.
    pub data_dir: PathBuf,
    pub sqlite_durability: SqliteDurability,
    /// Per-statement timeout (PostgreSQL) and busy timeout (SQLite).
    pub statement_timeout: Duration,
    /// Snapshot after this many changes...
    pub snapshot_every_changes: u64,
    /// ...or after this long with at least one change.
    pub snapshot_interval: Duration,
    /// How often the journal is polled for rows of other processes.
    pub tail_interval: Duration,
    pub query_timeout: Duration,
    pub query_result_limit: usize,
    /// Context reports kept per device or edge node; older ones are pruned.
    pub context_history: u32,
    /// How often old context reports are pruned.
    pub context_prune_interval: Duration,
    /// Resources kept decoded in memory for [`KnowledgeStore::get`] (0: none).
    pub resource_cache_entries: usize,
    /// History kept in full; older superseded rows are compacted away (`None`: keep all).
    pub journal_retention: Option<Duration>,
    /// How often one of the replicas compacts the journal.
    pub compaction_interval: Duration,
}

impl StoreConfig {
    /// Defaults for a store in `data_dir` with SQLite.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            database_url: data_dir.join("iotcane.db").display().to_string(),
            data_dir,
            sqlite_durability: SqliteDurability::Full,
            statement_timeout: Duration::from_secs(10),
            snapshot_every_changes: 50_000,
            snapshot_interval: Duration::from_secs(300),
            tail_interval: Duration::from_millis(500),
            query_timeout: Duration::from_secs(10),
            query_result_limit: 100_000,
            context_history: 100,
            context_prune_interval: Duration::from_secs(60),
            resource_cache_entries: 200_000,
            journal_retention: Some(Duration::from_secs(30 * 24 * 3600)),
            compaction_interval: Duration::from_secs(3600),
        }
    }
}

/// One change to write.
#[derive(Debug, Clone)]
pub enum Change {
    /// Create or replace a resource.
    Put {
        tenant: Tenant,
        resource: Box<Resource>,
        /// Only if the current version is this (0: only if it does not exist).
        expected_version: Option<i64>,
        /// Refuse to replace an existing resource.
        create_only: bool,
    },
    Delete {
        tenant: Tenant,
        id: ResourceId,
        expected_version: Option<i64>,
    },
    /// Replace the live context of an existing device or edge node; its description and
    /// version stay as they are.
    Context {
        tenant: Tenant,
        id: ResourceId,
        live: Box<LiveContext>,
    },
}

impl Change {
    /// Create or replace, unconditionally.
    pub fn put(tenant: Tenant, resource: Resource) -> Self {
        Change::Put {
            tenant,
            resource: Box::new(resource),
            expected_version: None,
            create_only: false,
        }
    }

    fn target(&self) -> (&Tenant, &ResourceId) {
        match self {
            Change::Put {
                tenant, resource, ..
            } => (tenant, &resource.id),
            Change::Delete { tenant, id, .. } | Change::Context { tenant, id, .. } => (tenant, id),
        }
    }
}

/// An accepted change, as acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub tenant: Tenant,
    pub id: ResourceId,
    pub op: Op,
    pub version: i64,
    pub seq: i64,
}

/// A resource as stored: the description and its version metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub resource: Resource,
    pub meta: Meta,
}

#[derive(Clone, Debug)]
pub struct KnowledgeStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    journal: Journal,
    graph: Graph,
    config: StoreConfig,
    journal_id: String,
    /// Serializes appends and graph application, so the graph follows journal order.
    writer: Mutex<()>,
    /// Writes waiting for the next group commit.
    pending: std::sync::Mutex<Vec<PendingWrite>>,
    applied_seq: AtomicI64,
    changes_since_snapshot: AtomicU64,
    events: broadcast::Sender<Arc<JournalEntry>>,
    /// The same, for the rows this process wrote (not those its tailer picked up).
    local_events: broadcast::Sender<Arc<JournalEntry>>,
    /// Decoded resources by tenant and id, so reads skip rebuilding them from quads.
    cache: ResourceCache,
    /// The compaction epoch this graph is known to be consistent with.
    compaction_epoch: AtomicI64,
    /// Set once compaction removed a deletion this graph had not applied.
    stale: std::sync::atomic::AtomicBool,
}

/// Decoded resources, dropped whenever the graph changes them.
///
/// A read that raced a change must not put back what it read: a reader notes the
/// generation before reading the graph and inserts only if no change was applied since;
/// the writer bumps the generation and drops the entries under the same lock.
struct ResourceCache {
    entries: Option<quick_cache::sync::Cache<(Tenant, ResourceId), Arc<Stored>>>,
    generation: std::sync::Mutex<u64>,
}

impl std::fmt::Debug for ResourceCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceCache").finish_non_exhaustive()
    }
}

impl ResourceCache {
    fn new(capacity: usize) -> Self {
        Self {
            entries: (capacity > 0).then(|| quick_cache::sync::Cache::new(capacity)),
            generation: std::sync::Mutex::new(0),
        }
    }

    fn generation(&self) -> u64 {
        *self
            .generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, tenant: &Tenant, id: &ResourceId) -> Option<Arc<Stored>> {
        self.entries.as_ref()?.get(&(tenant.clone(), id.clone()))
    }

    fn insert_if_unchanged(&self, read_at: u64, tenant: &Tenant, id: &ResourceId, stored: Stored) {
        let Some(entries) = &self.entries else {
            return;
        };
        let generation = self
            .generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *generation == read_at {
            entries.insert((tenant.clone(), id.clone()), Arc::new(stored));
        }
    }

    fn invalidate(&self, entries: &[JournalEntry]) {
        let Some(cache) = &self.entries else {
            return;
        };
        let mut generation = self
            .generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *generation += 1;
        for entry in entries {
            if let (Ok(tenant), Ok(id)) = (
                entry.tenant.parse::<Tenant>(),
                entry.resource_id.parse::<ResourceId>(),
            ) {
                cache.remove(&(tenant, id));
            }
        }
    }
}

const TAIL_BATCH: i64 = 10_000;

/// Which journal rows a catch-up reads.
#[derive(Debug, Clone, Copy)]
enum Rows {
    /// Every row: what a running replica applies, each one announced.
    Tail,
    /// Without superseded context reports: for rebuilding a graph on open.
    Replay,
}

/// A write waiting for the group commit, and where its answer goes.
#[derive(Debug)]
struct PendingWrite {
    entries: Vec<NewEntry>,
    changes: Vec<Change>,
    all_or_nothing: bool,
    reply: tokio::sync::oneshot::Sender<Result<Vec<Result<Written, StoreError>>, StoreError>>,
}

impl KnowledgeStore {
    /// Connects to the journal, applies migrations, and rebuilds the graph from the newest
    /// snapshot plus the journal tail.
    #[tracing::instrument(skip_all, fields(journal = %redact_url(&config.database_url)))]
    pub async fn open(config: StoreConfig) -> Result<Self, StoreError> {
        let started = Instant::now();
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            StoreError::DataDir(format!("cannot create {}: {e}", config.data_dir.display()))
        })?;
        let journal = Journal::connect(
            &config.database_url,
            config.sqlite_durability,
            config.statement_timeout,
        )
        .await?;
        let journal_id = journal.journal_id().await?;
        let snapshot_dir = config.data_dir.join("snapshots");
        let mut use_snapshot = true;
        // A compaction that removes deletions while the graph is read makes the read
        // useless; it is tried again from the compacted journal.
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let compaction = journal.compaction_state().await?;
            let graph = Graph::new()?;
            let mut applied = 0;
            let snapshot = match snapshot::newest(&snapshot_dir, &journal_id)? {
                Some(file) if file.seq < compaction.tombstones_through_seq => {
                    tracing::warn!(
                        seq = file.seq,
                        removed_through = compaction.tombstones_through_seq,
                        "the newest snapshot predates deletions compaction removed; \
                         rebuilding from the journal"
                    );
                    None
                }
                file if use_snapshot => file,
                _ => None,
            };
            if let Some(file) = snapshot {
                let g = graph.clone();
                let path = file.path.clone();
                tokio::task::spawn_blocking(move || g.load_snapshot(&path))
                    .await
                    .map_err(|e| StoreError::Snapshot(e.to_string()))??;
                applied = file.seq;
                tracing::info!(seq = file.seq, path = %file.path.display(), "snapshot loaded");
            }
            let (events, _) = broadcast::channel(4096);
            let (local_events, _) = broadcast::channel(4096);
            let cache = ResourceCache::new(config.resource_cache_entries);
            let store = KnowledgeStore {
                inner: Arc::new(Inner {
                    journal: journal.clone(),
                    graph,
                    config: config.clone(),
                    journal_id: journal_id.clone(),
                    writer: Mutex::new(()),
                    pending: std::sync::Mutex::default(),
                    applied_seq: AtomicI64::new(applied),
                    changes_since_snapshot: AtomicU64::new(0),
                    events,
                    local_events,
                    cache,
                    compaction_epoch: AtomicI64::new(compaction.epoch),
                    stale: AtomicBool::new(false),
                }),
            };
            let replayed = {
                let _writer = store.inner.writer.lock().await;
                store.catch_up_to(i64::MAX, Rows::Replay).await
            };
            let replayed = match replayed {
                Err(e @ StoreError::BehindCompaction { .. }) if attempt < ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "rebuilding the graph again");
                    use_snapshot = false;
                    continue;
                }
                other => other?,
            };
            store
                .inner
                .changes_since_snapshot
                .store(replayed as u64, Ordering::Relaxed);
            tracing::info!(
                replayed,
                seq = store.applied_seq(),
                tenants = store.tenants()?.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "knowledge graph ready"
            );
            return Ok(store);
        }
        unreachable!("the last attempt returns")
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// `sqlite` or `postgres`.
    pub fn dialect(&self) -> &'static str {
        self.inner.journal.dialect()
    }

    /// The last journal position applied to the graph.
    pub fn applied_seq(&self) -> i64 {
        self.inner.applied_seq.load(Ordering::Acquire)
    }

    /// The last position committed to the journal (by any process).
    pub async fn journal_head(&self) -> Result<i64, StoreError> {
        self.inner.journal.head().await
    }

    /// Every applied change, as it is applied (for event streams).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<JournalEntry>> {
        self.inner.events.subscribe()
    }

    /// Like [`Self::subscribe`], but only the rows this process wrote: what a replica
    /// announces to the outside, so that N replicas do not announce a change N times.
    pub fn subscribe_local(&self) -> broadcast::Receiver<Arc<JournalEntry>> {
        self.inner.local_events.subscribe()
    }

    /// Writes a batch of changes in one journal transaction. Returns one result per
    /// change: refused changes (version conflicts, missing resources) leave the rest of
    /// the batch standing. The accepted ones are durable and in the graph on return.
    ///
    /// Group commit: batches written concurrently share one journal transaction (one
    /// sync), each still getting its own results. The commit runs in its own task, so a
    /// caller that goes away mid-write cannot leave the others without an answer.
    #[tracing::instrument(skip_all, fields(changes = changes.len(), actor, source = source.as_str()))]
    pub async fn write(
        &self,
        changes: Vec<Change>,
        actor: &str,
        source: ChangeSource,
    ) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        self.write_batch(changes, actor, source, false).await
    }

    /// Writes a batch of changes all or nothing: if any change is refused, none is
    /// written, the refusals are returned and the other changes come back
    /// [`StoreError::Aborted`].
    pub async fn write_all_or_nothing(
        &self,
        changes: Vec<Change>,
        actor: &str,
        source: ChangeSource,
    ) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        self.write_batch(changes, actor, source, true).await
    }

    async fn write_batch(
        &self,
        changes: Vec<Change>,
        actor: &str,
        source: ChangeSource,
        all_or_nothing: bool,
    ) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        let actor: Arc<str> = Arc::from(actor);
        let mut entries = Vec::with_capacity(changes.len());
        for change in &changes {
            entries.push(match change {
                Change::Put {
                    tenant,
                    resource,
                    expected_version,
                    create_only,
                } => NewEntry {
                    tenant: tenant.to_string(),
                    resource_id: resource.id.to_string(),
                    kind: resource.kind().as_str().to_owned(),
                    op: Op::Update,
                    body: Some(resource.to_json().to_string()),
                    expected_version: *expected_version,
                    create_only: *create_only,
                    must_exist: false,
                    actor: actor.clone(),
                    source,
                },
                Change::Delete {
                    tenant,
                    id,
                    expected_version,
                } => NewEntry {
                    tenant: tenant.to_string(),
                    resource_id: id.to_string(),
                    kind: String::new(),
                    op: Op::Delete,
                    body: None,
                    expected_version: *expected_version,
                    create_only: false,
                    must_exist: true,
                    actor: actor.clone(),
                    source,
                },
                Change::Context { tenant, id, live } => NewEntry {
                    tenant: tenant.to_string(),
                    resource_id: id.to_string(),
                    kind: String::new(),
                    op: Op::Context,
                    body: Some(serde_json::to_string(live).map_err(|e| {
                        StoreError::Corrupt(format!("live context of {id} as JSON: {e}"))
                    })?),
                    expected_version: None,
                    create_only: false,
                    must_exist: true,
                    actor: actor.clone(),
                    source,
                },
            });
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.inner
            .pending
            .lock()
            .map_err(|_| StoreError::Corrupt("write queue lock poisoned".to_owned()))?
            .push(PendingWrite {
                entries,
                changes,
                all_or_nothing,
                reply,
            });
        let store = self.clone();
        tokio::spawn(async move {
            let _writer = store.inner.writer.lock().await;
            let group = match store.inner.pending.lock() {
                Ok(mut pending) => std::mem::take(&mut *pending),
                Err(_) => return,
            };
            // Empty when an earlier group took this write along. Ordinary writes share a
            // transaction; an all-or-nothing batch gets its own, so its refusal cannot
            // undo the others.
            let mut shared = Vec::new();
            for write in group {
                if write.all_or_nothing {
                    if !shared.is_empty() {
                        store.commit_group(std::mem::take(&mut shared), false).await;
                    }
                    store.commit_group(vec![write], true).await;
                } else {
                    shared.push(write);
                }
            }
            if !shared.is_empty() {
                store.commit_group(shared, false).await;
            }
        });
        answer
            .await
            .map_err(|_| StoreError::Corrupt("the write task ended without an answer".to_owned()))?
    }

    /// Appends a group of writes in one journal transaction, applies the accepted rows to
    /// the graph, and answers each write (the writer lock is held by the caller).
    async fn commit_group(&self, group: Vec<PendingWrite>, all_or_nothing: bool) {
        let sizes: Vec<usize> = group.iter().map(|w| w.entries.len()).collect();
        let mut entries = Vec::with_capacity(sizes.iter().sum());
        let mut changes = Vec::with_capacity(entries.capacity());
        let mut replies = Vec::with_capacity(group.len());
        for write in group {
            entries.extend(write.entries);
            changes.extend(write.changes);
            replies.push(write.reply);
        }
        let outcome = self
            .append_and_apply(&entries, changes, all_or_nothing)
            .await;
        let mut results = match outcome {
            Ok(results) => results.into_iter(),
            Err(e) => {
                // The first write gets the error itself; the others its description.
                let message = e.to_string();
                let mut replies = replies.into_iter();
                if let Some(first) = replies.next() {
                    let _ = first.send(Err(e));
                }
                for reply in replies {
                    let _ = reply.send(Err(StoreError::GroupWrite(message.clone())));
                }
                return;
            }
        };
        for (reply, size) in replies.into_iter().zip(sizes) {
            // A writer that went away does not need its answer.
            let _ = reply.send(Ok(results.by_ref().take(size).collect()));
        }
    }

    async fn append_and_apply(
        &self,
        entries: &[NewEntry],
        changes: Vec<Change>,
        all_or_nothing: bool,
    ) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        if self.is_stale() {
            // Its graph cannot show the change; nothing is written, so a retry elsewhere
            // (or after the restart) is safe.
            return Err(self.behind(self.applied_seq(), None).await);
        }
        let outcomes = self
            .inner
            .journal
            .append(entries, now_ms(), all_or_nothing)
            .await?;
        // The accepted rows, with the resources in hand so the graph need not decode
        // their JSON again.
        let targets: Vec<(Tenant, ResourceId)> = changes
            .iter()
            .map(|c| {
                let (tenant, id) = c.target();
                (tenant.clone(), id.clone())
            })
            .collect();
        let (accepted, known): (Vec<JournalEntry>, Vec<Option<Resource>>) = outcomes
            .iter()
            .zip(changes)
            .filter_map(|(outcome, change)| {
                let entry = outcome.as_ref().ok()?.clone();
                let resource = match change {
                    Change::Put { resource, .. } => Some(*resource),
                    Change::Delete { .. } | Change::Context { .. } => None,
                };
                Some((entry, resource))
            })
            .unzip();
        if let Some(first) = accepted.first() {
            match self.catch_up_to(first.seq - 1, Rows::Tail).await {
                Ok(_) => self.apply(accepted, known, true).await?,
                // The rows are committed: answer them as written, and let the failing
                // health checks have the replica rebuilt.
                Err(e @ StoreError::BehindCompaction { .. }) => {
                    tracing::error!(error = %e, "written, but this replica's graph is stale");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(outcomes
            .into_iter()
            .zip(&targets)
            .map(|(outcome, (tenant, id))| match outcome {
                Ok(entry) => Ok(Written {
                    tenant: tenant.clone(),
                    id: id.clone(),
                    op: entry.op,
                    version: entry.version,
                    seq: entry.seq,
                }),
                Err(Refusal::Aborted) => Err(StoreError::Aborted(id.clone())),
                Err(Refusal::NoLiveContext { kind }) => Err(StoreError::NoLiveContext {
                    id: id.clone(),
                    kind,
                }),
                Err(Refusal::NotFound) => Err(StoreError::NotFound {
                    tenant: tenant.clone(),
                    id: id.clone(),
                }),
                Err(Refusal::AlreadyExists { version }) => Err(StoreError::AlreadyExists {
                    tenant: tenant.clone(),
                    id: id.clone(),
                    version,
                }),
                Err(Refusal::VersionMismatch { expected, actual }) => {
                    Err(StoreError::VersionMismatch {
                        id: id.clone(),
                        expected,
                        actual,
                    })
                }
            })
            .collect())
    }

    /// Writes one change; a refusal is the error.
    pub async fn write_one(
        &self,
        change: Change,
        actor: &str,
        source: ChangeSource,
    ) -> Result<Written, StoreError> {
        self.write(vec![change], actor, source)
            .await?
            .pop()
            .unwrap_or(Err(StoreError::Corrupt("empty write result".to_owned())))
    }

    /// Applies journal rows to the graph (the writer lock is held by the caller). `known`
    /// is empty, or holds for each row the resource its body describes; `local`: the rows
    /// were written by this process.
    async fn apply(
        &self,
        entries: Vec<JournalEntry>,
        known: Vec<Option<Resource>>,
        local: bool,
    ) -> Result<(), StoreError> {
        let Some(last) = entries.last().map(|e| e.seq) else {
            return Ok(());
        };
        let graph = self.inner.graph.clone();
        let entries =
            tokio::task::spawn_blocking(move || graph.apply(&entries, known).map(|()| entries))
                .await
                .map_err(|e| StoreError::Corrupt(format!("graph task failed: {e}")))??;
        self.inner.cache.invalidate(&entries);
        self.inner.applied_seq.store(last, Ordering::Release);
        self.inner
            .changes_since_snapshot
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        for entry in entries {
            // No subscriber is not an error.
            let entry = Arc::new(entry);
            if local {
                let _ = self.inner.local_events.send(entry.clone());
            }
            let _ = self.inner.events.send(entry);
        }
        Ok(())
    }

    /// Applies every journal row not yet in the graph (rows of other processes).
    /// Returns how many were applied.
    pub async fn catch_up(&self) -> Result<usize, StoreError> {
        let _writer = self.inner.writer.lock().await;
        self.catch_up_to(i64::MAX, Rows::Tail).await
    }

    async fn catch_up_to(&self, up_to: i64, rows: Rows) -> Result<usize, StoreError> {
        let mut applied = 0;
        loop {
            let after = self.applied_seq();
            if after >= up_to {
                return Ok(applied);
            }
            let batch = match rows {
                Rows::Tail => self.inner.journal.tail(after, TAIL_BATCH).await?,
                Rows::Replay => self.inner.journal.replay(after, TAIL_BATCH).await?,
            };
            if batch.is_empty() {
                self.skip_removed_rows(after, up_to, rows).await?;
                return Ok(applied);
            }
            let contiguous = batch
                .iter()
                .zip(after + 1..)
                .all(|(row, expected)| row.seq == expected);
            if !contiguous {
                self.check_compaction(after).await?;
            }
            let batch: Vec<JournalEntry> = batch.into_iter().filter(|r| r.seq <= up_to).collect();
            if batch.is_empty() {
                // Rows up to `up_to` were removed; the graph is there already.
                self.inner.applied_seq.store(up_to, Ordering::Release);
                return Ok(applied);
            }
            applied += batch.len();
            self.apply(batch, Vec::new(), false).await?;
        }
    }

    /// Nothing follows `after`, yet the journal head may be past it: the rows between were
    /// removed (compaction, pruning). The graph is then at the head, and says so, so that
    /// its snapshots count as that recent.
    async fn skip_removed_rows(
        &self,
        after: i64,
        up_to: i64,
        rows: Rows,
    ) -> Result<(), StoreError> {
        // The head first: every row up to it was committed before the read that follows.
        let head = self.inner.journal.head().await?.min(up_to);
        if head <= after {
            return Ok(());
        }
        let next = match rows {
            Rows::Tail => self.inner.journal.tail(after, 1).await?,
            Rows::Replay => self.inner.journal.replay(after, 1).await?,
        };
        if next.is_empty() {
            self.check_compaction(after).await?;
            self.inner.applied_seq.store(head, Ordering::Release);
        }
        Ok(())
    }

    /// Called when rows after `after` are missing: fine unless compaction removed, since
    /// this graph's last check, a deletion after `after` (which the graph then never sees).
    async fn check_compaction(&self, after: i64) -> Result<(), StoreError> {
        if self.inner.stale.load(Ordering::Acquire) {
            return Err(self.behind(after, None).await);
        }
        let state = self.inner.journal.compaction_state().await?;
        if state.epoch == self.inner.compaction_epoch.load(Ordering::Acquire) {
            return Ok(());
        }
        if state.tombstones_through_seq > after {
            self.inner.stale.store(true, Ordering::Release);
            return Err(self.behind(after, Some(state)).await);
        }
        self.inner
            .compaction_epoch
            .store(state.epoch, Ordering::Release);
        Ok(())
    }

    async fn behind(&self, applied: i64, state: Option<CompactionState>) -> StoreError {
        let state = match state {
            Some(state) => state,
            None => self
                .inner
                .journal
                .compaction_state()
                .await
                .unwrap_or_default(),
        };
        StoreError::BehindCompaction {
            applied,
            removed_through: state.tombstones_through_seq,
        }
    }

    /// Whether compaction removed deletions this graph never applied: it must be rebuilt
    /// (restarted), and readiness and liveness say so.
    pub fn is_stale(&self) -> bool {
        self.inner.stale.load(Ordering::Acquire)
    }

    /// The current description of a resource, read from the graph.
    pub fn get(&self, tenant: &Tenant, id: &ResourceId) -> Result<Option<Stored>, StoreError> {
        if let Some(stored) = self.inner.cache.get(tenant, id) {
            return Ok(Some(Stored::clone(&stored)));
        }
        let read_at = self.inner.cache.generation();
        let stored = self.read_from_graph(tenant, id)?;
        if let Some(stored) = &stored {
            self.inner
                .cache
                .insert_if_unchanged(read_at, tenant, id, stored.clone());
        }
        Ok(stored)
    }

    fn read_from_graph(
        &self,
        tenant: &Tenant,
        id: &ResourceId,
    ) -> Result<Option<Stored>, StoreError> {
        let quads = self.inner.graph.quads_of(tenant, id)?;
        if quads.is_empty() {
            return Ok(None);
        }
        let graph_iri = tenant.graph_of(id);
        let meta = graph::meta_of(&graph_iri, &quads)
            .ok_or_else(|| StoreError::Corrupt(format!("graph {graph_iri} has no metadata")))?;
        let mut g = oxigraph::model::Graph::new();
        for q in &quads {
            g.insert(q.as_ref());
        }
        let iri = id.iri();
        let resource = iotcane_model::rdf::read_resource(&g, iri.as_ref().into())
            .map_err(|e| StoreError::Corrupt(format!("resource {id} in the graph: {e}")))?;
        Ok(Some(Stored { resource, meta }))
    }

    /// Every version of a resource, oldest first, from the journal.
    pub async fn history(
        &self,
        tenant: &Tenant,
        id: &ResourceId,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        self.inner
            .journal
            .history(tenant.as_str(), id.as_str())
            .await
    }

    /// What a resource looked like at `at_ms` (`None`: it did not exist, or was deleted).
    pub async fn as_of(
        &self,
        tenant: &Tenant,
        id: &ResourceId,
        at_ms: i64,
    ) -> Result<Option<(JournalEntry, Resource)>, StoreError> {
        let entry = self
            .inner
            .journal
            .as_of(tenant.as_str(), id.as_str(), at_ms)
            .await?;
        // Read after the row: compaction marks where history starts before it removes any.
        let history_from_ms = self.inner.journal.compaction_state().await?.history_from_ms;
        if at_ms < history_from_ms {
            return Err(StoreError::HistoryCompacted {
                asked: format_time_ms(at_ms),
                history_from: format_time_ms(history_from_ms),
            });
        }
        let Some(entry) = entry else {
            return Ok(None);
        };
        match &entry.body {
            Some(body) => {
                let resource = decode_body(entry.seq, body)?;
                Ok(Some((entry, resource)))
            }
            None => Ok(None),
        }
    }

    /// A tenant's resources in id order, optionally of one kind, after a cursor.
    pub fn list(
        &self,
        tenant: &Tenant,
        kind: Option<Kind>,
        after: Option<&ResourceId>,
        limit: usize,
    ) -> Result<Vec<(ResourceId, Kind)>, StoreError> {
        self.inner.graph.list(tenant, kind, after, limit)
    }

    pub fn count(&self, tenant: &Tenant, kind: Option<Kind>) -> Result<usize, StoreError> {
        self.inner.graph.count(tenant, kind)
    }

    /// Every literal object of `predicate`, in every tenant, that `keep` accepts, with the
    /// resource whose graph holds it. A scan of one predicate's index; blocking.
    pub fn scan_literals(
        &self,
        predicate: oxigraph::model::NamedNodeRef<'_>,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<(Tenant, ResourceId, String)>, StoreError> {
        let mut out = Vec::new();
        for (_, store) in self.inner.graph.stores()? {
            for quad in store.quads_for_pattern(None, Some(predicate), None, None) {
                let quad = quad?;
                let (
                    oxigraph::model::Term::Literal(literal),
                    oxigraph::model::GraphName::NamedNode(graph),
                ) = (&quad.object, &quad.graph_name)
                else {
                    continue;
                };
                if !keep(literal.value()) {
                    continue;
                }
                if let Some((tenant, id)) = Tenant::parse_graph(graph.as_str()) {
                    out.push((tenant, id, literal.value().to_owned()));
                }
            }
        }
        Ok(out)
    }

    /// Tenants that have data.
    pub fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.inner.graph.tenants()
    }

    /// The number of quads in the graph.
    pub fn graph_len(&self) -> Result<usize, StoreError> {
        self.inner.graph.len()
    }

    /// Runs a SPARQL query (SELECT, ASK, CONSTRUCT, DESCRIBE) over one tenant's graphs,
    /// with the configured timeout and result limit.
    pub async fn sparql(&self, tenant: &Tenant, query: &str) -> Result<QueryOutput, StoreError> {
        let limit = self.inner.config.query_result_limit;
        let query = query.to_owned();
        self.query_blocking(tenant, move |store, token| {
            query::run_sparql(store, &query, token, limit)
        })
        .await
    }

    /// Plans a SPARQL update over one tenant's graphs: the changes it would make, each
    /// at the version the resource had when the update ran. Nothing is written.
    pub async fn plan_update(
        &self,
        tenant: &Tenant,
        update: &str,
    ) -> Result<Vec<Change>, StoreError> {
        let owner = tenant.clone();
        let update = update.to_owned();
        self.query_blocking(tenant, move |store, token| {
            update::plan_update(store, &owner, &update, token)
        })
        .await
    }

    /// Runs a typed query.
    pub async fn find(&self, find: Find) -> Result<Vec<Found>, StoreError> {
        let tenant = find.tenant.clone();
        self.query_blocking(&tenant, move |store, token| {
            query::run_find(store, &find, token)
        })
        .await
    }

    /// Whether any resource passes a typed query's filters.
    pub async fn exists(&self, find: Find) -> Result<bool, StoreError> {
        let tenant = find.tenant.clone();
        self.query_blocking(&tenant, move |store, token| {
            query::run_exists(store, &find, token)
        })
        .await
    }

    /// Runs a query on a tenant's store on a blocking thread, cancelled when the
    /// configured timeout is up.
    async fn query_blocking<T: Send + 'static>(
        &self,
        tenant: &Tenant,
        run: impl FnOnce(
            &oxigraph::store::Store,
            oxigraph::sparql::CancellationToken,
        ) -> Result<T, StoreError>
        + Send
        + 'static,
    ) -> Result<T, StoreError> {
        let timeout = self.inner.config.query_timeout;
        let (token, timer) = query::deadline(timeout);
        let store = self.inner.graph.store(tenant)?;
        let result = tokio::task::spawn_blocking(move || run(&store, token))
            .await
            .map_err(|e| StoreError::QueryEvaluation(e.to_string()))?;
        timer.abort();
        result.map_err(|e| match e {
            StoreError::QueryTimeout(_) => {
                StoreError::QueryTimeout(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))
            }
            other => other,
        })
    }

    /// Writes the graph (one tenant's graphs, or all) in an RDF format. Blocking; datasets
    /// formats keep the graph names, others merge the graphs.
    pub fn export<W: std::io::Write>(
        &self,
        tenant: Option<&Tenant>,
        format: RdfFormat,
        writer: W,
    ) -> Result<W, StoreError> {
        let mut serializer = RdfSerializer::from_format(format)
            .with_prefix("ic", iotcane_model::vocab::ic::NS)
            .map_err(|e| StoreError::Export(e.to_string()))?
            .for_writer(writer);
        let mut write = |quad: Quad| -> Result<(), StoreError> {
            let result = if format.supports_datasets() {
                serializer.serialize_quad(&quad)
            } else {
                serializer.serialize_triple(quad.as_ref())
            };
            result.map_err(|e| StoreError::Export(e.to_string()))
        };
        let stores = match tenant {
            None => self.inner.graph.stores()?,
            Some(t) => vec![(t.clone(), self.inner.graph.store(t)?)],
        };
        for (_, store) in stores {
            for quad in store.iter() {
                write(quad?)?;
            }
        }
        serializer
            .finish()
            .map_err(|e| StoreError::Export(e.to_string()))
    }

    /// Writes a snapshot now, if anything changed since the last one.
    pub async fn snapshot(&self) -> Result<Option<SnapshotFile>, StoreError> {
        let (seq, quads, covered) = {
            let _writer = self.inner.writer.lock().await;
            let covered = self.inner.changes_since_snapshot.swap(0, Ordering::Relaxed);
            if covered == 0 {
                return Ok(None);
            }
            // Each store's iterator reads a consistent version: taken under the writer
            // lock, together they are exactly the state at `seq`. Tenant by tenant, so a
            // snapshot loads one tenant's store at a time.
            let iterators: Vec<_> = self
                .inner
                .graph
                .stores()?
                .into_iter()
                .map(|(_, store)| store.iter())
                .collect();
            (self.applied_seq(), iterators.into_iter().flatten(), covered)
        };
        let dir = self.inner.config.data_dir.join("snapshots");
        let journal_id = self.inner.journal_id.clone();
        let written =
            tokio::task::spawn_blocking(move || snapshot::write(&dir, &journal_id, seq, quads))
                .await
                .map_err(|e| StoreError::Snapshot(e.to_string()))
                .and_then(|r| r);
        let file = match written {
            Ok(file) => file,
            Err(e) => {
                // Still owed: the next attempt must cover these changes too.
                self.inner
                    .changes_since_snapshot
                    .fetch_add(covered, Ordering::Relaxed);
                return Err(e);
            }
        };
        tracing::info!(seq, path = %file.path.display(), "snapshot written");
        Ok(Some(file))
    }

    /// Tails the journal and writes snapshots until `shutdown`; then writes a last
    /// snapshot if anything changed.
    pub async fn run_background(&self, shutdown: CancellationToken) {
        let config = &self.inner.config;
        let mut tail = tokio::time::interval(config.tail_interval);
        tail.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_snapshot = Instant::now();
        let mut last_prune = Instant::now();
        // A first run soon after start (a replica restarted more often than the interval
        // still compacts; the claim keeps it to one replica per half interval), then one
        // per interval, each in its own task so that the tail goes on meanwhile.
        let mut last_compaction: Option<Instant> = None;
        let mut compaction: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tail.tick() => {}
            }
            if self.is_stale() {
                // Nothing this graph holds may be kept: it waits for the restart that
                // failing health checks ask for.
                continue;
            }
            if let Err(e) = self.catch_up().await {
                tracing::error!(error = %e, "journal tail failed");
            }
            let compaction_due =
                last_compaction.is_none_or(|at| at.elapsed() >= config.compaction_interval);
            if compaction_due && compaction.as_ref().is_none_or(|run| run.is_finished()) {
                last_compaction = Some(Instant::now());
                let store = self.clone();
                compaction = Some(tokio::spawn(async move {
                    if let Err(e) = store.compact_if_due().await {
                        tracing::error!(error = %e, "journal compaction failed");
                    }
                }));
            }
            let changes = self.inner.changes_since_snapshot.load(Ordering::Relaxed);
            let due = changes >= config.snapshot_every_changes
                || (changes > 0 && last_snapshot.elapsed() >= config.snapshot_interval);
            if due {
                match self.snapshot().await {
                    Ok(_) => last_snapshot = Instant::now(),
                    Err(e) => tracing::error!(error = %e, "snapshot failed"),
                }
            }
            if last_prune.elapsed() >= config.context_prune_interval {
                last_prune = Instant::now();
                if let Err(e) = self.prune_context().await {
                    tracing::error!(error = %e, "pruning context reports failed");
                }
            }
        }
        // A run cut short is finished by the next one.
        if let Some(run) = compaction {
            run.abort();
        }
        if self.is_stale() {
            return;
        }
        if let Err(e) = self.snapshot().await {
            tracing::error!(error = %e, "final snapshot failed");
        }
    }

    /// Compacts the journal: of the rows written before `before_ms`, removes the versions
    /// later versions replaced and what is left of deleted resources (see the README's
    /// "Journal retention"). Replaying the journal still gives the same graph, and history
    /// stays complete from `before_ms` on.
    pub async fn compact(&self, before_ms: i64) -> Result<Compacted, StoreError> {
        let started = Instant::now();
        let compacted = self
            .inner
            .journal
            .compact(before_ms, COMPACTION_BATCH)
            .await?;
        tracing::info!(
            cutoff_seq = compacted.cutoff_seq,
            rows_removed = compacted.rows_removed,
            history_from = %format_time_ms(compacted.history_from_ms),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "journal compacted"
        );
        Ok(compacted)
    }

    /// What the background task does every `compaction_interval`: compacts with the
    /// configured retention, unless another replica did within half the interval (then
    /// `None`, as without a retention).
    pub async fn compact_if_due(&self) -> Result<Option<Compacted>, StoreError> {
        let Some(retention) = self.inner.config.journal_retention else {
            return Ok(None);
        };
        let now = now_ms();
        let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let half_interval = millis(self.inner.config.compaction_interval / 2);
        if !self
            .inner
            .journal
            .claim_compaction(now, now.saturating_sub(half_interval))
            .await?
        {
            return Ok(None);
        }
        self.compact(now.saturating_sub(millis(retention)))
            .await
            .map(Some)
    }

    /// How far compaction has gone.
    pub async fn compaction_state(&self) -> Result<CompactionState, StoreError> {
        self.inner.journal.compaction_state().await
    }

    /// Deletes the context reports beyond each resource's configured history, in batches
    /// so that writers are never held up long. Returns how many were deleted.
    pub async fn prune_context(&self) -> Result<u64, StoreError> {
        const BATCH: i64 = 20_000;
        let keep = i64::from(self.inner.config.context_history);
        let mut deleted = 0;
        loop {
            let n = self.inner.journal.prune_context(keep, BATCH).await?;
            deleted += n;
            if n < BATCH as u64 {
                break;
            }
        }
        if deleted > 0 {
            tracing::debug!(deleted, "old context reports pruned");
        }
        Ok(deleted)
    }

    /// A device's or edge node's newest context reports, newest first.
    pub async fn context_history(
        &self,
        tenant: &Tenant,
        id: &ResourceId,
        limit: i64,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        self.inner
            .journal
            .context_history(tenant.as_str(), id.as_str(), limit)
            .await
    }

    pub async fn insert_dead_letter(&self, letter: &NewDeadLetter) -> Result<(), StoreError> {
        self.inner.journal.insert_dead_letter(letter).await
    }

    /// A tenant's dead letters, newest first, with ids below `before`.
    pub async fn dead_letters(
        &self,
        tenant: &Tenant,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner
            .journal
            .dead_letters(tenant.as_str(), before.unwrap_or(i64::MAX), limit)
            .await
    }

    /// Journal rows after `seq`, in order, at most `limit` (for event-stream resume).
    pub async fn changes_after(
        &self,
        seq: i64,
        limit: i64,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        self.inner.journal.tail(seq, limit).await
    }

    /// A tenant's resources of any of `kinds`, in id order, after a cursor.
    pub fn list_kinds(
        &self,
        tenant: &Tenant,
        kinds: &[Kind],
        after: Option<&ResourceId>,
        limit: usize,
    ) -> Result<Vec<(ResourceId, Kind)>, StoreError> {
        self.inner.graph.list_kinds(tenant, kinds, after, limit)
    }

    /// How many resources of any of `kinds` a tenant has.
    pub fn count_kinds(&self, tenant: &Tenant, kinds: &[Kind]) -> Result<usize, StoreError> {
        self.inner.graph.count_kinds(tenant, kinds)
    }

    /// Stores a new API key record.
    pub async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        self.inner.journal.insert_key(key).await
    }

    /// The key with this public id, revoked or not.
    pub async fn key(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.inner.journal.key(key_id).await
    }

    /// One tenant's keys (all tenants' when `None`), revoked ones included.
    pub async fn keys(&self, tenant: Option<&Tenant>) -> Result<Vec<KeyRecord>, StoreError> {
        self.inner.journal.keys(tenant.map(Tenant::as_str)).await
    }

    /// Revokes one of a tenant's keys; false when it has no such live key.
    pub async fn revoke_key(&self, tenant: &Tenant, key_id: &str) -> Result<bool, StoreError> {
        self.inner
            .journal
            .revoke_key(tenant.as_str(), key_id, now_ms())
            .await
    }

    /// How many keys exist, revoked ones included.
    pub async fn key_count(&self) -> Result<i64, StoreError> {
        self.inner.journal.key_count().await
    }

    /// Checks that the journal answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.inner.journal.head().await.map(|_| ())
    }

    /// Closes the journal's connections.
    pub async fn close(&self) {
        self.inner.journal.close().await;
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A database URL with any password replaced, for logs and `iotcane config`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}
