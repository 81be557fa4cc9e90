//! End-to-end throughput and latency against a real broker, with a baseline
//! measured in the same run (issue 6):
//!
//! ```sh
//! scripts/kafka.sh start
//! cargo run --release --example e2e_bench -- [messages (2000000)] [rounds (3)] [latency rate (20000)]
//! ```
//!
//! 1. Fills fresh input topics with the simulator's message mix.
//! 2. Each round measures (a) a bare rdkafka consumer reading and discarding
//!    the three input topics, and (b) `crowdpark run` (the library's runner,
//!    at-least-once, every output produced) over the same topics, both from
//!    their first message to their last; prints events/s and (b)/(a), and the
//!    CPU each spent per event, in this process and in the broker (from
//!    `/proc`, when the broker runs on this machine): the budget that bounds
//!    what two cores can reach.
//!
//! `E2E_SNAPSHOT_INTERVAL_MS` sets `engine.snapshot_interval` (0: no local
//! snapshots), to measure what keeping them costs.
//!
//! 3. Offers `latency rate` events/s for 20 s to a running engine and reports
//!    p50/p99 of `crowdpark_event_to_output_seconds` (receive to outputs
//!    queued to the producer) over that period.

mod common;
use common::median;

use crowdpark::config::{load_str, Config, DEFAULT_CONFIG};
use crowdpark::engine::Engine;
use crowdpark::io::kafka::admin::create_topics;
use crowdpark::io::kafka::simulate::{simulate, SimulateOptions};
use crowdpark::sim::SimOptions;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(brokers: &str, inputs: &str, run: &str) -> Config {
    let mut c = load_str(DEFAULT_CONFIG, Vec::new()).expect("embedded config");
    let t = &mut c.topics;
    t.crowd_counts = format!("{inputs}.crowd.counts");
    t.parking_events = format!("{inputs}.parking.events");
    t.payments = format!("{inputs}.payments");
    for (field, base) in [
        (&mut t.crowd_alerts, "crowd.alerts"),
        (&mut t.crowd_density, "crowd.density"),
        (&mut t.parking_availability, "parking.availability"),
        (&mut t.payments_stats, "payments.stats"),
        (&mut t.deadletter, "deadletter"),
        (&mut t.state, "state"),
        (&mut t.payments_by_zone, "payments-by-zone"),
        // Internal topics too: a shared one would feed every run what the
        // runs before it wrote (the district task read their partials).
        (&mut t.partials_by_district, "partials-by-district"),
        (&mut t.view, "view"),
    ] {
        *field = format!("{run}.{base}");
    }
    c.kafka.brokers = brokers.to_string();
    c.kafka.group_id = run.to_string();
    c.kafka.instance_id = run.to_string();
    // Local snapshots in a directory of the bench's own, removed at the end;
    // `E2E_SNAPSHOT_INTERVAL_MS` sets how often they catch up (0: off).
    c.engine.state_dir = Some(snapshot_dir().display().to_string());
    if let Some(ms) = std::env::var("E2E_SNAPSHOT_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        c.engine.snapshot_interval = crowdpark::config::Millis(ms);
    }
    c
}

fn snapshot_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("e2e-bench-{}-snapshots", std::process::id()))
}

fn inputs(c: &Config) -> [String; 3] {
    [
        c.topics.crowd_counts.clone(),
        c.topics.parking_events.clone(),
        c.topics.payments.clone(),
    ]
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`
/// (fields 14 and 15, in clock ticks of 1/100 s on Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it do not.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// The local Kafka broker's process (`scripts/kafka.sh` runs `kafka.Kafka`).
fn broker_pid() -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd);
        (cmd.contains("kafka.Kafka") && cmd.contains("java")).then_some(pid)
    })
}

/// CPU used by this process and the broker between two instants.
#[derive(Clone, Copy)]
struct CpuMark {
    own: f64,
    broker: Option<f64>,
    at: Instant,
}

impl CpuMark {
    fn now(broker: Option<u32>) -> Self {
        CpuMark {
            own: cpu_seconds(std::process::id()).unwrap_or(f64::NAN),
            broker: broker.and_then(cpu_seconds),
            at: Instant::now(),
        }
    }

    /// (µs of this process's CPU per event, µs of the broker's, cores busy in all).
    fn per_event(&self, later: &CpuMark, events: f64) -> (f64, Option<f64>, f64) {
        let own = later.own - self.own;
        let broker = match (self.broker, later.broker) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let secs = later.at.duration_since(self.at).as_secs_f64();
        (
            own / events * 1e6,
            broker.map(|b| b / events * 1e6),
            (own + broker.unwrap_or(0.0)) / secs,
        )
    }
}

/// A phase's rate and CPU use.
struct Measured {
    rate: f64,
    own_us: f64,
    broker_us: Option<f64>,
    cores: f64,
}

impl Measured {
    fn new(first: CpuMark, last: CpuMark, events: f64) -> Self {
        let (own_us, broker_us, cores) = first.per_event(&last, events);
        Measured {
            rate: events / last.at.duration_since(first.at).as_secs_f64(),
            own_us,
            broker_us,
            cores,
        }
    }

    /// CPU µs per event, this process and broker together.
    fn total_us(&self) -> f64 {
        self.own_us + self.broker_us.unwrap_or(0.0)
    }

    fn describe(&self) -> String {
        let broker = self.broker_us.map_or("broker not local".to_string(), |b| {
            format!("{b:.2} µs broker")
        });
        format!(
            "{:.0} events/s; CPU per event {:.2} µs client + {broker}; {:.2} cores busy",
            self.rate, self.own_us, self.cores
        )
    }
}

/// (a): read every input message once and drop it; events/s from the first
/// message to the last.
fn bare_consumer(c: &Config, total: u64, broker: Option<u32>) -> anyhow::Result<Measured> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &c.kafka.brokers)
        .set("group.id", format!("{}-bare", c.kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50")
        .set("fetch.queue.backoff.ms", "10")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for t in inputs(c) {
        for p in 0..c.topics.input_partitions {
            tpl.add_partition_offset(&t, p, Offset::Beginning)?;
        }
    }
    consumer.assign(&tpl)?;
    let (mut n, mut first) = (0u64, None);
    let deadline = Instant::now() + Duration::from_secs(600);
    while n < total {
        anyhow::ensure!(
            Instant::now() < deadline,
            "bare consumer read {n} of {total}"
        );
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(|| CpuMark::now(broker));
            n += 1;
        }
    }
    let last = CpuMark::now(broker);
    Ok(Measured::new(
        first.expect("a message"),
        last,
        (n - 1) as f64,
    ))
}

/// One engine configuration's figures over the rounds.
#[derive(Default)]
struct Rounds {
    rate: Vec<f64>,
    ratio: Vec<f64>,
    own_us: Vec<f64>,
    broker_us: Vec<f64>,
    cpu: Vec<f64>,
    bound: Vec<f64>,
}

impl Rounds {
    fn add(&mut self, a: &Measured, b: &Measured, ceiling: f64) {
        self.rate.push(b.rate);
        self.ratio.push(b.rate / a.rate);
        self.own_us.push(b.own_us);
        self.broker_us.push(b.broker_us.unwrap_or(f64::NAN));
        self.cpu.push(b.own_us / a.own_us);
        self.bound.push(ceiling);
    }
}

/// Histogram buckets (upper bound → cumulative count) of a family.
fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    let mut out: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.parse().ok()?))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// The `q` quantile of the difference of two bucket snapshots, interpolated
/// linearly inside the bucket as Prometheus' `histogram_quantile` does.
fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> f64 {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, c)| {
            let b = before.iter().find(|(l, _)| l == le).map_or(0.0, |x| x.1);
            (*le, c - b)
        })
        .collect();
    let total = delta.last().map_or(0.0, |x| x.1);
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for (le, c) in delta {
        if c >= rank {
            if le.is_infinite() {
                return lower.0;
            }
            let share = if c > lower.1 {
                (rank - lower.1) / (c - lower.1)
            } else {
                1.0
            };
            return lower.0 + (le - lower.0) * share;
        }
        lower = (le, c);
    }
    f64::NAN
}

/// An engine running on its own thread, as `crowdpark run` runs it.
struct Running {
    view: Arc<crowdpark::http::LiveView>,
    shutdown: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<anyhow::Result<crowdpark::io::kafka::runner::RunSummary>>,
}

fn start(c: Config) -> Running {
    let config = Arc::new(c);
    let view = crowdpark::io::live_view(&Engine::new(config.clone()));
    let shutdown = Arc::new(AtomicBool::new(false));
    let thread = {
        let (view, shutdown) = (view.clone(), shutdown.clone());
        std::thread::spawn(move || crowdpark::io::kafka::runner::run(config, view, shutdown))
    };
    Running {
        view,
        shutdown,
        thread,
    }
}

impl Running {
    fn stop(self) -> anyhow::Result<()> {
        self.shutdown.store(true, Ordering::Relaxed);
        self.thread.join().expect("runner thread")?;
        Ok(())
    }
}

/// (b): `crowdpark run` over the filled topics; events/s from its first
/// consumed message to its last.
fn engine(c: Config, total: u64, broker: Option<u32>) -> anyhow::Result<Measured> {
    let topics = inputs(&c);
    let running = start(c);
    // Read the counters themselves: rendering the exposition 50 times a second
    // took a whole core from the engine.
    let consumed = || {
        topics
            .iter()
            .map(|t| running.view.metrics.input.consumed(t) as f64)
            .sum::<f64>()
    };
    const LOOK_EVERY: Duration = Duration::from_millis(20);
    let deadline = Instant::now() + Duration::from_secs(600);
    while consumed() == 0.0 {
        anyhow::ensure!(Instant::now() < deadline, "the engine consumed nothing");
        std::thread::sleep(LOOK_EVERY);
    }
    let (first, c0) = (CpuMark::now(broker), consumed());
    while consumed() < total as f64 {
        anyhow::ensure!(Instant::now() < deadline, "the engine did not finish");
        std::thread::sleep(LOOK_EVERY);
    }
    let measured = Measured::new(first, CpuMark::now(broker), total as f64 - c0);
    running.stop()?;
    Ok(measured)
}

/// Records in a topic: the sum of its partitions' high watermarks.
fn records(c: &Config, topic: &str) -> anyhow::Result<i64> {
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &c.kafka.brokers)
        .create()?;
    let md = probe.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut n = 0;
    for t in md.topics() {
        for p in t.partitions() {
            let (lo, hi) = probe.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
            n += hi - lo;
        }
    }
    Ok(n)
}

/// What the engine wrote per input message, by output topic.
fn outputs_per_input(c: &Config, total: u64) -> anyhow::Result<String> {
    let t = &c.topics;
    let mut parts = Vec::new();
    for topic in [
        &t.crowd_alerts,
        &t.crowd_density,
        &t.parking_availability,
        &t.payments_stats,
        &t.deadletter,
        &t.payments_by_zone,
        &t.state,
    ] {
        let n = records(c, topic)?;
        let short = topic.split_once('.').map_or(topic.as_str(), |x| x.1);
        parts.push(format!("{short} {:.3}", n as f64 / total as f64));
    }
    Ok(parts.join(", "))
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let total: u64 = args.next().map_or(Ok(2_000_000), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(3), |a| a.parse())?;
    let offered: f64 = args.next().map_or(Ok(20_000.0), |a| a.parse())?;
    let brokers =
        std::env::var("CROWDPARK_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let run_id = format!("e2e-bench-{}", std::process::id());
    let rt = tokio::runtime::Runtime::new()?;
    // The runner sets these on start; the baseline gets them too.
    crowdpark::io::kafka::allocator::keep_freed_buffers();
    let sim = SimOptions {
        intensity: 4.0,
        ..SimOptions::default()
    };
    // `E2E_INPUT=e2e-bench-<pid>-in` reads the input an earlier run filled
    // (with the same message count) instead of filling new topics.
    let input = match std::env::var("E2E_INPUT") {
        Ok(input) => input,
        Err(_) => {
            let input = format!("{run_id}-in");
            let fill = config(&brokers, &input, &format!("{run_id}-fill"));
            rt.block_on(create_topics(&fill))?;
            let sent = simulate(
                &fill,
                &SimulateOptions {
                    rate: 0.0,
                    duration: Duration::from_secs(3600),
                    max_messages: Some(total),
                    sim: sim.clone(),
                    progress: false,
                    weeks: None,
                },
            )?;
            anyhow::ensure!(sent.sent == total, "filled {} of {total}", sent.sent);
            input
        }
    };
    println!("input {input}: {total} messages (the simulator's mix)");

    let broker = broker_pid();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    // `E2E_WORKERS=1,2` runs the engine with each worker count in every
    // round, after the same bare consumer; by default with its own default.
    let workers: Vec<Option<usize>> = match std::env::var("E2E_WORKERS") {
        Ok(list) => list
            .split(',')
            .map(|w| w.trim().parse().map(Some))
            .collect::<Result<_, _>>()?,
        Err(_) => vec![None],
    };
    let mut bare = Vec::new();
    let mut by_workers: Vec<Rounds> = workers.iter().map(|_| Rounds::default()).collect();
    for round in 1..=rounds {
        let c = config(&brokers, &input, &format!("{run_id}-r{round}"));
        let a = bare_consumer(&c, total, broker)?;
        println!("round {round}:\n  (a) bare consumer: {}", a.describe());
        bare.push(a.rate);
        for (w, rounds) in workers.iter().zip(&mut by_workers) {
            let tag = w.map_or(String::new(), |w| format!("-w{w}"));
            let mut c = config(&brokers, &input, &format!("{run_id}-r{round}{tag}"));
            c.engine.workers = *w;
            rt.block_on(create_topics(&c))?;
            let b = engine(c.clone(), total, broker)?;
            if round == 1 {
                println!(
                    "  records written per input message: {}",
                    outputs_per_input(&c, total)?
                );
            }
            // Were every core busy with nothing else, the engine's CPU per
            // event (its own and the broker's) would allow at most this ratio.
            let ceiling = cores * 1e6 / b.total_us() / a.rate;
            println!(
                "  (b) crowdpark run, {} workers: {}\n      ratio (b)/(a) {:.2}; CPU per event (b)/(a) {:.2}; CPU ceiling on {cores} cores {ceiling:.2}",
                c.engine.worker_count(),
                b.describe(),
                b.rate / a.rate,
                b.own_us / a.own_us
            );
            rounds.add(&a, &b, ceiling);
        }
    }
    for (w, r) in workers.iter().zip(by_workers) {
        let w = w.map_or("default".to_string(), |w| w.to_string());
        println!(
            "median, {w} workers: bare consumer {:.0} events/s, crowdpark run {:.0} events/s, ratio (b)/(a) {:.2}, CPU per event {:.2} µs engine / {:.2} µs broker, (b)/(a) {:.2}, CPU ceiling {:.2}",
            median(bare.clone()),
            median(r.rate),
            median(r.ratio),
            median(r.own_us),
            median(r.broker_us),
            median(r.cpu),
            median(r.bound)
        );
    }
    if offered <= 0.0 {
        return Ok(());
    }

    // Latency at a fixed offered rate: the engine runs while the simulator
    // offers `offered` events/s for 20 s (after a 5 s warm-up).
    let c = config(
        &brokers,
        &format!("{run_id}-live-in"),
        &format!("{run_id}-live"),
    );
    rt.block_on(create_topics(&c))?;
    let running = start(c.clone());
    std::thread::sleep(Duration::from_secs(5));
    let producer = {
        let c = c.clone();
        std::thread::spawn(move || {
            simulate(
                &c,
                &SimulateOptions {
                    rate: offered,
                    duration: Duration::from_secs(25),
                    max_messages: None,
                    sim,
                    progress: false,
                    weeks: None,
                },
            )
        })
    };
    std::thread::sleep(Duration::from_secs(5));
    let before = buckets(
        &running.view.metrics.render(),
        "crowdpark_event_to_output_seconds",
    );
    std::thread::sleep(Duration::from_secs(20));
    let after = buckets(
        &running.view.metrics.render(),
        "crowdpark_event_to_output_seconds",
    );
    let summary = producer.join().expect("simulator thread")?;
    let observed = after.last().map_or(0.0, |x| x.1) - before.last().map_or(0.0, |x| x.1);
    println!(
        "latency at {:.0} events/s offered ({:.0} achieved by the producer): p50 {:.2} ms, p99 {:.2} ms over {observed:.0} messages with outputs",
        offered,
        summary.rate,
        quantile(&before, &after, 0.5) * 1e3,
        quantile(&before, &after, 0.99) * 1e3
    );
    running.stop()?;
    let _ = std::fs::remove_dir_all(snapshot_dir());
    Ok(())
}
