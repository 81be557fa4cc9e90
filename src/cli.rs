//! The `crowdpark` command line (contract §5).

use crate::config::{self, Config, DEFAULT_CONFIG};
use crate::engine::Engine;
use crate::io::demo::{self, DemoOptions};
use crate::sim::SimOptions;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "crowdpark",
    version,
    about = "Streaming engine for crowd safety, parking availability and district commerce"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the built-in simulation of the model district in process (no Kafka):
    /// prints alerts and availability changes, serves the HTTP API and metrics.
    Demo {
        /// Configuration file; the embedded model district by default.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Simulated seconds per wall-clock second.
        #[arg(long, default_value_t = 60.0)]
        speed: f64,
        /// Stop after this many wall-clock seconds (default: run until Ctrl-C).
        #[arg(long)]
        duration: Option<f64>,
        /// HTTP listen address (overrides http.listen); port 0 picks a free port.
        #[arg(long)]
        listen: Option<String>,
        /// Simulator seed: the same seed replays the same afternoon.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Share of deliberately bad messages (0 to 1).
        #[arg(long, default_value_t = 0.0)]
        bad_ratio: f64,
        /// Print only the banner and the summary.
        #[arg(long)]
        quiet: bool,
    },
    /// Run the engine against Kafka: consume the input topics as a consumer
    /// group, publish every output topic, serve the HTTP API and metrics.
    Run {
        /// Configuration file; the embedded model district by default.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Brokers (overrides kafka.brokers).
        #[arg(long)]
        brokers: Option<String>,
        /// HTTP listen address (overrides http.listen).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Produce realistic district traffic to the input topics.
    Simulate {
        #[arg(long)]
        brokers: String,
        /// Messages per second (0: as fast as possible).
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Seconds to run.
        #[arg(long, default_value_t = 60.0)]
        duration: f64,
        /// Stop after this many messages.
        #[arg(long)]
        messages: Option<u64>,
        /// Share of deliberately bad messages (0 to 1), each of a known reason.
        #[arg(long, default_value_t = 0.0)]
        bad_ratio: f64,
        /// Share of good messages sent twice, as a retrying producer would.
        #[arg(long, default_value_t = 0.0)]
        duplicate_ratio: f64,
        /// Simulator seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Simulated start time (RFC 3339); default 2026-10-01T13:00:00+08:00,
        /// or with --weeks Monday 2026-08-31T00:00:00+08:00.
        #[arg(long)]
        start: Option<String>,
        /// Multi-week mode: this many weeks of gate counts for every car park
        /// (weekday and holiday patterns, noise), for forecasts; parking only.
        #[arg(long)]
        weeks: Option<u32>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Manage topics.
    Topics {
        #[command(subcommand)]
        action: TopicsAction,
    },
    /// Validate a configuration file and print what it defines.
    CheckConfig { file: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum TopicsAction {
    /// Create the input, output, dead-letter and state topics that do not exist.
    Create {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        brokers: Option<String>,
    },
    /// Print the Kafka ACLs `run` needs with this configuration, one
    /// `kafka-acls --add` option list per line (the guarantee, group and
    /// instance id decide some of them).
    Acls {
        #[arg(long)]
        config: Option<PathBuf>,
        /// The engine's principal, e.g. `User:crowdpark`.
        #[arg(long)]
        principal: String,
    },
}

/// Loads `path`, or the embedded default, with environment overrides.
pub fn load_config(path: Option<&Path>) -> Result<Config, String> {
    let (source, loaded) = match path {
        Some(p) => (p.display().to_string(), config::load_file(p)),
        None => (
            "embedded config".to_string(),
            config::load_str(DEFAULT_CONFIG, std::env::vars()),
        ),
    };
    loaded
        .and_then(|c| crate::io::kafka::check_client_properties(&c).map(|()| c))
        .map_err(|e| format!("{source}: {e}"))
}

/// [`load_config`], with `--brokers` overriding `kafka.brokers` when given.
fn load_with_brokers(path: Option<&Path>, brokers: Option<String>) -> Result<Config, String> {
    let mut cfg = load_config(path)?;
    if let Some(b) = brokers {
        cfg.kafka.brokers = b;
    }
    Ok(cfg)
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "crowdpark=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Run {
            config,
            brokers,
            listen,
        } => {
            let mut cfg = match load_with_brokers(config.as_deref(), brokers) {
                Ok(c) => c,
                Err(e) => return usage_error(&e),
            };
            if let Some(l) = listen {
                cfg.http.listen = l;
            }
            runtime().block_on(run_kafka(cfg))
        }
        Command::Topics {
            action: TopicsAction::Create { config, brokers },
        } => {
            let cfg = match load_with_brokers(config.as_deref(), brokers) {
                Ok(c) => c,
                Err(e) => return usage_error(&e),
            };
            match runtime().block_on(crate::io::kafka::admin::create_topics(&cfg)) {
                Ok(lines) => {
                    for l in lines {
                        println!("{l}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Topics {
            action: TopicsAction::Acls { config, principal },
        } => match load_config(config.as_deref()) {
            Ok(cfg) => {
                for grant in crate::io::kafka::acls::grants(&cfg) {
                    println!("{}", grant.options(&principal));
                }
                ExitCode::SUCCESS
            }
            Err(e) => usage_error(&e),
        },
        Command::Simulate {
            brokers,
            rate,
            duration,
            messages,
            bad_ratio,
            duplicate_ratio,
            seed,
            start,
            weeks,
            config,
        } => {
            let mut cfg = match load_config(config.as_deref()) {
                Ok(c) => c,
                Err(e) => return usage_error(&e),
            };
            cfg.kafka.brokers = brokers;
            if !(0.0..=1.0).contains(&bad_ratio) || !(0.0..=1.0).contains(&duplicate_ratio) {
                return usage_error("--bad-ratio and --duplicate-ratio must be between 0 and 1");
            }
            if !(rate >= 0.0 && duration > 0.0) {
                return usage_error("--rate must be >= 0 and --duration > 0");
            }
            if weeks.is_some_and(|w| w == 0 || w > 52) {
                return usage_error("--weeks must be 1 to 52");
            }
            let start_ms = match start.as_deref().map(chrono::DateTime::parse_from_rfc3339) {
                None if weeks.is_some() => crate::sim::weeks::DEFAULT_WEEKS_START_MS,
                None => crate::sim::DEFAULT_START_MS,
                Some(Ok(t)) => t.timestamp_millis(),
                Some(Err(e)) => return usage_error(&format!("--start: {e}")),
            };
            let opts = crate::io::kafka::simulate::SimulateOptions {
                rate,
                duration: Duration::from_secs_f64(duration),
                max_messages: messages,
                sim: SimOptions {
                    seed,
                    bad_ratio,
                    duplicate_ratio,
                    start_ms,
                    ..SimOptions::default()
                },
                progress: true,
                weeks,
            };
            match crate::io::kafka::simulate::simulate(&cfg, &opts) {
                Ok(summary) => {
                    println!("{}", serde_json::to_string(&summary).expect("serialisable"));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo {
            config,
            speed,
            duration,
            listen,
            seed,
            bad_ratio,
            quiet,
        } => {
            if !(speed > 0.0 && speed.is_finite()) {
                eprintln!("error: --speed must be a positive number");
                return ExitCode::from(2);
            }
            if !(0.0..=1.0).contains(&bad_ratio) {
                eprintln!("error: --bad-ratio must be between 0 and 1");
                return ExitCode::from(2);
            }
            let mut cfg = match load_config(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            if let Some(l) = listen {
                cfg.http.listen = l;
            }
            let opts = DemoOptions {
                speed,
                duration: duration.map(Duration::from_secs_f64),
                sim: SimOptions {
                    seed,
                    bad_ratio,
                    duplicate_ratio: if bad_ratio > 0.0 { 0.01 } else { 0.0 },
                    ..SimOptions::default()
                },
                quiet,
            };
            runtime().block_on(run_demo(cfg, opts))
        }
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// How long `run` may take to stop after SIGTERM or Ctrl-C.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(4500);

/// Resolves when SIGTERM or SIGINT (Ctrl-C) arrives.
async fn termination() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn run_kafka(cfg: Config) -> ExitCode {
    let config = Arc::new(cfg);
    let view = demo::live_view(&Engine::new(config.clone()));
    let Some((listener, url, http_settings)) = bind(&config.http).await else {
        return ExitCode::from(2);
    };
    println!(
        "crowdpark run: brokers {}, group {}, HTTP on {url}",
        config.kafka.brokers, config.kafka.group_id
    );
    let shutdown = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stop_http, server) = spawn_http(listener, view.clone(), http_settings);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    {
        let (config, view, shutdown) = (config.clone(), view.clone(), shutdown.clone());
        std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    crate::io::kafka::runner::run(config, view, shutdown)
                }));
                let _ = done_tx.send(r);
            })
            .expect("a thread can be spawned");
    }
    tokio::pin!(done_rx);
    let result = tokio::select! {
        _ = termination() => {
            tracing::info!("signal received; shutting down");
            shutdown.store(true, std::sync::atomic::Ordering::Relaxed);
            // The final checkpoint normally takes well under a second; a
            // broker that is away must not keep an orchestrator's SIGTERM
            // waiting. Leaving without it is as safe as a crash: the next run
            // resumes from the last committed checkpoint.
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut done_rx).await {
                Ok(r) => r,
                Err(_) => {
                    eprintln!(
                        "error: the final checkpoint did not finish within {} s; exiting without it (the next run resumes from the last committed checkpoint)",
                        SHUTDOWN_GRACE.as_secs_f64()
                    );
                    return ExitCode::FAILURE;
                }
            }
        }
        r = &mut done_rx => r,
    };
    let _ = stop_http.send(());
    let _ = server.await;
    match result {
        Ok(Ok(Ok(s))) => {
            println!("stopped: consumed {}, {} commits", s.consumed, s.commits);
            ExitCode::SUCCESS
        }
        Ok(Ok(Err(e))) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
        _ => {
            eprintln!("error: the pipeline thread panicked");
            ExitCode::FAILURE
        }
    }
}

/// Serves the HTTP API until the returned sender is used (or dropped).
fn spawn_http(
    listener: tokio::net::TcpListener,
    view: Arc<crate::http::LiveView>,
    settings: crate::http::ServerSettings,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::http::serve(listener, view, settings, async {
        let _ = stopped.await;
    }));
    (stop, server)
}

/// Binds the HTTP listener and prepares its TLS and authentication; says why
/// on failure. The URL is `http://addr` or `https://addr`.
async fn bind(
    http: &config::HttpSettings,
) -> Option<(tokio::net::TcpListener, String, crate::http::ServerSettings)> {
    let settings = match crate::http::ServerSettings::from_config(http) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return None;
        }
    };
    match tokio::net::TcpListener::bind(&http.listen).await {
        Ok(l) => {
            let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
            let scheme = if settings.tls.is_some() {
                "https"
            } else {
                "http"
            };
            Some((l, format!("{scheme}://{addr}"), settings))
        }
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", http.listen);
            None
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime can be built")
}

async fn run_demo(cfg: Config, opts: DemoOptions) -> ExitCode {
    let config = Arc::new(cfg);
    let engine = Engine::new(config.clone());
    let view = demo::live_view(&engine);
    let Some((listener, url, http_settings)) = bind(&config.http).await else {
        return ExitCode::from(2);
    };
    println!(
        "crowdpark demo: {} — {} zones, {} car parks ({} spaces), {} merchants; simulated time runs {}× real time",
        config.district.name,
        config.zones.len(),
        config.lots.len(),
        config.total_spaces(),
        config.merchants.len(),
        opts.speed
    );
    println!(
        "HTTP on {url}  (/metrics /healthz /readyz /api/v1/zones /api/v1/lots /api/v1/stream)"
    );
    println!("Ctrl-C stops.");
    let (stop_http, server) = spawn_http(listener, view.clone(), http_settings);
    // SIGTERM (docker stop, systemd) is Ctrl-C: stop and print the summary.
    let result = demo::run(config.clone(), view, engine, opts, termination()).await;
    let _ = stop_http.send(());
    let _ = server.await;
    match result {
        Ok(s) => {
            let mut topics: Vec<_> = s.outputs_by_topic.iter().collect();
            topics.sort();
            println!(
                "summary: {:.0} simulated minutes; consumed {} = accepted {} + dead-lettered {} + duplicates {}; published {}",
                s.simulated_minutes,
                s.consumed,
                s.accepted,
                s.rejected,
                s.duplicates,
                topics.iter().map(|(t, n)| format!("{t} {n}")).collect::<Vec<_>>().join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &Path) -> ExitCode {
    // `FILE: KEY: PROBLEM`, as every command reports a bad configuration.
    let c = match load_config(Some(file)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    println!("{}: valid", file.display());
    println!(
        "district  {} ({}), UTC{}",
        c.district.name, c.district.id, c.district.utc_offset
    );
    println!(
        "engine    out-of-orderness {}, idle timeout {}, lateness {}, dedup horizon {}",
        c.engine.max_out_of_orderness,
        c.engine.idle_timeout,
        c.engine.allowed_lateness,
        c.engine.dedup_horizon
    );
    println!(
        "zones     {} zones, {:.0} m² walkable; default thresholds yellow {} / red {} p/m²",
        c.zones.len(),
        c.zones.iter().map(|z| z.area_m2).sum::<f64>(),
        c.crowd.thresholds.yellow,
        c.crowd.thresholds.red
    );
    for z in &c.zones {
        let t = c.thresholds_for(z);
        println!(
            "  {:<28} {:>7.1} m²  yellow {:<4} red {:<4} {:?}",
            z.id, z.area_m2, t.yellow, t.red, z.kind
        );
    }
    println!(
        "car parks {} car parks, {} spaces",
        c.lots.len(),
        c.total_spaces()
    );
    for l in &c.lots {
        println!(
            "  {:<28} {:>5} spaces  {:?}, open {}",
            l.id, l.spaces, l.detection, l.opening_hours
        );
    }
    println!(
        "merchants {} merchants in {} categories ({})",
        c.merchants.len(),
        c.payments.categories.len(),
        c.payments.categories.join(", ")
    );
    println!(
        "topics    in: {}, {}, {} ({} partitions); out: {}, {}, {}, {}, {}",
        c.topics.crowd_counts,
        c.topics.parking_events,
        c.topics.payments,
        c.topics.input_partitions,
        c.topics.crowd_alerts,
        c.topics.crowd_density,
        c.topics.parking_availability,
        c.topics.payments_stats,
        c.topics.deadletter
    );
    print_kafka_settings(&c);
    ExitCode::SUCCESS
}

/// The Kafka settings `run` would use, secrets masked.
fn print_kafka_settings(c: &Config) {
    use config::secrets::shown;
    println!(
        "kafka     brokers {}, group {}, {:?}, commit every {}",
        c.kafka.brokers, c.kafka.group_id, c.kafka.processing_guarantee, c.kafka.commit_interval
    );
    for (key, value) in &c.kafka.client {
        println!("  {key} = {}", shown(key, value));
    }
}
