//! Scale-out figures: MQTT context-update throughput with 1, 2 and 3 `iotcane serve`
//! replicas on one PostgreSQL journal and one Mosquitto, and the journal tail lag between
//! replicas under that load.
//!
//! For each replica count: a fresh database with `--devices` devices (imported with
//! `iotcane import`), a private Mosquitto sized for the load, the replicas sharing one
//! `$share` group, then `--reports` context reports published at QoS 1 as fast as the
//! broker takes them from `--publishers` connections. Throughput is reports applied per
//! second, from the first publish until every replica has applied the whole journal. Tail
//! lag is sampled every 50 ms: for each replica, how long ago the journal head first
//! reached the position that replica has applied.
//!
//! `cargo bench -p iotcane-server --bench replicas -- --postgres postgres://postgres@127.0.0.1:5432/test`
//! (the database named is only used to create the per-run databases).

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_iotcane");

#[derive(Debug, Parser)]
#[command(about = "IoT-CANE replica benchmark (MQTT throughput and tail lag, 1..N replicas)")]
struct Args {
    /// A PostgreSQL server URL (any database on it); a fresh database is made per run.
    #[arg(long, env = "IOTCANE_TEST_POSTGRES_URL")]
    postgres: String,
    /// The replica counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    replicas: Vec<usize>,
    #[arg(long, default_value_t = 2_000)]
    devices: usize,
    /// Context reports published per run.
    #[arg(long, default_value_t = 60_000)]
    reports: usize,
    /// Publishing connections.
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// How often each replica reads the rows of the others (the product's default: 500).
    #[arg(long, default_value_t = 500)]
    tail_interval_ms: u64,
    /// Give up on a run after this long.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!("# IoT-CANE replicas: MQTT context-update throughput and tail lag");
    println!(
        "host: nproc {}, {} devices, {} reports over {} QoS 1 connections, PostgreSQL journal, private Mosquitto, tail_interval_ms {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.devices,
        args.reports,
        args.publishers,
        args.tail_interval_ms
    );
    println!();
    println!(
        "| replicas | applied reports/s | vs 1 replica | publish (broker acks) s | all applied s | tail lag p50 ms | p99 ms | max ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut baseline = None;
    for &n in &args.replicas {
        let run = runtime.block_on(run(&args, n))?;
        let rate = args.reports as f64 / run.applied.as_secs_f64();
        let base = *baseline.get_or_insert(rate);
        println!(
            "| {n} | {rate:.0} | {:.2}× | {:.1} | {:.1} | {} | {} | {} |",
            rate / base,
            run.published.as_secs_f64(),
            run.applied.as_secs_f64(),
            percentile(&run.lags_ms, 0.5),
            percentile(&run.lags_ms, 0.99),
            run.lags_ms.iter().max().copied().unwrap_or(0)
        );
    }
    Ok(())
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

struct Run {
    published: Duration,
    applied: Duration,
    /// Tail lag samples of every replica, sorted.
    lags_ms: Vec<u64>,
}

struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        for child in &mut self.0 {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn mosquitto(dir: &std::path::Path) -> anyhow::Result<(Child, u16)> {
    let port = free_port()?;
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
    let conf = dir.join("mosquitto.conf");
    // Sized for the gateway's sessions, as the README advises: the defaults (1,000 queued,
    // 20 in flight) drop a burst after acknowledging it to its publisher.
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 1000000\n\
             max_inflight_messages 1000\nlog_dest none\n"
        ),
    )?;
    let binary = ["/usr/sbin/mosquitto", "mosquitto"]
        .into_iter()
        .find(|b| std::path::Path::new(b).exists() || *b == "mosquitto")
        .unwrap_or("mosquitto");
    let child = Command::new(binary)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("mosquitto must be installed (Debian: mosquitto)")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        ensure!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((child, port))
}

fn iotcane(dir: &std::path::Path, database_url: &str, tail_interval_ms: u64) -> Command {
    let mut cmd = Command::new(BINARY);
    cmd.env("IOTCANE_DATABASE_URL", database_url)
        .env("IOTCANE_LOG_FORMAT", "json")
        .env("IOTCANE_LOG_LEVEL", "warn,iotcane_server=info")
        .env("IOTCANE_TAIL_INTERVAL_MS", tail_interval_ms.to_string())
        .arg("--data-dir")
        .arg(dir);
    cmd
}

/// Starts a replica; returns it with its base URL once it says it is serving.
fn replica(
    dir: &std::path::Path,
    database_url: &str,
    broker: &str,
    name: &str,
    tail_interval_ms: u64,
) -> anyhow::Result<(Child, String)> {
    let mut child = iotcane(dir, database_url, tail_interval_ms)
        .env("IOTCANE_MQTT_SHARE_GROUP", "bench")
        .env("IOTCANE_MQTT_CLIENT_ID", format!("bench-{name}"))
        .args([
            "serve",
            "--no-auth",
            "--http-addr",
            "127.0.0.1:0",
            "--mqtt-url",
            broker,
        ])
        .stderr(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
    for line in lines.by_ref() {
        let line = line?;
        if line.contains("iotcane is serving") {
            let value: Value = serde_json::from_str(&line)?;
            let addr = value["fields"]["http"]
                .as_str()
                .context("serving line without http")?
                .to_owned();
            std::thread::spawn(move || for _ in lines {});
            return Ok((child, format!("http://{addr}")));
        }
    }
    bail!("replica {name} never said it was serving")
}

async fn positions(http: &reqwest::Client, base: &str) -> anyhow::Result<(i64, i64)> {
    let ready: Value = http
        .get(format!("{base}/readyz"))
        .send()
        .await?
        .json()
        .await?;
    Ok((
        ready["journal_head"].as_i64().context("journal_head")?,
        ready["applied_seq"].as_i64().context("applied_seq")?,
    ))
}

async fn run(args: &Args, n: usize) -> anyhow::Result<Run> {
    let work = tempfile::tempdir()?;
    let database_url =
        support::fresh_database(&args.postgres, &format!("iotcane_bench_replicas_{n}")).await?;
    let broker_dir = work.path().join("broker");
    std::fs::create_dir_all(&broker_dir)?;
    let (broker_child, port) = mosquitto(&broker_dir)?;
    let mut processes = Processes(vec![broker_child]);
    let broker = format!("mqtt://127.0.0.1:{port}");

    // The devices, imported before the replicas start (this also makes the tenant).
    let devices = work.path().join("devices.ndjson");
    let mut file = std::fs::File::create(&devices)?;
    for d in 0..args.devices {
        writeln!(
            file,
            "{}",
            json!({"id": format!("d{d}"), "kind": "device", "name": format!("Sensor d{d}"),
                   "observes": ["temperature"], "protocols": ["mqtt"], "site": "plant-a"})
        )?;
    }
    drop(file);
    let import_dir = work.path().join("import");
    let status = iotcane(&import_dir, &database_url, args.tail_interval_ms)
        .args(["import", "--batch-size", "5000"])
        .arg(&devices)
        .stdout(Stdio::null())
        .status()?;
    ensure!(status.success(), "import failed");

    let mut bases = Vec::new();
    for r in 0..n {
        let dir = work.path().join(format!("replica-{r}"));
        let (child, base) = replica(
            &dir,
            &database_url,
            &broker,
            &format!("{n}-{r}"),
            args.tail_interval_ms,
        )?;
        processes.0.push(child);
        bases.push(base);
    }
    let http = reqwest::Client::new();
    // Each gateway subscribes once connected; give them a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (start_head, _) = positions(&http, &bases[0]).await?;

    let started = Instant::now();
    let per_publisher = args.reports.div_ceil(args.publishers);
    let mut publishers = Vec::new();
    for p in 0..args.publishers {
        let count = per_publisher.min(args.reports - p * per_publisher);
        let devices = args.devices;
        let mut options = MqttOptions::new(format!("bench-pub-{n}-{p}"), "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_inflight(200);
        let (client, mut eventloop) = AsyncClient::new(options, 1000);
        publishers.push(tokio::spawn(async move {
            let sender = tokio::spawn(async move {
                for i in 0..count {
                    let d = (p * per_publisher + i) % devices;
                    let report = json!({"status": "online", "loadPct": (i % 100)});
                    client
                        .publish(
                            format!("iotcane/default/things/d{d}/context"),
                            QoS::AtLeastOnce,
                            false,
                            report.to_string(),
                        )
                        .await?;
                }
                anyhow::Ok(client)
            });
            let mut acked = 0;
            while acked < count {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                    Ok(_) => {}
                    Err(e) => bail!("publisher {p}: {e}"),
                }
            }
            let client = sender.await??;
            client.disconnect().await?;
            let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
            anyhow::Ok(())
        }));
    }

    // Sample the journal head and each replica's position every 50 ms while the load runs.
    let target = start_head + args.reports as i64;
    let mut head_reached: BTreeMap<i64, Instant> = BTreeMap::new();
    let mut samples: Vec<(Instant, i64, i64)> = Vec::new();
    let deadline = started + Duration::from_secs(args.timeout_secs);
    let mut published = None;
    let applied = loop {
        if published.is_none() && publishers.iter().all(|p| p.is_finished()) {
            published = Some(started.elapsed());
        }
        let now = Instant::now();
        let mut all_done = true;
        for base in &bases {
            let (head, applied) = positions(&http, base).await?;
            head_reached.entry(head).or_insert(now);
            samples.push((now, head, applied));
            all_done &= applied >= target;
        }
        if all_done {
            break started.elapsed();
        }
        ensure!(
            Instant::now() < deadline,
            "{n} replicas: not all reports applied within {} s",
            args.timeout_secs
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for p in publishers {
        p.await??;
    }
    // The lag of a sample: 0 when the replica has applied the head, else how long ago the
    // oldest row it has not applied was first seen at the head.
    let mut lags_ms: Vec<u64> = samples
        .iter()
        .map(|(at, head, applied)| {
            if applied >= head {
                return 0;
            }
            head_reached
                .range(applied + 1..)
                .next()
                .map_or(0, |(_, reached)| {
                    at.saturating_duration_since(*reached).as_millis() as u64
                })
        })
        .collect();
    lags_ms.sort_unstable();
    drop(processes);
    Ok(Run {
        published: published.unwrap_or(applied),
        applied,
        lags_ms,
    })
}
