//! The foundation's figures, measured end to end:
//!
//! 1. bulk import of a generated knowledge base through the real `iotcane import` binary
//!    (resources/s, wall time, the child's peak RSS), with SQLite durability `full` and
//!    `normal`;
//! 2. oxigraph's own bulk loader on the same data (exported as N-Quads by `iotcane
//!    export`), as the baseline the import is compared with;
//! 3. cold start (`KnowledgeStore::open`) from a snapshot plus a journal tail;
//! 4. the latency of one journaled write acknowledged on SQLite, `full` and `normal`;
//! 5. a summary table, with the measured bottleneck of every missed target (an in-process
//!    split of the import path: JSON parse, validation, journal append, graph apply).
//!
//! `cargo bench -p iotcane-server --bench knowledge` runs it at full size (100,000
//! devices, 1,000 edge nodes, 500 cloud offerings); `-- --devices 10000` and the other
//! flags (`-- --help`) scale it down. Everything generated is deterministic (a fixed-seed
//! LCG), lives in one temporary directory removed at the end, and every child process is
//! waited for (or killed on timeout).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use iotcane_model::formats::{self, Format};
use iotcane_model::{Resource, Tenant};
use iotcane_store::{
    Change, ChangeSource, KnowledgeStore, SqliteDurability, StoreConfig, decode_body,
    format_time_ms,
};
use oxigraph::io::RdfFormat;
use oxigraph::model::vocab::xsd;
use oxigraph::model::{Literal, Quad};
use serde_json::{Value, json};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The binary under test, built by Cargo for this bench target.
const IOTCANE: &str = env!("CARGO_BIN_EXE_iotcane");
const TENANT: &str = "bench";
/// The import's default snapshot threshold (`snapshot_every_changes`).
const DEFAULT_SNAPSHOT_EVERY: usize = 50_000;
/// Every generated value derives from this seed.
const SEED: u64 = 0x0107_CA4E;

const TARGET_IMPORT_PER_SEC: f64 = 50_000.0;
const TARGET_RSS_BYTES: u64 = 2 << 30;
const TARGET_COLD_START: Duration = Duration::from_secs(5);
const TARGET_WRITE_P50: Duration = Duration::from_millis(2);

#[derive(Debug, Parser)]
#[command(about = "IoT-CANE knowledge store benchmark (bulk import, cold start, write latency)")]
struct Args {
    /// Devices in the generated knowledge base.
    #[arg(long, default_value_t = 100_000)]
    devices: usize,
    /// Edge nodes (four per site; devices are spread over the sites).
    #[arg(long, default_value_t = 1_000)]
    edges: usize,
    /// Cloud offerings.
    #[arg(long, default_value_t = 500)]
    clouds: usize,
    /// Resources per journal transaction of the import.
    #[arg(long, default_value_t = 5_000)]
    batch_size: usize,
    /// Updated devices in the journal tail replayed by the cold start.
    #[arg(long, default_value_t = 10_000)]
    tail: usize,
    /// Cold starts to time (the median is reported).
    #[arg(long, default_value_t = 3)]
    cold_runs: usize,
    /// Sequential single-resource writes timed per durability.
    #[arg(long, default_value_t = 2_000)]
    writes: usize,
    /// Resources already in the store before the write latency is measured.
    #[arg(long, default_value_t = 10_000)]
    write_base: usize,
    /// Devices imported in-process to split the import's time into phases.
    #[arg(long, default_value_t = 20_000)]
    split_items: usize,
    /// Skip the second bulk import with SQLite durability `normal`.
    #[arg(long)]
    skip_normal_import: bool,
    /// Where the temporary directory goes (default: the system's; use a real disk, not
    /// tmpfs, or durability costs nothing).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Kill a child `iotcane` that runs longer than this.
    #[arg(long, default_value_t = 1_800)]
    child_timeout_secs: u64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.devices >= 1 && args.edges >= 1,
        "--devices and --edges must be ≥ 1"
    );
    ensure!(
        args.batch_size >= 1 && args.cold_runs >= 1 && args.writes >= 1,
        "counts must be ≥ 1"
    );
    let capture = Capture::install();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let root = match &args.work_dir {
        Some(dir) => tempfile::Builder::new()
            .prefix("iotcane-bench-")
            .tempdir_in(dir)?,
        None => tempfile::Builder::new()
            .prefix("iotcane-bench-")
            .tempdir()?,
    };
    let bench = Bench {
        args,
        root: root.path().to_owned(),
        capture,
        started: Instant::now(),
    };
    let result = bench.run(&runtime);
    // The store's pools close before the directory goes.
    drop(runtime);
    root.close().context("removing the temporary directory")?;
    result
}

struct Bench {
    args: Args,
    root: PathBuf,
    capture: Capture,
    started: Instant,
}

impl Bench {
    /// A section header, with how far into the run it starts and the host's load (the
    /// figures are only as quiet as the machine).
    fn section(&self, title: &str) {
        println!(
            "## {title}  [t+{:.0} s, load {}]",
            secs(self.started.elapsed()),
            load_average()
        );
    }

    fn run(&self, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
        let a = &self.args;
        let total = a.devices + a.edges + a.clouds;
        println!("# IoT-CANE knowledge benchmark");
        println!();
        println!("binary:    {IOTCANE}");
        println!("work dir:  {}", self.root.display());
        println!(
            "sizes:     {} devices, {} edge nodes, {} cloud offerings = {total} resources; \
             batch {}; tail {}",
            a.devices, a.edges, a.clouds, a.batch_size, a.tail
        );
        println!(
            "host:      {} cores, load average {}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            load_average()
        );
        println!();

        // --- The knowledge base, as the NDJSON a user would import.
        let kb = self.root.join("kb.ndjson");
        let t = Instant::now();
        let kbgen = Generator::new(a.devices, a.edges, a.clouds);
        let bytes = write_ndjson(&kb, kbgen.knowledge_base())?;
        println!(
            "generated {total} resources, {} of NDJSON, in {}",
            fmt_bytes(bytes),
            fmt_dur(t.elapsed())
        );
        println!();

        // --- 1. Bulk import, durability full (the default), through the real binary.
        self.section("bulk import, SQLite durability full");
        // A scaled-down run still needs the snapshot the full-size import writes.
        let snapshot_every = (total < DEFAULT_SNAPSHOT_EVERY).then(|| total.to_string());
        let mut env: Vec<(&str, &str)> = Vec::new();
        if let Some(n) = &snapshot_every {
            env.push(("IOTCANE_SNAPSHOT_EVERY_CHANGES", n));
        }
        let data = self.root.join("data-full");
        let full = self.import(&kb, &data, &env, "full")?;
        ensure!(
            full.accepted == total,
            "import accepted {} of {total}",
            full.accepted
        );
        full.print();

        // The real graph size, from an in-process open (snapshot only, no tail yet).
        let (quads, open_snapshot_only) = rt.block_on(async {
            let t = Instant::now();
            let store = KnowledgeStore::open(StoreConfig::new(&data)).await?;
            let elapsed = t.elapsed();
            let quads = store.graph_len()?;
            let tenant: Tenant = TENANT.parse()?;
            ensure!(
                store.count(&tenant, None)? == total,
                "the graph lacks resources"
            );
            store.close().await;
            anyhow::Ok((quads, elapsed))
        })?;
        let meta_quads = 5 * total;
        let other_quads = kbgen.edge_and_cloud_quads()?;
        let device_triples = (quads - meta_quads - other_quads) as f64 / a.devices as f64;
        println!(
            "  graph: {quads} quads = {} description triples \
             + {meta_quads} version-metadata quads; \
             {device_triples:.1} description triples per device ({:.1} quads with metadata)",
            quads - meta_quads,
            device_triples + 5.0,
        );
        println!(
            "  open after import (snapshot, empty tail): {}",
            fmt_dur(open_snapshot_only)
        );
        println!();

        // --- 1b. The same import with durability normal.
        let normal = if a.skip_normal_import {
            None
        } else {
            self.section("bulk import, SQLite durability normal");
            let dir = self.root.join("data-normal");
            let mut env = env.clone();
            env.push(("IOTCANE_SQLITE_DURABILITY", "normal"));
            let run = self.import(&kb, &dir, &env, "normal")?;
            ensure!(
                run.accepted == total,
                "import accepted {} of {total}",
                run.accepted
            );
            run.print();
            println!();
            fs::remove_dir_all(&dir)?;
            Some(run)
        };

        // --- 2. Baseline: oxigraph's bulk loader on the same quads.
        self.section("baseline: oxigraph bulk loader (in memory, N-Quads from `iotcane export`)");
        let nq = self.root.join("export.nq");
        let export = self.child(
            &[
                "export",
                "--format",
                "nquads",
                "--tenant",
                TENANT,
                "-o",
                path_str(&nq)?,
                "--data-dir",
                path_str(&data)?,
            ],
            &[],
            "export",
        )?;
        ensure!(
            export.status.success(),
            "iotcane export failed: {}",
            export.log_tail
        );
        let baseline = baseline_load(&nq)?;
        ensure!(
            baseline.quads == quads,
            "oxigraph loaded {} quads, the store holds {quads}",
            baseline.quads
        );
        println!(
            "  export (open + write {}): {}",
            fmt_bytes(baseline.file_bytes),
            fmt_dur(export.wall)
        );
        println!(
            "  load_from_slice + commit: {} for {} quads = {:.0} quads/s \
             ({:.0} resources/s); +{} RSS",
            fmt_dur(baseline.load),
            baseline.quads,
            baseline.quads as f64 / secs(baseline.load),
            total as f64 / secs(baseline.load),
            fmt_bytes(baseline.rss_growth)
        );
        println!(
            "  our import ÷ oxigraph load: ×{:.1} end to end, ×{:.1} for the write phase alone",
            secs(full.wall) / secs(baseline.load),
            secs(full.write_phase) / secs(baseline.load)
        );
        println!();
        fs::remove_file(&nq)?;

        // --- 3. Cold start: snapshot plus a journal tail of `tail` updated devices.
        self.section("cold start: snapshot + journal tail");
        let snapshots_before = snapshot_seqs(&data)?;
        let Some(&snapshot_seq) = snapshots_before.last() else {
            bail!("the import wrote no snapshot");
        };
        let tail_file = self.root.join("tail.ndjson");
        write_ndjson(&tail_file, kbgen.tail_updates(a.tail))?;
        let tail = self.import(
            &tail_file,
            &data,
            &[("IOTCANE_SNAPSHOT_EVERY_CHANGES", "1000000")],
            "tail",
        )?;
        ensure!(
            tail.accepted == a.tail.min(a.devices),
            "tail import accepted {}",
            tail.accepted
        );
        ensure!(
            snapshot_seqs(&data)? == snapshots_before,
            "the tail import wrote a snapshot"
        );
        println!(
            "  snapshot at seq {snapshot_seq}; tail import of {} updates: {}",
            tail.accepted,
            fmt_dur(tail.wall)
        );
        let cold = self.cold_starts(rt, &data, quads)?;
        for (i, c) in cold.iter().enumerate() {
            println!(
                "  run {}: {}  (connect + snapshot load + index: {}; replay of {} rows: {}; \
                 graph len for the log line: {})",
                i + 1,
                fmt_dur(c.total),
                fmt_dur(c.snapshot),
                c.replayed,
                fmt_dur(c.replay()),
                fmt_dur(c.graph_len)
            );
        }
        // The median run, whole, so its split adds up.
        let mut by_total: Vec<&ColdStart> = cold.iter().collect();
        by_total.sort_by_key(|c| c.total);
        let median_run = by_total[by_total.len() / 2];
        println!("  median: {}", fmt_dur(median_run.total));
        println!();
        let cold = *median_run;
        fs::remove_dir_all(&data)?;

        // --- 5 (inputs). Where the import's time goes, phase by phase, in-process.
        self.section("where the import's time goes (in-process, µs per resource)");
        let split = self.split(rt, &kb, &kbgen)?;
        split.print();
        println!();

        // --- 4. One journaled write acknowledged on SQLite.
        self.section(&format!(
            "journaled write latency ({} sequential `write_one` updates, {} resources stored)",
            a.writes,
            a.write_base.min(a.devices)
        ));
        let w_full = self.write_latency(rt, &kbgen, SqliteDurability::Full)?;
        w_full.print("full");
        let w_normal = self.write_latency(rt, &kbgen, SqliteDurability::Normal)?;
        w_normal.print("normal");
        println!();

        // --- 5. The summary.
        self.section("summary");
        Summary {
            total,
            full,
            normal,
            baseline,
            cold,
            split,
            w_full,
            w_normal,
        }
        .print();
        Ok(())
    }

    /// `iotcane import FILE --tenant bench --batch-size N --json` into `data`.
    fn import(
        &self,
        file: &Path,
        data: &Path,
        env: &[(&str, &str)],
        label: &str,
    ) -> anyhow::Result<ImportRun> {
        // Neither the CLI nor the store creates the data directory.
        fs::create_dir_all(data)?;
        let batch = self.args.batch_size.to_string();
        let run = self.child(
            &[
                "import",
                path_str(file)?,
                "--tenant",
                TENANT,
                "--batch-size",
                &batch,
                "--json",
                "--data-dir",
                path_str(data)?,
            ],
            env,
            label,
        )?;
        ImportRun::from_child(run)
    }

    /// Runs the binary to completion, sampling its peak RSS and timestamping its output.
    fn child(&self, args: &[&str], env: &[(&str, &str)], label: &str) -> anyhow::Result<ChildRun> {
        let log = self.root.join(format!("{label}.log"));
        let mut cmd = Command::new(IOTCANE);
        cmd.args(args)
            // No ./iotcane.toml and no inherited IOTCANE_* settings: only what we pass.
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log)?);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("IOTCANE_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(env.iter().copied());
        let start = Instant::now();
        let mut child = Reaped(
            cmd.spawn()
                .with_context(|| format!("cannot run {IOTCANE}"))?,
        );
        let pid = child.0.id();
        let stdout = child.0.stdout.take().context("child stdout")?;
        // Lines are read as they come, so each committed batch gets its own timestamp.
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .map(|line| (Instant::now(), line))
                .collect::<Vec<_>>()
        });
        let timeout = Duration::from_secs(self.args.child_timeout_secs);
        let (mut peak_kib, mut cpu) = (0, Duration::ZERO);
        let mut polls = 0u32;
        let status = loop {
            if let Some(status) = child.0.try_wait()? {
                break status;
            }
            // VmHWM is the kernel's own high-water mark, so sampling it every 20 ms only
            // risks missing growth in the last 20 ms of the process.
            if polls.is_multiple_of(10) {
                peak_kib = peak_kib.max(vm_hwm_kib(pid).unwrap_or(0));
                cpu = cpu_time(pid).unwrap_or(cpu);
            }
            polls += 1;
            if start.elapsed() > timeout {
                bail!("iotcane {label} ran longer than {timeout:?}; killed");
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let wall = start.elapsed();
        let lines = reader
            .join()
            .map_err(|_| anyhow::anyhow!("stdout reader panicked"))?
            .into_iter()
            .map(|(at, line)| (at.duration_since(start), line))
            .collect();
        let log_tail = fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        Ok(ChildRun {
            status,
            wall,
            peak_rss: (peak_kib > 0).then_some(peak_kib * 1024),
            cpu,
            lines,
            log_tail,
        })
    }

    /// Times `KnowledgeStore::open` on `data`, `cold_runs` times.
    fn cold_starts(
        &self,
        rt: &tokio::runtime::Runtime,
        data: &Path,
        quads: usize,
    ) -> anyhow::Result<Vec<ColdStart>> {
        let mut out = Vec::new();
        for _ in 0..self.args.cold_runs {
            self.capture.clear();
            let start = Instant::now();
            let store = rt.block_on(KnowledgeStore::open(StoreConfig::new(data)))?;
            let total = start.elapsed();
            // The store's own log events split the open: "snapshot loaded" comes after
            // connecting, migrating, loading the snapshot and rebuilding the tenant index.
            let events = self.capture.take();
            let snapshot = events
                .iter()
                .find(|e| e.message == "snapshot loaded")
                .map(|e| e.at.duration_since(start))
                .context("open logged no \"snapshot loaded\"")?;
            let replayed = events
                .iter()
                .find(|e| e.message == "knowledge graph ready")
                .and_then(|e| e.fields.get("replayed")?.parse().ok())
                .unwrap_or(0);
            // Updates change live values only, never the shape: the size must not move.
            // The open logs the graph's size too, and counting is a full scan in
            // oxigraph's memory store: timed here, it is that part of the open.
            let t = Instant::now();
            let len = store.graph_len()?;
            let graph_len = t.elapsed();
            ensure!(
                len == quads,
                "cold start graph has {len} quads, the import made {quads}"
            );
            rt.block_on(store.close());
            drop(store);
            out.push(ColdStart {
                total,
                snapshot,
                replayed,
                graph_len,
            });
        }
        Ok(out)
    }

    /// Splits the import path into its phases, in-process: parsing and validating the
    /// NDJSON, then, for `split_items` devices, the journaled write and a replica of the
    /// graph's application of the same rows.
    fn split(
        &self,
        rt: &tokio::runtime::Runtime,
        kb: &Path,
        kbgen: &Generator,
    ) -> anyhow::Result<Split> {
        let bytes = fs::read(kb)?;
        let lines = bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        // JSON syntax only...
        let t = Instant::now();
        let mut values = 0usize;
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_slice(line)?;
            values += usize::from(v.is_object());
        }
        let json_parse = t.elapsed();
        ensure!(values == lines, "NDJSON lines that are not objects");
        // ...then what `iotcane import` does: JSON, model, normalization, validation.
        let t = Instant::now();
        let items = formats::read(Format::NdJson, &bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
        let read_validate = t.elapsed();
        ensure!(
            items.iter().all(|i| i.result.is_ok()),
            "invalid generated items"
        );
        drop(items);
        drop(bytes);

        let n = self.args.split_items.min(self.args.devices).max(1);
        let tenant: Tenant = TENANT.parse()?;
        let resources = kbgen
            .devices(0, n, 0)
            .map(|v| Resource::from_json(v).map_err(|e| anyhow::anyhow!("{e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;

        // The body each journal row carries (`KnowledgeStore::write` serializes it).
        let t = Instant::now();
        let bodies: Vec<String> = resources.iter().map(|r| r.to_json().to_string()).collect();
        let to_json = t.elapsed();

        // Graph::apply, replicated: decode the body again, map it to quads, add the five
        // metadata quads, and insert them in one oxigraph transaction per batch.
        let t = Instant::now();
        let mut prepared = Vec::with_capacity(n);
        for (i, body) in bodies.iter().enumerate() {
            let r = decode_body(i as i64 + 1, body)?;
            let graph = tenant.graph_of(&r.id);
            let mut quads = iotcane_model::rdf::to_quads(&tenant, &r);
            quads.extend(meta_quads(&graph, i as i64 + 1));
            prepared.push((graph, quads));
        }
        let decode_to_quads = t.elapsed();
        let store = oxigraph::store::Store::new()?;
        let t = Instant::now();
        for chunk in prepared.chunks(self.args.batch_size) {
            let mut tx = store.start_transaction()?;
            for (graph, quads) in chunk {
                if tx.contains_named_graph(graph)? {
                    tx.remove_named_graph(graph)?;
                }
                tx.extend(quads.iter());
            }
            tx.commit()?;
        }
        let graph_insert = t.elapsed();
        drop(store);
        drop(prepared);

        // The real journaled write, batch by batch, into a fresh store.
        let dir = self.root.join("data-split");
        fs::create_dir_all(&dir)?;
        let write = rt.block_on(async {
            let store = KnowledgeStore::open(StoreConfig::new(&dir)).await?;
            let t = Instant::now();
            for chunk in resources.chunks(self.args.batch_size) {
                let changes = chunk
                    .iter()
                    .map(|r| Change::put(tenant.clone(), r.clone()))
                    .collect();
                let results = store.write(changes, "bench", ChangeSource::Cli).await?;
                ensure!(
                    results.iter().all(Result::is_ok),
                    "refused writes in the split"
                );
            }
            let elapsed = t.elapsed();
            store.close().await;
            anyhow::Ok(elapsed)
        })?;
        fs::remove_dir_all(&dir)?;
        Ok(Split {
            lines,
            json_parse,
            read_validate,
            n,
            to_json,
            decode_to_quads,
            graph_insert,
            write,
        })
    }

    /// `writes` sequential single-resource updates on a store holding `write_base`
    /// devices, each timed from the call to its acknowledgement.
    fn write_latency(
        &self,
        rt: &tokio::runtime::Runtime,
        kbgen: &Generator,
        durability: SqliteDurability,
    ) -> anyhow::Result<Latencies> {
        let base = self.args.write_base.min(self.args.devices).max(1);
        let tenant: Tenant = TENANT.parse()?;
        let dir = self.root.join("data-writes");
        fs::create_dir_all(&dir)?;
        let seed = kbgen
            .devices(0, base, 0)
            .map(|v| Resource::from_json(v).map_err(|e| anyhow::anyhow!("{e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        // Live-state updates of stored devices, the common single write; built up front
        // so only the store is timed.
        let updates = (0..self.args.writes)
            .map(|k| {
                let i = (k * 7919) % base;
                Resource::from_json(kbgen.device(i, 1 + (k / base) as u32))
                    .map_err(|e| anyhow::anyhow!("{e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let samples = rt.block_on(async {
            let mut config = StoreConfig::new(&dir);
            config.sqlite_durability = durability;
            let store = KnowledgeStore::open(config).await?;
            for chunk in seed.chunks(1000) {
                let changes = chunk
                    .iter()
                    .map(|r| Change::put(tenant.clone(), r.clone()))
                    .collect();
                let results = store.write(changes, "bench", ChangeSource::Cli).await?;
                ensure!(results.iter().all(Result::is_ok), "refused seed writes");
            }
            let mut samples = Vec::with_capacity(updates.len());
            for r in updates {
                let t = Instant::now();
                store
                    .write_one(Change::put(tenant.clone(), r), "bench", ChangeSource::Cli)
                    .await?;
                samples.push(t.elapsed());
            }
            store.close().await;
            anyhow::Ok(samples)
        })?;
        fs::remove_dir_all(&dir)?;
        Ok(Latencies::new(samples))
    }
}

// ---------------------------------------------------------------------------------------
// The generated knowledge base.

/// A 64-bit LCG (Knuth's MMIX constants); the high bits are the output.
struct Lcg(u64);

impl Lcg {
    /// Each resource gets its own stream, so a device is the same whatever else is made.
    fn for_item(stream: u64, index: u64, revision: u64) -> Self {
        Lcg(splitmix(
            SEED ^ splitmix(stream << 56 ^ index ^ revision << 40),
        ))
    }

    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        self.next() as f64 / (1u64 << 31) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A value in [lo, hi), rounded to `decimals`.
    fn range(&mut self, lo: f64, hi: f64, decimals: i32) -> f64 {
        let scale = 10f64.powi(decimals);
        ((lo + (hi - lo) * self.unit()) * scale).round() / scale
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Seed scrambling, so neighbouring indices give unrelated streams.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A device type of the catalog the generated fleet is drawn from.
struct Profile {
    model: &'static str,
    observes: &'static [&'static str],
    radios: &'static [&'static str],
    /// Application protocols some units also speak.
    apps: &'static [&'static str],
    rate_hz: (f64, f64),
    price: (f64, f64),
    battery: bool,
    /// Installed at a fixed place (so it has a location).
    fixed: bool,
    /// The property its Thing Description exposes, and the form's scheme.
    property: &'static str,
    scheme: &'static str,
}

const PROFILES: [Profile; 7] = [
    Profile {
        model: "EnviroSense E2",
        observes: &["temperature", "humidity", "airPressure"],
        radios: &["zigbee", "ble", "thread"],
        apps: &["mqtt"],
        rate_hz: (0.01, 1.0),
        price: (19.0, 49.0),
        battery: true,
        fixed: true,
        property: "temperature",
        scheme: "coap",
    },
    Profile {
        model: "AirQ P3",
        observes: &["pm25", "co2", "voc"],
        radios: &["wifi", "lorawan"],
        apps: &["mqtt", "http"],
        rate_hz: (0.1, 1.0),
        price: (89.0, 249.0),
        battery: false,
        fixed: true,
        property: "pm25",
        scheme: "http",
    },
    Profile {
        model: "PulseBand 4",
        observes: &["heartRate", "spo2", "skinTemperature"],
        radios: &["ble"],
        apps: &[],
        rate_hz: (1.0, 50.0),
        price: (59.0, 199.0),
        battery: true,
        fixed: false,
        property: "heartRate",
        scheme: "http",
    },
    Profile {
        model: "SoilProbe S1",
        observes: &["soilMoisture", "soilTemperature"],
        radios: &["lorawan", "nbiot"],
        apps: &["lwm2m"],
        rate_hz: (0.001, 0.1),
        price: (35.0, 120.0),
        battery: true,
        fixed: true,
        property: "soilMoisture",
        scheme: "coap",
    },
    Profile {
        model: "ParkSpot 2",
        observes: &["occupancy"],
        radios: &["nbiot", "lorawan", "sigfox"],
        apps: &[],
        rate_hz: (0.0167, 1.0),
        price: (25.0, 60.0),
        battery: true,
        fixed: true,
        property: "occupancy",
        scheme: "coap",
    },
    Profile {
        model: "VibroMon V8",
        observes: &["vibration", "temperature"],
        radios: &["wifi", "ethernet"],
        apps: &["mqtt", "opcua"],
        rate_hz: (100.0, 25_600.0),
        price: (150.0, 600.0),
        battery: false,
        fixed: true,
        property: "vibration",
        scheme: "http",
    },
    Profile {
        model: "MeterLink M3",
        observes: &["activePower", "energy"],
        radios: &["modbus", "rs485"],
        apps: &["mqtt"],
        rate_hz: (1.0, 10.0),
        price: (70.0, 180.0),
        battery: false,
        fixed: true,
        property: "activePower",
        scheme: "modbus+tcp",
    },
];

/// Makes the knowledge base: cloud offerings, edge nodes four to a site, devices spread
/// over the sites.
struct Generator {
    devices: usize,
    edges: usize,
    clouds: usize,
    sites: usize,
}

impl Generator {
    fn new(devices: usize, edges: usize, clouds: usize) -> Self {
        Self {
            devices,
            edges,
            clouds,
            sites: edges.div_ceil(4),
        }
    }

    fn knowledge_base(&self) -> impl Iterator<Item = Value> + '_ {
        self.clouds()
            .chain(self.edges())
            .chain(self.devices(0, self.devices, 0))
    }

    fn devices(&self, from: usize, to: usize, revision: u32) -> impl Iterator<Item = Value> + '_ {
        (from..to).map(move |i| self.device(i, revision))
    }

    /// `n` devices, spread over the fleet, with a new live state.
    fn tail_updates(&self, n: usize) -> impl Iterator<Item = Value> + '_ {
        let n = n.min(self.devices);
        let stride = (self.devices / n.max(1)).max(1);
        (0..n).map(move |k| self.device(k * stride, 1))
    }

    /// The site centre: somewhere in Europe.
    fn site_location(&self, site: usize) -> (f64, f64) {
        let mut rng = Lcg::for_item(3, site as u64, 0);
        (rng.range(36.0, 60.0, 4), rng.range(-9.0, 28.0, 4))
    }

    /// Device `i`; `revision` changes only its live state (a monitoring update).
    fn device(&self, i: usize, revision: u32) -> Value {
        let mut rng = Lcg::for_item(0, i as u64, 0);
        let p = &PROFILES[rng.below(PROFILES.len())];
        let id = format!("dev-{i:06}");
        let site = rng.below(self.sites);
        let site_slug = format!("site-{site:04}");
        let first = rng.below(p.observes.len());
        let n_obs = if rng.chance(0.2) {
            2.min(p.observes.len())
        } else {
            1
        };
        let observes: Vec<&str> = (0..n_obs)
            .map(|k| p.observes[(first + k) % p.observes.len()])
            .collect();
        let mut protocols = vec![rng.pick(p.radios)];
        if !p.apps.is_empty() && rng.chance(0.4) {
            protocols.push(rng.pick(p.apps));
        }
        let mut device = json!({
            "id": id,
            "kind": "device",
            "name": format!("{} #{i}", p.model),
            "observes": observes,
            "protocols": protocols,
            "samplingRateHz": rng.range(p.rate_hz.0, p.rate_hz.1, 3).max(0.001),
            "price": rng.range(p.price.0, p.price.1, 2),
            "currency": "EUR",
            "site": site_slug,
        });
        if p.fixed {
            let (lat, lon) = self.site_location(site);
            device["location"] = json!({
                "lat": ((lat + rng.range(-0.01, 0.01, 6)) * 1e6).round() / 1e6,
                "lon": ((lon + rng.range(-0.01, 0.01, 6)) * 1e6).round() / 1e6,
            });
        }
        let host = format!("{site_slug}.iot.example.net");
        let mut affordances = vec![json!({
            "name": p.property,
            "affordanceKind": "property",
            "forms": [{"href": format!("{}://{host}/{id}/{}", p.scheme, p.property)}],
        })];
        if rng.chance(0.15) {
            affordances.push(json!({
                "name": "alarm",
                "affordanceKind": "event",
                "forms": [{"href": format!("mqtt://{host}/{id}/alarm"), "protocol": "mqtt"}],
            }));
        }
        device["affordances"] = Value::Array(affordances);
        // The live state has its own stream per revision: updates change it only.
        let mut live_rng = Lcg::for_item(1, i as u64, u64::from(revision));
        let status = match live_rng.below(100) {
            0..92 => "online",
            92..97 => "offline",
            _ => "unknown",
        };
        device["live"] = if p.battery {
            json!({"status": status, "batteryPct": live_rng.range(3.0, 100.0, 1)})
        } else {
            json!({"status": status})
        };
        device
    }

    /// The description quads of the edge nodes and cloud offerings, so the per-device
    /// figure can count devices only.
    fn edge_and_cloud_quads(&self) -> anyhow::Result<usize> {
        let tenant: Tenant = TENANT.parse()?;
        let mut n = 0;
        for v in self.edges().chain(self.clouds()) {
            let r = Resource::from_json(v).map_err(|e| anyhow::anyhow!("{e}"))?;
            n += iotcane_model::rdf::to_quads(&tenant, &r).len();
        }
        Ok(n)
    }

    fn edges(&self) -> impl Iterator<Item = Value> + '_ {
        const MODELS: [(&str, &str, u32, u64); 4] = [
            ("Raspberry Pi Foundation", "Raspberry Pi 5", 4, 8_192),
            ("NVIDIA", "Jetson Orin Nano", 6, 8_192),
            ("Siemens", "SIMATIC IPC127E", 4, 4_096),
            ("Advantech", "UNO-2271G", 2, 4_096),
        ];
        (0..self.edges).map(move |i| {
            let mut rng = Lcg::for_item(2, i as u64, 0);
            let (manufacturer, model, cores, memory) = MODELS[rng.below(MODELS.len())];
            let site = i / 4;
            let (lat, lon) = self.site_location(site);
            let south = ["zigbee", "ble", "lorawan", "modbus", "thread", "wifi"];
            let s0 = rng.below(south.len());
            json!({
                "id": format!("edge-{i:04}"),
                "kind": "edgeNode",
                "name": format!("{model} gateway {} at site-{site:04}", i % 4 + 1),
                "manufacturer": manufacturer,
                "model": model,
                "cpuCores": cores,
                "cpuGhz": rng.range(1.2, 2.4, 1),
                "memoryMb": memory,
                "storageGb": ([32, 64, 128, 256])[rng.below(4)],
                "southboundProtocols": [south[s0], south[(s0 + 1) % south.len()]],
                "northboundProtocols": [rng.pick(&["ethernet", "lte", "5g", "wifi"]), "mqtt"],
                "maxThroughputMsgs": rng.range(2_000.0, 20_000.0, 0),
                "powerW": rng.range(5.0, 25.0, 1),
                "price": rng.range(90.0, 900.0, 2),
                "currency": "EUR",
                "availability": 0.999,
                "site": format!("site-{site:04}"),
                "location": {"lat": lat, "lon": lon},
                "live": {"status": "online", "loadPct": rng.range(2.0, 95.0, 1)},
            })
        })
    }

    fn clouds(&self) -> impl Iterator<Item = Value> + '_ {
        const PROVIDERS: [(&str, &[&str]); 3] = [
            (
                "aws",
                &["eu-central-1", "eu-west-1", "us-east-1", "ap-southeast-2"],
            ),
            ("azure", &["westeurope", "northeurope", "eastus"]),
            ("gcp", &["europe-west1", "europe-west3", "us-central1"]),
        ];
        const KINDS: [&str; 7] = [
            "vm",
            "streamProcessing",
            "objectStorage",
            "database",
            "managedMqtt",
            "serverless",
            "timeSeriesDatabase",
        ];
        (0..self.clouds).map(|i| {
            let mut rng = Lcg::for_item(4, i as u64, 0);
            let (provider, regions) = PROVIDERS[rng.below(PROVIDERS.len())];
            let region = rng.pick(regions);
            let kind = KINDS[rng.below(KINDS.len())];
            let mut offering = json!({
                "id": format!("cloud-{i:04}"),
                "kind": "cloudOffering",
                "name": format!("{provider} {kind} {region} tier {}", i % 5 + 1),
                "provider": provider,
                "region": region,
                "offeringKind": kind,
                "pricePerMonth": rng.range(5.0, 2_500.0, 2),
                "currency": "USD",
                "availabilitySla": ([0.99, 0.995, 0.999, 0.9995, 0.9999])[rng.below(5)],
            });
            match kind {
                "vm" | "database" | "timeSeriesDatabase" => {
                    offering["vcpus"] = json!(([2, 4, 8, 16, 32])[rng.below(5)]);
                    offering["memoryGb"] = json!(([4, 8, 16, 32, 64])[rng.below(5)]);
                    offering["storageGb"] = json!(rng.range(20.0, 2_000.0, 0));
                }
                "streamProcessing" | "managedMqtt" => {
                    offering["throughputMsgs"] = json!(rng.range(1_000.0, 1_000_000.0, 0));
                    offering["protocols"] =
                        json!(["mqtt", rng.pick(&["http", "amqp", "kafka", "websocket"])]);
                }
                _ => offering["storageGb"] = json!(rng.range(100.0, 100_000.0, 0)),
            }
            offering
        })
    }
}

/// Writes one JSON value per line; returns the file's size.
fn write_ndjson(path: &Path, values: impl Iterator<Item = Value>) -> anyhow::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    for v in values {
        serde_json::to_writer(&mut out, &v)?;
        out.write_all(b"\n")?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(fs::metadata(path)?.len())
}

/// Five literal quads on the graph IRI, the shape of the version metadata `Graph::apply`
/// adds to each resource's graph (the exact predicates do not matter to the cost).
fn meta_quads(graph: &oxigraph::model::NamedNode, version: i64) -> [Quad; 5] {
    const NS: &str = "https://w3id.org/iotcane/ontology#";
    let at = format_time_ms(1_750_000_000_000);
    let q = |local: &str, o: Literal| {
        let p = oxigraph::model::NamedNode::new_unchecked(format!("{NS}{local}"));
        Quad::new(graph.clone(), p, o, graph.clone())
    };
    [
        q(
            "version",
            Literal::new_typed_literal(version.to_string(), xsd::INTEGER),
        ),
        q("created", Literal::new_typed_literal(&at, xsd::DATE_TIME)),
        q("modified", Literal::new_typed_literal(&at, xsd::DATE_TIME)),
        q("changedBy", Literal::new_simple_literal("bench")),
        q("changeSource", Literal::new_simple_literal("cli")),
    ]
}

// ---------------------------------------------------------------------------------------
// Child processes.

/// A child that is killed if it is still running when dropped (an early error return).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

struct ChildRun {
    status: ExitStatus,
    wall: Duration,
    peak_rss: Option<u64>,
    cpu: Duration,
    /// Standard output, line by line, with when each line arrived (from the start).
    lines: Vec<(Duration, String)>,
    log_tail: String,
}

/// The peak resident set of a running process, from /proc (Linux only).
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// User + system CPU time of a running process, from /proc/PID/stat (in USER_HZ = 100
/// ticks, fixed on Linux). Sampled like the RSS, so the last 20 ms may be missing.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    // utime and stime are fields 14 and 15; the rest starts at field 3.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

fn self_rss_bytes() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// An `iotcane import --json` run, read from its batch lines and summary.
struct ImportRun {
    wall: Duration,
    peak_rss: Option<u64>,
    /// User + system CPU time: what the work costs, whatever else the host runs.
    cpu: Duration,
    accepted: usize,
    /// From the start to the first committed batch: start-up, store open, reading and
    /// validating the whole file, and the first batch's write.
    first_commit: Duration,
    /// From the first committed batch to the last.
    write_phase: Duration,
    /// Resources committed after the first batch (those the write phase covers).
    written_in_phase: usize,
    /// After the last batch: the snapshot, closing, exiting.
    after_last_commit: Duration,
    batches: usize,
}

impl ImportRun {
    fn from_child(run: ChildRun) -> anyhow::Result<Self> {
        let mut commits = Vec::new();
        let mut summary = None;
        for (at, line) in &run.lines {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if let Some(ids) = v.pointer("/committed/ids").and_then(Value::as_array) {
                commits.push((*at, ids.len()));
            } else if let Some(s) = v.get("summary") {
                summary = Some(s.clone());
            }
        }
        let summary = summary.with_context(|| {
            format!(
                "iotcane import ({}) printed no summary:\n{}",
                run.status, run.log_tail
            )
        })?;
        if let Some(first) = summary["rejected"].as_array().and_then(|r| r.first()) {
            bail!("iotcane import rejected items, e.g. {first}");
        }
        ensure!(
            run.status.success(),
            "iotcane import failed ({}):\n{}",
            run.status,
            run.log_tail
        );
        let (first_at, first_n) = *commits.first().context("no committed batch")?;
        let last_at = commits.last().map_or(first_at, |c| c.0);
        Ok(ImportRun {
            wall: run.wall,
            peak_rss: run.peak_rss,
            cpu: run.cpu,
            accepted: summary["accepted"].as_u64().unwrap_or(0) as usize,
            first_commit: first_at,
            write_phase: last_at - first_at,
            written_in_phase: commits.iter().map(|c| c.1).sum::<usize>() - first_n,
            after_last_commit: run.wall.saturating_sub(last_at),
            batches: commits.len(),
        })
    }

    fn rate(&self) -> f64 {
        self.accepted as f64 / secs(self.wall)
    }

    /// Resources/s between the first and the last committed batch (none with one batch).
    fn phase_rate(&self) -> Option<f64> {
        (!self.write_phase.is_zero()).then(|| self.written_in_phase as f64 / secs(self.write_phase))
    }

    fn phase_rate_text(&self) -> String {
        self.phase_rate()
            .map_or_else(|| "n/a".to_owned(), |r| format!("{r:.0} resources/s"))
    }

    fn print(&self) {
        println!(
            "  {} resources in {} = {:.0} resources/s end to end; peak RSS {}; \
             CPU {} ({:.0} % of wall)",
            self.accepted,
            fmt_dur(self.wall),
            self.rate(),
            self.peak_rss.map_or("n/a".to_owned(), fmt_bytes),
            fmt_dur(self.cpu),
            100.0 * secs(self.cpu) / secs(self.wall)
        );
        println!(
            "  start-up + read/validate file + first batch: {}; \
             {} more batches: {} ({}); \
             snapshot + exit: {}",
            fmt_dur(self.first_commit),
            self.batches.saturating_sub(1),
            fmt_dur(self.write_phase),
            self.phase_rate_text(),
            fmt_dur(self.after_last_commit)
        );
    }
}

/// Lists the journal positions of the snapshots in a data directory.
fn snapshot_seqs(data: &Path) -> anyhow::Result<Vec<i64>> {
    let mut seqs: Vec<i64> = fs::read_dir(data.join("snapshots"))?
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("snapshot-")?
                .strip_suffix(".nq")?
                .parse()
                .ok()
        })
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

// ---------------------------------------------------------------------------------------
// Baseline, cold start, split, latency.

struct Baseline {
    file_bytes: u64,
    load: Duration,
    quads: usize,
    rss_growth: u64,
}

/// oxigraph's bulk loader on the exported N-Quads, from memory (reading the file is not
/// timed).
fn baseline_load(nq: &Path) -> anyhow::Result<Baseline> {
    let bytes = fs::read(nq)?;
    let rss_before = self_rss_bytes();
    let t = Instant::now();
    let store = oxigraph::store::Store::new()?;
    let mut loader = store.bulk_loader();
    loader.load_from_slice(RdfFormat::NQuads, &bytes)?;
    loader.commit()?;
    let load = t.elapsed();
    let rss_growth = self_rss_bytes().saturating_sub(rss_before);
    Ok(Baseline {
        file_bytes: bytes.len() as u64,
        load,
        quads: store.len()?,
        rss_growth,
    })
}

#[derive(Clone, Copy)]
struct ColdStart {
    total: Duration,
    /// Until the snapshot was loaded (connect and migrations included).
    snapshot: Duration,
    replayed: usize,
    /// One `graph_len()`, which the open also does (for its log line).
    graph_len: Duration,
}

impl ColdStart {
    /// What is left after the snapshot and the final count: the journal tail's replay.
    fn replay(&self) -> Duration {
        self.total.saturating_sub(self.snapshot + self.graph_len)
    }
}

struct Split {
    lines: usize,
    json_parse: Duration,
    read_validate: Duration,
    n: usize,
    to_json: Duration,
    decode_to_quads: Duration,
    graph_insert: Duration,
    write: Duration,
}

impl Split {
    /// Per resource, in microseconds.
    fn per(&self, d: Duration, n: usize) -> f64 {
        secs(d) * 1e6 / n as f64
    }

    fn parse_us(&self) -> f64 {
        self.per(self.json_parse, self.lines)
    }
    fn validate_us(&self) -> f64 {
        self.per(
            self.read_validate.saturating_sub(self.json_parse),
            self.lines,
        )
    }
    fn write_us(&self) -> f64 {
        self.per(self.write, self.n)
    }
    fn to_json_us(&self) -> f64 {
        self.per(self.to_json, self.n)
    }
    fn graph_us(&self) -> f64 {
        self.per(self.decode_to_quads + self.graph_insert, self.n)
    }
    /// What is left of the journaled write once serialization and the graph are taken
    /// out: the SQL of the journal append (and the async plumbing around it).
    fn journal_us(&self) -> f64 {
        (self.write_us() - self.to_json_us() - self.graph_us()).max(0.0)
    }
    fn per_resource_us(&self) -> f64 {
        self.parse_us() + self.validate_us() + self.write_us()
    }

    fn print(&self) {
        let total = self.per_resource_us();
        let row = |name: &str, us: f64| {
            println!("  {name:<58} {us:>8.1} µs  {:>5.1} %", 100.0 * us / total);
        };
        row(
            &format!("JSON parse ({} NDJSON lines)", self.lines),
            self.parse_us(),
        );
        row("model read + normalize + validate", self.validate_us());
        row(
            &format!("write: body to JSON ({} devices, batches)", self.n),
            self.to_json_us(),
        );
        row(
            "write: journal append (batched SQL: read states, insert rows, upsert states)",
            self.journal_us(),
        );
        row(
            &format!(
                "write: graph apply (decode body + to_quads {:.1} µs, oxigraph insert {:.1} µs)",
                self.per(self.decode_to_quads, self.n),
                self.per(self.graph_insert, self.n)
            ),
            self.graph_us(),
        );
        println!(
            "  {:<58} {:>8.1} µs  → at most {:.0} resources/s on one core",
            "total",
            total,
            1e6 / total
        );
        println!(
            "  (journal append = measured `KnowledgeStore::write` {:.1} µs minus the replicated \
             serialization and graph apply)",
            self.write_us()
        );
    }
}

struct Latencies {
    sorted: Vec<Duration>,
}

impl Latencies {
    fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Self { sorted: samples }
    }

    /// Nearest-rank percentile.
    fn p(&self, q: f64) -> Duration {
        let rank = ((q * self.sorted.len() as f64).ceil() as usize).clamp(1, self.sorted.len());
        self.sorted[rank - 1]
    }

    fn mean(&self) -> Duration {
        self.sorted.iter().sum::<Duration>() / self.sorted.len() as u32
    }

    fn print(&self, label: &str) {
        println!(
            "  {label:<7} p50 {}  p90 {}  p99 {}  mean {}  max {}",
            fmt_dur(self.p(0.5)),
            fmt_dur(self.p(0.9)),
            fmt_dur(self.p(0.99)),
            fmt_dur(self.mean()),
            fmt_dur(self.p(1.0))
        );
    }
}

// ---------------------------------------------------------------------------------------
// The summary.

struct Summary {
    total: usize,
    full: ImportRun,
    normal: Option<ImportRun>,
    baseline: Baseline,
    /// The median cold start.
    cold: ColdStart,
    split: Split,
    w_full: Latencies,
    w_normal: Latencies,
}

impl Summary {
    fn print(&self) {
        let b = secs(self.baseline.load);
        let quads = self.baseline.quads;
        // Which targets were missed, by kind, for the bottleneck lines below.
        let (mut import_missed, mut rss_missed, mut write_missed) =
            (Vec::new(), Vec::new(), Vec::new());
        println!();
        println!("{} resources, {quads} quads.", self.total);
        println!();
        println!("| figure | target | measured | ratio / baseline | met |");
        println!("|---|---|---|---|---|");
        let imports = std::iter::once(("full", &self.full))
            .chain(self.normal.as_ref().map(|n| ("normal", n)));
        for (label, run) in imports {
            let ok = run.rate() >= TARGET_IMPORT_PER_SEC;
            println!(
                "| bulk import, durability {label} | ≥ 50,000 resources/s \
                 | {:.0} resources/s ({} wall; write phase {}) \
                 | {:.2}× target; {:.1}× oxigraph's load time | {} |",
                run.rate(),
                fmt_dur(run.wall),
                run.phase_rate_text(),
                run.rate() / TARGET_IMPORT_PER_SEC,
                secs(run.wall) / b,
                yes(ok)
            );
            if !ok {
                import_missed.push(label);
            }
            let rss_ok = run.peak_rss.is_some_and(|r| r <= TARGET_RSS_BYTES);
            println!(
                "| bulk import peak RSS, {label} | ≤ 2 GiB | {} | {:.2}× budget | {} |",
                run.peak_rss.map_or("n/a".to_owned(), fmt_bytes),
                run.peak_rss
                    .map_or(f64::NAN, |r| r as f64 / TARGET_RSS_BYTES as f64),
                yes(rss_ok)
            );
            if !rss_ok {
                rss_missed.push(label);
            }
        }
        println!(
            "| oxigraph bulk loader (baseline) | — | {} ({:.0} quads/s) \
             | our import ÷ baseline = {:.1}× | — |",
            fmt_dur(self.baseline.load),
            quads as f64 / b,
            secs(self.full.wall) / b
        );
        let cold = &self.cold;
        let cold_ok = cold.total <= TARGET_COLD_START;
        println!(
            "| cold start, snapshot + {}-row tail (median of runs) | ≤ 5 s | {} \
             | {:.2}× target; {:.1}× oxigraph's load time | {} |",
            cold.replayed,
            fmt_dur(cold.total),
            secs(cold.total) / secs(TARGET_COLD_START),
            secs(cold.total) / b,
            yes(cold_ok)
        );
        for (label, l) in [("full", &self.w_full), ("normal", &self.w_normal)] {
            let ok = l.p(0.5) <= TARGET_WRITE_P50;
            println!(
                "| one journaled write, SQLite {label} | p50 ≤ 2 ms \
                 | p50 {} / p90 {} / p99 {} | {:.2}× target | {} |",
                fmt_dur(l.p(0.5)),
                fmt_dur(l.p(0.9)),
                fmt_dur(l.p(0.99)),
                secs(l.p(0.5)) / secs(TARGET_WRITE_P50),
                yes(ok)
            );
            if !ok {
                write_missed.push(label);
            }
        }
        println!();
        if import_missed.is_empty() && rss_missed.is_empty() && cold_ok && write_missed.is_empty() {
            println!("every target met.");
            return;
        }
        println!("bottlenecks of the missed targets (measured):");
        let s = &self.split;
        if !import_missed.is_empty() {
            let mut parts = [
                ("JSON parse", s.parse_us()),
                ("model read + validate", s.validate_us()),
                ("body serialization", s.to_json_us()),
                ("journal append (SQLite, batched SQL)", s.journal_us()),
                (
                    "graph apply (decode + to_quads + oxigraph insert)",
                    s.graph_us(),
                ),
            ];
            parts.sort_by(|a, b| b.1.total_cmp(&a.1));
            let total = s.per_resource_us();
            let list = parts
                .iter()
                .map(|(name, us)| format!("{name} {us:.1} µs ({:.0} %)", 100.0 * us / total))
                .collect::<Vec<_>>()
                .join(", ");
            println!(
                "- bulk import ({}): {total:.1} µs of work per resource, all on one sequential \
                 path (≤ {:.0} resources/s whatever the cores); largest first: {list}; then \
                 {} of snapshot writing and exit after the last batch",
                import_missed.join(", "),
                1e6 / total,
                fmt_dur(self.full.after_last_commit)
            );
        }
        if !rss_missed.is_empty() {
            println!(
                "- peak RSS ({}): the import parses the whole file into memory before writing; \
                 the graph alone takes ~{} (oxigraph's in-memory store for these quads)",
                rss_missed.join(", "),
                fmt_bytes(self.baseline.rss_growth)
            );
        }
        if !cold_ok {
            let share = |d: Duration| 100.0 * secs(d) / secs(cold.total);
            println!(
                "- cold start: connect + snapshot load + index rebuild {} ({:.0} %), journal \
                 replay of {} rows {} ({:.0} %), counting the graph for a log line {} ({:.0} %); \
                 oxigraph's own bulk loader takes {} for the same quads",
                fmt_dur(cold.snapshot),
                share(cold.snapshot),
                cold.replayed,
                fmt_dur(cold.replay()),
                share(cold.replay()),
                fmt_dur(cold.graph_len),
                share(cold.graph_len),
                fmt_dur(self.baseline.load)
            );
        }
        if !write_missed.is_empty() {
            let fsync = self.w_full.p(0.5).saturating_sub(self.w_normal.p(0.5));
            println!(
                "- write latency ({}): full − normal p50 = {} (the WAL fsync of each commit); \
                 the rest, {} at p50 with normal, is SQL and the graph apply (in batches: \
                 journal {:.0} µs, graph {:.0} µs per resource)",
                write_missed.join(", "),
                fmt_dur(fsync),
                fmt_dur(self.w_normal.p(0.5)),
                s.journal_us(),
                s.graph_us()
            );
        }
    }
}

fn yes(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

// ---------------------------------------------------------------------------------------
// The store's log events, captured to split the cold start.

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

struct Captured {
    at: Instant,
    message: String,
    fields: BTreeMap<String, String>,
}

impl Capture {
    /// Installs a subscriber that keeps the store's events only (no spans, so the timed
    /// writes pay nothing for it).
    fn install() -> Self {
        let capture = Capture::default();
        let filter = tracing_subscriber::filter::filter_fn(|m| {
            m.is_event() && m.target().starts_with("iotcane_store")
        });
        tracing_subscriber::registry()
            .with(capture.clone().with_filter(filter))
            .init();
        capture
    }

    fn clear(&self) {
        if let Ok(mut events) = self.0.lock() {
            events.clear();
        }
    }

    fn take(&self) -> Vec<Captured> {
        self.0
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let at = Instant::now();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let message = fields.0.remove("message").unwrap_or_default();
        if let Ok(mut events) = self.0.lock() {
            events.push(Captured {
                at,
                message,
                fields: fields.0,
            });
        }
    }
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

// ---------------------------------------------------------------------------------------
// Small helpers.

/// The 1-minute load average, as /proc/loadavg gives it.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "n/a".to_owned())
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .with_context(|| format!("non-UTF-8 path {}", p.display()))
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn fmt_dur(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

fn fmt_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", b / (1u64 << 30) as f64)
    } else {
        format!("{:.0} MiB", b / (1u64 << 20) as f64)
    }
}
