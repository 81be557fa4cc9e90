//! The `crowdpark` command line (SPEC §5).

use crate::config::{self, Config, ConfigError, DEFAULT_CONFIG};
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
    /// Validate a configuration file and print what it defines.
    CheckConfig { file: PathBuf },
}

/// Loads `path`, or the embedded default, with environment overrides.
pub fn load_config(path: Option<&Path>) -> Result<Config, String> {
    match path {
        Some(p) => config::load_file(p).map_err(|e| format!("{}: {e}", p.display())),
        None => config::load_str(DEFAULT_CONFIG, std::env::vars())
            .map_err(|e| format!("embedded config: {e}")),
    }
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
    let listener = match tokio::net::TcpListener::bind(&config.http.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", config.http.listen);
            return ExitCode::from(2);
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    println!(
        "crowdpark demo: {} — {} zones, {} car parks ({} spaces), {} merchants; simulated time runs {}× real time",
        config.district.name,
        config.zones.len(),
        config.lots.len(),
        config.total_spaces(),
        config.merchants.len(),
        opts.speed
    );
    println!("HTTP on http://{addr}  (/metrics /healthz /readyz /api/v1/zones /api/v1/lots /api/v1/stream)");
    println!("Ctrl-C stops.");
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::http::serve(listener, view.clone(), async {
        let _ = http_stopped.await;
    }));
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let result = demo::run(config.clone(), view, engine, opts, ctrl_c).await;
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
    let c = match config::load_file(file) {
        Ok(c) => c,
        Err(ConfigError { key, problem }) => {
            eprintln!("error: {}: {key}: {problem}", file.display());
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
    ExitCode::SUCCESS
}
