//! The MQTT gateway under load, against a real broker (the machine's Mosquitto):
//!
//! 1. **baseline** — the broker's own pub→sub path, the limit the gateway works within:
//!    `--connections` publishers send context-sized payloads at QoS 1 to the devices'
//!    context topics, one QoS 1 subscriber (receive maximum `--inflight`, like the
//!    gateway) counts them. Twice: saturated (closed loop: each publisher keeps at most
//!    its share of `--baseline-window` messages between publish and receipt) and paced at
//!    `--rate` (open loop: the latency and the broker's own losses to compare the
//!    gateway's with). The send time rides in the payload's `observedAt` (µs precision
//!    here, 3 bytes longer than the gateway's); `loadPct` numbers each publisher's
//!    messages, so that a message the broker drops does not stall the flow control.
//! 2. **context** — context updates end to end: the gateway runs in-process on a fresh
//!    SQLite journal (`--sqlite-durability`), `--devices` devices are registered through
//!    `App::put_many` (batches of 1,000), then simulated over `--connections` publisher
//!    connections (each for a slice of the devices, round robin) at `--rate` msg/s for
//!    `--seconds`, QoS 1, `observedAt` = send time. Measured: the achieved publish rate;
//!    the durable-and-visible rate (`KnowledgeStore::applied_seq`, one journal row per
//!    accepted report) while publishing and sustained including the drain; the lag of
//!    every `--sample-every`-th message from its send to the moment `KnowledgeStore::get`
//!    shows its `observedAt` (a checker polls after each applied batch); and, from the
//!    SQLite file, that the context rows written equal the messages published.
//! 3. **registrations** — `--registrations` W3C TDs (title, description, properties with
//!    forms, an action, security) published to distinct ids over
//!    `--registration-connections` connections as fast as the gateway takes them (at most
//!    `--window` published and not yet applied), until all are counted in the store.
//! 4. **rss** — the process's resident set (VmRSS) after `--rss-devices` devices are
//!    registered through the app and have each sent one context report over MQTT, with
//!    the resident set before loading for reference. It runs right after the baseline,
//!    before 2 and 3, whose freed memory the allocator would keep and reuse.
//!
//! Losses are counted, not hidden: the broker may drop QoS 1 messages on their way to a
//! subscriber (the baseline shows how many it drops on its own), and the context run
//! checks the journal's rows against what was published.
//!
//! Every scenario uses its own data directory (removed at the end) and its own topic
//! prefix, so a shared broker's other traffic does not mix in. The gateway runs as
//! `iotcane serve` runs it: with the store's background task (journal tail, snapshots
//! every 50,000 changes), but with context pruning deferred so that the row count stays
//! checkable. A table of medians (`--repeat` runs of scenarios 2–4, `--baseline-repeat`
//! of the baseline) and one JSON line close the output.
//!
//! ```text
//! cargo bench -p iotcane-server --bench mqtt_load -- --broker mqtt://127.0.0.1:1883
//! cargo bench -p iotcane-server --bench mqtt_load -- --seconds 5 --devices 1000 \
//!     --registrations 2000 --rss-devices 5000 --rate 5000          # a smoke run
//! cargo bench -p iotcane-server --bench mqtt_load -- --scenarios baseline,context
//! ```
//!
//! `-- --help` lists every flag. `RUST_LOG` sets the log level (warnings by default, on
//! standard error).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use clap::{Parser, ValueEnum};
use iotcane_app::{Actor, App, Role};
use iotcane_model::{Resource, ResourceId, Tenant};
use iotcane_mqtt::{MqttConfig, MqttGateway};
use iotcane_store::{
    ChangeSource, KnowledgeStore, SqliteDurability, StoreConfig, format_time_ms, parse_time_ms,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const TENANT: &str = "bench";
/// Devices registered through the app per journal transaction.
const REGISTER_BATCH: usize = 1000;
/// Requests a client may queue before `publish` waits.
const CLIENT_QUEUE: usize = 10_000;
/// Our publishers' own cap on unacknowledged QoS 1 messages (the broker's receive
/// maximum applies when lower).
const CLIENT_INFLIGHT: u16 = 1000;
/// The checker stops a pass after this many samples in a row are not visible yet (the
/// gateway applies messages roughly in arrival order).
const CHECK_MISSES: usize = 8;
/// How long the broker keeps the gateway's session after the scenario.
const SESSION_EXPIRY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Durability {
    Full,
    Normal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Baseline,
    Context,
    Registrations,
    Rss,
}

#[derive(Debug, Parser)]
#[command(about = "IoT-CANE MQTT gateway benchmark against a real broker")]
struct Args {
    /// The broker (`mqtt://[user:password@]host:port`); it must be reachable.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    broker: String,
    /// Simulated devices in the context scenario (and topics of the baseline).
    #[arg(long, default_value_t = 10_000)]
    devices: usize,
    /// Target context reports per second (all connections together).
    #[arg(long, default_value_t = 20_000.0)]
    rate: f64,
    /// How long the context scenario publishes.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Publisher connections the devices are simulated over.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Thing Descriptions registered over MQTT.
    #[arg(long, default_value_t = 20_000)]
    registrations: usize,
    /// Connections the registrations are published over.
    #[arg(long, default_value_t = 4)]
    registration_connections: usize,
    /// Devices loaded before the resident set is read.
    #[arg(long, default_value_t = 100_000)]
    rss_devices: usize,
    /// Runs of the context, registration and RSS scenarios (medians reported).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Runs of the baseline (medians reported).
    #[arg(long, default_value_t = 3)]
    baseline_repeat: usize,
    /// Length of each baseline phase (default: --seconds, at most 10).
    #[arg(long)]
    baseline_seconds: Option<f64>,
    /// Registrations and the RSS scenario's reports: most messages published and not yet
    /// answered or applied.
    #[arg(long, default_value_t = 1000)]
    window: u64,
    /// The saturated baseline: most messages published and not yet received (split over
    /// the publishers). Larger windows do not raise this broker's throughput here, they
    /// make it drop messages.
    #[arg(long, default_value_t = 64)]
    baseline_window: u64,
    /// Every how many messages of a connection one is followed for the lag.
    #[arg(long, default_value_t = 100)]
    sample_every: u64,
    /// SQLite synchronous mode of the journal.
    #[arg(long, value_enum, default_value_t = Durability::Full)]
    sqlite_durability: Durability,
    /// The gateway's receive maximum (`mqtt_inflight`).
    #[arg(long, default_value_t = 1000)]
    inflight: u16,
    /// The gateway's most messages per journal transaction (`mqtt_batch_max`).
    #[arg(long, default_value_t = 1000)]
    batch_max: usize,
    /// Give up waiting for a drain after this long without progress.
    #[arg(long, default_value_t = 10.0)]
    stall_seconds: f64,
    /// Do not run the store's background task (journal tail, snapshots).
    #[arg(long)]
    no_background: bool,
    /// Which scenarios to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_values_t = [Scenario::Baseline, Scenario::Context, Scenario::Registrations, Scenario::Rss]
    )]
    scenarios: Vec<Scenario>,
    /// Where the temporary data directories go (a real disk, not tmpfs, or durability
    /// costs nothing).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.devices >= 1 && args.rss_devices >= 1 && args.registrations >= 1,
        "--devices, --rss-devices and --registrations must be ≥ 1"
    );
    ensure!(
        args.connections >= 1
            && args.registration_connections >= 1
            && args.devices >= args.connections
            && args.rss_devices >= args.connections,
        "connections must be ≥ 1, and at most --devices and --rss-devices"
    );
    ensure!(
        args.repeat >= 1 && args.baseline_repeat >= 1 && args.sample_every >= 1,
        "--repeat, --baseline-repeat and --sample-every must be ≥ 1"
    );
    ensure!(
        args.rate > 0.0
            && args.seconds > 0.0
            && args.window >= 1
            && args.baseline_window >= 1
            && args.inflight >= 1,
        "--rate, --seconds, --window, --baseline-window and --inflight must be positive"
    );
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let broker = Broker::parse(&args.broker)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let root = match &args.work_dir {
        Some(dir) => tempfile::Builder::new()
            .prefix("iotcane-mqtt-bench-")
            .tempdir_in(dir)?,
        None => tempfile::Builder::new()
            .prefix("iotcane-mqtt-bench-")
            .tempdir()?,
    };
    let bench = Bench {
        broker_pid: broker.local().then(find_broker_pid).flatten(),
        broker,
        args,
        root: root.path().to_owned(),
        started: Instant::now(),
        rss_at_start: rss_bytes("self"),
    };
    let result = runtime.block_on(bench.run());
    // The stores' pools close before the directory goes.
    drop(runtime);
    root.close().context("removing the temporary directory")?;
    result
}

struct Bench {
    args: Args,
    broker: Broker,
    /// The broker's process, when it runs on this machine (for its CPU and RSS).
    broker_pid: Option<u32>,
    root: PathBuf,
    started: Instant,
    rss_at_start: u64,
}

/// Every run of every scenario, and the median of each figure.
#[derive(Default)]
struct Results {
    baseline: Vec<Metrics>,
    context: Vec<Metrics>,
    registrations: Vec<Metrics>,
    rss: Vec<Metrics>,
}

impl Bench {
    async fn run(&self) -> anyhow::Result<()> {
        let a = &self.args;
        println!("# IoT-CANE MQTT gateway benchmark");
        println!();
        println!(
            "broker:    {} (pid {})",
            self.broker.url_redacted(),
            self.broker_pid
                .map_or("n/a: not local or not found".to_owned(), |p| p.to_string())
        );
        println!("work dir:  {}", self.root.display());
        println!(
            "host:      {} cores, load average {}",
            cores(),
            load_average()
        );
        println!(
            "gateway:   in-process, SQLite durability {:?}, receive maximum {}, batch max {}, \
             store background task {}",
            a.sqlite_durability,
            a.inflight,
            a.batch_max,
            if a.no_background { "off" } else { "on" }
        );
        println!(
            "load:      {} devices over {} connections at {} msg/s for {} s; {} registrations \
             over {} connections; {} devices for RSS; window {} (baseline {})",
            a.devices,
            a.connections,
            a.rate,
            a.seconds,
            a.registrations,
            a.registration_connections,
            a.rss_devices,
            a.window,
            a.baseline_window
        );
        println!(
            "note:      the load generator (publishers, subscriber, lag checker) and the broker \
             share these {} cores with the gateway; one TCP connection per device is not \
             affordable here, so {} connections carry all devices' reports",
            cores(),
            a.connections
        );
        println!();
        // Fail early if the broker is not there.
        Conn::connect(&self.broker, unique("probe"), None, None)
            .await
            .context("the broker is not reachable")?
            .close()
            .await;

        let mut results = Results::default();
        let runs = |s: Scenario| {
            if a.scenarios.contains(&s) {
                if s == Scenario::Baseline {
                    a.baseline_repeat
                } else {
                    a.repeat
                }
            } else {
                0
            }
        };
        for rep in 0..runs(Scenario::Baseline) {
            self.section(&format!(
                "1. baseline: Mosquitto pub→sub, run {}/{}",
                rep + 1,
                a.baseline_repeat
            ));
            results.baseline.push(self.baseline(rep).await?);
        }
        // The resident set is read before scenarios 2 and 3 run, so that memory they
        // allocated and freed (which the allocator keeps) does not hide its growth.
        for rep in 0..runs(Scenario::Rss) {
            self.section(&format!(
                "4. resident set with live context (run before 2 and 3), run {}/{}",
                rep + 1,
                a.repeat
            ));
            results.rss.push(self.rss(rep).await?);
        }
        for rep in 0..runs(Scenario::Context) {
            self.section(&format!(
                "2. context updates end to end, run {}/{}",
                rep + 1,
                a.repeat
            ));
            results.context.push(self.context_updates(rep).await?);
        }
        for rep in 0..runs(Scenario::Registrations) {
            self.section(&format!(
                "3. registrations over MQTT, run {}/{}",
                rep + 1,
                a.repeat
            ));
            results.registrations.push(self.registrations(rep).await?);
        }
        self.summary(&results);
        Ok(())
    }

    /// A section header, with how far into the run it starts and the host's load.
    fn section(&self, title: &str) {
        println!(
            "## {title}  [t+{:.0} s, load {}]",
            self.started.elapsed().as_secs_f64(),
            load_average()
        );
    }

    fn cpu(&self) -> CpuMeter {
        CpuMeter::start(self.broker_pid)
    }

    // -----------------------------------------------------------------------------------
    // 1. The baseline.

    /// Mosquitto's own pub→sub throughput and latency: saturated, then paced.
    async fn baseline(&self, rep: usize) -> anyhow::Result<Metrics> {
        let a = &self.args;
        let seconds = a.baseline_seconds.unwrap_or(a.seconds.min(10.0));
        let prefix = unique(&format!("mqttbench-base{rep}"));
        let topics: Arc<Vec<String>> = Arc::new(
            (0..a.devices)
                .map(|i| topic(&prefix, &device_id(i), "context"))
                .collect(),
        );
        let filter = format!("{prefix}/{TENANT}/things/+/context");
        let mut m = Metrics::default();
        for paced in [false, true] {
            let phase = self
                .baseline_phase(&topics, &filter, seconds, paced)
                .await?;
            let label = if paced {
                format!("paced at {} msg/s", a.rate)
            } else {
                format!(
                    "saturated, window {} ({} per publisher)",
                    a.baseline_window,
                    (a.baseline_window / a.connections as u64).max(1)
                )
            };
            println!(
                "  {label}: sent {} ({}), received {} ({}), lost {}{}; latency p50 {} p90 {} \
                 p99 {} max {}; CPU: bench {:.2} cores, broker {}",
                phase.sent,
                fmt_rate(phase.sent_rate),
                phase.received,
                fmt_rate(phase.received_rate),
                phase.sent.saturating_sub(phase.received),
                if phase.forgiven > 0 {
                    format!(" ({} flow-control waits given up)", phase.forgiven)
                } else {
                    String::new()
                },
                fmt_ms(phase.latency.p(0.5)),
                fmt_ms(phase.latency.p(0.9)),
                fmt_ms(phase.latency.p(0.99)),
                fmt_ms(phase.latency.p(1.0)),
                phase.cpu.bench,
                phase.cpu.broker_text()
            );
            let key = |k: &str| -> &'static str {
                // Two phases, one set of names each.
                match (paced, k) {
                    (false, "rate") => "saturated_msgs_per_s",
                    (false, "p50") => "saturated_latency_p50_ms",
                    (false, "p99") => "saturated_latency_p99_ms",
                    (false, "lost") => "saturated_lost",
                    (false, "bench") => "saturated_cpu_bench_cores",
                    (false, _) => "saturated_cpu_broker_cores",
                    (true, "rate") => "paced_msgs_per_s",
                    (true, "sent") => "paced_sent_msgs_per_s",
                    (true, "p50") => "paced_latency_p50_ms",
                    (true, "p99") => "paced_latency_p99_ms",
                    (true, "lost") => "paced_lost",
                    (true, "bench") => "paced_cpu_bench_cores",
                    (true, _) => "paced_cpu_broker_cores",
                }
            };
            m.set(key("rate"), phase.received_rate);
            if paced {
                m.set(key("sent"), phase.sent_rate);
            }
            m.set(key("p50"), phase.latency.p(0.5));
            m.set(key("p99"), phase.latency.p(0.99));
            m.set(
                key("lost"),
                phase.sent.saturating_sub(phase.received) as f64,
            );
            m.set(key("bench"), phase.cpu.bench);
            m.set(key("broker"), phase.cpu.broker.unwrap_or(f64::NAN));
        }
        m.set(
            "payload_bytes",
            context_payload(42.0, &stamp_us(now_us())).len() as f64,
        );
        Ok(m)
    }

    async fn baseline_phase(
        &self,
        topics: &Arc<Vec<String>>,
        filter: &str,
        seconds: f64,
        paced: bool,
    ) -> anyhow::Result<BaselinePhase> {
        let a = &self.args;
        let received = Arc::new(AtomicU64::new(0));
        let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
        let flow = Arc::new(Flow::new(a.connections, a.baseline_window));
        // Which publisher sends for each device.
        let owner: Vec<usize> = (0..a.connections)
            .flat_map(|c| {
                let (lo, hi) = slice(a.devices, a.connections, c);
                std::iter::repeat_n(c, hi - lo)
            })
            .collect();
        let on_publish: OnPublish = {
            let (received, latencies, flow) = (received.clone(), latencies.clone(), flow.clone());
            Box::new(move |p: Publish| {
                let now = now_us();
                if let Some(sent) = parse_stamp_us(&p.payload)
                    && let Ok(mut l) = latencies.lock()
                {
                    l.push((now - sent).max(0) as f64 / 1000.0);
                }
                received.fetch_add(1, Ordering::Relaxed);
                if let (Some(device), Some(seq)) =
                    (device_of_topic(&p.topic), load_round(&p.payload))
                    && let Some(&c) = owner.get(device)
                {
                    flow.arrived_mod(c, seq);
                }
            })
        };
        let subscriber = Conn::connect(
            &self.broker,
            unique("mqttbench-sub"),
            Some(a.inflight),
            Some(on_publish),
        )
        .await?;
        subscriber.subscribe(filter).await?;
        let publishers = self.connect_many("mqttbench-pub", a.connections).await?;
        let counter = Arc::new(AtomicU64::new(0));
        let cpu = self.cpu();
        let start = Instant::now();
        let until = start + Duration::from_secs_f64(seconds);
        let total = (a.rate * seconds).round().max(1.0) as u64;
        let mut tasks = Vec::new();
        for (c, conn) in publishers.iter().enumerate() {
            let (lo, hi) = slice(a.devices, publishers.len(), c);
            let topics = topics.clone();
            // loadPct numbers the publisher's messages (modulo 10,000), for the flow control.
            let next = move |k: u64| {
                let device = lo + (k as usize) % (hi - lo);
                let payload = context_payload(load_pct(k).1, &stamp_us(now_us()));
                (topics[device].clone(), payload)
            };
            let client = conn.client.clone();
            let counter = counter.clone();
            tasks.push(if paced {
                let (n, rate) = share(total, a.rate, publishers.len(), c);
                tokio::spawn(
                    async move { publish_paced(&client, n, rate, start, &counter, next).await },
                )
            } else {
                let gate = Gate::Flow {
                    flow: flow.clone(),
                    publisher: c,
                };
                tokio::spawn(async move {
                    publish_windowed(&client, u64::MAX, Some(until), &gate, &counter, next).await
                })
            });
        }
        let (sent, pub_end) = join_publishers(tasks).await?;
        // Messages the broker dropped never come: a short wait.
        let stall = Duration::from_secs_f64(self.args.stall_seconds.min(2.0));
        let (got, done) = wait_for(|| received.load(Ordering::Relaxed), sent, stall).await;
        let cpu = cpu.finish();
        for conn in publishers {
            conn.close().await;
        }
        subscriber.close().await;
        let latency = Dist::new(
            latencies
                .lock()
                .map(|mut l| std::mem::take(&mut *l))
                .unwrap_or_default(),
        );
        Ok(BaselinePhase {
            sent,
            forgiven: flow.forgiven.load(Ordering::Relaxed),
            sent_rate: sent as f64 / secs(pub_end - start),
            received: got,
            received_rate: got as f64 / secs(done - start),
            latency,
            cpu,
        })
    }

    // -----------------------------------------------------------------------------------
    // 2. Context updates end to end.

    async fn context_updates(&self, rep: usize) -> anyhow::Result<Metrics> {
        let a = &self.args;
        let tenant: Tenant = TENANT.parse()?;
        let stack = self.start_stack(&format!("context{rep}"), &tenant).await?;
        let t = Instant::now();
        register_devices(&stack.app, &tenant, 0..a.devices).await?;
        println!(
            "  registered {} devices through App::put_many in {}",
            a.devices,
            fmt_dur(t.elapsed())
        );
        let base = stack.wait_ready(&self.broker, &device_id(0)).await?;
        let ids: Arc<Vec<ResourceId>> = Arc::new(
            (0..a.devices)
                .map(|i| device_id(i).parse())
                .collect::<Result<_, _>>()?,
        );
        let topics: Arc<Vec<String>> = Arc::new(
            (0..a.devices)
                .map(|i| stack.topic(&device_id(i), "context"))
                .collect(),
        );
        let publishers = self.connect_many("mqttbench-dev", a.connections).await?;
        let dropped_before = broker_dropped(&self.broker).await;
        let (samples, sampled) = mpsc::unbounded_channel::<Sample>();
        let finish = CancellationToken::new();
        let checker = tokio::spawn(check_lag(
            stack.store.clone(),
            tenant.clone(),
            ids.clone(),
            sampled,
            finish.clone(),
        ));
        let total = (a.rate * a.seconds).round().max(1.0) as u64;
        let counter = Arc::new(AtomicU64::new(0));
        let applied = || (stack.store.applied_seq() - base).max(0) as u64;
        let cpu = self.cpu();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (c, conn) in publishers.iter().enumerate() {
            let (lo, hi) = slice(a.devices, publishers.len(), c);
            let (n, rate) = share(total, a.rate, publishers.len(), c);
            let topics = topics.clone();
            let samples = samples.clone();
            let every = a.sample_every;
            let next = move |k: u64| {
                let device = lo + (k as usize) % (hi - lo);
                let (load_text, load) = load_pct(k / (hi - lo) as u64);
                let sent = Instant::now();
                let sent_ms = now_ms();
                let payload = context_payload_text(&load_text, &format_time_ms(sent_ms));
                if k % every == every - 1 {
                    let _ = samples.send(Sample {
                        device,
                        sent_ms,
                        load,
                        sent,
                    });
                }
                (topics[device].clone(), payload)
            };
            let client = conn.client.clone();
            let counter = counter.clone();
            tasks.push(tokio::spawn(async move {
                publish_paced(&client, n, rate, start, &counter, next).await
            }));
        }
        drop(samples);
        // Progress while publishing: the applied count, every 100 ms.
        let mut timeline: Vec<(f64, u64)> = vec![(0.0, 0)];
        let mut next_report = 10.0;
        while tasks.iter().any(|t| !t.is_finished()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let at = secs(start.elapsed());
            let done = applied();
            timeline.push((at, done));
            if at >= next_report {
                let published = counter.load(Ordering::Relaxed);
                println!(
                    "  t={at:>4.0} s  published {published}, applied {done}, backlog {}",
                    published.saturating_sub(done)
                );
                next_report += 10.0;
            }
        }
        let (published, pub_end) = join_publishers(tasks).await?;
        let applied_at_pub_end = applied();
        let stall = Duration::from_secs_f64(a.stall_seconds);
        let (final_applied, drain_end) = wait_for(applied, published, stall).await;
        let cpu = cpu.finish();
        let broker_acked = wait_acked(&publishers, published).await;
        finish.cancel();
        let (lags, unseen) = checker.await?;
        let lag = Dist::new(lags);
        let (rows, dead) = journal_counts(&stack.db(), base).await?;
        let snapshots = count_files(&stack.dir.join("snapshots"));
        let lost = published.saturating_sub(rows);
        // The broker's $SYS counters change every sys_interval (10 s by default).
        let dropped = if lost > 0 {
            tokio::time::sleep(Duration::from_secs(11)).await;
            broker_dropped(&self.broker)
                .await
                .zip(dropped_before)
                .map(|(after, before)| after.saturating_sub(before))
        } else {
            None
        };
        for conn in publishers {
            conn.close().await;
        }
        stack.stop().await;

        let pub_secs = secs(pub_end - start);
        let half = timeline
            .iter()
            .find(|(t, _)| *t >= pub_secs / 2.0)
            .copied()
            .unwrap_or((0.0, 0));
        let second_half_rate =
            (applied_at_pub_end.saturating_sub(half.1)) as f64 / (pub_secs - half.0).max(1e-3);
        let mut m = Metrics::default();
        m.set("devices", a.devices as f64);
        m.set("target_msgs_per_s", a.rate);
        m.set("published", published as f64);
        m.set("published_msgs_per_s", published as f64 / pub_secs);
        m.set("broker_acked", broker_acked as f64);
        m.set("applied", final_applied as f64);
        m.set(
            "applied_while_publishing_msgs_per_s",
            applied_at_pub_end as f64 / pub_secs,
        );
        m.set("applied_second_half_msgs_per_s", second_half_rate);
        m.set(
            "backlog_at_publish_end",
            published.saturating_sub(applied_at_pub_end) as f64,
        );
        m.set(
            "drain_s",
            secs(drain_end.saturating_duration_since(pub_end)),
        );
        m.set(
            "sustained_msgs_per_s",
            final_applied as f64 / secs(drain_end - start),
        );
        m.set("lag_p50_ms", lag.p(0.5));
        m.set("lag_p95_ms", lag.p(0.95));
        m.set("lag_p99_ms", lag.p(0.99));
        m.set("lag_max_ms", lag.p(1.0));
        m.set("lag_samples", lag.len() as f64);
        m.set("lag_samples_unseen", unseen as f64);
        m.set("journal_context_rows", rows as f64);
        m.set("lost", lost as f64);
        m.set("dead_letters", dead as f64);
        m.set("snapshots_written", snapshots as f64);
        m.set("cpu_bench_cores", cpu.bench);
        m.set("cpu_broker_cores", cpu.broker.unwrap_or(f64::NAN));
        m.set(
            "broker_dropped_during_run",
            dropped.map_or(f64::NAN, |d| d as f64),
        );
        println!(
            "  published {published} in {} ({} of {} target), broker acked {broker_acked}",
            fmt_dur(pub_end - start),
            fmt_rate(m.get("published_msgs_per_s")),
            fmt_rate(a.rate)
        );
        println!(
            "  durable + visible: {} while publishing ({} in its second half), backlog {} at \
             the end of publishing, drained in {}; sustained {} ({final_applied} applied in {})",
            fmt_rate(m.get("applied_while_publishing_msgs_per_s")),
            fmt_rate(second_half_rate),
            m.get("backlog_at_publish_end"),
            fmt_dur(drain_end.saturating_duration_since(pub_end)),
            fmt_rate(m.get("sustained_msgs_per_s")),
            fmt_dur(drain_end - start)
        );
        println!(
            "  lag send → visible ({} samples, {unseen} never seen): p50 {} p95 {} p99 {} max {}",
            lag.len(),
            fmt_ms(lag.p(0.5)),
            fmt_ms(lag.p(0.95)),
            fmt_ms(lag.p(0.99)),
            fmt_ms(lag.p(1.0))
        );
        println!(
            "  journal: {rows} context rows for {published} published → {}; {dead} dead \
             letters; {snapshots} snapshots written meanwhile",
            if lost == 0 {
                "nothing lost".to_owned()
            } else {
                format!("**{lost} lost**")
            }
        );
        if lost > 0 {
            println!(
                "  the broker counted {} dropped messages during the run \
                 ($SYS/broker/publish/messages/dropped, read 11 s after the drain)",
                dropped.map_or("n/a".to_owned(), |d| d.to_string())
            );
        }
        println!(
            "  CPU while publishing and draining: bench process {:.2} cores (gateway + store + \
             load generator), broker {}",
            cpu.bench,
            cpu.broker_text()
        );
        Ok(m)
    }

    // -----------------------------------------------------------------------------------
    // 3. Registrations.

    async fn registrations(&self, rep: usize) -> anyhow::Result<Metrics> {
        let a = &self.args;
        let tenant: Tenant = TENANT.parse()?;
        let stack = self
            .start_stack(&format!("registrations{rep}"), &tenant)
            .await?;
        // One device, for the readiness probe.
        register_devices(&stack.app, &tenant, 0..1).await?;
        let base = stack.wait_ready(&self.broker, &device_id(0)).await?;
        let count0 = stack.store.count(&tenant, None)?;
        let quads0 = stack.store.graph_len()?;
        // The payload must be accepted, or the window would never open again.
        stack
            .app
            .registration(&thing_id(0).parse::<ResourceId>()?, td(0))
            .map_err(|e| anyhow::anyhow!("the benchmark's TD is refused: {e}"))?;
        let n = a.registrations;
        let conns = self
            .connect_many("mqttbench-reg", a.registration_connections)
            .await?;
        // Payloads made up front: the load generator shares the cores.
        let mut payloads: Vec<Vec<(String, Vec<u8>)>> = vec![Vec::new(); conns.len()];
        let mut bytes = 0;
        for k in 0..n {
            let payload = td(k).to_string().into_bytes();
            bytes += payload.len();
            payloads[k % conns.len()].push((stack.topic(&thing_id(k), "register"), payload));
        }
        // The gateway answers every registration on `…/register/accepted`: the flow
        // control, and the time to the answer.
        let flow = Arc::new(Flow::new(conns.len(), a.window));
        let sent_us: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
        let answers = Arc::new(Mutex::new(Answers::default()));
        let on_publish: OnPublish = {
            let (flow, sent_us, answers) = (flow.clone(), sent_us.clone(), answers.clone());
            let parts = conns.len();
            Box::new(move |p: Publish| {
                let now = now_us();
                let Some((k, accepted)) = answer_of_topic(&p.topic) else {
                    return;
                };
                if let Ok(mut answers) = answers.lock() {
                    if accepted {
                        answers.accepted += 1;
                    } else {
                        answers.rejected += 1;
                    }
                    if let Some(sent) = sent_us.get(k).map(|t| t.load(Ordering::Relaxed)) {
                        answers
                            .latency
                            .push((now - sent as i64).max(0) as f64 / 1000.0);
                    }
                }
                flow.arrived(k % parts, (k / parts) as u64);
            })
        };
        let listener = Conn::connect(
            &self.broker,
            unique("mqttbench-answers"),
            Some(a.inflight),
            Some(on_publish),
        )
        .await?;
        listener
            .subscribe(&format!("{}/{TENANT}/things/+/register/+", stack.prefix))
            .await?;
        let counter = Arc::new(AtomicU64::new(0));
        let cpu = self.cpu();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (c, (conn, mine)) in conns.iter().zip(payloads).enumerate() {
            let client = conn.client.clone();
            let counter = counter.clone();
            let gate = Gate::Flow {
                flow: flow.clone(),
                publisher: c,
            };
            let sent_us = sent_us.clone();
            let parts = conns.len();
            let total = mine.len() as u64;
            let mut mine = mine.into_iter();
            tasks.push(tokio::spawn(async move {
                let next = move |j: u64| {
                    if let Some(t) = sent_us.get(j as usize * parts + c) {
                        t.store(now_us().max(0) as u64, Ordering::Relaxed);
                    }
                    mine.next().unwrap_or_default()
                };
                publish_windowed(&client, total, None, &gate, &counter, next).await
            }));
        }
        let (published, _) = join_publishers(tasks).await?;
        let applied = || (stack.store.applied_seq() - base).max(0) as u64;
        let stall = Duration::from_secs_f64(a.stall_seconds);
        let (done, end) = wait_for(applied, published, stall).await;
        let cpu = cpu.finish();
        let elapsed = end - start;
        let counted = stack.store.count(&tenant, None)? - count0;
        let quads = stack.store.graph_len()? - quads0;
        let (_, dead) = journal_counts(&stack.db(), base).await?;
        // Answers still on their way after the last registration became visible.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for conn in conns {
            conn.close().await;
        }
        listener.close().await;
        stack.stop().await;
        let answers = answers
            .lock()
            .map(|mut a| std::mem::take(&mut *a))
            .unwrap_or_default();
        let latency = Dist::new(answers.latency);
        let forgiven = flow.forgiven.load(Ordering::Relaxed);
        let mut m = Metrics::default();
        m.set("registrations", n as f64);
        m.set("visible", counted as f64);
        m.set("registrations_per_s", counted as f64 / secs(elapsed));
        m.set("elapsed_s", secs(elapsed));
        m.set("td_bytes", bytes as f64 / n as f64);
        m.set("quads_per_td", quads as f64 / counted.max(1) as f64);
        m.set("dead_letters", dead as f64);
        m.set("answers_accepted", answers.accepted as f64);
        m.set("answers_rejected", answers.rejected as f64);
        m.set("answer_p50_ms", latency.p(0.5));
        m.set("answer_p99_ms", latency.p(0.99));
        m.set("flow_waits_given_up", forgiven as f64);
        m.set("cpu_bench_cores", cpu.bench);
        m.set("cpu_broker_cores", cpu.broker.unwrap_or(f64::NAN));
        println!(
            "  answers: {} accepted, {} rejected; publish → accepted answer p50 {} p99 {} max {}{}",
            answers.accepted,
            answers.rejected,
            fmt_ms(latency.p(0.5)),
            fmt_ms(latency.p(0.99)),
            fmt_ms(latency.p(1.0)),
            if forgiven > 0 {
                format!(
                    "; {forgiven} flow-control waits given up after {FLOW_FORGIVE:?} (no answer)"
                )
            } else {
                String::new()
            }
        );
        println!(
            "  {counted} of {n} TDs visible ({done} applied) in {} → {} (window {}; TD {:.0} \
             bytes, {:.1} quads each in the graph incl. version metadata); {dead} dead letters",
            fmt_dur(elapsed),
            fmt_rate(m.get("registrations_per_s")).replace("msg/s", "registrations/s"),
            a.window,
            m.get("td_bytes"),
            m.get("quads_per_td")
        );
        println!(
            "  CPU: bench process {:.2} cores, broker {}",
            cpu.bench,
            cpu.broker_text()
        );
        if counted != n {
            println!(
                "  **only {counted} of {n} registrations became visible** (the broker may have \
                 dropped some: see $SYS/broker/publish/messages/dropped, now {})",
                broker_dropped(&self.broker)
                    .await
                    .map_or("n/a".to_owned(), |d| d.to_string())
            );
        }
        Ok(m)
    }

    // -----------------------------------------------------------------------------------
    // 4. Resident set.

    async fn rss(&self, rep: usize) -> anyhow::Result<Metrics> {
        let a = &self.args;
        let n = a.rss_devices;
        let tenant: Tenant = TENANT.parse()?;
        let stack = self.start_stack(&format!("rss{rep}"), &tenant).await?;
        let before = rss_bytes("self");
        let t = Instant::now();
        register_devices(&stack.app, &tenant, 0..n).await?;
        let register_time = t.elapsed();
        let after_register = rss_bytes("self");
        stack.wait_ready(&self.broker, &device_id(0)).await?;
        let conns = self.connect_many("mqttbench-rss", a.connections).await?;
        let everyone: Vec<usize> = (0..n).collect();
        let t = Instant::now();
        let (published, done) = self.publish_contexts(&stack, &conns, &everyone).await?;
        let context_time = t.elapsed();
        // Reports the broker dropped: find the devices still without live context and
        // send theirs again (at most twice).
        let mut missing = if done == published && published == n as u64 {
            Vec::new()
        } else {
            without_live_context(&stack.store, &tenant, &everyone)
        };
        let mut resent = 0;
        for _ in 0..2 {
            if missing.is_empty() {
                break;
            }
            resent += missing.len();
            self.publish_contexts(&stack, &conns, &missing).await?;
            missing = without_live_context(&stack.store, &tenant, &missing);
        }
        for conn in conns {
            conn.close().await;
        }
        let after = rss_bytes("self");
        let peak = status_kib("self", "VmHWM:").map_or(0, |k| k * 1024);
        let broker_rss = self.broker_pid.map(|p| rss_bytes(&p.to_string()));
        stack.stop().await;
        let mut m = Metrics::default();
        m.set("devices", n as f64);
        m.set("rss_at_bench_start_bytes", self.rss_at_start as f64);
        m.set("rss_before_bytes", before as f64);
        m.set("rss_after_register_bytes", after_register as f64);
        m.set("rss_after_context_bytes", after as f64);
        m.set(
            "rss_growth_per_device_bytes",
            after.saturating_sub(before) as f64 / n as f64,
        );
        m.set("vm_hwm_bytes", peak as f64);
        m.set("register_per_s", n as f64 / secs(register_time));
        m.set("context_applied", done as f64);
        m.set("context_per_s", done as f64 / secs(context_time));
        m.set("context_resent", resent as f64);
        m.set("devices_without_live_context", missing.len() as f64);
        m.set(
            "broker_rss_bytes",
            broker_rss.map_or(f64::NAN, |b| b as f64),
        );
        println!(
            "  registered {n} devices through App::put_many in {} ({}); one context report \
             each over MQTT (window {}): {done} applied in {} ({}){}",
            fmt_dur(register_time),
            fmt_rate(m.get("register_per_s")).replace("msg/s", "devices/s"),
            a.window,
            fmt_dur(context_time),
            fmt_rate(m.get("context_per_s")),
            if resent > 0 {
                format!(
                    "; {resent} reports sent again (lost on the way), {} devices still without \
                     live context",
                    missing.len()
                )
            } else {
                String::new()
            }
        );
        println!(
            "  VmRSS: {} at bench start, {} before loading, {} after registering, {} with live \
             context ({:.1} KiB per device over before); peak (VmHWM) {}; broker {}",
            fmt_bytes(self.rss_at_start),
            fmt_bytes(before),
            fmt_bytes(after_register),
            fmt_bytes(after),
            m.get("rss_growth_per_device_bytes") / 1024.0,
            fmt_bytes(peak),
            broker_rss.map_or("n/a".to_owned(), fmt_bytes)
        );
        Ok(m)
    }

    /// One context report for each of `devices`, over `conns`, at most `--window` of them
    /// published and not yet applied; waits until all are applied (or nothing moves for
    /// `--stall-seconds`). Returns how many were published and applied.
    async fn publish_contexts(
        &self,
        stack: &Stack,
        conns: &[Conn],
        devices: &[usize],
    ) -> anyhow::Result<(u64, u64)> {
        let base = stack.store.applied_seq();
        let counter = Arc::new(AtomicU64::new(0));
        let gate = Gate::Applied {
            store: stack.store.clone(),
            base,
            window: self.args.window,
            forgiven: Arc::new(AtomicU64::new(0)),
        };
        let devices: Arc<Vec<usize>> = Arc::new(devices.to_vec());
        let mut tasks = Vec::new();
        for (c, conn) in conns.iter().enumerate() {
            let (lo, hi) = slice(devices.len(), conns.len(), c);
            let (prefix, devices) = (stack.prefix.clone(), devices.clone());
            let next = move |k: u64| {
                let device = devices[lo + k as usize];
                let payload = context_payload(load_pct(k).1, &format_time_ms(now_ms()));
                (topic(&prefix, &device_id(device), "context"), payload)
            };
            let client = conn.client.clone();
            let (counter, gate) = (counter.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                publish_windowed(&client, (hi - lo) as u64, None, &gate, &counter, next).await
            }));
        }
        let (published, _) = join_publishers(tasks).await?;
        let applied = || (stack.store.applied_seq() - base).max(0) as u64;
        let stall = Duration::from_secs_f64(self.args.stall_seconds);
        let (done, _) = wait_for(applied, published, stall).await;
        Ok((published, done))
    }

    // -----------------------------------------------------------------------------------
    // The summary.

    fn summary(&self, r: &Results) {
        let a = &self.args;
        let base = medians(&r.baseline);
        let ctx = medians(&r.context);
        let reg = medians(&r.registrations);
        let rss = medians(&r.rss);
        let ratio = ctx.get("sustained_msgs_per_s") / base.get("saturated_msgs_per_s");
        println!();
        self.section("summary (medians)");
        println!();
        println!("| figure | median | runs |");
        println!("|---|---|---|");
        if !r.baseline.is_empty() {
            let n = r.baseline.len();
            println!(
                "| baseline: Mosquitto pub→sub, {} publishers → 1 subscriber, QoS 1, saturated \
                 (window {}) | {}; latency p50 {}, p99 {}; lost {} | {n} |",
                a.connections,
                a.baseline_window,
                fmt_rate(base.get("saturated_msgs_per_s")),
                fmt_ms(base.get("saturated_latency_p50_ms")),
                fmt_ms(base.get("saturated_latency_p99_ms")),
                base.get("saturated_lost")
            );
            println!(
                "| baseline: the same, paced at {} msg/s | {} delivered; latency p50 {}, p99 \
                 {}; lost {} | {n} |",
                a.rate,
                fmt_rate(base.get("paced_msgs_per_s")),
                fmt_ms(base.get("paced_latency_p50_ms")),
                fmt_ms(base.get("paced_latency_p99_ms")),
                base.get("paced_lost")
            );
        }
        if !r.context.is_empty() {
            let n = r.context.len();
            println!(
                "| context reports published ({} devices over {} connections, target {} msg/s, \
                 {} s) | {} | {n} |",
                a.devices,
                a.connections,
                a.rate,
                a.seconds,
                fmt_rate(ctx.get("published_msgs_per_s"))
            );
            println!(
                "| durable + visible while publishing (SQLite {:?}) | {} ({} in the second \
                 half); backlog {} at the end | {n} |",
                a.sqlite_durability,
                fmt_rate(ctx.get("applied_while_publishing_msgs_per_s")),
                fmt_rate(ctx.get("applied_second_half_msgs_per_s")),
                ctx.get("backlog_at_publish_end")
            );
            println!(
                "| durable + visible, sustained incl. drain | {} = {:.2}× the saturated \
                 baseline; drain {:.2} s | {n} |",
                fmt_rate(ctx.get("sustained_msgs_per_s")),
                ratio,
                ctx.get("drain_s")
            );
            println!(
                "| lag, send → visible in the graph (every {}th message) | p50 {}, p95 {}, \
                 p99 {}, max {} (baseline paced p50 {}, p99 {}) | {n} |",
                a.sample_every,
                fmt_ms(ctx.get("lag_p50_ms")),
                fmt_ms(ctx.get("lag_p95_ms")),
                fmt_ms(ctx.get("lag_p99_ms")),
                fmt_ms(ctx.get("lag_max_ms")),
                fmt_ms(base.get("paced_latency_p50_ms")),
                fmt_ms(base.get("paced_latency_p99_ms"))
            );
            println!(
                "| journal context rows vs published | {} of {}: {} lost; {} dead letters \
                 (the paced baseline lost {} of its messages at the same rate) | {n} |",
                ctx.get("journal_context_rows"),
                ctx.get("published"),
                ctx.get("lost"),
                ctx.get("dead_letters"),
                base.get("paced_lost")
            );
            println!(
                "| CPU during the context run | bench process {:.2} cores, broker {:.2} cores \
                 (of {}) | {n} |",
                ctx.get("cpu_bench_cores"),
                ctx.get("cpu_broker_cores"),
                cores()
            );
        }
        if !r.registrations.is_empty() {
            println!(
                "| registrations over MQTT ({} TDs of {:.0} bytes, {:.1} quads each, window {}) \
                 | {:.0} registrations/s ({:.2} s) | {} |",
                a.registrations,
                reg.get("td_bytes"),
                reg.get("quads_per_td"),
                a.window,
                reg.get("registrations_per_s"),
                reg.get("elapsed_s"),
                r.registrations.len()
            );
        }
        if !r.rss.is_empty() {
            println!(
                "| VmRSS with {} devices with live context (bench process: gateway, store, \
                 clients) | {} (before loading {}; {:.1} KiB per device; at bench start {}) | \
                 {} |",
                a.rss_devices,
                fmt_bytes(rss.get("rss_after_context_bytes") as u64),
                fmt_bytes(rss.get("rss_before_bytes") as u64),
                rss.get("rss_growth_per_device_bytes") / 1024.0,
                fmt_bytes(rss.get("rss_at_bench_start_bytes") as u64),
                r.rss.len()
            );
        }
        println!();
        println!("notes:");
        println!(
            "- one process holds the gateway, the store and the load generator (publishers, \
             the baseline's subscriber, the lag checker), on the same {} cores as the broker: \
             the figures are what this machine does with all of it, not the gateway alone",
            cores()
        );
        println!(
            "- {} publisher connections stand for {} devices (one connection per device is not \
             affordable here): the broker's per-connection costs of a real fleet are not in \
             these figures",
            a.connections, a.devices
        );
        println!(
            "- the baseline's subscriber acknowledges at once; the gateway acknowledges a \
             message only after its journal commit (SQLite {:?}) and graph update",
            a.sqlite_durability
        );
        println!(
            "- lag: from just before the publish call (the client's queue included) until \
             KnowledgeStore::get shows the report; the checker looks after each applied \
             batch, at most every 1 ms"
        );
        println!(
            "- the store's background task {} (snapshots every 50,000 changes count against \
             the gateway); context pruning is deferred so the row count can be checked",
            if a.no_background { "is off" } else { "runs" }
        );
        println!(
            "- the broker may drop QoS 1 messages on their way to a subscriber (its queue \
             limits; this Mosquitto, 2.0.11 with defaults, was seen dropping under load with \
             far fewer messages pending than max_queued_messages): the baseline's `lost` shows \
             what the broker alone drops, the context run's `lost` what the gateway never got \
             or never wrote"
        );
        println!(
            "- every client here, the gateway's included, uses rumqttc's default socket options \
             (Nagle on); latencies near 40 ms are likely delayed-ACK stalls"
        );
        println!(
            "- VmRSS includes the clients and buffers of the load generator, and memory the \
             allocator kept from earlier scenarios"
        );
        println!();
        let summary = json!({
            "bench": "mqtt_load",
            "config": {
                "broker": self.broker.url_redacted(),
                "devices": a.devices,
                "rate": a.rate,
                "seconds": a.seconds,
                "connections": a.connections,
                "registrations": a.registrations,
                "registration_connections": a.registration_connections,
                "rss_devices": a.rss_devices,
                "repeat": a.repeat,
                "baseline_repeat": a.baseline_repeat,
                "window": a.window,
                "baseline_window": a.baseline_window,
                "sample_every": a.sample_every,
                "sqlite_durability": format!("{:?}", a.sqlite_durability).to_lowercase(),
                "inflight": a.inflight,
                "batch_max": a.batch_max,
                "background": !a.no_background,
                "cores": cores(),
            },
            "baseline": scenario_json(&r.baseline, &base),
            "context": scenario_json(&r.context, &ctx),
            "registrations": scenario_json(&r.registrations, &reg),
            "rss": scenario_json(&r.rss, &rss),
            "context_sustained_vs_baseline": finite(ratio),
        });
        println!("{summary}");
    }

    // -----------------------------------------------------------------------------------
    // Set-up.

    async fn connect_many(&self, stem: &str, n: usize) -> anyhow::Result<Vec<Conn>> {
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            conns.push(Conn::connect(&self.broker, unique(stem), None, None).await?);
        }
        Ok(conns)
    }

    /// A fresh store in its own directory, an API key for the tenant (an external broker's
    /// tenants must exist), the store's background task, and the gateway.
    async fn start_stack(&self, label: &str, tenant: &Tenant) -> anyhow::Result<Stack> {
        let a = &self.args;
        let dir = self.root.join(label);
        let mut config = StoreConfig::new(&dir);
        config.sqlite_durability = match a.sqlite_durability {
            Durability::Full => SqliteDurability::Full,
            Durability::Normal => SqliteDurability::Normal,
        };
        // Pruning would delete the rows the loss check counts.
        config.context_prune_interval = Duration::from_secs(30 * 24 * 3600);
        let store = KnowledgeStore::open(config).await?;
        let app = App::new(store.clone());
        app.keys()
            .create(tenant, Role::Write, "bench")
            .await
            .map_err(|e| anyhow::anyhow!("creating the tenant's key: {e}"))?;
        let shutdown = CancellationToken::new();
        let background = (!a.no_background).then(|| {
            let (store, shutdown) = (store.clone(), shutdown.clone());
            tokio::spawn(async move { store.run_background(shutdown).await })
        });
        let prefix = unique(&format!("mqttbench-{label}"));
        let mut mqtt = MqttConfig::new();
        mqtt.url = Some(self.broker.url.clone());
        mqtt.client_id = unique(&format!("mqttbench-gw-{label}"));
        mqtt.prefix = prefix.clone();
        mqtt.inflight = a.inflight;
        mqtt.batch_max = a.batch_max;
        mqtt.session_expiry = SESSION_EXPIRY;
        let gateway = MqttGateway::start(app.clone(), mqtt, shutdown.clone()).await?;
        Ok(Stack {
            dir,
            store,
            app,
            prefix,
            shutdown,
            gateway,
            background,
        })
    }
}

/// What the registrations' answer listener saw.
#[derive(Default)]
struct Answers {
    accepted: u64,
    rejected: u64,
    latency: Vec<f64>,
}

struct BaselinePhase {
    sent: u64,
    /// Flow-control waits given up (a publisher's last messages lost).
    forgiven: u64,
    sent_rate: f64,
    received: u64,
    received_rate: f64,
    latency: Dist,
    cpu: CpuUse,
}

/// The service under test: store, app and gateway, in this process.
struct Stack {
    dir: PathBuf,
    store: KnowledgeStore,
    app: App,
    prefix: String,
    shutdown: CancellationToken,
    gateway: MqttGateway,
    background: Option<JoinHandle<()>>,
}

impl Stack {
    fn topic(&self, id: &str, tail: &str) -> String {
        topic(&self.prefix, id, tail)
    }

    fn db(&self) -> PathBuf {
        self.dir.join("iotcane.db")
    }

    /// Waits until the gateway takes messages: publishes a context report for `probe` (a
    /// registered device) until one is applied, then until the journal is quiet (repeated
    /// probes may still arrive). Returns the journal position the scenario counts from.
    async fn wait_ready(&self, broker: &Broker, probe: &str) -> anyhow::Result<i64> {
        let conn = Conn::connect(broker, unique("mqttbench-probe"), None, None).await?;
        let topic = self.topic(probe, "context");
        let before = self.store.applied_seq();
        let deadline = Instant::now() + Duration::from_secs(30);
        'probe: loop {
            ensure!(
                Instant::now() < deadline,
                "the gateway did not apply a probe within 30 s"
            );
            let payload = context_payload(0.0, &format_time_ms(now_ms()));
            conn.client
                .publish(topic.clone(), QoS::AtLeastOnce, false, payload)
                .await?;
            for _ in 0..50 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                if self.store.applied_seq() > before {
                    break 'probe;
                }
            }
        }
        let mut seq = self.store.applied_seq();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = self.store.applied_seq();
            if now == seq {
                break;
            }
            seq = now;
        }
        conn.close().await;
        Ok(seq)
    }

    /// Stops like SIGTERM: the gateway finishes, the background task writes its last
    /// snapshot, the journal closes.
    async fn stop(self) {
        self.shutdown.cancel();
        self.gateway.join().await;
        if let Some(background) = self.background {
            let _ = background.await;
        }
        self.store.close().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Registers devices `range` (native JSON) through the app, `REGISTER_BATCH` per journal
/// transaction.
async fn register_devices(
    app: &App,
    tenant: &Tenant,
    range: std::ops::Range<usize>,
) -> anyhow::Result<()> {
    let actor = Actor {
        name: "bench".to_owned(),
        source: ChangeSource::Cli,
    };
    let mut next = range.start;
    while next < range.end {
        let end = (next + REGISTER_BATCH).min(range.end);
        let resources = (next..end)
            .map(|i| Resource::from_json(device_json(&device_id(i))))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("generated device refused: {e}"))?;
        let results = app.put_many(tenant, resources, &actor).await?;
        ensure!(
            results.iter().all(Result::is_ok),
            "the store refused generated devices"
        );
        next = end;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Payloads and names.

fn device_id(i: usize) -> String {
    format!("dev-{i:06}")
}

fn thing_id(i: usize) -> String {
    format!("urn:bench:thing-{i:06}")
}

fn topic(prefix: &str, id: &str, tail: &str) -> String {
    format!("{prefix}/{TENANT}/things/{id}/{tail}")
}

/// A name no other run on this broker uses.
fn unique(stem: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{stem}-{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A device as a registration in native JSON would describe it.
fn device_json(id: &str) -> Value {
    json!({
        "id": id,
        "kind": "device",
        "name": format!("Sensor {id}"),
        "observes": ["temperature"],
        "protocols": ["mqtt"],
        "affordances": [{"name": "temp", "affordanceKind": "property"}],
    })
}

/// A W3C TD of about 30 triples: title, description, security, three properties and an
/// action, each with a form.
fn td(k: usize) -> Value {
    let id = thing_id(k);
    let href = |what: &str| format!("mqtt://broker.example/lamps/{k}/{what}");
    json!({
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "id": id,
        "title": format!("Lamp {k}"),
        "description": format!("A dimmable ceiling lamp on floor {}", k % 40),
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
        "properties": {
            "on": {"type": "boolean", "forms": [{"href": href("on")}]},
            "brightness": {
                "type": "integer", "minimum": 0, "maximum": 100,
                "forms": [{"href": href("brightness")}]
            },
            "power": {
                "type": "number", "unit": "W", "readOnly": true,
                "forms": [{"href": href("power")}]
            }
        },
        "actions": {
            "toggle": {"forms": [{"href": href("toggle")}]}
        }
    })
}

/// The `loadPct` of a device's `round`-th report: unique per device for 10,000 rounds,
/// as JSON text and as the number the store will hold.
fn load_pct(round: u64) -> (String, f64) {
    let r = round % 10_000;
    let text = format!("{}.{:02}", r / 100, r % 100);
    let value = text.parse().unwrap_or(0.0);
    (text, value)
}

fn context_payload(load: f64, observed_at: &str) -> Vec<u8> {
    context_payload_text(&format!("{load:.2}"), observed_at)
}

fn context_payload_text(load: &str, observed_at: &str) -> Vec<u8> {
    format!(
        r#"{{"status":"online","loadPct":{load},"batteryPct":80,"observedAt":"{observed_at}"}}"#
    )
    .into_bytes()
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn now_ms() -> i64 {
    now_us() / 1000
}

/// An RFC 3339 time with microseconds (the baseline's send time).
fn stamp_us(us: i64) -> String {
    let whole = format_time_ms(us.div_euclid(1_000_000) * 1000);
    let seconds = whole.trim_end_matches('Z');
    let seconds = seconds.split_once('.').map_or(seconds, |(s, _)| s);
    format!("{seconds}.{:06}Z", us.rem_euclid(1_000_000))
}

/// The `observedAt` of a baseline payload, in µs since the epoch.
fn parse_stamp_us(payload: &[u8]) -> Option<i64> {
    const KEY: &[u8] = b"\"observedAt\":\"";
    let at = payload.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = std::str::from_utf8(&payload[at..]).ok()?;
    let stamp = &rest[..rest.find('"')?];
    let (seconds, fraction) = stamp.split_once('.')?;
    let micros: i64 = fraction.trim_end_matches('Z').parse().ok()?;
    Some(parse_time_ms(&format!("{seconds}Z"))? * 1000 + micros)
}

// ---------------------------------------------------------------------------------------
// MQTT clients.

#[derive(Debug, Clone)]
struct Broker {
    url: String,
    host: String,
    port: u16,
    login: Option<(String, String)>,
}

impl Broker {
    fn parse(url: &str) -> anyhow::Result<Broker> {
        let Some(rest) = url.strip_prefix("mqtt://") else {
            bail!("--broker must be mqtt://host:port (TLS is not supported by the bench)");
        };
        let rest = rest.trim_end_matches('/');
        let (login, hostport) = match rest.rsplit_once('@') {
            Some((userinfo, hostport)) => {
                let (u, p) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                (Some((u.to_owned(), p.to_owned())), hostport)
            }
            None => (None, rest),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().context("the broker's port")?),
            None => (hostport, 1883),
        };
        ensure!(!host.is_empty(), "--broker has no host");
        Ok(Broker {
            url: url.to_owned(),
            host: host.to_owned(),
            port,
            login,
        })
    }

    fn local(&self) -> bool {
        matches!(
            self.host.as_str(),
            "127.0.0.1" | "localhost" | "::1" | "[::1]"
        )
    }

    fn url_redacted(&self) -> String {
        match &self.login {
            Some(_) => format!("mqtt://***@{}:{}", self.host, self.port),
            None => self.url.clone(),
        }
    }
}

type OnPublish = Box<dyn FnMut(Publish) + Send>;

/// One MQTT 5 client connection with its event loop task.
struct Conn {
    client: AsyncClient,
    /// PUBACKs received (our QoS 1 publishes the broker took).
    acked: Arc<AtomicU64>,
    subacked: Arc<AtomicU64>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Conn {
    /// Connects with a clean session; `on_publish` sees every incoming message (the client
    /// acknowledges it).
    async fn connect(
        broker: &Broker,
        client_id: String,
        receive_maximum: Option<u16>,
        mut on_publish: Option<OnPublish>,
    ) -> anyhow::Result<Conn> {
        let mut options = MqttOptions::new(client_id, broker.host.clone(), broker.port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_start(true)
            .set_outgoing_inflight_upper_limit(CLIENT_INFLIGHT)
            .set_max_packet_size(Some(1 << 20))
            .set_receive_maximum(receive_maximum);
        if let Some((user, password)) = &broker.login {
            options.set_credentials(user.clone(), password.clone());
        }
        let (client, mut eventloop) = AsyncClient::new(options, CLIENT_QUEUE);
        let acked = Arc::new(AtomicU64::new(0));
        let subacked = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let (ready_tx, ready) = tokio::sync::oneshot::channel::<Result<(), String>>();
        let task = tokio::spawn({
            let (acked, subacked, stop) = (acked.clone(), subacked.clone(), stop.clone());
            async move {
                let mut ready_tx = Some(ready_tx);
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            if let Some(tx) = ready_tx.take() {
                                let _ = tx.send(Ok(()));
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            if let Some(f) = on_publish.as_mut() {
                                f(p);
                            }
                        }
                        Ok(Event::Incoming(Packet::PubAck(_))) => {
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            subacked.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                        Ok(_) => {}
                        Err(e) => {
                            if let Some(tx) = ready_tx.take() {
                                let _ = tx.send(Err(e.to_string()));
                                return;
                            }
                            if stop.is_cancelled() {
                                return;
                            }
                            tracing::warn!(error = %e, "bench client: connection lost; reconnecting");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
            }
        });
        match tokio::time::timeout(Duration::from_secs(10), ready).await {
            Ok(Ok(Ok(()))) => Ok(Conn {
                client,
                acked,
                subacked,
                stop,
                task,
            }),
            Ok(Ok(Err(e))) => {
                task.abort();
                bail!("connecting to {}: {e}", broker.url_redacted())
            }
            _ => {
                task.abort();
                bail!("connecting to {}: no CONNACK", broker.url_redacted())
            }
        }
    }

    /// Subscribes at QoS 1 and waits for the SUBACK.
    async fn subscribe(&self, filter: &str) -> anyhow::Result<()> {
        let before = self.subacked.load(Ordering::Relaxed);
        self.client.subscribe(filter, QoS::AtLeastOnce).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.subacked.load(Ordering::Relaxed) == before {
            ensure!(Instant::now() < deadline, "no SUBACK for {filter}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    async fn close(self) {
        self.stop.cancel();
        let _ = self.client.disconnect().await;
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// What lets a closed-loop publisher send its next message.
#[derive(Clone)]
enum Gate {
    /// Per-publisher flow control on what arrived (see [`Flow`]).
    Flow { flow: Arc<Flow>, publisher: usize },
    /// Fewer than `window` messages published (by all publishers sharing the counter) and
    /// not yet applied to the store. After `STALL_FORGIVE` without progress the window
    /// moves on (the broker may have dropped messages); the caller repairs afterwards.
    Applied {
        store: KnowledgeStore,
        base: i64,
        window: u64,
        forgiven: Arc<AtomicU64>,
    },
}

/// How long a closed-loop publisher waits without progress before it takes the missing
/// messages for lost: on the applied count (the gateway's batches take a while) and on
/// arrivals at a subscriber.
const STALL_FORGIVE: Duration = Duration::from_secs(1);
const FLOW_FORGIVE: Duration = Duration::from_millis(50);

impl Gate {
    /// Waits for room to send the publisher's `k`-th message; `false` when `until` came
    /// first.
    async fn enter(&self, k: u64, counter: &AtomicU64, until: Option<Instant>) -> bool {
        match self {
            Gate::Flow { flow, publisher } => flow.enter(*publisher, k, until).await,
            Gate::Applied {
                store,
                base,
                window,
                forgiven,
            } => {
                let mut last = store.applied_seq();
                let mut moved = Instant::now();
                loop {
                    let seq = store.applied_seq();
                    let applied = (seq - base).max(0) as u64 + forgiven.load(Ordering::Relaxed);
                    if counter.load(Ordering::Relaxed) < applied + window {
                        return true;
                    }
                    if until.is_some_and(|u| Instant::now() >= u) {
                        return false;
                    }
                    if seq != last {
                        (last, moved) = (seq, Instant::now());
                    } else if moved.elapsed() >= STALL_FORGIVE {
                        forgiven.fetch_add(*window, Ordering::Relaxed);
                        moved = Instant::now();
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
}

/// Flow control of a closed-loop phase, per publisher: publisher `c` sends its `k`-th
/// message only while fewer than `per` of its messages are beyond the newest one known to
/// have arrived. A message the broker drops is passed over as soon as a later one
/// arrives, so drops do not shrink the window; a publisher whose last messages were all
/// lost waits `FLOW_FORGIVE`, then moves on (counted in `forgiven`).
struct Flow {
    /// Per publisher: one past the highest sequence number known to have arrived.
    arrived: Vec<AtomicU64>,
    wake: Vec<tokio::sync::Notify>,
    per: u64,
    forgiven: AtomicU64,
}

/// Sequence numbers travel modulo this (as `loadPct` 0.00–99.99).
const SEQ_MODULO: u64 = 10_000;

impl Flow {
    fn new(publishers: usize, window: u64) -> Self {
        Self {
            arrived: (0..publishers).map(|_| AtomicU64::new(0)).collect(),
            wake: (0..publishers)
                .map(|_| tokio::sync::Notify::new())
                .collect(),
            per: (window / publishers as u64).clamp(1, SEQ_MODULO / 4),
            forgiven: AtomicU64::new(0),
        }
    }

    fn arrived(&self, c: usize, seq: u64) {
        self.arrived[c].fetch_max(seq + 1, Ordering::Relaxed);
        self.wake[c].notify_one();
    }

    /// `seq_mod` is a sequence number modulo `SEQ_MODULO`, within `per` of the newest
    /// one known (messages of one publisher arrive in order).
    fn arrived_mod(&self, c: usize, seq_mod: u64) {
        let next = self.arrived[c].load(Ordering::Relaxed);
        let mut seq = next - next % SEQ_MODULO + seq_mod;
        if seq + SEQ_MODULO / 2 < next {
            seq += SEQ_MODULO;
        } else if seq >= next + SEQ_MODULO / 2 && seq >= SEQ_MODULO {
            seq -= SEQ_MODULO;
        }
        self.arrived(c, seq);
    }

    async fn enter(&self, c: usize, k: u64, until: Option<Instant>) -> bool {
        loop {
            if k < self.arrived[c].load(Ordering::Relaxed) + self.per {
                return true;
            }
            let deadline = Instant::now() + FLOW_FORGIVE;
            let wait = until.map_or(deadline, |u| u.min(deadline));
            let woken = tokio::time::timeout_at(wait.into(), self.wake[c].notified()).await;
            if woken.is_err() {
                if until.is_some_and(|u| Instant::now() >= u) {
                    return false;
                }
                self.forgiven.fetch_add(1, Ordering::Relaxed);
                self.arrived[c].fetch_max(k + 1 - self.per, Ordering::Relaxed);
            }
        }
    }
}

/// The registration number and outcome of an answer topic
/// (`…/things/urn:bench:thing-000123/register/accepted`).
fn answer_of_topic(topic: &[u8]) -> Option<(usize, bool)> {
    let topic = std::str::from_utf8(topic).ok()?;
    let mut levels = topic.rsplit('/');
    let accepted = match levels.next()? {
        "accepted" => true,
        "rejected" => false,
        _ => return None,
    };
    levels.next().filter(|l| *l == "register")?;
    let id = levels.next()?;
    Some((id.strip_prefix("urn:bench:thing-")?.parse().ok()?, accepted))
}

/// The device number in a context topic (`…/things/dev-000123/context`).
fn device_of_topic(topic: &[u8]) -> Option<usize> {
    let topic = std::str::from_utf8(topic).ok()?;
    let id = topic.split('/').rev().nth(1)?;
    id.strip_prefix("dev-")?.parse().ok()
}

/// The `loadPct` of a payload as the round number it encodes (`42.17` → 4217).
fn load_round(payload: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"loadPct\":";
    let at = payload.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = std::str::from_utf8(&payload[at..]).ok()?;
    let number = &rest[..rest.find([',', '}'])?];
    let value: f64 = number.trim().parse().ok()?;
    Some((value * 100.0).round() as u64)
}

/// Publishes `total` messages at `rate`/s on the schedule that starts at `start` (open
/// loop: a publisher behind schedule sends at once). Returns how many went and when the
/// last was handed to the client.
async fn publish_paced(
    client: &AsyncClient,
    total: u64,
    rate: f64,
    start: Instant,
    counter: &AtomicU64,
    mut next: impl FnMut(u64) -> (String, Vec<u8>),
) -> anyhow::Result<(u64, Instant)> {
    let mut sent = 0;
    while sent < total {
        let due = ((secs(start.elapsed()) * rate) as u64 + 1).min(total);
        while sent < due {
            let (topic, payload) = next(sent);
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await?;
            sent += 1;
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if sent < total {
            let at = start + Duration::from_secs_f64(sent as f64 / rate);
            tokio::time::sleep_until(at.into()).await;
        }
    }
    Ok((sent, Instant::now()))
}

/// Publishes up to `total` messages, each when `gate` lets it, until `until`.
async fn publish_windowed(
    client: &AsyncClient,
    total: u64,
    until: Option<Instant>,
    gate: &Gate,
    counter: &AtomicU64,
    mut next: impl FnMut(u64) -> (String, Vec<u8>),
) -> anyhow::Result<(u64, Instant)> {
    let mut sent = 0;
    while sent < total {
        if until.is_some_and(|u| Instant::now() >= u) || !gate.enter(sent, counter, until).await {
            break;
        }
        counter.fetch_add(1, Ordering::Relaxed);
        let (topic, payload) = next(sent);
        client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await?;
        sent += 1;
    }
    Ok((sent, Instant::now()))
}

/// The publishers' total and the last one's end.
async fn join_publishers(
    tasks: Vec<JoinHandle<anyhow::Result<(u64, Instant)>>>,
) -> anyhow::Result<(u64, Instant)> {
    let mut total = 0;
    let mut end: Option<Instant> = None;
    for task in tasks {
        let (n, at) = task.await??;
        total += n;
        end = Some(end.map_or(at, |e| e.max(at)));
    }
    Ok((total, end.unwrap_or_else(Instant::now)))
}

/// Waits until `value()` reaches `target`, or stops moving for `stall`. Returns the value
/// and when it last moved (or reached the target).
async fn wait_for(value: impl Fn() -> u64, target: u64, stall: Duration) -> (u64, Instant) {
    let mut last = value();
    let mut moved = Instant::now();
    loop {
        if last >= target {
            return (last, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        let now = value();
        if now != last {
            last = now;
            moved = Instant::now();
        } else if moved.elapsed() >= stall {
            return (last, moved);
        }
    }
}

/// Waits (a little) for the broker's PUBACKs of everything published.
async fn wait_acked(conns: &[Conn], published: u64) -> u64 {
    let acked = || conns.iter().map(|c| c.acked.load(Ordering::Relaxed)).sum();
    wait_for(acked, published, Duration::from_secs(5)).await.0
}

/// Connection `c`'s devices when `n` devices are split over `parts` connections.
fn slice(n: usize, parts: usize, c: usize) -> (usize, usize) {
    (n * c / parts, n * (c + 1) / parts)
}

/// Connection `c`'s share of `total` messages at `rate`.
fn share(total: u64, rate: f64, parts: usize, c: usize) -> (u64, f64) {
    let parts = parts as u64;
    let c = c as u64;
    let n = total * (c + 1) / parts - total * c / parts;
    (n, (rate * n as f64 / total as f64).max(1e-3))
}

/// The broker's count of dropped messages, from `$SYS` (Mosquitto publishes it, retained,
/// once it is not zero; `Some(0)` when it never was).
async fn broker_dropped(broker: &Broker) -> Option<u64> {
    let value = Arc::new(Mutex::new(None::<u64>));
    let on_publish: OnPublish = {
        let value = value.clone();
        Box::new(move |p: Publish| {
            let parsed = std::str::from_utf8(&p.payload)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            if let (Some(v), Ok(mut slot)) = (parsed, value.lock()) {
                *slot = Some(v);
            }
        })
    };
    let conn = Conn::connect(broker, unique("mqttbench-sys"), None, Some(on_publish))
        .await
        .ok()?;
    let subscribed = conn
        .subscribe("$SYS/broker/publish/messages/dropped")
        .await
        .is_ok();
    tokio::time::sleep(Duration::from_millis(500)).await;
    conn.close().await;
    let seen = value.lock().ok().and_then(|v| *v);
    subscribed.then_some(seen.unwrap_or(0))
}

// ---------------------------------------------------------------------------------------
// The lag checker.

/// A message followed from its send to its visibility.
struct Sample {
    device: usize,
    sent_ms: i64,
    load: f64,
    sent: Instant,
}

/// Follows the samples until `finish`: after each change of the applied position, reads
/// the pending samples' devices from the store, oldest first, and records the lag of
/// those now visible. A last full pass at the end; samples never seen are counted.
async fn check_lag(
    store: KnowledgeStore,
    tenant: Tenant,
    ids: Arc<Vec<ResourceId>>,
    mut samples: mpsc::UnboundedReceiver<Sample>,
    finish: CancellationToken,
) -> (Vec<f64>, usize) {
    let mut pending = VecDeque::new();
    let mut lags = Vec::new();
    let mut last_seq = i64::MIN;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = finish.cancelled() => break,
            _ = tick.tick() => {}
        }
        while let Ok(sample) = samples.try_recv() {
            pending.push_back(sample);
        }
        let seq = store.applied_seq();
        if seq == last_seq || pending.is_empty() {
            continue;
        }
        last_seq = seq;
        scan(&store, &tenant, &ids, &mut pending, &mut lags, CHECK_MISSES);
    }
    while let Ok(sample) = samples.try_recv() {
        pending.push_back(sample);
    }
    scan(&store, &tenant, &ids, &mut pending, &mut lags, usize::MAX);
    (lags, pending.len())
}

fn scan(
    store: &KnowledgeStore,
    tenant: &Tenant,
    ids: &[ResourceId],
    pending: &mut VecDeque<Sample>,
    lags: &mut Vec<f64>,
    max_misses: usize,
) {
    let mut misses = 0;
    let mut i = 0;
    while i < pending.len() && misses < max_misses {
        if visible(store, tenant, &ids[pending[i].device], &pending[i]) {
            if let Some(sample) = pending.remove(i) {
                lags.push(secs(sample.sent.elapsed()) * 1e3);
            }
        } else {
            misses += 1;
            i += 1;
        }
    }
}

/// Whether the device's live context is this sample's report or a later one.
fn visible(store: &KnowledgeStore, tenant: &Tenant, id: &ResourceId, sample: &Sample) -> bool {
    let Ok(Some(stored)) = store.get(tenant, id) else {
        return false;
    };
    let Some(live) =
        iotcane_app::live::placement_of(&stored.resource).and_then(|p| p.live.as_ref())
    else {
        return false;
    };
    let Some(at) = live.observed_at.as_deref().and_then(parse_time_ms) else {
        return false;
    };
    at > sample.sent_ms || (at == sample.sent_ms && live.load_pct == Some(sample.load))
}

// ---------------------------------------------------------------------------------------
// The journal, read back.

/// Context rows after `after_seq`, and dead letters, counted in the SQLite file.
async fn journal_counts(db: &Path, after_seq: i64) -> anyhow::Result<(u64, u64)> {
    use sqlx::{ConnectOptions, Connection};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .connect()
        .await
        .with_context(|| format!("opening {}", db.display()))?;
    let rows: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM journal WHERE op = 'context' AND seq > ?")
            .bind(after_seq)
            .fetch_one(&mut conn)
            .await?;
    let dead: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok((rows.max(0) as u64, dead.max(0) as u64))
}

/// Those of `devices` whose description has no live context.
fn without_live_context(store: &KnowledgeStore, tenant: &Tenant, devices: &[usize]) -> Vec<usize> {
    devices
        .iter()
        .copied()
        .filter(|&i| {
            let Ok(id) = device_id(i).parse::<ResourceId>() else {
                return true;
            };
            !matches!(store.get(tenant, &id), Ok(Some(stored))
                if iotcane_app::live::placement_of(&stored.resource)
                    .is_some_and(|p| p.live.is_some()))
        })
        .collect()
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.count())
}

// ---------------------------------------------------------------------------------------
// Figures.

/// Named figures of one run, in order.
#[derive(Debug, Default, Clone)]
struct Metrics(Vec<(&'static str, f64)>);

impl Metrics {
    fn set(&mut self, key: &'static str, value: f64) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    fn get(&self, key: &str) -> f64 {
        self.0
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(f64::NAN, |(_, v)| *v)
    }

    fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| ((*k).to_owned(), finite(*v)))
                .collect(),
        )
    }
}

/// The median of every figure over the runs.
fn medians(runs: &[Metrics]) -> Metrics {
    let mut out = Metrics::default();
    if let Some(first) = runs.first() {
        for (key, _) in &first.0 {
            let mut values: Vec<f64> = runs
                .iter()
                .map(|r| r.get(key))
                .filter(|v| v.is_finite())
                .collect();
            values.sort_by(f64::total_cmp);
            let median = match values.len() {
                0 => f64::NAN,
                n if n % 2 == 1 => values[n / 2],
                n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
            };
            out.set(key, median);
        }
    }
    out
}

fn scenario_json(runs: &[Metrics], median: &Metrics) -> Value {
    if runs.is_empty() {
        return Value::Null;
    }
    json!({
        "median": median.to_json(),
        "runs": runs.iter().map(Metrics::to_json).collect::<Vec<_>>(),
    })
}

fn finite(v: f64) -> Value {
    if v.is_finite() {
        json!((v * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

/// Sorted samples (milliseconds), for percentiles.
struct Dist(Vec<f64>);

impl Dist {
    fn new(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        Dist(samples)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// Nearest-rank percentile; NaN without samples.
    fn p(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1]
    }
}

// ---------------------------------------------------------------------------------------
// The machine: /proc.

/// CPU time used by this process and the broker over an interval, in cores.
struct CpuMeter {
    at: Instant,
    bench: f64,
    broker: Option<(u32, f64)>,
}

struct CpuUse {
    bench: f64,
    broker: Option<f64>,
}

impl CpuUse {
    fn broker_text(&self) -> String {
        self.broker
            .map_or("n/a".to_owned(), |c| format!("{c:.2} cores"))
    }
}

impl CpuMeter {
    fn start(broker_pid: Option<u32>) -> Self {
        Self {
            at: Instant::now(),
            bench: cpu_secs("self").unwrap_or(0.0),
            broker: broker_pid.and_then(|p| Some((p, cpu_secs(&p.to_string())?))),
        }
    }

    fn finish(&self) -> CpuUse {
        let wall = secs(self.at.elapsed()).max(1e-3);
        CpuUse {
            bench: (cpu_secs("self").unwrap_or(0.0) - self.bench) / wall,
            broker: self
                .broker
                .and_then(|(pid, before)| Some((cpu_secs(&pid.to_string())? - before) / wall)),
        }
    }
}

/// User + system CPU seconds of a process (`self` or a pid), from /proc/PID/stat (in
/// USER_HZ = 100 ticks).
fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// A `kB` line of /proc/PID/status.
fn status_kib(pid: &str, key: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn rss_bytes(pid: &str) -> u64 {
    status_kib(pid, "VmRSS:").map_or(0, |k| k * 1024)
}

/// The local Mosquitto's pid, by its process name.
fn find_broker_pid() -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim() == "mosquitto").then_some(pid)
        })
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// The 1-minute load average, as /proc/loadavg gives it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "n/a".to_owned())
}

// ---------------------------------------------------------------------------------------
// Formatting.

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn fmt_dur(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} ms", s * 1e3)
    }
}

fn fmt_ms(ms: f64) -> String {
    if !ms.is_finite() {
        "n/a".to_owned()
    } else if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// `12,345 msg/s`.
fn fmt_rate(rate: f64) -> String {
    if !rate.is_finite() {
        return "n/a".to_owned();
    }
    let digits = format!("{:.0}", rate.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{out} msg/s")
}

fn fmt_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", b / (1u64 << 30) as f64)
    } else {
        format!("{:.0} MiB", b / (1u64 << 20) as f64)
    }
}
