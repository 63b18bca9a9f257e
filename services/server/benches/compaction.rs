//! Restart time as the journal's history grows, before and after journal compaction.
//!
//! A restart without a usable snapshot rebuilds the graph by replaying the whole journal
//! (`KnowledgeStore::open`). Every update of a resource adds a row that a later version
//! makes useless to that replay; compaction (`KnowledgeStore::compact`) removes those rows,
//! the reports of deleted resources and the deletions themselves. Per backend (SQLite
//! always; PostgreSQL with `--postgres`, on a fresh database dropped at the end):
//!
//! 1. load: `--devices` devices, each written `--versions` times (one create, then
//!    updates) with `--reports` live-context reports interleaved (a round of versions,
//!    then a round of reports), in `write` calls of `--batch-size` changes; then
//!    `--deleted-pct` % of the devices deleted;
//! 2. cold open on the full history, no snapshot (a fresh data directory on the same
//!    journal): median, min and max of `--runs` opens, the graph's size, and the time the
//!    store's own replay query takes alone (same SQL, same batches, one connection) — the
//!    rest of an open is connecting, migrations and applying the rows to the graph;
//! 3. `compact(now)` once: its duration, the rows it removed, and the rows left (counted
//!    with `SELECT count(*) FROM journal`: sequence numbers are not a count);
//! 4. cold open after compaction, no snapshot, the same way, and the ratio after/before;
//! 5. cold open from a snapshot, for reference: one written by the store that ran the
//!    compaction, and one written by a replica rebuilt after it;
//! 6. a correctness check, not a timing: after every open the sorted N-Quads export equals
//!    the writer's before compaction (the bench fails if not).
//!
//! The journal stays in the page cache between opens: "cold" means a process rebuilding
//! its graph, not a cold disk.
//!
//! `cargo bench -p iotcane-server --bench compaction` (SQLite only), or
//! `cargo bench -p iotcane-server --bench compaction -- --postgres postgres://postgres@127.0.0.1:5432/test`
//! (the database named is only used to create and drop the bench's own).

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use iotcane_model::{LiveContext, Resource, ResourceId, Tenant};
use iotcane_store::{Change, ChangeSource, KnowledgeStore, StoreConfig};
use serde_json::json;
use sqlx::{ConnectOptions, Connection, Row};

const TENANT: &str = "bench";
/// The store's replay batch (`TAIL_BATCH` in iotcane-store).
const REPLAY_BATCH: i64 = 10_000;
/// The store's replay query (`Sql::replay` in iotcane-store's journal), per dialect.
const REPLAY_SQLITE: &str = "SELECT seq, tenant, resource_id, kind, version, op, actor, source, at_ms, body, created_ms \
     FROM journal AS j WHERE seq > ?1 AND (op <> 'context' OR NOT EXISTS (\
     SELECT 1 FROM journal AS n WHERE n.tenant = j.tenant AND n.resource_id = j.resource_id \
     AND n.op = 'context' AND n.seq > j.seq)) ORDER BY seq LIMIT ?2";
const REPLAY_POSTGRES: &str = "SELECT seq, tenant, resource_id, kind, version, op, actor, source, at_ms, body, created_ms \
     FROM journal AS j WHERE seq > $1 AND (op <> 'context' OR NOT EXISTS (\
     SELECT 1 FROM journal AS n WHERE n.tenant = j.tenant AND n.resource_id = j.resource_id \
     AND n.op = 'context' AND n.seq > j.seq)) ORDER BY seq LIMIT $2";

#[derive(Debug, Parser)]
#[command(about = "IoT-CANE journal compaction benchmark (full-replay restart before and after)")]
struct Args {
    /// Devices written.
    #[arg(long, default_value_t = 10_000)]
    devices: usize,
    /// Versions of each device (one create, then updates).
    #[arg(long, default_value_t = 10)]
    versions: usize,
    /// Live-context reports per device, interleaved with the versions.
    #[arg(long, default_value_t = 10)]
    reports: usize,
    /// The share of the devices deleted at the end, in percent.
    #[arg(long, default_value_t = 10)]
    deleted_pct: usize,
    /// Changes per `write` call while loading.
    #[arg(long, default_value_t = 1_000)]
    batch_size: usize,
    /// Opens per measurement (median, min and max reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// A PostgreSQL server URL (any database on it): also run on a fresh database there.
    #[arg(long)]
    postgres: Option<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.devices >= 1 && args.versions >= 1 && args.runs >= 1 && args.batch_size >= 1,
        "--devices, --versions, --runs and --batch-size must be ≥ 1"
    );
    ensure!(args.deleted_pct <= 100, "--deleted-pct is a percentage");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let deleted = (0..args.devices)
        .filter(|&d| is_deleted(d, args.deleted_pct))
        .count();
    println!("# IoT-CANE journal compaction: full-replay restart before and after");
    println!();
    println!(
        "host:     {} cores, /proc/loadavg {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    println!(
        "workload: {} devices × {} versions (1 create + {} updates) and {} live-context \
         reports each (interleaved by rounds), {deleted} devices ({} %) deleted at the end; \
         {} changes per write; {} opens per figure",
        args.devices,
        args.versions,
        args.versions - 1,
        args.reports,
        args.deleted_pct,
        args.batch_size,
        args.runs
    );
    println!();

    let mut results = Vec::new();
    let sqlite = runtime.block_on(run(&args, Backend::Sqlite))?;
    results.push(sqlite);
    if let Some(server) = &args.postgres {
        let name = format!("iotcane_bench_compaction_{}", std::process::id());
        let url = runtime.block_on(support::fresh_database(server, &name))?;
        let result = runtime.block_on(run(&args, Backend::Postgres(url)));
        // Dropped whatever happened to the run.
        let dropped = runtime.block_on(drop_database(server, &name));
        results.push(result?);
        dropped?;
    }
    print_table(&args, deleted, &results);
    Ok(())
}

/// Whether device `d` is among the deleted ones (`pct` of every hundred).
fn is_deleted(d: usize, pct: usize) -> bool {
    d % 100 < pct
}

#[derive(Debug, Clone)]
enum Backend {
    /// The journal file is made in the run's temporary directory.
    Sqlite,
    Postgres(String),
}

/// Where the journal is, for the bench's own queries.
#[derive(Debug, Clone)]
enum Db {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Db {
    fn name(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "SQLite",
            Db::Postgres(_) => "PostgreSQL",
        }
    }

    fn url(&self) -> String {
        match self {
            Db::Sqlite(path) => path.display().to_string(),
            Db::Postgres(url) => url.clone(),
        }
    }

    /// `SELECT count(*)` of whatever `sql` selects.
    async fn count(&self, sql: &'static str) -> anyhow::Result<i64> {
        Ok(match self {
            Db::Sqlite(path) => {
                let mut conn = sqlite_options(path).connect().await?;
                let n = sqlx::query_scalar(sql).fetch_one(&mut conn).await?;
                conn.close().await?;
                n
            }
            Db::Postgres(url) => {
                let mut conn = sqlx::PgConnection::connect(url).await?;
                let n = sqlx::query_scalar(sql).fetch_one(&mut conn).await?;
                conn.close().await?;
                n
            }
        })
    }

    /// The store's replay query alone, batch after batch as an open runs it, on one
    /// connection (made before the clock starts); returns its time and the rows read.
    async fn time_replay_query(&self) -> anyhow::Result<(Duration, usize)> {
        macro_rules! replay {
            ($conn:expr, $sql:expr) => {{
                let conn = $conn;
                let started = Instant::now();
                let (mut after, mut rows_read) = (0_i64, 0_usize);
                loop {
                    let rows = sqlx::query($sql)
                        .bind(after)
                        .bind(REPLAY_BATCH)
                        .fetch_all(&mut *conn)
                        .await?;
                    let Some(last) = rows.last() else { break };
                    after = last.try_get(0)?;
                    // Decoded as the store decodes them, body included.
                    for row in &rows {
                        let _: (String, String, Option<String>) =
                            (row.try_get(1)?, row.try_get(2)?, row.try_get(9)?);
                    }
                    rows_read += rows.len();
                }
                (started.elapsed(), rows_read)
            }};
        }
        Ok(match self {
            Db::Sqlite(path) => {
                let mut conn = sqlite_options(path).connect().await?;
                let timed = replay!(&mut conn, REPLAY_SQLITE);
                conn.close().await?;
                timed
            }
            Db::Postgres(url) => {
                let mut conn = sqlx::PgConnection::connect(url).await?;
                let timed = replay!(&mut conn, REPLAY_POSTGRES);
                conn.close().await?;
                timed
            }
        })
    }
}

fn sqlite_options(path: &Path) -> sqlx::sqlite::SqliteConnectOptions {
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
}

const COUNT_ROWS: &str = "SELECT count(*) FROM journal";
/// The rows a replay applies (the replay query's condition, counted).
const COUNT_REPLAYED: &str = "SELECT count(*) FROM journal AS j WHERE op <> 'context' OR NOT EXISTS (\
     SELECT 1 FROM journal AS n WHERE n.tenant = j.tenant AND n.resource_id = j.resource_id \
     AND n.op = 'context' AND n.seq > j.seq)";

/// Median, min and max of some timed runs.
#[derive(Debug, Clone, Copy)]
struct Timing {
    median: Duration,
    min: Duration,
    max: Duration,
}

impl Timing {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Self {
            median: samples[samples.len() / 2],
            min: samples[0],
            max: samples[samples.len() - 1],
        }
    }

    fn text(&self) -> String {
        format!(
            "{} [{} – {}]",
            fmt_dur(self.median),
            fmt_dur(self.min),
            fmt_dur(self.max)
        )
    }
}

/// One journal's figures.
#[derive(Debug)]
struct Figures {
    backend: &'static str,
    head: i64,
    load: Duration,
    rows_before: i64,
    replayed_before: i64,
    open_before: Timing,
    query_before: Duration,
    quads: usize,
    compact: Duration,
    rows_removed: u64,
    expected_removed: u64,
    rows_after: i64,
    replayed_after: i64,
    open_after: Timing,
    query_after: Duration,
    /// Opens from a snapshot the compacting store wrote (its seq is the head).
    open_snapshot: Timing,
    snapshot_seq: i64,
    /// Opens with a snapshot a replica rebuilt after compaction wrote.
    open_rebuilt_snapshot: Timing,
    rebuilt_snapshot_seq: i64,
    tombstones_through_seq: i64,
    exports_checked: usize,
}

impl Figures {
    fn ratio(&self) -> f64 {
        secs(self.open_after.median) / secs(self.open_before.median)
    }

    fn rebuilt_snapshot_used(&self) -> bool {
        self.rebuilt_snapshot_seq >= self.tombstones_through_seq
    }
}

async fn run(args: &Args, backend: Backend) -> anyhow::Result<Figures> {
    let root = tempfile::Builder::new()
        .prefix("iotcane-bench-compaction-")
        .tempdir()?;
    let db = match backend {
        Backend::Sqlite => Db::Sqlite(root.path().join("journal.db")),
        Backend::Postgres(url) => Db::Postgres(url),
    };
    let name = db.name();
    println!("## {name}  [load average {}]", load_average());
    let config = |dir: &str| {
        let mut config = StoreConfig::new(root.path().join(dir));
        config.database_url = db.url();
        config.journal_retention = None;
        config
    };
    let tenant: Tenant = TENANT.parse()?;

    // --- The history.
    let writer = KnowledgeStore::open(config("writer")).await?;
    let started = Instant::now();
    let rounds = args.versions.max(args.reports);
    for round in 0..rounds {
        if round < args.versions {
            let mut changes = Vec::with_capacity(args.devices);
            for d in 0..args.devices {
                changes.push(Change::put(tenant.clone(), device(d, round)?));
            }
            write_all(&writer, changes, args.batch_size).await?;
        }
        if round < args.reports {
            let mut changes = Vec::with_capacity(args.devices);
            for d in 0..args.devices {
                changes.push(Change::Context {
                    tenant: tenant.clone(),
                    id: device_id(d)?,
                    live: live(d, round)?,
                });
            }
            write_all(&writer, changes, args.batch_size).await?;
        }
        eprintln!(
            "{name}: round {}/{rounds} written, t+{:.0} s",
            round + 1,
            secs(started.elapsed())
        );
    }
    let mut deletions = Vec::new();
    for d in (0..args.devices).filter(|&d| is_deleted(d, args.deleted_pct)) {
        deletions.push(Change::Delete {
            tenant: tenant.clone(),
            id: device_id(d)?,
            expected_version: None,
        });
    }
    let deleted = deletions.len();
    write_all(&writer, deletions, args.batch_size).await?;
    let load = started.elapsed();
    let head = writer.journal_head().await?;
    ensure!(writer.applied_seq() == head, "the writer did not apply all");
    let reference = export_lines(&writer)?;
    writer.close().await;
    drop(writer);
    let rows_before = db.count(COUNT_ROWS).await?;
    let replayed_before = db.count(COUNT_REPLAYED).await?;
    println!(
        "  loaded: head {head}, {rows_before} journal rows, in {} ({:.0} rows/s)",
        fmt_dur(load),
        rows_before as f64 / secs(load)
    );
    println!("  a replay applies {replayed_before} of them (the newest report of each device)");

    // --- Cold opens on the full history.
    let mut exports_checked = 0;
    let (open_before, compactor) = cold_opens(
        args.runs,
        "before",
        |i| config(&format!("before-{i}")),
        &reference,
        &mut exports_checked,
    )
    .await?;
    let quads = compactor.graph_len()?;
    let (query_before, read) = db.time_replay_query().await?;
    ensure!(
        read as i64 == replayed_before,
        "the replay query read {read} rows, {replayed_before} counted"
    );
    println!(
        "  cold open, full history, no snapshot: {}; graph {quads} quads; \
         the replay query alone {}",
        open_before.text(),
        fmt_dur(query_before)
    );

    // --- Compaction of everything written so far.
    let before_ms = now_ms() + 1;
    while now_ms() <= before_ms {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    eprintln!("{name}: compacting");
    let started = Instant::now();
    let compacted = compactor.compact(before_ms).await?;
    let compact = started.elapsed();
    ensure!(
        compacted.cutoff_seq == head,
        "compaction stopped at seq {} of {head}",
        compacted.cutoff_seq
    );
    let rows_after = db.count(COUNT_ROWS).await?;
    let replayed_after = db.count(COUNT_REPLAYED).await?;
    let live = (args.devices - deleted) as u64;
    let expected_removed = live * (args.versions as u64 - 1)
        + deleted as u64 * (args.versions + args.reports + 1) as u64;
    println!(
        "  compact(now): {}, {} rows removed (the workload predicts {expected_removed}); \
         {rows_after} rows left, of which a replay applies {replayed_after}",
        fmt_dur(compact),
        compacted.rows_removed
    );
    if rows_before - rows_after != compacted.rows_removed as i64 {
        println!(
            "  note: the row count fell by {}, compaction reported {}",
            rows_before - rows_after,
            compacted.rows_removed
        );
    }
    let state = compactor.compaction_state().await?;

    // --- Cold opens on the compacted journal.
    let (open_after, rebuilt) = cold_opens(
        args.runs,
        "after",
        |i| config(&format!("after-{i}")),
        &reference,
        &mut exports_checked,
    )
    .await?;
    let (query_after, read) = db.time_replay_query().await?;
    ensure!(
        read as i64 == replayed_after,
        "the replay query read {read} rows, {replayed_after} counted"
    );
    println!(
        "  cold open after compaction, no snapshot: {}; the replay query alone {}",
        open_after.text(),
        fmt_dur(query_after)
    );
    println!(
        "  after / before: {:.2}",
        secs(open_after.median) / secs(open_before.median)
    );

    // --- For reference: opens from a snapshot.
    let snapshot = compactor
        .snapshot()
        .await?
        .context("the compacting store wrote no snapshot")?;
    let snapshot_dir = compactor.config().data_dir.clone();
    compactor.close().await;
    drop(compactor);
    let rebuilt_snapshot = rebuilt
        .snapshot()
        .await?
        .context("the rebuilt store wrote no snapshot")?;
    let rebuilt_dir = rebuilt.config().data_dir.clone();
    rebuilt.close().await;
    drop(rebuilt);
    let reuse = |dir: &Path| {
        let mut config = StoreConfig::new(dir);
        config.database_url = db.url();
        config.journal_retention = None;
        config
    };
    let (open_snapshot, store) = cold_opens(
        args.runs,
        "snapshot",
        |_| reuse(&snapshot_dir),
        &reference,
        &mut exports_checked,
    )
    .await?;
    store.close().await;
    drop(store);
    println!(
        "  cold open from the snapshot the compacting store wrote (seq {}): {}",
        snapshot.seq,
        open_snapshot.text()
    );
    let (open_rebuilt_snapshot, store) = cold_opens(
        args.runs,
        "rebuilt snapshot",
        |_| reuse(&rebuilt_dir),
        &reference,
        &mut exports_checked,
    )
    .await?;
    store.close().await;
    drop(store);
    let used = rebuilt_snapshot.seq >= state.tombstones_through_seq;
    println!(
        "  cold open with the snapshot a replica rebuilt after compaction wrote (seq {}; \
         deletions removed through seq {}: {}): {}",
        rebuilt_snapshot.seq,
        state.tombstones_through_seq,
        if used {
            "used"
        } else {
            "ignored, the journal is replayed"
        },
        open_rebuilt_snapshot.text()
    );
    println!("  exports: {exports_checked} opens, every one equal to the writer's graph");
    println!();

    Ok(Figures {
        backend: name,
        head,
        load,
        rows_before,
        replayed_before,
        open_before,
        query_before,
        quads,
        compact,
        rows_removed: compacted.rows_removed,
        expected_removed,
        rows_after,
        replayed_after,
        open_after,
        query_after,
        open_snapshot,
        snapshot_seq: snapshot.seq,
        open_rebuilt_snapshot,
        rebuilt_snapshot_seq: rebuilt_snapshot.seq,
        tombstones_through_seq: state.tombstones_through_seq,
        exports_checked,
    })
}

/// `runs` timed opens, each checked against `reference` (untimed); every store but the
/// last is closed, the last is returned. `config(i)` is the configuration of open `i`.
async fn cold_opens(
    runs: usize,
    label: &str,
    config: impl Fn(usize) -> StoreConfig,
    reference: &[String],
    checked: &mut usize,
) -> anyhow::Result<(Timing, KnowledgeStore)> {
    let mut samples = Vec::new();
    let mut last = None;
    for i in 0..runs {
        if let Some(store) = last.take() {
            KnowledgeStore::close(&store).await;
        }
        let started = Instant::now();
        let store = KnowledgeStore::open(config(i)).await?;
        let elapsed = started.elapsed();
        samples.push(elapsed);
        let lines = export_lines(&store)?;
        if lines != reference {
            let first = lines
                .iter()
                .zip(reference)
                .find(|(a, b)| a != b)
                .map_or_else(
                    || "(one export is a prefix of the other)".to_owned(),
                    |(a, b)| format!("opened: {a}\nexpected: {b}"),
                );
            bail!(
                "open {label} {}: the graph differs from the writer's ({} quads, {} expected)\n{first}",
                i + 1,
                lines.len(),
                reference.len()
            );
        }
        *checked += 1;
        eprintln!("open {label} {}/{runs}: {}", i + 1, fmt_dur(elapsed));
        last = Some(store);
    }
    let store = last.context("no runs")?;
    Ok((Timing::of(samples), store))
}

/// Writes `changes` in `write` calls of `batch` changes; every change must be accepted.
async fn write_all(
    store: &KnowledgeStore,
    mut changes: Vec<Change>,
    batch: usize,
) -> anyhow::Result<()> {
    while !changes.is_empty() {
        let rest = changes.split_off(batch.min(changes.len()));
        for result in store.write(changes, "bench", ChangeSource::Cli).await? {
            result.context("a change was refused")?;
        }
        changes = rest;
    }
    Ok(())
}

fn device_id(d: usize) -> anyhow::Result<ResourceId> {
    Ok(format!("d-{d}").parse()?)
}

/// Version `round + 1` of device `d`; every other device carries a live context in its
/// description, which replaces the reported one.
fn device(d: usize, round: usize) -> anyhow::Result<Resource> {
    let mut value = json!({
        "id": format!("d-{d}"),
        "kind": "device",
        "name": format!("Sensor {d} v{}", round + 1),
        "observes": ["heartRate", "temperature"],
        "protocols": ["ble", "mqtt"],
        "samplingRateHz": 1.0 + (round % 5) as f64,
        "site": format!("ward-{}", d % 50),
    });
    if d.is_multiple_of(2) {
        value["live"] = json!({"status": "online", "batteryPct": 80.0 - round as f64});
    }
    Ok(Resource::from_json(value)?)
}

/// Report `round` of device `d`.
fn live(d: usize, round: usize) -> anyhow::Result<Box<LiveContext>> {
    let mut live: LiveContext = serde_json::from_value(json!({
        "status": if round % 7 == 6 { "offline" } else { "online" },
        "loadPct": ((d + round * 13) % 100) as f64,
        "location": {"lat": 45.5, "lon": 9.2},
        "properties": {"mode": "eco", "level": round % 4},
    }))?;
    live.normalize();
    Ok(Box::new(live))
}

/// The store's whole graph as sorted N-Quads lines: equal exports mean equal graphs.
fn export_lines(store: &KnowledgeStore) -> anyhow::Result<Vec<String>> {
    let bytes = store.export(None, oxigraph::io::RdfFormat::NQuads, Vec::new())?;
    let mut lines: Vec<String> = String::from_utf8(bytes)?
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort_unstable();
    Ok(lines)
}

async fn drop_database(server: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(server).await?;
    // FORCE: a pool the stores closed may still be letting go of its connections.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .with_context(|| format!("dropping database {name}"))?;
    conn.close().await?;
    Ok(())
}

fn print_table(args: &Args, deleted: usize, results: &[Figures]) {
    println!("## summary");
    println!();
    println!(
        "{} devices × {} versions + {} reports each, {deleted} deleted; median [min – max] \
         of {} opens; load average now {}",
        args.devices,
        args.versions,
        args.reports,
        args.runs,
        load_average()
    );
    println!();
    let header = results
        .iter()
        .map(|f| f.backend)
        .collect::<Vec<_>>()
        .join(" | ");
    println!("| figure | {header} |");
    println!("|---|{}", "---:|".repeat(results.len()));
    let row = |name: &str, cell: fn(&Figures) -> String| {
        let cells = results.iter().map(cell).collect::<Vec<_>>().join(" | ");
        println!("| {name} | {cells} |");
    };
    row("journal rows written (head)", |f| f.head.to_string());
    row("load", |f| {
        format!(
            "{} ({:.0} rows/s)",
            fmt_dur(f.load),
            f.rows_before as f64 / secs(f.load)
        )
    });
    row("rows in the journal / applied by a replay, before", |f| {
        format!("{} / {}", f.rows_before, f.replayed_before)
    });
    row("cold open, full history, no snapshot", |f| {
        f.open_before.text()
    });
    row("… of which the replay query alone", |f| {
        fmt_dur(f.query_before)
    });
    row("graph size (quads)", |f| f.quads.to_string());
    row("compact(now)", |f| fmt_dur(f.compact));
    row("rows removed (workload predicts)", |f| {
        format!("{} ({})", f.rows_removed, f.expected_removed)
    });
    row("rows in the journal / applied by a replay, after", |f| {
        format!("{} / {}", f.rows_after, f.replayed_after)
    });
    row("cold open after compaction, no snapshot", |f| {
        f.open_after.text()
    });
    row("… of which the replay query alone", |f| {
        fmt_dur(f.query_after)
    });
    row("open after / open before (medians)", |f| {
        format!("{:.2}", f.ratio())
    });
    row("cold open from the compacting store's snapshot", |f| {
        format!("{} (seq {})", f.open_snapshot.text(), f.snapshot_seq)
    });
    row("cold open with a rebuilt replica's snapshot", |f| {
        format!(
            "{} (seq {} {} deletions removed through {}: {})",
            f.open_rebuilt_snapshot.text(),
            f.rebuilt_snapshot_seq,
            if f.rebuilt_snapshot_used() {
                "≥"
            } else {
                "<"
            },
            f.tombstones_through_seq,
            if f.rebuilt_snapshot_used() {
                "used"
            } else {
                "ignored"
            }
        )
    });
    row("exports equal to the writer's graph", |f| {
        format!("yes ({} opens)", f.exports_checked)
    });
}

// ---------------------------------------------------------------------------------------
// Small helpers.

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// /proc/loadavg as it reads (1, 5 and 15 minutes, runnable/total, last pid).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "n/a".to_owned())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn fmt_dur(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}
