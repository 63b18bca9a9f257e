//! The journal: the relational source of truth (SQLite file or PostgreSQL).
//!
//! All SQL lives here, one statement set per dialect. Writers serialize on the
//! `journal_head` row, so journal positions commit in order on both databases and a tailer
//! reading `seq > last` never skips a row.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::error::StoreError;
use crate::{ChangeSource, Op};
use iotcane_model::Kind;

/// One journal row.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    pub seq: i64,
    pub tenant: String,
    pub resource_id: String,
    pub kind: String,
    pub version: i64,
    pub op: Op,
    pub actor: String,
    pub source: ChangeSource,
    pub at_ms: i64,
    /// The native JSON of the new description; `None` for a delete.
    pub body: Option<String>,
    /// The resource's creation time, on a row whose earlier versions were compacted away
    /// (a replay cannot read it from the create row any more); `None` otherwise.
    pub created_ms: Option<i64>,
}

/// How far compaction has gone (see [`Journal::compact`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompactionState {
    /// Superseded rows at or before this position are gone.
    pub compacted_through_seq: i64,
    /// History is complete from this time on.
    pub history_from_ms: i64,
    /// The newest deletion removed: a graph older than this may hold a deleted resource.
    pub tombstones_through_seq: i64,
    /// How many times deletions were removed.
    pub epoch: i64,
}

/// What one compaction run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Compacted {
    /// The newest row the run looked at (written before `history_from_ms`).
    pub cutoff_seq: i64,
    pub history_from_ms: i64,
    pub rows_removed: u64,
}

/// A message the MQTT gateway refused, as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub tenant: Option<String>,
    pub topic: String,
    pub reason: String,
    /// The payload as received, cut to a bounded size.
    pub payload: Vec<u8>,
    /// The size of the whole payload.
    pub payload_len: i64,
    pub at_ms: i64,
}

/// A dead letter about to be written.
#[derive(Debug, Clone)]
pub struct NewDeadLetter {
    pub tenant: Option<String>,
    pub topic: String,
    pub reason: String,
    pub payload: Vec<u8>,
    pub payload_len: i64,
    pub at_ms: i64,
}

/// A row about to be written; the journal assigns its position.
#[derive(Debug, Clone)]
pub(crate) struct NewEntry {
    pub tenant: String,
    pub resource_id: String,
    pub kind: String,
    pub op: Op,
    pub body: Option<String>,
    /// Refuse unless the current version is this one (0: must not exist).
    pub expected_version: Option<i64>,
    /// Refuse if the resource exists (create-only).
    pub create_only: bool,
    /// Refuse unless the resource exists (update or delete of a known resource).
    pub must_exist: bool,
    /// Who made the change, and through which interface.
    pub actor: std::sync::Arc<str>,
    pub source: ChangeSource,
}

/// Why one entry of a batch was refused; the rest of the batch goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    NotFound,
    AlreadyExists {
        version: i64,
    },
    VersionMismatch {
        expected: i64,
        actual: i64,
    },
    /// Acceptable, but another entry of the same all-or-nothing batch was refused.
    Aborted,
    /// A context report for a resource of a kind that has no live context.
    NoLiveContext {
        kind: String,
    },
}

struct Sql {
    lock_head: &'static str,
    set_head: &'static str,
    current_many: &'static str,
    insert_many: &'static str,
    upsert_many: &'static str,
    tail: &'static str,
    history: &'static str,
    at_time: &'static str,
    head: &'static str,
    journal_id: &'static str,
    context_history: &'static str,
    prune_context: &'static str,
    insert_dead_letter: &'static str,
    dead_letters: &'static str,
    replay: &'static str,
    compaction_state: &'static str,
    claim_compaction: &'static str,
    compaction_cutoff: &'static str,
    batch_end: &'static str,
    set_created: &'static str,
    drop_dead_context: &'static str,
    drop_superseded: &'static str,
    drop_tombstones: &'static str,
    mark_tombstones: &'static str,
    mark_history: &'static str,
    finish_compaction: &'static str,
}

const SQLITE: Sql = Sql {
    lock_head: "UPDATE journal_head SET seq = seq WHERE id = 1 RETURNING seq",
    set_head: "UPDATE journal_head SET seq = ? WHERE id = 1",
    // The ids come as one JSON array. CROSS JOIN makes SQLite walk the ids and look each
    // up by primary key, rather than scan the table.
    current_many: "SELECT r.resource_id, r.version, r.deleted, r.created_ms, r.kind \
                   FROM json_each(?2) AS ids CROSS JOIN resources AS r \
                   WHERE r.tenant = ?1 AND r.resource_id = ids.value",
    // The rows come as one JSON array of arrays, in column order.
    insert_many: "INSERT INTO journal (seq, tenant, resource_id, kind, version, op, actor, source, at_ms, body) \
                  SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
                         json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'), \
                         json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]'), \
                         json_extract(value, '$[9]') \
                  FROM json_each(?)",
    // `WHERE true` lets SQLite parse the ON CONFLICT clause after a SELECT.
    upsert_many: "INSERT INTO resources (tenant, resource_id, kind, version, deleted, created_ms, updated_seq) \
                  SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
                         json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'), \
                         json_extract(value, '$[6]') \
                  FROM json_each(?) WHERE true \
                  ON CONFLICT (tenant, resource_id) DO UPDATE SET kind = excluded.kind, \
                  version = excluded.version, deleted = excluded.deleted, \
                  created_ms = excluded.created_ms, updated_seq = excluded.updated_seq",
    tail: "SELECT seq, tenant, resource_id, kind, version, op, actor, source, at_ms, body, created_ms \
           FROM journal WHERE seq > ? ORDER BY seq LIMIT ?",
    history: "SELECT seq, tenant, resource_id, kind, version, op, actor, source, at_ms, body, created_ms \
              FROM journal WHERE tenant = ? AND resource_id = ? AND op <> 'context' ORDER BY seq",
    at_time: "SELECT seq, tenant, resource_id, kind, version, op, actor, source, at_ms, body, created_ms \
              FROM journal WHERE tenant = ? AND resource_id = ? AND at_ms <= ? AND op <> 'context' \
              ORDER BY seq DESC LIMIT 1",
    head: "SELECT seq FROM journal_head WHERE id = 1",
    journal_id: "SELECT journal_id FROM journal_meta WHERE id = 1",
    context_history: "SELECT seq, tenant, resource_id, kind, version, op, actor, source, at_ms, body, created_ms \
                      FROM journal WHERE tenant = ? AND resource_id = ? AND op = 'context' \
                      ORDER BY seq DESC LIMIT ?",
    prune_context: "DELETE FROM journal WHERE seq IN (\
                    SELECT seq FROM (SELECT seq, ROW_NUMBER() OVER \
                    (PARTITION BY tenant, resource_id ORDER BY seq DESC) AS newer \
                    FROM journal WHERE op = 'context') AS ranked WHERE newer > ? LIMIT ?)",
    insert_dead_letter: "INSERT INTO dead_letters (tenant, topic, reason, payload, payload_len, at_ms) \
                         VALUES (?, ?, ?, ?, ?, ?)",
    dead_letters: "SELECT id, tenant, topic, reason, payload, payload_len, at_ms FROM dead_letters \
                   WHERE tenant = ? AND id < ? ORDER BY id DESC LIMIT ?",
    // Like `tail`, but skips context reports a later report of the same resource
    // replaces: on a rebuild only the newest live context matters.
    replay: "SELECT seq, tenant, resource_id, kind, version, op, actor, source, at_ms, body, created_ms \
             FROM journal AS j WHERE seq > ?1 AND (op <> 'context' OR NOT EXISTS (\
             SELECT 1 FROM journal AS n WHERE n.tenant = j.tenant AND n.resource_id = j.resource_id \
             AND n.op = 'context' AND n.seq > j.seq)) ORDER BY seq LIMIT ?2",
    compaction_state: "SELECT compacted_through_seq, history_from_ms, tombstones_through_seq, epoch \
                       FROM journal_compaction WHERE id = 1",
    claim_compaction: "UPDATE journal_compaction SET claimed_ms = ?1 WHERE id = 1 AND claimed_ms <= ?2",
    // The longest run of rows all written before the time: clocks of replicas differ,
    // and a row's time is taken before its position, so times are not quite in order.
    // Rows at or before the previous cutoff are older still, so the scan starts there.
    compaction_cutoff: "SELECT COALESCE(\
                        (SELECT MIN(seq) - 1 FROM journal WHERE seq > ?2 AND at_ms >= ?1), \
                        (SELECT MAX(seq) FROM journal WHERE seq > ?2), ?2)",
    batch_end: "SELECT MAX(seq) FROM (SELECT seq FROM journal WHERE seq > ?1 AND seq <= ?2 \
                ORDER BY seq LIMIT ?3) AS batch",
    // A version that stays while its predecessors go keeps the creation time they gave:
    // the newest create before it, or the time an earlier compaction left on a row.
    set_created: "UPDATE journal SET created_ms = COALESCE(\
                  (SELECT c.at_ms FROM journal AS c WHERE c.tenant = journal.tenant \
                   AND c.resource_id = journal.resource_id AND c.op <> 'context' AND c.op = 'create' \
                   AND c.version < journal.version ORDER BY c.version DESC LIMIT 1), \
                  (SELECT p.created_ms FROM journal AS p WHERE p.tenant = journal.tenant \
                   AND p.resource_id = journal.resource_id AND p.op <> 'context' \
                   AND p.created_ms IS NOT NULL AND p.version < journal.version \
                   ORDER BY p.version DESC LIMIT 1)) \
                  WHERE seq > ?1 AND seq <= ?2 AND op = 'update' AND created_ms IS NULL \
                  AND NOT EXISTS (SELECT 1 FROM journal AS n WHERE n.tenant = journal.tenant \
                  AND n.resource_id = journal.resource_id AND n.op <> 'context' \
                  AND n.version > journal.version AND n.seq <= ?3)",
    // Reports on a resource that was deleted later (before the cutoff) describe nothing.
    drop_dead_context: "DELETE FROM journal WHERE seq > ?1 AND seq <= ?2 AND op = 'context' \
                        AND EXISTS (SELECT 1 FROM journal AS d WHERE d.tenant = journal.tenant \
                        AND d.resource_id = journal.resource_id AND d.op <> 'context' \
                        AND d.op = 'delete' AND d.seq > journal.seq AND d.seq <= ?3)",
    // Versions a later version (before the cutoff) replaced. Deletions are left to
    // `drop_tombstones`, the one step that tells readers (see `Journal::compact`).
    drop_superseded: "DELETE FROM journal WHERE seq > ?1 AND seq <= ?2 AND op <> 'context' \
                      AND op <> 'delete' \
                      AND EXISTS (SELECT 1 FROM journal AS n WHERE n.tenant = journal.tenant \
                      AND n.resource_id = journal.resource_id AND n.op <> 'context' \
                      AND n.version > journal.version AND n.seq <= ?3)",
    // What is left of a deleted resource before the cutoff: its deletion.
    drop_tombstones: "DELETE FROM journal WHERE seq > ?2 AND seq <= ?1 AND op = 'delete'",
    mark_tombstones: "UPDATE journal_compaction SET epoch = epoch + 1, \
                      tombstones_through_seq = MAX(tombstones_through_seq, \
                      (SELECT COALESCE(MAX(seq), 0) FROM journal WHERE seq > ?2 AND seq <= ?1 AND op = 'delete')) \
                      WHERE id = 1 AND EXISTS \
                      (SELECT 1 FROM journal WHERE seq > ?2 AND seq <= ?1 AND op = 'delete')",
    mark_history: "UPDATE journal_compaction SET history_from_ms = MAX(history_from_ms, ?1) WHERE id = 1",
    finish_compaction: "UPDATE journal_compaction SET \
                        compacted_through_seq = MAX(compacted_through_seq, ?1) WHERE id = 1",
};

const POSTGRES: Sql = Sql {
    lock_head: "UPDATE journal_head SET seq = seq WHERE id = 1 RETURNING seq",
    set_head: "UPDATE journal_head SET seq = $1 WHERE id = 1",
    current_many: "SELECT resource_id, version, deleted, created_ms, kind FROM resources \
                   WHERE tenant = $1 AND resource_id = ANY($2)",
    insert_many: "INSERT INTO journal (seq, tenant, resource_id, kind, version, op, actor, source, at_ms, body) \
                  SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], \
                                       $6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[])",
    upsert_many: "INSERT INTO resources (tenant, resource_id, kind, version, deleted, created_ms, updated_seq) \
                  SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::boolean[], \
                                       $6::bigint[], $7::bigint[]) \
                  ON CONFLICT (tenant, resource_id) DO UPDATE SET kind = excluded.kind, \
                  version = excluded.version, deleted = excluded.deleted, \
                  created_ms = excluded.created_ms, updated_seq = excluded.updated_seq",
    tail: "SELECT seq, tenant, resource_id, kind, version, op, actor, source, at_ms, body, created_ms \
           FROM journal WHERE seq > $1 ORDER BY seq LIMIT $2",
    history: "SELECT seq, tenant, resource_id, kind, version, op, actor, source, at_ms, body, created_ms \
              FROM journal WHERE tenant = $1 AND resource_id = $2 AND op <> 'context' ORDER BY seq",
    at_time: "SELECT seq, tenant, resource_id, kind, version, op, actor, source, at_ms, body, created_ms \
              FROM journal WHERE tenant = $1 AND resource_id = $2 AND at_ms <= $3 AND op <> 'context' \
              ORDER BY seq DESC LIMIT 1",
    head: "SELECT seq FROM journal_head WHERE id = 1",
    journal_id: "SELECT journal_id FROM journal_meta WHERE id = 1",
    context_history: "SELECT seq, tenant, resource_id, kind, version, op, actor, source, at_ms, body, created_ms \
                      FROM journal WHERE tenant = $1 AND resource_id = $2 AND op = 'context' \
                      ORDER BY seq DESC LIMIT $3",
    prune_context: "DELETE FROM journal WHERE seq IN (\
                    SELECT seq FROM (SELECT seq, ROW_NUMBER() OVER \
                    (PARTITION BY tenant, resource_id ORDER BY seq DESC) AS newer \
                    FROM journal WHERE op = 'context') AS ranked WHERE newer > $1 LIMIT $2)",
    insert_dead_letter: "INSERT INTO dead_letters (tenant, topic, reason, payload, payload_len, at_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
    dead_letters: "SELECT id, tenant, topic, reason, payload, payload_len, at_ms FROM dead_letters \
                   WHERE tenant = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
    // Like `tail`, but skips context reports a later report of the same resource
    // replaces: on a rebuild only the newest live context matters.
    replay: "SELECT seq, tenant, resource_id, kind, version, op, actor, source, at_ms, body, created_ms \
             FROM journal AS j WHERE seq > $1 AND (op <> 'context' OR NOT EXISTS (\
             SELECT 1 FROM journal AS n WHERE n.tenant = j.tenant AND n.resource_id = j.resource_id \
             AND n.op = 'context' AND n.seq > j.seq)) ORDER BY seq LIMIT $2",
    compaction_state: "SELECT compacted_through_seq, history_from_ms, tombstones_through_seq, epoch \
                       FROM journal_compaction WHERE id = 1",
    claim_compaction: "UPDATE journal_compaction SET claimed_ms = $1 WHERE id = 1 AND claimed_ms <= $2",
    // The longest run of rows all written before the time: clocks of replicas differ,
    // and a row's time is taken before its position, so times are not quite in order.
    // Rows at or before the previous cutoff are older still, so the scan starts there.
    compaction_cutoff: "SELECT COALESCE(\
                        (SELECT MIN(seq) - 1 FROM journal WHERE seq > $2 AND at_ms >= $1), \
                        (SELECT MAX(seq) FROM journal WHERE seq > $2), $2)",
    batch_end: "SELECT MAX(seq) FROM (SELECT seq FROM journal WHERE seq > $1 AND seq <= $2 \
                ORDER BY seq LIMIT $3) AS batch",
    // A version that stays while its predecessors go keeps the creation time they gave:
    // the newest create before it, or the time an earlier compaction left on a row.
    set_created: "UPDATE journal SET created_ms = COALESCE(\
                  (SELECT c.at_ms FROM journal AS c WHERE c.tenant = journal.tenant \
                   AND c.resource_id = journal.resource_id AND c.op <> 'context' AND c.op = 'create' \
                   AND c.version < journal.version ORDER BY c.version DESC LIMIT 1), \
                  (SELECT p.created_ms FROM journal AS p WHERE p.tenant = journal.tenant \
                   AND p.resource_id = journal.resource_id AND p.op <> 'context' \
                   AND p.created_ms IS NOT NULL AND p.version < journal.version \
                   ORDER BY p.version DESC LIMIT 1)) \
                  WHERE seq > $1 AND seq <= $2 AND op = 'update' AND created_ms IS NULL \
                  AND NOT EXISTS (SELECT 1 FROM journal AS n WHERE n.tenant = journal.tenant \
                  AND n.resource_id = journal.resource_id AND n.op <> 'context' \
                  AND n.version > journal.version AND n.seq <= $3)",
    // Reports on a resource that was deleted later (before the cutoff) describe nothing.
    drop_dead_context: "DELETE FROM journal WHERE seq > $1 AND seq <= $2 AND op = 'context' \
                        AND EXISTS (SELECT 1 FROM journal AS d WHERE d.tenant = journal.tenant \
                        AND d.resource_id = journal.resource_id AND d.op <> 'context' \
                        AND d.op = 'delete' AND d.seq > journal.seq AND d.seq <= $3)",
    // Versions a later version (before the cutoff) replaced. Deletions are left to
    // `drop_tombstones`, the one step that tells readers (see `Journal::compact`).
    drop_superseded: "DELETE FROM journal WHERE seq > $1 AND seq <= $2 AND op <> 'context' \
                      AND op <> 'delete' \
                      AND EXISTS (SELECT 1 FROM journal AS n WHERE n.tenant = journal.tenant \
                      AND n.resource_id = journal.resource_id AND n.op <> 'context' \
                      AND n.version > journal.version AND n.seq <= $3)",
    // What is left of a deleted resource before the cutoff: its deletion.
    drop_tombstones: "DELETE FROM journal WHERE seq > $2 AND seq <= $1 AND op = 'delete'",
    mark_tombstones: "UPDATE journal_compaction SET epoch = epoch + 1, \
                      tombstones_through_seq = GREATEST(tombstones_through_seq, \
                      (SELECT COALESCE(MAX(seq), 0) FROM journal WHERE seq > $2 AND seq <= $1 AND op = 'delete')) \
                      WHERE id = 1 AND EXISTS \
                      (SELECT 1 FROM journal WHERE seq > $2 AND seq <= $1 AND op = 'delete')",
    mark_history: "UPDATE journal_compaction SET history_from_ms = GREATEST(history_from_ms, $1) WHERE id = 1",
    finish_compaction: "UPDATE journal_compaction SET \
                        compacted_through_seq = GREATEST(compacted_through_seq, $1) WHERE id = 1",
};

/// How SQLite makes a commit durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteDurability {
    /// `synchronous=FULL`: a commit survives a power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL` with WAL: a commit survives a process crash, not a power loss.
    Normal,
}

/// A connection pool to the journal database.
#[derive(Debug, Clone)]
pub enum Journal {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same body against either pool, with that dialect's SQL set bound to `$sql`:
/// the `SQLITE` or `POSTGRES` constant in scope where it is used (the keys module has
/// its own).
macro_rules! on_pool {
    ($journal:expr, $pool:ident, $sql:ident, $body:block) => {
        match $journal {
            Journal::Sqlite($pool) => {
                let $sql = &SQLITE;
                $body
            }
            Journal::Postgres($pool) => {
                let $sql = &POSTGRES;
                $body
            }
        }
    };
}
pub(crate) use on_pool;

impl Journal {
    /// Connects and applies this dialect's migrations. A `postgres://` URL selects
    /// PostgreSQL; anything else is a SQLite URL or file path.
    pub async fn connect(
        url: &str,
        durability: SqliteDurability,
        statement_timeout: Duration,
    ) -> Result<Journal, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let timeout_ms = statement_timeout.as_millis().to_string();
            let options = PgConnectOptions::from_str(url)?
                .options([("statement_timeout", timeout_ms.as_str())]);
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            sqlx::migrate!("../../migrations/postgres")
                .run(&pool)
                .await?;
            Ok(Journal::Postgres(pool))
        } else {
            let options = if url.starts_with("sqlite:") {
                SqliteConnectOptions::from_str(url)?
            } else {
                SqliteConnectOptions::new().filename(Path::new(url))
            }
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                SqliteDurability::Full => SqliteSynchronous::Full,
                SqliteDurability::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(statement_timeout);
            // sqlx's SQLite migrator takes no lock, so processes opening a new file together
            // would each create the schema, and switching a new file to WAL is refused
            // while another connection does the same: a lock file beside it makes them
            // take turns, from the first connection to the last migration.
            let lock = match migration_lock_path(options.get_filename()) {
                Some(path) => Some(
                    tokio::task::spawn_blocking(move || lock_file(&path))
                        .await
                        .map_err(|e| StoreError::DataDir(e.to_string()))??,
                ),
                None => None,
            };
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await?;
            sqlx::migrate!("../../migrations/sqlite").run(&pool).await?;
            drop(lock);
            Ok(Journal::Sqlite(pool))
        }
    }

    pub fn dialect(&self) -> &'static str {
        match self {
            Journal::Sqlite(_) => "sqlite",
            Journal::Postgres(_) => "postgres",
        }
    }

    /// Appends the accepted entries of `batch` in one transaction. Returns, per entry,
    /// its journal row or why it was refused. Nothing is written unless the commit succeeds.
    ///
    /// A batch costs a fixed handful of statements whatever its size: the current state of
    /// its resources is read with one statement per tenant, and the journal rows and the
    /// resource states are written with one statement each (a JSON array on SQLite,
    /// arrays on PostgreSQL).
    pub(crate) async fn append(
        &self,
        batch: &[NewEntry],
        at_ms: i64,
        all_or_nothing: bool,
    ) -> Result<Vec<Result<JournalEntry, Refusal>>, StoreError> {
        let by_tenant = ids_by_tenant(batch);
        match self {
            Journal::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let head: i64 = sqlx::query(SQLITE.lock_head)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?;
                let mut current = Current::new();
                for (tenant, ids) in &by_tenant {
                    let rows = sqlx::query(SQLITE.current_many)
                        .bind(*tenant)
                        .bind(serde_json::to_string(ids).unwrap_or_default())
                        .fetch_all(&mut *tx)
                        .await?;
                    collect_current(&mut current, tenant, &rows)?;
                }
                let decided = decide(batch, &current, head, at_ms);
                if all_or_nothing && decided.outcomes.iter().any(Result::is_err) {
                    return Ok(aborted(decided.outcomes));
                }
                if let Some(last) = decided.last_seq {
                    sqlx::query(SQLITE.insert_many)
                        .bind(journal_rows_json(&decided.accepted))
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(SQLITE.upsert_many)
                        .bind(resource_rows_json(&decided.states))
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(SQLITE.set_head)
                        .bind(last)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(decided.outcomes)
            }
            Journal::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let head: i64 = sqlx::query(POSTGRES.lock_head)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?;
                let mut current = Current::new();
                for (tenant, ids) in &by_tenant {
                    let rows = sqlx::query(POSTGRES.current_many)
                        .bind(*tenant)
                        .bind(ids)
                        .fetch_all(&mut *tx)
                        .await?;
                    collect_current(&mut current, tenant, &rows)?;
                }
                let decided = decide(batch, &current, head, at_ms);
                if all_or_nothing && decided.outcomes.iter().any(Result::is_err) {
                    return Ok(aborted(decided.outcomes));
                }
                if let Some(last) = decided.last_seq {
                    let rows = &decided.accepted;
                    sqlx::query(POSTGRES.insert_many)
                        .bind(rows.iter().map(|r| r.seq).collect::<Vec<_>>())
                        .bind(rows.iter().map(|r| r.tenant.as_str()).collect::<Vec<_>>())
                        .bind(
                            rows.iter()
                                .map(|r| r.resource_id.as_str())
                                .collect::<Vec<_>>(),
                        )
                        .bind(rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>())
                        .bind(rows.iter().map(|r| r.version).collect::<Vec<_>>())
                        .bind(rows.iter().map(|r| r.op.as_str()).collect::<Vec<_>>())
                        .bind(rows.iter().map(|r| r.actor.as_str()).collect::<Vec<_>>())
                        .bind(rows.iter().map(|r| r.source.as_str()).collect::<Vec<_>>())
                        .bind(rows.iter().map(|r| r.at_ms).collect::<Vec<_>>())
                        .bind(rows.iter().map(|r| r.body.as_deref()).collect::<Vec<_>>())
                        .execute(&mut *tx)
                        .await?;
                    let states = &decided.states;
                    sqlx::query(POSTGRES.upsert_many)
                        .bind(states.iter().map(|r| r.tenant).collect::<Vec<_>>())
                        .bind(states.iter().map(|r| r.resource_id).collect::<Vec<_>>())
                        .bind(states.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>())
                        .bind(states.iter().map(|r| r.version).collect::<Vec<_>>())
                        .bind(states.iter().map(|r| r.deleted).collect::<Vec<_>>())
                        .bind(states.iter().map(|r| r.created_ms).collect::<Vec<_>>())
                        .bind(states.iter().map(|r| r.updated_seq).collect::<Vec<_>>())
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(POSTGRES.set_head)
                        .bind(last)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(decided.outcomes)
            }
        }
    }

    /// Rows after `after`, in order, at most `limit`.
    pub async fn tail(&self, after: i64, limit: i64) -> Result<Vec<JournalEntry>, StoreError> {
        on_pool!(self, pool, sql, {
            let rows = sqlx::query(sql.tail)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter().map(entry_from_row).collect()
        })
    }

    /// Every version of one resource, oldest first.
    pub async fn history(
        &self,
        tenant: &str,
        resource_id: &str,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        on_pool!(self, pool, sql, {
            let rows = sqlx::query(sql.history)
                .bind(tenant)
                .bind(resource_id)
                .fetch_all(pool)
                .await?;
            rows.iter().map(entry_from_row).collect()
        })
    }

    /// The newest row of one resource written at or before `at_ms`.
    pub async fn as_of(
        &self,
        tenant: &str,
        resource_id: &str,
        at_ms: i64,
    ) -> Result<Option<JournalEntry>, StoreError> {
        on_pool!(self, pool, sql, {
            let row = sqlx::query(sql.at_time)
                .bind(tenant)
                .bind(resource_id)
                .bind(at_ms)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(entry_from_row).transpose()
        })
    }

    /// A resource's newest context rows, newest first, at most `limit`.
    pub async fn context_history(
        &self,
        tenant: &str,
        resource_id: &str,
        limit: i64,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        on_pool!(self, pool, sql, {
            let rows = sqlx::query(sql.context_history)
                .bind(tenant)
                .bind(resource_id)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter().map(entry_from_row).collect()
        })
    }

    /// Deletes context rows older than each resource's newest `keep`, at most `batch` of
    /// them; returns how many went. The newest report of a resource is never deleted, so
    /// a replay still ends on the latest live context.
    pub async fn prune_context(&self, keep: i64, batch: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool, sql, {
            Ok(sqlx::query(sql.prune_context)
                .bind(keep.max(1))
                .bind(batch)
                .execute(pool)
                .await?
                .rows_affected())
        })
    }

    /// Like [`Journal::tail`], but without the context reports a later report of the same
    /// resource replaces. For rebuilding a graph, where only the newest live context counts.
    pub async fn replay(&self, after: i64, limit: i64) -> Result<Vec<JournalEntry>, StoreError> {
        on_pool!(self, pool, sql, {
            let rows = sqlx::query(sql.replay)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter().map(entry_from_row).collect()
        })
    }

    /// How far compaction has gone.
    pub async fn compaction_state(&self) -> Result<CompactionState, StoreError> {
        on_pool!(self, pool, sql, {
            let row = sqlx::query(sql.compaction_state).fetch_one(pool).await?;
            Ok(CompactionState {
                compacted_through_seq: row.try_get(0)?,
                history_from_ms: row.try_get(1)?,
                tombstones_through_seq: row.try_get(2)?,
                epoch: row.try_get(3)?,
            })
        })
    }

    /// Takes the compaction run unless a replica took it after `not_since_ms`.
    pub async fn claim_compaction(
        &self,
        now_ms: i64,
        not_since_ms: i64,
    ) -> Result<bool, StoreError> {
        on_pool!(self, pool, sql, {
            Ok(sqlx::query(sql.claim_compaction)
                .bind(now_ms)
                .bind(not_since_ms)
                .execute(pool)
                .await?
                .rows_affected()
                == 1)
        })
    }

    /// Removes what a replay no longer needs from the rows written before `before_ms`:
    /// versions a later version (also before `before_ms`) replaced, the reports and the
    /// deletion of resources deleted by then. Each resource keeps the version in effect
    /// at `before_ms`, so history stays complete from then on.
    ///
    /// Batches of `batch` rows, one transaction each, so writers are never held up long.
    /// Every step leaves a journal whose replay gives the same graph, except the removal
    /// of deletions: a replica that read a resource before its deletion was removed would
    /// keep it. That removal is one transaction which also counts up the epoch, so a
    /// reader can tell (see `KnowledgeStore::catch_up`).
    pub async fn compact(&self, before_ms: i64, batch: i64) -> Result<Compacted, StoreError> {
        let previous = self.compaction_state().await?.compacted_through_seq;
        on_pool!(self, pool, sql, {
            let cutoff: i64 = sqlx::query(sql.compaction_cutoff)
                .bind(before_ms)
                .bind(previous)
                .fetch_one(pool)
                .await?
                .try_get(0)?;
            let mut compacted = Compacted {
                cutoff_seq: cutoff,
                history_from_ms: before_ms,
                rows_removed: 0,
            };
            if cutoff == 0 {
                return Ok(compacted);
            }
            // History before `before_ms` goes; say so before any of it does.
            sqlx::query(sql.mark_history)
                .bind(before_ms)
                .execute(pool)
                .await?;
            let batch_end = |after: i64| async move {
                let end: Option<i64> = sqlx::query(sql.batch_end)
                    .bind(after)
                    .bind(cutoff)
                    .bind(batch)
                    .fetch_one(pool)
                    .await?
                    .try_get(0)?;
                Ok::<_, StoreError>(end)
            };
            // Creation times first: the rows that carry them may go in any later batch.
            let mut after = 0;
            while let Some(end) = batch_end(after).await? {
                sqlx::query(sql.set_created)
                    .bind(after)
                    .bind(end)
                    .bind(cutoff)
                    .execute(pool)
                    .await?;
                after = end;
            }
            let mut after = 0;
            while let Some(end) = batch_end(after).await? {
                let mut tx = pool.begin().await?;
                for statement in [sql.drop_dead_context, sql.drop_superseded] {
                    compacted.rows_removed += sqlx::query(statement)
                        .bind(after)
                        .bind(end)
                        .bind(cutoff)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                tx.commit().await?;
                after = end;
            }
            let mut tx = pool.begin().await?;
            sqlx::query(sql.mark_tombstones)
                .bind(cutoff)
                .bind(previous)
                .execute(&mut *tx)
                .await?;
            compacted.rows_removed += sqlx::query(sql.drop_tombstones)
                .bind(cutoff)
                .bind(previous)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            sqlx::query(sql.finish_compaction)
                .bind(cutoff)
                .execute(pool)
                .await?;
            Ok(compacted)
        })
    }

    pub async fn insert_dead_letter(&self, letter: &NewDeadLetter) -> Result<(), StoreError> {
        on_pool!(self, pool, sql, {
            sqlx::query(sql.insert_dead_letter)
                .bind(letter.tenant.as_deref())
                .bind(&letter.topic)
                .bind(&letter.reason)
                .bind(&letter.payload)
                .bind(letter.payload_len)
                .bind(letter.at_ms)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// A tenant's dead letters, newest first, with ids below `before`.
    pub async fn dead_letters(
        &self,
        tenant: &str,
        before: i64,
        limit: i64,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        on_pool!(self, pool, sql, {
            let rows = sqlx::query(sql.dead_letters)
                .bind(tenant)
                .bind(before)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(DeadLetter {
                        id: row.try_get(0)?,
                        tenant: row.try_get(1)?,
                        topic: row.try_get(2)?,
                        reason: row.try_get(3)?,
                        payload: row.try_get(4)?,
                        payload_len: row.try_get(5)?,
                        at_ms: row.try_get(6)?,
                    })
                })
                .collect()
        })
    }

    /// The last committed journal position.
    pub async fn head(&self) -> Result<i64, StoreError> {
        on_pool!(self, pool, sql, {
            Ok(sqlx::query(sql.head).fetch_one(pool).await?.try_get(0)?)
        })
    }

    /// The identity of this journal (set once, when the schema is created).
    pub async fn journal_id(&self) -> Result<String, StoreError> {
        on_pool!(self, pool, sql, {
            Ok(sqlx::query(sql.journal_id)
                .fetch_one(pool)
                .await?
                .try_get(0)?)
        })
    }

    pub async fn close(&self) {
        match self {
            Journal::Sqlite(pool) => pool.close().await,
            Journal::Postgres(pool) => pool.close().await,
        }
    }
}

/// The outcomes of an all-or-nothing batch that was not written: the refusals stand, the
/// rest is aborted. (The transaction is dropped, so nothing was written.)
/// Where the migration lock of a SQLite file lives; `None` for an in-memory database.
fn migration_lock_path(database: &Path) -> Option<std::path::PathBuf> {
    let name = database.to_str()?;
    if name.is_empty() || name == ":memory:" {
        return None;
    }
    let mut lock = database.as_os_str().to_owned();
    lock.push(".migrate-lock");
    Some(lock.into())
}

/// Opens `path` (creating it) and waits for an exclusive lock on it, held until the file
/// is dropped.
fn lock_file(path: &Path) -> Result<std::fs::File, StoreError> {
    let cannot = |e: std::io::Error| StoreError::DataDir(format!("{}: {e}", path.display()));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(cannot)?;
    file.lock().map_err(cannot)?;
    Ok(file)
}

fn aborted(outcomes: Vec<Result<JournalEntry, Refusal>>) -> Vec<Result<JournalEntry, Refusal>> {
    outcomes
        .into_iter()
        .map(|o| match o {
            Ok(_) => Err(Refusal::Aborted),
            refused => refused,
        })
        .collect()
}

/// The stored state of a resource: version, deleted, created_ms, kind.
type State = (i64, bool, i64, String);
type Current = HashMap<(String, String), State>;

/// The distinct resource ids of a batch, per tenant.
fn ids_by_tenant(batch: &[NewEntry]) -> BTreeMap<&str, Vec<&str>> {
    let mut by_tenant: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for entry in batch {
        by_tenant
            .entry(entry.tenant.as_str())
            .or_default()
            .insert(entry.resource_id.as_str());
    }
    by_tenant
        .into_iter()
        .map(|(tenant, ids)| (tenant, ids.into_iter().collect()))
        .collect()
}

fn collect_current<R: Row>(
    current: &mut Current,
    tenant: &str,
    rows: &[R],
) -> Result<(), StoreError>
where
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> bool: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    for row in rows {
        let id: String = row.try_get(0)?;
        current.insert(
            (tenant.to_owned(), id),
            (
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
            ),
        );
    }
    Ok(())
}

/// The new state of one resource after a batch (its last row in the batch).
struct NewState<'a> {
    tenant: &'a str,
    resource_id: &'a str,
    kind: String,
    version: i64,
    deleted: bool,
    created_ms: i64,
    updated_seq: i64,
}

struct Decided<'a> {
    outcomes: Vec<Result<JournalEntry, Refusal>>,
    accepted: Vec<JournalEntry>,
    states: Vec<NewState<'a>>,
    last_seq: Option<i64>,
}

/// Checks each entry against the current state (and the entries before it in the batch)
/// and assigns journal positions after `head`. Pure: the caller writes the result.
fn decide<'a>(batch: &'a [NewEntry], current: &Current, head: i64, at_ms: i64) -> Decided<'a> {
    let mut seq = head;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut accepted = Vec::with_capacity(batch.len());
    // The state each resource reaches within this batch, and where its state row sits.
    let mut pending: HashMap<(&str, &str), (State, usize)> = HashMap::new();
    let mut states: Vec<NewState<'a>> = Vec::new();
    for entry in batch {
        let key = (entry.tenant.as_str(), entry.resource_id.as_str());
        let state = match pending.get(&key) {
            Some((state, _)) => Some(state.clone()),
            None => current
                .get(&(entry.tenant.clone(), entry.resource_id.clone()))
                .cloned(),
        };
        let (version, live, created_ms, current_kind) = match state {
            Some((version, deleted, created_ms, kind)) => (version, !deleted, created_ms, kind),
            None => (0, false, at_ms, String::new()),
        };
        let live_version = if live { version } else { 0 };
        if let Some(expected) = entry.expected_version
            && expected != live_version
        {
            outcomes.push(Err(Refusal::VersionMismatch {
                expected,
                actual: live_version,
            }));
            continue;
        }
        if entry.create_only && live {
            outcomes.push(Err(Refusal::AlreadyExists { version }));
            continue;
        }
        if entry.must_exist && !live {
            outcomes.push(Err(Refusal::NotFound));
            continue;
        }
        if entry.op == Op::Context {
            // A report changes the live context only: no new version, no state row.
            if current_kind != Kind::Device.as_str() && current_kind != Kind::EdgeNode.as_str() {
                outcomes.push(Err(Refusal::NoLiveContext { kind: current_kind }));
                continue;
            }
            seq += 1;
            let row = JournalEntry {
                seq,
                tenant: entry.tenant.clone(),
                resource_id: entry.resource_id.clone(),
                kind: current_kind,
                version,
                op: Op::Context,
                actor: entry.actor.to_string(),
                source: entry.source,
                at_ms,
                body: entry.body.clone(),
                created_ms: None,
            };
            accepted.push(row.clone());
            outcomes.push(Ok(row));
            continue;
        }
        let op = match entry.op {
            Op::Delete => Op::Delete,
            _ if live => Op::Update,
            _ => Op::Create,
        };
        let created_ms = if live { created_ms } else { at_ms };
        // A delete's row names the kind it removed, for history and events.
        let kind = if op == Op::Delete {
            current_kind
        } else {
            entry.kind.clone()
        };
        seq += 1;
        let new_version = version + 1;
        let row = JournalEntry {
            seq,
            tenant: entry.tenant.clone(),
            resource_id: entry.resource_id.clone(),
            kind: kind.clone(),
            version: new_version,
            op,
            actor: entry.actor.to_string(),
            source: entry.source,
            at_ms,
            body: entry.body.clone(),
            created_ms: None,
        };
        let state = NewState {
            tenant: key.0,
            resource_id: key.1,
            kind: kind.clone(),
            version: new_version,
            deleted: op == Op::Delete,
            created_ms,
            updated_seq: seq,
        };
        let new_state = (new_version, op == Op::Delete, created_ms, kind);
        // One state row per resource: PostgreSQL refuses to upsert a row twice in one statement.
        match pending.get(&key) {
            Some((_, index)) => {
                let index = *index;
                states[index] = state;
                pending.insert(key, (new_state, index));
            }
            None => {
                pending.insert(key, (new_state, states.len()));
                states.push(state);
            }
        }
        accepted.push(row.clone());
        outcomes.push(Ok(row));
    }
    Decided {
        outcomes,
        accepted,
        states,
        last_seq: (seq != head).then_some(seq),
    }
}

fn journal_rows_json(rows: &[JournalEntry]) -> String {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!([
                r.seq,
                r.tenant,
                r.resource_id,
                r.kind,
                r.version,
                r.op.as_str(),
                r.actor,
                r.source.as_str(),
                r.at_ms,
                r.body
            ])
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

fn resource_rows_json(states: &[NewState<'_>]) -> String {
    let rows: Vec<serde_json::Value> = states
        .iter()
        .map(|r| {
            serde_json::json!([
                r.tenant,
                r.resource_id,
                r.kind,
                r.version,
                r.deleted,
                r.created_ms,
                r.updated_seq
            ])
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

fn entry_from_row<R: Row>(row: &R) -> Result<JournalEntry, StoreError>
where
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let op: String = row.try_get(5)?;
    let source: String = row.try_get(7)?;
    Ok(JournalEntry {
        seq: row.try_get(0)?,
        tenant: row.try_get(1)?,
        resource_id: row.try_get(2)?,
        kind: row.try_get(3)?,
        version: row.try_get(4)?,
        op: Op::parse(&op).ok_or_else(|| StoreError::Corrupt(format!("unknown op {op:?}")))?,
        actor: row.try_get(6)?,
        source: ChangeSource::parse(&source)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown source {source:?}")))?,
        at_ms: row.try_get(8)?,
        body: row.try_get(9)?,
        created_ms: row.try_get(10)?,
    })
}
